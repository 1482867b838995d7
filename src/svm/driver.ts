/**
 * SvmDriver: the reference driver on top of GpuSvm, following the xe GPU
 * driver's flows: the GPU page-fault handler (with its retry loop, atomic
 * faults that must land in device memory, and the timeslice they ask for),
 * the garbage collector of unmapped ranges, VM_BIND prefetch of an
 * address-mirror mapping, eviction, and the invalidation callback.
 *
 * Races on demand: each flow calls optional hooks at seven arrival points
 * (after the collector, after the range lookup, before get_pages, before each
 * HMM walk, before mapping, before the bind check, after the bind). A hook may
 * run any CpuMm operation; the steps that follow see what it changed, which
 * is how tests reach every sequence-number retry deterministically.
 *
 * Given a PageTable, the driver keeps it in step with what the GPU may
 * access: a bind writes the range's entries (system pages at their frames,
 * device pages at their device addresses), an invalidation zaps them, the
 * collector unbinds them.
 */
import type { ErrnoName } from '../backend/engine.js';
import { GpuVmError } from '../errors.js';
import { PageTable, type PtBatchEntry, type PtSegment } from '../page-table.js';
import type { U64 } from '../u64.js';
import { describe } from '../u64.js';
import { addrOf, interval, optBool, optionsObject, pageOf, PAGE_SIZE } from './addr.js';
import { mmPageRuns, mmVmaFrom, type CpuMm, type MmInvalidation } from './cpu-mm.js';
import {
  GpuSvm,
  gpuWindow,
  invalidationPages,
  notifierEnd,
  notifierFirst,
  RangeFlag,
  rangeEnd,
  rangeFirst,
  rangeFlags,
  rangeSetBound,
  rangeSetQueued,
  svmAllocVram,
  svmCheckLive,
  svmEmit,
  svmFindOrInsert,
  svmGetPages,
  svmLastFound,
  svmRangeAt,
  svmRangeEvict,
  svmRangeRemove,
  svmRangesIn,
  svmSetUnmapped,
  svmUnmapPages,
  svmThreshold,
  svmWindow,
  type GetPagesHooks,
  type GpuSvmOptions,
  type SvmNotifier,
  type SvmRange,
  type SvmTrace,
} from './gpu-svm.js';
import { lockFields } from '../read-only.js';

/** The arrival points of the fault and prefetch flows. */
export const ARRIVAL_POINTS = ['afterGc', 'afterFind', 'afterMigrate', 'inHmm', 'beforeMap', 'beforeBind', 'afterBind'] as const;
export type ArrivalPoint = (typeof ARRIVAL_POINTS)[number];
/** Hooks at arrival points; each receives its arrival number (from 1, over all passes of the call). */
export type SvmHooks = { readonly [P in ArrivalPoint]?: (arrival: number) => void };

export interface SvmDriverOptions<N extends U64 = U64> extends Omit<GpuSvmOptions<N>, 'invalidate'> {
  /** a page table kept in step with the bound ranges */
  pageTable?: PageTable | null;
}

export interface FaultOptions {
  /** the faulting GPU mapping's window (default: the SVM window) */
  gpuStart?: U64;
  gpuEnd?: U64;
  /** a read fault */
  ro?: boolean;
  /** prefer device memory */
  devmem?: boolean;
  /** an atomic access: the pages must be in device memory */
  atomic?: boolean;
  hooks?: SvmHooks;
}

const { MIGRATE_DEVMEM, HAS_DEVMEM_PAGES, HAS_DMA_MAPPING } = RangeFlag;
const VALID = HAS_DMA_MAPPING | HAS_DEVMEM_PAGES;
const NO_HOOKS: SvmHooks = Object.freeze({});
const U64_MASK = 0xffff_ffff_ffff_ffffn;

/** Counts arrivals per point and calls the hooks; one per fault or prefetch. */
class Arrivals {
  readonly counts = new Map<ArrivalPoint, number>();
  readonly pageHooks: GetPagesHooks;
  constructor(readonly hooks: SvmHooks) {
    this.pageHooks = {
      inHmm: hooks.inHmm ? () => this.arrive('inHmm') : undefined,
      beforeMap: hooks.beforeMap ? () => this.arrive('beforeMap') : undefined,
    };
  }
  arrive(point: ArrivalPoint): void {
    const f = this.hooks[point];
    if (f === undefined) return;
    const k = (this.counts.get(point) ?? 0) + 1;
    this.counts.set(point, k);
    f(k);
  }
}

function readHooks(h: unknown): SvmHooks {
  if (h === undefined) return NO_HOOKS;
  if (h === null || typeof h !== 'object') throw new TypeError(`hooks must be an object, got ${describe(h)}`);
  const out: { [P in ArrivalPoint]?: (arrival: number) => void } = {};
  for (const p of ARRIVAL_POINTS) {
    const f = (h as Record<string, unknown>)[p];
    if (f !== undefined && typeof f !== 'function') throw new TypeError(`hooks.${p} must be a function, got ${describe(f)}`);
    if (f !== undefined) out[p] = f as (arrival: number) => void;
  }
  return out;
}

export class SvmDriver<N extends U64 = U64> {
  readonly svm: GpuSvm<N>;
  readonly pageTable: PageTable | null;
  /** the collector's queue: ranges unmapped by the CPU, oldest first */
  #queue: SvmRange<N>[] = [];
  #head = 0;

  constructor(options: SvmDriverOptions<N>) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`SvmDriver options must be an object, got ${describe(options)}`);
    }
    const pt = options.pageTable ?? null;
    if (pt !== null && !(pt instanceof PageTable)) throw new TypeError(`pageTable must be a PageTable, got ${describe(pt)}`);
    // GpuSvm reads (once) and checks every other option
    const o: GpuSvmOptions<N> = {
      mm: options.mm,
      devmem: options.devmem,
      start: options.start,
      range: options.range,
      notifierSize: options.notifierSize,
      chunks: options.chunks,
      threshold: options.threshold,
      retries: options.retries,
      timeslice: options.timeslice,
      trace: options.trace,
      invalidate: (svm, n, inv) => this.#invalidate(svm, n, inv),
    };
    this.pageTable = pt;
    this.svm = new GpuSvm<N>(o);
    lockFields(this, ['pageTable', 'svm']);
  }

  get mm(): CpuMm<N> {
    return this.svm.mm;
  }

  get trace(): SvmTrace<N> | null {
    return this.svm.trace;
  }
  set trace(t: SvmTrace<N> | null) {
    this.svm.trace = t;
  }

  /** Ranges waiting for the collector, oldest first. */
  get queued(): SvmRange<N>[] {
    return this.#queue.slice(this.#head);
  }

  get [Symbol.toStringTag](): string {
    return 'SvmDriver';
  }

  /**
   * Handles a GPU page fault at `addr`: collects unmapped ranges, finds or
   * creates the range, migrates it to device memory when wanted, faults its
   * pages in and binds it, retrying (up to `retries` times) when a race or a
   * mixed placement gets in the way. Returns the range; throws GpuVmError
   * with the errno of the step that ended the fault.
   */
  fault(addr: U64, options?: FaultOptions): SvmRange<N> {
    const o = options === undefined ? NO_OPTIONS : optionsObject(options, 'fault options');
    const gs = o.gpuStart;
    const ge = o.gpuEnd;
    const ro = optBool(o.ro, 'ro');
    const devmem = optBool(o.devmem, 'devmem');
    const atomic = optBool(o.atomic, 'atomic');
    const hooks = readHooks(o.hooks);
    const svm = this.svm;
    const x = pageOf(addr, 'addr', svm.bigint);
    svmCheckLive(svm);
    const [first, end] = svmWindow(svm);
    const [gsP, geP] = gpuWindow(gs, ge, first, end);
    const hasDev = svm.hasDevmem;
    const wantDev = hasDev && (devmem || atomic);
    const only = hasDev && atomic;
    const write = !ro;
    const arrivals = hooks === NO_HOOKS ? null : new Arrivals(hooks);
    let ts = only ? svm.timeslice : 0n;
    let tries = only ? 3 : 1;
    let retry = 0;
    for (;;) {
      this.#gc();
      arrivals?.arrive('afterGc');
      const r = svmFindOrInsert(svm, x, gsP, geP, ro, wantDev, svmThreshold(svm));
      emitRange(svm, r, svmLastFound());
      arrivals?.arrive('afterFind');
      let f = rangeFlags(r);
      if (only && (f & MIGRATE_DEVMEM) === 0) throw new GpuVmError('EACCES', 'fault: atomic access to a range that cannot use device memory');
      if (r.bound && (!only || (f & HAS_DEVMEM_PAGES) !== 0)) return r;
      let cause: 'migrate' | 'pages' | 'bind' | null = null;
      let code: ErrnoName | null = null;
      tries--;
      if (tries >= 0 && wantDev && (f & MIGRATE_DEVMEM) !== 0 && (f & HAS_DEVMEM_PAGES) === 0) {
        code = svmAllocVram(svm, r, ts);
        ts = (ts << 1n) & U64_MASK;
        if (code !== null) {
          if (!only) cause = 'migrate';
          else if (tries === 0) throw new GpuVmError(code, 'fault: migration to device memory failed with no attempt left');
        }
      }
      if (cause === null) {
        arrivals?.arrive('afterMigrate');
        code = svmGetPages(svm, r, wantDev, write, only, arrivals?.pageHooks ?? NO_PAGE_HOOKS);
        if (code !== null) {
          if (code === 'EOPNOTSUPP') svmRangeEvict(svm, r);
          if (code !== 'EOPNOTSUPP' && code !== 'EFAULT' && code !== 'EPERM') throw new GpuVmError(code, 'fault: get_pages');
          ts = (ts << 1n) & U64_MASK;
          if (tries > 0 || !only) cause = 'pages';
          else throw new GpuVmError(code, 'fault: get_pages failed with no attempt left');
        }
      }
      if (cause === null) {
        arrivals?.arrive('beforeBind');
        f = rangeFlags(r);
        if ((f & VALID) === 0) {
          ts = (ts << 1n) & U64_MASK;
          cause = 'bind';
          code = 'EAGAIN';
        } else {
          this.#bind(r);
          arrivals?.arrive('afterBind');
          return r;
        }
      }
      if (retry >= svm.retries) throw new GpuVmError('EBUSY', 'fault: retry budget spent');
      retry++;
      const c = cause;
      const k = code!;
      svmEmit(svm, () => ({ type: 'retry', cause: c, code: k }));
    }
  }

  /** Runs the garbage collector: unbinds and removes every queued range. Returns how many it collected. */
  gc(): number {
    svmCheckLive(this.svm);
    return this.#gc();
  }

  /**
   * VM_BIND prefetch of [addr, addr + len) of an address-mirror mapping that
   * covers the SVM window, into device memory (`devmem`) or system memory.
   * Returns the ranges it bound. ENODATA when a range could not be placed;
   * EAGAIN when an invalidation reached a collected range before the bind.
   */
  prefetch(addr: U64, len: U64, options?: { devmem?: boolean; hooks?: SvmHooks }): SvmRange<N>[] {
    const o = optionsObject(options, 'prefetch options');
    const devmem = optBool(o.devmem, 'devmem');
    const hooks = readHooks(o.hooks);
    const svm = this.svm;
    const [s0, e0] = interval(addr, len, svm.bigint, 'prefetch');
    svmCheckLive(svm);
    const [first, end] = svmWindow(svm);
    const S = Math.max(s0, first);
    const E = Math.min(e0, end);
    if (S >= E) return [];
    const arrivals = new Arrivals(hooks);
    const wantDev = svm.hasDevmem && devmem;
    const mm = svm.mm as CpuMm;
    // phase 1: collect
    const collected: SvmRange<N>[] = [];
    let a = S;
    for (;;) {
      let r: SvmRange<N>;
      try {
        r = svmFindOrInsert(svm, a, first, end, false, false, 0);
      } catch (err) {
        if (!(err instanceof GpuVmError) || err.code !== 'ENOENT') throw err;
        const v = mmVmaFrom(mm, a, E);
        if (v === null) break;
        a = v.start;
        continue;
      }
      emitRange(svm, r, svmLastFound());
      arrivals.arrive('afterFind');
      const f = rangeFlags(r);
      if (r.bound && ((f & HAS_DEVMEM_PAGES) !== 0) === wantDev) {
        const s = rangeFirst(r);
        const e = rangeEnd(r);
        svmEmit(svm, (big) => ({ type: 'skip', start: addrOf(s, big), size: addrOf(e - s, big) }));
      } else {
        collected.push(r);
      }
      const re = rangeEnd(r);
      if (re < E && re < end) a = re;
      else break;
    }
    // phase 2: pages
    for (const r of collected) {
      let f = rangeFlags(r);
      if (!wantDev && (f & HAS_DEVMEM_PAGES) !== 0) svmRangeEvict(svm, r);
      f = rangeFlags(r);
      if (wantDev && (f & MIGRATE_DEVMEM) !== 0 && (f & HAS_DEVMEM_PAGES) === 0) {
        if (svmAllocVram(svm, r, 0n) !== null) throw new GpuVmError('ENODATA', 'prefetch: migration to device memory failed');
      }
      arrivals.arrive('afterMigrate');
      const code = svmGetPages(svm, r, wantDev, true, false, arrivals.pageHooks);
      if (code !== null) {
        if (code === 'EOPNOTSUPP') svmRangeEvict(svm, r);
        if (code === 'EOPNOTSUPP' || code === 'EFAULT' || code === 'EPERM') throw new GpuVmError('ENODATA', `prefetch: get_pages failed with ${code}`);
        throw new GpuVmError(code, 'prefetch: get_pages');
      }
    }
    // phase 3: bind all or nothing
    arrivals.arrive('beforeBind');
    if (collected.some((r) => (rangeFlags(r) & VALID) === 0)) throw new GpuVmError('EAGAIN', 'prefetch: a range was invalidated before the bind');
    for (const r of collected) this.#bind(r);
    arrivals.arrive('afterBind');
    return collected;
  }

  /** Evicts the range containing `addr` (queued unmapped ranges count): its device pages go back to RAM. */
  evict(addr: U64): void {
    const svm = this.svm;
    const p = pageOf(addr, 'addr', svm.bigint);
    svmCheckLive(svm);
    const r = svmRangeAt(svm, p);
    if (r === null) throw new GpuVmError('ENOENT', 'evict: no range contains the address');
    const code = svmRangeEvict(svm, r);
    if (code !== null) throw new GpuVmError(code, 'evict');
  }

  /** Tears down the GpuSvm (the page table is left to its owner). */
  fini(): void {
    this.#queue = [];
    this.#head = 0;
    this.svm.fini();
  }

  #gc(): number {
    const svm = this.svm;
    // unbind every queued range in one page-table call (the collector queues nothing new)
    if (this.pageTable !== null && this.#head < this.#queue.length) this.#ptBatch('unbind', this.#queue.slice(this.#head));
    let n = 0;
    while (this.#head < this.#queue.length) {
      const r = this.#queue[this.#head++];
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
      rangeSetQueued(r, false);
      const s = rangeFirst(r);
      const e = rangeEnd(r);
      svmEmit(svm, (big) => ({ type: 'unbind', start: addrOf(s, big), size: addrOf(e - s, big) }));
      rangeSetBound(r, false);
      svmRangeRemove(svm, r);
      n++;
    }
    return n;
  }

  /** One page-table call for the ranges: zap (invalidation) or unbind (collection). */
  #ptBatch(op: 'zap' | 'unbind', ranges: readonly SvmRange<N>[]): void {
    if (ranges.length === 0) return;
    const entries: PtBatchEntry[] = ranges.map((r) => ({ op, va: ptAddr(rangeFirst(r)), size: ptAddr(rangeEnd(r) - rangeFirst(r)) }));
    this.pageTable!.batch(entries);
  }

  #bind(r: SvmRange<N>): void {
    const svm = this.svm;
    const s = rangeFirst(r);
    const e = rangeEnd(r);
    svmEmit(svm, (big) => ({ type: 'bind', start: addrOf(s, big), size: addrOf(e - s, big) }));
    if (this.pageTable !== null) {
      const segs: PtSegment[] = [];
      for (const x of mmPageRuns(svm.mm as CpuMm, s, e)) {
        const a = Math.max(x.start, s);
        const b = Math.min(x.end, e);
        segs.push({ pa: ptAddr(x.pa + (a - x.start)), len: ptAddr(b - a) });
      }
      this.pageTable.bind(ptAddr(s), ptAddr(e - s), segs);
    }
    rangeSetBound(r, true);
  }

  /** The invalidation callback (runs inside the CpuMm's notifier, before the change). */
  #invalidate(svm: GpuSvm<N>, n: SvmNotifier<N>, inv: MmInvalidation<N>): void {
    const [s, e] = invalidationPages(inv);
    const ns = notifierFirst(n);
    const a = Math.max(s, ns);
    const b = Math.min(e, notifierEnd(n));
    svmEmit(svm, (big) => ({ type: 'invalidate', notifier: addrOf(ns, big), start: addrOf(a, big), end: addrOf(b, big), event: inv.event }));
    const hit = svmRangesIn(svm, a, b) as SvmRange<N>[];
    // the GPU stops using every bound range first, in one page-table call
    if (this.pageTable !== null) this.#ptBatch('zap', hit.filter((r) => r.bound));
    for (const r of hit) {
      svmUnmapPages(svm, r);
      rangeSetBound(r, false);
      if (inv.event === 'UNMAP') {
        const partial = svmSetUnmapped(r, s, e);
        if (!r.queued) {
          this.#queue.push(r);
          rangeSetQueued(r, true);
        }
        const rs = rangeFirst(r);
        svmEmit(svm, (big) => ({ type: 'gc-queue', start: addrOf(rs, big), partial }));
      }
    }
  }
}

const NO_OPTIONS: Record<string, unknown> = Object.freeze({});
const NO_PAGE_HOOKS: GetPagesHooks = Object.freeze({});

function emitRange(svm: GpuSvm<any>, r: SvmRange<any>, found: boolean): void {
  const s = rangeFirst(r);
  const e = rangeEnd(r);
  svmEmit(svm, (big) => ({ type: 'range', start: addrOf(s, big), size: addrOf(e - s, big), found }));
}

/** A byte address for the page table: a number when exact, else a bigint. */
function ptAddr(p: number): U64 {
  return p < 2 ** 41 ? p * PAGE_SIZE : BigInt(p) << 12n;
}
