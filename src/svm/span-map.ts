/**
 * SpanMap: an interval map held by an engine (span-engine.ts), disjoint
 * [start, end) -> (tag, aux). The SVM layer's indexes (VMAs, notifiers,
 * ranges, page-state extents) live in these, in page units, so the numbers
 * stay below 2^53; the engine itself works on u64.
 *
 * Internal to the facade: callers pass integers in [0, 2^53) and are not
 * checked here. Every method is one engine crossing (list: one per chunk).
 */
import { IO, type Engine, ioOf } from '../backend/engine.js';
import { SPAN_ENTRY_WORDS, SPAN_MERGE, SPANS_PER_CHUNK } from '../backend/span-engine.js';
import { GpuVmError, gpuVmError } from '../errors.js';

export interface SpanEntry {
  start: number;
  end: number;
  tag: number;
  aux: number;
}

const ARG = IO.ARG;
const OUT = IO.OUT;
const DATA = IO.DATA;
const OUT_INFO = IO.OUT_INFO;
const TWO32 = 4294967296;

/** Writes a non-negative integer below 2^53 as two words, low first. */
function put(io: Uint32Array, i: number, v: number): void {
  io[i] = v >>> 0;
  io[i + 1] = Math.floor(v / TWO32);
}

function get(io: Uint32Array, i: number): number {
  return io[i + 1] * TWO32 + io[i];
}

/**
 * A map dropped without destroy() gives its engine storage back when it is
 * collected; the held value must not reference the map itself.
 */
const reclaim = new FinalizationRegistry<{ engine: Engine; handle: number }>((held) => {
  held.engine.spanDestroy(held.handle);
});

export class SpanMap {
  readonly engine: Engine;
  private handle: number;
  /** The entry found by the last successful find() or seek(). */
  start = 0;
  end = 0;
  tag = 0;
  aux = 0;

  constructor(engine: Engine) {
    this.engine = engine;
    const h = engine.spanCreate();
    if (h < 0) throw gpuVmError(h, 'cannot create a span map');
    this.handle = h;
    reclaim.register(this, { engine, handle: h }, this);
  }

  get destroyed(): boolean {
    return this.handle === 0;
  }

  /** Frees the map and its entries. Idempotent; any other call afterwards is EINVAL. */
  destroy(): void {
    if (this.handle === 0) return;
    reclaim.unregister(this);
    this.engine.spanDestroy(this.handle);
    this.handle = 0;
  }

  private live(): number {
    if (this.handle === 0) throw new GpuVmError('EINVAL', 'the span map was destroyed');
    return this.handle;
  }

  get count(): number {
    const r = this.engine.spanStats(this.live());
    if (r < 0) throw gpuVmError(r, 'spanStats');
    return r;
  }

  private readOut(): void {
    const io = ioOf(this.engine);
    this.start = get(io, OUT);
    this.end = get(io, OUT + 2);
    this.tag = io[OUT + 4];
    this.aux = get(io, OUT + 5);
  }

  /** The entry containing p, into start/end/tag/aux. */
  find(p: number): boolean {
    const h = this.live();
    put(ioOf(this.engine), ARG, p);
    const r = this.engine.spanFind(h);
    if (r < 0) throw gpuVmError(r, `spanFind(${p})`);
    if (r === 0) return false;
    this.readOut();
    return true;
  }

  /** The lowest entry overlapping [s, e), into start/end/tag/aux (none for e == s; EINVAL for e < s). */
  seek(s: number, e: number): boolean {
    const h = this.live();
    const io = ioOf(this.engine);
    put(io, ARG, s);
    put(io, ARG + 2, e);
    const r = this.engine.spanSeek(h);
    if (r < 0) throw gpuVmError(r, `spanSeek([${s}, ${e}))`);
    if (r === 0) return false;
    this.readOut();
    return true;
  }

  /** Adds [s, e) -> (tag, aux). EEXIST when it overlaps an entry. */
  insert(s: number, e: number, tag: number, aux = 0): void {
    const h = this.live();
    const io = ioOf(this.engine);
    put(io, ARG, s);
    put(io, ARG + 2, e);
    io[ARG + 4] = tag;
    put(io, ARG + 5, aux);
    const r = this.engine.spanInsert(h);
    if (r < 0) throw gpuVmError(r, `spanInsert([${s}, ${e}), tag ${tag})`);
  }

  /** Removes the entry starting exactly at `start`; false when there is none. */
  remove(start: number): boolean {
    const h = this.live();
    put(ioOf(this.engine), ARG, start);
    const r = this.engine.spanRemove(h);
    if (r < 0) throw gpuVmError(r, `spanRemove(${start})`);
    return r === 1;
  }

  /**
   * Makes [s, e) hold exactly (tag, aux), or nothing for tag 0, cutting the
   * entries it overlaps (see SpanEngine.spanAssign); `merge` joins it with
   * contiguous neighbours of the same tag whose aux continues linearly.
   */
  assign(s: number, e: number, tag: number, aux: number, merge: boolean): void {
    const h = this.live();
    const io = ioOf(this.engine);
    put(io, ARG, s);
    put(io, ARG + 2, e);
    io[ARG + 4] = tag;
    put(io, ARG + 5, aux);
    io[ARG + 7] = merge ? SPAN_MERGE : 0;
    const r = this.engine.spanAssign(h);
    if (r < 0) throw gpuVmError(r, `spanAssign([${s}, ${e}), tag ${tag})`);
  }

  /** Every entry overlapping [s, e), ascending (none for e == s; EINVAL for e < s). */
  list(s: number, e: number): SpanEntry[] {
    const h = this.live();
    const out: SpanEntry[] = [];
    for (;;) {
      let io = ioOf(this.engine);
      put(io, ARG, s);
      put(io, ARG + 2, e);
      const n = this.engine.spanList(h, SPANS_PER_CHUNK);
      if (n < 0) throw gpuVmError(n, `spanList([${s}, ${e}))`);
      io = ioOf(this.engine);
      for (let i = 0, w = DATA; i < n; i++, w += SPAN_ENTRY_WORDS) {
        out.push({ start: get(io, w), end: get(io, w + 2), tag: io[w + 4], aux: get(io, w + 5) });
      }
      if (n < SPANS_PER_CHUNK) break;
      s = out[out.length - 1].end;
      if (s >= e) break;
    }
    return out;
  }

  stats(): { entries: number; nodes: number; bytes: number } {
    const r = this.engine.spanStats(this.live());
    if (r < 0) throw gpuVmError(r, 'spanStats');
    const io = ioOf(this.engine);
    return { entries: r, nodes: io[OUT_INFO], bytes: io[OUT_INFO + 1] };
  }
}
