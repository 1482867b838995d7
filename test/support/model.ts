/**
 * A reference model of one GpuVm, in plain TypeScript, written from the
 * semantics of drm_gpuvm (not from the engines): a sorted array of mappings
 * with VmBo bookkeeping.
 *
 * - sm_map / sm_unmap op generation is the case table (left edge x right
 *   edge of each overlapping mapping, ascending), with the three written forms
 *   of `keep`, REMAP prev/next pieces and u64-wrapping offsets; sm_unmap never keeps.
 * - prefetch: one PREFETCH per overlapping mapping, whole, the kernel node
 *   excluded. VmBo unmap: UNMAP(keep=0) in link order.
 * - application: UNMAP unlinks; REMAP links its pieces (prev, then next) to the
 *   old mapping's VmBo before the old one is unlinked; MAP links to the
 *   request's VmBo; link order is "append at the tail" (§4.4).
 * - VmBo refcount = linked mappings + references held (driver refs, and the
 *   reference a pending map list holds on the VmBo it maps to, like the
 *   kernel's obtain-before / put-after pattern); at 0 the VmBo is destroyed.
 *   The VmBos keep their registration order (a re-created one goes last).
 * - validation (EINVAL): zero range, addr + range overflowing u64 (an end of
 *   exactly 2^64 included), not contained in the VM, overlapping the kernel
 *   node; sm_unmap the same; prefetch: overflow only (zero lists nothing).
 * - one pending list: generating replaces an untouched one; while one is
 *   partly applied, generating or a fused call is EBUSY.
 */

export const TWO64 = 1n << 64n;
export const U64_MAX = TWO64 - 1n;

/** x mod 2^64 */
export function wrap(x: bigint): bigint {
  return BigInt.asUintN(64, x);
}

export class ModelError extends Error {
  constructor(
    readonly code: 'EINVAL' | 'EBUSY',
    message: string,
  ) {
    // the random suites throw many of these: no stack trace
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`${code}: ${message}`);
    Error.stackTraceLimit = limit;
  }
}

/** A mapping of the model. `bo` is a BO id, 0 for none. */
export interface MVa {
  readonly id: number;
  readonly addr: bigint;
  readonly range: bigint;
  readonly bo: number;
  readonly offset: bigint;
  flags: number;
  /** BO id of the VmBo it is linked to, 0 when unlinked */
  linked: number;
}

export interface MPiece {
  readonly addr: bigint;
  readonly range: bigint;
  readonly bo: number;
  readonly offset: bigint;
}

export type MOp =
  | { readonly kind: 'map'; readonly addr: bigint; readonly range: bigint; readonly bo: number; readonly offset: bigint }
  | { readonly kind: 'unmap'; readonly va: MVa; readonly keep: boolean }
  | {
      readonly kind: 'remap';
      readonly unmap: { readonly va: MVa; readonly keep: boolean };
      readonly prev: MPiece | null;
      readonly next: MPiece | null;
    }
  | { readonly kind: 'prefetch'; readonly va: MVa };

interface MVmBo {
  readonly bo: number;
  /** references other than linked mappings */
  refs: number;
  /** linked mappings, link order */
  readonly list: MVa[];
}

export interface ModelOptions {
  start: bigint;
  range: bigint;
  reserve?: { start: bigint; range: bigint };
}

function hex(v: bigint): string {
  return '0x' + v.toString(16);
}

export class VmModel {
  readonly start: bigint;
  readonly end: bigint;
  /** the kernel-reserved node [addr, end), or null */
  readonly kernel: { readonly addr: bigint; readonly end: bigint } | null;
  /** mappings in address order, the kernel node excluded */
  private vas: MVa[] = [];
  /** VmBos by BO id, in registration order */
  private readonly vmBos = new Map<number, MVmBo>();
  private pending: { ops: MOp[]; hold: number; next: number } | null = null;
  private nextId = 1;
  /** bumped by every change of the mappings (for callers that cache views of them) */
  version = 0;

  constructor(o: ModelOptions) {
    if (o.range === 0n || o.start + o.range > U64_MAX) throw new ModelError('EINVAL', 'bad VM geometry');
    this.start = o.start;
    this.end = o.start + o.range;
    const k = o.reserve;
    if (k !== undefined && k.range !== 0n) {
      if (k.start + k.range > U64_MAX || k.start < this.start || k.start + k.range > this.end) {
        throw new ModelError('EINVAL', 'reserved node not inside the VM');
      }
      this.kernel = { addr: k.start, end: k.start + k.range };
    } else {
      this.kernel = null;
    }
  }

  // ---- validation ------------------------------------------------------------

  /** EINVAL unless [a, a+r) is a valid range of this VM. */
  validate(what: string, a: bigint, r: bigint, kernel = true): void {
    if (a < 0n || r < 0n || a > U64_MAX || r > U64_MAX) throw new RangeError(`${what}: not a u64`);
    if (r === 0n) throw new ModelError('EINVAL', `${what}: zero range at ${hex(a)}`);
    // an end of exactly 2^64 is an overflow too (half-open u64 intervals)
    if (a + r > U64_MAX) throw new ModelError('EINVAL', `${what}: ${hex(a)} + ${hex(r)} overflows`);
    const e = a + r;
    if (a < this.start || e > this.end) throw new ModelError('EINVAL', `${what}: [${hex(a)}, ${hex(e)}) not inside the VM`);
    const k = this.kernel;
    if (kernel && k !== null && a < k.end && k.addr < e) {
      throw new ModelError('EINVAL', `${what}: [${hex(a)}, ${hex(e)}) overlaps the kernel node`);
    }
  }

  /** Whether the request would be valid (no throw). */
  valid(a: bigint, r: bigint, kernel = true): boolean {
    try {
      this.validate('valid', a, r, kernel);
      return true;
    } catch {
      return false;
    }
  }

  // ---- reads -------------------------------------------------------------------

  mappings(): readonly MVa[] {
    return this.vas;
  }

  get count(): number {
    return this.vas.length;
  }

  /** Mappings overlapping [a, e), ascending (the kernel node is never among them). */
  overlapping(a: bigint, e: bigint): MVa[] {
    const out: MVa[] = [];
    for (const m of this.vas) {
      if (m.addr >= e) break;
      if (m.addr + m.range > a) out.push(m);
    }
    return out;
  }

  /** The mapping containing x (kernel node excluded), or null. */
  containing(x: bigint): MVa | null {
    for (const m of this.vas) {
      if (m.addr > x) return null;
      if (x < m.addr + m.range) return m;
    }
    return null;
  }

  /** BO ids of the live VmBos, in registration order. */
  vmBoOrder(): number[] {
    return [...this.vmBos.keys()];
  }

  hasVmBo(bo: number): boolean {
    return this.vmBos.has(bo);
  }

  /** The VmBo's linked mappings, link order ([] when there is no VmBo). */
  vmBoList(bo: number): readonly MVa[] {
    return this.vmBos.get(bo)?.list ?? [];
  }

  /** linked mappings + held references, or 0 when there is no VmBo */
  refcount(bo: number): number {
    const vb = this.vmBos.get(bo);
    return vb === undefined ? 0 : vb.list.length + vb.refs;
  }

  /** Whether a list is pending and partly applied. */
  get busy(): boolean {
    return this.pending !== null && this.pending.next > 0;
  }

  get hasPending(): boolean {
    return this.pending !== null;
  }

  // ---- VmBo references -------------------------------------------------------------

  private vmBo(bo: number): MVmBo {
    let vb = this.vmBos.get(bo);
    if (vb === undefined) {
      vb = { bo, refs: 0, list: [] };
      this.vmBos.set(bo, vb);
    }
    return vb;
  }

  private maybeDestroy(vb: MVmBo): boolean {
    if (vb.refs === 0 && vb.list.length === 0) {
      this.vmBos.delete(vb.bo);
      return true;
    }
    return false;
  }

  /** obtain / findBo / get: +1 reference (obtain creates). */
  obtain(bo: number): void {
    if (bo === 0) throw new Error('obtain: no BO');
    this.vmBo(bo).refs++;
  }

  /** put: -1 reference; true when that destroyed the VmBo. */
  put(bo: number): boolean {
    const vb = this.vmBos.get(bo);
    if (vb === undefined || vb.refs === 0) throw new Error(`model put(${bo}) without a reference`);
    vb.refs--;
    return this.maybeDestroy(vb);
  }

  // ---- op generation -----------------------------------------------------------------

  private beginList(): void {
    if (this.busy) throw new ModelError('EBUSY', 'a list is partly applied');
    this.dropPending();
  }

  private setPending(ops: MOp[], hold: number): MOp[] {
    if (hold !== 0) this.vmBo(hold).refs++;
    this.pending = { ops, hold, next: 0 };
    if (ops.length === 0) this.finishPending();
    return ops;
  }

  /** sm_map (the split/merge case table). Makes the list pending. */
  smMap(a: bigint, r: bigint, bo: number, off: bigint): MOp[] {
    this.validate('smMap', a, r);
    this.beginList();
    const e = a + r;
    const ops: MOp[] = [];
    for (const m of this.overlapping(a, e)) {
      const s = m.addr;
      const t = m.addr + m.range;
      const B = m.bo;
      const o = m.offset;
      const P: MPiece = { addr: s, range: a - s, bo: B, offset: o };
      const N: MPiece = { addr: e, range: t - e, bo: B, offset: wrap(o + (e - s)) };
      let keep: boolean;
      if (s === a) {
        keep = B !== 0 && B === bo && o === off;
        if (t <= e) ops.push({ kind: 'unmap', va: m, keep });
        else ops.push({ kind: 'remap', unmap: { va: m, keep }, prev: null, next: N });
      } else if (s < a) {
        keep = B !== 0 && B === bo && wrap(o + (a - s)) === off;
        if (t <= e) ops.push({ kind: 'remap', unmap: { va: m, keep }, prev: P, next: null });
        else ops.push({ kind: 'remap', unmap: { va: m, keep }, prev: P, next: N });
      } else {
        keep = B !== 0 && B === bo && o === wrap(off + (s - a));
        if (t <= e) ops.push({ kind: 'unmap', va: m, keep });
        else ops.push({ kind: 'remap', unmap: { va: m, keep }, prev: null, next: N });
      }
      if (t >= e) break;
    }
    ops.push({ kind: 'map', addr: a, range: r, bo, offset: off });
    return this.setPending(ops, bo);
  }

  /** sm_unmap (§2.5): keep is always false, no MAP. Makes the list pending. */
  smUnmap(a: bigint, r: bigint): MOp[] {
    this.validate('smUnmap', a, r);
    this.beginList();
    const e = a + r;
    const ops: MOp[] = [];
    for (const m of this.overlapping(a, e)) {
      const s = m.addr;
      const t = m.addr + m.range;
      const prev = s < a ? { addr: s, range: a - s, bo: m.bo, offset: m.offset } : null;
      const next = t > e ? { addr: e, range: t - e, bo: m.bo, offset: wrap(m.offset + (e - s)) } : null;
      if (prev !== null || next !== null) ops.push({ kind: 'remap', unmap: { va: m, keep: false }, prev, next });
      else ops.push({ kind: 'unmap', va: m, keep: false });
    }
    return this.setPending(ops, 0);
  }

  /** prefetch (§2.6): whole overlapping mappings, kernel node skipped. Makes the list pending. */
  prefetch(a: bigint, r: bigint): MOp[] {
    // the kernel checks only overflow: a zero range lists nothing, one
    // reaching outside the VM lists what it overlaps
    if (a < 0n || r < 0n || a > U64_MAX || r > U64_MAX) throw new RangeError('prefetch: not a u64');
    if (a + r > U64_MAX) throw new ModelError('EINVAL', `prefetch: ${hex(a)} + ${hex(r)} overflows`);
    this.beginList();
    const ops: MOp[] = r === 0n ? [] : this.overlapping(a, a + r).map((va) => ({ kind: 'prefetch', va }));
    return this.setPending(ops, 0);
  }

  /** VmBo unmap (§2.7 v6 form): UNMAP(keep=0) per linked mapping, link order. Makes the list pending. */
  vmBoUnmap(bo: number): MOp[] {
    const vb = this.vmBos.get(bo);
    if (vb === undefined) throw new Error(`model: no VmBo for BO ${bo}`);
    this.beginList();
    const ops: MOp[] = vb.list.map((va) => ({ kind: 'unmap', va, keep: false }));
    return this.setPending(ops, 0);
  }

  // ---- application -----------------------------------------------------------------

  private finishPending(): void {
    const p = this.pending!;
    this.pending = null;
    if (p.hold !== 0) {
      const vb = this.vmBos.get(p.hold)!;
      vb.refs--;
      this.maybeDestroy(vb);
    }
  }

  /** Drops the pending list (the rest is not applied). */
  dropPending(): void {
    if (this.pending !== null) this.finishPending();
  }

  /** Applies the pending ops [next, to) (all by default). */
  applyPending(to?: number): void {
    const p = this.pending;
    if (p === null) {
      if (to === undefined || to === 0) return;
      throw new Error('model: no pending list');
    }
    const end = to ?? p.ops.length;
    for (; p.next < end; p.next++) this.applyOp(p.ops[p.next]);
    if (p.next === p.ops.length) this.finishPending();
  }

  /** sm_map + apply; returns the op count. */
  bind(a: bigint, r: bigint, bo: number, off: bigint): number {
    const n = this.smMap(a, r, bo, off).length;
    this.applyPending();
    return n;
  }

  /** sm_unmap + apply; returns the op count. */
  unbind(a: bigint, r: bigint): number {
    const n = this.smUnmap(a, r).length;
    this.applyPending();
    return n;
  }

  /** Sets a mapping's flags (the model never changes them otherwise; pieces inherit them). */
  setFlags(va: MVa, flags: number): void {
    va.flags = flags >>> 0;
  }

  private newVa(p: MPiece, flags: number): MVa {
    return { id: this.nextId++, addr: p.addr, range: p.range, bo: p.bo, offset: p.offset, flags, linked: 0 };
  }

  private insertVa(va: MVa): void {
    let i = this.vas.length;
    while (i > 0 && this.vas[i - 1].addr > va.addr) i--;
    const before = this.vas[i - 1];
    const after = this.vas[i];
    if ((before && before.addr + before.range > va.addr) || (after && after.addr < va.addr + va.range)) {
      throw new Error(`model: insert [${hex(va.addr)}, +${hex(va.range)}) overlaps`);
    }
    this.vas.splice(i, 0, va);
  }

  private removeVa(va: MVa): void {
    const i = this.vas.indexOf(va);
    if (i < 0) throw new Error(`model: mapping ${va.id} is not in the VM`);
    this.vas.splice(i, 1);
  }

  private link(va: MVa, bo: number): void {
    if (va.bo === 0 || bo === 0) return;
    const vb = this.vmBos.get(bo);
    if (vb === undefined) throw new Error(`model: link to a missing VmBo of BO ${bo}`);
    vb.list.push(va);
    va.linked = bo;
  }

  private unlink(va: MVa): void {
    if (va.linked === 0) return;
    const vb = this.vmBos.get(va.linked)!;
    vb.list.splice(vb.list.indexOf(va), 1);
    va.linked = 0;
    this.maybeDestroy(vb);
  }

  private applyOp(op: MOp): void {
    this.version++;
    switch (op.kind) {
      case 'map': {
        const va = this.newVa(op, 0);
        this.insertVa(va);
        this.link(va, op.bo);
        return;
      }
      case 'unmap':
        this.removeVa(op.va);
        this.unlink(op.va);
        return;
      case 'remap': {
        const old = op.unmap.va;
        this.removeVa(old);
        const pieces: MVa[] = [];
        if (op.prev) pieces.push(this.newVa(op.prev, old.flags));
        if (op.next) pieces.push(this.newVa(op.next, old.flags));
        for (const p of pieces) this.insertVa(p);
        // link the pieces before unlinking the old mapping (the kernel's remap order)
        for (const p of pieces) this.link(p, old.linked);
        this.unlink(old);
        return;
      }
      case 'prefetch':
        return;
    }
  }

  // ---- checks ------------------------------------------------------------------------

  /** Throws if the model's own invariants are broken (disjoint, sorted, VmBo lists consistent). */
  checkInvariants(): void {
    for (let i = 1; i < this.vas.length; i++) {
      const a = this.vas[i - 1];
      if (a.addr + a.range > this.vas[i].addr) throw new Error('model: overlapping mappings');
    }
    const k = this.kernel;
    for (const m of this.vas) {
      if (m.range === 0n || m.addr < this.start || m.addr + m.range > this.end) throw new Error('model: mapping outside');
      if (k && m.addr < k.end && k.addr < m.addr + m.range) throw new Error('model: mapping over the kernel node');
      if (m.linked !== 0 && !this.vmBos.get(m.linked)?.list.includes(m)) throw new Error('model: dangling link');
    }
    for (const vb of this.vmBos.values()) {
      if (vb.list.length + vb.refs === 0) throw new Error('model: VmBo with no reference');
      for (const m of vb.list) if (m.linked !== vb.bo || !this.vas.includes(m)) throw new Error('model: bad VmBo list');
    }
  }
}

// ---- replay text, for checking the model against test/vectors ---------------------------

function opLine(op: MOp): string {
  const h = hex;
  switch (op.kind) {
    case 'map':
      return `map ${h(op.addr)} ${h(op.range)} bo=${op.bo} off=${h(op.offset)}`;
    case 'unmap':
      return `unmap ${h(op.va.addr)} ${h(op.va.range)} bo=${op.va.bo} off=${h(op.va.offset)} keep=${op.keep ? 1 : 0}`;
    case 'prefetch':
      return `prefetch ${h(op.va.addr)} ${h(op.va.range)} bo=${op.va.bo}`;
    case 'remap': {
      const u = op.unmap;
      const piece = (p: MPiece | null) => (p ? `${h(p.addr)},${h(p.range)},${h(p.offset)}` : '-');
      return (
        `remap unmap=${h(u.va.addr)},${h(u.va.range)},bo=${u.va.bo},off=${h(u.va.offset)},keep=${u.keep ? 1 : 0} ` +
        `prev=${piece(op.prev)} next=${piece(op.next)}`
      );
    }
  }
}

/**
 * Runs the GpuVm commands of a replay file (init, map, unmap, prefetch,
 * unmapbo, dump) on models and returns the output lines. Page-table commands
 * are not modelled: the caller passes only files without them.
 */
export function replayModel(text: string): string[] {
  const out: string[] = [];
  let vm: VmModel | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [cmd, ...args] = line.split(/\s+/);
    const n = args.map((x) => BigInt(x));
    try {
      switch (cmd) {
        case 'init':
          vm = new VmModel({ start: n[0], range: n[1], reserve: n.length > 2 ? { start: n[2], range: n[3] } : undefined });
          break;
        case 'map':
        case 'unmap':
        case 'prefetch':
        case 'unmapbo': {
          const m = vm!;
          let ops: MOp[];
          if (cmd === 'map') ops = m.smMap(n[0], n[1], Number(n[2]), n[3]);
          else if (cmd === 'unmap') ops = m.smUnmap(n[0], n[1]);
          else if (cmd === 'prefetch') ops = m.prefetch(n[0], n[1]);
          else if (m.hasVmBo(Number(n[0]))) {
            ops = m.vmBoUnmap(Number(n[0]));
            // the replay language lists them in address order
            ops = [...ops].sort((x, y) => ((x as { va: MVa }).va.addr < (y as { va: MVa }).va.addr ? -1 : 1));
          } else ops = [];
          for (const op of ops) out.push(opLine(op));
          if (cmd === 'prefetch') m.dropPending();
          else m.applyPending();
          out.push('ok');
          break;
        }
        case 'dump':
          for (const va of vm!.mappings()) out.push(`va ${hex(va.addr)} ${hex(va.range)} bo=${va.bo} off=${hex(va.offset)}`);
          break;
        default:
          throw new Error(`replayModel: unsupported command ${cmd}`);
      }
    } catch (e) {
      if (e instanceof ModelError) out.push(`err ${e.code}`);
      else throw e;
    }
  }
  return out;
}
