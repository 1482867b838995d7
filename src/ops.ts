/**
 * Op lists (drm_gpuva_ops): what split/merge, prefetch, madvise and VmBo
 * unmap generate. A list is a copy of the engine's op records; op objects are
 * made only when asked for. The engine keeps the list pending until it is
 * applied or dropped, so applying never allocates in the engine.
 */
import { GpuVmError } from './errors.js';
import type { GpuVa } from './gpu-va.js';
import type { GpuVm } from './gpuvm.js';
import { isBo, type Bo } from './vm-bo.js';
import type { U64 } from './u64.js';

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
  /** the op records, OP_WORDS each */
  readonly words: Uint32Array;
  /** the VM's list generation this list belongs to */
  readonly gen: number;
  /** each op's BO (of its mapping or request), resolved when the list was made */
  readonly bos: (Bo | null)[];
  /** index of the first op not applied yet */
  next: number;
  state: 'pending' | 'applied' | 'dropped';
  /** ops made so far */
  readonly made: (Op<N> | undefined)[];
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
export function listState<N extends U64>(l: OpList<N>): ListState<N> {
  return listStateOf(l) as ListState<N>;
}
export function makeOpList<N extends U64>(vm: GpuVm<N>, words: Uint32Array, gen: number, applied: boolean, bos: (Bo | null)[]): OpList<N> {
  return new OpList<N>(MINT, vm, words, gen, applied, bos);
}

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
  /** JSON: addresses as decimal strings and BOs by id, as GpuVa.toJSON writes them. */
  toJSON(): Record<string, unknown> {
    return jsonOf(this.plain()) as Record<string, unknown>;
  }
  [inspect](): Record<string, unknown> {
    return this.plain();
  }
}

function jsonOf(v: unknown): unknown {
  if (typeof v === 'number' || typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object') return v;
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return (v as { toJSON(): unknown }).toJSON();
  if (isBo(v)) return v.id;
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

export class OpList<N extends U64 = U64> implements Iterable<Op<N>> {
  readonly #vm: GpuVm<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- keeps OpList<N> covariant
  readonly #s: ListState<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

  static {
    isListFn = (x) => typeof x === 'object' && x !== null && #s in x;
    listStateOf = (l) => l.#s;
  }

  /** @internal lists come from a GpuVm */
  constructor(mint: symbol, vm: GpuVm<N>, words: Uint32Array, gen: number, applied: boolean, bos: (Bo | null)[]) {
    if (mint !== MINT) throw new TypeError('OpList objects come from a GpuVm (smMapOps, smUnmapOps, ...), not new OpList()');
    this.#vm = vm;
    const length = words.length >>> 4;
    this.#s = {
      words,
      gen,
      bos,
      next: 0,
      state: applied || length === 0 ? 'applied' : 'pending',
      made: new Array(length),
    };
  }

  /** The VM the list belongs to. */
  get vm(): GpuVm<N> {
    return this.#vm;
  }

  get length(): number {
    return this.#s.words.length >>> 4;
  }

  /**
   * 'pending' (can be applied), 'applied', 'dropped', or 'stale' (the VM
   * generated another list or changed through a fused call first).
   */
  get state(): OpListState {
    const s = this.#s;
    if (s.state === 'pending' && this.#vm._listGen !== s.gen) return 'stale';
    return s.state;
  }

  get(i: number): Op<N> {
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new RangeError(`op index must be an integer in [0, ${this.length}), got ${typeof i === 'number' ? i : typeof i}`);
    }
    const made = this.#s.made;
    let op = made[i];
    if (op === undefined) {
      op = this.#vm._makeOp(this, i);
      made[i] = op;
    }
    return op;
  }

  *[Symbol.iterator](): Iterator<Op<N>> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  toArray(): Op<N>[] {
    return [...this];
  }

  /** Applies every op not applied yet, in order (drm_gpuva_map / remap / unmap for each). */
  apply(): void {
    this.#vm._applyList(this);
  }

  /** Drops the list without applying the rest (drm_gpuva_ops_free). */
  drop(): void {
    if (this.state !== 'pending') return;
    this.#vm._dropList(this);
  }

  toString(): string {
    return `OpList of ${this.length} ops (${this.state})`;
  }

  /** console.log shows the length and state, and nothing internal. */
  [inspect](): string {
    return this.toString();
  }
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
