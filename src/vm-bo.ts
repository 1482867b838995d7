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
import { Errno, IO, VA_WORDS, VAS_PER_CHUNK, ioOf } from './backend/engine.js';
import { GpuVmError } from './errors.js';
import type { GpuVa } from './gpu-va.js';
import type { GpuVm as Vm } from './gpuvm.js';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type GpuVm = Vm<any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyVmBo = VmBo<any>;
import type { OpList } from './ops.js';
import { describe, hex, type U64 } from './u64.js';
import { vmContext, type VmContext } from './vm-context.js';
import { LIST_EVICT, type VmBoLink } from './vm-bo-list.js';

let nextBoId = 1;

export interface BoOptions {
  /** Size in bytes (informational; the VA manager never checks it). */
  size?: number | bigint;
  /** A BO private to one VM shares that VM's reservation object; elsewhere (and when absent) it is external. */
  privateTo?: Vm<any>;
  /** A name for dumps and messages. */
  name?: string;
}

/**
 * The VmBos of one BO, one per VM, in the order they were registered (the
 * GEM's gpuva list). Most BOs live in one VM, and a BO whose only mapping is
 * bound and unbound over and over adds and removes its VmBo every time: in a
 * long-lived Map that costs a table reallocated in V8's old generation at
 * each removal (several hundred ns, and old garbage for the collector). So
 * the oldest entry is held inline and a Map takes only the VMs after it.
 */
export class BoVmBos {
  /** older than every entry of #more; filled only while #more is empty */
  #first: AnyVmBo | null = null;
  #more: Map<GpuVm, AnyVmBo> | null = null;

  get(vm: GpuVm): AnyVmBo | undefined {
    const f = this.#first;
    if (f !== null && f.vm === vm) return f;
    return this.#more === null ? undefined : this.#more.get(vm);
  }

  set(vm: GpuVm, vb: AnyVmBo): void {
    const f = this.#first;
    if (f !== null ? f.vm === vm : this.#more === null || this.#more.size === 0) {
      this.#first = vb;
      return;
    }
    (this.#more ??= new Map()).set(vm, vb);
  }

  delete(vm: GpuVm): void {
    const f = this.#first;
    if (f !== null && f.vm === vm) this.#first = null;
    else if (this.#more !== null) this.#more.delete(vm);
  }

  values(): AnyVmBo[] {
    const out: AnyVmBo[] = this.#first === null ? [] : [this.#first];
    if (this.#more !== null) for (const vb of this.#more.values()) out.push(vb);
    return out;
  }
}

/** The facade's per-BO bookkeeping. */
export interface BoState {
  /** VmBos of this BO, one per VM, in creation order (the GEM's gpuva list) */
  readonly vmBos: BoVmBos;
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
  /** its places in the VM's VmBoLists (extobjs, evicted: it is evicted while it has that link), null when not on one */
  links: [VmBoLink | null, VmBoLink | null];
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
export function makeVmBo<N extends U64>(ctx: VmContext<N>, bo: Bo, handle: number): VmBo<N> {
  return mintVmBo(ctx, bo, handle) as VmBo<N>;
}
let mintVmBo: (ctx: VmContext<any>, bo: Bo, handle: number) => AnyVmBo; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * A buffer object (a GEM object): what mappings map. The VA manager never
 * looks inside it; it knows a BO by its id and tracks, per VM, the VmBo
 * that links the BO's mappings there.
 */
export class Bo {
  // Getters over private fields, not plain properties: the VMs know a BO by
  // its id and treat a private BO by privateTo, so an assignment must not
  // change either.
  readonly #id: number;
  readonly #size: number | bigint;
  readonly #privateTo: Vm<any> | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  readonly #name: string;
  /** A slot for the user's own data. */
  data: unknown = undefined;
  readonly #state: BoState = { vmBos: new BoVmBos(), lastVm: null, lastVmBo: null };

  /** Unique within this copy of the library; the engines know BOs by it. */
  get id(): number {
    return this.#id;
  }
  /** Size in bytes, as given (informational). */
  get size(): number | bigint {
    return this.#size;
  }
  /** The VM whose reservation the BO shares, or null for an external BO. */
  get privateTo(): Vm<any> | null { // eslint-disable-line @typescript-eslint/no-explicit-any
    return this.#privateTo;
  }
  /** A name for dumps and messages (default `bo<id>`). */
  get name(): string {
    return this.#name;
  }

  static {
    isBoFn = (x) => typeof x === 'object' && x !== null && #state in x;
    boStateOf = (bo) => bo.#state;
  }

  /** A new BO with a fresh id; nothing is allocated in any engine. */
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
    if (privateTo !== null && vmContext(privateTo) === undefined) {
      throw new TypeError(`privateTo must be a GpuVm, got ${typeof privateTo}`);
    }
    if (nextBoId > 0xffff_fffe) throw new GpuVmError('ENOSPC', 'out of BO ids');
    this.#id = nextBoId++;
    this.#size = size;
    this.#privateTo = privateTo;
    this.#name = name ?? `bo${this.#id}`;
  }

  /** The BO's VmBos across all VMs (drm_gem_for_each_gpuvm_bo). */
  get vmBos(): VmBo<any>[] { // eslint-disable-line @typescript-eslint/no-explicit-any
    return this.#state.vmBos.values();
  }

  /** Whether the BO is an external object for `vm` (drm_gpuvm_is_extobj). */
  external(vm: Vm<any>): boolean {
    return this.privateTo !== vm;
  }

  /** JSON: id, name, size (a decimal string) and the VM it is private to, by name. */
  toJSON(): { id: number; name: string; size: string; privateTo: string | null } {
    return { id: this.id, name: this.name, size: this.size.toString(), privateTo: this.privateTo?.name ?? null };
  }

  /** `Bo bo1 (0x10000 bytes)`. */
  toString(): string {
    return `Bo ${this.name} (${hex(this.size)} bytes${this.privateTo === null ? '' : `, private to ${this.privateTo.name}`})`;
  }

  /** console.log shows the BO, and nothing internal. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}


/**
 * The unique pair of one VM and one BO (drm_gpuvm_bo): it holds the BO's
 * mappings in that VM (in link order) and is what a driver keeps per-VM
 * state of a BO in. Get one with `vm.obtainBo(bo)` (created if needed, +1
 * reference) or `vm.findBo(bo)`; `VmBo.create` + `vm.obtainPrealloc` for the
 * no-allocation-later pattern. Every linked mapping holds a reference; the
 * last `put()` (or unlink) destroys it, after which using it is EINVAL.
 *
 * @typeParam N - `number` or `bigint`, as the VM's `bigint` option chose.
 */
export class VmBo<N extends U64 = number> {
  /** A slot for the user's own data (drivers embed per-VM x BO state here). */
  data: unknown = undefined;
  readonly #ctx: VmContext<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- keeps VmBo<N> covariant
  readonly #bo: Bo;
  readonly #h: number;
  readonly #state: VmBoState = { live: true, registered: false, links: [null, null] };

  static {
    isVmBoFn = (x) => typeof x === 'object' && x !== null && #h in x;
    vmBoStateOf = (vb) => vb.#state;
    vmBoHandleOf = (vb) => vb.#h;
    mintVmBo = (ctx, bo, handle) => new VmBo(MINT, ctx, bo, handle);
  }

  /** VmBos come from vm.obtainBo / VmBo.create. */
  private constructor(mint: symbol, ctx: VmContext<N>, bo: Bo, handle: number) {
    if (mint !== MINT) throw new TypeError('VmBo objects come from vm.obtainBo(bo) or VmBo.create(vm, bo), not new VmBo()');
    this.#ctx = ctx;
    this.#bo = bo;
    this.#h = handle;
  }

  /**
   * A pre-allocated VmBo for (vm, bo) that nobody can find yet (drm_gpuvm_bo_create):
   * hand it to vm.obtainPrealloc() where allocating is not wanted.
   */
  static create<M extends U64>(vm: Vm<M>, bo: Bo): VmBo<M> {
    const ctx = vmContext<M>(vm);
    if (ctx === undefined) throw new TypeError(`VmBo.create: vm must be a GpuVm, got ${describe(vm)}`);
    return ctx.createVmBo(bo, false);
  }

  /** The VM of the pair. */
  get vm(): Vm<N> {
    return this.#ctx.vm;
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
    return this.#info('VmBo.refcount').refcount;
  }

  /** +1 reference. */
  get(): this {
    const ctx = this.#ctx;
    ctx.checkVmBo(this, 'VmBo.get');
    const r = ctx.E.vmboGet(ctx.h, this.#h);
    if (r < 0) throw ctx.fail(r, 'VmBo.get');
    return this;
  }

  /**
   * -1 reference; returns true when that destroyed it. Dropping a reference
   * that a linked mapping holds (a put beyond those taken with get/obtain) is
   * EINVAL.
   */
  put(): boolean {
    const ctx = this.#ctx;
    ctx.checkVmBo(this, 'VmBo.put');
    const r = ctx.E.vmboPut(ctx.h, this.#h);
    if (r < 0) {
      if (r === -Errno.EINVAL) {
        const { refcount, mappings } = this.#info('VmBo.put');
        throw new GpuVmError(
          'EINVAL',
          `VmBo.put: the VmBo of ${this.#bo.name} has no reference left to drop: its ${refcount} are held by ` +
            `${mappings} linked mapping(s) and the engine (a put without a matching get/obtain)`,
        );
      }
      throw ctx.fail(r, 'VmBo.put');
    }
    if (r === 0) {
      ctx.forget(this);
      return true;
    }
    return false;
  }

  #info(what: string): { refcount: number; mappings: number } {
    const ctx = this.#ctx;
    ctx.checkVmBo(this, what);
    const r = ctx.E.vmboInfo(ctx.h, this.#h);
    if (r < 0) throw ctx.fail(r, what);
    const io = ioOf(ctx.E);
    return { refcount: io[IO.OUT_INFO], mappings: io[IO.OUT_INFO + 1] };
  }

  /** Its mappings in link order (drm_gpuvm_bo_for_each_va). */
  mappings(): GpuVa<N>[] {
    const ctx = this.#ctx;
    ctx.checkVmBo(this, 'VmBo.mappings');
    const E = ctx.E;
    const out: GpuVa<N>[] = [];
    let after = 0;
    for (;;) {
      const n = E.vmboMappings(ctx.h, this.#h, after, VAS_PER_CHUNK);
      if (n < 0) throw ctx.fail(n, 'VmBo.mappings');
      const io = ioOf(E);
      for (let i = 0; i < n; i++) out.push(ctx.vaFromRecord(io, IO.DATA + i * VA_WORDS));
      if (n < VAS_PER_CHUNK) return out;
      after = io[IO.DATA + (n - 1) * VA_WORDS];
    }
  }

  /** UNMAP ops for all its mappings, in link order (drm_gpuvm_bo_unmap_ops_create). */
  unmapOps(): OpList<N> {
    const ctx = this.#ctx;
    ctx.checkVmBo(this, 'VmBo.unmapOps');
    const n = ctx.E.vmboUnmapOps(ctx.h, this.#h);
    if (n < 0) throw ctx.fail(n, 'VmBo.unmapOps');
    return ctx.takeList(n, false);
  }

  /** Whether it is on the VM's evict list. */
  get evicted(): boolean {
    return this.#state.links[LIST_EVICT] !== null;
  }

  /** Puts it on (or takes it off) the VM's evict list (drm_gpuvm_bo_evict). */
  evict(on: boolean): void {
    const ctx = this.#ctx;
    ctx.checkVmBo(this, 'VmBo.evict');
    if (typeof on !== 'boolean') throw new TypeError(`evict: expected a boolean, got ${describe(on)}`);
    if (on) ctx.evictList.add(this);
    else ctx.evictList.delete(this);
  }

  /** JSON: the BO by id, the VM by name, and whether the pair still exists. */
  toJSON(): { bo: number; vm: string; live: boolean } {
    return { bo: this.#bo.id, vm: this.#ctx.name, live: this.#state.live };
  }

  /** `VmBo bo1 in ctx0`. */
  toString(): string {
    return `VmBo ${this.#bo.name} in ${this.#ctx.name}${this.#state.live ? '' : ' (destroyed)'}`;
  }

  /** console.log shows the pair, and nothing internal. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}
