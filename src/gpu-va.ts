/**
 * GpuVa (drm_gpuva): one mapping [addr, addr+range) -> (bo, offset).
 *
 * The engine owns the record; a GpuVa is a lazily created view of it, keyed by
 * (handle, serial). Geometry never changes for a mapping (a split creates new
 * mappings), so addr/range/bo/offset are snapshots; flags, the VmBo link and
 * liveness are read from the engine.
 */
import type { Bo, VmBo } from './vm-bo.js';
import type { GpuVm } from './gpuvm.js';
import type { U64 } from './u64.js';

export class GpuVa<N extends U64 = U64> {
  /** Set while the BO's backing is invalidated (drm_gpuva_invalidate). */
  static readonly INVALIDATED = 1 << 0;
  /** The mapping tracks sparse PTEs. The library gives it no meaning. */
  static readonly SPARSE = 1 << 1;
  /** First driver-defined bit; driver bits are USERBITS << k, up to bit 31. */
  static readonly USERBITS = 1 << 2;

  /** A slot for the user's own data. */
  data: unknown = undefined;

  /** @internal */
  constructor(
    readonly vm: GpuVm<N>,
    /** @internal engine handle */ readonly handle: number,
    /** @internal engine serial: tells a live mapping from a reused handle */ readonly serial: number,
    readonly addr: N,
    readonly range: N,
    readonly bo: Bo | null,
    readonly offset: N,
    /** The kernel-reserved node of the VM (SPEC §1): visible to lookups, never removable. */
    readonly isKernelNode: boolean,
  ) {}

  /** addr + range */
  get end(): N {
    return this.vm._add(this.addr, this.range);
  }

  /** Whether the engine still holds this mapping (not removed or unmapped). */
  get live(): boolean {
    return this.vm._vaRead(this) !== null;
  }

  /** Whether it is in the VM's tree (a mapping can be removed but still linked). */
  get inserted(): boolean {
    return this.vm._vaRead(this)?.inserted ?? false;
  }

  /** The flags word: INVALIDATED, SPARSE and driver bits. */
  get flags(): number {
    return this.vm._vaRequire(this, 'flags').flags;
  }

  set flags(value: number) {
    this.vm._vaSetFlags(this, value);
  }

  get invalidated(): boolean {
    return (this.flags & GpuVa.INVALIDATED) !== 0;
  }

  get sparse(): boolean {
    return (this.flags & GpuVa.SPARSE) !== 0;
  }

  /** Sets or clears INVALIDATED. */
  invalidate(on: boolean): void {
    const f = this.flags;
    this.flags = (on ? f | GpuVa.INVALIDATED : f & ~GpuVa.INVALIDATED) >>> 0;
  }

  /** The VmBo this mapping is linked to, or null. */
  get vmBo(): VmBo<N> | null {
    return this.vm._vaVmBo(this);
  }

  /** Links the mapping to a VmBo of the same VM and BO (takes a VmBo reference). */
  link(vmBo: VmBo<N>): void {
    this.vm._vaLink(this, vmBo);
  }

  /** Unlinks the mapping from its VmBo (drops that reference; may destroy the VmBo). */
  unlink(): void {
    this.vm._vaUnlink(this);
  }

  toJSON(): object {
    return {
      addr: this.addr.toString(),
      range: this.range.toString(),
      bo: this.bo?.id ?? null,
      offset: this.offset.toString(),
      kernel: this.isKernelNode || undefined,
    };
  }
}
