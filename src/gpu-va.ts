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
import type { Bo, VmBo } from './vm-bo.js';
import type { GpuVm } from './gpuvm.js';
import type { U64 } from './u64.js';
import { hex } from './u64.js';

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
export function makeGpuVa<N extends U64>(vm: GpuVm<N>, h: number, serial: number, addr: N, range: N, bo: Bo | null, offset: N, kernel: boolean): GpuVa<N> {
  return new GpuVa<N>(MINT, vm, h, serial, addr, range, bo, offset, kernel);
}

export class GpuVa<N extends U64 = U64> {
  /** Set while the BO's backing is invalidated (drm_gpuva_invalidate). */
  static readonly INVALIDATED = 1 << 0;
  /** The mapping tracks sparse PTEs. The library gives it no meaning. */
  static readonly SPARSE = 1 << 1;
  /** First driver-defined bit; driver bits are USERBITS << k, up to bit 31. */
  static readonly USERBITS = 1 << 2;

  /** A slot for the user's own data. */
  data: unknown = undefined;

  readonly #vm: GpuVm<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- keeps GpuVa<N> covariant
  readonly #h: number;
  readonly #serial: number;
  readonly #addr: N;
  readonly #range: N;
  readonly #bo: Bo | null;
  readonly #offset: N;
  readonly #kernel: boolean;

  /** @internal GpuVas come from a GpuVm (lookups, iteration, op lists). */
  constructor(mint: symbol, vm: GpuVm<N>, h: number, serial: number, addr: N, range: N, bo: Bo | null, offset: N, kernel: boolean) {
    if (mint !== MINT) throw new TypeError('GpuVa objects are made by a GpuVm (lookups, iteration, op lists), not constructed');
    this.#vm = vm;
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
  }

  /** The VM the mapping belongs to. */
  get vm(): GpuVm<N> {
    return this.#vm;
  }

  get addr(): N {
    return this.#addr;
  }

  get range(): N {
    return this.#range;
  }

  get bo(): Bo | null {
    return this.#bo;
  }

  get offset(): N {
    return this.#offset;
  }

  /** The kernel-reserved node of the VM: visible to lookups, never removable. */
  get isKernelNode(): boolean {
    return this.#kernel;
  }

  /** addr + range */
  get end(): N {
    return this.#vm._add(this.#addr, this.#range);
  }

  /** Whether the engine still holds this mapping (not removed or unmapped). */
  get live(): boolean {
    return this.#vm._vaRead(this) !== null;
  }

  /** Whether it is in the VM's tree (a mapping can be removed but still linked). */
  get inserted(): boolean {
    return this.#vm._vaRead(this)?.inserted ?? false;
  }

  /** The flags word: INVALIDATED, SPARSE and driver bits. */
  get flags(): number {
    return this.#vm._vaRequire(this, 'flags').flags;
  }

  set flags(value: number) {
    this.#vm._vaSetFlags(this, value);
  }

  get invalidated(): boolean {
    return (this.flags & GpuVa.INVALIDATED) !== 0;
  }

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
    return this.#vm._vaVmBo(this);
  }

  /** Links the mapping to a VmBo of the same VM and BO (takes a VmBo reference). */
  link(vmBo: VmBo<N>): void {
    this.#vm._vaLink(this, vmBo);
  }

  /** Unlinks the mapping from its VmBo (drops that reference; may destroy the VmBo). */
  unlink(): void {
    this.#vm._vaUnlink(this);
  }

  toJSON(): object {
    return {
      addr: this.#addr.toString(),
      range: this.#range.toString(),
      bo: this.#bo?.id ?? null,
      offset: this.#offset.toString(),
      kernel: this.#kernel || undefined,
    };
  }

  toString(): string {
    const bo = this.#bo === null ? 'no BO' : `${this.#bo.name}+${hex(this.#offset)}`;
    return `GpuVa [${hex(this.#addr)}, ${hex(this.end)}) -> ${bo}${this.#kernel ? ' (kernel node)' : ''}`;
  }

  /** console.log shows the mapping, in hex, and nothing internal. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}
