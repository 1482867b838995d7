/**
 * CpuMm<any>: a process address space as the GPU's shared-virtual-memory code
 * sees it. VMAs with Linux's merge rules, the state of every page (absent,
 * a system page with a frame, or a device page of a DevMem allocation), CPU
 * accesses, a virtual clock, and MMU interval notifiers with sequence
 * numbers.
 *
 * Everything is kept in page units inside engine span maps: VMAs by extent,
 * page state as extents (runs of equal state whose frames are contiguous),
 * never one record per page, so a 2^40-byte VMA touched in three places costs
 * a few records. Order of effects follows the kernel: an invalidation is
 * delivered before the pages or VMAs it announces change.
 */
import { engineFor, type BackendName } from '../backend/loader.js';
import { GpuVmError } from '../errors.js';
import type { U64 } from '../u64.js';
import { describe } from '../u64.js';
import { addrOf, interval, optBool, optionsObject, pageOf, u64Big, PAGES_U64 } from './addr.js';
import { allocPages, allocPieces, allocStart, devBasePage, devDropPages, devHooks, type DevAllocation, type DevRun } from './dev-mem.js';
import { SpanMap } from './span-map.js';
import { lockFields } from '../read-only.js';

// Accessors filled in by the classes' static blocks (module-internal, not exported from the package).
let notifierPages: (n: MmuNotifier<any>) => [number, number];
let notifierFire: (n: MmuNotifier<any>, first: number, end: number, event: MmEvent) => void;
let notifierMarkRemoved: (n: MmuNotifier<any>) => void;
let notifierRemove: (mm: CpuMm<any>, n: MmuNotifier<any>) => void;
let mmInsertNotifier: (mm: CpuMm<any>, s: number, e: number, cb: PageCallback) => MmuNotifier<any>;
let mmClock: (mm: CpuMm<any>) => bigint;
let mmEngine: (mm: CpuMm<any>) => SpanMap['engine'];
let mmLive: (mm: CpuMm<any>) => void;
let mmVma: (mm: CpuMm<any>, p: number) => Readonly<VmaRec> | null;
let mmVmaFrom: (mm: CpuMm<any>, s: number, e: number) => Readonly<VmaRec> | null;
let mmPageRuns: (mm: CpuMm<any>, s: number, e: number) => MmPageRun[];
let mmInvalidate: (mm: CpuMm<any>, s: number, e: number, ev: MmEvent) => void;
let mmWalk: (mm: CpuMm<any>, s: number, e: number, poolOwner: boolean, write: boolean) => 'EFAULT' | 'EPERM' | 'EBUSY' | null;
let mmToDevice: (mm: CpuMm<any>, s: number, e: number, a: DevAllocation<any>) => void;

export type VmaKind = 'anon' | 'file' | 'hugetlb';
export type MmEvent = 'UNMAP' | 'CLEAR' | 'PROTECTION' | 'MIGRATE';
export type PageState = 'none' | 'sys' | 'dev';

/** A VMA as it stands (a snapshot). */
export interface Vma<N extends U64 = U64> {
  readonly start: N;
  readonly size: N;
  readonly readOnly: boolean;
  readonly kind: VmaKind;
  /** the anon_vma identity (0: none; always 0 for file and hugetlb VMAs) */
  readonly anonVma: number;
  /** Linux VM_ACCOUNT */
  readonly accounted: boolean;
  /** serial of the mmap call that created it */
  readonly origin: number;
}

/** A run of pages in one state (a snapshot). */
export interface PageRun<N extends U64 = U64> {
  readonly start: N;
  readonly size: N;
  readonly state: PageState;
  /** physical address of the first page: a system frame, or a device address (none: 0) */
  readonly pa: N;
  /** the device allocation the pages belong to (dev only) */
  readonly allocation: DevAllocation | null;
}

/** What an interval notifier is told. */
export interface MmInvalidation<N extends U64 = U64> {
  readonly start: N;
  readonly end: N;
  readonly event: MmEvent;
}

export type MmuNotifierCallback<N extends U64 = U64> = (notifier: MmuNotifier<N>, range: MmInvalidation<N>) => void;

/** Internal form of a notifier's subscriber: page numbers, no objects. */
type PageCallback = (first: number, end: number, event: MmEvent) => void;

interface VmaRec {
  id: number;
  start: number;
  end: number;
  ro: boolean;
  kind: VmaKind;
  origin: number;
  anonVma: number;
  accounted: boolean;
}

/** Page-state tags: sys pages; device pages carry their allocation's tag (>= FIRST_DEV). */
const SYS = 1;
const FIRST_DEV = 2;
/** System frames are handed out in order from 1 MiB; a frame is never reused. */
const FIRST_FRAME = 0x100;

/**
 * An MMU interval notifier: watches [start, start + size) of a CpuMm. Every
 * invalidation that overlaps it moves its sequence number before the callback
 * runs, so a reader that took readBegin() learns from readRetry() whether it
 * raced with one.
 */
export class MmuNotifier<N extends U64 = U64> {
  readonly #mm: CpuMm<N>;
  readonly #first: number;
  readonly #end: number;
  #seq = 1;
  #removed = false;
  readonly #cb: PageCallback;

  /** @hidden made by the library only */
  constructor(token: symbol, mm: CpuMm<N>, first: number, end: number, cb: PageCallback) {
    if (token !== internal) throw new TypeError('use CpuMm.insertNotifier()');
    this.#mm = mm;
    this.#first = first;
    this.#end = end;
    this.#cb = cb;
  }

  get mm(): CpuMm<N> {
    return this.#mm;
  }
  get start(): N {
    return addrOf(this.#first, this.#mm.bigint) as N;
  }
  get size(): N {
    return addrOf(this.#end - this.#first, this.#mm.bigint) as N;
  }
  /** the current sequence number */
  get seq(): number {
    return this.#seq;
  }
  get removed(): boolean {
    return this.#removed;
  }
  /** Starts a read side: the sequence number to hand to readRetry(). */
  readBegin(): number {
    return this.#seq;
  }
  /** True when an invalidation reached the notifier since readBegin() returned `seq`. */
  readRetry(seq: number): boolean {
    if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) {
      throw new TypeError(`seq must be a sequence number from readBegin(), got ${describe(seq)}`);
    }
    return seq !== this.#seq;
  }
  /** Stops watching. Idempotent. */
  remove(): void {
    if (this.#removed) return;
    notifierRemove(this.#mm, this);
  }

  get [Symbol.toStringTag](): string {
    return 'MmuNotifier';
  }

  static {
    notifierPages = (n) => [n.#first, n.#end];
    notifierFire = (n, first, end, event) => {
      n.#seq = (n.#seq + 1) >>> 0 || 1;
      n.#cb(first, end, event);
    };
    notifierMarkRemoved = (n) => {
      n.#removed = true;
    };
  }
}

const internal = Symbol('CpuMm');

export interface CpuMmOptions {
  /** report addresses as bigints (accepts addresses up to 2^64) */
  bigint?: boolean;
  backend?: BackendName;
}

export class CpuMm<N extends U64 = U64> {
  readonly bigint: boolean;
  readonly #vmas: SpanMap;
  readonly #vmaRecs: (VmaRec | undefined)[] = [undefined];
  readonly #freeVmaIds: number[] = [];
  readonly #pages: SpanMap;
  /** notifier layers: each a span map of disjoint notifiers (overlapping ones go to a later layer) */
  readonly #layers: SpanMap[] = [];
  readonly #notifiers: (MmuNotifier<N> | undefined)[] = [undefined];
  readonly #freeNotifierIds: number[] = [];
  /** device-page tags -> allocation */
  readonly #devTags = new Map<number, DevAllocation>();
  readonly #tagOf = new Map<DevAllocation, number>();
  readonly #freeTags: number[] = [];
  #nextTag = FIRST_DEV;
  #clock = 0n;
  #nextAnonVma = 1;
  #mmapSerial = 0;
  #nextFrame = FIRST_FRAME;
  /** hook calls queued by the current operation, run once its state is consistent */
  #pendingHooks: (() => void)[] = [];
  /** notifier callbacks running: the address space must not change under them */
  #notifying = 0;
  /** the first error a callback or hook threw; rethrown once the operation is complete */
  #deferred: { error: unknown } | null = null;
  #destroyed = false;

  constructor(options: CpuMmOptions = {}) {
    const o = optionsObject(options, 'CpuMm options');
    const bigint = optBool(o.bigint, 'bigint');
    const backend = o.backend as BackendName | undefined;
    const engine = engineFor(backend);
    this.bigint = bigint;
    this.#vmas = new SpanMap(engine);
    this.#pages = new SpanMap(engine);
    lockFields(this, ['bigint']);
  }

  get [Symbol.toStringTag](): string {
    return 'CpuMm';
  }

  /** the virtual clock in milliseconds */
  get clock(): bigint {
    return this.#clock;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Releases the engine storage; any later call is EINVAL. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#vmas.destroy();
    this.#pages.destroy();
    for (const l of this.#layers) l.destroy();
  }

  #live(): void {
    if (this.#destroyed) throw new GpuVmError('EINVAL', 'the CpuMm was destroyed');
  }

  /** Before any change: live, and not called from inside a notifier callback (as in Linux, a callback cannot change the mm). */
  #mutable(): void {
    this.#live();
    if (this.#notifying > 0) throw new GpuVmError('EBUSY', 'the address space cannot change inside a notifier callback');
  }

  // ---- public operations -------------------------------------------------

  /**
   * mmap(addr, len) with MAP_FIXED: whatever was mapped in the interval is
   * unmapped first (one UNMAP invalidation), then the new VMA is inserted and
   * merged with its neighbours where Linux would.
   */
  mmap(addr: U64, len: U64, options?: { readOnly?: boolean; kind?: VmaKind }): void {
    const o = optionsObject(options, 'mmap options');
    const readOnly = optBool(o.readOnly, 'readOnly');
    const kind = o.kind ?? 'anon';
    this.#mutable();
    if (kind !== 'anon' && kind !== 'file' && kind !== 'hugetlb') {
      throw new TypeError(`kind must be 'anon', 'file' or 'hugetlb', got ${describe(kind)}`);
    }
    const [s, e] = interval(addr, len, this.bigint, 'mmap');
    this.#munmap(s, e);
    const rec = this.#newVma(s, e, readOnly, kind, ++this.#mmapSerial, 0, kind === 'anon' && !readOnly);
    this.#vmas.insert(s, e, rec.id, s);
    this.#normalizeAround(rec);
    this.#flushHooks();
  }

  /** munmap(addr, len): one UNMAP invalidation over the whole interval when any VMA overlaps it. */
  munmap(addr: U64, len: U64): void {
    this.#mutable();
    const [s, e] = interval(addr, len, this.bigint, 'munmap');
    this.#munmap(s, e);
    this.#flushHooks();
  }

  /**
   * mprotect(addr, len, mode). Throws ENOMEM when the interval does not start
   * in a VMA (nothing changed) or meets a hole (the VMAs before it keep their
   * change), as Linux does.
   */
  mprotect(addr: U64, len: U64, mode: 'ro' | 'rw'): void {
    this.#mutable();
    const [s, e] = interval(addr, len, this.bigint, 'mprotect');
    if (mode !== 'ro' && mode !== 'rw') throw new TypeError(`mode must be 'ro' or 'rw', got ${describe(mode)}`);
    try {
      this.#mprotect(s, e, mode === 'ro');
    } finally {
      this.#flushHooks();
    }
  }

  /** madvise(addr, len, 'dontneed'): drops the pages of every VMA piece; ENOMEM when the interval had holes (after doing all pieces). */
  madvise(addr: U64, len: U64, advice: 'dontneed'): void {
    this.#mutable();
    const [s, e] = interval(addr, len, this.bigint, 'madvise');
    if (advice !== 'dontneed') throw new TypeError(`advice must be 'dontneed', got ${describe(advice)}`);
    try {
      this.#madvise(s, e);
    } finally {
      this.#flushHooks();
    }
  }

  /**
   * A CPU access to every page of [addr, addr + len): EFAULT (no VMA), EPERM
   * (write to a read-only VMA) or EAGAIN (a device page inside its timeslice)
   * for the lowest failing page, with nothing changed; otherwise device pages
   * move back to RAM and absent pages are populated.
   */
  access(addr: U64, len: U64, options?: { write?: boolean }): void {
    const o = optionsObject(options, 'access options');
    const write = optBool(o.write, 'write');
    this.#mutable();
    const [s, e] = interval(addr, len, this.bigint, 'access');
    this.#access(s, e, write);
    this.#flushHooks();
  }

  /** Advances the clock by `ms`; EINVAL (clock unchanged) if it would reach 2^64. */
  tick(ms: U64): bigint {
    const d = u64Big(ms, 'ms', true);
    this.#live();
    const next = this.#clock + d;
    if (next > 0xffff_ffff_ffff_ffffn) throw new GpuVmError('EINVAL', `tick: the clock would pass 2^64 - 1`);
    this.#clock = next;
    return next;
  }

  /** The VMA containing `addr`, or null. */
  findVma(addr: U64): Vma<N> | null {
    this.#live();
    const p = pageOf(addr, 'addr', this.bigint);
    return this.#vmas.find(p) ? this.#vmaView(this.#vmaRecs[this.#vmas.tag]!) : null;
  }

  /** The VMAs overlapping [addr, addr + len) (default: all), ascending. */
  vmas(addr?: U64, len?: U64): Vma<N>[] {
    this.#live();
    const [s, e] = addr === undefined ? [0, PAGES_U64] : interval(addr, len, this.bigint, 'vmas');
    return this.#vmas.list(s, e).map((x) => this.#vmaView(this.#vmaRecs[x.tag]!));
  }

  /** The page runs of [addr, addr + len), ascending, absent runs included, as extents (never per page). */
  pages(addr: U64, len: U64): PageRun<N>[] {
    this.#live();
    const [s, e] = interval(addr, len, this.bigint, 'pages');
    const out: PageRun<N>[] = [];
    const big = this.bigint;
    const none = (a: number, b: number) => out.push({ start: addrOf(a, big) as N, size: addrOf(b - a, big) as N, state: 'none', pa: addrOf(0, big) as N, allocation: null });
    let p = s;
    for (const x of this.#pages.list(s, e)) {
      const a = Math.max(x.start, s);
      const b = Math.min(x.end, e);
      if (a > p) none(p, a);
      const pa = x.aux + (a - x.start);
      out.push({
        start: addrOf(a, big) as N,
        size: addrOf(b - a, big) as N,
        state: x.tag === SYS ? 'sys' : 'dev',
        pa: addrOf(pa, big) as N,
        allocation: x.tag === SYS ? null : this.#devTags.get(x.tag)!,
      });
      p = b;
    }
    if (p < e) none(p, e);
    return out;
  }

  /**
   * Watches [start, start + len) (page aligned). The callback runs after the
   * notifier's sequence number moved, before the change it announces.
   */
  insertNotifier(start: U64, len: U64, callback: MmuNotifierCallback<N>): MmuNotifier<N> {
    this.#live();
    if (typeof callback !== 'function') throw new TypeError(`callback must be a function, got ${describe(callback)}`);
    const [s, e] = interval(start, len, this.bigint, 'insertNotifier');
    const big = this.bigint;
    let self: MmuNotifier<N>;
    const cb: PageCallback = (first, end, event) =>
      callback(self, { start: addrOf(first, big) as N, end: addrOf(end, big) as N, event });
    self = mmInsertNotifier(this as CpuMm<any>, s, e, cb) as MmuNotifier<N>;
    return self;
  }

  /** Counts of what the address space holds, and the engine bytes of its indexes. */
  stats(): { vmas: number; extents: number; notifiers: number; engineBytes: number } {
    this.#live();
    const v = this.#vmas.stats();
    const p = this.#pages.stats();
    let notifiers = 0;
    let bytes = v.bytes + p.bytes;
    for (const l of this.#layers) {
      const st = l.stats();
      notifiers += st.entries;
      bytes += st.bytes;
    }
    return { vmas: v.entries, extents: p.entries, notifiers, engineBytes: bytes };
  }

  toJSON(): object {
    return { vmas: this.#destroyed ? 0 : this.#vmas.count, clock: String(this.#clock) };
  }

  // ---- VMAs ------------------------------------------------------------------

  #vmaView(r: VmaRec): Vma<N> {
    const big = this.bigint;
    return Object.freeze({
      start: addrOf(r.start, big) as N,
      size: addrOf(r.end - r.start, big) as N,
      readOnly: r.ro,
      kind: r.kind,
      anonVma: r.anonVma,
      accounted: r.accounted,
      origin: r.origin,
    });
  }

  #newVma(start: number, end: number, ro: boolean, kind: VmaKind, origin: number, anonVma: number, accounted: boolean): VmaRec {
    const id = this.#freeVmaIds.pop() ?? this.#vmaRecs.length;
    const rec: VmaRec = { id, start, end, ro, kind, origin, anonVma, accounted };
    this.#vmaRecs[id] = rec;
    return rec;
  }

  #dropVma(r: VmaRec): void {
    this.#vmaRecs[r.id] = undefined;
    this.#freeVmaIds.push(r.id);
  }

  /** The VMA record containing page p. */
  #vmaAt(p: number): VmaRec | undefined {
    return this.#vmas.find(p) ? this.#vmaRecs[this.#vmas.tag] : undefined;
  }

  static #mergeable(a: VmaRec, b: VmaRec): boolean {
    if (a.end !== b.start || a.ro !== b.ro || a.kind !== b.kind || a.accounted !== b.accounted) return false;
    switch (a.kind) {
      case 'anon':
        return a.anonVma === 0 || b.anonVma === 0 || a.anonVma === b.anonVma;
      case 'file':
        return a.origin === b.origin;
      default:
        return false;
    }
  }

  /** Merges `b` into `a` (a ends where b starts). The VMA index keeps aux = start, so the engine joins them. */
  #merge(a: VmaRec, b: VmaRec): VmaRec {
    this.#vmas.assign(b.start, b.end, a.id, b.start, true);
    a.end = b.end;
    if (a.anonVma === 0) a.anonVma = b.anonVma;
    this.#dropVma(b);
    return a;
  }

  /**
   * Normalizes the list after `r` changed: the list was normalized before, so
   * only r's neighbours can merge, in the order an ascending scan meets them.
   */
  #normalizeAround(r: VmaRec): void {
    if (r.start > 0 && this.#vmas.find(r.start - 1)) {
      const prev = this.#vmaRecs[this.#vmas.tag]!;
      if (CpuMm.#mergeable(prev, r)) r = this.#merge(prev, r);
    }
    if (r.end < PAGES_U64 && this.#vmas.find(r.end)) {
      const next = this.#vmaRecs[this.#vmas.tag]!;
      if (CpuMm.#mergeable(r, next)) this.#merge(r, next);
    }
  }

  /** Cuts VMA `r` so that [s, e) (inside it) is a VMA of its own; returns that piece. */
  #isolate(r: VmaRec, s: number, e: number): VmaRec {
    if (r.start === s && r.end === e) return r;
    const { ro, kind, origin, anonVma, accounted } = r;
    const oldEnd = r.end;
    const piece = r.start === s ? r : this.#newVma(s, e, ro, kind, origin, anonVma, accounted);
    if (piece !== r) {
      // the engine cuts r around the piece; the part right of e keeps r's tag until re-tagged
      this.#vmas.assign(s, e, piece.id, s, false);
      r.end = s;
    } else {
      r.end = e;
    }
    if (e < oldEnd) {
      const right = this.#newVma(e, oldEnd, ro, kind, origin, anonVma, accounted);
      this.#vmas.assign(e, oldEnd, right.id, e, false);
    }
    piece.end = e;
    return piece;
  }

  // ---- pages -------------------------------------------------------------

  /** The device-page tag of an allocation (one per live allocation). */
  #tagFor(a: DevAllocation): number {
    let t = this.#tagOf.get(a);
    if (t === undefined) {
      t = this.#freeTags.pop() ?? this.#nextTag++;
      this.#tagOf.set(a, t);
      this.#devTags.set(t, a);
    }
    return t;
  }

  /**
   * Device pages of `entries` clipped to [s, e) stop being device pages: their
   * allocations lose them and the ones left without pages are released.
   */
  #dropDevPages(entries: readonly { start: number; end: number; tag: number }[], s: number, e: number): void {
    for (const x of entries) {
      if (x.tag === SYS) continue;
      const a = this.#devTags.get(x.tag)!;
      if (devDropPages(a, Math.min(x.end, e) - Math.max(x.start, s))) {
        this.#devTags.delete(x.tag);
        this.#tagOf.delete(a);
        this.#freeTags.push(x.tag);
        const hook = devHooks(a.devmem).release;
        if (hook) this.#pendingHooks.push(() => hook(a));
      }
    }
  }

  /** Every page of [s, e) becomes none. */
  #clearPages(s: number, e: number): void {
    const had = this.#devTags.size > 0 ? this.#pages.list(s, e) : null;
    this.#pages.assign(s, e, 0, 0, false);
    if (had) this.#dropDevPages(had, s, e);
  }

  /** A VMA that gets its first present page receives an anon_vma (anonymous VMAs only). */
  #touch(r: VmaRec): void {
    if (r.kind === 'anon' && r.anonVma === 0) r.anonVma = this.#nextAnonVma++;
  }

  /** Absent pages of [s, e), all inside VMA r, become system pages with fresh frames. */
  #populate(r: VmaRec, s: number, e: number): void {
    let p = s;
    let filled = false;
    const fill = (a: number, b: number) => {
      this.#pages.assign(a, b, SYS, this.#frames(a, b - a), true);
      filled = true;
    };
    while (p < e && this.#pages.seek(p, e)) {
      if (this.#pages.start > p) fill(p, this.#pages.start);
      p = this.#pages.end;
    }
    if (p < e) fill(p, e);
    if (filled) this.#touch(r);
  }

  /**
   * The CPU-fault path for the device page at p (allocation a, VMA r): one
   * MIGRATE invalidation over the allocation's extent clipped to the VMA, then
   * every page of a in that block becomes a system page.
   */
  #migrateBack(p: number, r: VmaRec): void {
    this.#pages.find(p);
    const tag = this.#pages.tag;
    const a = this.#devTags.get(tag)!;
    const as = allocStart(a);
    const bs = Math.max(as, r.start);
    const be = Math.min(as + allocPages(a), r.end);
    this.#invalidate(bs, be, 'MIGRATE');
    const runs: [number, number, number][] = [];
    for (const x of this.#pages.list(bs, be)) {
      if (x.tag !== tag) continue;
      const a0 = Math.max(x.start, bs);
      const b0 = Math.min(x.end, be);
      runs.push([a0, b0, x.aux + (a0 - x.start)]);
    }
    for (const [a0, b0] of runs) {
      this.#pages.assign(a0, b0, SYS, this.#frames(a0, b0 - a0), true);
    }
    const hook = devHooks(a.devmem).copyToRam;
    if (hook) {
      const big = a.devmem.bigint;
      const list: DevRun[] = runs.map(([a0, b0, d]) => ({ start: addrOf(a0, big), size: addrOf(b0 - a0, big), devAddr: addrOf(d, big) }));
      this.#pendingHooks.push(() => hook(list));
    }
    this.#dropDevPages(runs.map(([a0, b0]) => ({ start: a0, end: b0, tag })), bs, be);
  }

  /** The lowest device page in [s, e), or -1. */
  #firstDev(s: number, e: number): number {
    let p = s;
    while (p < e && this.#pages.seek(p, e)) {
      if (this.#pages.tag !== SYS) return Math.max(this.#pages.start, s);
      p = this.#pages.end;
    }
    return -1;
  }

  #inTimeslice(p: number): boolean {
    this.#pages.find(p);
    return this.#devTags.get(this.#pages.tag)!.inTimeslice(this.#clock);
  }

  // ---- invalidations -----------------------------------------------------

  /** Delivers one invalidation of [s, e) to every overlapping notifier, ascending. */
  #invalidate(s: number, e: number, event: MmEvent): void {
    if (this.#layers.length === 0) return;
    const hits: MmuNotifier<N>[] = [];
    for (const layer of this.#layers) {
      for (const x of layer.list(s, e)) hits.push(this.#notifiers[x.tag]!);
    }
    if (this.#layers.length > 1) hits.sort((a, b) => notifierPages(a as MmuNotifier<any>)[0] - notifierPages(b as MmuNotifier<any>)[0]);
    this.#notifying++;
    try {
      for (const n of hits) {
        if (n.removed) continue;
        try {
          notifierFire(n as MmuNotifier<any>, s, e, event);
        } catch (error) {
          // the CPU side goes on (it cannot be refused); the caller sees the error when the operation is done
          this.#deferred ??= { error };
        }
      }
    } finally {
      this.#notifying--;
    }
  }

  // ---- operations on pages ---------------------------------------------

  #munmap(s: number, e: number): void {
    const hit = this.#vmas.list(s, e);
    if (hit.length === 0) return;
    this.#invalidate(s, e, 'UNMAP');
    this.#clearPages(s, e);
    for (const x of hit) {
      const r = this.#vmaRecs[x.tag]!;
      if (r.start >= s && r.end <= e) {
        this.#dropVma(r);
      } else if (r.start < s && r.end > e) {
        const right = this.#newVma(e, r.end, r.ro, r.kind, r.origin, r.anonVma, r.accounted);
        r.end = s;
        this.#vmas.assign(s, e, 0, 0, false);
        this.#vmas.assign(e, right.end, right.id, e, false);
      } else if (r.start < s) {
        r.end = s;
      } else {
        r.start = e;
      }
    }
    this.#vmas.assign(s, e, 0, 0, false);
  }

  #mprotect(s: number, e: number, ro: boolean): void {
    if (!this.#vmas.find(s)) throw new GpuVmError('ENOMEM', 'mprotect: no VMA at the start of the interval');
    let p = s;
    for (;;) {
      const r = this.#vmaAt(p);
      if (r === undefined) throw new GpuVmError('ENOMEM', `mprotect: hole at 0x${(BigInt(p) << 12n).toString(16)}`);
      const pe = Math.min(r.end, e);
      if (r.ro !== ro) {
        if (this.#pages.seek(p, pe)) this.#invalidate(p, pe, 'PROTECTION');
        const piece = this.#isolate(r, p, pe);
        piece.ro = ro;
        if (piece.kind === 'anon') {
          if (!ro) piece.accounted = true;
          else if (piece.anonVma === 0) piece.accounted = false;
        }
        this.#normalizeAround(piece);
      }
      p = pe;
      if (p >= e) return;
    }
  }

  #madvise(s: number, e: number): void {
    const hit = this.#vmas.list(s, e);
    if (hit.length === 0) throw new GpuVmError('ENOMEM', 'madvise: no VMA in the interval');
    let p = s;
    let hole = false;
    for (const x of hit) {
      const a = Math.max(x.start, s);
      const b = Math.min(x.end, e);
      if (a > p) hole = true;
      this.#invalidate(a, b, 'CLEAR');
      this.#clearPages(a, b);
      p = b;
    }
    if (p < e) hole = true;
    if (hole) throw new GpuVmError('ENOMEM', 'madvise: the interval has addresses outside every VMA');
  }

  #access(s: number, e: number, write: boolean): void {
    // check: the lowest failing page decides (for one page: no VMA, then the
    // write permission, then the timeslice)
    const vmas = this.#vmas.list(s, e).map((x) => this.#vmaRecs[x.tag]!);
    let fail: [number, 'EFAULT' | 'EPERM' | 'EAGAIN'] | null = null;
    let p = s;
    for (const r of vmas) {
      if (r.start > p) {
        fail = [p, 'EFAULT'];
        break;
      }
      if (write && r.ro) {
        fail = [p, 'EPERM'];
        break;
      }
      const pe = Math.min(r.end, e);
      let q = this.#firstDev(p, pe);
      while (q >= 0 && !this.#inTimeslice(q)) q = this.#firstDev(Math.min(this.#pages.end, pe), pe);
      if (q >= 0) {
        fail = [q, 'EAGAIN'];
        break;
      }
      p = pe;
    }
    if (fail === null && p < e) fail = [p, 'EFAULT'];
    if (fail !== null) throw new GpuVmError(fail[1], `access: page 0x${(BigInt(fail[0]) << 12n).toString(16)}`);
    // apply: device pages back to RAM (ascending), then absent pages populated
    for (const r of vmas) {
      const a = Math.max(r.start, s);
      const b = Math.min(r.end, e);
      for (let q = this.#firstDev(a, b); q >= 0; q = this.#firstDev(q, b)) this.#migrateBack(q, r);
      this.#populate(r, a, b);
    }
  }

  /** Runs the queued device hooks, then rethrows the first error a callback or hook threw. */
  #flushHooks(): void {
    if (this.#pendingHooks.length > 0) {
      const run = this.#pendingHooks;
      this.#pendingHooks = [];
      for (const f of run) {
        try {
          f();
        } catch (error) {
          this.#deferred ??= { error };
        }
      }
    }
    const d = this.#deferred;
    if (d !== null) {
      this.#deferred = null;
      throw d.error;
    }
  }

  /**
   * Frames for n pages populated at page a. A frame keeps its page's offset
   * inside a 2 MiB block, so a block populated at once is one aligned
   * physical block a GPU can map with a single large page.
   */
  #frames(a: number, n: number): number {
    const f = this.#nextFrame + ((((a - this.#nextFrame) % 512) + 512) % 512);
    this.#nextFrame = f + n;
    return f;
  }

  static {
    mmInsertNotifier = (mm, s, e, cb) => {
      const id = mm.#freeNotifierIds.pop() ?? mm.#notifiers.length;
      const n = new MmuNotifier(internal, mm, s, e, cb);
      let placed = false;
      for (const layer of mm.#layers) {
        if (!layer.seek(s, e)) {
          layer.insert(s, e, id, 0);
          placed = true;
          break;
        }
      }
      if (!placed) {
        const layer = new SpanMap(mm.#vmas.engine);
        layer.insert(s, e, id, 0);
        mm.#layers.push(layer);
      }
      mm.#notifiers[id] = n;
      return n;
    };
    notifierRemove = (mm, n) => {
      const [s] = notifierPages(n);
      for (const layer of mm.#layers) {
        if (layer.find(s) && layer.start === s && mm.#notifiers[layer.tag] === n) {
          mm.#notifiers[layer.tag] = undefined;
          mm.#freeNotifierIds.push(layer.tag);
          layer.remove(s);
          break;
        }
      }
      notifierMarkRemoved(n);
    };
    mmClock = (mm) => mm.#clock;
    mmEngine = (mm) => mm.#vmas.engine;
    mmLive = (mm) => mm.#live();
    mmVma = (mm, p) => mm.#vmaAt(p) ?? null;
    mmVmaFrom = (mm, s, e) => (mm.#vmas.seek(s, e) ? mm.#vmaRecs[mm.#vmas.tag]! : null);
    mmPageRuns = (mm, s, e) => mm.#pages.list(s, e).map((x) => ({ start: x.start, end: x.end, dev: x.tag === SYS ? null : mm.#devTags.get(x.tag)!, pa: x.aux }));
    mmInvalidate = (mm, s, e, ev) => {
      mm.#mutable();
      mm.#invalidate(s, e, ev);
      mm.#flushHooks();
    };
    mmWalk = (mm, s, e, poolOwner, write) => {
      mm.#mutable();
      try {
        return mm.#walk(s, e, poolOwner, write);
      } finally {
        mm.#flushHooks();
      }
    };
    mmToDevice = (mm, s, e, a) => {
      mm.#mutable();
      const r = mm.#vmaAt(s)!;
      const tag = mm.#tagFor(a);
      // absent pages become present too: the VMA may get its anon_vma here
      const present = mm.#pages.list(s, e).reduce((n, x) => n + Math.min(x.end, e) - Math.max(x.start, s), 0);
      const hadAbsent = present < e - s;
      const pieces = allocPieces(a);
      const base = devBasePage(a.devmem);
      const runs: DevRun[] = [];
      const big = a.devmem.bigint;
      let p = s;
      for (let i = 0; i < pieces.length; i += 2) {
        const n = pieces[i + 1];
        mm.#pages.assign(p, p + n, tag, base + pieces[i], true);
        runs.push({ start: addrOf(p, big), size: addrOf(n, big), devAddr: addrOf(base + pieces[i], big) });
        p += n;
      }
      if (hadAbsent) mm.#touch(r);
      const hooks = devHooks(a.devmem);
      if (hooks.populate) {
        const f = hooks.populate;
        mm.#pendingHooks.push(() => f(a));
      }
      if (hooks.copyToDevmem) {
        const f = hooks.copyToDevmem;
        mm.#pendingHooks.push(() => f(runs));
      }
      mm.#flushHooks();
    };
  }

  /**
   * The HMM fault walk over pages [s, e): populates absent pages, reports
   * device pages as they are to the pool's owner, and moves them back to RAM
   * for any other owner. Returns null on success or the errno that stopped it;
   * what it changed before stopping stays.
   */
  #walk(s: number, e: number, poolOwner: boolean, write: boolean): 'EFAULT' | 'EPERM' | 'EBUSY' | null {
    let p = s;
    for (const x of this.#vmas.list(s, e)) {
      const r = this.#vmaRecs[x.tag]!;
      if (r.start > p) return 'EFAULT';
      const pe = Math.min(r.end, e);
      if (write && r.ro) {
        // only device pages reported to the pool's owner escape the permission check
        if (!poolOwner) return 'EPERM';
        let q = p;
        while (q < pe) {
          if (!this.#pages.seek(q, pe) || this.#pages.start > q || this.#pages.tag === SYS) return 'EPERM';
          q = this.#pages.end;
        }
      }
      if (poolOwner) {
        this.#populate(r, p, pe);
      } else {
        const q = this.#firstDev(p, pe);
        if (q >= 0) {
          this.#populate(r, p, q);
          if (this.#inTimeslice(q)) return 'EBUSY';
          this.#migrateBack(q, r);
          return 'EBUSY';
        }
        this.#populate(r, p, pe);
      }
      p = pe;
    }
    return p < e ? 'EFAULT' : null;
  }
}

// Module-internal access for GpuSvm and the reference driver (same package, not exported from the index).
export interface MmPageRun {
  start: number;
  end: number;
  dev: DevAllocation | null;
  pa: number;
}
/** Pages [s, e) (inside one VMA) become device pages of allocation a. */
export { mmInsertNotifier, mmClock, mmEngine, mmLive, mmVma, mmVmaFrom, mmPageRuns, mmInvalidate, mmWalk, mmToDevice };
export { notifierPages };
