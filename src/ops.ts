/**
 * Op lists (drm_gpuva_ops): what split/merge, prefetch, madvise and VmBo
 * unmap generate. A list is a copy of the engine's op records; op objects are
 * made only when asked for. The engine keeps the list pending until it is
 * applied or dropped, so applying never allocates in the engine.
 */
import { GpuVmError } from './errors.js';
import type { GpuVa } from './gpu-va.js';
import type { GpuVm } from './gpuvm.js';
import type { Bo } from './vm-bo.js';
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
 * Op objects handed out are frozen views of the list's records, and only
 * those are accepted back (vaMap and friends): a modified or hand-made op
 * cannot make the VM report something other than what the engine did.
 */
const madeOps = new WeakSet<object>();
export function sealOp<T extends Op<any>>(op: T): T { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (op.kind === 'remap') {
    Object.freeze(op.unmap);
    if (op.prev) Object.freeze(op.prev);
    if (op.next) Object.freeze(op.next);
  }
  Object.freeze(op);
  madeOps.add(op);
  return op;
}
/** Whether `x` is an op object an OpList handed out. */
export function isOp(x: unknown): x is Op<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return typeof x === 'object' && x !== null && madeOps.has(x);
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
