/**
 * Addresses of the SVM layer. Everything in it is page granular (4 KiB), so
 * inside the layer an address is its page number: a u64 address has a page
 * number below 2^52, which a double holds exactly. Users pass and get byte
 * addresses as numbers (exact below 2^53) or, in bigint mode, as bigints.
 */
import type { U64 } from '../u64.js';
import { describe } from '../u64.js';
import { GpuVmError } from '../errors.js';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
/** Pages in the whole u64 space: 2^52. */
export const PAGES_U64 = 2 ** 52;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/**
 * Reads a u64 argument: a non-negative integer number (below 2^53) or a bigint
 * below 2^64. Returns it as a bigint only when it does not fit a number.
 */
function u64(v: unknown, name: string, big: boolean): number | bigint {
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v <= MAX_SAFE) return v;
    if (Number.isInteger(v) && v > MAX_SAFE) {
      throw new RangeError(`${name} = ${v} is above Number.MAX_SAFE_INTEGER and cannot be exact; pass a bigint`);
    }
    throw new RangeError(`${name} must be a non-negative integer, got ${describe(v)}`);
  }
  if (typeof v === 'bigint') {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`${name} must be a u64, got ${describe(v)}`);
    if (!big && v > BigInt(MAX_SAFE)) {
      throw new RangeError(`${name} = ${describe(v)} is above Number.MAX_SAFE_INTEGER; use { bigint: true }`);
    }
    return v <= BigInt(MAX_SAFE) ? Number(v) : v;
  }
  throw new TypeError(`${name} must be a number or a bigint, got ${describe(v)}`);
}

/** The page holding byte address `v` (no alignment needed). */
export function pageOf(v: unknown, name: string, big: boolean): number {
  const x = u64(v, name, big);
  return typeof x === 'number' ? Math.floor(x / PAGE_SIZE) : Number(x >> 12n);
}

/** A page-aligned address as its page number; EINVAL when not aligned. */
export function alignedPage(v: unknown, name: string, big: boolean): number {
  const x = u64(v, name, big);
  if (typeof x === 'number') {
    if (x % PAGE_SIZE !== 0) throw new GpuVmError('EINVAL', `${name} = 0x${x.toString(16)} is not a multiple of 0x1000`);
    return x / PAGE_SIZE;
  }
  if ((x & 0xfffn) !== 0n) throw new GpuVmError('EINVAL', `${name} = 0x${x.toString(16)} is not a multiple of 0x1000`);
  return Number(x >> 12n);
}

/** The u64 value of an argument, exactly (bigint). */
export function u64Big(v: unknown, name: string, big: boolean): bigint {
  const x = u64(v, name, big);
  return typeof x === 'bigint' ? x : BigInt(x);
}

/**
 * An `<addr> <len>` interval as pages [start, end): both multiples of 0x1000,
 * len > 0, addr + len <= 2^64 (in number mode <= 2^53). EINVAL otherwise.
 */
export function interval(addr: unknown, len: unknown, big: boolean, what: string): [number, number] {
  const s = alignedPage(addr, `${what}: addr`, big);
  const n = alignedPage(len, `${what}: len`, big);
  if (n === 0) throw new GpuVmError('EINVAL', `${what}: len must not be 0`);
  if (s + n > PAGES_U64) throw new GpuVmError('EINVAL', `${what}: addr + len is above 2^64`);
  if (!big && (s + n) * PAGE_SIZE > 2 ** 53) {
    throw new RangeError(`${what}: addr + len is above 2^53; use { bigint: true }`);
  }
  return [s, s + n];
}

/** Byte address of page p in the caller's mode. */
export function addrOf(p: number, big: boolean): U64 {
  return big ? BigInt(p) << 12n : p * PAGE_SIZE;
}

/** '0x…' of page p's byte address, exact for every page of the u64 space. */
export function hexPage(p: number): string {
  return p < 2 ** 41 ? '0x' + (p * PAGE_SIZE).toString(16) : '0x' + (BigInt(p) << 12n).toString(16);
}

/** Reads an optional boolean option. */
export function optBool(v: unknown, name: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${describe(v)}`);
  return v;
}

/** Reads the options argument of a call (undefined means none). */
export function optionsObject(v: unknown, name: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object') throw new TypeError(`${name} must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}
