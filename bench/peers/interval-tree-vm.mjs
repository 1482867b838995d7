/**
 * Peer: a VA manager on `@flatten-js/interval-tree` (augmented red-black
 * interval tree, Cormen §14.3, a `max` per node).
 *
 * What the structure solves: stabbing / overlap queries over a set of
 * intervals that MAY overlap each other ("which stored intervals intersect
 * [lo, hi]?"), answered in O(log n + k) thanks to the per-subtree max. This is
 * what a JS user who thinks "GPU VA ranges are intervals" installs (the most
 * downloaded JS interval tree). drm_gpuvm's mappings never overlap, so the
 * augmentation is paid for and not needed, but the library expresses every
 * query the VA manager needs:
 *   - all overlaps in order: search([a, e-1]) (results come in key order);
 *   - lowest overlap: iterate([a, e-1]).next() (positions at the lowest
 *     intersecting node, PR #47 upstream), then an intersection check, because
 *     iterate keeps going past the query.
 * Its intervals are closed, so [addr, addr+range) is stored as [addr, end-1].
 *
 * Semantics: drm_gpuvm split/merge and VmBo bookkeeping, shared with the
 * sorted-btree peer (duplicated on purpose: shared methods would see both
 * structures and become polymorphic in V8 when both peers run in one process).
 */
import IntervalTree from '@flatten-js/interval-tree';

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

export class IntervalTreeVm extends PeerVm {
  /** @param {{ start?: number, range?: number }} [opts] */
  constructor(opts) {
    super(opts);
    this.tree = new IntervalTree();
    this._key = [0, 0];
  }

  _overlaps(a, e, out) {
    const k = this._key;
    k[0] = a;
    k[1] = e - 1;
    const found = this.tree.search(k);
    for (let i = 0; i < found.length; i++) out.push(found[i]);
  }

  _insert(va) {
    this.tree.insert([va.addr, va.end - 1], va);
  }

  _remove(va) {
    const k = this._key;
    k[0] = va.addr;
    k[1] = va.end - 1;
    this.tree.remove(k);
  }

  findFirst(addr, range) {
    const k = this._key;
    k[0] = addr;
    k[1] = addr + range - 1;
    const r = this.tree.iterate(k).next();
    if (r.done) return null;
    const va = r.value;
    return va.addr < addr + range && va.end > addr ? va : null;
  }

  /** every mapping in address order */
  mappings() {
    return this.tree.iterate();
  }
}
