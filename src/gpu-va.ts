/**
 * GpuVa (drm_gpuva): one mapping [addr, addr+range) -> (bo, offset).
 *
 * The engine owns the record; a GpuVa is a lazily created view of it, keyed by
 * (handle, serial). Geometry never changes for a mapping (a split creates new
 * mappings), so addr/range/bo/offset are read-only snapshots; flags, the VmBo
 * link and liveness are read from the engine. The engine handle is private:
 * only the VM that made a GpuVa can name its engine record, so neither a
 * forged object nor a modified one can reach another mapping.
 */
import { IO, VA_ATTR_INSERTED, ioOf } from './backend/engine.js';
import { GpuVmError } from './errors.js';
import type { GpuVm } from './gpuvm.js';
import { describe, hex, type U64 } from './u64.js';
import { vmBoHandle, type Bo, type VmBo } from './vm-bo.js';
import type { VmContext } from './vm-context.js';

const D = IO.DATA;
/** Only the facade holds this: user code cannot construct a GpuVa. */
const MINT: unique symbol = Symbol('GpuVa');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyVa = GpuVa<any>;
let isVa: (x: unknown) => boolean;
let handleOf: (va: AnyVa) => number;
let serialOf: (va: AnyVa) => number;

/** Whether `x` is a GpuVa the facade made (a brand check: proxies and forgeries fail it). */
export function isGpuVa(x: unknown): x is AnyVa {
  return isVa(x);
}
/** The engine handle of a mapping view. */
export function vaHandle(va: AnyVa): number {
  return handleOf(va);
}
/** The engine serial of a mapping view: tells a live mapping from a reused handle. */
export function vaSerial(va: AnyVa): number {
  return serialOf(va);
}
/** A new view of an engine mapping record (the facade's only way to make one). */
export function makeGpuVa<N extends U64>(ctx: VmContext<N>, h: number, serial: number, addr: N, range: N, bo: Bo | null, offset: N, kernel: boolean): GpuVa<N> {
  return mintVa(ctx, h, serial, addr, range, bo, offset, kernel) as GpuVa<N>;
}
let mintVa: (ctx: VmContext<any>, h: number, serial: number, addr: U64, range: U64, bo: Bo | null, offset: U64, kernel: boolean) => AnyVa; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What the engine holds of a live mapping beyond its geometry. */
interface VaState {
  flags: number;
  vmBo: number;
  inserted: boolean;
}

/** The engine's view of a mapping, or null when it is gone (or its VM is). */
export function readVa(ctx: VmContext, va: AnyVa): VaState | null {
  if (ctx.h === 0) return null;
  const r = ctx.E.vaGet(ctx.h, handleOf(va), serialOf(va));
  if (r <= 0) return null;
  const io = ioOf(ctx.E);
  return { flags: io[D + 3], vmBo: io[D + 10], inserted: (io[D + 11] & VA_ATTR_INSERTED) !== 0 };
}

/**
 * One mapping of a {@link GpuVm}: the range `[addr, addr + range)` mapped to
 * `bo` at `offset` (or to nothing: a BO-less mapping, e.g. a sparse range).
 *
 * GpuVas are made by their VM (lookups, iteration, applied ops), never
 * constructed. The geometry is fixed for the life of the mapping: a split
 * removes it and creates new GpuVas for the pieces. Check {@link GpuVa.live}
 * after changes; a removed mapping's getters of engine state throw EINVAL.
 *
 * @typeParam N - `number` or `bigint`, as the VM's `bigint` option chose.
 */
export class GpuVa<N extends U64 = U64> {
  /** Set while the BO's backing is invalidated (drm_gpuva_invalidate). */
  static readonly INVALIDATED = 1 << 0;
  /** The mapping tracks sparse PTEs. The library gives it no meaning. */
  static readonly SPARSE = 1 << 1;
  /** First driver-defined bit; driver bits are USERBITS << k, up to bit 31. */
  static readonly USERBITS = 1 << 2;

  /** A slot for the user's own data. */
  data: unknown = undefined;

  readonly #ctx: VmContext<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- keeps GpuVa<N> covariant
  readonly #h: number;
  readonly #serial: number;
  readonly #addr: N;
  readonly #range: N;
  readonly #bo: Bo | null;
  readonly #offset: N;
  readonly #kernel: boolean;

  /** GpuVas come from a GpuVm (lookups, iteration, op lists). */
  private constructor(mint: symbol, ctx: VmContext<N>, h: number, serial: number, addr: N, range: N, bo: Bo | null, offset: N, kernel: boolean) {
    if (mint !== MINT) throw new TypeError('GpuVa objects are made by a GpuVm (lookups, iteration, op lists), not constructed');
    this.#ctx = ctx;
    this.#h = h;
    this.#serial = serial;
    this.#addr = addr;
    this.#range = range;
    this.#bo = bo;
    this.#offset = offset;
    this.#kernel = kernel;
  }

  static {
    isVa = (x) => typeof x === 'object' && x !== null && #h in x;
    handleOf = (va) => va.#h;
    serialOf = (va) => va.#serial;
    mintVa = (ctx, h, serial, addr, range, bo, offset, kernel) => new GpuVa(MINT, ctx, h, serial, addr, range, bo, offset, kernel);
  }

  /** The VM the mapping belongs to. */
  get vm(): GpuVm<N> {
    return this.#ctx.vm;
  }

  /** First address of the mapping. */
  get addr(): N {
    return this.#addr;
  }

  /** Length of the mapping in bytes. */
  get range(): N {
    return this.#range;
  }

  /** The mapped BO, or null for a BO-less mapping. */
  get bo(): Bo | null {
    return this.#bo;
  }

  /** Offset into the BO of `addr`. */
  get offset(): N {
    return this.#offset;
  }

  /** The kernel-reserved node of the VM: visible to lookups, never removable. */
  get isKernelNode(): boolean {
    return this.#kernel;
  }

  /** addr + range */
  get end(): N {
    return this.#ctx.add(this.#addr, this.#range);
  }

  /** Whether the engine still holds this mapping (not removed or unmapped). */
  get live(): boolean {
    return readVa(this.#ctx, this) !== null;
  }

  /** Whether it is in the VM's tree (a mapping can be removed but still linked). */
  get inserted(): boolean {
    return readVa(this.#ctx, this)?.inserted ?? false;
  }

  /** The flags word: INVALIDATED, SPARSE and driver bits. EINVAL once the mapping is gone. */
  get flags(): number {
    return this.#require('flags').flags;
  }

  set flags(value: number) {
    const ctx = this.#ctx;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      throw new TypeError(`flags must be an integer, got ${describe(value)}`);
    }
    if (value < 0 || value > 0xffff_ffff) {
      throw new RangeError(`flags must fit 32 bits (INVALIDATED, SPARSE, user bits 2..31), got ${hex(value)}`);
    }
    ctx.alive('GpuVa.flags');
    if (this.#kernel) throw new GpuVmError('EPERM', 'GpuVa.flags: the kernel-reserved node has no flags');
    const r = ctx.E.vaSetFlags(ctx.h, this.#h, this.#serial, value >>> 0);
    if (r < 0) {
      ctx.alive('GpuVa.flags');
      throw new GpuVmError('EINVAL', 'GpuVa.flags: the mapping no longer exists');
    }
  }

  /** Whether INVALIDATED is set. */
  get invalidated(): boolean {
    return (this.flags & GpuVa.INVALIDATED) !== 0;
  }

  /** Whether SPARSE is set. */
  get sparse(): boolean {
    return (this.flags & GpuVa.SPARSE) !== 0;
  }

  /** Sets or clears INVALIDATED. */
  invalidate(on: boolean): void {
    if (typeof on !== 'boolean') throw new TypeError(`invalidate: on must be a boolean, got ${typeof on}`);
    const f = this.flags;
    this.flags = (on ? f | GpuVa.INVALIDATED : f & ~GpuVa.INVALIDATED) >>> 0;
  }

  /** The VmBo this mapping is linked to, or null. */
  get vmBo(): VmBo<N> | null {
    const s = this.#require('vmBo');
    return s.vmBo === 0 ? null : (this.#ctx.vmBoAt[s.vmBo] ?? null);
  }

  /** Links the mapping to a VmBo of the same VM and BO (takes a VmBo reference). */
  link(vmBo: VmBo<N>): void {
    const ctx = this.#ctx;
    ctx.checkVa(this, 'GpuVa.link');
    ctx.checkVmBo(vmBo, 'GpuVa.link');
    ctx.alive('GpuVa.link');
    if (this.#bo === null) return; // a mapping without a BO is never linked (the kernel's no-op)
    if (this.#bo !== vmBo.bo) {
      throw new GpuVmError('EINVAL', `GpuVa.link: the mapping is of ${this.#bo.name}, the VmBo of ${vmBo.bo.name}`);
    }
    const r = ctx.E.vaLink(ctx.h, this.#h, this.#serial, vmBoHandle(vmBo));
    if (r < 0) {
      const s = readVa(ctx, this);
      if (s === null) throw new GpuVmError('EINVAL', 'GpuVa.link: the mapping no longer exists');
      if (s.vmBo !== 0) throw new GpuVmError('EINVAL', 'GpuVa.link: the mapping is already linked');
      throw ctx.fail(r, 'GpuVa.link');
    }
    ctx.mod++;
  }

  /** Unlinks the mapping from its VmBo (drops that reference; may destroy the VmBo). */
  unlink(): void {
    const ctx = this.#ctx;
    const r = ctx.E.vaUnlink(ctx.h, this.#h, this.#serial);
    if (r < 0) {
      ctx.alive('GpuVa.unlink');
      throw new GpuVmError('EINVAL', 'GpuVa.unlink: the mapping no longer exists');
    }
    // An unlinked mapping still names its BO: the VM keeps knowing the BO
    // (as for insert) even if the last VmBo of it goes with this unlink.
    const bo = this.#bo;
    if (bo !== null) {
      ctx.boById.set(bo.id, bo);
      ctx.looseBos.add(bo.id);
    }
    ctx.changed(ioOf(ctx.E));
  }

  #require(what: string): VaState {
    const s = readVa(this.#ctx, this);
    if (s === null) {
      this.#ctx.alive(`GpuVa.${what}`);
      throw new GpuVmError('EINVAL', `GpuVa.${what}: the mapping [${hex(this.#addr)}, ${hex(this.end)}) no longer exists`);
    }
    return s;
  }

  /**
   * JSON: addresses and offset as exact hex strings (`BigInt(s)` reads
   * them back in either mode), the BO by id; `kernel: true` on the kernel node.
   */
  toJSON(): { addr: string; range: string; bo: number | null; offset: string; kernel?: true } {
    return {
      addr: hex(this.#addr),
      range: hex(this.#range),
      bo: this.#bo?.id ?? null,
      offset: hex(this.#offset),
      kernel: this.#kernel || undefined,
    } as { addr: string; range: string; bo: number | null; offset: string; kernel?: true };
  }

  /** `GpuVa [0x200000, 0x203000) -> bo1+0x0`. */
  toString(): string {
    const bo = this.#bo === null ? 'no BO' : `${this.#bo.name}+${hex(this.#offset)}`;
    return `GpuVa [${hex(this.#addr)}, ${hex(this.end)}) -> ${bo}${this.#kernel ? ' (kernel node)' : ''}`;
  }

  /** console.log shows the mapping, in hex, and nothing internal. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}
