/**
 * GpuSvm: GPU shared virtual memory over a CpuMm (the drm_gpusvm layer).
 * A GPU may fault on any CPU address of the SVM window; GpuSvm tracks what it
 * mirrors as notifiers (one MMU interval notifier per aligned block of the
 * notifier size, created on demand, removed with their last range) and
 * ranges (chunks of the configured sizes, each with its DMA-mapping state).
 *
 * These are the core calls a driver builds its fault handler on; the
 * reference driver (driver.ts) is one such driver. Notifiers and ranges are
 * indexed by engine span maps in page units. Every loop the kernel may repeat
 * without bound is bounded by `retries` and then fails with EBUSY.
 */
import type { ErrnoName } from '../backend/engine.js';
import { GpuVmError } from '../errors.js';
import type { U64 } from '../u64.js';
import { describe } from '../u64.js';
import { addrOf, alignedPage, interval, optBool, optionsObject, pageOf, u64Big, PAGES_U64 } from './addr.js';
import {
  CpuMm,
  mmClock,
  mmEngine,
  mmInsertNotifier,
  mmInvalidate,
  mmLive,
  mmPageRuns,
  mmToDevice,
  mmVma,
  mmVmaFrom,
  mmWalk,
  type MmEvent,
  type MmInvalidation,
  type MmuNotifier,
} from './cpu-mm.js';
import { devAllocate, devFreePages, devSizePages, DevMem } from './dev-mem.js';
import { SpanMap } from './span-map.js';
import { lockFields } from '../read-only.js';

// Accessors filled in by the classes' static blocks (module-internal, not exported from the package).
let notifierFirst: (n: SvmNotifier<any>) => number;
let notifierEnd: (n: SvmNotifier<any>) => number;
let notifierMmn: (n: SvmNotifier<any>) => MmuNotifier<any>;
let notifierAdd: (n: SvmNotifier<any>, d: number) => number;
let rangeFirst: (r: SvmRange<any>) => number;
let rangeEnd: (r: SvmRange<any>) => number;
let rangeFlags: (r: SvmRange<any>) => number;
let rangeSetFlags: (r: SvmRange<any>, f: number) => void;
let rangeSetBound: (r: SvmRange<any>, b: boolean) => void;
let rangeSetQueued: (r: SvmRange<any>, q: boolean) => void;
let rangeMarkRemoved: (r: SvmRange<any>) => void;
let svmEmit: (svm: GpuSvm<any>, make: (big: boolean) => SvmEvent) => void;
let svmWindow: (svm: GpuSvm<any>) => [number, number];
let svmThreshold: (svm: GpuSvm<any>) => number;
let svmCheckLive: (svm: GpuSvm<any>) => void;
let svmRangesIn: (svm: GpuSvm<any>, s: number, e: number) => SvmRange<any>[];
let svmRangeAt: (svm: GpuSvm<any>, p: number) => SvmRange<any> | null;
let svmFindOrInsert: (svm: GpuSvm<any>, x: number, gsP: number, geP: number, readOnly: boolean, pool: boolean, thrP: number) => SvmRange<any>;
let svmRangeRemove: (svm: GpuSvm<any>, r: SvmRange<any>) => void;
let svmNotify: (svm: GpuSvm<any>, n: SvmNotifier<any>, s: number, e: number, ev: MmEvent) => void;

/** What the SVM layer reports doing, in order (the replay prints one line per event). */
export type SvmEvent<N extends U64 = U64> =
  | { readonly type: 'invalidate'; readonly notifier: N; readonly start: N; readonly end: N; readonly event: MmEvent }
  | {
      readonly type: 'unmap-pages' | 'unbind' | 'remove' | 'skip' | 'migrate' | 'evict' | 'bind';
      readonly start: N;
      readonly size: N;
    }
  | { readonly type: 'gc-queue'; readonly start: N; readonly partial: boolean }
  | { readonly type: 'notifier-remove'; readonly start: N }
  | { readonly type: 'range'; readonly start: N; readonly size: N; readonly found: boolean }
  | { readonly type: 'pages'; readonly start: N; readonly size: N; readonly placement: 'sys' | 'dev' }
  | { readonly type: 'migrate-fail'; readonly code: ErrnoName }
  | { readonly type: 'hmm-retry' | 'seq-retry' }
  | { readonly type: 'retry'; readonly cause: 'migrate' | 'pages' | 'bind'; readonly code: ErrnoName };

export type SvmTrace<N extends U64 = U64> = (event: SvmEvent<N>) => void;

/** The text form of an event (a replay output line). */
export function formatSvmEvent(e: SvmEvent): string {
  const h = (v: U64) => '0x' + v.toString(16);
  switch (e.type) {
    case 'invalidate':
      return `invalidate ${h(e.notifier)} ${h(e.start)} ${h(e.end)} ${e.event}`;
    case 'gc-queue':
      return `gc-queue ${h(e.start)} ${e.partial ? 'partial' : 'full'}`;
    case 'notifier-remove':
      return `notifier-remove ${h(e.start)}`;
    case 'range':
      return `range ${h(e.start)} ${h(e.size)} ${e.found ? 'found' : 'new'}`;
    case 'pages':
      return `pages ${h(e.start)} ${h(e.size)} ${e.placement}`;
    case 'migrate-fail':
      return `migrate-fail ${e.code}`;
    case 'hmm-retry':
    case 'seq-retry':
      return e.type;
    case 'retry':
      return `retry ${e.cause} ${e.code}`;
    default:
      return `${e.type} ${h(e.start)} ${h(e.size)}`;
  }
}

/** Range flags (bits). */
const MIGRATE_DEVMEM = 1;
const UNMAPPED = 2;
const PARTIAL_UNMAP = 4;
const HAS_DEVMEM_PAGES = 8;
const HAS_DMA_MAPPING = 16;
const FLAG_NAMES = [
  [MIGRATE_DEVMEM, 'migrate_devmem'],
  [UNMAPPED, 'unmapped'],
  [PARTIAL_UNMAP, 'partial_unmap'],
  [HAS_DEVMEM_PAGES, 'has_devmem_pages'],
  [HAS_DMA_MAPPING, 'has_dma_mapping'],
] as const;

const internal = Symbol('GpuSvm');

/** One notifier: an aligned block of the notifier size holding at least one range. */
export class SvmNotifier<N extends U64 = U64> {
  readonly #svm: GpuSvm<N>;
  readonly #first: number;
  readonly #end: number;
  readonly #mmn: MmuNotifier<N>;
  #ranges = 0;

  /** @hidden made by the library only */
  constructor(token: symbol, svm: GpuSvm<N>, first: number, end: number, mmn: MmuNotifier<N>) {
    if (token !== internal) throw new TypeError('notifiers are made by GpuSvm.findOrInsert()');
    this.#svm = svm;
    this.#first = first;
    this.#end = end;
    this.#mmn = mmn;
  }
  get start(): N {
    return addrOf(this.#first, this.#svm.bigint) as N;
  }
  get size(): N {
    return addrOf(this.#end - this.#first, this.#svm.bigint) as N;
  }
  /** the MMU interval notifier it registered with the CpuMm */
  get mmuNotifier(): MmuNotifier<N> {
    return this.#mmn;
  }
  get rangeCount(): number {
    return this.#ranges;
  }
  /** its ranges, ascending */
  ranges(): SvmRange<N>[] {
    return this.#svm.ranges(this.start, this.size);
  }
  get [Symbol.toStringTag](): string {
    return 'SvmNotifier';
  }
  toJSON(): object {
    return { start: '0x' + (BigInt(this.#first) << 12n).toString(16), size: '0x' + (BigInt(this.#end - this.#first) << 12n).toString(16), ranges: this.#ranges };
  }

  static {
    notifierFirst = (n) => n.#first;
    notifierEnd = (n) => n.#end;
    notifierMmn = (n) => n.#mmn as MmuNotifier<any>;
    notifierAdd = (n, d) => (n.#ranges += d);
  }
}

/** One range: a chunk the GPU mirrors, with its DMA-mapping state. */
export class SvmRange<N extends U64 = U64> {
  readonly #svm: GpuSvm<N>;
  readonly #first: number;
  readonly #end: number;
  readonly #notifier: SvmNotifier<N>;
  #flags: number;
  #refs = 1;
  #removed = false;
  /** the reference driver's state: bound to the GPU, queued for collection */
  #bound = false;
  #queued = false;

  /** @hidden made by the library only */
  constructor(token: symbol, svm: GpuSvm<N>, first: number, end: number, notifier: SvmNotifier<N>, flags: number) {
    if (token !== internal) throw new TypeError('ranges are made by GpuSvm.findOrInsert()');
    this.#svm = svm;
    this.#first = first;
    this.#end = end;
    this.#notifier = notifier;
    this.#flags = flags;
  }

  get svm(): GpuSvm<N> {
    return this.#svm;
  }
  get notifier(): SvmNotifier<N> {
    return this.#notifier;
  }
  get start(): N {
    return addrOf(this.#first, this.#svm.bigint) as N;
  }
  get size(): N {
    return addrOf(this.#end - this.#first, this.#svm.bigint) as N;
  }
  get end(): N {
    return addrOf(this.#end, this.#svm.bigint) as N;
  }
  /** may migrate to device memory (the device has some and the VMA is anonymous) */
  get migrateDevmem(): boolean {
    return (this.#flags & MIGRATE_DEVMEM) !== 0;
  }
  get unmapped(): boolean {
    return (this.#flags & UNMAPPED) !== 0;
  }
  get partialUnmap(): boolean {
    return (this.#flags & PARTIAL_UNMAP) !== 0;
  }
  get hasDevmemPages(): boolean {
    return (this.#flags & HAS_DEVMEM_PAGES) !== 0;
  }
  get hasDmaMapping(): boolean {
    return (this.#flags & HAS_DMA_MAPPING) !== 0;
  }
  /** its pages are mapped for the device (pages_valid) */
  get valid(): boolean {
    return (this.#flags & (HAS_DMA_MAPPING | HAS_DEVMEM_PAGES)) !== 0;
  }
  /** the reference driver bound it to the GPU and no invalidation has reached it since */
  get bound(): boolean {
    return this.#bound;
  }
  /** queued for the reference driver's garbage collector */
  get queued(): boolean {
    return this.#queued;
  }
  /** removed from its GpuSvm (it stays readable) */
  get removed(): boolean {
    return this.#removed;
  }
  /** The set flags by their kernel names, in a fixed order. */
  get flagNames(): string[] {
    return FLAG_NAMES.filter(([b]) => (this.#flags & b) !== 0).map(([, n]) => n);
  }
  /** references held (the GpuSvm holds one until the range is removed) */
  get refcount(): number {
    return this.#refs;
  }
  /** Takes a reference. */
  get(): this {
    if (this.#refs === 0) throw new GpuVmError('EINVAL', 'get: the range was already released');
    this.#refs++;
    return this;
  }
  /** Drops a reference. */
  put(): void {
    if (this.#refs === 0) throw new GpuVmError('EINVAL', 'put: the range holds no reference');
    this.#refs--;
  }

  get [Symbol.toStringTag](): string {
    return 'SvmRange';
  }
  toJSON(): object {
    const hx = (p: number) => '0x' + (BigInt(p) << 12n).toString(16);
    return { start: hx(this.#first), size: hx(this.#end - this.#first), flags: this.flagNames, bound: this.#bound, removed: this.#removed };
  }

  static {
    rangeFirst = (r) => r.#first;
    rangeEnd = (r) => r.#end;
    rangeFlags = (r) => r.#flags;
    rangeSetFlags = (r, f) => {
      r.#flags = f;
    };
    rangeSetBound = (r, b) => {
      r.#bound = b;
    };
    rangeSetQueued = (r, q) => {
      r.#queued = q;
    };
    rangeMarkRemoved = (r) => {
      r.#removed = true;
      r.#refs--;
    };
  }
}
export { rangeFirst, rangeEnd, rangeSetBound, rangeSetQueued };

/** The driver's invalidation callback: runs inside the notifier, before the CPU change it announces. */
export type SvmInvalidate<N extends U64 = U64> = (svm: GpuSvm<N>, notifier: SvmNotifier<N>, range: MmInvalidation<N>) => void;

export interface GpuSvmOptions<N extends U64 = U64> {
  mm: CpuMm<N>;
  /** the device's memory (none: ranges never migrate) */
  devmem?: DevMem | null;
  /** the SVM window [start, start + range) */
  start: U64;
  range: U64;
  /** notifier block size: a power of two, at least 0x1000 */
  notifierSize: U64;
  /** chunk sizes, strictly descending powers of two ending with 0x1000 */
  chunks: readonly U64[];
  /** check-pages threshold in bytes (default 0) */
  threshold?: U64;
  /** budget of every retry loop (default 4) */
  retries?: U64;
  /** device residency (ms) requested by atomic faults (default 0) */
  timeslice?: U64;
  /** the driver's invalidation callback (default: unmap the pages of the ranges reached, mark them unmapped on UNMAP) */
  invalidate?: SvmInvalidate<N>;
  /** receives every event of the core calls */
  trace?: SvmTrace<N> | null;
}

/** Hooks of getPages at its arrival points. */
export interface GetPagesHooks {
  /** before each HMM walk */
  inHmm?: () => void;
  /** after each successful walk, before the sequence check */
  beforeMap?: () => void;
}

export type PagesKind = 'none' | 'sys' | 'dev' | 'mixed';

export class GpuSvm<N extends U64 = U64> {
  readonly mm: CpuMm<N>;
  readonly devmem: DevMem | null;
  readonly bigint: boolean;
  /** the retry budget (Number.MAX_SAFE_INTEGER stands for anything larger) */
  readonly retries: number;
  readonly timeslice: bigint;
  readonly #first: number;
  readonly #end: number;
  readonly #notifierPages: number;
  readonly #chunks: readonly number[];
  readonly #thresholdPages: number;
  readonly #hasDevmem: boolean;
  readonly #notifiers: SpanMap;
  readonly #ranges: SpanMap;
  readonly #notifierById: (SvmNotifier<N> | undefined)[] = [undefined];
  readonly #rangeById: (SvmRange<N> | undefined)[] = [undefined];
  readonly #freeNotifierIds: number[] = [];
  readonly #freeRangeIds: number[] = [];
  readonly #invalidate: SvmInvalidate<N>;
  #trace: SvmTrace<N> | null;
  #fini = false;

  constructor(options: GpuSvmOptions<N>) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`GpuSvm options must be an object, got ${describe(options)}`);
    }
    // each option read once, all checked before anything is created
    const mm = options.mm;
    const devmem = options.devmem ?? null;
    const start = options.start;
    const range = options.range;
    const notifierSize = options.notifierSize;
    const chunks = options.chunks;
    const threshold = options.threshold;
    const retries = options.retries;
    const timeslice = options.timeslice;
    const invalidate = options.invalidate;
    const trace = options.trace ?? null;
    if (!(mm instanceof CpuMm)) throw new TypeError(`mm must be a CpuMm, got ${describe(mm)}`);
    mmLive(mm as CpuMm<any>);
    if (devmem !== null && !(devmem instanceof DevMem)) throw new TypeError(`devmem must be a DevMem, got ${describe(devmem)}`);
    const big = mm.bigint;
    const first = alignedPage(start, 'start', big);
    const pages = alignedPage(range, 'range', big);
    if (pages === 0) throw new GpuVmError('EINVAL', 'range must not be 0');
    if (first + pages > PAGES_U64) throw new GpuVmError('EINVAL', 'start + range is above 2^64');
    const nBytes = u64Big(notifierSize, 'notifierSize', true);
    if (nBytes < 0x1000n || (nBytes & (nBytes - 1n)) !== 0n) {
      throw new GpuVmError('EINVAL', `notifierSize must be a power of two of at least 0x1000, got 0x${nBytes.toString(16)}`);
    }
    if (!Array.isArray(chunks)) throw new TypeError(`chunks must be an array, got ${describe(chunks)}`);
    const list = [...(chunks as readonly unknown[])].map((c, i) => u64Big(c, `chunks[${i}]`, true));
    if (list.length === 0) throw new GpuVmError('EINVAL', 'chunks must not be empty');
    for (let i = 0; i < list.length; i++) {
      const c = list[i];
      if (c === 0n || (c & (c - 1n)) !== 0n) throw new GpuVmError('EINVAL', `chunks[${i}] = 0x${c.toString(16)} is not a power of two`);
      if (i > 0 && c >= list[i - 1]) throw new GpuVmError('EINVAL', 'chunks must be strictly descending');
    }
    if (list[list.length - 1] !== 0x1000n) throw new GpuVmError('EINVAL', 'chunks must end with 0x1000');
    const thr = threshold === undefined ? 0n : u64Big(threshold, 'threshold', true);
    const ret = retries === undefined ? 4n : u64Big(retries, 'retries', true);
    const ts = timeslice === undefined ? 0n : u64Big(timeslice, 'timeslice', true);
    if (invalidate !== undefined && typeof invalidate !== 'function') throw new TypeError(`invalidate must be a function, got ${describe(invalidate)}`);
    if (trace !== null && typeof trace !== 'function') throw new TypeError(`trace must be a function, got ${describe(trace)}`);

    this.mm = mm;
    this.devmem = devmem;
    this.bigint = big;
    this.#first = first;
    this.#end = first + pages;
    this.#notifierPages = Number(nBytes >> 12n);
    this.#chunks = list.map((c) => Number(c >> 12n));
    this.#thresholdPages = Number(thr >> 12n);
    this.retries = ret > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(ret);
    this.timeslice = ts;
    this.#hasDevmem = devmem !== null && devSizePages(devmem) > 0;
    this.#invalidate = invalidate ?? defaultInvalidate;
    this.#trace = trace;
    // the indexes live in the engine instance of the CpuMm
    const engine = mmEngine(mm as CpuMm<any>);
    this.#notifiers = new SpanMap(engine);
    this.#ranges = new SpanMap(engine);
    lockFields(this, ['mm', 'devmem', 'bigint', 'retries', 'timeslice']);
  }

  get [Symbol.toStringTag](): string {
    return 'GpuSvm';
  }

  /** the window's first address */
  get start(): N {
    return addrOf(this.#first, this.bigint) as N;
  }
  get range(): N {
    return addrOf(this.#end - this.#first, this.bigint) as N;
  }
  get notifierSize(): N {
    return addrOf(this.#notifierPages, this.bigint) as N;
  }
  get chunks(): N[] {
    return this.#chunks.map((c) => addrOf(c, this.bigint) as N);
  }
  /** the device has device memory (decides which ranges may migrate) */
  get hasDevmem(): boolean {
    return this.#hasDevmem;
  }
  get trace(): SvmTrace<N> | null {
    return this.#trace;
  }
  set trace(t: SvmTrace<N> | null) {
    if (t !== null && typeof t !== 'function') throw new TypeError(`trace must be a function or null, got ${describe(t)}`);
    this.#trace = t;
  }
  get finished(): boolean {
    return this.#fini;
  }

  #live(): void {
    if (this.#fini) throw new GpuVmError('EINVAL', 'the GpuSvm was finished (fini)');
  }

  #own(r: unknown, what: string): SvmRange<N> {
    if (!(r instanceof SvmRange) || r.svm !== this) throw new TypeError(`${what}: range must be an SvmRange of this GpuSvm, got ${describe(r)}`);
    if (r.removed) throw new GpuVmError('EINVAL', `${what}: the range was removed`);
    return r as SvmRange<N>;
  }

  // ---- lookups ---------------------------------------------------------------

  /** Notifiers, ascending. */
  notifiers(): SvmNotifier<N>[] {
    this.#live();
    return this.#notifiers.list(0, PAGES_U64).map((x) => this.#notifierById[x.tag]!);
  }

  /** Ranges overlapping [addr, addr + len) (default: all), ascending. */
  ranges(addr?: U64, len?: U64): SvmRange<N>[] {
    this.#live();
    const [s, e] = addr === undefined ? [0, PAGES_U64] : interval(addr, len, this.bigint, 'ranges');
    return svmRangesIn(this as GpuSvm<any>, s, e) as SvmRange<N>[];
  }

  /** The range containing `addr`, or null. */
  findRange(addr: U64): SvmRange<N> | null {
    this.#live();
    const p = pageOf(addr, 'addr', this.bigint);
    return this.#ranges.find(p) ? this.#rangeById[this.#ranges.tag]! : null;
  }

  /** What the CPU pages of a range are: none present, all system, all device, or a mix. */
  scanMm(range: SvmRange<N>): PagesKind {
    this.#live();
    const r = this.#own(range, 'scanMm');
    return svmPagesKind(this as GpuSvm<any>, rangeFirst(r as SvmRange<any>), rangeEnd(r as SvmRange<any>));
  }

  /** The start of the lowest VMA overlapping [addr, addr + len), or null. */
  findVmaStart(addr: U64, len: U64): N | null {
    this.#live();
    const [s, e] = interval(addr, len, this.bigint, 'findVmaStart');
    const v = mmVmaFrom(this.mm as CpuMm<any>, s, e);
    return v === null ? null : (addrOf(Math.max(v.start, s), this.bigint) as N);
  }

  /** Whether any range overlapping [addr, addr + len) has a DMA mapping. */
  hasMapping(addr: U64, len: U64): boolean {
    this.#live();
    const [s, e] = interval(addr, len, this.bigint, 'hasMapping');
    return svmRangesIn(this as GpuSvm<any>, s, e).some((r) => (rangeFlags(r) & HAS_DMA_MAPPING) !== 0);
  }

  /** Whether the range's pages are mapped for the device (pages_valid). */
  pagesValid(range: SvmRange<N>): boolean {
    this.#live();
    return this.#own(range, 'pagesValid').valid;
  }

  // ---- core calls ------------------------------------------------------------

  /**
   * The range containing `addr`, or a new one of the largest chunk that fits
   * (inside the VMA, the notifier block, the GPU window, clear of other
   * ranges, and with every page present when the chunk is at most
   * `threshold`). EINVAL outside the window or when no chunk fits, ENOENT
   * without a VMA, EPERM for a writable request on a read-only VMA.
   */
  findOrInsert(
    addr: U64,
    options?: { gpuStart?: U64; gpuEnd?: U64; readOnly?: boolean; devmem?: boolean; threshold?: U64 },
  ): { range: SvmRange<N>; found: boolean } {
    const o = optionsObject(options, 'findOrInsert options');
    const gs = o.gpuStart;
    const ge = o.gpuEnd;
    const readOnly = optBool(o.readOnly, 'readOnly');
    const pool = optBool(o.devmem, 'devmem');
    const thr = o.threshold;
    this.#live();
    const x = pageOf(addr, 'addr', this.bigint);
    const [gsP, geP] = gpuWindow(gs, ge, this.#first, this.#end);
    const thrP = thr === undefined ? this.#thresholdPages : Number(u64Big(thr, 'threshold', true) >> 12n);
    const r = svmFindOrInsert(this as GpuSvm<any>, x, gsP, geP, readOnly, pool, thrP);
    return { range: r as SvmRange<N>, found: lastFound };
  }

  /**
   * Gives the range a DMA mapping of its pages: faults them in through the
   * CpuMm (device pages stay for the pool's owner, `devmem`, and move back to
   * RAM otherwise), checks the notifier's sequence number, and maps them all
   * system or all from one device allocation. Fails with EFAULT, EPERM,
   * EOPNOTSUPP (mixed placement) or EBUSY (retry budget spent).
   */
  getPages(range: SvmRange<N>, options?: { devmem?: boolean; write?: boolean; devmemOnly?: boolean; hooks?: GetPagesHooks }): void {
    const o = optionsObject(options, 'getPages options');
    const pool = optBool(o.devmem, 'devmem');
    const write = optBool(o.write, 'write');
    const only = optBool(o.devmemOnly, 'devmemOnly');
    const hooks = o.hooks === undefined ? NO_HOOKS : checkHooks(o.hooks);
    this.#live();
    const r = this.#own(range, 'getPages');
    const code = svmGetPages(this as GpuSvm<any>, r as SvmRange<any>, pool, write, only, hooks);
    if (code !== null) throw new GpuVmError(code, `getPages ${rangeText(r as SvmRange<any>)}`);
  }

  /** Drops the range's DMA mapping (reports unmap-pages when it had one). */
  unmapPages(range: SvmRange<N>): void {
    this.#live();
    svmUnmapPages(this as GpuSvm<any>, this.#own(range, 'unmapPages') as SvmRange<any>);
  }

  /** Marks the range unmapped by an UNMAP of [addr, addr + len) (partial when it reaches outside). */
  setUnmapped(range: SvmRange<N>, addr: U64, len: U64): void {
    this.#live();
    const r = this.#own(range, 'setUnmapped');
    const [s, e] = interval(addr, len, this.bigint, 'setUnmapped');
    svmSetUnmapped(r as SvmRange<any>, s, e);
  }

  /** Removes the range (and its notifier when it was the last one); its device pages are left alone. */
  rangeRemove(range: SvmRange<N>): void {
    this.#live();
    svmRangeRemove(this as GpuSvm<any>, this.#own(range, 'rangeRemove') as SvmRange<any>);
  }

  /** Moves the range's device pages back to RAM through an HMM walk; EFAULT or EBUSY. */
  rangeEvict(range: SvmRange<N>): void {
    this.#live();
    const code = svmRangeEvict(this as GpuSvm<any>, this.#own(range, 'rangeEvict') as SvmRange<any>);
    if (code !== null) throw new GpuVmError(code, `rangeEvict ${rangeText(range as SvmRange<any>)}`);
  }

  /**
   * Migrates the range to device memory (unless all its pages already are
   * device pages), with one eviction and second attempt after EBUSY. Fails
   * with ENOSPC, ENOENT, EINVAL or EBUSY.
   */
  allocVram(range: SvmRange<N>, options?: { timeslice?: U64 }): void {
    const o = optionsObject(options, 'allocVram options');
    const ts = o.timeslice === undefined ? 0n : u64Big(o.timeslice, 'timeslice', true);
    this.#live();
    const code = svmAllocVram(this as GpuSvm<any>, this.#own(range, 'allocVram') as SvmRange<any>, ts);
    if (code !== null) throw new GpuVmError(code, `allocVram ${rangeText(range as SvmRange<any>)}`);
  }

  /** Tears down: notifiers first, then ranges. Device pages stay with the CpuMm. */
  fini(): void {
    if (this.#fini) return;
    for (const n of this.#notifiers.list(0, PAGES_U64)) notifierMmn(this.#notifierById[n.tag]! as SvmNotifier<any>).remove();
    for (const x of this.#ranges.list(0, PAGES_U64)) {
      const r = this.#rangeById[x.tag]!;
      rangeSetFlags(r as SvmRange<any>, 0);
      rangeMarkRemoved(r as SvmRange<any>);
    }
    this.#notifiers.destroy();
    this.#ranges.destroy();
    this.#notifierById.length = 1;
    this.#rangeById.length = 1;
    this.#fini = true;
  }

  /** Counts and the engine bytes of the notifier and range indexes. */
  stats(): { notifiers: number; ranges: number; engineBytes: number } {
    this.#live();
    const n = this.#notifiers.stats();
    const r = this.#ranges.stats();
    return { notifiers: n.entries, ranges: r.entries, engineBytes: n.bytes + r.bytes };
  }

  static {
    svmEmit = (svm, make) => {
      const t = svm.#trace;
      if (t !== null) t(make(svm.bigint) as SvmEvent<never>);
    };
    svmWindow = (svm) => [svm.#first, svm.#end];
    svmThreshold = (svm) => svm.#thresholdPages;
    svmCheckLive = (svm) => svm.#live();
    svmRangesIn = (svm, s, e) => {
      const out: SvmRange[] = [];
      if (s >= e) return out;
      for (const x of svm.#ranges.list(s, e)) out.push(svm.#rangeById[x.tag]! as SvmRange<any>);
      return out;
    };
    svmRangeAt = (svm, p) => (svm.#ranges.find(p) ? (svm.#rangeById[svm.#ranges.tag]! as SvmRange<any>) : null);
    svmFindOrInsert = (svm, x, gsP, geP, readOnly, pool, thrP) => {
      if (x < svm.#first || x >= svm.#end) throw new GpuVmError('EINVAL', 'findOrInsert: address outside the SVM window');
      const mm = svm.mm as CpuMm<any>;
      const v = mmVma(mm, x);
      if (v === null) throw new GpuVmError('ENOENT', 'findOrInsert: no VMA at the address');
      if (!readOnly && v.ro) throw new GpuVmError('EPERM', 'findOrInsert: writable request on a read-only VMA');
      if (svm.#ranges.find(x)) {
        lastFound = true;
        return svm.#rangeById[svm.#ranges.tag]! as SvmRange<any>;
      }
      const np = svm.#notifierPages;
      const bs = x - (x % np);
      const be = bs + np;
      let start = -1;
      let end = -1;
      for (const c of svm.#chunks) {
        const cs = x - (x % c);
        const ce = cs + c;
        if (cs < v.start || ce > v.end || cs < bs || ce > be || cs < gsP || ce > geP) continue;
        if (c > 1 && svm.#ranges.seek(cs, ce)) continue;
        if (c <= thrP && !presentFor(mm, cs, ce, pool)) continue;
        start = cs;
        end = ce;
        break;
      }
      if (start < 0) throw new GpuVmError('EINVAL', 'findOrInsert: no chunk size fits');
      let nid = 0;
      let notifier: SvmNotifier | undefined;
      if (svm.#notifiers.find(bs)) {
        notifier = svm.#notifierById[svm.#notifiers.tag]! as SvmNotifier<any>;
      } else {
        nid = svm.#freeNotifierIds.pop() ?? svm.#notifierById.length;
        let self: SvmNotifier | undefined;
        const mmn = mmInsertNotifier(mm, bs, be, (s, e, ev) => svmNotify(svm, self!, s, e, ev));
        self = new SvmNotifier(internal, svm as GpuSvm<any>, bs, be, mmn);
        notifier = self;
        svm.#notifiers.insert(bs, be, nid, 0);
        svm.#notifierById[nid] = self;
      }
      const id = svm.#freeRangeIds.pop() ?? svm.#rangeById.length;
      const flags = svm.#hasDevmem && v.kind === 'anon' ? MIGRATE_DEVMEM : 0;
      const r = new SvmRange(internal, svm as GpuSvm<any>, start, end, notifier, flags);
      svm.#ranges.insert(start, end, id, 0);
      svm.#rangeById[id] = r;
      notifierAdd(notifier, 1);
      lastFound = false;
      return r;
    };
    svmRangeRemove = (svm, r) => {
      const s = rangeFirst(r);
      svm.#ranges.find(s);
      const id = svm.#ranges.tag;
      svm.#ranges.remove(s);
      svm.#rangeById[id] = undefined;
      svm.#freeRangeIds.push(id);
      rangeSetFlags(r, 0);
      rangeMarkRemoved(r);
      svmEmit(svm, (big) => ({ type: 'remove', start: addrOf(s, big), size: addrOf(rangeEnd(r) - s, big) }));
      const n = r.notifier;
      if (notifierAdd(n, -1) === 0) {
        const ns = notifierFirst(n);
        svm.#notifiers.find(ns);
        const nid = svm.#notifiers.tag;
        svm.#notifiers.remove(ns);
        svm.#notifierById[nid] = undefined;
        svm.#freeNotifierIds.push(nid);
        notifierMmn(n).remove();
        svmEmit(svm, (big) => ({ type: 'notifier-remove', start: addrOf(ns, big) }));
      }
    };
    svmNotify = (svm, n, s, e, ev) => {
      const big = svm.bigint;
      svm.#invalidate(svm, n, { start: addrOf(s, big), end: addrOf(e, big), event: ev });
    };
  }
}

const NO_HOOKS: GetPagesHooks = {};
let lastFound = false;

function checkHooks(h: unknown): GetPagesHooks {
  if (h === null || typeof h !== 'object') throw new TypeError(`hooks must be an object, got ${describe(h)}`);
  const { inHmm, beforeMap } = h as GetPagesHooks;
  if (inHmm !== undefined && typeof inHmm !== 'function') throw new TypeError(`hooks.inHmm must be a function, got ${describe(inHmm)}`);
  if (beforeMap !== undefined && typeof beforeMap !== 'function') throw new TypeError(`hooks.beforeMap must be a function, got ${describe(beforeMap)}`);
  return { inHmm, beforeMap };
}


/** The GPU window of a fault in pages: [ceil(gs), floor(ge)); EINVAL when gs >= ge. */
export function gpuWindow(gs: unknown, ge: unknown, first: number, end: number): [number, number] {
  if (gs === undefined && ge === undefined) return [first, end];
  if (gs === undefined || ge === undefined) throw new TypeError('gpuStart and gpuEnd go together');
  const a = u64Big(gs, 'gpuStart', true);
  const b = u64Big(ge, 'gpuEnd', true);
  if (a >= b) throw new GpuVmError('EINVAL', 'gpuStart must be below gpuEnd');
  return [Number((a + 0xfffn) >> 12n), Number(b >> 12n)];
}

/** Every page of [s, e) is present for the owner: system, or device when the owner is the pool. */
function presentFor(mm: CpuMm<any>, s: number, e: number, pool: boolean): boolean {
  let p = s;
  for (const x of mmPageRuns(mm, s, e)) {
    if (x.start > p) return false;
    if (x.dev !== null && !pool) return false;
    p = x.end;
  }
  return p >= e;
}

function rangeText(r: SvmRange<any>): string {
  return `[0x${(BigInt(rangeFirst(r)) << 12n).toString(16)}, 0x${(BigInt(rangeEnd(r)) << 12n).toString(16)})`;
}

/** What the pages of [s, e) are. */
export function svmPagesKind(svm: GpuSvm<any>, s: number, e: number): PagesKind {
  let sys = 0;
  let dev = 0;
  for (const x of mmPageRuns(svm.mm as CpuMm<any>, s, e)) {
    const n = Math.min(x.end, e) - Math.max(x.start, s);
    if (x.dev === null) sys += n;
    else dev += n;
  }
  if (sys + dev === 0) return 'none';
  if (sys === e - s) return 'sys';
  if (dev === e - s) return 'dev';
  return 'mixed';
}

function svmUnmapPages(svm: GpuSvm<any>, r: SvmRange<any>): void {
  const f = rangeFlags(r);
  if ((f & HAS_DMA_MAPPING) !== 0) {
    const s = rangeFirst(r);
    svmEmit(svm, (big) => ({ type: 'unmap-pages', start: addrOf(s, big), size: addrOf(rangeEnd(r) - s, big) }));
  }
  rangeSetFlags(r, f & ~(HAS_DMA_MAPPING | HAS_DEVMEM_PAGES));
}

function svmSetUnmapped(r: SvmRange<any>, s: number, e: number): boolean {
  let f = rangeFlags(r) | UNMAPPED;
  if (rangeFirst(r) < s || rangeEnd(r) > e) f |= PARTIAL_UNMAP;
  rangeSetFlags(r, f);
  return (f & PARTIAL_UNMAP) !== 0;
}

/** get_pages; null on success, else the errno. */
function svmGetPages(svm: GpuSvm<any>, r: SvmRange<any>, pool: boolean, write: boolean, only: boolean, hooks: GetPagesHooks): ErrnoName | null {
  const mmn = notifierMmn(r.notifier);
  const s = rangeFirst(r);
  const e = rangeEnd(r);
  const mm = svm.mm as CpuMm<any>;
  let tries = 0;
  for (;;) {
    let seq = mmn.readBegin();
    let f = rangeFlags(r);
    if ((f & (HAS_DMA_MAPPING | HAS_DEVMEM_PAGES)) !== 0) {
      emitPages(svm, s, e, (f & HAS_DEVMEM_PAGES) !== 0);
      return null;
    }
    for (;;) {
      hooks.inHmm?.();
      const res = mmn.readRetry(seq) ? 'EBUSY' : mmWalk(mm, s, e, pool, write);
      if (res === null) break;
      if (res !== 'EBUSY') return res;
      if (tries >= svm.retries) return 'EBUSY';
      tries++;
      svmEmit(svm, () => ({ type: 'hmm-retry' }));
      seq = mmn.readBegin();
    }
    hooks.beforeMap?.();
    if ((rangeFlags(r) & UNMAPPED) !== 0) return 'EFAULT';
    if (mmn.readRetry(seq)) {
      if (tries >= svm.retries) return 'EBUSY';
      tries++;
      svmEmit(svm, () => ({ type: 'seq-retry' }));
      continue;
    }
    // map: all system pages, or all device pages of one allocation
    let alloc: object | null = null;
    let sawSys = false;
    let p = s;
    for (const x of mmPageRuns(mm, s, e)) {
      if (x.start > p) return 'EFAULT'; // cannot happen after a clean walk; never map a hole
      if (x.dev !== null) {
        if (sawSys || (alloc !== null && alloc !== x.dev)) return 'EOPNOTSUPP';
        alloc = x.dev;
      } else {
        if (alloc !== null) return 'EOPNOTSUPP';
        if (only) return 'EFAULT';
        sawSys = true;
      }
      p = x.end;
    }
    if (p < e) return 'EFAULT';
    f = rangeFlags(r) | HAS_DMA_MAPPING;
    if (alloc !== null) f |= HAS_DEVMEM_PAGES;
    rangeSetFlags(r, f);
    emitPages(svm, s, e, alloc !== null);
    return null;
  }
}

function emitPages(svm: GpuSvm<any>, s: number, e: number, dev: boolean): void {
  svmEmit(svm, (big) => ({ type: 'pages', start: addrOf(s, big), size: addrOf(e - s, big), placement: dev ? 'dev' : 'sys' }));
}

/** range_evict; null on success. */
function svmRangeEvict(svm: GpuSvm<any>, r: SvmRange<any>): ErrnoName | null {
  const s = rangeFirst(r);
  const e = rangeEnd(r);
  svmEmit(svm, (big) => ({ type: 'evict', start: addrOf(s, big), size: addrOf(e - s, big) }));
  let tries = 0;
  for (;;) {
    const res = mmWalk(svm.mm as CpuMm<any>, s, e, false, false);
    if (res === null) return null;
    if (res === 'EFAULT') return 'EFAULT';
    if (res !== 'EBUSY') return res;
    if (tries >= svm.retries) return 'EBUSY';
    tries++;
    svmEmit(svm, () => ({ type: 'hmm-retry' }));
  }
}

/** One migration attempt of [s, e) to device memory; null on success. */
function migrateAttempt(svm: GpuSvm<any>, s: number, e: number, ts: bigint): ErrnoName | null {
  svmEmit(svm, (big) => ({ type: 'migrate', start: addrOf(s, big), size: addrOf(e - s, big) }));
  const code = migrateSteps(svm, s, e, ts);
  if (code !== null) svmEmit(svm, () => ({ type: 'migrate-fail', code }));
  return code;
}

function migrateSteps(svm: GpuSvm<any>, s: number, e: number, ts: bigint): ErrnoName | null {
  const dm = svm.devmem;
  const mm = svm.mm as CpuMm<any>;
  if (dm === null || devFreePages(dm) < e - s) return 'ENOSPC';
  const v = mmVma(mm, s);
  if (v === null) return 'ENOENT';
  if (e > v.end) return 'EINVAL';
  if (v.kind !== 'anon') return 'EBUSY';
  mmInvalidate(mm, s, e, 'MIGRATE');
  let dev = 0;
  for (const x of mmPageRuns(mm, s, e)) if (x.dev !== null) dev += Math.min(x.end, e) - Math.max(x.start, s);
  if (dev === e - s) return null;
  if (dev > 0) return 'EBUSY';
  // the invalidation callback cannot change the mm, so the pool still has room
  const a = devAllocate(dm, s, e - s, mmClock(mm), ts)!;
  mmToDevice(mm, s, e, a);
  return null;
}

/** alloc_vram: scan, attempt, and after EBUSY evict and attempt once more. */
function svmAllocVram(svm: GpuSvm<any>, r: SvmRange<any>, ts: bigint): ErrnoName | null {
  const s = rangeFirst(r);
  const e = rangeEnd(r);
  if (svmPagesKind(svm, s, e) === 'dev') return null;
  let code = migrateAttempt(svm, s, e, ts);
  if (code === 'EBUSY') {
    svmRangeEvict(svm, r);
    code = migrateAttempt(svm, s, e, ts);
  }
  return code;
}

/**
 * The page interval of an invalidation. Its end may be 2^64 (an interval that
 * reaches the top of the address space), which no u64 argument can be, so it
 * is converted here rather than read as one.
 */
function invalidationPages(inv: MmInvalidation): [number, number] {
  const page = (v: U64) => (typeof v === 'bigint' ? Number(v >> 12n) : Math.floor(v / 4096));
  return [page(inv.start), page(inv.end)];
}

/** The default invalidation callback: drop the mappings of the ranges reached, mark them unmapped on UNMAP. */
function defaultInvalidate(svm: GpuSvm<any>, n: SvmNotifier<any>, inv: MmInvalidation): void {
  const [is, ie] = invalidationPages(inv);
  const s = Math.max(is, notifierFirst(n));
  const e = Math.min(ie, notifierEnd(n));
  for (const r of svmRangesIn(svm, s, e)) {
    svmUnmapPages(svm, r);
    if (inv.event === 'UNMAP') svmSetUnmapped(r, is, ie);
  }
}

// Module-internal access for the reference driver (not exported from the package index).
/** find_or_insert in pages; sets lastFound. */
function svmLastFound(): boolean {
  return lastFound;
}
export {
  invalidationPages,
  svmEmit,
  svmWindow,
  svmThreshold,
  svmCheckLive,
  svmRangesIn,
  svmRangeAt,
  svmFindOrInsert,
  svmLastFound,
  svmRangeRemove,
  svmGetPages,
  svmRangeEvict,
  svmAllocVram,
  svmUnmapPages,
  svmSetUnmapped,
  rangeFlags,
  notifierFirst,
  notifierEnd,
};
export const RangeFlag = { MIGRATE_DEVMEM, UNMAPPED, PARTIAL_UNMAP, HAS_DEVMEM_PAGES, HAS_DMA_MAPPING } as const;
