/**
 * A page-by-page model of the page-table walker for the page-table tests,
 * written from its rules only (no tables): for every page, the leaf that maps it
 * (start, level) and its physical address (or null). Zapped pages are simply
 * absent (they translate to nothing and are never split again).
 */

export interface Seg {
  pa: bigint;
  len: bigint;
}

export interface PageState {
  /** physical address of the page's first byte, or null for a null leaf */
  pa: bigint | null;
  /** va of the leaf that maps it, and its level */
  leafVa: bigint;
  level: number;
}

export class PtModel {
  readonly pages = new Map<bigint, PageState>();
  readonly page: bigint;

  constructor(
    readonly shifts: readonly number[],
    readonly leaf: number,
  ) {
    this.page = 1n << BigInt(shifts[0]);
  }

  size(level: number): bigint {
    return 1n << BigInt(this.shifts[level]);
  }

  /** Re-expresses the leaves that straddle an edge of [a, e) until none does. */
  private splitEdges(a: bigint, e: bigint): void {
    for (const edge of [a, e]) {
      // the page just inside the range at this edge, and the one just outside
      for (;;) {
        const inside = this.pages.get(edge === a ? a / this.page : (e - 1n) / this.page);
        if (!inside) break;
        const sz = this.size(inside.level);
        const ls = inside.leafVa;
        const le = ls + sz;
        if (ls >= a && le <= e) break; // wholly inside: nothing straddles here
        // one level down: every page of the leaf gets the piece it falls in
        const L = inside.level - 1;
        const psz = this.size(L);
        for (let p = ls; p < le; p += this.page) {
          const st = this.pages.get(p / this.page);
          if (!st) continue;
          st.leafVa = ls + ((p - ls) / psz) * psz;
          st.level = L;
        }
      }
    }
  }

  bind(va: bigint, size: bigint, backing: Seg[] | null): void {
    const e = va + size;
    this.splitEdges(va, e);
    // segment start vas
    const starts: bigint[] = [];
    if (backing) {
      let at = va;
      for (const s of backing) {
        starts.push(at);
        at += s.len;
      }
    }
    let si = 0;
    for (let p = va; p < e; p += this.page) {
      let pa: bigint | null = null;
      if (backing) {
        while (p >= starts[si] + backing[si].len) si++;
        pa = backing[si].pa + (p - starts[si]);
      }
      // the largest leaf level whose aligned block is covered, in one segment, aligned
      let level = 0;
      for (let L = Math.min(this.leaf, this.shifts.length - 1); L > 0; L--) {
        const sz = this.size(L);
        const bs = p - (p % sz);
        if (bs < va || bs + sz > e) continue;
        if (backing) {
          // the segment holding the block start must reach its end, at an aligned pa
          let sj = si;
          while (bs >= starts[sj] + backing[sj].len) sj++;
          while (bs < starts[sj]) sj--;
          if (bs + sz > starts[sj] + backing[sj].len) continue;
          if ((backing[sj].pa + (bs - starts[sj])) % sz !== 0n) continue;
        }
        level = L;
        break;
      }
      const sz = this.size(level);
      this.pages.set(p / this.page, { pa, leafVa: p - (p % sz), level });
    }
  }

  unbind(va: bigint, size: bigint): void {
    const e = va + size;
    this.splitEdges(va, e);
    for (let p = va; p < e; p += this.page) this.pages.delete(p / this.page);
  }

  zap(va: bigint, size: bigint): void {
    const e = va + size;
    for (let p = va; p < e; p += this.page) {
      const st = this.pages.get(p / this.page);
      if (!st) continue;
      const ls = st.leafVa;
      if (ls >= va && ls + this.size(st.level) <= e) this.pages.delete(p / this.page);
    }
  }

  translate(va: bigint): { pa: bigint | null; size: bigint; level: number } | null {
    const st = this.pages.get(va / this.page);
    if (!st) return null;
    return { pa: st.pa === null ? null : st.pa + (va % this.page), size: this.size(st.level), level: st.level };
  }
}

/** mulberry32: a small seeded PRNG. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type StreamOp =
  | { kind: 'bind'; va: bigint; size: bigint; backing: Seg[] | null }
  | { kind: 'unbind'; va: bigint; size: bigint }
  | { kind: 'zap'; va: bigint; size: bigint };

/**
 * A seeded stream over the window [0, window): binds with fragmented or
 * contiguous backing (often aligned so that huge leaves appear), null binds,
 * unbinds, zaps, and rebinds over what was bound before.
 */
export interface StreamOptions {
  /** no zaps (their effect depends on leaf sizes the model does not know with compact tables) */
  noZap?: boolean;
  /** fragmented pieces are multiples of this many pages, at physical addresses aligned to it */
  grain?: number;
  /** physical addresses stay below this (default 2^64) */
  paLimit?: bigint;
}

export function makeStream(
  seed: number,
  n: number,
  shifts: readonly number[],
  window: bigint,
  options: StreamOptions = {},
): StreamOp[] {
  const grain = BigInt(options.grain ?? 1);
  const paLimit = options.paLimit ?? 1n << 64n;
  /** pa moved down (modulo) so that [pa, pa + len) ends at or below paLimit, aligned to `align` */
  const fit = (pa: bigint, len: bigint, align: bigint): bigint => {
    const room = paLimit - len;
    const p = pa % (room + 1n);
    return p - (p % align);
  };
  const rnd = prng(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const page = 1n << BigInt(shifts[0]);
  const pages = Number(window / page);
  const ops: StreamOp[] = [];
  const bound: [bigint, bigint][] = [];
  const pick = (): [bigint, bigint] => {
    if (bound.length > 0 && rnd() < 0.2) {
      // around something bound before, with ragged edges
      const [a, s] = bound[int(bound.length)];
      let va = a + BigInt(int(3) - 1) * page * BigInt(int(4));
      let size = s + BigInt(int(5) - 2) * page;
      if (va < 0n) va = 0n;
      if (size <= 0n) size = page;
      if (va + size > window) size = window - va;
      if (size <= 0n) return [0n, page];
      return [va, size];
    }
    // an aligned block at some level, or a ragged range
    if (rnd() < 0.45) {
      const L = int(shifts.length - 1);
      const bsz = 1n << BigInt(shifts[L]);
      const blocks = window / bsz;
      if (blocks > 0n) {
        const b = BigInt(int(Number(blocks)));
        const cnt = 1n + BigInt(int(Math.min(3, Number(blocks - b))));
        return [b * bsz, cnt * bsz];
      }
    }
    const start = int(pages);
    const len = 1 + int(Math.min(pages - start, rnd() < 0.7 ? 40 : pages));
    return [BigInt(start) * page, BigInt(len) * page];
  };
  const backingFor = (va: bigint, size: bigint): Seg[] | null => {
    const r = rnd();
    if (r < 0.1) return null;
    if (r < 0.5) {
      // contiguous, with a pa congruent to va modulo a random level size (so huge leaves can appear)
      const L = int(shifts.length);
      const m = 1n << BigInt(shifts[L]);
      const base = BigInt(int(1 << 20)) * (1n << BigInt(shifts[shifts.length - 1]));
      const off = rnd() < 0.7 ? va % m : (BigInt(int(16)) * page) % m;
      return [{ pa: fit(base, size + m, m) + off, len: size }];
    }
    // fragmented: random pieces; sometimes adjacent pieces that must not be coalesced
    const segs: Seg[] = [];
    let left = size;
    let pa = BigInt(int(1 << 24)) * page * grain;
    while (left > 0n) {
      let len = BigInt(1 + int(rnd() < 0.5 ? 4 : 600)) * page * grain;
      if (len > left) len = left;
      segs.push({ pa: fit(pa, len, page), len });
      left -= len;
      pa = rnd() < 0.3 ? pa + len : BigInt(int(1 << 24)) * page * grain;
    }
    return segs;
  };
  for (let i = 0; i < n; i++) {
    const r = rnd();
    const [va, size] = pick();
    if (r < 0.55) {
      ops.push({ kind: 'bind', va, size, backing: backingFor(va, size) });
      bound.push([va, size]);
      if (bound.length > 32) bound.shift();
    } else if (r < 0.82 || options.noZap) {
      ops.push({ kind: 'unbind', va, size });
    } else {
      ops.push({ kind: 'zap', va, size });
    }
  }
  return ops;
}
