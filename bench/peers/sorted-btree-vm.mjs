/**
 * Peer: a VA manager on `sorted-btree` (qwertie's in-memory B+ tree).
 *
 * What the structure solves: an ordered map (Map-shaped, sorted keys) with
 * floor / ceiling lookups (nextLowerPair, getPairOrNextHigher) and range scans
 * (forRange). Since drm_gpuvm's mappings never overlap, "ordered map keyed by
 * start address + a floor lookup" is all a VA manager needs, and it is what a
 * JS developer who knows their data structures would pick; the research probe
 * (research/ecosystem.md §1c) found it the fastest JS option for this job. It
 * knows nothing about intervals: the overlap logic (predecessor that sticks
 * into the request, then every key below the request end) is ours.
 *
 * Semantics: drm_gpuvm split/merge (sm_map with keep, remap prev/next pieces,
 * sm_unmap) and VmBo bookkeeping, shared with the interval-tree peer in
 * the other peer file; only the structure differs. The code is duplicated on
 * purpose: shared methods would see both structures and become polymorphic in
 * V8 when both peers run in one process, slowing each by a few percent.
 */
import btreePkg from 'sorted-btree';

// sorted-btree is CommonJS with `exports.default` (issue #36 upstream).
/** @type {typeof import('sorted-btree').default} */
const BTree = /** @type {any} */ (btreePkg).default ?? btreePkg;

const byNumber = (a, b) => a - b;

/** A mapping (drm_gpuva). */
class Va {
  /**
   * @param {number} addr @param {number} range @param {number} bo @param {number} offset
   */
  constructor(addr, range, bo, offset) {
    this.addr = addr;
    this.range = range;
    this.end = addr + range;
    this.bo = bo;
    this.offset = offset;
    /** @type {VmBo | null} */
    this.vmBo = null;
  }
}

/** drm_gpuvm_bo: one per (VM, BO) while it has mappings. */
class VmBo {
  /** @param {number} bo */
  constructor(bo) {
    this.bo = bo;
    this.refcount = 0;
    /** @type {Set<Va>} */
    this.mappings = new Set();
  }
}

class PeerVm {
  /** @param {{ start?: number, range?: number }} [opts] */
  constructor({ start = 0, range = 2 ** 47 } = {}) {
    this.start = start;
    this.end = start + range;
    /** @type {Map<number, VmBo>} */
    this.vmBos = new Map();
    this.count = 0;
    /** applied ops, by kind */
    this.applied = { map: 0, remap: 0, unmap: 0 };
    /** @type {Va[]} scratch for _overlaps */
    this._scratch = [];
  }

  /** @returns {Va | null} */
  // eslint-disable-next-line no-unused-vars
  findFirst(addr, range) {
    throw new Error('abstract');
  }

  _check(addr, range) {
    if (!(range > 0) || addr < this.start || addr + range > this.end) {
      throw new RangeError(`request [${addr}, +${range}) is not inside the VA space`);
    }
  }

  /**
   * sm_map in ops-list mode: unmap/remap per overlapping mapping, then one map.
   * @returns {object[]}
   */
  smMapOps(addr, range, bo, offset) {
    this._check(addr, range);
    const e = addr + range;
    const over = this._scratch;
    over.length = 0;
    this._overlaps(addr, e, over);
    const ops = [];
    for (let i = 0; i < over.length; i++) {
      const m = over[i];
      const s = m.addr;
      const t = m.end;
      const keep = m.bo !== 0 && m.bo === bo && m.offset - s === offset - addr;
      const prev = s < addr ? { addr: s, range: addr - s, bo: m.bo, offset: m.offset } : null;
      const next = t > e ? { addr: e, range: t - e, bo: m.bo, offset: m.offset + (e - s) } : null;
      if (prev !== null || next !== null) ops.push({ kind: 'remap', unmap: { va: m, keep }, prev, next });
      else ops.push({ kind: 'unmap', va: m, keep });
    }
    ops.push({ kind: 'map', addr, range, bo, offset });
    over.length = 0;
    return ops;
  }

  /** sm_unmap in ops-list mode: never keep, no map. */
  smUnmapOps(addr, range) {
    const e = addr + range;
    const over = this._scratch;
    over.length = 0;
    if (range > 0) this._overlaps(addr, e, over);
    const ops = [];
    for (let i = 0; i < over.length; i++) {
      const m = over[i];
      const s = m.addr;
      const t = m.end;
      const prev = s < addr ? { addr: s, range: addr - s, bo: m.bo, offset: m.offset } : null;
      const next = t > e ? { addr: e, range: t - e, bo: m.bo, offset: m.offset + (e - s) } : null;
      if (prev !== null || next !== null) ops.push({ kind: 'remap', unmap: { va: m, keep: false }, prev, next });
      else ops.push({ kind: 'unmap', va: m, keep: false });
    }
    over.length = 0;
    return ops;
  }

  /** Applies a list as a driver does: update the tree, then link / unlink. */
  apply(ops) {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      if (op.kind === 'map') {
        const va = new Va(op.addr, op.range, op.bo, op.offset);
        this._insert(va);
        this.count++;
        if (op.bo !== 0) this._link(va, this._obtain(op.bo));
        this.applied.map++;
      } else if (op.kind === 'remap') {
        const old = op.unmap.va;
        this._remove(old);
        this.count--;
        const vmBo = old.vmBo;
        if (op.prev !== null) {
          const p = new Va(op.prev.addr, op.prev.range, op.prev.bo, op.prev.offset);
          this._insert(p);
          this.count++;
          if (vmBo !== null) this._link(p, vmBo);
        }
        if (op.next !== null) {
          const n = new Va(op.next.addr, op.next.range, op.next.bo, op.next.offset);
          this._insert(n);
          this.count++;
          if (vmBo !== null) this._link(n, vmBo);
        }
        if (vmBo !== null) this._unlink(old);
        this.applied.remap++;
      } else {
        const va = op.va;
        this._remove(va);
        this.count--;
        if (va.vmBo !== null) this._unlink(va);
        this.applied.unmap++;
      }
    }
  }

  /** sm_map and apply; returns the number of ops. */
  bind(addr, range, bo, offset) {
    const ops = this.smMapOps(addr, range, bo, offset);
    this.apply(ops);
    return ops.length;
  }

  /** sm_unmap and apply; returns the number of ops. */
  unbind(addr, range) {
    const ops = this.smUnmapOps(addr, range);
    this.apply(ops);
    return ops.length;
  }

  /** The VmBo of a BO, or null. */
  findBo(bo) {
    return this.vmBos.get(bo) ?? null;
  }

  _obtain(bo) {
    let v = this.vmBos.get(bo);
    if (v === undefined) {
      v = new VmBo(bo);
      this.vmBos.set(bo, v);
    }
    return v;
  }

  _link(va, vmBo) {
    va.vmBo = vmBo;
    vmBo.mappings.add(va);
    vmBo.refcount++;
  }

  _unlink(va) {
    const vmBo = /** @type {VmBo} */ (va.vmBo);
    va.vmBo = null;
    vmBo.mappings.delete(va);
    if (--vmBo.refcount === 0) this.vmBos.delete(vmBo.bo);
  }
}

export class SortedBtreeVm extends PeerVm {
  /** @param {{ start?: number, range?: number }} [opts] */
  constructor(opts) {
    super(opts);
    /** @type {import('sorted-btree').default<number, Va>} */
    this.tree = new BTree(undefined, byNumber);
    this._pair = /** @type {any} */ ([0, null]);
    /** @type {Va[] | null} */
    this._out = null;
    this._push = (_k, v) => {
      /** @type {any[]} */ (this._out).push(v);
    };
  }

  _overlaps(a, e, out) {
    const p = this.tree.nextLowerPair(a, this._pair);
    if (p !== undefined && p[1].end > a) out.push(p[1]);
    this._out = out;
    this.tree.forRange(a, e, false, this._push);
    this._out = null;
  }

  _insert(va) {
    this.tree.set(va.addr, va);
  }

  _remove(va) {
    this.tree.delete(va.addr);
  }

  findFirst(addr, range) {
    const p = this.tree.nextLowerPair(addr, this._pair);
    if (p !== undefined && p[1].end > addr) return p[1];
    const q = this.tree.getPairOrNextHigher(addr, this._pair);
    if (q !== undefined && q[0] < addr + range) return q[1];
    return null;
  }

  /** every mapping in address order */
  mappings() {
    return this.tree.values();
  }
}
