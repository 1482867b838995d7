/**
 * Bo (a GEM buffer object) and VmBo (drm_gpuvm_bo, the unique VM x BO pair).
 *
 * A VmBo's refcount and its list of mappings live in the engine (they change
 * on every bind); the facade keeps the object model: a Bo's VmBos across VMs,
 * the VM's extobj and evict lists, and use-after-put detection.
 */
import { GpuVmError } from './errors.js';
import type { GpuVa } from './gpu-va.js';
import type { GpuVm as Vm } from './gpuvm.js';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type GpuVm = Vm<any>;
import type { OpList } from './ops.js';
import type { U64 } from './u64.js';

let nextBoId = 1;

export interface BoOptions {
  /** Size in bytes (informational; the VA manager never checks it). */
  size?: number | bigint;
  /** A BO private to one VM shares that VM's reservation object; elsewhere (and when absent) it is external. */
  privateTo?: GpuVm;
  /** A name for dumps and messages. */
  name?: string;
}

export class Bo {
  /** Process-unique id; the engines know BOs by it. */
  readonly id: number;
  readonly size: number | bigint;
  readonly privateTo: GpuVm | null;
  readonly name: string;
  /** @internal VmBos of this BO, one per VM, in creation order (the GEM's gpuva list). */
  readonly _vmBos = new Map<GpuVm, VmBo<any>>();
  /** @internal the VM and VmBo of the last bind of this BO (bind's fast path) */
  _lastVm: GpuVm | null = null;
  /** @internal */
  _lastVmBo: VmBo<any> | null = null;
  /** A slot for the user's own data. */
  data: unknown = undefined;

  constructor(options: BoOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`Bo options must be an object, got ${options === null ? 'null' : typeof options}`);
    }
    const size = options.size ?? 0;
    if (typeof size !== 'number' && typeof size !== 'bigint') {
      throw new TypeError(`size must be a number or a bigint, got ${typeof size}`);
    }
    if (size < 0 || (typeof size === 'number' && !Number.isSafeInteger(size))) {
      throw new RangeError(`size must be a non-negative integer, got ${size}`);
    }
    if (nextBoId > 0xffff_fffe) throw new GpuVmError('ENOSPC', 'out of BO ids');
    this.id = nextBoId++;
    this.size = size;
    this.privateTo = options.privateTo ?? null;
    this.name = options.name ?? `bo${this.id}`;
  }

  /** The BO's VmBos across all VMs (drm_gem_for_each_gpuvm_bo). */
  get vmBos(): VmBo<any>[] {
    return [...this._vmBos.values()];
  }

  /** Whether the BO is an external object for `vm` (drm_gpuvm_is_extobj). */
  external(vm: GpuVm): boolean {
    return this.privateTo !== vm;
  }
}

export class VmBo<N extends U64 = number> {
  /** @internal false once destroyed */
  _live = true;
  /** @internal true once in the BO's list (obtain / obtainPrealloc) */
  _registered = false;
  /** @internal */
  _evicted = false;
  /** A slot for the user's own data (drivers embed per-VM x BO state here). */
  data: unknown = undefined;

  /** @internal use vm.obtainBo / VmBo.create */
  constructor(
    readonly vm: Vm<N>,
    readonly bo: Bo,
    /** @internal engine handle */ readonly handle: number,
  ) {}

  /**
   * A pre-allocated VmBo for (vm, bo) that nobody can find yet (drm_gpuvm_bo_create):
   * hand it to vm.obtainPrealloc() where allocating is not wanted.
   */
  static create<M extends U64>(vm: Vm<M>, bo: Bo): VmBo<M> {
    return vm._createVmBo(bo, false) as VmBo<M>;
  }

  /** Whether it still exists (not destroyed by its last put). */
  get live(): boolean {
    return this._live;
  }

  /** References: linked mappings plus the holders of get/obtain. */
  get refcount(): number {
    return this.vm._vmBoInfo(this).refcount;
  }

  /** +1 reference. */
  get(): this {
    this.vm._vmBoGet(this);
    return this;
  }

  /** -1 reference; returns true when that destroyed it. */
  put(): boolean {
    return this.vm._vmBoPut(this);
  }

  /** Its mappings in link order (drm_gpuvm_bo_for_each_va). */
  mappings(): GpuVa<N>[] {
    return this.vm._vmBoMappings(this);
  }

  /** UNMAP ops for all its mappings, in link order (drm_gpuvm_bo_unmap_ops_create). */
  unmapOps(): OpList<N> {
    return this.vm._vmBoUnmapOps(this);
  }

  /** Whether it is on the VM's evict list. */
  get evicted(): boolean {
    return this._evicted;
  }

  /** Puts it on (or takes it off) the VM's evict list (drm_gpuvm_bo_evict). */
  evict(on: boolean): void {
    this.vm._vmBoEvict(this, on);
  }
}
