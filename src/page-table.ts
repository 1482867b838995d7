/**
 * PageTable: xe-style multi-level GPU page tables, built the way the xe
 * driver builds them. The tables and the walker live in the
 * engine; every public call is one engine crossing (a walk or a very large
 * bind is one crossing per chunk of io). Every mutating call returns what it
 * cost: entries written into live tables, entries of new tables, tables
 * allocated and freed, and update records.
 */
import type { BackendName } from './backend/loader.js';
import { Errno, IO, OP_HAS_NEXT, OP_HAS_PREV, OP_KEEP, OP_WORDS, OpKind, type Engine, ioOf } from './backend/engine.js';
import {
  PT_APPLY_BEGIN,
  PT_APPLY_END,
  PT_CREATE_COMPACT,
  PT_REC_HEADER,
  PT_SEG_WORDS,
  PT_TRANSLATE_WORDS,
  PT_WALK_WORDS,
  PtInfo,
  PtOut,
  PtRec,
  PtWalk,
} from './backend/page-table-engine.js';
import { GpuVmError, gpuVmError } from './errors.js';
import type { Op } from './ops.js';
import { readMaxEntries, readPageTableOptions, type BigintOption } from './options.js';
import { describe, getBig, getNum, hex, MAX_SAFE, putU64, toBig, TWO32, U64_MAX, type U64 } from './u64.js';
import { lockFields } from './read-only.js';

export { DEFAULT_SHIFTS, DEFAULT_MAX_ENTRIES_PER_CALL } from './options.js';

/**
 * Options of `new PageTable(...)`. `N` is the number type the table reports:
 * `bigint: true` gives `PageTable<bigint>`, no `bigint` (or `false`) `PageTable<number>`.
 */
export type PageTableOptions<N extends U64 = U64> = PageTableBaseOptions & BigintOption<N>;

/** The options of `new PageTable(...)` besides `bigint`. */
export interface PageTableBaseOptions {
  /** level shifts bottom-up (default 12 21 30 39: 4 levels, 48-bit span; add 48 for 5 levels) */
  shifts?: readonly number[];
  /** highest level that may hold a leaf (default min(2, top)) */
  leaf?: number;
  /** compact 64 KiB level-0 tables where a whole level-1 entry is 64 KiB contiguous (Xe2+); needs s[0] < 16 < s[1] */
  compact?: boolean;
  /** engine to use (default: GPUVM_BACKEND / auto) */
  backend?: BackendName;
  /**
   * The most leaf entries one call (bind, batch, commit) may write, counted
   * as if no table were compact (default DEFAULT_MAX_ENTRIES_PER_CALL, at
   * most 2^32 - 1); a call that would write more fails with E2BIG and
   * changes nothing.
   */
  maxEntriesPerCall?: number;
}

/** What one call cost. */
export interface PtCost {
  /** distinct entries written into tables that existed before the call */
  live: number;
  /** non-empty entries, at the end of the call, of the tables it created */
  new: number;
  /** tables created */
  alloc: number;
  /** tables released (whole subtrees, hidden ones under zapped entries included) */
  free: number;
  /** contiguous index runs of the live writes, per table (at most 2 x levels + 1 for a bind) */
  records: number;
}

/** The cost of a commit: summed over the binds and unbinds it made. */
export interface PtCommitCost extends PtCost {
  /** binds issued (one per contiguous piece that had to be written) */
  binds: number;
  /** unbinds issued */
  unbinds: number;
  /** GpuVm ops seen */
  ops: number;
}

export type PtBatchEntry =
  | { op: 'bind'; va: U64; size: U64; backing: readonly PtSegment[] | BigUint64Array | null }
  | { op: 'unbind'; va: U64; size: U64 }
  | { op: 'zap'; va: U64; size: U64 };

/** A physical segment of backing: `{ pa, len }` or `[pa, len]`. */
export type PtSegment = { readonly pa: U64; readonly len: U64 } | readonly [U64, U64];

export interface PtTranslation<N extends U64 = U64> {
  /** physical address of the va, or null for a null (sparse) leaf */
  pa: N | null;
  /** size of the leaf that maps it */
  size: N;
  /** level of that leaf */
  level: number;
  /** PS64: the leaf is one of 16 uniform 4 KiB leaves of an aligned 64 KiB block */
  hint64k: boolean;
  /** the leaf is an entry of a compact (64 KiB) level-0 table */
  compact: boolean;
}

export type PtEntryKind = 'leaf' | 'null' | 'dir' | 'empty';

export interface PtEntry<N extends U64 = U64> {
  kind: PtEntryKind;
  /** va of the entry's first byte */
  va: N;
  /** bytes the entry spans */
  size: N;
  /** physical address of a leaf (also of a zapped one), null otherwise */
  pa: N | null;
  level: number;
  zapped: boolean;
  /** a post-descent record (walk with `post`) */
  post: boolean;
  hint64k: boolean;
  /** a directory entry with a compact child, or an entry of a compact table */
  compact: boolean;
  /** directory entries: non-empty entries of the child table */
  childLive: number;
  /** engine handle of the table holding the entry, and its index there */
  table: number;
  index: number;
}

export interface PtWalkOptions {
  /** also yield directory entries (before their children) */
  dirs?: boolean;
  /** also yield a post-descent record after the children of each directory entry */
  post?: boolean;
  /** shared (edge-only) mode: only the partially covered entries at the edges of each table */
  shared?: boolean;
  /** also yield empty entries */
  empty?: boolean;
  /** also yield zapped entries */
  zapped?: boolean;
  /** records per engine crossing (default and maximum 8192) */
  chunk?: number;
}

/** Physical segments backing `length` bytes of `bo` at `offset`, or null for no backing (null binding). */
export type PtResolve = (bo: unknown, offset: U64, length: U64) => readonly PtSegment[] | BigUint64Array | null;

export interface PtCommitOptions {
  /**
   * Use the ops' `keep` and the remap structure (default true): a remap
   * unbinds only its hole (or nothing when its unmap is kept), a kept unmap
   * writes nothing, and a map binds only what is not kept. With false every
   * unmap and remap unbinds the whole old mapping, a remap rebinds prev and
   * next, and a map binds its whole range.
   */
  keep?: boolean;
}

/** 2^k as numbers, k < 53 (a variable `2 ** k` is slow in V8) */
const POW2: readonly number[] = Array.from({ length: 53 }, (_, k) => 2 ** k);

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const WALK_CHUNK = Math.floor(IO.DATA_WORDS / PT_WALK_WORDS);
const TRANSLATE_CHUNK = Math.floor(IO.DATA_WORDS / PT_TRANSLATE_WORDS);
const ARG = IO.ARG;
const DATA = IO.DATA;
const DATA_WORDS = IO.DATA_WORDS;
const OUT = IO.OUT;

/**
 * Collects apply records in a private buffer while the arguments are read
 * (user getters and callbacks may call into gpuvm meanwhile: nothing of
 * this call is in io or the engine yet), then hands them to the engine in
 * one go: full DATA areas are staged (one crossing each), the last chunk
 * runs everything (one crossing).
 */
/** Spare staging buffers of huge calls, per engine (see RecordWriter.release); at most 64 MiB each. */
const spares = new WeakMap<Engine, Uint32Array<ArrayBuffer>>();

class RecordWriter {
  private buf = new Uint32Array(256);
  private pos = 0;
  records = 0;
  /** in use by a call that is still reading its arguments (a getter may re-enter the table) */
  busy = false;

  constructor(
    private readonly engine: Engine,
    private readonly big: boolean,
  ) {}

  begin(): this {
    this.pos = 0;
    this.records = 0;
    this.busy = true;
    return this;
  }

  release(): void {
    this.busy = false;
    if (this.buf.length > 1 << 16) {
      // A huge call's buffer goes back to the engine's spare (one per engine,
      // not per table) rather than to the collector: a fresh multi-megabyte
      // buffer per call cost more than the call itself (external-memory GCs).
      const spare = spares.get(this.engine);
      if (this.buf.length <= 1 << 24 && (spare === undefined || spare.length < this.buf.length)) spares.set(this.engine, this.buf);
      this.buf = new Uint32Array(256);
    }
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const spare = spares.get(this.engine);
    if (spare !== undefined && spare.length >= this.pos + n && spare.length > this.buf.length) {
      // taken, so a nested call (a getter re-entering another table) cannot share it
      spares.delete(this.engine);
      spare.set(this.buf.subarray(0, this.pos));
      this.buf = spare;
      return;
    }
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const b = new Uint32Array(cap);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }

  header(kind: number, nseg: number, va: unknown, size: unknown): void {
    this.room(PT_REC_HEADER);
    const b = this.buf;
    const at = this.pos;
    b[at] = kind;
    b[at + 1] = nseg;
    putU64(b, at + 2, va, 'va', this.big);
    putU64(b, at + 4, size, 'size', this.big);
    this.pos += PT_REC_HEADER;
    this.records++;
  }

  segments(backing: readonly PtSegment[]): void {
    const n = backing.length;
    this.room(n * PT_SEG_WORDS);
    for (let i = 0; i < n; i++) {
      const s = backing[i] as unknown;
      let pa: unknown;
      let len: unknown;
      if (Array.isArray(s)) {
        if (s.length !== 2) throw new TypeError(`backing[${i}] must be { pa, len } or [pa, len], got an array of ${s.length}`);
        pa = s[0];
        len = s[1];
      } else if (s !== null && typeof s === 'object') {
        pa = (s as { pa: unknown }).pa;
        len = (s as { len: unknown }).len;
      } else {
        throw new TypeError(`backing[${i}] must be { pa, len } or [pa, len], got ${describe(s)}`);
      }
      const b = this.buf;
      const at = this.pos;
      if (
        typeof pa === 'number' &&
        typeof len === 'number' &&
        pa >= 0 &&
        len >= 0 &&
        pa <= MAX_SAFE &&
        len <= MAX_SAFE &&
        Math.floor(pa) === pa &&
        Math.floor(len) === len
      ) {
        // the common case, inline: exact integers below 2^53
        b[at] = pa >>> 0;
        b[at + 1] = (pa / TWO32) >>> 0;
        b[at + 2] = len >>> 0;
        b[at + 3] = (len / TWO32) >>> 0;
      } else {
        putU64(b, at, pa, `backing[${i}].pa`, this.big);
        putU64(b, at + 2, len, `backing[${i}].len`, this.big);
      }
      this.pos += PT_SEG_WORDS;
    }
  }

  backing(segs: readonly PtSegment[] | BigUint64Array): void {
    if (segs instanceof BigUint64Array) this.segmentsTyped(segs);
    else this.segments(segs);
  }

  /** Segments as (pa, len) pairs of a BigUint64Array: copied word for word. */
  segmentsTyped(pairs: BigUint64Array): void {
    const total = pairs.length * 2;
    this.room(total);
    if (LITTLE_ENDIAN) {
      this.buf.set(new Uint32Array(pairs.buffer, pairs.byteOffset, total), this.pos);
    } else {
      for (let k = 0; k < total; k += 2) {
        const v = pairs[k >> 1];
        this.buf[this.pos + k] = Number(v & 0xffffffffn);
        this.buf[this.pos + k + 1] = Number(v >> 32n);
      }
    }
    this.pos += total;
  }

  /**
   * Runs everything collected on page table `pt`, allowing the binds
   * `budget` leaf entries in total; -> the summed cost. No user code runs
   * from here on. `va` and `size` only name the call in an error.
   */
  end(pt: number, budget: number, op: string, va?: unknown, size?: unknown): PtCost {
    const engine = this.engine;
    let from = 0;
    let first = true;
    while (this.pos - from > DATA_WORDS) {
      ioOf(engine).set(this.buf.subarray(from, from + DATA_WORDS), DATA);
      const r = engine.ptApply(pt, DATA_WORDS, first ? PT_APPLY_BEGIN : 0);
      if (r < 0) throw gpuVmError(r, 'page-table records could not be staged');
      from += DATA_WORDS;
      first = false;
    }
    let io = ioOf(engine);
    io.set(this.buf.subarray(from, this.pos), DATA);
    io[ARG] = budget;
    const r = engine.ptApply(pt, this.pos - from, (first ? PT_APPLY_BEGIN : 0) | PT_APPLY_END);
    io = ioOf(engine);
    if (r < 0) {
      const what = va === undefined ? op : `${op}(${describe(va)}, ${describe(size)})`;
      const at = this.records > 1 ? ` (record ${io[PtOut.FAIL_INDEX]})` : '';
      if (r === -Errno.ENOMEM && io[PtOut.NEED] === 0 && io[PtOut.NEED + 1] === 0) {
        throw gpuVmError(
          r,
          `${what}${at}: the engine's memory limit (setEngineMemoryLimit) or the platform refused the storage ` +
            'it needs; nothing was changed',
        );
      }
      if (r === -Errno.ENOMEM) {
        // the call itself is too big (not the engine out of room): E2BIG tells the two apart
        throw new GpuVmError(
          'E2BIG',
          `${what}${at}: would write ${getBig(io, PtOut.NEED)} page-table entries in one call, above ` +
            `maxEntriesPerCall = ${budget} of this PageTable (split the call or raise the limit)`,
        );
      }
      throw gpuVmError(r, `${what}${at}: misaligned, empty, outside the span, or backing not summing to the size`);
    }
    return {
      live: io[PtOut.LIVE],
      new: io[PtOut.NEW],
      alloc: io[PtOut.ALLOC],
      free: io[PtOut.FREE],
      records: io[PtOut.RECORDS],
    };
  }
}

function toNumber(x: U64, name: string): number {
  if (typeof x === 'number') return x;
  if (typeof x === 'bigint' && x >= 0n && x <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(x);
  if (typeof x === 'bigint') {
    throw new RangeError(`${name} = ${x}n is above Number.MAX_SAFE_INTEGER; create the PageTable with { bigint: true }`);
  }
  throw new TypeError(`${name} must be a number or a bigint, got ${describe(x)}`);
}

/** Backing: an array of segments, a BigUint64Array of (pa, len) pairs, or null. */
export type PtBacking = readonly PtSegment[] | BigUint64Array | null;

function checkBacking(backing: unknown): readonly PtSegment[] | BigUint64Array | null {
  if (backing === null) return null;
  if (backing instanceof BigUint64Array) {
    if (backing.length === 0 || backing.length % 2 !== 0) {
      throw new GpuVmError('EINVAL', `backing must hold (pa, len) pairs, got ${backing.length} values`);
    }
    return backing;
  }
  if (!Array.isArray(backing)) throw new TypeError(`backing must be an array of segments or null, got ${describe(backing)}`);
  if (backing.length === 0) throw new GpuVmError('EINVAL', 'backing has no segments (use null for a null binding)');
  if (backing.length > 0xffffffff) throw new RangeError('backing has too many segments');
  return backing as readonly PtSegment[];
}

/** Segment count of checked backing. */
function segCount(b: readonly PtSegment[] | BigUint64Array): number {
  return b instanceof BigUint64Array ? b.length / 2 : b.length;
}

// set by the class's static block: the mirror functions below reach its private state through them
let attachFn: (pt: PageTable<any>, a: Attachment) => void; // eslint-disable-line @typescript-eslint/no-explicit-any
let detachFn: (pt: PageTable<any>) => void; // eslint-disable-line @typescript-eslint/no-explicit-any
let writeFn: (pt: PageTable<any>, plan: readonly PlanRecord[], what: string) => PtCost; // eslint-disable-line @typescript-eslint/no-explicit-any
let isPtFn: (x: unknown) => boolean;

/** The VM side of an attached page table (see GpuVm.attachPageTable). */
interface Attachment {
  /** called when the table goes (destroy), so the VM stops writing it */
  readonly onDestroy: () => void;
}

/** `new PageTable(...)`: the number type follows the `bigint` option. */
export interface PageTableConstructor {
  /** A table that reports bigints and accepts all of u64. */
  new (options: PageTableOptions<bigint>): PageTable<bigint>;
  /** A table that reports numbers (exact below 2^53). */
  new (options?: PageTableOptions<number>): PageTable<number>;
  /** `bigint` known only at run time: results are `number | bigint`. */
  new (options: PageTableOptions<U64>): PageTable<U64>;
  /** The number type named explicitly; the `bigint` option must agree. */
  new <N extends U64 = number>(options?: PageTableOptions<N>): PageTable<N>;
  readonly prototype: PageTable<U64>;
}

/**
 * Multi-level GPU page tables as the xe driver builds them: binds pick the
 * largest page size each aligned, covered, physically contiguous block
 * allows; unbinds clear entries at the highest level and release tables
 * they empty. The tables live in the engine; every call is one crossing and
 * every mutating call reports its cost ({@link PtCost}).
 *
 * Fill it by hand (bind / unbind / zap / batch), from a GpuVm op list
 * (`commit`), or keep it in step with a VM (`vm.attachPageTable(pt, resolve)`).
 *
 * @typeParam N - `number` or `bigint`: the type of every address it reports.
 */
class PageTableImpl<N extends U64 = U64> {
  /** Level shifts, bottom-up. */
  readonly shifts: readonly number[];
  /** Highest level that holds leaves. */
  readonly leaf: number;
  /** Root level. */
  readonly top: number;
  /** Whether compact 64 KiB level-0 tables are used. */
  readonly compact: boolean;
  /** Whether results are bigints. */
  readonly bigint: boolean;
  /** The engine in use: 'native' or 'wasm'. */
  readonly backend: BackendName;
  /** The cost of the last successful mutating call. */
  lastCost: PtCost = { live: 0, new: 0, alloc: 0, free: 0, records: 0 };
  readonly #engine: Engine;
  #handle: number;
  readonly #rw: RecordWriter;
  #maxEntries: number;
  #attached: Attachment | null = null;

  static {
    attachFn = (pt, a) => {
      pt.#live();
      if (pt.#attached !== null) throw new GpuVmError('EBUSY', 'attachPageTable: the page table is already attached to a VM');
      pt.#attached = a;
    };
    detachFn = (pt) => {
      pt.#attached = null;
    };
    writeFn = (pt, plan, what) => pt.#write(plan, what, new RecordWriter(pt.#engine, true));
    isPtFn = (x) => typeof x === 'object' && x !== null && #handle in x;
  }

  /** See {@link PageTableConstructor}: `bigint: true` makes a `PageTable<bigint>`. */
  constructor(options: PageTableOptions<N> = {} as PageTableOptions<N>) {
    const o = readPageTableOptions(options);
    const { shifts, leaf, compact } = o;
    const top = shifts.length - 1;
    this.#maxEntries = o.maxEntries;
    this.#engine = o.engine;
    this.backend = o.engine.name;
    this.bigint = o.bigint;
    this.compact = compact;
    const io = ioOf(this.#engine);
    for (let i = 0; i < shifts.length; i++) io[DATA + i] = shifts[i];
    const h = this.#engine.ptCreate(shifts.length, Math.min(leaf, 0xffffffff), compact ? PT_CREATE_COMPACT : 0);
    if (h < 0) {
      throw gpuVmError(
        h,
        `bad page-table geometry: shifts [${shifts.join(' ')}] leaf=${leaf}${compact ? ' compact' : ''} ` +
          '(need >= 2 strictly increasing shifts, levels 1..16 bits wide, span <= 2^64, leaf <= top, compact needs s[0] < 16 < s[1])',
      );
    }
    this.#handle = h;
    this.#rw = new RecordWriter(this.#engine, this.bigint);
    this.shifts = Object.freeze([...shifts]);
    this.top = top;
    this.leaf = leaf;
    lockFields(this, ['backend', 'bigint', 'compact', 'shifts', 'top', 'leaf']);
  }

  /** Bytes the root spans: 2^(s[top] + s[top] - s[top-1]). */
  get span(): N {
    const bits = this.shifts[this.top] + this.shifts[this.top] - this.shifts[this.top - 1];
    return this.#out(1n << BigInt(bits));
  }

  /** Whether destroy() was called. */
  get destroyed(): boolean {
    return this.#handle === 0;
  }

  /** The most leaf entries one bind, batch or commit may write (see PageTableOptions). */
  get maxEntriesPerCall(): number {
    return this.#maxEntries;
  }

  set maxEntriesPerCall(v: number) {
    this.#maxEntries = readMaxEntries(v);
  }

  /** Tables in use (root included) and non-empty entries (hidden ones under zapped entries included). */
  get stats(): { tables: number; entries: number } {
    const r = this.#engine.ptStats(this.#live());
    if (r < 0) throw gpuVmError(r, 'ptStats');
    const io = ioOf(this.#engine);
    return { tables: io[OUT], entries: io[OUT + 1] };
  }

  /** Releases every table. Later calls are EINVAL. */
  destroy(): void {
    if (this.#handle === 0) return;
    this.#engine.ptDestroy(this.#handle);
    this.#handle = 0;
    const a = this.#attached;
    this.#attached = null;
    a?.onDestroy();
  }

  /** Whether a GpuVm keeps this table in step (GpuVm.attachPageTable). */
  get attached(): boolean {
    return this.#attached !== null;
  }

  /** An attached table is written by its VM only. */
  #own(what: string): void {
    if (this.#attached !== null) {
      throw new GpuVmError('EBUSY', `${what}: the page table is attached to a GpuVm, which writes it; detach it first`);
    }
  }

  /**
   * Binds [va, va+size) to the backing segments in order (or null: a null /
   * sparse binding). Picks the largest page size whose aligned block is fully
   * covered, inside one segment and aligned; replaces whatever was there.
   */
  bind(va: U64, size: U64, backing: PtBacking): PtCost {
    this.#own('bind');
    const segs = checkBacking(backing);
    const w = this.#writer();
    try {
      if (segs === null) {
        w.header(PtRec.BIND_NULL, 0, va, size);
      } else {
        w.header(PtRec.BIND, segCount(segs), va, size);
        w.backing(segs);
      }
      return this.#done(w.end(this.#live(), this.#maxEntries, 'bind', va, size));
    } finally {
      w.release();
    }
  }

  /**
   * Unbinds [va, va+size): entries wholly inside are cleared at the highest
   * level, tables whose live entries all fall inside are released untouched
   * (the kill rule), a huge leaf only partly inside keeps the rest mapped.
   */
  unbind(va: U64, size: U64): PtCost {
    this.#own('unbind');
    const w = this.#writer();
    try {
      w.header(PtRec.UNBIND, 0, va, size);
      return this.#done(w.end(this.#live(), this.#maxEntries, 'unbind', va, size));
    } finally {
      w.release();
    }
  }

  /** Zaps [va, va+size): entries wholly inside stop translating; nothing is allocated or freed. */
  zap(va: U64, size: U64): PtCost {
    const w = this.#writer();
    try {
      w.header(PtRec.ZAP, 0, va, size);
      return this.#done(w.end(this.#live(), this.#maxEntries, 'zap', va, size));
    } finally {
      w.release();
    }
  }

  /**
   * Several binds, unbinds and zaps in one engine call: all are validated
   * first (any invalid one: EINVAL, nothing changes), then run in order; the
   * cost is the sum of their costs.
   */
  batch(entries: Iterable<PtBatchEntry>): PtCost {
    this.#own('batch');
    const list = [...entries]; // user iterables run before anything is written
    const w = this.#writer();
    try {
      return this.#batchInto(w, list);
    } finally {
      w.release();
    }
  }

  #batchInto(w: RecordWriter, list: PtBatchEntry[]): PtCost {
    let i = 0;
    for (const e of list) {
      if (e === null || typeof e !== 'object') throw new TypeError(`batch[${i}] must be an object, got ${describe(e)}`);
      switch (e.op) {
        case 'bind': {
          const segs = checkBacking(e.backing);
          w.header(segs === null ? PtRec.BIND_NULL : PtRec.BIND, segs === null ? 0 : segCount(segs), e.va, e.size);
          if (segs !== null) w.backing(segs);
          break;
        }
        case 'unbind':
          w.header(PtRec.UNBIND, 0, e.va, e.size);
          break;
        case 'zap':
          w.header(PtRec.ZAP, 0, e.va, e.size);
          break;
        default:
          throw new TypeError(`batch[${i}].op must be 'bind', 'unbind' or 'zap', got ${describe((e as { op?: unknown }).op)}`);
      }
      i++;
    }
    if (i === 0) return this.#done({ live: 0, new: 0, alloc: 0, free: 0, records: 0 });
    return this.#done(w.end(this.#live(), this.#maxEntries, 'batch'));
  }

  /** The leaf mapping va, or null (unmapped, zapped, beyond the span). */
  translate(va: U64): PtTranslation<N> | null {
    const h = this.#live();
    putU64(ioOf(this.#engine), ARG, va, 'va', this.bigint);
    const r = this.#engine.ptTranslate(h);
    if (r < 0) throw gpuVmError(r, 'translate');
    if (r === 0) return null;
    const io = ioOf(this.#engine);
    return this.#translation(io, OUT, io[OUT + 2]);
  }

  /** translate() for many addresses, one crossing per 16384. */
  translateMany(vas: ArrayLike<U64>): (PtTranslation<N> | null)[] {
    this.#live();
    // Every address is read (getters may call into gpuvm) and checked before io is written.
    const count = vas.length;
    if (!Number.isInteger(count) || count < 0) throw new TypeError(`vas.length must be a non-negative integer, got ${describe(count)}`);
    const words = new Uint32Array(count * 2);
    for (let i = 0; i < count; i++) {
      const va = vas[i];
      if (typeof va === 'number' && va >= 0 && va <= MAX_SAFE && Math.floor(va) === va) {
        words[2 * i] = va >>> 0;
        words[2 * i + 1] = (va / TWO32) >>> 0;
      } else {
        putU64(words, 2 * i, va, `vas[${i}]`, this.bigint);
      }
    }
    const h = this.#live();
    const res: (PtTranslation<N> | null)[] = new Array(count);
    for (let base = 0; base < count; base += TRANSLATE_CHUNK) {
      const n = Math.min(TRANSLATE_CHUNK, count - base);
      let io = ioOf(this.#engine);
      for (let i = 0; i < n; i++) {
        const at = DATA + i * PT_TRANSLATE_WORDS;
        io[at] = words[2 * (base + i)];
        io[at + 1] = words[2 * (base + i) + 1];
      }
      const r = this.#engine.ptTranslateBatch(h, n);
      if (r < 0) throw gpuVmError(r, 'translateMany');
      io = ioOf(this.#engine);
      for (let i = 0; i < n; i++) {
        const at = DATA + i * PT_TRANSLATE_WORDS;
        const info = io[at + 2];
        res[base + i] = info === 0 ? null : this.#translation(io, at, info);
      }
    }
    return res;
  }

  /** Every visible leaf in address order (what `ptdump` prints). */
  dump(): PtEntry<N>[] {
    return [...this.walk()];
  }

  /**
   * Walks [va, va+size) (default: the whole span) in order, a directory
   * entry before its children. Records come out of the engine in chunks;
   * the walk resumes after the last record it delivered, so the table may be
   * changed between iterations.
   */
  *walk(va: U64 = 0, size?: U64, options: PtWalkOptions = {}): IterableIterator<PtEntry<N>> {
    if (options === null || typeof options !== 'object') throw new TypeError(`walk options must be an object, got ${describe(options)}`);
    // each option read once, before io is written
    let flags = 0;
    if (options.dirs) flags |= PtWalk.DIRS;
    if (options.post) flags |= PtWalk.POST;
    if (options.shared) flags |= PtWalk.SHARED;
    if (options.empty) flags |= PtWalk.EMPTY;
    if (options.zapped) flags |= PtWalk.ZAPPED;
    const chunk = options.chunk ?? WALK_CHUNK;
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > WALK_CHUNK) {
      throw new RangeError(`chunk must be an integer in [1, ${WALK_CHUNK}], got ${describe(chunk)}`);
    }
    // [first, last] as words, computed once
    const tmp = new Uint32Array(4);
    putU64(tmp, 0, va, 'va', this.bigint);
    if (size === undefined) {
      tmp[2] = 0xffffffff;
      tmp[3] = 0xffffffff;
    } else {
      putU64(tmp, 2, size, 'size', this.bigint);
      const s = toBig(size);
      if (s === 0n) return;
      let last = toBig(va) + s - 1n;
      if (last > U64_MAX) last = U64_MAX;
      tmp[2] = Number(last & 0xffffffffn);
      tmp[3] = Number(last >> 32n);
    }
    let cursor: [number, number, number] | null = null;
    for (;;) {
      const h = this.#live();
      let io = ioOf(this.#engine);
      io[ARG] = tmp[0];
      io[ARG + 1] = tmp[1];
      io[ARG + 2] = tmp[2];
      io[ARG + 3] = tmp[3];
      if (cursor) {
        io[ARG + 4] = cursor[0];
        io[ARG + 5] = cursor[1];
        io[ARG + 6] = cursor[2];
        io[ARG + 7] = 1;
      } else {
        io[ARG + 7] = 0;
      }
      const n = this.#engine.ptWalk(h, flags, chunk);
      if (n < 0) throw gpuVmError(n, 'walk');
      io = ioOf(this.#engine);
      cursor = [io[OUT], io[OUT + 1], io[OUT + 2]];
      const batch: PtEntry<N>[] = new Array(n);
      for (let i = 0; i < n; i++) batch[i] = this.#entry(io, DATA + i * PT_WALK_WORDS);
      yield* batch;
      if (n < chunk) return;
    }
  }

  /**
   * Commits a GpuVm op list (map / remap / unmap; prefetch writes nothing):
   * `resolve(bo, offset, length)` gives the physical segments of a BO range
   * (or null for no backing); a map without a BO is a null binding. All the
   * resulting binds and unbinds are validated first and then run in one
   * engine call; if any is invalid nothing changes. See PtCommitOptions.keep.
   */
  commit(ops: Iterable<Op<U64>>, resolve: PtResolve, options: PtCommitOptions = {}): PtCommitCost {
    this.#own('commit');
    if (typeof resolve !== 'function') throw new TypeError(`resolve must be a function, got ${describe(resolve)}`);
    const useKeep = options.keep !== false;
    // Arithmetic in the table's number mode: numbers (exact below 2^53) or bigints.
    const v: (x: U64, name: string) => Val = this.bigint ? (x) => toBig(x) : (x, name) => toNumber(x, name);
    // Plan first (resolve is user code and may call into the engine), write afterwards.
    const p = planOps(ops as Iterable<OpLike>, resolve, useKeep, v, (x) => x);
    const cost = p.records.length > 0 ? this.#write(p.records, 'commit', null) : { live: 0, new: 0, alloc: 0, free: 0, records: 0 };
    this.lastCost = cost;
    return {
      live: cost.live,
      new: cost.new,
      alloc: cost.alloc,
      free: cost.free,
      records: cost.records,
      binds: p.binds,
      unbinds: p.unbinds,
      ops: p.ops,
    };
  }

  /** Writes planned records in one table call (a fresh writer when given). */
  #write(plan: readonly PlanRecord[], what: string, fresh: RecordWriter | null): PtCost {
    const w = fresh !== null ? fresh.begin() : this.#writer();
    try {
      for (const r of plan) {
        w.header(r.kind, r.segs === null ? 0 : segCount(r.segs), r.a, r.size);
        if (r.segs !== null) w.backing(r.segs);
      }
      return w.end(this.#live(), this.#maxEntries, what);
    } finally {
      w.release();
    }
  }

  /** JSON: the geometry and the engine, nothing of the tables themselves. */
  toJSON(): { shifts: number[]; leaf: number; compact: boolean; bigint: boolean; backend: BackendName; destroyed: boolean } {
    return { shifts: [...this.shifts], leaf: this.leaf, compact: this.compact, bigint: this.bigint, backend: this.backend, destroyed: this.destroyed };
  }

  /** `PageTable [12 21 30 39] leaf 2, span 0x1000000000000 (wasm)`. */
  toString(): string {
    const span = 1n << BigInt(this.shifts[this.top] + this.shifts[this.top] - this.shifts[this.top - 1]);
    const flags = `${this.compact ? ', compact' : ''}${this.#attached !== null ? ', attached' : ''}${this.destroyed ? ', destroyed' : ''}`;
    return `PageTable [${this.shifts.join(' ')}] leaf ${this.leaf}, span ${hex(span)} (${this.backend}${flags})`;
  }

  /** console.log shows the geometry, and nothing internal. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  // ---- internals ---------------------------------------------------------------------

  #live(): number {
    if (this.#handle === 0) throw new GpuVmError('EINVAL', 'the page table was destroyed');
    return this.#handle;
  }

  /**
   * The table's record writer, ready for a new call (one per table: no
   * allocation per call); a fresh one when a getter of a call still reading
   * its arguments re-enters this table.
   */
  #writer(): RecordWriter {
    this.#live();
    const w = this.#rw.busy ? new RecordWriter(this.#engine, this.bigint) : this.#rw;
    return w.begin();
  }

  #done(cost: PtCost): PtCost {
    this.lastCost = cost;
    return cost;
  }

  #out(v: bigint): N {
    if (this.bigint) return v as N;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError(`0x${v.toString(16)} does not fit a number; create the PageTable with { bigint: true }`);
    }
    return Number(v) as N;
  }

  #num(io: Uint32Array, i: number, name: string): N {
    return (this.bigint ? getBig(io, i) : getNum(io, i, name)) as N;
  }

  #pow2(bits: number): N {
    return (this.bigint ? 1n << BigInt(bits) : bits < 53 ? POW2[bits] : this.#out(1n << BigInt(bits))) as N;
  }

  #translation(io: Uint32Array, at: number, info: number): PtTranslation<N> {
    return {
      pa: info & PtInfo.NULL ? null : this.#num(io, at, 'pa'),
      size: this.#pow2((info >>> PtInfo.SIZE_SHIFT) & 0xff),
      level: (info >>> PtInfo.LEVEL_SHIFT) & 0xff,
      hint64k: (info & PtInfo.HINT_64K) !== 0,
      compact: (info & PtInfo.COMPACT) !== 0,
    };
  }

  #entry(io: Uint32Array, at: number): PtEntry<N> {
    const info = io[at + 4];
    const kind: PtEntryKind =
      info & PtInfo.DIR ? 'dir' : info & PtInfo.NULL ? 'null' : info & PtInfo.MAPPED ? 'leaf' : 'empty';
    return {
      kind,
      va: this.#num(io, at, 'va'),
      size: this.#pow2((info >>> PtInfo.SIZE_SHIFT) & 0xff),
      pa: kind === 'leaf' ? this.#num(io, at + 2, 'pa') : null,
      level: (info >>> PtInfo.LEVEL_SHIFT) & 0xff,
      zapped: (info & PtInfo.ZAPPED) !== 0,
      post: (info & PtInfo.POST) !== 0,
      hint64k: (info & PtInfo.HINT_64K) !== 0,
      compact: (info & PtInfo.COMPACT) !== 0,
      childLive: io[at + 5],
      table: io[at + 6],
      index: io[at + 7],
    };
  }
}

/** One PageTable; see {@link PageTableImpl} for the members. */
export type PageTable<N extends U64 = U64> = PageTableImpl<N>;
/** The class behind {@link PageTable}: its members are documented here. Create tables with `new PageTable(options)`. */
export type { PageTableImpl };
/** `new PageTable(options)`: `PageTable<bigint>` with `bigint: true`, else `PageTable<number>`. */
export const PageTable = PageTableImpl as unknown as PageTableConstructor;

// ---- planning op lists into table records (commit and the GpuVm mirror) --------------------

// Every value of one plan is of one representation (numbers exact below 2^53,
// or bigints), so + - < work on them alike.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Val = any;

/** A table record to write: kind, range, and backing for binds. */
interface PlanRecord {
  kind: number;
  a: Val;
  size: Val;
  segs: readonly PtSegment[] | BigUint64Array | null;
}

/** What planning needs of an op: the public op shapes, or the mirror's records. */
type OpLike =
  | { kind: 'map'; addr: U64; range: U64; bo: unknown; offset: U64 }
  | { kind: 'unmap'; va: { addr: U64; range: U64 }; keep: boolean }
  | { kind: 'remap'; unmap: { va: { addr: U64; range: U64 }; keep: boolean }; prev: OpPiece | null; next: OpPiece | null }
  | { kind: 'prefetch' };
type OpPiece = { addr: U64; range: U64; bo: unknown; offset: U64 };

/**
 * The binds and unbinds that make a table follow `ops` (see
 * PtCommitOptions.keep). `v` reads a value into the plan's representation,
 * `arg` turns one back into what resolve is given.
 */
function planOps(
  ops: Iterable<OpLike>,
  resolve: PtResolve,
  useKeep: boolean,
  v: (x: U64, name: string) => Val,
  arg: (x: Val) => U64,
): { records: PlanRecord[]; binds: number; unbinds: number; ops: number } {
  const records: PlanRecord[] = [];
  let binds = 0;
  let unbinds = 0;
  let count = 0;
  let kept: [Val, Val][] = [];
  const unbind = (a: Val, e: Val) => {
    if (e <= a) return;
    records.push({ kind: PtRec.UNBIND, a, size: e - a, segs: null });
    unbinds++;
  };
  const bind = (a: Val, e: Val, bo: unknown, offset: Val) => {
    if (e <= a) return;
    const size = e - a;
    const segs = bo === null || bo === undefined ? null : checkBacking(resolve(bo, arg(offset), arg(size)));
    records.push({ kind: segs === null ? PtRec.BIND_NULL : PtRec.BIND, a, size, segs });
    binds++;
  };
  const piece = (p: OpPiece) => {
    const a = v(p.addr, 'addr');
    bind(a, a + v(p.range, 'range'), p.bo, v(p.offset, 'offset'));
  };
  for (const op of ops) {
    count++;
    switch (op.kind) {
      case 'map': {
        const a = v(op.addr, 'addr');
        const e = a + v(op.range, 'range');
        const off = v(op.offset, 'offset');
        if (!useKeep || kept.length === 0) {
          bind(a, e, op.bo, off);
        } else {
          // bind only the gaps between the kept pieces
          kept.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
          let at = a;
          for (const [ka, ke] of kept) {
            if (ke <= at || ka >= e) continue;
            if (ka > at) bind(at, ka, op.bo, off + (at - a));
            if (ke > at) at = ke;
          }
          if (at < e) bind(at, e, op.bo, off + (at - a));
          // kept pieces the map does not cover (not produced by split/merge) lose their entries
          for (const [ka, ke] of kept) {
            if (ka < a) unbind(ka, ke < a ? ke : a);
            if (ke > e) unbind(ka > e ? ka : e, ke);
          }
          kept = [];
        }
        break;
      }
      case 'unmap': {
        const a = v(op.va.addr, 'addr');
        const e = a + v(op.va.range, 'range');
        if (useKeep && op.keep) kept.push([a, e]);
        else unbind(a, e);
        break;
      }
      case 'remap': {
        const va = op.unmap.va;
        const a = v(va.addr, 'addr');
        const e = a + v(va.range, 'range');
        if (useKeep) {
          // the hole the remap leaves (vm.remapHole): prev and next keep their entries
          const hs = op.prev ? v(op.prev.addr, 'addr') + v(op.prev.range, 'range') : a;
          const he = op.next ? v(op.next.addr, 'addr') : e;
          if (op.unmap.keep) kept.push([hs, he]);
          else unbind(hs, he);
        } else {
          unbind(a, e);
          if (op.prev) piece(op.prev);
          if (op.next) piece(op.next);
        }
        break;
      }
      case 'prefetch':
        break;
      default:
        throw new TypeError(`commit: unknown op kind ${describe((op as { kind?: unknown }).kind)}`);
    }
  }
  for (const [ka, ke] of kept) unbind(ka, ke);
  return { records, binds, unbinds, ops: count };
}

/** Op records (engine layout) as the shapes planOps reads, values as bigints. */
function* recordOps(words: Uint32Array, bos: readonly unknown[]): Generator<OpLike> {
  const n = words.length / OP_WORDS;
  for (let i = 0; i < n; i++) {
    const p = i * OP_WORDS;
    const k = words[p] & 0xff;
    const bo = bos[i];
    const addr = getBig(words, p + 4);
    const range = getBig(words, p + 6);
    const offset = getBig(words, p + 8);
    const keep = (words[p] & OP_KEEP) !== 0;
    if (k === OpKind.MAP) {
      yield { kind: 'map', addr, range, bo, offset };
    } else if (k === OpKind.UNMAP) {
      yield { kind: 'unmap', va: { addr, range }, keep };
    } else if (k === OpKind.REMAP) {
      const prev = (words[p] & OP_HAS_PREV) !== 0 ? { addr, range: getBig(words, p + 10), bo, offset } : null;
      let next: OpPiece | null = null;
      if ((words[p] & OP_HAS_NEXT) !== 0) {
        const nAddr = getBig(words, p + 12);
        next = { addr: nAddr, range: addr + range - nAddr, bo, offset: getBig(words, p + 14) };
      }
      yield { kind: 'remap', unmap: { va: { addr, range }, keep }, prev, next };
    } else {
      yield { kind: 'prefetch' };
    }
  }
}


/** resolve's arguments in the VM's number mode. */
function argFor(vmBig: boolean): (x: Val) => U64 {
  return vmBig ? (x) => x : (x) => Number(x);
}

/**
 * Writes op records of a GpuVm into its attached table: plans (resolve runs
 * here), calls `check`, then writes everything in one table call. Values
 * travel as bigints whatever either side's mode; resolve gets the VM's.
 */
export function writeMirror(
  pt: PageTable<any>, // eslint-disable-line @typescript-eslint/no-explicit-any
  words: Uint32Array,
  bos: readonly unknown[],
  resolve: PtResolve,
  keep: boolean,
  vmBig: boolean,
  check: () => void,
  what: string,
): void {
  const p = planOps(recordOps(words, bos), resolve, keep, (x) => x, argFor(vmBig));
  check();
  if (p.records.length === 0) return;
  pt.lastCost = writeFn(pt, p.records, `${what} (page table)`);
}

/**
 * Fills `pt` from a VM's mappings (MAP records) after clearing the VM's range
 * within the table's span, in one table call, and marks it attached. Nothing
 * changes if resolve throws or the table refuses.
 */
export function attachMirror(
  pt: unknown,
  startB: bigint,
  endB: bigint,
  words: Uint32Array,
  bos: readonly unknown[],
  resolve: PtResolve,
  vmBig: boolean,
  onDestroy: () => void,
): void {
  if (!isPtFn(pt)) throw new TypeError(`attachPageTable: pt must be a PageTable, got ${describe(pt)}`);
  const table = pt as PageTable<U64>;
  if (table.destroyed) throw new GpuVmError('EINVAL', 'attachPageTable: the page table was destroyed');
  if (table.attached) throw new GpuVmError('EBUSY', 'attachPageTable: the page table is already attached to a VM');
  const p = planOps(recordOps(words, bos), resolve, false, (x) => x, argFor(vmBig));
  const span = 1n << BigInt(table.shifts[table.top] + table.shifts[table.top] - table.shifts[table.top - 1]);
  const clearEnd = endB < span ? endB : span;
  const records: PlanRecord[] = startB < clearEnd ? [{ kind: PtRec.UNBIND, a: startB, size: clearEnd - startB, segs: null }] : [];
  for (const r of p.records) records.push(r);
  table.lastCost = writeFn(table, records, 'attachPageTable');
  attachFn(table, { onDestroy });
}

/** Marks `pt` detached (its entries stay). */
export function detachMirror(pt: PageTable<any>): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  detachFn(pt);
}
