/**
 * Reading and checking constructor options, in one place for every class
 * that takes them (GpuVm, PageTable, and the replay through both).
 *
 * Each option is read exactly once, and all of them are checked before
 * anything is created: a getter may run user code (even calls into gpuvm),
 * and must neither answer differently to the check and the use nor see an
 * object half made.
 */
import { engineFor, type BackendName } from './backend/loader.js';
import type { Engine } from './backend/engine.js';
import { GpuVmError } from './errors.js';
import { checkU64, describe, hex, toBig, type U64 } from './u64.js';

/**
 * The `bigint` option that selects a number type: bigint needs `bigint: true`,
 * number `false` or nothing, `number | bigint` any boolean.
 */
export type BigintOption<N extends U64> = [N] extends [bigint]
  ? {
      /** Return bigints and accept all of u64. */
      bigint: true;
    }
  : [N] extends [number]
    ? {
        /** Return numbers (default); every address stays below 2^53. */
        bigint?: false;
      }
    : {
        /** Return bigints and accept all of u64 (default false: numbers, at most 2^53). */
        bigint?: boolean;
      };

function readObject(options: unknown, what: string): Record<string, unknown> {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${what} options must be an object, got ${describe(options)}`);
  }
  return options as Record<string, unknown>;
}

/** `bigint`: absent means false. */
export function readBigint(v: unknown): boolean {
  if (v !== undefined && typeof v !== 'boolean') throw new TypeError(`bigint must be a boolean, got ${describe(v)}`);
  return v === true;
}

/** `backend`: the engine it names (engineFor checks the name and loads the engine). */
export function readBackend(v: unknown): Engine {
  return engineFor(v as BackendName | undefined);
}

/** A GpuVm's options, checked: addresses exact as bigints, the engine loaded. */
export interface VmConfig {
  readonly name: string;
  readonly bigint: boolean;
  readonly engine: Engine;
  /** as given (already checked u64s of the VM's mode) */
  readonly start: U64;
  readonly range: U64;
  readonly startB: bigint;
  readonly rangeB: bigint;
  readonly reserveStartB: bigint;
  readonly reserveRangeB: bigint;
}

/** 2^53: in number mode every address and offset a VM can report stays below it. */
const TWO53B = 2n ** 53n;

/**
 * Reads GpuVm options: name, start, range, reserve { start, range }, bigint,
 * backend. Geometry the engine judges (zero range, overflow, reserve inside)
 * is left to it; what only the facade knows (number mode's 2^53) is checked here.
 */
export function readVmOptions(options: unknown): VmConfig {
  const o = readObject(options, 'GpuVm');
  const { name, bigint, backend, start, range, reserve } = o;
  let rStart: unknown = 0;
  let rRange: unknown = 0;
  if (reserve !== undefined) {
    if (reserve === null || typeof reserve !== 'object') {
      throw new TypeError(`reserve must be an object { start, range }, got ${describe(reserve)}`);
    }
    rStart = (reserve as Record<string, unknown>).start;
    rRange = (reserve as Record<string, unknown>).range;
  }
  const big = readBigint(bigint);
  if (name !== undefined && typeof name !== 'string') throw new TypeError(`name must be a string, got ${describe(name)}`);
  checkU64(start, 'start', big);
  checkU64(range, 'range', big);
  if (reserve !== undefined) {
    checkU64(rStart, 'reserve.start', big);
    checkU64(rRange, 'reserve.range', big);
  }
  const startB = toBig(start as U64);
  const rangeB = toBig(range as U64);
  if (!big && startB + rangeB > TWO53B) {
    throw new RangeError(
      `the VM [${hex(startB)}, ${hex(startB + rangeB)}) reaches above 2^53: create it with { bigint: true }`,
    );
  }
  const engine = readBackend(backend);
  return {
    name: name ?? 'unknown',
    bigint: big,
    engine,
    start: start as U64,
    range: range as U64,
    startB,
    rangeB,
    reserveStartB: toBig(rStart as U64),
    reserveRangeB: toBig(rRange as U64),
  };
}

/** Default level shifts: 4 KiB / 2 MiB / 1 GiB / 512 GiB, 512 entries per table. */
export const DEFAULT_SHIFTS: readonly number[] = Object.freeze([12, 21, 30, 39]);

/**
 * Default per-call limit: 2^24 leaves (64 GiB of 4 KiB pages, about 150 MB
 * of entries and a second or two of work). Larger calls are refused rather
 * than freezing the thread and the heap for minutes.
 */
export const DEFAULT_MAX_ENTRIES_PER_CALL = 2 ** 24;

/** `maxEntriesPerCall` (the option and the setter). */
export function readMaxEntries(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0xffffffff) {
    throw new RangeError(`maxEntriesPerCall must be an integer in [1, 2^32 - 1], got ${describe(v)}`);
  }
  return v;
}

/** A PageTable's options, checked (the geometry itself is judged by the engine). */
export interface PageTableConfig {
  readonly shifts: readonly number[];
  readonly leaf: number;
  readonly compact: boolean;
  readonly bigint: boolean;
  readonly engine: Engine;
  readonly maxEntries: number;
}

/** Reads PageTable options: shifts, leaf, compact, bigint, backend, maxEntriesPerCall. */
export function readPageTableOptions(options: unknown): PageTableConfig {
  const o = readObject(options, 'PageTable');
  const { shifts: given, leaf: optLeaf, bigint, compact: optCompact, backend, maxEntriesPerCall } = o;
  const big = readBigint(bigint);
  if (optCompact !== undefined && typeof optCompact !== 'boolean') throw new TypeError(`compact must be a boolean, got ${describe(optCompact)}`);
  if (given !== undefined && !Array.isArray(given)) {
    throw new TypeError(`shifts must be an array of non-negative integers, got ${describe(given)}`);
  }
  const shifts: number[] = [...((given as number[] | undefined) ?? DEFAULT_SHIFTS)];
  if (shifts.some((s) => typeof s !== 'number' || !Number.isInteger(s) || s < 0 || s > 0xffffffff)) {
    throw new TypeError(`shifts must be an array of non-negative integers, got ${describe(given)}`);
  }
  if (shifts.length > 64) throw new GpuVmError('EINVAL', `a page table has at most 64 levels, got ${shifts.length}`);
  const top = shifts.length - 1;
  const leaf = optLeaf ?? Math.max(0, Math.min(2, top));
  if (typeof leaf !== 'number' || !Number.isInteger(leaf) || leaf < 0) {
    throw new TypeError(`leaf must be a non-negative integer, got ${describe(leaf)}`);
  }
  const maxEntries = maxEntriesPerCall === undefined ? DEFAULT_MAX_ENTRIES_PER_CALL : readMaxEntries(maxEntriesPerCall);
  const engine = readBackend(backend);
  return { shifts, leaf, compact: optCompact === true, bigint: big, engine, maxEntries };
}
