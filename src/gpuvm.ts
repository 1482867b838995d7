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
import { GpuVa } from './gpu-va.js';
import { OpList, type MapOp, type Op, type OpMapping, type PrefetchOp, type RemapOp, type UnmapOp } from './ops.js';
import { getBig, getNum, hex, putLast, putU64, toBig, TWO32, U64_MAX, type U64 } from './u64.js';
import { Bo, VmBo } from './vm-bo.js';

const A = IO.ARG;
const D = IO.DATA;

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

interface VaState {
  flags: number;
  vmBo: number;
  inserted: boolean;
}

export class GpuVm<N extends U64 = number> implements Iterable<GpuVa<N>> {
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
      throw new TypeError(`GpuVm options must be an object, got ${options === null ? 'null' : typeof options}`);
    }
    const big = options.bigint === true;
    if (options.bigint !== undefined && typeof options.bigint !== 'boolean') {
      throw new TypeError(`bigint must be a boolean, got ${typeof options.bigint}`);
    }
    if (options.name !== undefined && typeof options.name !== 'string') {
      throw new TypeError(`name must be a string, got ${typeof options.name}`);
    }
    if (options.backend !== undefined && options.backend !== 'native' && options.backend !== 'wasm') {
      throw new TypeError(`backend must be 'native' or 'wasm', got ${JSON.stringify(options.backend)}`);
    }
    this.name = options.name ?? 'unknown';
    this.bigint = big;
    const E = engineFor(options.backend);
    this._E = E;
    this.backend = E.name;
    let io = E.io();
    putU64(io, A + 0, options.start, 'start', big);
    putU64(io, A + 2, options.range, 'range', big);
    const reserve = options.reserve;
    if (reserve !== undefined && (reserve === null || typeof reserve !== 'object')) {
      throw new TypeError(`reserve must be an object { start, range }, got ${reserve === null ? 'null' : typeof reserve}`);
    }
    putU64(io, A + 4, reserve?.start ?? 0, 'reserve.start', big);
    putU64(io, A + 6, reserve?.range ?? 0, 'reserve.range', big);
    this.startB = toBig(options.start);
    this.endB = this.startB + toBig(options.range);
    if (!big && this.endB > 2n ** 53n) {
      throw new RangeError(
        `the VM [${hex(this.startB)}, ${hex(this.endB)}) reaches above 2^53: create it with { bigint: true }`,
      );
    }
    const h = E.vmCreate();
    if (h <= 0) {
      throw new GpuVmError(errnoName(h < 0 ? h : -Errno.EINVAL), this.explainInit(options));
    }
    this._h = h;
    this.reserveB =
      reserve && toBig(reserve.range) !== 0n
        ? { start: toBig(reserve.start), end: toBig(reserve.start) + toBig(reserve.range) }
        : null;
    io = E.io();
    this.start = this.fromBig(this.startB);
    this.range = this.fromBig(toBig(options.range));
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

  private explainInit(o: GpuVmOptions): string {
    const s = toBig(o.start);
    const r = toBig(o.range);
    if (r === 0n) return `range must not be zero (start=${hex(s)})`;
    if (s + r > U64_MAX) return `start + range overflows u64 (start=${hex(s)}, range=${hex(r)})`;
    if (o.reserve) {
      const rs = toBig(o.reserve.start);
      const rr = toBig(o.reserve.range);
      if (rs + rr > U64_MAX) return `reserve.start + reserve.range overflows u64 (${hex(rs)}, ${hex(rr)})`;
      if (rr !== 0n && (rs < s || rs + rr > s + r)) {
        return `the reserved node [${hex(rs)}, ${hex(rs + rr)}) is not inside the VM [${hex(s)}, ${hex(s + r)})`;
      }
    }
    return `cannot create the VM [${hex(s)}, ${hex(s + r)})`;
  }

  /** Why a range is invalid for this VM (SPEC §1: zero, overflow, outside, kernel node). */
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
    vb._live = false;
    if (vb.bo._lastVmBo === vb) {
      vb.bo._lastVm = null;
      vb.bo._lastVmBo = null;
    }
    this.vmBoByHandle.delete(vb.handle);
    if (vb._registered && vb.bo._vmBos.get(this) === vb) vb.bo._vmBos.delete(this);
    this.extobjSet.delete(vb);
    this.evictSet.delete(vb);
    vb._evicted = false;
    const id = vb.bo.id;
    if (!this.looseBos.has(id) && vb.bo._vmBos.get(this) === undefined) this.boById.delete(id);
  }

  /** After every mutating engine call. */
  private changed(io: Uint32Array): void {
    this._mod++;
    if (io[IO.OUT_ZOMBIES] !== 0) this.reap();
  }

  // ---- VmBo plumbing ---------------------------------------------------------

  /** @internal a new VmBo with one reference; registered (findable) or not */
  _createVmBo(bo: Bo, register: boolean): VmBo<N> {
    this.alive('VmBo.create');
    if (!(bo instanceof Bo)) throw new TypeError(`bo must be a Bo, got ${describe(bo)}`);
    const h = this._E.vmboCreate(this._h, bo.id);
    if (h <= 0) throw this.fail(h < 0 ? h : -Errno.ENOMEM, 'VmBo.create');
    const vb = new VmBo<N>(this, bo, h);
    this.vmBoByHandle.set(h, vb);
    this.boById.set(bo.id, bo);
    if (register) this.register(vb);
    return vb;
  }

  private register(vb: VmBo<N>): void {
    vb._registered = true;
    vb.bo._vmBos.set(this, vb);
    if (vb.bo.external(this)) this.extobjSet.add(vb);
  }

  private checkVmBo(vb: unknown, what: string): VmBo<N> {
    if (!(vb instanceof VmBo)) throw new TypeError(`${what}: expected a VmBo, got ${describe(vb)}`);
    if (vb.vm !== (this as GpuVm<any>)) throw new GpuVmError('EINVAL', `${what}: the VmBo belongs to another VM`);
    if (!vb._live) throw new GpuVmError('EINVAL', `${what}: the VmBo of ${vb.bo.name} was already destroyed (use after put)`);
    return vb;
  }

  /** The unique VmBo for (this VM, bo), created if needed; +1 reference (drm_gpuvm_bo_obtain). */
  obtainBo(bo: Bo): VmBo<N> {
    if (!(bo instanceof Bo)) throw new TypeError(`bo must be a Bo, got ${describe(bo)}`);
    const have = bo._vmBos.get(this);
    if (have !== undefined) return have.get();
    return this._createVmBo(bo, true);
  }

  /** The VmBo for (this VM, bo) with +1 reference, or null; never creates (drm_gpuvm_bo_find). */
  findBo(bo: Bo): VmBo<N> | null {
    if (!(bo instanceof Bo)) throw new TypeError(`bo must be a Bo, got ${describe(bo)}`);
    const have = bo._vmBos.get(this);
    return have === undefined ? null : have.get();
  }

  /**
   * Takes a VmBo made with VmBo.create: returns the existing one for its BO
   * (+1 reference, and `pre` is destroyed), or registers `pre` itself
   * (drm_gpuvm_bo_obtain_prealloc).
   */
  obtainPrealloc(pre: VmBo<N>): VmBo<N> {
    this.checkVmBo(pre, 'obtainPrealloc');
    if (pre._registered) throw new GpuVmError('EINVAL', 'obtainPrealloc: the VmBo is already obtained');
    const have = pre.bo._vmBos.get(this);
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
    const r = this._E.vmboGet(this._h, vb.handle);
    if (r < 0) throw this.fail(r, 'VmBo.get');
  }

  /** @internal */
  _vmBoPut(vb: VmBo<N>): boolean {
    this.checkVmBo(vb, 'VmBo.put');
    const r = this._E.vmboPut(this._h, vb.handle);
    if (r < 0) throw this.fail(r, 'VmBo.put');
    if (r === 0) {
      this.forget(vb);
      return true;
    }
    return false;
  }

  /** @internal */
  _vmBoInfo(vb: VmBo<N>): { refcount: number; mappings: number } {
    this.checkVmBo(vb, 'VmBo.refcount');
    const r = this._E.vmboInfo(this._h, vb.handle);
    if (r < 0) throw this.fail(r, 'VmBo.refcount');
    const io = this._E.io();
    return { refcount: io[IO.OUT_INFO], mappings: io[IO.OUT_INFO + 1] };
  }

  /** @internal */
  _vmBoMappings(vb: VmBo<N>): GpuVa<N>[] {
    this.checkVmBo(vb, 'VmBo.mappings');
    const E = this._E;
    const out: GpuVa<N>[] = [];
    let after = 0;
    for (;;) {
      const n = E.vmboMappings(this._h, vb.handle, after, VAS_PER_CHUNK);
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
    const n = this._E.vmboUnmapOps(this._h, vb.handle);
    if (n < 0) throw this.fail(n, 'VmBo.unmapOps');
    return this.takeList(n, false);
  }

  /** @internal */
  _vmBoEvict(vb: VmBo<N>, on: boolean): void {
    this.checkVmBo(vb, 'VmBo.evict');
    if (typeof on !== 'boolean') throw new TypeError(`evict: expected a boolean, got ${describe(on)}`);
    vb._evicted = on;
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
      if (!vb._live || !this.evictSet.has(vb)) continue;
      fn(vb);
      vb._evicted = false;
      this.evictSet.delete(vb);
    }
  }

  /** The VmBo handle a MAP of `bo` links to, creating (and reporting) a temporary one if needed. */
  private vmBoFor(bo: Bo): { vb: VmBo<N>; temp: boolean } {
    const have = bo._vmBos.get(this);
    if (have !== undefined) return { vb: have, temp: false };
    return { vb: this._createVmBo(bo, true), temp: true };
  }

  /** Drops the creation reference of a temporary VmBo (it stays if a mapping links to it). */
  private releaseTemp(vb: VmBo<N>): void {
    const r = this._E.vmboPut(this._h, vb.handle);
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
    if (have !== undefined && have.serial === serial) return have;
    const va = new GpuVa<N>(
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
    if (have !== undefined && have.serial === serial) return have;
    const va = new GpuVa<N>(
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
    const va = new GpuVa<N>(this as GpuVm<N>, h, serial, m.addr, m.range, m.bo, m.offset, false);
    this.vaCache.set(h, va);
    return va;
  }

  private checkVa(va: unknown, what: string): GpuVa<N> {
    if (!(va instanceof GpuVa)) throw new TypeError(`${what}: expected a GpuVa, got ${describe(va)}`);
    if (va.vm !== (this as GpuVm<any>)) throw new GpuVmError('EINVAL', `${what}: the mapping belongs to another VM`);
    return va as GpuVa<N>;
  }

  /** @internal the engine's view of a mapping, or null when it is gone */
  _vaRead(va: GpuVa<N>): VaState | null {
    if (this._h === 0) return null;
    const r = this._E.vaGet(this._h, va.handle, va.serial);
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
    if (va.isKernelNode) throw new GpuVmError('EPERM', 'GpuVa.flags: the kernel-reserved node has no flags');
    const r = this._E.vaSetFlags(this._h, va.handle, va.serial, flags >>> 0);
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
    if (va.bo === null) return; // a mapping without a BO is never linked (the kernel's no-op)
    if (va.bo !== vb.bo) {
      throw new GpuVmError('EINVAL', `GpuVa.link: the mapping is of ${va.bo.name}, the VmBo of ${vb.bo.name}`);
    }
    const r = this._E.vaLink(this._h, va.handle, va.serial, vb.handle);
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
    const r = this._E.vaUnlink(this._h, va.handle, va.serial);
    if (r < 0) {
      this.alive('GpuVa.unlink');
      throw new GpuVmError('EINVAL', 'GpuVa.unlink: the mapping no longer exists');
    }
    this.changed(this._E.io());
  }

  // ---- low-level insert / remove -------------------------------------------------

  /** Inserts a new mapping, not linked to any VmBo (drm_gpuva_insert). */
  insert(m: { addr: U64; range: U64; bo?: Bo | null; offset?: U64; flags?: number }): GpuVa<N> {
    if (m === null || typeof m !== 'object') throw new TypeError(`insert: expected { addr, range, bo?, offset?, flags? }, got ${describe(m)}`);
    const bo = m.bo ?? null;
    if (bo !== null && !(bo instanceof Bo)) throw new TypeError(`insert: bo must be a Bo or null, got ${describe(bo)}`);
    const flags = m.flags ?? 0;
    if (typeof flags !== 'number' || !Number.isInteger(flags)) throw new TypeError(`insert: flags must be an integer, got ${describe(flags)}`);
    if (flags < 0 || flags > 0xffff_ffff) throw new RangeError(`insert: flags must fit 32 bits, got ${hex(flags)}`);
    const E = this._E;
    const io = E.io();
    this.put(io, A + 0, m.addr, 'addr');
    this.put(io, A + 2, m.range, 'range');
    this.put(io, A + 4, m.offset ?? 0, 'offset');
    io[A + 6] = bo === null ? 0 : bo.id;
    io[A + 7] = flags >>> 0;
    const h = E.vaInsert(this._h);
    if (h <= 0) throw this.fail(h, 'insert', m.addr, m.range);
    const io2 = E.io();
    if (bo !== null) {
      this.boById.set(bo.id, bo);
      this.looseBos.add(bo.id);
    }
    this._mod++;
    return this.vaCreated(h, io2[IO.OUT_SERIAL], {
      addr: this.fromBig(toBig(m.addr)),
      range: this.fromBig(toBig(m.range)),
      bo,
      offset: this.fromBig(toBig(m.offset ?? 0)),
    });
  }

  /** Removes a mapping from the VM (drm_gpuva_remove); it stays linked until unlinked. */
  remove(va: GpuVa<N>): void {
    this.checkVa(va, 'remove');
    if (va.isKernelNode) throw new GpuVmError('EPERM', 'remove: the kernel-reserved node cannot be removed');
    const r = this._E.vaRemove(this._h, va.handle, va.serial);
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
    if (!this.putQuery(io, addr, range)) return null;
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
    if (!this.putQuery(io, addr, range)) return null;
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
    if (!this.putQuery(io, addr, range)) return true;
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
    this.alive('findFirstMany');
    if (addrs === null || typeof addrs !== 'object' || typeof addrs.length !== 'number') {
      throw new TypeError(`findFirstMany: addrs must be an array-like of numbers or bigints, got ${describe(addrs)}`);
    }
    const E = this._E;
    let io = E.io();
    this.put(io, A + 4, range, 'range');
    const r0 = io[A + 4], r1 = io[A + 5];
    const n = addrs.length;
    const out: (GpuVa<N> | null)[] = new Array(n).fill(null);
    if (r0 === 0 && r1 === 0) return out;
    for (let base = 0; base < n; base += VAS_PER_CHUNK) {
      const m = Math.min(VAS_PER_CHUNK, n - base);
      io = E.io();
      for (let i = 0; i < m; i++) {
        this.put(io, A, addrs[base + i], `addrs[${base + i}]`);
        io[A + 4] = r0;
        io[A + 5] = r1;
        putLast(io, A + 2, A, A + 4);
        const q = D + 4 * i;
        io[q] = io[A];
        io[q + 1] = io[A + 1];
        io[q + 2] = io[A + 2];
        io[q + 3] = io[A + 3];
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
   * last (drm_gpuvm_for_each_va_range_safe).
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
    let chunk = 16;
    for (;;) {
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
        yield va;
        // past the last address asked for: done
        if (c1 > l1 || (c1 === l1 && c0 > l0)) return;
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
    if (this.kernelVa === null && this.reserveB !== null && this._h !== 0) {
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
    let vmbo = 0;
    let temp: VmBo<N> | null = null;
    if (bo !== null) {
      if (!(bo instanceof Bo)) throw new TypeError(`bind: bo must be a Bo or null, got ${describe(bo)}`);
      // most binds name the BO the previous bind of that BO in this VM named
      let vb = bo._lastVm === this ? (bo._lastVmBo as VmBo<N>) : bo._vmBos.get(this);
      if (vb === undefined) {
        this.alive('bind');
        vb = temp = this._createVmBo(bo, true);
        io = E.io();
      }
      bo._lastVm = this;
      bo._lastVmBo = vb;
      vmbo = vb.handle;
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
    const list = new OpList<N>(this as GpuVm<N>, words, this._listGen, applied, bos);
    // replacing an untouched list released its VmBo reference
    const io = E.io();
    if (io[IO.OUT_ZOMBIES] !== 0) this.reap();
    return list;
  }

  private mapReq(req: MapRequest, what: string): { bo: Bo | null } {
    if (req === null || typeof req !== 'object') throw new TypeError(`${what}: expected { addr, range, bo?, offset? }, got ${describe(req)}`);
    const bo = req.bo ?? null;
    if (bo !== null && !(bo instanceof Bo)) throw new TypeError(`${what}: bo must be a Bo or null, got ${describe(bo)}`);
    const io = this._E.io();
    this.put(io, A + 0, req.addr, 'addr');
    this.put(io, A + 2, req.range, 'range');
    this.put(io, A + 4, req.offset ?? 0, 'offset');
    return { bo };
  }

  /** Split/merge ops for mapping a request (drm_gpuvm_sm_map_ops_create). */
  smMapOps(req: MapRequest): OpList<N> {
    const { bo } = this.mapReq(req, 'smMapOps');
    const E = this._E;
    let vb: { vb: VmBo<N>; temp: boolean } | null = null;
    if (bo !== null) {
      this.alive('smMapOps');
      vb = this.vmBoFor(bo);
    }
    const io = E.io();
    io[A + 6] = bo === null ? 0 : bo.id;
    io[A + 7] = vb === null ? 0 : vb.vb.handle;
    const n = E.smMapOps(this._h);
    // the pending list holds its own reference to the VmBo it maps to
    if (vb !== null && vb.temp) this.releaseTemp(vb.vb);
    if (n < 0) throw this.fail(n, 'smMapOps', req.addr, req.range);
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

  /** One PREFETCH per mapping overlapping the range, the kernel node skipped (drm_gpuvm_prefetch_ops_create). */
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

  /** @internal an op object for record i of a list */
  _makeOp(list: OpList<N>, i: number): Op<N> {
    const w = list._words;
    const p = i * OP_WORDS;
    const k = w[p] & 0xff;
    const base = { list, index: i };
    const bo = list._bos[i];
    if (k === OpKind.MAP) {
      const op: MapOp<N> = {
        kind: 'map',
        ...base,
        addr: this._u(w, p + 4, 'addr'),
        range: this._u(w, p + 6, 'range'),
        bo,
        offset: this._u(w, p + 8, 'offset'),
      };
      return op;
    }
    const va = this.vaFromOp(w, p, bo);
    const keep = (w[p] & OP_KEEP) !== 0;
    if (k === OpKind.UNMAP) return { kind: 'unmap', ...base, va, keep } as UnmapOp<N>;
    if (k === OpKind.PREFETCH) return { kind: 'prefetch', ...base, va } as PrefetchOp<N>;
    const prev: OpMapping<N> | null =
      (w[p] & OP_HAS_PREV) !== 0
        ? { addr: va.addr, range: this._u(w, p + 10, 'prev.range'), bo: va.bo, offset: va.offset }
        : null;
    let next: OpMapping<N> | null = null;
    if ((w[p] & OP_HAS_NEXT) !== 0) {
      const nAddr = this._u(w, p + 12, 'next.addr');
      const vaEndB = toBig(va.addr) + toBig(va.range);
      next = {
        addr: nAddr,
        range: this.fromBig(vaEndB - toBig(nAddr)),
        bo: va.bo,
        offset: this._u(w, p + 14, 'next.offset'),
      };
    }
    return { kind: 'remap', ...base, unmap: { va, keep }, prev, next } as RemapOp<N>;
  }

  /** @internal */
  _applyList(list: OpList<N>): void {
    this.checkList(list, 'OpList.apply');
    if (list.length === 0) return; // nothing to do (e.g. unmapping an empty range)
    list._requirePending('OpList.apply');
    const E = this._E;
    const r = E.opsApply(this._h, list._next, list.length);
    if (r < 0) throw this.applyError(r, 'OpList.apply');
    list._next = list.length;
    list._state = 'applied';
    this.changed(E.io());
  }

  /** @internal */
  _dropList(list: OpList<N>): void {
    this.checkList(list, 'OpList.drop');
    this._E.opsDrop(this._h);
    list._state = 'dropped';
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

  /** Applies one op of a pending list; returns the handles created. */
  private applyOne(op: Op<N>, kind: Op['kind'], what: string): Uint32Array {
    if (op === null || typeof op !== 'object' || op.kind !== kind || !(op.list instanceof OpList)) {
      throw new TypeError(`${what}: expected a ${kind} op from an op list, got ${describe(op)}`);
    }
    const list = op.list as OpList<N>;
    this.checkList(list, what);
    list._requirePending(what);
    if (op.index < list._next) throw new GpuVmError('EINVAL', `${what}: op ${op.index} was already applied or skipped`);
    const E = this._E;
    const r = E.opsApply(this._h, op.index, op.index + 1);
    if (r < 0) throw this.applyError(r, what);
    list._next = op.index + 1;
    if (list._next === list.length) list._state = 'applied';
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
    if (op === null || typeof op !== 'object' || op.kind !== 'remap') {
      throw new TypeError(`remapHole: expected a remap op, got ${describe(op)}`);
    }
    const va = op.unmap.va;
    const start = op.prev ? toBig(op.prev.addr) + toBig(op.prev.range) : toBig(va.addr);
    const end = op.next ? toBig(op.next.addr) : toBig(va.addr) + toBig(va.range);
    return { addr: this.fromBig(start), range: this.fromBig(end - start) };
  }

  // ---- callback mode -----------------------------------------------------------------

  private runSteps(list: OpList<N>, steps: SmSteps<N>): void {
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

  private checkSteps(steps: unknown, needMap: boolean, what: string): SmSteps<N> {
    if (steps === null || typeof steps !== 'object') {
      throw new GpuVmError('EINVAL', `${what}: steps must be an object with map/remap/unmap functions, got ${describe(steps)}`);
    }
    const s = steps as Record<string, unknown>;
    for (const k of needMap ? ['map', 'remap', 'unmap'] : ['remap', 'unmap']) {
      if (typeof s[k] !== 'function') throw new GpuVmError('EINVAL', `${what}: steps.${k} must be a function`);
    }
    return steps as SmSteps<N>;
  }

  /**
   * Callback mode (drm_gpuvm_sm_map): calls steps.unmap/remap for each
   * affected mapping in order, then steps.map. Inside them the driver updates
   * the VM with vaMap/vaRemap/vaUnmap (or leaves it alone). An exception from a
   * step stops the walk and is re-thrown; what earlier steps did stays done.
   */
  smMap(req: MapRequest, steps: SmSteps<N>): void {
    const s = this.checkSteps(steps, true, 'smMap');
    this.runSteps(this.smMapOps(req), s);
  }

  /** Callback mode for unmapping (drm_gpuvm_sm_unmap). */
  smUnmap(addr: U64, range: U64, steps: SmSteps<N>): void {
    const s = this.checkSteps(steps, false, 'smUnmap');
    this.runSteps(this.smUnmapOps(addr, range), s);
  }

  /**
   * The BOs a map or unmap request would touch: those of every mapping it
   * unmaps or splits, and the mapped BO (drm_gpuvm_sm_map_exec_lock). Lock
   * them before generating the real list.
   */
  touchedBos(req: ({ op: 'map' } & MapRequest) | { op: 'unmap'; addr: U64; range: U64 }): Set<Bo> {
    if (req === null || typeof req !== 'object') throw new TypeError(`touchedBos: expected a request, got ${describe(req)}`);
    let list: OpList<N>;
    if (req.op === 'map') list = this.smMapOps(req);
    else if (req.op === 'unmap') list = this.smUnmapOps(req.addr, req.range);
    else throw new TypeError(`touchedBos: op must be 'map' or 'unmap', got ${describe((req as { op: unknown }).op)}`);
    const out = new Set<Bo>();
    for (const bo of list._bos) if (bo !== null) out.add(bo);
    list.drop();
    return out;
  }

  // ---- atomic bind arrays ----------------------------------------------------------

  /**
   * Applies an array of bind operations as one transaction (SPEC §5): all
   * take effect or, on any error, none (mappings, VmBo lists and refcounts are
   * exactly as before). Returns the applied ops.
   */
  bindArray(entries: readonly BindEntry[]): OpList<N> {
    this.alive('bindArray');
    if (!Array.isArray(entries)) throw new TypeError(`bindArray: expected an array, got ${describe(entries)}`);
    const E = this._E;
    const temps: VmBo<N>[] = [];
    const tempByBo = new Map<Bo, VmBo<N>>();
    const vmBoHandle = (bo: Bo, create: boolean): number => {
      const have = bo._vmBos.get(this) ?? tempByBo.get(bo);
      if (have !== undefined) return have.handle;
      if (!create) return 0;
      const vb = this._createVmBo(bo, true);
      temps.push(vb);
      tempByBo.set(bo, vb);
      return vb.handle;
    };
    // check every entry before touching the engine
    for (let i = 0; i < entries.length; i++) checkEntry(entries[i], i);
    let r: number;
    try {
      for (const e of entries) if (e.op === 'map' && e.bo) vmBoHandle(e.bo, true);
      E.txClear(this._h);
      for (let base = 0; base < entries.length; base += TX_PER_CHUNK) {
        const m = Math.min(TX_PER_CHUNK, entries.length - base);
        const io = E.io();
        for (let j = 0; j < m; j++) {
          const e = entries[base + j];
          const p = D + j * TX_WORDS;
          const inject = e.injectError === true ? TX_INJECT_ERROR : 0;
          for (let w = 1; w < TX_WORDS; w++) io[p + w] = 0;
          const at = `bindArray[${base + j}]`;
          switch (e.op) {
            case 'map':
              io[p] = TxKind.MAP | inject;
              io[p + 1] = e.bo ? e.bo.id : 0;
              io[p + 2] = e.bo ? vmBoHandle(e.bo, false) : 0;
              this.put(io, p + 4, e.addr, `${at}.addr`);
              this.put(io, p + 6, e.range, `${at}.range`);
              this.put(io, p + 8, e.offset ?? 0, `${at}.offset`);
              break;
            case 'unmap':
            case 'prefetch':
              io[p] = (e.op === 'unmap' ? TxKind.UNMAP : TxKind.PREFETCH) | inject;
              this.put(io, p + 4, e.addr, `${at}.addr`);
              this.put(io, p + 6, e.range, `${at}.range`);
              break;
            case 'unmapAll':
              io[p] = TxKind.UNMAP_ALL | inject;
              io[p + 1] = e.bo.id;
              io[p + 2] = vmBoHandle(e.bo, false);
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
      if (r === -Errno.EBUSY || failAt >= entries.length) throw this.fail(r, 'bindArray');
      const e = entries[failAt];
      const at = `bindArray[${failAt}] (${e.op})`;
      if (e?.injectError === true && r === -Errno.ENOMEM) throw new GpuVmError('ENOMEM', `${at}: injected error; nothing was changed`);
      if (e && e.op !== 'unmapAll') throw this.fail(r, at, e.addr, e.range, e.op !== 'prefetch');
      throw this.fail(r, at);
    }
    const list = this.takeList(r, true, false);
    for (const vb of temps) this.releaseTemp(vb);
    this.changed(E.io());
    return list;
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
      vb._live = false;
      if (vb.bo._lastVmBo === vb) {
        vb.bo._lastVm = null;
        vb.bo._lastVmBo = null;
      }
      if (vb.bo._vmBos.get(this) === vb) vb.bo._vmBos.delete(this);
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

function checkEntry(e: unknown, i: number): void {
  if (e === null || typeof e !== 'object') throw new TypeError(`bindArray[${i}]: expected an entry object, got ${describe(e)}`);
  const x = e as Record<string, unknown>;
  if (x.injectError !== undefined && typeof x.injectError !== 'boolean') {
    throw new TypeError(`bindArray[${i}].injectError must be a boolean`);
  }
  switch (x.op) {
    case 'map':
      if (x.bo !== undefined && x.bo !== null && !(x.bo instanceof Bo)) throw new TypeError(`bindArray[${i}].bo must be a Bo or null, got ${describe(x.bo)}`);
      break;
    case 'unmap':
    case 'prefetch':
      break;
    case 'unmapAll':
      if (!(x.bo instanceof Bo)) throw new TypeError(`bindArray[${i}].bo must be a Bo, got ${describe(x.bo)}`);
      return;
    default:
      throw new TypeError(`bindArray[${i}].op must be 'map', 'unmap', 'prefetch' or 'unmapAll', got ${describe(x.op)}`);
  }
  for (const k of ['addr', 'range'] as const) {
    const v = x[k];
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new TypeError(`bindArray[${i}].${k} must be a number or a bigint, got ${describe(v)}`);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return String(v);
}
