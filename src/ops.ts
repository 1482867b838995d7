/**
 * Op lists (drm_gpuva_ops): what split/merge, prefetch, madvise and VmBo
 * unmap generate. A list is a copy of the engine's op records; op objects
 * (and the BOs they name) are looked up only when asked for. The engine keeps the list pending until it is
 * applied or dropped, so applying never allocates in the engine.
 */
import { IO, OP_HAS_NEXT, OP_HAS_PREV, OP_KEEP, OP_WORDS, OpKind, ioOf } from './backend/engine.js';
import { GpuVmError, errnoName } from './errors.js';
import type { GpuVa } from './gpu-va.js';
import type { GpuVm } from './gpuvm.js';
import { isBo, type Bo } from './vm-bo.js';
import { describe, getBig, getNum, type U64 } from './u64.js';
import type { Grave, VmContext } from './vm-context.js';

/** A mapping an op would create: the MAP request, or a REMAP's surviving piece. */
export interface OpMapping<N extends U64 = U64> {
  readonly addr: N;
  readonly range: N;
  readonly bo: Bo | null;
  readonly offset: N;
}

interface OpBase {
  /** the list it belongs to */
  readonly list: OpList<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** its position in the list */
  readonly index: number;
}

export interface MapOp<N extends U64 = U64> extends OpBase, OpMapping<N> {
  readonly kind: 'map';
}

export interface UnmapOp<N extends U64 = U64> extends OpBase {
  readonly kind: 'unmap';
  /** the existing mapping that goes */
  readonly va: GpuVa<N>;
  /** its page-table entries are already right where it overlaps the request */
  readonly keep: boolean;
}

export interface RemapOp<N extends U64 = U64> extends OpBase {
  readonly kind: 'remap';
  readonly unmap: { readonly va: GpuVa<N>; readonly keep: boolean };
  /** the surviving part before the request, or null */
  readonly prev: OpMapping<N> | null;
  /** the surviving part after the request, or null */
  readonly next: OpMapping<N> | null;
}

export interface PrefetchOp<N extends U64 = U64> extends OpBase {
  readonly kind: 'prefetch';
  readonly va: GpuVa<N>;
}

export type Op<N extends U64 = U64> = MapOp<N> | UnmapOp<N> | RemapOp<N> | PrefetchOp<N>;

export type OpListState = 'pending' | 'applied' | 'dropped' | 'stale';

/** The facade's per-list bookkeeping (private to the facade's modules). */
export interface ListState<N extends U64 = U64> {
  /**
   * holds the op records, OP_WORDS each, from word `at` on: a slab other
   * lists share, which the facade copied them into or the native engine
   * wrote them to (see VmContext.applyDeferred)
   */
  words: Uint32Array;
  at: number;
  /** number of ops */
  length: number;
  /** the VM's list generation this list belongs to */
  readonly gen: number;
  /** the VM's change count after this list's last change (a mirrored apply needs it unchanged) */
  mod: number;
  /** where the BOs the VM forgets after this list was made go (see VmContext.boSince) */
  readonly grave: Grave;
  /** index of the first op not applied yet */
  next: number;
  state: 'pending' | 'applied' | 'dropped';
  /** ops made so far (null until the first is read) */
  made: (Op<N> | undefined)[] | null;
  /**
   * LIST_REQ_MAP / LIST_REQ_UNMAP while the list is deferred (see
   * VmContext.deferList): not made in the engine yet, no records; else 0
   */
  req: number;
  /** why a deferred list could not be made after all (the platform had no memory), else null */
  error: GpuVmError | null;
}

/** ListState.req of a deferred smMapOps list. */
export const LIST_REQ_MAP = 1;
/** ListState.req of a deferred smUnmapOps list. */
export const LIST_REQ_UNMAP = 2;

/** The records of ops [from, to) of a list, in engine layout. */
export function listRecords(ls: ListState<any>, from: number, to: number): Uint32Array { // eslint-disable-line @typescript-eslint/no-explicit-any
  return ls.words.subarray(ls.at + from * OP_WORDS, ls.at + to * OP_WORDS);
}

/** The BOs ops [from, to) of a list name (of their mapping or request), null for none. */
export function listBos(ctx: VmContext<any>, ls: ListState<any>, from: number, to: number): (Bo | null)[] { // eslint-disable-line @typescript-eslint/no-explicit-any
  const out: (Bo | null)[] = new Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = ctx.boSince(ls.grave, ls.words[ls.at + i * OP_WORDS + 3]);
  return out;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyList = OpList<any>;
let isListFn: (x: unknown) => boolean;
let listStateOf: (l: AnyList) => ListState<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const MINT: unique symbol = Symbol('OpList');

/** Whether `x` is an OpList the facade made. */
export function isOpList(x: unknown): x is AnyList {
  return isListFn(x);
}
/** A list's state, the list made first if it was deferred. */
export function listState<N extends U64>(l: OpList<N>): ListState<N> {
  const s = listStateOf(l) as ListState<N>;
  if (s.req !== 0) listCtxOf(l).settleDeferred();
  return s;
}
/** The state of a list of `n` records at words[at...] (none yet for a deferred list), made when `grave` was the VM's current one. */
export function newListState<N extends U64>(
  words: Uint32Array,
  at: number,
  n: number,
  gen: number,
  mod: number,
  applied: boolean,
  grave: Grave,
  req: number,
): ListState<N> {
  return {
    words,
    at,
    length: n,
    gen,
    mod,
    grave,
    next: 0,
    state: req === 0 && (applied || n === 0) ? 'applied' : 'pending',
    made: null,
    req,
    error: null,
  };
}
/** The OpList object of a list state. */
export function mintOpList<N extends U64>(ctx: VmContext<N>, s: ListState<N>): OpList<N> {
  return mintList(ctx, s) as OpList<N>;
}
let mintList: (ctx: VmContext<any>, s: ListState<any>) => AnyList; // eslint-disable-line @typescript-eslint/no-explicit-any
/** The context of a list's VM. */
export function listContext<N extends U64>(l: OpList<N>): VmContext<N> {
  return listCtxOf(l) as VmContext<N>;
}
let listCtxOf: (l: AnyList) => VmContext<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Op objects handed out are read-only views of the list's records: their
 * fields are getters over private state, so nothing can be written to them,
 * and only objects of these classes are accepted back (vaMap and friends; a
 * brand check that forged objects and proxies fail). Cheaper than freezing
 * plain objects (which costs more than making them) and than remembering
 * them in a WeakSet.
 */
const inspect = Symbol.for('nodejs.util.inspect.custom');
let isOpFn: (x: unknown) => boolean;

abstract class OpView {
  readonly #list: AnyList;
  readonly #index: number;
  constructor(list: AnyList, index: number) {
    this.#list = list;
    this.#index = index;
  }
  static {
    isOpFn = (x) => typeof x === 'object' && x !== null && #list in x;
  }
  /** the list it belongs to */
  get list(): AnyList {
    return this.#list;
  }
  /** its position in the list */
  get index(): number {
    return this.#index;
  }
  /** The op's fields as a plain object (what console.log shows). */
  abstract plain(): Record<string, unknown>;
  /** JSON: addresses as hex strings and BOs by id, as GpuVa.toJSON writes them. */
  toJSON(): Record<string, unknown> {
    return jsonOf(this.plain()) as Record<string, unknown>;
  }
  [inspect](): Record<string, unknown> {
    return this.plain();
  }
}

function jsonOf(v: unknown): unknown {
  if (typeof v === 'number' || typeof v === 'bigint') return '0x' + v.toString(16);
  if (v === null || typeof v !== 'object') return v;
  if (isBo(v)) return v.id;
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return (v as { toJSON(): unknown }).toJSON();
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = k === 'index' || typeof x === 'boolean' ? x : jsonOf(x);
  return out;
}

class OpMappingView<N extends U64> implements OpMapping<N> {
  readonly #addr: N;
  readonly #range: N;
  readonly #bo: Bo | null;
  readonly #offset: N;
  constructor(addr: N, range: N, bo: Bo | null, offset: N) {
    this.#addr = addr;
    this.#range = range;
    this.#bo = bo;
    this.#offset = offset;
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
  plain(): Record<string, unknown> {
    return { addr: this.#addr, range: this.#range, bo: this.#bo, offset: this.#offset };
  }
  toJSON(): Record<string, unknown> {
    return jsonOf(this.plain()) as Record<string, unknown>;
  }
  [inspect](): Record<string, unknown> {
    return this.plain();
  }
}

class MapOpView<N extends U64> extends OpView implements MapOp<N> {
  readonly #m: OpMappingView<N>;
  constructor(list: AnyList, index: number, m: OpMappingView<N>) {
    super(list, index);
    this.#m = m;
  }
  get kind(): 'map' {
    return 'map';
  }
  get addr(): N {
    return this.#m.addr;
  }
  get range(): N {
    return this.#m.range;
  }
  get bo(): Bo | null {
    return this.#m.bo;
  }
  get offset(): N {
    return this.#m.offset;
  }
  plain(): Record<string, unknown> {
    return { kind: 'map', index: this.index, ...this.#m.plain() };
  }
}

class UnmapOpView<N extends U64> extends OpView implements UnmapOp<N> {
  readonly #va: GpuVa<N>;
  readonly #keep: boolean;
  constructor(list: AnyList, index: number, va: GpuVa<N>, keep: boolean) {
    super(list, index);
    this.#va = va;
    this.#keep = keep;
  }
  get kind(): 'unmap' {
    return 'unmap';
  }
  get va(): GpuVa<N> {
    return this.#va;
  }
  get keep(): boolean {
    return this.#keep;
  }
  plain(): Record<string, unknown> {
    return { kind: 'unmap', index: this.index, va: this.#va, keep: this.#keep };
  }
}

/** A REMAP's `unmap` part. */
class RemapUnmapView<N extends U64> {
  readonly #va: GpuVa<N>;
  readonly #keep: boolean;
  constructor(va: GpuVa<N>, keep: boolean) {
    this.#va = va;
    this.#keep = keep;
  }
  get va(): GpuVa<N> {
    return this.#va;
  }
  get keep(): boolean {
    return this.#keep;
  }
  [inspect](): Record<string, unknown> {
    return { va: this.#va, keep: this.#keep };
  }
}

class RemapOpView<N extends U64> extends OpView implements RemapOp<N> {
  readonly #unmap: RemapUnmapView<N>;
  readonly #prev: OpMappingView<N> | null;
  readonly #next: OpMappingView<N> | null;
  constructor(list: AnyList, index: number, unmap: RemapUnmapView<N>, prev: OpMappingView<N> | null, next: OpMappingView<N> | null) {
    super(list, index);
    this.#unmap = unmap;
    this.#prev = prev;
    this.#next = next;
  }
  get kind(): 'remap' {
    return 'remap';
  }
  get unmap(): { readonly va: GpuVa<N>; readonly keep: boolean } {
    return this.#unmap;
  }
  get prev(): OpMapping<N> | null {
    return this.#prev;
  }
  get next(): OpMapping<N> | null {
    return this.#next;
  }
  plain(): Record<string, unknown> {
    return {
      kind: 'remap',
      index: this.index,
      unmap: { va: this.#unmap.va, keep: this.#unmap.keep },
      prev: this.#prev?.plain() ?? null,
      next: this.#next?.plain() ?? null,
    };
  }
}

class PrefetchOpView<N extends U64> extends OpView implements PrefetchOp<N> {
  readonly #va: GpuVa<N>;
  constructor(list: AnyList, index: number, va: GpuVa<N>) {
    super(list, index);
    this.#va = va;
  }
  get kind(): 'prefetch' {
    return 'prefetch';
  }
  get va(): GpuVa<N> {
    return this.#va;
  }
  plain(): Record<string, unknown> {
    return { kind: 'prefetch', index: this.index, va: this.#va };
  }
}

/** Whether `x` is an op object an OpList handed out. */
export function isOp(x: unknown): x is Op<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return isOpFn(x);
}
export function opMapping<N extends U64>(addr: N, range: N, bo: Bo | null, offset: N): OpMapping<N> {
  return new OpMappingView<N>(addr, range, bo, offset);
}
export function mapOp<N extends U64>(list: AnyList, index: number, addr: N, range: N, bo: Bo | null, offset: N): MapOp<N> {
  return new MapOpView<N>(list, index, new OpMappingView<N>(addr, range, bo, offset));
}
export function unmapOp<N extends U64>(list: AnyList, index: number, va: GpuVa<N>, keep: boolean): UnmapOp<N> {
  return new UnmapOpView<N>(list, index, va, keep);
}
export function remapOp<N extends U64>(list: AnyList, index: number, va: GpuVa<N>, keep: boolean, prev: OpMapping<N> | null, next: OpMapping<N> | null): RemapOp<N> {
  return new RemapOpView<N>(list, index, new RemapUnmapView<N>(va, keep), prev as OpMappingView<N> | null, next as OpMappingView<N> | null);
}
export function prefetchOp<N extends U64>(list: AnyList, index: number, va: GpuVa<N>): PrefetchOp<N> {
  return new PrefetchOpView<N>(list, index, va);
}

/**
 * The ops a split/merge (or prefetch, madvise, VmBo unmap) request produced,
 * in order (drm_gpuva_ops). A list is pending until applied or dropped;
 * making another list, or a fused call, makes an untouched pending list
 * stale. Apply all of it with {@link OpList.apply}, or op by op with
 * vm.vaMap / vaRemap / vaUnmap; a list returned by bindArray is already applied.
 *
 * @typeParam N - `number` or `bigint`, as the VM's `bigint` option chose.
 */
export class OpList<N extends U64 = U64> implements Iterable<Op<N>> {
  readonly #ctx: VmContext<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- keeps OpList<N> covariant
  readonly #s: ListState<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

  static {
    isListFn = (x) => typeof x === 'object' && x !== null && #s in x;
    listStateOf = (l) => l.#s;
    listCtxOf = (l) => l.#ctx;
    mintList = (ctx, s) => new OpList(MINT, ctx, s);
  }

  /** Lists come from a GpuVm. */
  private constructor(mint: symbol, ctx: VmContext<N>, s: ListState<N>) {
    if (mint !== MINT) throw new TypeError('OpList objects come from a GpuVm (smMapOps, smUnmapOps, ...), not new OpList()');
    this.#ctx = ctx;
    this.#s = s;
  }

  /** The VM the list belongs to. */
  get vm(): GpuVm<N> {
    return this.#ctx.vm;
  }

  /** Number of ops. */
  get length(): number {
    return this.#made().length;
  }

  /** The list's state, the list made first if it was deferred. */
  #made(): ListState<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const s = this.#s;
    if (s.req !== 0) this.#ctx.settleDeferred();
    return s;
  }

  /**
   * 'pending' (can be applied), 'applied', 'dropped', or 'stale' (the VM
   * generated another list or changed through a fused call first).
   */
  get state(): OpListState {
    // (an unmap list of no ops is applied as soon as it is made)
    const s = this.#made();
    if (s.state === 'pending' && this.#ctx.listGen !== s.gen) return 'stale';
    return s.state;
  }

  /** Op `i` (made on first use, the same object afterwards). */
  get(i: number): Op<N> {
    const s = this.#made();
    const n = s.length;
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= n) {
      throw new RangeError(`op index must be an integer in [0, ${n}), got ${typeof i === 'number' ? i : typeof i}`);
    }
    const made = (s.made ??= new Array(n));
    let op = made[i];
    if (op === undefined) {
      op = makeOp(this.#ctx, this, i);
      made[i] = op;
    }
    return op;
  }

  /** The ops in order. */
  [Symbol.iterator](): Iterator<Op<N>> {
    return new OpIterator<N>(this, this.#made().length);
  }

  /** The ops as an array. */
  toArray(): Op<N>[] {
    return [...this];
  }

  /**
   * Applies every op not applied yet, in order (drm_gpuva_map / remap / unmap
   * for each). With a page table attached to the VM, the table is written
   * first and the list is applied only if it accepted.
   */
  apply(): void {
    const ctx = this.#ctx;
    const ls = this.#s;
    if (ls.req !== 0) {
      // a deferred list is its VM's current one, untouched: made and applied
      // in one engine call, unless a page table must be written first
      if (ctx.mirror === null) return ctx.applyDeferred(ls);
      ctx.settleDeferred();
    }
    if (ls.error !== null) throw ls.error;
    // (checkList and requirePending, with the common case inline: this runs once per request)
    if (ctx.h === 0) ctx.alive('OpList.apply');
    const n = ls.length;
    if (n === 0) return; // nothing to do (e.g. unmapping an empty range)
    if (ls.state !== 'pending' || ctx.listGen !== ls.gen) requirePending(this, 'OpList.apply');
    if (ctx.mirror !== null) mirrorOps(ctx, this, ls.next, n, 'OpList.apply');
    const E = ctx.E;
    const from = ls.next;
    const r = E.opsApply(ctx.h, from, n);
    if (r < 0) throw applyError(r, 'OpList.apply');
    ls.next = n;
    ls.state = 'applied';
    if (ctx.pendingGen === ls.gen) ctx.pendingGen = -1;
    if (ls.made !== null) forgetUnmapped(ctx, ls, from, n);
    ctx.changed(ioOf(E));
  }

  /** Drops the list without applying the rest (drm_gpuva_ops_free). */
  drop(): void {
    if (this.state !== 'pending') return;
    const ctx = this.#ctx;
    checkList(ctx, this, 'OpList.drop');
    ctx.E.opsDrop(ctx.h);
    this.#s.state = 'dropped';
    if (ctx.pendingGen === this.#s.gen) ctx.pendingGen = -1;
    ctx.listGen++;
    ctx.changed(ioOf(ctx.E));
  }

  /** JSON: the state and the ops (addresses as hex strings, BOs by id). */
  toJSON(): { state: OpListState; ops: Record<string, unknown>[] } {
    return { state: this.state, ops: this.toArray().map((op) => (op as unknown as OpView).toJSON()) };
  }

  /** `OpList of 3 ops (pending)`. */
  toString(): string {
    return `OpList of ${this.length} ops (${this.state})`;
  }

  /** console.log shows the length and state, and nothing internal. */
  [inspect](): string {
    return this.toString();
  }
}

/** OpList's iterator: a plain object is several times cheaper per step than a generator. */
class OpIterator<N extends U64> implements IterableIterator<Op<N>> {
  readonly #list: OpList<N>;
  /** a list's length never changes once it is made */
  readonly #n: number;
  #i = 0;
  constructor(list: OpList<N>, n: number) {
    this.#list = list;
    this.#n = n;
  }
  next(): IteratorResult<Op<N>> {
    const i = this.#i;
    if (i >= this.#n) return { done: true, value: undefined };
    this.#i = i + 1;
    return { done: false, value: this.#list.get(i) };
  }
  [Symbol.iterator](): IterableIterator<Op<N>> {
    return this;
  }
}

/** An op object for record i of a list: a read-only view of the record. */
function makeOp<N extends U64>(ctx: VmContext<N>, list: OpList<N>, i: number): Op<N> {
  const ls = listState(list);
  const w = ls.words;
  const p = ls.at + i * OP_WORDS;
  const k = w[p] & 0xff;
  const bo = ctx.boSince(ls.grave, w[p + 3]);
  if (k === OpKind.MAP) {
    return mapOp<N>(list, i, ctx.u(w, p + 4, 'addr'), ctx.u(w, p + 6, 'range'), bo, ctx.u(w, p + 8, 'offset'));
  }
  const va = ctx.vaFromOp(w, p, bo);
  const keep = (w[p] & OP_KEEP) !== 0;
  if (k === OpKind.UNMAP) return unmapOp<N>(list, i, va, keep);
  if (k === OpKind.PREFETCH) return prefetchOp<N>(list, i, va);
  let prev: OpMapping<N> | null = null;
  let next: OpMapping<N> | null = null;
  if ((w[p] & OP_HAS_PREV) !== 0) {
    prev = opMapping<N>(ctx.u(w, p + 4, 'prev.addr'), ctx.u(w, p + 10, 'prev.range'), bo, ctx.u(w, p + 8, 'prev.offset'));
  }
  if ((w[p] & OP_HAS_NEXT) !== 0) {
    const nextAddr = ctx.u(w, p + 12, 'next.addr');
    // the piece runs to the old mapping's end; below 2^52 each, numbers add exactly
    const nextRange =
      !ctx.bigint && w[p + 5] < 0x10_0000 && w[p + 7] < 0x10_0000
        ? ((getNum(w, p + 4, 'addr') + getNum(w, p + 6, 'range') - (nextAddr as number)) as N)
        : ctx.fromBig(getBig(w, p + 4) + getBig(w, p + 6) - getBig(w, p + 12));
    next = opMapping<N>(nextAddr, nextRange, bo, ctx.u(w, p + 14, 'next.offset'));
  }
  return remapOp<N>(list, i, va, keep, prev, next);
}

function checkList(ctx: VmContext, list: AnyList, what: string): void {
  if (listCtxOf(list) !== ctx) throw new GpuVmError('EINVAL', `${what}: the op list belongs to another VM`);
  ctx.alive(what);
}

function applyError(r: number, what: string): GpuVmError {
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
 * Applies one op of a pending list of `ctx`'s VM; returns the handles
 * created (a shared scratch: read it before the next applyOp). Only op objects a list handed out are accepted (read-only views,
 * so their list, index and fields are the list's own).
 */
export function applyOp(ctx: VmContext, op: unknown, kind: Op['kind'], what: string): Uint32Array {
  if (!isOp(op) || op.kind !== kind) {
    throw new TypeError(`${what}: expected a ${kind} op handed out by an op list, got ${isOp(op) ? `a ${op.kind} op` : describe(op)}`);
  }
  const list = op.list;
  checkList(ctx, list, what);
  requirePending(list, what);
  const ls = listState(list);
  if (op.index < ls.next) throw new GpuVmError('EINVAL', `${what}: op ${op.index} was already applied or skipped`);
  if (ctx.mirror !== null) mirrorOps(ctx, list, op.index, op.index + 1, what);
  const E = ctx.E;
  const r = E.opsApply(ctx.h, op.index, op.index + 1);
  if (r < 0) throw applyError(r, what);
  ls.next = op.index + 1;
  if (ls.next === list.length) {
    ls.state = 'applied';
    if (ctx.pendingGen === ls.gen) ctx.pendingGen = -1;
  }
  forgetUnmapped(ctx, ls, op.index, op.index + 1);
  const io = ioOf(E);
  const created = createdScratch;
  for (let i = 0; i < 4; i++) created[i] = io[IO.OUT_CREATED + i];
  ctx.changed(io);
  ls.mod = ctx.mod;
  return created;
}

/**
 * Applying an UNMAP or REMAP releases the mapping it names: the GpuVas of
 * ops [from, to) that were read leave the VM's identity cache (see
 * VmContext.forgetVa), so a list read and applied leaves nothing behind.
 */
function forgetUnmapped(ctx: VmContext<any>, ls: ListState<any>, from: number, to: number): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  const made = ls.made;
  if (made === null) return;
  for (let i = from; i < to; i++) {
    const op = made[i];
    if (op === undefined) continue;
    if (op.kind === 'unmap') ctx.forgetVa(op.va);
    else if (op.kind === 'remap') ctx.forgetVa(op.unmap.va);
  }
}

/** applyOp's result, valid until the next applyOp (its callers read it at once). */
const createdScratch = new Uint32Array(4);

/**
 * Writes ops [from, to) of a pending list into the VM's mirror page table,
 * before the engine applies them: if the table (or resolve) refuses, nothing
 * changed. The engine applies a pending list without fail unless the VM
 * changed behind it, so a mirrored apply insists the VM did not change since
 * the list was made (or since its last applied op).
 */
function mirrorOps(ctx: VmContext, list: AnyList, from: number, to: number, what: string): void {
  const ls = listState(list);
  if (ls.mod !== ctx.mod) {
    throw new GpuVmError(
      'EBUSY',
      `${what}: the VM changed since the list was made; with a page table attached, make the list again`,
    );
  }
  ctx.mirrorWrite(listRecords(ls, from, to), listBos(ctx, ls, from, to), what, () => {
    // resolve is user code: it may have changed the VM or the list
    if (ls.mod !== ctx.mod || list.state !== 'pending') {
      throw new GpuVmError('EBUSY', `${what}: resolve changed the VM; nothing was applied or written`);
    }
  });
}

/** Throws unless the list can still be applied. */
export function requirePending(list: AnyList, what: string): void {
  const s = list.state;
  if (s !== 'pending') {
    throw new GpuVmError(
      'EINVAL',
      s === 'stale'
        ? `${what}: the op list is stale (the VM generated another list or changed since)`
        : `${what}: the op list is already ${s}`,
    );
  }
}
