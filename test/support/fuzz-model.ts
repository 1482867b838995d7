/**
 * The fuzzer's view of the reference model: test/support/model.ts's VmModel,
 * extended with what the public API can do besides split/merge (low-level
 * insert / remove / link / unlink, applying single ops of a list with ops
 * skipped, VmBo incarnations, the evict list) and with save / restore for
 * atomic bind arrays. BOs are numbered 1..n (0 = none), the same in every
 * engine's world, so the model never sees an engine's BO ids.
 */
import { ModelError, U64_MAX, VmModel, type MOp, type MVa, type ModelOptions } from './model.js';

interface MVmBoX {
  readonly bo: number;
  refs: number;
  readonly list: MVa[];
  /** which VmBo of this BO it is: a destroyed and re-created VmBo is another object */
  inc?: number;
}

/** The parts of VmModel the extension works on (private there, reached on purpose). */
interface Inner {
  vas: MVa[];
  vmBos: Map<number, MVmBoX>;
  pending: { ops: MOp[]; hold: number; next: number } | null;
  nextId: number;
  version: number;
  vmBo(bo: number): MVmBoX;
  maybeDestroy(vb: MVmBoX): boolean;
  finishPending(): void;
  applyOp(op: MOp): void;
}

export class FuzzError extends Error {}

export class FuzzModel extends VmModel {
  private incs = 0;
  /** evicted VmBos by incarnation, list order */
  evicted: number[] = [];

  constructor(o: ModelOptions) {
    super(o);
    const inner = this.inner;
    const make = (VmModel.prototype as unknown as Inner).vmBo;
    inner.vmBo = (bo: number): MVmBoX => {
      const had = inner.vmBos.get(bo);
      if (had !== undefined) return had;
      const vb = make.call(this, bo);
      vb.inc = ++this.incs;
      return vb;
    };
  }

  private get inner(): Inner {
    return this as unknown as Inner;
  }

  /** The incarnation of the live VmBo of `bo`, or 0. */
  inc(bo: number): number {
    return this.inner.vmBos.get(bo)?.inc ?? 0;
  }

  /** Whether the VmBo incarnation `inc` is still alive. */
  incLive(bo: number, inc: number): boolean {
    return inc !== 0 && this.inc(bo) === inc;
  }

  evictedLive(): number[] {
    const live = new Set([...this.inner.vmBos.values()].map((v) => v.inc!));
    this.evicted = this.evicted.filter((i) => live.has(i));
    return this.evicted;
  }

  boOfInc(inc: number): number {
    for (const vb of this.inner.vmBos.values()) if (vb.inc === inc) return vb.bo;
    return 0;
  }

  /** The model state as plain data (MVa identity kept), for undo. */
  save(): unknown {
    const i = this.inner;
    return {
      vas: [...i.vas],
      vmBos: new Map([...i.vmBos].map(([k, v]) => [k, { ...v, list: [...v.list] }])),
      links: new Map(i.vas.map((m) => [m, m.linked])),
      all: [...i.vmBos.values()].flatMap((v) => v.list.map((m) => [m, m.linked] as const)),
      flags: new Map(i.vas.map((m) => [m, m.flags])),
      pending: i.pending && { ...i.pending },
      nextId: i.nextId,
      version: i.version,
      incs: this.incs,
      evicted: [...this.evicted],
    };
  }

  restore(s: unknown): void {
    const x = s as {
      vas: MVa[];
      vmBos: Map<number, MVmBoX>;
      links: Map<MVa, number>;
      all: (readonly [MVa, number])[];
      flags: Map<MVa, number>;
      pending: Inner['pending'];
      nextId: number;
      version: number;
      incs: number;
      evicted: number[];
    };
    const i = this.inner;
    i.vas = x.vas;
    i.vmBos = x.vmBos;
    for (const [m, l] of x.links) m.linked = l;
    for (const [m, l] of x.all) m.linked = l;
    for (const [m, f] of x.flags) m.flags = f;
    i.pending = x.pending;
    i.nextId = x.nextId;
    i.version = x.version;
    this.incs = x.incs;
    this.evicted = x.evicted;
  }

  pendingOps(): readonly MOp[] | null {
    return this.inner.pending?.ops ?? null;
  }

  pendingNext(): number {
    return this.inner.pending?.next ?? 0;
  }

  /** Mapping alive in the engine's sense: in the tree, or removed but still linked. */
  alive(m: MVa): boolean {
    if (this.inner.vas.includes(m)) return true;
    return m.linked !== 0 && (this.inner.vmBos.get(m.linked)?.list.includes(m) ?? false);
  }

  inserted(m: MVa): boolean {
    return this.inner.vas.includes(m);
  }

  /**
   * sm_map: the engines take the new list's VmBo reference before they drop
   * the list it replaces (obtain before put), so a VmBo that only the
   * replaced list held lives on (evict state and identity kept).
   */
  override smMap(a: bigint, r: bigint, bo: number, off: bigint): MOp[] {
    const vb = bo === 0 ? undefined : this.inner.vmBos.get(bo);
    if (vb === undefined) return super.smMap(a, r, bo, off);
    vb.refs++;
    try {
      return super.smMap(a, r, bo, off);
    } finally {
      vb.refs--;
      this.inner.maybeDestroy(vb);
    }
  }

  /** VmBo unmap: linked mappings out of the tree cannot be unmapped and are skipped. */
  override vmBoUnmap(bo: number): MOp[] {
    const ops = super.vmBoUnmap(bo);
    const kept = ops.filter((op) => op.kind !== 'unmap' || this.inserted(op.va));
    const p = this.inner.pending;
    if (p !== null) {
      p.ops = kept;
      if (kept.length === 0) this.inner.finishPending();
    }
    return kept;
  }

  /**
   * Applies ops [from, to) of the pending list, skipping ops before `from`
   * that were never applied: EINVAL if a mapping an op removes is gone (or
   * named twice), EEXIST if a MAP would overlap what stays; nothing changes
   * on failure.
   */
  applyRange(from: number, to: number): void {
    const p = this.inner.pending;
    if (p === null || from < p.next || to > p.ops.length || to < from) throw new ModelError('EINVAL', 'not applicable');
    const doomed = new Set<MVa>();
    for (let k = from; k < to; k++) {
      const op = p.ops[k];
      if (op.kind === 'unmap' || op.kind === 'remap') {
        const va = op.kind === 'unmap' ? op.va : op.unmap.va;
        if (!this.inserted(va) || doomed.has(va)) throw new ModelError('EINVAL', 'mapping gone');
        doomed.add(va);
      } else if (op.kind === 'map') {
        const e = op.addr + op.range;
        for (const m of this.inner.vas) {
          if (m.addr < e && op.addr < m.addr + m.range && !doomed.has(m)) throw new ModelError('EEXIST' as 'EINVAL', 'overlap');
        }
        if (this.kernel && op.addr < this.kernel.end && this.kernel.addr < e) throw new ModelError('EEXIST' as 'EINVAL', 'overlap');
      }
    }
    for (let k = from; k < to; k++) this.inner.applyOp(p.ops[k]);
    p.next = to;
    if (to === p.ops.length) this.inner.finishPending();
  }

  // ---- low-level calls ---------------------------------------------------------------

  insert(addr: bigint, range: bigint, bo: number, offset: bigint, flags: number): MVa {
    this.validate('insert', addr, range);
    const e = addr + range;
    if (this.overlapping(addr, e).length > 0) throw new ModelError('EEXIST' as 'EINVAL', 'insert overlaps');
    const i = this.inner;
    const va: MVa = { id: i.nextId++, addr, range, bo, offset, flags: flags >>> 0, linked: 0 };
    let k = i.vas.length;
    while (k > 0 && i.vas[k - 1].addr > addr) k--;
    i.vas.splice(k, 0, va);
    i.version++;
    return va;
  }

  remove(va: MVa): void {
    const i = this.inner;
    const k = i.vas.indexOf(va);
    if (k < 0) throw new ModelError('EINVAL', 'not in the VM');
    i.vas.splice(k, 1);
    i.version++;
  }

  /** GpuVa.link (named apart from VmModel's own link, which op application uses). */
  linkVa(va: MVa, bo: number): void {
    if (va.bo === 0) return;
    if (va.bo !== bo || !this.alive(va) || va.linked !== 0) throw new ModelError('EINVAL', 'cannot link');
    const vb = this.inner.vmBos.get(bo);
    if (vb === undefined) throw new ModelError('EINVAL', 'no VmBo');
    vb.list.push(va);
    va.linked = bo;
    this.inner.version++;
  }

  /** GpuVa.unlink (named apart from VmModel's own unlink, which op application uses). */
  unlinkVa(va: MVa): void {
    if (!this.alive(va)) throw new ModelError('EINVAL', 'gone');
    if (va.linked === 0) return;
    const vb = this.inner.vmBos.get(va.linked)!;
    vb.list.splice(vb.list.indexOf(va), 1);
    va.linked = 0;
    this.inner.maybeDestroy(vb);
    this.inner.version++;
  }

  /** put that refuses to go below the holders' references (a put the model cannot make is EINVAL). */
  putChecked(bo: number): boolean {
    const vb = this.inner.vmBos.get(bo);
    // the pending list's own reference is not the caller's to put
    const listHold = this.inner.pending?.hold === bo ? 1 : 0;
    if (vb === undefined || vb.refs - listHold <= 0) throw new ModelError('EINVAL', 'put beyond the references held');
    return this.put(bo);
  }

  /** refs held besides linked mappings */
  holders(bo: number): number {
    return this.inner.vmBos.get(bo)?.refs ?? 0;
  }

  /** Whether [a, a+r) is a valid query at all (u64, no overflow past U64_MAX + 1). */
  static u64(v: bigint): boolean {
    return v >= 0n && v <= U64_MAX;
  }
}

export type { MOp, MVa };
