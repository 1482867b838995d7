/**
 * Bo (a GEM buffer object) and VmBo (drm_gpuvm_bo, the unique VM x BO pair).
 *
 * A VmBo's refcount and its list of mappings live in the engine (they change
 * on every bind); the facade keeps the object model: a Bo's VmBos across VMs,
 * the VM's extobj and evict lists, and use-after-put detection. That state is
 * private: only the facade's own modules reach it (through the functions
 * below, which the package does not export), so user code can neither forge a
 * Bo or VmBo nor redirect one to another engine record.
 */
import { GpuVmError } from './errors.js';
import type { GpuVa } from './gpu-va.js';
import type { GpuVm as Vm } from './gpuvm.js';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type GpuVm = Vm<any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyVmBo = VmBo<any>;
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

/** The facade's per-BO bookkeeping. */
export interface BoState {
  /** VmBos of this BO, one per VM, in creation order (the GEM's gpuva list) */
  readonly vmBos: Map<GpuVm, AnyVmBo>;
  /** the VM and VmBo of the last bind of this BO (bind's fast path) */
  lastVm: GpuVm | null;
  lastVmBo: AnyVmBo | null;
}

/** The facade's per-VmBo bookkeeping. */
export interface VmBoState {
  /** false once destroyed */
  live: boolean;
  /** true once in the BO's list (obtain / obtainPrealloc) */
  registered: boolean;
  evicted: boolean;
}

let isBoFn: (x: unknown) => boolean;
let boStateOf: (bo: Bo) => BoState;
let isVmBoFn: (x: unknown) => boolean;
let vmBoStateOf: (vb: AnyVmBo) => VmBoState;
let vmBoHandleOf: (vb: AnyVmBo) => number;

/** Whether `x` is a Bo made by `new Bo()` (a brand check: proxies and forgeries fail it). */
export function isBo(x: unknown): x is Bo {
  return isBoFn(x);
}
export function boState(bo: Bo): BoState {
  return boStateOf(bo);
}
/** Whether `x` is a VmBo the facade made. */
export function isVmBo(x: unknown): x is AnyVmBo {
  return isVmBoFn(x);
}
export function vmBoState(vb: AnyVmBo): VmBoState {
  return vmBoStateOf(vb);
}
/** The engine handle of a VmBo. */
export function vmBoHandle(vb: AnyVmBo): number {
  return vmBoHandleOf(vb);
}
const MINT: unique symbol = Symbol('VmBo');
/** A new VmBo view of an engine VmBo (the facade's only way to make one). */
export function makeVmBo<N extends U64>(vm: Vm<N>, bo: Bo, handle: number): VmBo<N> {
  return new VmBo<N>(MINT, vm, bo, handle);
}

export class Bo {
  /** Unique within this copy of the library; the engines know BOs by it. */
  readonly id: number;
  readonly size: number | bigint;
  readonly privateTo: GpuVm | null;
  readonly name: string;
  /** A slot for the user's own data. */
  data: unknown = undefined;
  readonly #state: BoState = { vmBos: new Map(), lastVm: null, lastVmBo: null };

  static {
    isBoFn = (x) => typeof x === 'object' && x !== null && #state in x;
    boStateOf = (bo) => bo.#state;
  }

  constructor(options: BoOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`Bo options must be an object, got ${options === null ? 'null' : typeof options}`);
    }
    // each option is read once: a getter cannot answer differently to the check and the use
    const size = options.size ?? 0;
    const privateTo = options.privateTo ?? null;
    const name = options.name;
    if (typeof size !== 'number' && typeof size !== 'bigint') {
      throw new TypeError(`size must be a number or a bigint, got ${typeof size}`);
    }
    if (size < 0 || (typeof size === 'number' && !Number.isSafeInteger(size))) {
      throw new RangeError(`size must be a non-negative integer, got ${size}`);
    }
    if (name !== undefined && typeof name !== 'string') throw new TypeError(`name must be a string, got ${typeof name}`);
    if (privateTo !== null && !isGpuVmLike(privateTo)) {
      throw new TypeError(`privateTo must be a GpuVm, got ${typeof privateTo}`);
    }
    if (nextBoId > 0xffff_fffe) throw new GpuVmError('ENOSPC', 'out of BO ids');
    this.id = nextBoId++;
    this.size = size;
    this.privateTo = privateTo;
    this.name = name ?? `bo${this.id}`;
  }

  /** The BO's VmBos across all VMs (drm_gem_for_each_gpuvm_bo). */
  get vmBos(): VmBo<any>[] { // eslint-disable-line @typescript-eslint/no-explicit-any
    return [...this.#state.vmBos.values()];
  }

  /** Whether the BO is an external object for `vm` (drm_gpuvm_is_extobj). */
  external(vm: GpuVm): boolean {
    return this.privateTo !== vm;
  }
}

/** A GpuVm check without importing gpuvm.ts (it imports this file). */
let isGpuVmLike: (x: unknown) => boolean = (x) => typeof x === 'object' && x !== null;
/** gpuvm.ts installs the real brand check. */
export function setGpuVmCheck(f: (x: unknown) => boolean): void {
  isGpuVmLike = f;
}

export class VmBo<N extends U64 = number> {
  /** A slot for the user's own data (drivers embed per-VM x BO state here). */
  data: unknown = undefined;
  readonly #vm: Vm<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- keeps VmBo<N> covariant
  readonly #bo: Bo;
  readonly #h: number;
  readonly #state: VmBoState = { live: true, registered: false, evicted: false };

  static {
    isVmBoFn = (x) => typeof x === 'object' && x !== null && #h in x;
    vmBoStateOf = (vb) => vb.#state;
    vmBoHandleOf = (vb) => vb.#h;
  }

  /** @internal use vm.obtainBo / VmBo.create */
  constructor(mint: symbol, vm: Vm<N>, bo: Bo, handle: number) {
    if (mint !== MINT) throw new TypeError('VmBo objects come from vm.obtainBo(bo) or VmBo.create(vm, bo), not new VmBo()');
    this.#vm = vm;
    this.#bo = bo;
    this.#h = handle;
  }

  /**
   * A pre-allocated VmBo for (vm, bo) that nobody can find yet (drm_gpuvm_bo_create):
   * hand it to vm.obtainPrealloc() where allocating is not wanted.
   */
  static create<M extends U64>(vm: Vm<M>, bo: Bo): VmBo<M> {
    if (!isGpuVmLike(vm)) throw new TypeError(`VmBo.create: vm must be a GpuVm, got ${vm === null ? 'null' : typeof vm}`);
    return vm._createVmBo(bo, false) as VmBo<M>;
  }

  /** The VM of the pair. */
  get vm(): Vm<N> {
    return this.#vm;
  }

  /** The BO of the pair. */
  get bo(): Bo {
    return this.#bo;
  }

  /** Whether it still exists (not destroyed by its last put). */
  get live(): boolean {
    return this.#state.live;
  }

  /** References: linked mappings plus the holders of get/obtain. */
  get refcount(): number {
    return this.#vm._vmBoInfo(this).refcount;
  }

  /** +1 reference. */
  get(): this {
    this.#vm._vmBoGet(this);
    return this;
  }

  /**
   * -1 reference; returns true when that destroyed it. Dropping a reference
   * that a linked mapping holds (a put beyond those taken with get/obtain) is
   * EINVAL.
   */
  put(): boolean {
    return this.#vm._vmBoPut(this);
  }

  /** Its mappings in link order (drm_gpuvm_bo_for_each_va). */
  mappings(): GpuVa<N>[] {
    return this.#vm._vmBoMappings(this);
  }

  /** UNMAP ops for all its mappings, in link order (drm_gpuvm_bo_unmap_ops_create). */
  unmapOps(): OpList<N> {
    return this.#vm._vmBoUnmapOps(this);
  }

  /** Whether it is on the VM's evict list. */
  get evicted(): boolean {
    return this.#state.evicted;
  }

  /** Puts it on (or takes it off) the VM's evict list (drm_gpuvm_bo_evict). */
  evict(on: boolean): void {
    this.#vm._vmBoEvict(this, on);
  }

  toString(): string {
    return `VmBo ${this.#bo.name} in ${this.#vm.name}${this.#state.live ? '' : ' (destroyed)'}`;
  }

  /** console.log shows the pair, and nothing internal. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}
