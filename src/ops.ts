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
  readonly list: OpList;
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

export class OpList<N extends U64 = U64> implements Iterable<Op<N>> {
  /** @internal ops made so far */
  private readonly made: (Op<N> | undefined)[];
  /** @internal index of the first op not applied yet */
  _next = 0;
  /** @internal */
  _state: 'pending' | 'applied' | 'dropped';

  /** @internal */
  constructor(
    readonly vm: GpuVm<N>,
    /** @internal the op records, OP_WORDS each */ readonly _words: Uint32Array,
    /** @internal the VM's list generation this list belongs to */ readonly _gen: number,
    applied: boolean,
    /** @internal each op's BO (of its mapping or request), resolved when the list was made */ readonly _bos: (Bo | null)[],
  ) {
    this.made = new Array(this.length);
    this._state = applied ? 'applied' : this.length === 0 ? 'applied' : 'pending';
  }

  get length(): number {
    return this._words.length >>> 4;
  }

  /**
   * 'pending' (can be applied), 'applied', 'dropped', or 'stale' (the VM
   * generated another list or changed through a fused call first).
   */
  get state(): OpListState {
    if (this._state === 'pending' && this.vm._listGen !== this._gen) return 'stale';
    return this._state;
  }

  get(i: number): Op<N> {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new RangeError(`op index must be an integer in [0, ${this.length}), got ${i}`);
    }
    let op = this.made[i];
    if (op === undefined) {
      op = this.vm._makeOp(this, i);
      this.made[i] = op;
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
    this.vm._applyList(this);
  }

  /** Drops the list without applying the rest (drm_gpuva_ops_free). */
  drop(): void {
    if (this.state !== 'pending') return;
    this.vm._dropList(this);
  }

  /** @internal */
  _requirePending(what: string): void {
    const s = this.state;
    if (s !== 'pending') {
      throw new GpuVmError(
        'EINVAL',
        s === 'stale'
          ? `${what}: the op list is stale (the VM generated another list or changed since)`
          : `${what}: the op list is already ${s}`,
      );
    }
  }
}
