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
  OP_WORDS,
  OpKind,
  TX_INJECT_ERROR,
  TX_PER_CHUNK,
  TX_WORDS,
  TxKind,
  VA_ATTR_INSERTED,
  VA_WORDS,
  VAS_PER_CHUNK,
  Errno,
  SubmitKind,
  VMBO_MAKE,
  ioOf,
} from './backend/engine.js';
import type { BackendName } from './backend/loader.js';
import { GpuVmError, errnoName } from './errors.js';
import { GpuVa, isGpuVa, readVa, vaHandle, vaSerial } from './gpu-va.js';
import { applyOp, isOp, LIST_REQ_MAP, LIST_REQ_UNMAP, listBos, listRecords, listState, requirePending, type OpList, type MapOp, type Op, type RemapOp, type UnmapOp } from './ops.js';
import { readVmOptions, type BigintOption } from './options.js';
import { attachMirror, detachMirror, type PageTable, type PtResolve } from './page-table.js';
import { checkU64, describe, getBig, hex, putLast, putU64, toBig, TWO32, U64_MAX, type U64 } from './u64.js';
import { Bo, boState, isBo, vmBoHandle, vmBoState, type VmBo } from './vm-bo.js';
import { setContextLookup, settleDeferred, VmContext } from './vm-context.js';
import { submitRequests, type BindRequests } from './submit.js';

const A = IO.ARG;
const D = IO.DATA;
/** 2^53: in number mode every address and offset the VM can report stays below it. */
const TWO53 = 2 ** 53;
/**
 * Most queries one findFirstMany call takes: its result is one JS array, and
 * V8 cannot make arrays of much more than 2^27 elements. Split larger batches.
 */
export const MAX_BATCH = 1 << 24;

/**
 * Options of `new GpuVm(...)`. `N` is the number type the VM reports:
 * `bigint: true` gives `GpuVm<bigint>`, no `bigint` (or `false`) `GpuVm<number>`.
 */
export type GpuVmOptions<N extends U64 = U64> = GpuVmBaseOptions & BigintOption<N>;

/** The options of `new GpuVm(...)` besides `bigint`. */
export interface GpuVmBaseOptions {
  /** A name for messages (default "unknown", like the kernel). */
  name?: string;
  /** First address of the VA space. */
  start: U64;
  /** Size of the VA space in bytes (start + range may reach 2^64 in bigint mode). */
  range: U64;
  /** The kernel-reserved node: visible to lookups, never mapped over or removed. */
  reserve?: { start: U64; range: U64 };
  /** Engine for this VM: 'native' or 'wasm' (default: GPUVM_BACKEND / auto). */
  backend?: BackendName;
}

/** A map request (drm_gpuvm_map_req). */
export interface MapRequest {
  /** first address to map */
  addr: U64;
  /** bytes to map */
  range: U64;
  /** the BO, or null / absent for a BO-less (e.g. sparse) mapping */
  bo?: Bo | null;
  /** offset into the BO of `addr` (default 0) */
  offset?: U64;
}

/** One entry of {@link GpuVmImpl.bindArray | GpuVm.bindArray}; `injectError` makes it fail (tests of the all-or-nothing rule). */
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

/** What {@link GpuVmImpl.stats | GpuVm.stats} reports. */
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

/** The calls that take a map request, and the labels their errors give its numbers (constants: no string is built per call). */
type MapCall = 'bind' | 'smMapOps' | 'smMap' | 'touchedBos';
const MAP_ARG_NAMES: Record<MapCall, readonly [string, string, string]> = {
  bind: ['addr', 'range', 'offset'],
  smMapOps: ['smMapOps: addr', 'smMapOps: range', 'smMapOps: offset'],
  smMap: ['smMap: addr', 'smMap: range', 'smMap: offset'],
  touchedBos: ['touchedBos: addr', 'touchedBos: range', 'touchedBos: offset'],
};

/** Step functions as read once from the caller's object. */
interface Steps<N extends U64> {
  /** the steps object itself, `this` of every step */
  self: object;
  // method signatures, not function-typed properties: those would make GpuVm<N> invariant in N
  map?(op: MapOp<N>): void;
  remap(op: RemapOp<N>): void;
  unmap(op: UnmapOp<N>): void;
}

/** Options of {@link GpuVmImpl.attachPageTable | GpuVm.attachPageTable}. */
export interface MirrorOptions {
  /** Use the ops' `keep` to skip writes that would not change the table (default true), as PageTable.commit does. */
  keep?: boolean;
}

/** `new GpuVm(...)`: the number type follows the `bigint` option. */
export interface GpuVmConstructor {
  /** A VM that reports bigints and accepts all of u64. */
  new (options: GpuVmOptions<bigint>): GpuVm<bigint>;
  /** A VM that reports numbers (every address below 2^53). */
  new (options: GpuVmOptions<number>): GpuVm<number>;
  /** `bigint` known only at run time: results are `number | bigint`. */
  new (options: GpuVmOptions<U64>): GpuVm<U64>;
  /** The number type named explicitly; the `bigint` option must agree. */
  new <N extends U64 = number>(options: GpuVmOptions<N>): GpuVm<N>;
  readonly prototype: GpuVm<U64>;
}

/**
 * One GPU virtual address space (drm_gpuvm): the mappings of `[start, end)`,
 * kept in an engine-side interval tree, with the kernel's split/merge rules.
 *
 * Map and unmap with the fused calls ({@link GpuVmImpl.bind | GpuVm.bind}, {@link GpuVmImpl.unbind | GpuVm.unbind},
 * {@link GpuVmImpl.bindArray | GpuVm.bindArray}), or generate op lists ({@link GpuVmImpl.smMapOps | GpuVm.smMapOps} and
 * friends) and apply them, or walk them in callback mode ({@link GpuVmImpl.smMap | GpuVm.smMap}).
 * BOs join a VM through VmBos ({@link GpuVmImpl.obtainBo | GpuVm.obtainBo}). A page table can be
 * kept in step with the VM ({@link GpuVmImpl.attachPageTable | GpuVm.attachPageTable}).
 *
 * `new GpuVm({ start, range })` reports numbers (every address below 2^53);
 * `new GpuVm({ start, range, bigint: true })` is a `GpuVm<bigint>` and takes
 * all of u64. Errors are {@link GpuVmError}s with the kernel's errno names;
 * a refused call changes nothing.
 *
 * @typeParam N - `number` or `bigint`: the type of every address it reports.
 */
class GpuVmImpl<N extends U64 = number> implements Iterable<GpuVa<N>> {
  static {
    setContextLookup((x) => (typeof x === 'object' && x !== null && #c in x ? (x as GpuVmImpl<U64>).#c : undefined));
  }

  // What the VM was made with. Getters over private fields, not plain
  // properties: the facade reads them on every call, and an assignment (by
  // mistake or on purpose) must not change how it reads numbers.
  readonly #name: string;
  readonly #big: boolean;
  readonly #start: N;
  readonly #range: N;
  readonly #end: N;

  /** A name for messages (default "unknown"). */
  get name(): string {
    return this.#name;
  }
  /** Whether results are bigints. */
  get bigint(): boolean {
    return this.#big;
  }
  /** The engine in use: 'native' or 'wasm'. */
  get backend(): BackendName {
    return this.#c.E.name;
  }
  /** First address of the VA space. */
  get start(): N {
    return this.#start;
  }
  /** Size of the VA space in bytes. */
  get range(): N {
    return this.#range;
  }
  /** start + range */
  get end(): N {
    return this.#end;
  }

  readonly #c: VmContext<N>;
  #kernelVa: GpuVa<N> | null = null;

  /** See {@link GpuVmConstructor}: `bigint: true` makes a `GpuVm<bigint>`. */
  constructor(options: GpuVmOptions<N>) {
    const o = readVmOptions(options);
    const E = o.engine;
    const big = o.bigint;
    const rs = o.reserveStartB;
    const rr = o.reserveRangeB;
    settleDeferred(); // an engine call outside any VM's context
    const io = ioOf(E);
    putU64(io, A + 0, o.start, 'start', big);
    putU64(io, A + 2, o.range, 'range', big);
    putU64(io, A + 4, rs, 'reserve.start', true);
    putU64(io, A + 6, rr, 'reserve.range', true);
    const h = E.vmCreate();
    if (h <= 0) {
      throw new GpuVmError(errnoName(h < 0 ? h : -Errno.EINVAL), this.#explainInit(o.startB, o.rangeB, rs, rr));
    }
    // nothing below can throw: the engine VM is never left without its object
    const endB = o.startB + o.rangeB;
    this.#c = new VmContext<N>(this as GpuVm<N>, E, h, o.name, big, o.startB, endB, rr !== 0n ? { start: rs, end: rs + rr } : null);
    this.#name = o.name;
    this.#big = big;
    this.#start = this.#c.fromBig(o.startB);
    this.#range = this.#c.fromBig(o.rangeB);
    this.#end = this.#c.fromBig(endB);
  }

  #explainInit(s: bigint, r: bigint, rs: bigint, rr: bigint): string {
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

  /** The unique VmBo for (this VM, bo), created if needed; +1 reference (drm_gpuvm_bo_obtain). */
  obtainBo(bo: Bo): VmBo<N> {
    if (!isBo(bo)) throw new TypeError(`obtainBo: bo must be a Bo, got ${describe(bo)}`);
    this.#c.alive('obtainBo');
    const have = boState(bo).vmBos.get(this as GpuVm<N>);
    if (have !== undefined) return have.get();
    return this.#c.createVmBo(bo, true);
  }

  /** The VmBo for (this VM, bo) with +1 reference, or null; never creates (drm_gpuvm_bo_find). */
  findBo(bo: Bo): VmBo<N> | null {
    if (!isBo(bo)) throw new TypeError(`findBo: bo must be a Bo, got ${describe(bo)}`);
    this.#c.alive('findBo');
    const have = boState(bo).vmBos.get(this as GpuVm<N>);
    return have === undefined ? null : have.get();
  }

  /**
   * Takes a VmBo made with VmBo.create: returns the existing one for its BO
   * (+1 reference, and `pre` is destroyed), or registers `pre` itself
   * (drm_gpuvm_bo_obtain_prealloc).
   */
  obtainPrealloc(pre: VmBo<N>): VmBo<N> {
    this.#c.checkVmBo(pre, 'obtainPrealloc');
    this.#c.alive('obtainPrealloc');
    if (vmBoState(pre).registered) throw new GpuVmError('EINVAL', 'obtainPrealloc: the VmBo is already obtained');
    const have = boState(pre.bo).vmBos.get(this as GpuVm<N>);
    if (have !== undefined) {
      have.get();
      pre.put();
      return have;
    }
    this.#c.register(pre);
    return pre;
  }

  /** External objects mapped in this VM (drm_gpuvm extobj list), in the order they came. */
  get extobjs(): VmBo<N>[] {
    return this.#c.extobjList.toArray();
  }

  /** VmBos on the evict list. */
  get evicted(): VmBo<N>[] {
    return this.#c.evictList.toArray();
  }

  /**
   * Calls `fn` for every evicted VmBo (drm_gpuvm_validate); each one `fn`
   * returns from is taken off the evict list. An exception stops the walk and
   * is re-thrown; the ones validated before it stay validated.
   */
  validate(fn: (vmBo: VmBo<N>) => void): void {
    this.#c.alive('validate');
    if (typeof fn !== 'function') throw new TypeError(`validate: fn must be a function, got ${describe(fn)}`);
    const list = this.#c.evictList;
    for (const vb of list.toArray()) {
      // fn may have put, destroyed or re-evicted anything, even the VM
      if (this.#c.h === 0) return;
      if (!vmBoState(vb).live || !list.has(vb)) continue;
      fn(vb);
      if (!list.has(vb)) continue;
      list.delete(vb);
    }
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
    this.#checkMapping('insert', addr, range, offset);
    this.#c.alive('insert');
    const E = this.#c.E;
    const io = ioOf(E);
    this.#c.put(io, A + 0, addr, 'addr');
    this.#c.put(io, A + 2, range, 'range');
    this.#c.put(io, A + 4, offset, 'offset');
    io[A + 6] = bo === null ? 0 : bo.id;
    io[A + 7] = flags >>> 0;
    const h = E.vaInsert(this.#c.h);
    if (h <= 0) throw this.#c.fail(h, 'insert', addr, range);
    const serial = ioOf(E)[IO.OUT_SERIAL];
    if (this.#c.mirror !== null) {
      // the VM first (it judges the request), then the table; a refusal takes the mapping out again
      try {
        this.#c.mirrorWrite(mappingRecord(OpKind.MAP, addr, range, offset, bo), [bo], 'insert', () => {});
      } catch (err) {
        E.vaRemove(this.#c.h, h, serial);
        throw err;
      }
    }
    if (bo !== null) {
      this.#c.boById.set(bo.id, bo);
      this.#c.looseBos.add(bo.id);
    }
    this.#c.mod++;
    return this.#c.vaCreated(h, serial, {
      addr: this.#c.fromBig(toBig(addr)),
      range: this.#c.fromBig(toBig(range)),
      bo,
      offset: this.#c.fromBig(toBig(offset)),
    });
  }

  /**
   * Checks the u64s of a mapping request; in number mode also that
   * offset + range stays at or below 2^53, so that every piece a later split
   * makes of it has an offset a number can report exactly.
   */
  #checkMapping(what: string, addr: unknown, range: unknown, offset: unknown, sep = ': '): void {
    const big = this.#big;
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
    this.#c.checkVa(va, 'remove');
    // a destroyed VM refuses every call alike, its kernel node included
    this.#c.alive('remove');
    if (va.isKernelNode) throw new GpuVmError('EPERM', 'remove: the kernel-reserved node cannot be removed');
    if (this.#c.mirror !== null && readVa(this.#c, va)?.inserted === true) {
      // the table first: removing an inserted mapping cannot fail afterwards
      this.#c.mirrorWrite(mappingRecord(OpKind.UNMAP, va.addr, va.range, va.offset, va.bo), [va.bo], 'remove', () => {});
    }
    const r = this.#c.E.vaRemove(this.#c.h, vaHandle(va), vaSerial(va));
    if (r < 0) {
      this.#c.alive('remove');
      if (r === -Errno.EPERM) throw new GpuVmError('EPERM', 'remove: the kernel-reserved node cannot be removed');
      throw new GpuVmError('EINVAL', 'remove: the mapping is not in the VM');
    }
    this.#c.changed(ioOf(this.#c.E));
  }

  // ---- lookups --------------------------------------------------------------------

  /** Writes addr/last of [addr, addr+range) into A0..A3; false when range is 0. */
  #putQuery(io: Uint32Array, addr: U64, range: U64): boolean {
    this.#c.put(io, A + 0, addr, 'addr');
    this.#c.put(io, A + 4, range, 'range');
    if (io[A + 4] === 0 && io[A + 5] === 0) return false;
    putLast(io, A + 2, A + 0, A + 4);
    return true;
  }

  /** The lowest mapping overlapping [addr, addr+range), or null (drm_gpuva_find_first). */
  findFirst(addr: U64, range: U64): GpuVa<N> | null {
    const E = this.#c.E;
    const io = ioOf(E);
    // an empty query finds nothing, but on a destroyed VM it is EINVAL like any other call
    if (!this.#putQuery(io, addr, range)) {
      this.#c.alive('findFirst');
      return null;
    }
    const h = E.findFirst(this.#c.h);
    if (h <= 0) {
      if (h < 0) throw this.#c.fail(h, 'findFirst');
      this.#c.alive('findFirst');
      return null;
    }
    return this.#c.vaFromRecord(ioOf(E), D);
  }

  /** The mapping at exactly [addr, addr+range), or null (drm_gpuva_find). */
  find(addr: U64, range: U64): GpuVa<N> | null {
    const E = this.#c.E;
    const io = ioOf(E);
    if (!this.#putQuery(io, addr, range)) {
      this.#c.alive('find');
      return null;
    }
    const a0 = io[A], a1 = io[A + 1], r0 = io[A + 4], r1 = io[A + 5];
    const h = E.findFirst(this.#c.h);
    if (h <= 0) {
      if (h < 0) throw this.#c.fail(h, 'find');
      this.#c.alive('find');
      return null;
    }
    const o = ioOf(E);
    if (o[D + 4] !== a0 || o[D + 5] !== a1 || o[D + 6] !== r0 || o[D + 7] !== r1) return null;
    return this.#c.vaFromRecord(o, D);
  }

  /** Whether [addr, addr+range) holds no mapping (the kernel node counts; drm_gpuvm_interval_empty). */
  isEmpty(addr: U64, range: U64): boolean {
    const E = this.#c.E;
    const io = ioOf(E);
    if (!this.#putQuery(io, addr, range)) {
      this.#c.alive('isEmpty');
      return true;
    }
    const h = E.findFirst(this.#c.h);
    if (h < 0) throw this.#c.fail(h, 'isEmpty');
    this.#c.alive('isEmpty');
    return h === 0;
  }

  /** The mapping containing one address, if that address is a valid one-unit range of the VM. */
  #containing(x: bigint, what: string): GpuVa<N> | null {
    this.#c.alive(what);
    if (x < this.#c.startB || x >= this.#c.endB) return null;
    const k = this.#c.reserveB;
    if (k && x >= k.start && x < k.end) return null;
    const E = this.#c.E;
    const io = ioOf(E);
    io[A] = Number(x & 0xffff_ffffn);
    io[A + 1] = Number(x >> 32n);
    io[A + 2] = io[A];
    io[A + 3] = io[A + 1];
    const h = E.findFirst(this.#c.h);
    if (h <= 0) return null;
    return this.#c.vaFromRecord(ioOf(E), D);
  }

  /** The mapping containing start - 1, or null (drm_gpuva_find_prev). */
  findPrev(start: U64): GpuVa<N> | null {
    const io = ioOf(this.#c.E);
    this.#c.put(io, A, start, 'start');
    this.#c.alive('findPrev');
    if (typeof start === 'number') return start === 0 ? null : this.#containingN(start - 1);
    const s = toBig(start);
    if (s === 0n) return null;
    return this.#containing(s - 1n, 'findPrev');
  }

  /** The mapping containing end, or null (drm_gpuva_find_next). */
  findNext(end: U64): GpuVa<N> | null {
    const io = ioOf(this.#c.E);
    this.#c.put(io, A, end, 'end');
    if (typeof end === 'number') {
      this.#c.alive('findNext');
      return this.#containingN(end);
    }
    return this.#containing(toBig(end), 'findNext');
  }

  /** #containing for a safe integer (put() checked it), without bigints; the VM is alive. */
  #containingN(x: number): GpuVa<N> | null {
    const c = this.#c;
    if (x < c.startN || x >= c.endN || (x >= c.reserveStartN && x < c.reserveEndN)) return null;
    const E = c.E;
    const io = ioOf(E);
    const lo = x >>> 0;
    const hi = (x - lo) / 0x1_0000_0000;
    io[A] = lo;
    io[A + 1] = hi;
    io[A + 2] = lo;
    io[A + 3] = hi;
    const h = E.findFirst(c.h);
    if (h <= 0) return null;
    return c.vaFromRecord(ioOf(E), D);
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
    const big = this.#big;
    checkU64(range, 'findFirstMany: range', big);
    const q = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) putU64(q, 2 * i, addrs[i], `addrs[${i}]`, big);
    this.#c.alive('findFirstMany');
    const E = this.#c.E;
    let io = ioOf(E);
    this.#c.put(io, A + 4, range, 'range');
    const r0 = io[A + 4], r1 = io[A + 5];
    const out: (GpuVa<N> | null)[] = new Array(n).fill(null);
    if (r0 === 0 && r1 === 0) return out;
    for (let base = 0; base < n; base += VAS_PER_CHUNK) {
      const m = Math.min(VAS_PER_CHUNK, n - base);
      io = ioOf(E);
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
      const found = E.findFirstBatch(this.#c.h, m);
      if (found < 0) throw this.#c.fail(found, 'findFirstMany');
      if (found === 0) continue;
      io = ioOf(E);
      for (let i = 0; i < m; i++) {
        const p = D + VA_WORDS * i;
        if (io[p] !== 0) out[base + i] = this.#c.vaFromRecord(io, p);
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
    this.#c.alive('mappings');
    const E = this.#c.E;
    let io = ioOf(E);
    let c0: number, c1: number, l0: number, l1: number;
    if (addr === undefined && range === undefined) {
      c0 = c1 = 0;
      l0 = l1 = TWO32 - 1;
    } else {
      if (addr === undefined || range === undefined) throw new TypeError('mappings: pass both addr and range, or neither');
      if (!this.#putQuery(io, addr, range)) return;
      c0 = io[A];
      c1 = io[A + 1];
      l0 = io[A + 2];
      l1 = io[A + 3];
    }
    let yielded = false;
    let chunk = 16;
    for (;;) {
      this.#c.alive('mappings');
      io = ioOf(E);
      io[A] = c0;
      io[A + 1] = c1;
      io[A + 2] = l0;
      io[A + 3] = l1;
      const n = E.iterate(this.#c.h, chunk);
      if (n < 0) throw this.#c.fail(n, 'mappings');
      const recs = ioOf(E).slice(D, D + n * VA_WORDS);
      const mod = this.#c.mod;
      let i = 0;
      for (; i < n; i++) {
        if (this.#c.mod !== mod) break;
        const p = i * VA_WORDS;
        // monotonic: nothing that starts below the cursor once something was yielded
        if (yielded && (recs[p + 5] < c1 || (recs[p + 5] === c1 && recs[p + 4] < c0))) continue;
        const va = this.#c.vaFromRecord(recs, p);
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
        if (this.#c.h === 0) throw new GpuVmError('EINVAL', `mappings: the VM ${JSON.stringify(this.name)} was destroyed while iterating`);
        // past the last address asked for (or the top of u64): done
        if (c1 > l1 || (c1 === l1 && c0 > l0) || c1 >= TWO32) return;
      }
      if (i === n && n < chunk) return;
      if (chunk < VAS_PER_CHUNK) chunk = Math.min(chunk * 4, VAS_PER_CHUNK);
    }
  }

  /** `for (const va of vm)`: every mapping, as {@link GpuVmImpl.mappings} without arguments. */
  [Symbol.iterator](): Iterator<GpuVa<N>> {
    return this.mappings();
  }

  /** The kernel-reserved node, or null. */
  get kernelNode(): GpuVa<N> | null {
    this.#c.alive('kernelNode');
    if (this.#kernelVa === null && this.#c.reserveB !== null) {
      this.#kernelVa = this.#kernelNodeLookup(this.#c.reserveB);
    }
    return this.#kernelVa;
  }

  #kernelNodeLookup(k: { start: bigint }): GpuVa<N> | null {
    const E = this.#c.E;
    const io = ioOf(E);
    io[A] = Number(k.start & 0xffff_ffffn);
    io[A + 1] = Number(k.start >> 32n);
    io[A + 2] = io[A];
    io[A + 3] = io[A + 1];
    return E.findFirst(this.#c.h) > 0 ? this.#c.vaFromRecord(ioOf(E), D) : null;
  }

  /** Mappings in the VM, the kernel node excluded. */
  get count(): number {
    this.#c.alive('count');
    return this.#c.E.vmStats(this.#c.h);
  }

  /** Engine-side size of this VM. */
  stats(): GpuVmStats {
    this.#c.alive('stats');
    const E = this.#c.E;
    const n = E.vmStats(this.#c.h);
    const io = ioOf(E);
    return { mappings: n, treeNodes: io[IO.OUT_INFO], bytes: io[IO.OUT_INFO + 1] };
  }

  // ---- split / merge: fused ------------------------------------------------------

  /**
   * Maps [addr, addr+range) to `bo` at `offset` with split/merge, applying
   * the ops at once (sm_map + apply, one engine call). Returns the op count.
   */
  bind(addr: U64, range: U64, bo: Bo | null = null, offset: U64 = 0): number {
    if (this.#c.mirror !== null) return this.#applyMirrored(this.#makeMapList('bind', addr, range, bo, offset));
    const make = this.#putMapArgs('bind', addr, range, bo, offset);
    const E = this.#c.E;
    const r = E.bind(this.#c.h);
    if (make !== null) this.#c.adoptMadeVmBo(make, ioOf(E));
    if (r < 0) throw this.#c.fail(r, 'bind', addr, range);
    this.#c.listGen++;
    this.#c.changed(ioOf(E));
    return r;
  }

  /**
   * Writes a map request to ARG (every argument is a plain value here, so
   * checking while writing runs no user code in between). For a BO new to
   * this VM the request asks the engine to make its VmBo (VMBO_MAKE), and
   * this returns the BO: the caller adopts the VmBo after the engine call
   * (VmContext.adoptMadeVmBo). Else null. The names label errors.
   */
  #putMapArgs(what: MapCall, addr: U64, range: U64, bo: Bo | null, offset: U64): Bo | null {
    const E = this.#c.E;
    const big = this.#big;
    const names = MAP_ARG_NAMES[what];
    const io = ioOf(E);
    putU64(io, A + 0, addr, names[0], big);
    putU64(io, A + 2, range, names[1], big);
    putU64(io, A + 4, offset, names[2], big);
    // number mode: every piece a split can make must report its offset exactly
    if (!big && io[A + 3] + io[A + 5] >= 0x1f_ffff) this.#checkMapping(what, addr, range, offset);
    let vmbo = 0;
    let make: Bo | null = null;
    if (bo !== null) {
      if (!isBo(bo)) throw new TypeError(`${what}: bo must be a Bo or null, got ${describe(bo)}`);
      // most requests name the BO the previous request of that BO in this VM named
      const bs = boState(bo);
      const vb = bs.lastVm === this ? (bs.lastVmBo as VmBo<N>) : (bs.vmBos.get(this) as VmBo<N> | undefined);
      if (vb === undefined) {
        this.#c.alive(what);
        make = bo;
        vmbo = VMBO_MAKE;
      } else {
        bs.lastVm = this;
        bs.lastVmBo = vb;
        vmbo = vmBoHandle(vb);
      }
      io[A + 6] = bo.id;
    } else {
      io[A + 6] = 0;
    }
    io[A + 7] = vmbo;
    return make;
  }

  /** Unmaps [addr, addr+range) with split/merge and applies (sm_unmap + apply). Unmapping nothing is success. */
  unbind(addr: U64, range: U64): number {
    if (this.#c.mirror !== null) return this.#applyMirrored(this.#rangeList('smUnmapOps', addr, range));
    const E = this.#c.E;
    const io = ioOf(E);
    putU64(io, A + 0, addr, 'addr', this.#big);
    putU64(io, A + 2, range, 'range', this.#big);
    const r = E.unbind(this.#c.h);
    if (r < 0) throw this.#c.fail(r, 'unbind', addr, range);
    this.#c.listGen++;
    this.#c.changed(ioOf(E));
    return r;
  }

  /**
   * Runs a batch of bind/unbind requests (see {@link BindRequests}) in one
   * engine call per 8192 requests: the analogue of a VM_BIND array without
   * its atomicity. Each request runs exactly as `bind` / `unbind` with the
   * same arguments would; `requests.results[i]` gets its op count, or its
   * negated errno when it fails (EINVAL, EBUSY, ...), and a failing request
   * changes nothing while the following ones still run. `bos` is the batch's
   * BO table: a bind names its BO by index (`requests.bo[i]`, -1 for none).
   *
   * The whole batch is checked first (types, kinds, BO indexes, number-mode
   * limits as bind checks them): a bad one throws (TypeError, RangeError)
   * with nothing run. ENOMEM (also when the VmBo a BO's first bind needs
   * cannot be made) stops the batch: the requests before it stay applied,
   * the failing one changed nothing, the ones after it did not run and
   * their results are not written. VmBos are made and reaped where the same
   * bind/unbind calls would make and reap them. With a page table attached the
   * requests go one by one through `bind` / `unbind` (which write the table
   * too), with the same results.
   *
   * @returns the number of requests run: `requests.length`, or the index of
   * the request that failed with ENOMEM plus one
   */
  submit(requests: BindRequests<N>, bos: readonly (Bo | null)[] = []): number {
    const c = this.#c;
    if (c.mirror === null) return submitRequests(c, requests, bos, null);
    return submitRequests(c, requests, bos, (kind, addr, range, bo, offset) =>
      kind === SubmitKind.BIND ? this.bind(addr, range, bo, offset) : this.unbind(addr, range),
    );
  }

  /** A fused call with a page table attached: the list path, which writes the table before the VM. */
  #applyMirrored(list: OpList<N>): number {
    try {
      list.apply();
    } catch (err) {
      list.drop();
      throw err;
    }
    return list.length;
  }

  // ---- split / merge: op lists -------------------------------------------------------

  /** Split/merge ops for mapping a request (drm_gpuvm_sm_map_ops_create). */
  smMapOps(req: MapRequest): OpList<N> {
    const { addr, range, bo, offset } = this.#readMapFields(req, 'smMapOps');
    return this.#makeMapList('smMapOps', addr, range, bo, offset);
  }

  /** A map request's fields, each read once (they may be getters); checked later, as they are written. */
  #readMapFields(req: unknown, what: string): { addr: U64; range: U64; bo: Bo | null; offset: U64 } {
    if (req === null || typeof req !== 'object') throw new TypeError(`${what}: expected { addr, range, bo?, offset? }, got ${describe(req)}`);
    const r = req as MapRequest;
    const addr = r.addr;
    const range = r.range;
    const off = r.offset;
    const bo = r.bo ?? null;
    return { addr, range, bo, offset: off === undefined ? 0 : off };
  }

  /** The list of a map request whose arguments were read: writes and checks them, generates the list. */
  #makeMapList(what: MapCall, addr: U64, range: U64, bo: Bo | null, offset: U64): OpList<N> {
    const c = this.#c;
    const make = this.#putMapArgs(what, addr, range, bo, offset);
    // (a list whose VmBo the engine is to make is made now: until then the
    // facade could not find that VmBo)
    if (make === null && what === 'smMapOps') {
      const deferred = c.deferList(LIST_REQ_MAP);
      if (deferred !== null) return deferred;
    }
    const E = c.E;
    const n = E.smMapOps(c.h);
    // the pending list holds its own reference to the VmBo it maps to
    if (make !== null) c.adoptMadeVmBo(make, ioOf(E));
    if (n < 0) throw c.fail(n, what, addr, range);
    return c.takeList(n, false);
  }

  /** A list the engine makes of a range (the facade side of the engines' rangeListOps). */
  #rangeList(what: 'smUnmapOps' | 'prefetchOps' | 'madviseOps', addr: U64, range: U64): OpList<N> {
    const E = this.#c.E;
    const io = ioOf(E);
    this.#c.put(io, A + 0, addr, 'addr');
    this.#c.put(io, A + 2, range, 'range');
    const n = E[what](this.#c.h);
    // prefetch skips the kernel node rather than refusing it
    if (n < 0) throw this.#c.fail(n, what, addr, range, what !== 'prefetchOps');
    return this.#c.takeList(n, false);
  }

  /** Split/merge ops for unmapping a range (drm_gpuvm_sm_unmap_ops_create). */
  smUnmapOps(addr: U64, range: U64): OpList<N> {
    return this.#unmapList(addr, range, true);
  }

  /** smUnmapOps; `defer`: the list may be deferred (see VmContext.deferList). */
  #unmapList(addr: U64, range: U64, defer: boolean): OpList<N> {
    const c = this.#c;
    const E = c.E;
    const io = ioOf(E);
    putU64(io, A + 0, addr, 'smUnmapOps: addr', this.#big);
    putU64(io, A + 2, range, 'smUnmapOps: range', this.#big);
    if (defer) {
      const deferred = c.deferList(LIST_REQ_UNMAP);
      if (deferred !== null) return deferred;
    }
    const n = E.smUnmapOps(c.h);
    if (n < 0) throw c.fail(n, 'smUnmapOps', addr, range);
    return c.takeList(n, false);
  }

  /**
   * One PREFETCH per mapping overlapping the range, the kernel node skipped
   * (drm_gpuvm_prefetch_ops_create). Like the kernel, it does not check the
   * range against the VM: a zero range lists nothing, a range reaching
   * outside lists what it overlaps; only u64 overflow is EINVAL.
   */
  prefetchOps(addr: U64, range: U64): OpList<N> {
    return this.#rangeList('prefetchOps', addr, range);
  }

  /**
   * Splits BO-less mappings at the edges of the range, for per-range
   * attributes; no unmaps (drm_gpuvm_madvise_ops_create).
   */
  madviseOps(addr: U64, range: U64): OpList<N> {
    return this.#rangeList('madviseOps', addr, range);
  }

  /** Applies a MAP op: inserts and links the new mapping (drm_gpuva_map + link). */
  vaMap(op: MapOp<N>): GpuVa<N> {
    const c = applyOp(this.#c, op, 'map', 'vaMap');
    return this.#c.vaCreated(c[0], c[1], op);
  }

  /** Applies a REMAP op: the pieces replace the old mapping (drm_gpuva_remap + link/unlink). */
  vaRemap(op: RemapOp<N>): { prev: GpuVa<N> | null; next: GpuVa<N> | null } {
    const c = applyOp(this.#c, op, 'remap', 'vaRemap');
    return {
      prev: op.prev ? this.#c.vaCreated(c[0], c[1], op.prev) : null,
      next: op.next ? this.#c.vaCreated(c[2], c[3], op.next) : null,
    };
  }

  /** Applies an UNMAP op: removes and unlinks the mapping (drm_gpuva_unmap + unlink). */
  vaUnmap(op: UnmapOp<N>): void {
    applyOp(this.#c, op, 'unmap', 'vaUnmap');
  }

  /** The range a REMAP leaves free: between prev's end and next's start (drm_gpuva_op_remap_to_unmap_range). */
  remapHole(op: RemapOp<N>): { addr: N; range: N } {
    if (!isOp(op) || op.kind !== 'remap') {
      throw new TypeError(`remapHole: expected a remap op handed out by an op list, got ${isOp(op) ? `a ${op.kind} op` : describe(op)}`);
    }
    const ls = listState(op.list);
    const w = ls.words;
    const p = ls.at + op.index * OP_WORDS;
    const addr = getBig(w, p + 4);
    const start = (w[p] & OP_HAS_PREV) !== 0 ? addr + getBig(w, p + 10) : addr;
    const end = (w[p] & OP_HAS_NEXT) !== 0 ? getBig(w, p + 12) : addr + getBig(w, p + 6);
    return { addr: this.#c.fromBig(start), range: this.#c.fromBig(end - start) };
  }

  // ---- callback mode -----------------------------------------------------------------

  /**
   * Calls the steps in list order. Each step runs with the engine and io
   * consistent (nothing of the walk is kept in io between steps), so a step
   * may call anything, even this VM; a step that makes the list stale (by
   * generating another list or a fused call) ends the walk with the usual
   * stale-list error at the next vaMap/vaRemap/vaUnmap.
   */
  #runSteps(list: OpList<N>, steps: Steps<N>): void {
    // called with `steps` as `this`, as a method call would
    const self = steps.self;
    try {
      for (let i = 0; i < list.length; i++) {
        const op = list.get(i);
        if (op.kind === 'map') steps.map!.call(self, op);
        else if (op.kind === 'remap') steps.remap.call(self, op);
        else if (op.kind === 'unmap') steps.unmap.call(self, op);
      }
    } finally {
      if (list.state === 'pending') list.drop();
    }
  }

  /** Reads the step functions once (they may be getters) and checks them. */
  #readSteps(steps: unknown, needMap: boolean, what: string): Steps<N> {
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
    return { self: steps, map, remap, unmap };
  }

  /**
   * Callback mode (drm_gpuvm_sm_map): calls steps.unmap/remap for each
   * affected mapping in order, then steps.map. Inside them the driver updates
   * the VM with vaMap/vaRemap/vaUnmap (or leaves it alone). An exception from a
   * step stops the walk and is re-thrown; what earlier steps did stays done.
   */
  smMap(req: MapRequest, steps: SmSteps<N>): void {
    // every argument is read before anything is written
    const { addr, range, bo, offset } = this.#readMapFields(req, 'smMap');
    const s = this.#readSteps(steps, true, 'smMap');
    this.#runSteps(this.#makeMapList('smMap', addr, range, bo, offset), s);
  }

  /** Callback mode for unmapping (drm_gpuvm_sm_unmap). */
  smUnmap(addr: U64, range: U64, steps: SmSteps<N>): void {
    const s = this.#readSteps(steps, false, 'smUnmap');
    this.#runSteps(this.#unmapList(addr, range, false), s);
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
      const { addr, range, bo, offset } = this.#readMapFields(req, 'touchedBos');
      list = this.#makeMapList('touchedBos', addr, range, bo, offset);
    } else if (kind === 'unmap') {
      const { addr, range } = req as { addr: U64; range: U64 };
      list = this.smUnmapOps(addr, range);
    } else {
      throw new TypeError(`touchedBos: op must be 'map' or 'unmap', got ${describe(kind)}`);
    }
    const out = new Set<Bo>();
    for (const bo of listBos(this.#c, listState(list), 0, list.length)) if (bo !== null) out.add(bo);
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
    for (let i = 0; i < n; i++) tx[i] = this.#readEntry(entries[i], i);
    this.#c.alive('bindArray');
    const E = this.#c.E;
    const temps: VmBo<N>[] = [];
    const tempByBo = new Map<Bo, VmBo<N>>();
    const vmBoHandleFor = (bo: Bo, create: boolean): number => {
      const have = boState(bo).vmBos.get(this as GpuVm<N>) ?? tempByBo.get(bo);
      if (have !== undefined) return vmBoHandle(have);
      if (!create) return 0;
      const vb = this.#c.createVmBo(bo, true);
      temps.push(vb);
      tempByBo.set(bo, vb);
      return vmBoHandle(vb);
    };
    let r: number;
    try {
      for (const e of tx) if (e.op === 'map' && e.bo !== null) vmBoHandleFor(e.bo, true);
      E.txClear(this.#c.h);
      for (let base = 0; base < n; base += TX_PER_CHUNK) {
        const m = Math.min(TX_PER_CHUNK, n - base);
        const io = ioOf(E);
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
              this.#c.put(io, p + 4, e.addr, `${at}.addr`);
              this.#c.put(io, p + 6, e.range, `${at}.range`);
              this.#c.put(io, p + 8, e.offset, `${at}.offset`);
              break;
            case 'unmap':
            case 'prefetch':
              io[p] = (e.op === 'unmap' ? TxKind.UNMAP : TxKind.PREFETCH) | inject;
              this.#c.put(io, p + 4, e.addr, `${at}.addr`);
              this.#c.put(io, p + 6, e.range, `${at}.range`);
              break;
            case 'unmapAll':
              io[p] = TxKind.UNMAP_ALL | inject;
              io[p + 1] = e.bo!.id;
              io[p + 2] = vmBoHandleFor(e.bo!, false);
              break;
          }
        }
        const s = E.txStage(this.#c.h, m);
        if (s < 0) throw new GpuVmError(errnoName(s), `bindArray: staging entries ${base}..${base + m - 1} failed`);
      }
      r = E.txRun(this.#c.h);
    } catch (err) {
      E.txClear(this.#c.h);
      for (const vb of temps) this.#c.releaseTemp(vb);
      throw err;
    }
    const failAt = ioOf(E)[IO.OUT_FAIL_INDEX];
    if (r < 0) {
      for (const vb of temps) this.#c.releaseTemp(vb);
      // a failed transaction leaves the pending list (if any) as it was
      if (ioOf(E)[IO.OUT_ZOMBIES] !== 0) this.#c.reap();
      if (r === -Errno.EBUSY || failAt >= n) throw this.#c.fail(r, 'bindArray');
      const e = tx[failAt];
      const at = `bindArray[${failAt}] (${e.op})`;
      if (e.injectError && r === -Errno.ENOMEM) throw new GpuVmError('ENOMEM', `${at}: injected error; nothing was changed`);
      if (e.op !== 'unmapAll') throw this.#c.fail(r, at, e.addr, e.range, e.op !== 'prefetch');
      throw this.#c.fail(r, at);
    }
    const list = this.#c.takeList(r, true, false);
    for (const vb of temps) this.#c.releaseTemp(vb);
    this.#c.changed(ioOf(E));
    if (this.#c.mirror !== null) this.#mirrorTransaction(list);
    return list;
  }

  /**
   * Writes an applied transaction into the attached page table. The engine
   * cannot hold a transaction open while resolve (user code) runs, so the VM
   * goes first; if resolve throws or the table refuses, the inverse
   * transaction puts the VM's mappings back (same ranges, BOs and offsets, as
   * new GpuVa objects) and the error is re-thrown.
   */
  #mirrorTransaction(list: OpList<N>): void {
    const c = this.#c;
    const ls = listState(list);
    const w = listRecords(ls, 0, list.length);
    const bos = listBos(c, ls, 0, list.length);
    try {
      c.mirrorWrite(w, bos, 'bindArray', () => {});
    } catch (err) {
      const undo: BindEntry[] = [];
      for (let i = list.length - 1; i >= 0; i--) {
        const p = i * OP_WORDS;
        const k = w[p] & 0xff;
        const addr = c.u(w, p + 4, 'addr');
        const range = c.u(w, p + 6, 'range');
        if (k === OpKind.MAP) undo.push({ op: 'unmap', addr, range });
        else if (k !== OpKind.PREFETCH) undo.push({ op: 'map', addr, range, bo: bos[i], offset: c.u(w, p + 8, 'offset') });
      }
      const mirror = c.mirror;
      c.mirror = null;
      try {
        this.bindArray(undo);
      } catch (undoErr) {
        // the VM keeps the transaction, the table does not: they are out of step
        if (mirror !== null) detachMirror(mirror.pt);
        throw new GpuVmError('EIO', 'bindArray: the page table refused and the VM could not be put back; the table was detached', {
          cause: undoErr,
        });
      }
      c.mirror = mirror;
      throw err;
    }
  }

  // ---- page table mirror ----------------------------------------------------------

  /**
   * Keeps `pt` in step with this VM: the table's part of the VM's range is
   * cleared and every mapping (the kernel node excepted) bound, through
   * `resolve(bo, offset, length)` (null backing for BO-less mappings); from
   * then on every bind, unbind, bindArray, applied op (list.apply, vaMap,
   * vaRemap, vaUnmap), insert and remove writes the table too, in one table
   * call. A refusal (resolve throws, the table says EINVAL, ENOMEM or E2BIG)
   * leaves both as they were. One table per VM and one VM per table; while
   * attached, the table refuses bind, unbind, batch and commit (EBUSY) but
   * reads and zaps freely. `pt.destroy()` or `vm.destroy()` detach it.
   */
  attachPageTable(pt: PageTable<any>, resolve: PtResolve, options: MirrorOptions = {}): void { // eslint-disable-line @typescript-eslint/no-explicit-any
    const c = this.#c;
    if (typeof resolve !== 'function') throw new TypeError(`attachPageTable: resolve must be a function, got ${describe(resolve)}`);
    if (options === null || typeof options !== 'object') throw new TypeError(`attachPageTable: options must be an object, got ${describe(options)}`);
    const keep = options.keep;
    if (keep !== undefined && typeof keep !== 'boolean') throw new TypeError(`attachPageTable: keep must be a boolean, got ${describe(keep)}`);
    c.alive('attachPageTable');
    if (c.mirror !== null) throw new GpuVmError('EBUSY', 'attachPageTable: a page table is already attached to this VM; detach it first');
    // every mapping as a MAP record, in address order
    const vas = [...this.mappings()].filter((va) => !va.isKernelNode);
    const words = new Uint32Array(vas.length * OP_WORDS);
    const bos: (Bo | null)[] = new Array(vas.length);
    for (let i = 0; i < vas.length; i++) {
      const va = vas[i];
      words.set(mappingRecord(OpKind.MAP, va.addr, va.range, va.offset, va.bo), i * OP_WORDS);
      bos[i] = va.bo;
    }
    const mirror = { pt, resolve, keep: keep !== false };
    attachMirror(pt, c.startB, c.endB, words, bos, resolve, c.bigint, () => {
      if (c.mirror === mirror) c.mirror = null;
    });
    c.mirror = mirror;
  }

  /** Stops keeping the attached page table in step (it keeps its entries); returns it, or null. */
  detachPageTable(): PageTable<any> | null { // eslint-disable-line @typescript-eslint/no-explicit-any
    const m = this.#c.mirror;
    if (m === null) return null;
    detachMirror(m.pt);
    this.#c.mirror = null;
    return m.pt;
  }

  /** The page table kept in step with this VM, or null. */
  get pageTable(): PageTable<any> | null { // eslint-disable-line @typescript-eslint/no-explicit-any
    return this.#c.mirror?.pt ?? null;
  }

  /** One bindArray entry, read once and checked. */
  #readEntry(e: unknown, i: number): TxEntry {
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
        this.#checkMapping(`bindArray[${i}]`, addr, range, offset, '.');
        return { op, addr: addr as U64, range: range as U64, bo, offset: offset as U64, injectError: inject };
      }
      case 'unmap':
      case 'prefetch': {
        const { addr, range } = x;
        checkU64(addr, `bindArray[${i}].addr`, this.#big);
        checkU64(range, `bindArray[${i}].range`, this.#big);
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
    return this.#c.h === 0;
  }

  /**
   * Releases the VM and everything in it (drm_gpuvm_put to zero). Its
   * mappings and VmBos become dead objects; using them, or the VM, is EINVAL.
   */
  destroy(): void {
    if (this.#c.h === 0) return;
    this.detachPageTable();
    this.#c.E.vmDestroy(this.#c.h);
    this.#c.h = 0;
    for (const vb of this.#c.liveVmBos()) {
      vmBoState(vb).live = false;
      const bs = boState(vb.bo);
      if (bs.lastVmBo === vb) {
        bs.lastVm = null;
        bs.lastVmBo = null;
      }
      if (bs.vmBos.get(this) === vb) bs.vmBos.delete(this);
    }
    this.#c.vmBoAt.length = 0;
    this.#c.extobjList.clear();
    this.#c.evictList.clear();
    this.#c.vaCache.length = 0;
    // lists of the VM stay readable: they find its BOs in the grave
    this.#c.buryAll();
    this.#c.listGen++;
  }

  /** Destroys the VM (`using vm = new GpuVm(...)`). */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /** JSON: name, range in hex, number mode, engine, mapping count (null once destroyed). */
  toJSON(): { name: string; start: string; end: string; bigint: boolean; backend: BackendName; mappings: number | null; destroyed: boolean } {
    const c = this.#c;
    return {
      name: this.name,
      start: hex(c.startB),
      end: hex(c.endB),
      bigint: this.#big,
      backend: this.backend,
      mappings: c.h === 0 ? null : c.E.vmStats(c.h),
      destroyed: c.h === 0,
    };
  }

  /** `GpuVm ctx0 [0x100000, 0x10000100000) 3 mappings (native)`. */
  toString(): string {
    const c = this.#c;
    const what = c.h === 0 ? 'destroyed' : `${c.E.vmStats(c.h)} mappings`;
    const pt = c.mirror !== null ? ', page table attached' : '';
    return `GpuVm ${this.name} [${hex(c.startB)}, ${hex(c.endB)}) ${what} (${this.backend}${pt})`;
  }

  /** console.log shows the VA space, and nothing internal. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/** One op record (engine layout) naming a mapping: what the mirror writes for insert, remove and attach. */
function mappingRecord(kind: number, addr: U64, range: U64, offset: U64, bo: Bo | null): Uint32Array {
  const w = new Uint32Array(OP_WORDS);
  w[0] = kind;
  w[3] = bo === null ? 0 : bo.id;
  putU64(w, 4, addr, 'addr', true);
  putU64(w, 6, range, 'range', true);
  putU64(w, 8, offset, 'offset', true);
  return w;
}

/** A number that is an integer in [0, 2^53): what putU64 takes without its slow path. */
function isU53(v: unknown): boolean {
  return typeof v === 'number' && v >= 0 && v < TWO53 && Math.floor(v) === v;
}

/** One GPU virtual address space; see {@link GpuVmImpl} for the members. */
export type GpuVm<N extends U64 = number> = GpuVmImpl<N>;
/** The class behind {@link GpuVm}: its members are documented here. Create VMs with `new GpuVm(options)`. */
export type { GpuVmImpl };
/** `new GpuVm(options)`: `GpuVm<bigint>` with `bigint: true`, else `GpuVm<number>`. */
export const GpuVm = GpuVmImpl as unknown as GpuVmConstructor;
