/**
 * GpuVm (drm_gpuvm): one GPU virtual address space.
 *
 * Every public call is one engine call (plus, rarely, one to create or reap a
 * VmBo). Arguments go through the engine's io words; results come back the
 * same way. Validation of types happens here, geometry is validated by the
 * engine; when the engine refuses, the facade works out the message.
 */
import {
  IO,
  OP_HAS_NEXT,
  OP_HAS_PREV,
  OP_KEEP,
  OP_WORDS,
  OPS_PER_CHUNK,
  OpKind,
  TX_INJECT_ERROR,
  TX_PER_CHUNK,
  TX_WORDS,
  TxKind,
  VA_ATTR_INSERTED,
  VA_ATTR_KERNEL,
  VA_WORDS,
  VAS_PER_CHUNK,
  Errno,
  type Engine,
} from './backend/engine.js';
import { engineFor, type BackendName } from './backend/loader.js';
import { GpuVmError, errnoName } from './errors.js';
import { GpuVa, isGpuVa, makeGpuVa, vaHandle, vaSerial } from './gpu-va.js';
import {
  isOp,
  isOpList,
  listState,
  makeOpList,
  mapOp,
  opMapping,
  prefetchOp,
  remapOp,
  requirePending,
  unmapOp,
  type OpList,
  type MapOp,
  type Op,
  type OpMapping,
  type PrefetchOp,
  type RemapOp,
  type UnmapOp,
} from './ops.js';
import { checkU64, describe, getBig, getNum, hex, putLast, putU64, toBig, TWO32, U64_MAX, type U64 } from './u64.js';
import { Bo, boState, isBo, isVmBo, makeVmBo, setGpuVmCheck, vmBoHandle, vmBoState, type VmBo } from './vm-bo.js';

const A = IO.ARG;
const D = IO.DATA;
/** 2^53: in number mode every address and offset the VM can report stays below it. */
const TWO53 = 2 ** 53;
/**
 * Most queries one findFirstMany call takes: its result is one JS array, and
 * V8 cannot make arrays of much more than 2^27 elements. Split larger batches.
 */
export const MAX_BATCH = 1 << 24;

export interface GpuVmOptions<B extends boolean = boolean> {
  /** A name for messages (default "unknown", like the kernel). */
  name?: string;
  start: U64;
  range: U64;
  /** The kernel-reserved node: visible to lookups, never mapped over or removed. */
  reserve?: { start: U64; range: U64 };
  /** Return bigints and accept all of u64 (default false: numbers, at most 2^53). */
  bigint?: B;
  /** Engine for this VM: 'native' or 'wasm' (default: GPUVM_BACKEND / auto). */
  backend?: BackendName;
}

/** A map request (drm_gpuvm_map_req). */
export interface MapRequest {
  addr: U64;
  range: U64;
  bo?: Bo | null;
  offset?: U64;
}

export type BindEntry =
  | { op: 'map'; addr: U64; range: U64; bo?: Bo | null; offset?: U64; injectError?: boolean }
  | { op: 'unmap'; addr: U64; range: U64; injectError?: boolean }
  | { op: 'prefetch'; addr: U64; range: U64; injectError?: boolean }
  | { op: 'unmapAll'; bo: Bo; injectError?: boolean };

/** Driver steps for callback mode (drm_gpuvm_ops sm_step_*). */
export interface SmSteps<N extends U64 = U64> {
  map?(op: MapOp<N>): void;
  remap(op: RemapOp<N>): void;
  unmap(op: UnmapOp<N>): void;
}

export interface GpuVmStats {
  /** mappings, kernel node excluded */
  mappings: number;
  /** range-tree nodes in use */
  treeNodes: number;
  /** engine bytes held for this VM (tree nodes + mapping records + VmBos) */
  bytes: number;
}

/** A bindArray entry as read (once) from the caller's object. */
interface TxEntry {
  op: 'map' | 'unmap' | 'prefetch' | 'unmapAll';
  addr: U64;
  range: U64;
  bo: Bo | null;
  offset: U64;
  injectError: boolean;
}

/** Step functions as read once from the caller's object. */
interface Steps<N extends U64> {
  map?(op: MapOp<N>): void;
  remap(op: RemapOp<N>): void;
  unmap(op: UnmapOp<N>): void;
}

interface VaState {
  flags: number;
  vmBo: number;
  inserted: boolean;
}

export class GpuVm<N extends U64 = number> implements Iterable<GpuVa<N>> {
  static {
    setGpuVmCheck((x) => x instanceof GpuVm);
  }

  readonly name: string;
  /** whether results are bigints */
  readonly bigint: boolean;
  /** the engine in use: 'native' or 'wasm' */
  readonly backend: BackendName;
  readonly start: N;
  readonly range: N;
  /** start + range */
  readonly end: N;

  /** @internal */ readonly _E: Engine;
  /** @internal engine handle; 0 once destroyed */ _h: number;
  /** @internal bumped by every change, so iteration can notice */ _mod = 0;
  /** @internal bumped whenever the engine's pending list is replaced */ _listGen = 0;
  /** @internal */ private readonly vaCache = new Map<number, GpuVa<N>>();
  /** @internal VmBos of this VM by engine handle */ private readonly vmBoByHandle = new Map<number, VmBo<N>>();
  /** @internal BOs the engine may name, by id */ private readonly boById = new Map<number, Bo>();
  /** @internal BOs of mappings inserted without a VmBo: kept until the VM goes */ private readonly looseBos = new Set<number>();
  private readonly extobjSet = new Set<VmBo<N>>();
  private readonly evictSet = new Set<VmBo<N>>();
  private readonly startB: bigint;
  private readonly endB: bigint;
  private readonly reserveB: { start: bigint; end: bigint } | null;
  private kernelVa: GpuVa<N> | null = null;

  /** Number mode by default; for bigint mode write `new GpuVm<bigint>({ ..., bigint: true })`. */
  constructor(options: GpuVmOptions) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`GpuVm options must be an object, got ${describe(options)}`);
    }
    // Every option is read exactly once, before anything else happens: a getter
    // may run user code (even calls into gpuvm) and must see nothing half done.
    const { name, bigint, backend, start, range, reserve } = options;
    let rStart: unknown = 0;
    let rRange: unknown = 0;
    if (reserve !== undefined) {
      if (reserve === null || typeof reserve !== 'object') {
        throw new TypeError(`reserve must be an object { start, range }, got ${describe(reserve)}`);
      }
      rStart = reserve.start;
      rRange = reserve.range;
    }
    if (bigint !== undefined && typeof bigint !== 'boolean') {
      throw new TypeError(`bigint must be a boolean, got ${describe(bigint)}`);
    }
    if (name !== undefined && typeof name !== 'string') {
      throw new TypeError(`name must be a string, got ${describe(name)}`);
    }
    const big = bigint === true;
    checkU64(start, 'start', big);
    checkU64(range, 'range', big);
    if (reserve !== undefined) {
      checkU64(rStart, 'reserve.start', big);
      checkU64(rRange, 'reserve.range', big);
    }
    this.name = name ?? 'unknown';
    this.bigint = big;
    this.startB = toBig(start);
    this.endB = this.startB + toBig(range);
    if (!big && this.endB > 2n ** 53n) {
      throw new RangeError(
        `the VM [${hex(this.startB)}, ${hex(this.endB)}) reaches above 2^53: create it with { bigint: true }`,
      );
    }
    const rs = toBig(rStart as U64);
    const rr = toBig(rRange as U64);
    const E = engineFor(backend); // checks `backend` as every class does
    this._E = E;
    this.backend = E.name;
    const io = E.io();
    putU64(io, A + 0, start, 'start', big);
    putU64(io, A + 2, range, 'range', big);
    putU64(io, A + 4, rs, 'reserve.start', true);
    putU64(io, A + 6, rr, 'reserve.range', true);
    const h = E.vmCreate();
    if (h <= 0) {
      throw new GpuVmError(errnoName(h < 0 ? h : -Errno.EINVAL), this.explainInit(this.startB, toBig(range), rs, rr));
    }
    // nothing below can throw: the engine VM is never left without its object
    this._h = h;
    this.reserveB = rr !== 0n ? { start: rs, end: rs + rr } : null;
    this.start = this.fromBig(this.startB);
    this.range = this.fromBig(toBig(range));
    this.end = this.fromBig(this.endB);
  }

  // ---- numbers -------------------------------------------------------------

  private fromBig(v: bigint): N {
    return (this.bigint ? v : Number(v)) as N;
  }

  /** @internal reads a u64 result in this VM's number mode */
  _u(io: Uint32Array, i: number, name: string): N {
    return (this.bigint ? getBig(io, i) : getNum(io, i, name)) as N;
  }

  /** @internal a + b in this VM's number mode (for values the engine already checked) */
  _add(a: N, b: N): N {
    return (this.bigint ? (a as bigint) + (b as bigint) : (a as number) + (b as number)) as N;
  }

  private put(io: Uint32Array, i: number, v: unknown, name: string): void {
    putU64(io, i, v, name, this.bigint);
  }

  // ---- errors --------------------------------------------------------------

  private explainInit(s: bigint, r: bigint, rs: bigint, rr: bigint): string {
    if (r === 0n) return `range must not be zero (start=${hex(s)})`;
    if (s + r > U64_MAX) return `start + range overflows u64 (start=${hex(s)}, range=${hex(r)})`;
    {
      if (rs + rr > U64_MAX) return `reserve.start + reserve.range overflows u64 (${hex(rs)}, ${hex(rr)})`;
      if (rr !== 0n && (rs < s || rs + rr > s + r)) {
        return `the reserved node [${hex(rs)}, ${hex(rs + rr)}) is not inside the VM [${hex(s)}, ${hex(s + r)})`;
      }
    }
    return `cannot create the VM [${hex(s)}, ${hex(s + r)})`;
  }

  /** Why a range is invalid for this VM (zero, overflow, outside, kernel node). */
  private explainRange(what: string, addr: U64, range: U64, kernel = true): string {
    const a = toBig(addr);
    const r = toBig(range);
    if (r === 0n) return `${what}: range must not be zero (addr=${hex(a)})`;
    if (a + r > U64_MAX) return `${what}: addr + range overflows u64 (addr=${hex(a)}, range=${hex(r)})`;
    if (a < this.startB || a + r > this.endB) {
      return `${what}: [${hex(a)}, ${hex(a + r)}) is not inside the VM [${hex(this.startB)}, ${hex(this.endB)})`;
    }
    const k = this.reserveB;
    if (kernel && k && a < k.end && k.start < a + r) {
      return `${what}: [${hex(a)}, ${hex(a + r)}) overlaps the kernel-reserved node [${hex(k.start)}, ${hex(k.end)})`;
    }
    return `${what}: the engine refused [${hex(a)}, ${hex(a + r)})`;
  }

  /** Turns a negative engine result into the error to throw. */
  private fail(r: number, what: string, addr?: U64, range?: U64, kernel = true): GpuVmError {
    if (this._h === 0) return new GpuVmError('EINVAL', `${what}: the VM ${JSON.stringify(this.name)} was destroyed`);
    const code = errnoName(r);
    if (code === 'EINVAL' && addr !== undefined && range !== undefined) {
      return new GpuVmError(code, this.explainRange(what, addr, range, kernel));
    }
    if (code === 'EBUSY') {
      return new GpuVmError(code, `${what}: an op list of this VM is partly applied; apply or drop it first`);
    }
    if (code === 'EEXIST') {
      const where = addr !== undefined && range !== undefined ? ` [${hex(toBig(addr))}, ${hex(toBig(addr) + toBig(range))})` : '';
      return new GpuVmError(code, `${what}: the range${where} overlaps an existing mapping`);
    }
    return new GpuVmError(code, `${what} failed`);
  }

  private alive(what: string): void {
    if (this._h === 0) throw new GpuVmError('EINVAL', `${what}: the VM ${JSON.stringify(this.name)} was destroyed`);
  }

  // ---- bookkeeping after engine changes -------------------------------------

  /** Releases VmBos the engine destroyed while unlinking mappings (deferred cleanup). */
  private reap(): void {
    const E = this._E;
    for (;;) {
      const n = E.vmboReap(this._h);
      if (n <= 0) return;
      const io = E.io();
      for (let i = 0; i < n; i++) {
        const vb = this.vmBoByHandle.get(io[D + i]);
        if (vb !== undefined) this.forget(vb);
      }
      if (n < IO.DATA_WORDS) return;
    }
  }

  /** Drops a destroyed VmBo from every list. */
  private forget(vb: VmBo<N>): void {
    const st = vmBoState(vb);
    const bs = boState(vb.bo);
    st.live = false;
    if (bs.lastVmBo === vb) {
      bs.lastVm = null;
      bs.lastVmBo = null;
    }
    this.vmBoByHandle.delete(vmBoHandle(vb));
    if (st.registered && bs.vmBos.get(this) === vb) bs.vmBos.delete(this);
    this.extobjSet.delete(vb);
    this.evictSet.delete(vb);
    st.evicted = false;
    const id = vb.bo.id;
    if (!this.looseBos.has(id) && bs.vmBos.get(this) === undefined) this.boById.delete(id);
  }

  /** After every mutating engine call. */
  private changed(io: Uint32Array): void {
    this._mod++;
    if (io[IO.OUT_ZOMBIES] !== 0) this.reap();
  }

  // ---- VmBo plumbing ---------------------------------------------------------

  /** @internal a new VmBo with one reference; registered (findable) or not */
  _createVmBo(bo: Bo, register: boolean): VmBo<N> {
    if (!isBo(bo)) throw new TypeError(`bo must be a Bo, got ${describe(bo)}`);
    this.alive('VmBo.create');
    const h = this._E.vmboCreate(this._h, bo.id);
    if (h <= 0) throw this.fail(h < 0 ? h : -Errno.ENOMEM, 'VmBo.create');
    const vb = makeVmBo<N>(this, bo, h);
    this.vmBoByHandle.set(h, vb);
    this.boById.set(bo.id, bo);
    if (register) this.register(vb);
    return vb;
  }

  private register(vb: VmBo<N>): void {
    vmBoState(vb).registered = true;
    boState(vb.bo).vmBos.set(this, vb);
    if (vb.bo.external(this)) this.extobjSet.add(vb);
  }

  private checkVmBo(vb: unknown, what: string): VmBo<N> {
    if (!isVmBo(vb)) throw new TypeError(`${what}: expected a VmBo, got ${describe(vb)}`);
    if (vb.vm !== (this as GpuVm<any>)) throw new GpuVmError('EINVAL', `${what}: the VmBo belongs to another VM`);
    if (!vmBoState(vb).live) throw new GpuVmError('EINVAL', `${what}: the VmBo of ${vb.bo.name} was already destroyed (use after put)`);
    return vb as VmBo<N>;
  }

  /** The unique VmBo for (this VM, bo), created if needed; +1 reference (drm_gpuvm_bo_obtain). */
  obtainBo(bo: Bo): VmBo<N> {
    if (!isBo(bo)) throw new TypeError(`obtainBo: bo must be a Bo, got ${describe(bo)}`);
    this.alive('obtainBo');
    const have = boState(bo).vmBos.get(this);
    if (have !== undefined) return have.get();
    return this._createVmBo(bo, true);
  }

  /** The VmBo for (this VM, bo) with +1 reference, or null; never creates (drm_gpuvm_bo_find). */
  findBo(bo: Bo): VmBo<N> | null {
    if (!isBo(bo)) throw new TypeError(`findBo: bo must be a Bo, got ${describe(bo)}`);
    this.alive('findBo');
    const have = boState(bo).vmBos.get(this);
    return have === undefined ? null : have.get();
  }

  /**
   * Takes a VmBo made with VmBo.create: returns the existing one for its BO
   * (+1 reference, and `pre` is destroyed), or registers `pre` itself
   * (drm_gpuvm_bo_obtain_prealloc).
   */
  obtainPrealloc(pre: VmBo<N>): VmBo<N> {
    this.checkVmBo(pre, 'obtainPrealloc');
    this.alive('obtainPrealloc');
    if (vmBoState(pre).registered) throw new GpuVmError('EINVAL', 'obtainPrealloc: the VmBo is already obtained');
    const have = boState(pre.bo).vmBos.get(this);
    if (have !== undefined) {
      have.get();
      pre.put();
      return have;
    }
    this.register(pre);
    return pre;
  }

  /** @internal */
  _vmBoGet(vb: VmBo<N>): void {
    this.checkVmBo(vb, 'VmBo.get');
    const r = this._E.vmboGet(this._h, vmBoHandle(vb));
    if (r < 0) throw this.fail(r, 'VmBo.get');
  }

  /** @internal */
  _vmBoPut(vb: VmBo<N>): boolean {
    this.checkVmBo(vb, 'VmBo.put');
    const r = this._E.vmboPut(this._h, vmBoHandle(vb));
    if (r < 0) {
      if (r === -Errno.EINVAL) {
        const { refcount, mappings } = this._vmBoInfo(vb);
        throw new GpuVmError(
          'EINVAL',
          `VmBo.put: the VmBo of ${vb.bo.name} has no reference left to drop: its ${refcount} are held by ` +
            `${mappings} linked mapping(s) and the engine (a put without a matching get/obtain)`,
        );
      }
      throw this.fail(r, 'VmBo.put');
    }
    if (r === 0) {
      this.forget(vb);
      return true;
    }
    return false;
  }

  /** @internal */
  _vmBoInfo(vb: VmBo<N>): { refcount: number; mappings: number } {
    this.checkVmBo(vb, 'VmBo.refcount');
    const r = this._E.vmboInfo(this._h, vmBoHandle(vb));
    if (r < 0) throw this.fail(r, 'VmBo.refcount');
    const io = this._E.io();
    return { refcount: io[IO.OUT_INFO], mappings: io[IO.OUT_INFO + 1] };
  }

  /** @internal */
  _vmBoMappings(vb: VmBo<N>): GpuVa<N>[] {
    this.checkVmBo(vb, 'VmBo.mappings');
    const E = this._E;
    const h = vmBoHandle(vb);
    const out: GpuVa<N>[] = [];
    let after = 0;
    for (;;) {
      const n = E.vmboMappings(this._h, h, after, VAS_PER_CHUNK);
      if (n < 0) throw this.fail(n, 'VmBo.mappings');
      const io = E.io();
      for (let i = 0; i < n; i++) out.push(this.vaFromRecord(io, D + i * VA_WORDS));
      if (n < VAS_PER_CHUNK) return out;
      after = io[D + (n - 1) * VA_WORDS];
    }
  }

  /** @internal */
  _vmBoUnmapOps(vb: VmBo<N>): OpList<N> {
    this.checkVmBo(vb, 'VmBo.unmapOps');
    const n = this._E.vmboUnmapOps(this._h, vmBoHandle(vb));
    if (n < 0) throw this.fail(n, 'VmBo.unmapOps');
    return this.takeList(n, false);
  }

  /** @internal */
  _vmBoEvict(vb: VmBo<N>, on: boolean): void {
    this.checkVmBo(vb, 'VmBo.evict');
    if (typeof on !== 'boolean') throw new TypeError(`evict: expected a boolean, got ${describe(on)}`);
    vmBoState(vb).evicted = on;
    if (on) this.evictSet.add(vb);
    else this.evictSet.delete(vb);
  }

  /** External objects mapped in this VM (drm_gpuvm extobj list), in the order they came. */
  get extobjs(): VmBo<N>[] {
    return [...this.extobjSet];
  }

  /** VmBos on the evict list. */
  get evicted(): VmBo<N>[] {
    return [...this.evictSet];
  }

  /**
   * Calls `fn` for every evicted VmBo (drm_gpuvm_validate); each one `fn`
   * returns from is taken off the evict list. An exception stops the walk and
   * is re-thrown; the ones validated before it stay validated.
   */
  validate(fn: (vmBo: VmBo<N>) => void): void {
    this.alive('validate');
    if (typeof fn !== 'function') throw new TypeError(`validate: fn must be a function, got ${describe(fn)}`);
    for (const vb of [...this.evictSet]) {
      // fn may have put, destroyed or re-evicted anything, even the VM
      if (this._h === 0) return;
      if (!vmBoState(vb).live || !this.evictSet.has(vb)) continue;
      fn(vb);
      if (!this.evictSet.has(vb)) continue;
      vmBoState(vb).evicted = false;
      this.evictSet.delete(vb);
    }
  }

  /** The VmBo a MAP of `bo` links to, creating (and reporting) a temporary one if needed. */
  private vmBoFor(bo: Bo): { vb: VmBo<N>; temp: boolean } {
    const have = boState(bo).vmBos.get(this);
    if (have !== undefined) return { vb: have, temp: false };
    return { vb: this._createVmBo(bo, true), temp: true };
  }

  /** Drops the creation reference of a temporary VmBo (it stays if a mapping links to it). */
  private releaseTemp(vb: VmBo<N>): void {
    const r = this._E.vmboPut(this._h, vmBoHandle(vb));
    if (r === 0) this.forget(vb);
  }

  // ---- GpuVa plumbing ----------------------------------------------------------

  private boOf(id: number): Bo | null {
    if (id === 0) return null;
    const bo = this.boById.get(id);
    if (bo === undefined) throw new GpuVmError('EIO', `engine named BO id ${id} that this VM does not know`);
    return bo;
  }

  /** A GpuVa for a VA record at io[p]. */
  private vaFromRecord(io: Uint32Array, p: number): GpuVa<N> {
    const h = io[p];
    const serial = io[p + 1];
    const have = this.vaCache.get(h);
    if (have !== undefined && vaSerial(have) === serial) return have;
    const va = makeGpuVa<N>(
      this as GpuVm<N>,
      h,
      serial,
      this._u(io, p + 4, 'addr'),
      this._u(io, p + 6, 'range'),
      this.boOf(io[p + 2]),
      this._u(io, p + 8, 'offset'),
      (io[p + 11] & VA_ATTR_KERNEL) !== 0,
    );
    this.vaCache.set(h, va);
    return va;
  }

  /** A GpuVa for the mapping an op record at words[p] names. */
  private vaFromOp(w: Uint32Array, p: number, bo: Bo | null): GpuVa<N> {
    const h = w[p + 1];
    const serial = w[p + 2];
    const have = this.vaCache.get(h);
    if (have !== undefined && vaSerial(have) === serial) return have;
    const va = makeGpuVa<N>(
      this as GpuVm<N>,
      h,
      serial,
      this._u(w, p + 4, 'addr'),
      this._u(w, p + 6, 'range'),
      bo,
      this._u(w, p + 8, 'offset'),
      false,
    );
    this.vaCache.set(h, va);
    return va;
  }

  /** A GpuVa for a mapping just created by an apply. */
  private vaCreated(h: number, serial: number, m: OpMapping<N>): GpuVa<N> {
    const va = makeGpuVa<N>(this as GpuVm<N>, h, serial, m.addr, m.range, m.bo, m.offset, false);
    this.vaCache.set(h, va);
    return va;
  }

  private checkVa(va: unknown, what: string): GpuVa<N> {
    if (!isGpuVa(va)) throw new TypeError(`${what}: expected a GpuVa, got ${describe(va)}`);
    if (va.vm !== (this as GpuVm<any>)) throw new GpuVmError('EINVAL', `${what}: the mapping belongs to another VM`);
    return va as GpuVa<N>;
  }

  /** @internal the engine's view of a mapping, or null when it is gone */
  _vaRead(va: GpuVa<N>): VaState | null {
    if (this._h === 0) return null;
    const r = this._E.vaGet(this._h, vaHandle(va), vaSerial(va));
    if (r <= 0) return null;
    const io = this._E.io();
    return { flags: io[D + 3], vmBo: io[D + 10], inserted: (io[D + 11] & VA_ATTR_INSERTED) !== 0 };
  }

  /** @internal */
  _vaRequire(va: GpuVa<N>, what: string): VaState {
    const s = this._vaRead(va);
    if (s === null) {
      this.alive(`GpuVa.${what}`);
      throw new GpuVmError('EINVAL', `GpuVa.${what}: the mapping [${hex(va.addr)}, ${hex(this._add(va.addr, va.range))}) no longer exists`);
    }
    return s;
  }

  /** @internal */
  _vaSetFlags(va: GpuVa<N>, flags: number): void {
    if (typeof flags !== 'number' || !Number.isInteger(flags)) {
      throw new TypeError(`flags must be an integer, got ${describe(flags)}`);
    }
    if (flags < 0 || flags > 0xffff_ffff) {
      throw new RangeError(`flags must fit 32 bits (INVALIDATED, SPARSE, user bits 2..31), got ${hex(flags)}`);
    }
    this.alive('GpuVa.flags');
    if (va.isKernelNode) throw new GpuVmError('EPERM', 'GpuVa.flags: the kernel-reserved node has no flags');
    const r = this._E.vaSetFlags(this._h, vaHandle(va), vaSerial(va), flags >>> 0);
    if (r < 0) {
      this.alive('GpuVa.flags');
      throw new GpuVmError('EINVAL', 'GpuVa.flags: the mapping no longer exists');
    }
  }

  /** @internal */
  _vaVmBo(va: GpuVa<N>): VmBo<N> | null {
    const s = this._vaRequire(va, 'vmBo');
    return s.vmBo === 0 ? null : (this.vmBoByHandle.get(s.vmBo) ?? null);
  }

  /** @internal */
  _vaLink(va: GpuVa<N>, vb: VmBo<N>): void {
    this.checkVa(va, 'GpuVa.link');
    this.checkVmBo(vb, 'GpuVa.link');
    this.alive('GpuVa.link');
    if (va.bo === null) return; // a mapping without a BO is never linked (the kernel's no-op)
    if (va.bo !== vb.bo) {
      throw new GpuVmError('EINVAL', `GpuVa.link: the mapping is of ${va.bo.name}, the VmBo of ${vb.bo.name}`);
    }
    const r = this._E.vaLink(this._h, vaHandle(va), vaSerial(va), vmBoHandle(vb));
    if (r < 0) {
      const s = this._vaRead(va);
      if (s === null) throw new GpuVmError('EINVAL', 'GpuVa.link: the mapping no longer exists');
      if (s.vmBo !== 0) throw new GpuVmError('EINVAL', 'GpuVa.link: the mapping is already linked');
      throw this.fail(r, 'GpuVa.link');
    }
    this._mod++;
  }

  /** @internal */
  _vaUnlink(va: GpuVa<N>): void {
    this.checkVa(va, 'GpuVa.unlink');
    const r = this._E.vaUnlink(this._h, vaHandle(va), vaSerial(va));
    if (r < 0) {
      this.alive('GpuVa.unlink');
      throw new GpuVmError('EINVAL', 'GpuVa.unlink: the mapping no longer exists');
    }
    // An unlinked mapping still names its BO: the VM keeps knowing the BO
    // (as for insert) even if the last VmBo of it goes with this unlink.
    const bo = va.bo;
    if (bo !== null) {
      this.boById.set(bo.id, bo);
      this.looseBos.add(bo.id);
    }
    this.changed(this._E.io());
  }

  // ---- low-level insert / remove -------------------------------------------------

  /** Inserts a new mapping, not linked to any VmBo (drm_gpuva_insert). */
  insert(m: { addr: U64; range: U64; bo?: Bo | null; offset?: U64; flags?: number }): GpuVa<N> {
    if (m === null || typeof m !== 'object') throw new TypeError(`insert: expected { addr, range, bo?, offset?, flags? }, got ${describe(m)}`);
    // read every field once, check them all, and only then write io
    const { addr, range, offset = 0, flags = 0 } = m;
    const bo = m.bo ?? null;
    if (bo !== null && !isBo(bo)) throw new TypeError(`insert: bo must be a Bo or null, got ${describe(bo)}`);
    if (typeof flags !== 'number' || !Number.isInteger(flags)) throw new TypeError(`insert: flags must be an integer, got ${describe(flags)}`);
    if (flags < 0 || flags > 0xffff_ffff) throw new RangeError(`insert: flags must fit 32 bits, got ${hex(flags)}`);
    this.checkMapping('insert', addr, range, offset);
    this.alive('insert');
    const E = this._E;
    const io = E.io();
    this.put(io, A + 0, addr, 'addr');
    this.put(io, A + 2, range, 'range');
    this.put(io, A + 4, offset, 'offset');
    io[A + 6] = bo === null ? 0 : bo.id;
    io[A + 7] = flags >>> 0;
    const h = E.vaInsert(this._h);
    if (h <= 0) throw this.fail(h, 'insert', addr, range);
    const io2 = E.io();
    if (bo !== null) {
      this.boById.set(bo.id, bo);
      this.looseBos.add(bo.id);
    }
    this._mod++;
    return this.vaCreated(h, io2[IO.OUT_SERIAL], {
      addr: this.fromBig(toBig(addr)),
      range: this.fromBig(toBig(range)),
      bo,
      offset: this.fromBig(toBig(offset)),
    });
  }

  /**
   * Checks the u64s of a mapping request; in number mode also that
   * offset + range stays at or below 2^53, so that every piece a later split
   * makes of it has an offset a number can report exactly.
   */
  private checkMapping(what: string, addr: unknown, range: unknown, offset: unknown, sep = ': '): void {
    const big = this.bigint;
    // the common case, without building messages: three safe non-negative integers
    if (!(isU53(addr) && isU53(range) && isU53(offset))) {
      checkU64(addr, `${what}${sep}addr`, big);
      checkU64(range, `${what}${sep}range`, big);
      checkU64(offset, `${what}${sep}offset`, big);
    }
    if (big) return;
    // both are exact integers <= 2^53 here: TWO53 - range is exact, so is the test
    const over =
      typeof offset === 'number' && typeof range === 'number'
        ? offset > TWO53 - range
        : toBig(offset as U64) + toBig(range as U64) > BigInt(TWO53);
    if (over) {
      throw new RangeError(
        `${what}: offset + range = ${hex(toBig(offset as U64) + toBig(range as U64))} is above 2^53, so a split piece's offset ` +
          'could not be reported exactly; use a VM created with { bigint: true }',
      );
    }
  }

  /** Removes a mapping from the VM (drm_gpuva_remove); it stays linked until unlinked. */
  remove(va: GpuVa<N>): void {
    this.checkVa(va, 'remove');
    // a destroyed VM refuses every call alike, its kernel node included
    this.alive('remove');
    if (va.isKernelNode) throw new GpuVmError('EPERM', 'remove: the kernel-reserved node cannot be removed');
    const r = this._E.vaRemove(this._h, vaHandle(va), vaSerial(va));
    if (r < 0) {
      this.alive('remove');
      if (r === -Errno.EPERM) throw new GpuVmError('EPERM', 'remove: the kernel-reserved node cannot be removed');
      throw new GpuVmError('EINVAL', 'remove: the mapping is not in the VM');
    }
    this.changed(this._E.io());
  }

  // ---- lookups --------------------------------------------------------------------

  /** Writes addr/last of [addr, addr+range) into A0..A3; false when range is 0. */
  private putQuery(io: Uint32Array, addr: U64, range: U64): boolean {
    this.put(io, A + 0, addr, 'addr');
    this.put(io, A + 4, range, 'range');
    if (io[A + 4] === 0 && io[A + 5] === 0) return false;
    putLast(io, A + 2, A + 0, A + 4);
    return true;
  }

  /** The lowest mapping overlapping [addr, addr+range), or null (drm_gpuva_find_first). */
  findFirst(addr: U64, range: U64): GpuVa<N> | null {
    const E = this._E;
    const io = E.io();
    // an empty query finds nothing, but on a destroyed VM it is EINVAL like any other call
    if (!this.putQuery(io, addr, range)) {
      this.alive('findFirst');
      return null;
    }
    const h = E.findFirst(this._h);
    if (h <= 0) {
      if (h < 0) throw this.fail(h, 'findFirst');
      this.alive('findFirst');
      return null;
    }
    return this.vaFromRecord(E.io(), D);
  }

  /** The mapping at exactly [addr, addr+range), or null (drm_gpuva_find). */
  find(addr: U64, range: U64): GpuVa<N> | null {
    const E = this._E;
    const io = E.io();
    if (!this.putQuery(io, addr, range)) {
      this.alive('find');
      return null;
    }
    const a0 = io[A], a1 = io[A + 1], r0 = io[A + 4], r1 = io[A + 5];
    const h = E.findFirst(this._h);
    if (h <= 0) {
      if (h < 0) throw this.fail(h, 'find');
      this.alive('find');
      return null;
    }
    const o = E.io();
    if (o[D + 4] !== a0 || o[D + 5] !== a1 || o[D + 6] !== r0 || o[D + 7] !== r1) return null;
    return this.vaFromRecord(o, D);
  }

  /** Whether [addr, addr+range) holds no mapping (the kernel node counts; drm_gpuvm_interval_empty). */
  isEmpty(addr: U64, range: U64): boolean {
    const E = this._E;
    const io = E.io();
    if (!this.putQuery(io, addr, range)) {
      this.alive('isEmpty');
      return true;
    }
    const h = E.findFirst(this._h);
    if (h < 0) throw this.fail(h, 'isEmpty');
    this.alive('isEmpty');
    return h === 0;
  }

  /** The mapping containing one address, if that address is a valid one-unit range of the VM. */
  private containing(x: bigint, what: string): GpuVa<N> | null {
    this.alive(what);
    if (x < this.startB || x >= this.endB) return null;
    const k = this.reserveB;
    if (k && x >= k.start && x < k.end) return null;
    const E = this._E;
    const io = E.io();
    io[A] = Number(x & 0xffff_ffffn);
    io[A + 1] = Number(x >> 32n);
    io[A + 2] = io[A];
    io[A + 3] = io[A + 1];
    const h = E.findFirst(this._h);
    if (h <= 0) return null;
    return this.vaFromRecord(E.io(), D);
  }

  /** The mapping containing start - 1, or null (drm_gpuva_find_prev). */
  findPrev(start: U64): GpuVa<N> | null {
    const io = this._E.io();
    this.put(io, A, start, 'start');
    this.alive('findPrev');
    const s = toBig(start);
    if (s === 0n) return null;
    return this.containing(s - 1n, 'findPrev');
  }

  /** The mapping containing end, or null (drm_gpuva_find_next). */
  findNext(end: U64): GpuVa<N> | null {
    const io = this._E.io();
    this.put(io, A, end, 'end');
    return this.containing(toBig(end), 'findNext');
  }

  /**
   * Batched findFirst: for every address (and `range`, default 1, i.e. "the
   * mapping containing it"), the lowest overlapping mapping or null. One engine
   * call per 5461 queries; results come back as whole records, so a mapping
   * seen for the first time costs no extra crossing.
   */
  findFirstMany(addrs: ArrayLike<U64>, range: U64 = 1): (GpuVa<N> | null)[] {
    if (addrs === null || typeof addrs !== 'object') {
      throw new TypeError(`findFirstMany: addrs must be an array-like of numbers or bigints, got ${describe(addrs)}`);
    }
    // Every argument is read (and checked) before io is written: an element
    // getter may run user code, even another gpuvm call.
    const n = addrs.length;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
      throw new TypeError(`findFirstMany: addrs.length must be a non-negative integer, got ${describe(n)}`);
    }
    if (n > MAX_BATCH) {
      throw new RangeError(`findFirstMany: at most ${MAX_BATCH} addresses per call, got ${n}; split the batch`);
    }
    const big = this.bigint;
    checkU64(range, 'findFirstMany: range', big);
    const q = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) putU64(q, 2 * i, addrs[i], `addrs[${i}]`, big);
    this.alive('findFirstMany');
    const E = this._E;
    let io = E.io();
    this.put(io, A + 4, range, 'range');
    const r0 = io[A + 4], r1 = io[A + 5];
    const out: (GpuVa<N> | null)[] = new Array(n).fill(null);
    if (r0 === 0 && r1 === 0) return out;
    for (let base = 0; base < n; base += VAS_PER_CHUNK) {
      const m = Math.min(VAS_PER_CHUNK, n - base);
      io = E.io();
      for (let i = 0; i < m; i++) {
        io[A] = q[2 * (base + i)];
        io[A + 1] = q[2 * (base + i) + 1];
        io[A + 4] = r0;
        io[A + 5] = r1;
        putLast(io, A + 2, A, A + 4);
        const p = D + 4 * i;
        io[p] = io[A];
        io[p + 1] = io[A + 1];
        io[p + 2] = io[A + 2];
        io[p + 3] = io[A + 3];
      }
      const found = E.findFirstBatch(this._h, m);
      if (found < 0) throw this.fail(found, 'findFirstMany');
      if (found === 0) continue;
      io = E.io();
      for (let i = 0; i < m; i++) {
        const p = D + VA_WORDS * i;
        if (io[p] !== 0) out[base + i] = this.vaFromRecord(io, p);
      }
    }
    return out;
  }

  /**
   * Mappings overlapping [addr, addr+range) (all of them without arguments),
   * in address order, the kernel node included. Safe against changing the VM
   * while iterating: after a change it continues after the mapping it yielded
   * last (drm_gpuvm_for_each_va_range_safe), and it never goes back: a
   * mapping that now starts below the end of the last one yielded (the loop
   * body replaced it by a larger one) is skipped. Destroying the VM inside the
   * loop ends it with EINVAL.
   */
  *mappings(addr?: U64, range?: U64): IterableIterator<GpuVa<N>> {
    this.alive('mappings');
    const E = this._E;
    let io = E.io();
    let c0: number, c1: number, l0: number, l1: number;
    if (addr === undefined && range === undefined) {
      c0 = c1 = 0;
      l0 = l1 = TWO32 - 1;
    } else {
      if (addr === undefined || range === undefined) throw new TypeError('mappings: pass both addr and range, or neither');
      if (!this.putQuery(io, addr, range)) return;
      c0 = io[A];
      c1 = io[A + 1];
      l0 = io[A + 2];
      l1 = io[A + 3];
    }
    let yielded = false;
    let chunk = 16;
    for (;;) {
      this.alive('mappings');
      io = E.io();
      io[A] = c0;
      io[A + 1] = c1;
      io[A + 2] = l0;
      io[A + 3] = l1;
      const n = E.iterate(this._h, chunk);
      if (n < 0) throw this.fail(n, 'mappings');
      const recs = E.io().slice(D, D + n * VA_WORDS);
      const mod = this._mod;
      let i = 0;
      for (; i < n; i++) {
        if (this._mod !== mod) break;
        const p = i * VA_WORDS;
        // monotonic: nothing that starts below the cursor once something was yielded
        if (yielded && (recs[p + 5] < c1 || (recs[p + 5] === c1 && recs[p + 4] < c0))) continue;
        const va = this.vaFromRecord(recs, p);
        // the cursor moves to this mapping's end
        let e0 = recs[p + 4] + recs[p + 6];
        let e1 = recs[p + 5] + recs[p + 7];
        if (e0 >= TWO32) {
          e0 -= TWO32;
          e1 += 1;
        }
        c0 = e0;
        c1 = e1;
        yielded = true;
        yield va;
        if (this._h === 0) throw new GpuVmError('EINVAL', `mappings: the VM ${JSON.stringify(this.name)} was destroyed while iterating`);
        // past the last address asked for (or the top of u64): done
        if (c1 > l1 || (c1 === l1 && c0 > l0) || c1 >= TWO32) return;
      }
      if (i === n && n < chunk) return;
      if (chunk < VAS_PER_CHUNK) chunk = Math.min(chunk * 4, VAS_PER_CHUNK);
    }
  }

  [Symbol.iterator](): Iterator<GpuVa<N>> {
    return this.mappings();
  }

  /** The kernel-reserved node, or null. */
  get kernelNode(): GpuVa<N> | null {
    this.alive('kernelNode');
    if (this.kernelVa === null && this.reserveB !== null) {
      this.kernelVa = this.kernelNodeLookup(this.reserveB);
    }
    return this.kernelVa;
  }

  private kernelNodeLookup(k: { start: bigint }): GpuVa<N> | null {
    const E = this._E;
    const io = E.io();
    io[A] = Number(k.start & 0xffff_ffffn);
    io[A + 1] = Number(k.start >> 32n);
    io[A + 2] = io[A];
    io[A + 3] = io[A + 1];
    return E.findFirst(this._h) > 0 ? this.vaFromRecord(E.io(), D) : null;
  }

  /** Mappings in the VM, the kernel node excluded. */
  get count(): number {
    this.alive('count');
    return this._E.vmStats(this._h);
  }

  /** Engine-side size of this VM. */
  stats(): GpuVmStats {
    this.alive('stats');
    const E = this._E;
    const n = E.vmStats(this._h);
    const io = E.io();
    return { mappings: n, treeNodes: io[IO.OUT_INFO], bytes: io[IO.OUT_INFO + 1] };
  }

  // ---- split / merge: fused ------------------------------------------------------

  /**
   * Maps [addr, addr+range) to `bo` at `offset` with split/merge, applying
   * the ops at once (sm_map + apply, one engine call). Returns the op count.
   */
  bind(addr: U64, range: U64, bo: Bo | null = null, offset: U64 = 0): number {
    const E = this._E;
    const big = this.bigint;
    let io = E.io();
    putU64(io, A + 0, addr, 'addr', big);
    putU64(io, A + 2, range, 'range', big);
    putU64(io, A + 4, offset, 'offset', big);
    // number mode: every piece a split can make must report its offset exactly
    if (!big && io[A + 3] + io[A + 5] >= 0x1f_ffff) this.checkMapping('bind', addr, range, offset);
    let vmbo = 0;
    let temp: VmBo<N> | null = null;
    if (bo !== null) {
      if (!isBo(bo)) throw new TypeError(`bind: bo must be a Bo or null, got ${describe(bo)}`);
      // most binds name the BO the previous bind of that BO in this VM named
      const bs = boState(bo);
      let vb = bs.lastVm === this ? (bs.lastVmBo as VmBo<N>) : bs.vmBos.get(this);
      if (vb === undefined) {
        this.alive('bind');
        vb = temp = this._createVmBo(bo, true);
        io = E.io(); // a WASM memory that grew has a new buffer; vmboCreate leaves ARG alone
      }
      bs.lastVm = this;
      bs.lastVmBo = vb;
      vmbo = vmBoHandle(vb);
      io[A + 6] = bo.id;
    } else {
      io[A + 6] = 0;
    }
    io[A + 7] = vmbo;
    const r = E.bind(this._h);
    if (temp !== null) this.releaseTemp(temp);
    if (r < 0) throw this.fail(r, 'bind', addr, range);
    this._listGen++;
    this.changed(E.io());
    return r;
  }

  /** Unmaps [addr, addr+range) with split/merge and applies (sm_unmap + apply). Unmapping nothing is success. */
  unbind(addr: U64, range: U64): number {
    const E = this._E;
    const io = E.io();
    putU64(io, A + 0, addr, 'addr', this.bigint);
    putU64(io, A + 2, range, 'range', this.bigint);
    const r = E.unbind(this._h);
    if (r < 0) throw this.fail(r, 'unbind', addr, range);
    this._listGen++;
    this.changed(E.io());
    return r;
  }

  // ---- split / merge: op lists -------------------------------------------------------

  /**
   * Copies the engine's pending list (n ops) into a new OpList. `inData`: the
   * first chunk is already in DATA (list generation); otherwise (a finished
   * transaction) everything is read with opsRead.
   */
  private takeList(n: number, applied: boolean, inData = true): OpList<N> {
    const E = this._E;
    this._listGen++;
    let words: Uint32Array;
    if (n === 0) {
      words = new Uint32Array(0);
    } else if (inData && n <= OPS_PER_CHUNK) {
      const len = n * OP_WORDS;
      words = takeWords(len);
      const io = E.io();
      if (len <= 256) for (let i = 0; i < len; i++) words[i] = io[D + i];
      else words.set(io.subarray(D, D + len));
    } else {
      words = new Uint32Array(n * OP_WORDS);
      for (let from = 0; from < n; ) {
        const got = E.opsRead(this._h, from);
        if (got <= 0) throw new GpuVmError('EIO', `opsRead returned ${got} at ${from} of ${n}`);
        words.set(E.io().subarray(D, D + got * OP_WORDS), from * OP_WORDS);
        from += got;
      }
    }
    // resolve each op's BO now: applying the list may make the VM forget it
    const bos: (Bo | null)[] = new Array(n);
    for (let i = 0; i < n; i++) bos[i] = this.boOf(words[i * OP_WORDS + 3]);
    const list = makeOpList<N>(this as GpuVm<N>, words, this._listGen, applied, bos);
    // replacing an untouched list released its VmBo reference
    const io = E.io();
    if (io[IO.OUT_ZOMBIES] !== 0) this.reap();
    return list;
  }

  /** Reads a map request once (its fields may be getters) and checks it; writes nothing. */
  private readMapReq(req: unknown, what: string): { addr: U64; range: U64; bo: Bo | null; offset: U64 } {
    if (req === null || typeof req !== 'object') throw new TypeError(`${what}: expected { addr, range, bo?, offset? }, got ${describe(req)}`);
    const { addr, range, offset = 0 } = req as MapRequest;
    const bo = (req as MapRequest).bo ?? null;
    if (bo !== null && !isBo(bo)) throw new TypeError(`${what}: bo must be a Bo or null, got ${describe(bo)}`);
    this.checkMapping(what, addr, range, offset);
    return { addr, range, bo, offset };
  }

  /** Split/merge ops for mapping a request (drm_gpuvm_sm_map_ops_create). */
  smMapOps(req: MapRequest): OpList<N> {
    return this.mapList(this.readMapReq(req, 'smMapOps'), 'smMapOps');
  }

  private mapList(req: { addr: U64; range: U64; bo: Bo | null; offset: U64 }, what: string): OpList<N> {
    const { addr, range, bo, offset } = req;
    this.alive(what);
    const E = this._E;
    const vb = bo === null ? null : this.vmBoFor(bo);
    const io = E.io();
    this.put(io, A + 0, addr, 'addr');
    this.put(io, A + 2, range, 'range');
    this.put(io, A + 4, offset, 'offset');
    io[A + 6] = bo === null ? 0 : bo.id;
    io[A + 7] = vb === null ? 0 : vmBoHandle(vb.vb);
    const n = E.smMapOps(this._h);
    // the pending list holds its own reference to the VmBo it maps to
    if (vb !== null && vb.temp) this.releaseTemp(vb.vb);
    if (n < 0) throw this.fail(n, what, addr, range);
    return this.takeList(n, false);
  }

  /** A list the engine makes of a range (the facade side of the engines' rangeListOps). */
  private rangeList(what: 'smUnmapOps' | 'prefetchOps' | 'madviseOps', addr: U64, range: U64): OpList<N> {
    const E = this._E;
    const io = E.io();
    this.put(io, A + 0, addr, 'addr');
    this.put(io, A + 2, range, 'range');
    const n = E[what](this._h);
    // prefetch skips the kernel node rather than refusing it
    if (n < 0) throw this.fail(n, what, addr, range, what !== 'prefetchOps');
    return this.takeList(n, false);
  }

  /** Split/merge ops for unmapping a range (drm_gpuvm_sm_unmap_ops_create). */
  smUnmapOps(addr: U64, range: U64): OpList<N> {
    return this.rangeList('smUnmapOps', addr, range);
  }

  /**
   * One PREFETCH per mapping overlapping the range, the kernel node skipped
   * (drm_gpuvm_prefetch_ops_create). Like the kernel, it does not check the
   * range against the VM: a zero range lists nothing, a range reaching
   * outside lists what it overlaps; only u64 overflow is EINVAL.
   */
  prefetchOps(addr: U64, range: U64): OpList<N> {
    return this.rangeList('prefetchOps', addr, range);
  }

  /**
   * Splits BO-less mappings at the edges of the range, for per-range
   * attributes; no unmaps (drm_gpuvm_madvise_ops_create).
   */
  madviseOps(addr: U64, range: U64): OpList<N> {
    return this.rangeList('madviseOps', addr, range);
  }

  /** @internal an op object for record i of a list: a read-only view of the record */
  _makeOp(list: OpList<N>, i: number): Op<N> {
    const ls = listState(list);
    const w = ls.words;
    const p = i * OP_WORDS;
    const k = w[p] & 0xff;
    const bo = ls.bos[i];
    if (k === OpKind.MAP) {
      return mapOp<N>(list, i, this._u(w, p + 4, 'addr'), this._u(w, p + 6, 'range'), bo, this._u(w, p + 8, 'offset'));
    }
    const va = this.vaFromOp(w, p, bo);
    const keep = (w[p] & OP_KEEP) !== 0;
    if (k === OpKind.UNMAP) return unmapOp<N>(list, i, va, keep);
    if (k === OpKind.PREFETCH) return prefetchOp<N>(list, i, va);
    return remapOp<N>(list, i, va, keep, this.remapPrev(w, p, va), this.remapNext(w, p, va));
  }

  /** A REMAP record's surviving piece before the request, or null. */
  private remapPrev(w: Uint32Array, p: number, va: GpuVa<N>): OpMapping<N> | null {
    if ((w[p] & OP_HAS_PREV) === 0) return null;
    return opMapping<N>(this._u(w, p + 4, 'prev.addr'), this._u(w, p + 10, 'prev.range'), va.bo, this._u(w, p + 8, 'prev.offset'));
  }

  /** A REMAP record's surviving piece after the request, or null. */
  private remapNext(w: Uint32Array, p: number, va: GpuVa<N>): OpMapping<N> | null {
    if ((w[p] & OP_HAS_NEXT) === 0) return null;
    const nAddr = getBig(w, p + 12);
    const end = getBig(w, p + 4) + getBig(w, p + 6);
    return opMapping<N>(this._u(w, p + 12, 'next.addr'), this.fromBig(end - nAddr), va.bo, this._u(w, p + 14, 'next.offset'));
  }

  /** @internal */
  _applyList(list: OpList<N>): void {
    this.checkList(list, 'OpList.apply');
    if (list.length === 0) return; // nothing to do (e.g. unmapping an empty range)
    requirePending(list, 'OpList.apply');
    const ls = listState(list);
    const E = this._E;
    const r = E.opsApply(this._h, ls.next, list.length);
    if (r < 0) throw this.applyError(r, 'OpList.apply');
    ls.next = list.length;
    ls.state = 'applied';
    this.changed(E.io());
  }

  /** @internal */
  _dropList(list: OpList<N>): void {
    this.checkList(list, 'OpList.drop');
    this._E.opsDrop(this._h);
    listState(list).state = 'dropped';
    this._listGen++;
    this.changed(this._E.io());
  }

  private checkList(list: OpList<N>, what: string): void {
    if (list.vm !== (this as GpuVm<N>)) throw new GpuVmError('EINVAL', `${what}: the op list belongs to another VM`);
    this.alive(what);
  }

  private applyError(r: number, what: string): GpuVmError {
    const code = errnoName(r);
    if (code === 'EEXIST') {
      return new GpuVmError(code, `${what}: the VM changed since the list was made (a mapping is in the way)`);
    }
    if (code === 'EINVAL') {
      return new GpuVmError(code, `${what}: a mapping the list names no longer exists (the VM changed since the list was made)`);
    }
    return new GpuVmError(code, `${what} failed`);
  }

  /**
   * Applies one op of a pending list; returns the handles created. Only op
   * objects a list handed out are accepted (read-only views, so their list,
   * index and fields are the list's own).
   */
  private applyOne(op: unknown, kind: Op['kind'], what: string): Uint32Array {
    if (!isOp(op) || op.kind !== kind) {
      throw new TypeError(`${what}: expected a ${kind} op handed out by an op list, got ${isOp(op) ? `a ${op.kind} op` : describe(op)}`);
    }
    const list = op.list as OpList<N>;
    this.checkList(list, what);
    requirePending(list, what);
    const ls = listState(list);
    if (op.index < ls.next) throw new GpuVmError('EINVAL', `${what}: op ${op.index} was already applied or skipped`);
    const E = this._E;
    const r = E.opsApply(this._h, op.index, op.index + 1);
    if (r < 0) throw this.applyError(r, what);
    ls.next = op.index + 1;
    if (ls.next === list.length) ls.state = 'applied';
    const io = E.io();
    const created = io.slice(IO.OUT_CREATED, IO.OUT_CREATED + 4);
    this.changed(io);
    return created;
  }

  /** Applies a MAP op: inserts and links the new mapping (drm_gpuva_map + link). */
  vaMap(op: MapOp<N>): GpuVa<N> {
    const c = this.applyOne(op, 'map', 'vaMap');
    return this.vaCreated(c[0], c[1], op);
  }

  /** Applies a REMAP op: the pieces replace the old mapping (drm_gpuva_remap + link/unlink). */
  vaRemap(op: RemapOp<N>): { prev: GpuVa<N> | null; next: GpuVa<N> | null } {
    const c = this.applyOne(op, 'remap', 'vaRemap');
    return {
      prev: op.prev ? this.vaCreated(c[0], c[1], op.prev) : null,
      next: op.next ? this.vaCreated(c[2], c[3], op.next) : null,
    };
  }

  /** Applies an UNMAP op: removes and unlinks the mapping (drm_gpuva_unmap + unlink). */
  vaUnmap(op: UnmapOp<N>): void {
    this.applyOne(op, 'unmap', 'vaUnmap');
  }

  /** The range a REMAP leaves free: between prev's end and next's start (drm_gpuva_op_remap_to_unmap_range). */
  remapHole(op: RemapOp<N>): { addr: N; range: N } {
    if (!isOp(op) || op.kind !== 'remap') {
      throw new TypeError(`remapHole: expected a remap op handed out by an op list, got ${isOp(op) ? `a ${op.kind} op` : describe(op)}`);
    }
    const w = listState(op.list).words;
    const p = op.index * OP_WORDS;
    const addr = getBig(w, p + 4);
    const start = (w[p] & OP_HAS_PREV) !== 0 ? addr + getBig(w, p + 10) : addr;
    const end = (w[p] & OP_HAS_NEXT) !== 0 ? getBig(w, p + 12) : addr + getBig(w, p + 6);
    return { addr: this.fromBig(start), range: this.fromBig(end - start) };
  }

  // ---- callback mode -----------------------------------------------------------------

  /**
   * Calls the steps in list order. Each step runs with the engine and io
   * consistent (nothing of the walk is kept in io between steps), so a step
   * may call anything, even this VM; a step that makes the list stale (by
   * generating another list or a fused call) ends the walk with the usual
   * stale-list error at the next vaMap/vaRemap/vaUnmap.
   */
  private runSteps(list: OpList<N>, steps: Steps<N>): void {
    try {
      for (let i = 0; i < list.length; i++) {
        const op = list.get(i);
        if (op.kind === 'map') steps.map!(op);
        else if (op.kind === 'remap') steps.remap(op);
        else if (op.kind === 'unmap') steps.unmap(op);
      }
    } finally {
      if (list.state === 'pending') list.drop();
    }
  }

  /** Reads the step functions once (they may be getters) and checks them. */
  private readSteps(steps: unknown, needMap: boolean, what: string): Steps<N> {
    if (steps === null || typeof steps !== 'object') {
      throw new GpuVmError('EINVAL', `${what}: steps must be an object with map/remap/unmap functions, got ${describe(steps)}`);
    }
    const s = steps as SmSteps<N>;
    const map = needMap ? s.map : undefined;
    const remap = s.remap;
    const unmap = s.unmap;
    if (needMap && typeof map !== 'function') throw new GpuVmError('EINVAL', `${what}: steps.map must be a function`);
    if (typeof remap !== 'function') throw new GpuVmError('EINVAL', `${what}: steps.remap must be a function`);
    if (typeof unmap !== 'function') throw new GpuVmError('EINVAL', `${what}: steps.unmap must be a function`);
    // called with `steps` as `this`, as a method call would
    return {
      map: map === undefined ? undefined : (op) => map.call(steps, op),
      remap: (op) => remap.call(steps, op),
      unmap: (op) => unmap.call(steps, op),
    };
  }

  /**
   * Callback mode (drm_gpuvm_sm_map): calls steps.unmap/remap for each
   * affected mapping in order, then steps.map. Inside them the driver updates
   * the VM with vaMap/vaRemap/vaUnmap (or leaves it alone). An exception from a
   * step stops the walk and is re-thrown; what earlier steps did stays done.
   */
  smMap(req: MapRequest, steps: SmSteps<N>): void {
    const r = this.readMapReq(req, 'smMap');
    const s = this.readSteps(steps, true, 'smMap');
    this.runSteps(this.mapList(r, 'smMap'), s);
  }

  /** Callback mode for unmapping (drm_gpuvm_sm_unmap). */
  smUnmap(addr: U64, range: U64, steps: SmSteps<N>): void {
    const s = this.readSteps(steps, false, 'smUnmap');
    this.runSteps(this.smUnmapOps(addr, range), s);
  }

  /**
   * The BOs a map or unmap request would touch: those of every mapping it
   * unmaps or splits, and the mapped BO (drm_gpuvm_sm_map_exec_lock). Lock
   * them before generating the real list.
   */
  touchedBos(req: ({ op: 'map' } & MapRequest) | { op: 'unmap'; addr: U64; range: U64 }): Set<Bo> {
    if (req === null || typeof req !== 'object') throw new TypeError(`touchedBos: expected a request, got ${describe(req)}`);
    const kind = req.op;
    let list: OpList<N>;
    if (kind === 'map') {
      list = this.mapList(this.readMapReq(req, 'touchedBos'), 'touchedBos');
    } else if (kind === 'unmap') {
      const { addr, range } = req as { addr: U64; range: U64 };
      list = this.smUnmapOps(addr, range);
    } else {
      throw new TypeError(`touchedBos: op must be 'map' or 'unmap', got ${describe(kind)}`);
    }
    const out = new Set<Bo>();
    for (const bo of listState(list).bos) if (bo !== null) out.add(bo);
    list.drop();
    return out;
  }

  // ---- atomic bind arrays ----------------------------------------------------------

  /**
   * Applies an array of bind operations as one transaction: all
   * take effect or, on any error, none (mappings, VmBo lists and refcounts are
   * exactly as before). Returns the applied ops.
   */
  bindArray(entries: readonly BindEntry[]): OpList<N> {
    if (!Array.isArray(entries)) throw new TypeError(`bindArray: expected an array, got ${describe(entries)}`);
    // Read every entry (each field once: they may be getters) and check it
    // before touching the engine or io.
    const n = entries.length;
    const tx: TxEntry[] = new Array(n);
    for (let i = 0; i < n; i++) tx[i] = this.readEntry(entries[i], i);
    this.alive('bindArray');
    const E = this._E;
    const temps: VmBo<N>[] = [];
    const tempByBo = new Map<Bo, VmBo<N>>();
    const vmBoHandleFor = (bo: Bo, create: boolean): number => {
      const have = boState(bo).vmBos.get(this) ?? tempByBo.get(bo);
      if (have !== undefined) return vmBoHandle(have);
      if (!create) return 0;
      const vb = this._createVmBo(bo, true);
      temps.push(vb);
      tempByBo.set(bo, vb);
      return vmBoHandle(vb);
    };
    let r: number;
    try {
      for (const e of tx) if (e.op === 'map' && e.bo !== null) vmBoHandleFor(e.bo, true);
      E.txClear(this._h);
      for (let base = 0; base < n; base += TX_PER_CHUNK) {
        const m = Math.min(TX_PER_CHUNK, n - base);
        const io = E.io();
        for (let j = 0; j < m; j++) {
          const e = tx[base + j];
          const p = D + j * TX_WORDS;
          const inject = e.injectError ? TX_INJECT_ERROR : 0;
          for (let w = 1; w < TX_WORDS; w++) io[p + w] = 0;
          const at = `bindArray[${base + j}]`;
          switch (e.op) {
            case 'map':
              io[p] = TxKind.MAP | inject;
              io[p + 1] = e.bo !== null ? e.bo.id : 0;
              io[p + 2] = e.bo !== null ? vmBoHandleFor(e.bo, false) : 0;
              this.put(io, p + 4, e.addr, `${at}.addr`);
              this.put(io, p + 6, e.range, `${at}.range`);
              this.put(io, p + 8, e.offset, `${at}.offset`);
              break;
            case 'unmap':
            case 'prefetch':
              io[p] = (e.op === 'unmap' ? TxKind.UNMAP : TxKind.PREFETCH) | inject;
              this.put(io, p + 4, e.addr, `${at}.addr`);
              this.put(io, p + 6, e.range, `${at}.range`);
              break;
            case 'unmapAll':
              io[p] = TxKind.UNMAP_ALL | inject;
              io[p + 1] = e.bo!.id;
              io[p + 2] = vmBoHandleFor(e.bo!, false);
              break;
          }
        }
        const s = E.txStage(this._h, m);
        if (s < 0) throw new GpuVmError(errnoName(s), `bindArray: staging entries ${base}..${base + m - 1} failed`);
      }
      r = E.txRun(this._h);
    } catch (err) {
      E.txClear(this._h);
      for (const vb of temps) this.releaseTemp(vb);
      throw err;
    }
    const failAt = E.io()[IO.OUT_FAIL_INDEX];
    if (r < 0) {
      for (const vb of temps) this.releaseTemp(vb);
      // a failed transaction leaves the pending list (if any) as it was
      if (E.io()[IO.OUT_ZOMBIES] !== 0) this.reap();
      if (r === -Errno.EBUSY || failAt >= n) throw this.fail(r, 'bindArray');
      const e = tx[failAt];
      const at = `bindArray[${failAt}] (${e.op})`;
      if (e.injectError && r === -Errno.ENOMEM) throw new GpuVmError('ENOMEM', `${at}: injected error; nothing was changed`);
      if (e.op !== 'unmapAll') throw this.fail(r, at, e.addr, e.range, e.op !== 'prefetch');
      throw this.fail(r, at);
    }
    const list = this.takeList(r, true, false);
    for (const vb of temps) this.releaseTemp(vb);
    this.changed(E.io());
    return list;
  }

  /** One bindArray entry, read once and checked. */
  private readEntry(e: unknown, i: number): TxEntry {
    if (e === null || typeof e !== 'object') throw new TypeError(`bindArray[${i}]: expected an entry object, got ${describe(e)}`);
    const x = e as Record<string, unknown>;
    const op = x.op;
    const injectError = x.injectError;
    if (injectError !== undefined && typeof injectError !== 'boolean') {
      throw new TypeError(`bindArray[${i}].injectError must be a boolean, got ${describe(injectError)}`);
    }
    const inject = injectError === true;
    switch (op) {
      case 'map': {
        const { addr, range, offset = 0 } = x;
        const bo = x.bo ?? null;
        if (bo !== null && !isBo(bo)) throw new TypeError(`bindArray[${i}].bo must be a Bo or null, got ${describe(bo)}`);
        this.checkMapping(`bindArray[${i}]`, addr, range, offset, '.');
        return { op, addr: addr as U64, range: range as U64, bo, offset: offset as U64, injectError: inject };
      }
      case 'unmap':
      case 'prefetch': {
        const { addr, range } = x;
        checkU64(addr, `bindArray[${i}].addr`, this.bigint);
        checkU64(range, `bindArray[${i}].range`, this.bigint);
        return { op, addr: addr as U64, range: range as U64, bo: null, offset: 0, injectError: inject };
      }
      case 'unmapAll': {
        const bo = x.bo;
        if (!isBo(bo)) throw new TypeError(`bindArray[${i}].bo must be a Bo, got ${describe(bo)}`);
        return { op, addr: 0, range: 0, bo, offset: 0, injectError: inject };
      }
      default:
        throw new TypeError(`bindArray[${i}].op must be 'map', 'unmap', 'prefetch' or 'unmapAll', got ${describe(op)}`);
    }
  }

  // ---- lifetime ------------------------------------------------------------------

  /** Whether destroy() was called. */
  get destroyed(): boolean {
    return this._h === 0;
  }

  /**
   * Releases the VM and everything in it (drm_gpuvm_put to zero). Its
   * mappings and VmBos become dead objects; using them, or the VM, is EINVAL.
   */
  destroy(): void {
    if (this._h === 0) return;
    this._E.vmDestroy(this._h);
    this._h = 0;
    for (const vb of this.vmBoByHandle.values()) {
      vmBoState(vb).live = false;
      const bs = boState(vb.bo);
      if (bs.lastVmBo === vb) {
        bs.lastVm = null;
        bs.lastVmBo = null;
      }
      if (bs.vmBos.get(this) === vb) bs.vmBos.delete(this);
    }
    this.vmBoByHandle.clear();
    this.extobjSet.clear();
    this.evictSet.clear();
    this.vaCache.clear();
    this.boById.clear();
    this.looseBos.clear();
    this._listGen++;
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

/**
 * Op records of small lists are carved out of a shared slab: a subarray is a
 * small object, while a fresh ArrayBuffer per list costs about a microsecond.
 * A slab is dropped (and collected with its last list) when it is used up.
 */
let slab = new Uint32Array(1 << 16);
let slabUsed = 0;
function takeWords(len: number): Uint32Array {
  if (len > 1 << 14) return new Uint32Array(len);
  if (slabUsed + len > slab.length) {
    slab = new Uint32Array(1 << 16);
    slabUsed = 0;
  }
  const w = slab.subarray(slabUsed, slabUsed + len);
  slabUsed += len;
  return w;
}

/** A number that is an integer in [0, 2^53): what putU64 takes without its slow path. */
function isU53(v: unknown): boolean {
  return typeof v === 'number' && v >= 0 && v < TWO53 && Math.floor(v) === v;
}
