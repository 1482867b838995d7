/**
 * The horizontal axis of a VA picture. A GPU VA space is 2^48 bytes or more
 * while mappings are often a few pages, so a linear axis would draw nothing
 * visible. The axis shows only the occupied regions: intervals that lie close
 * together (a gap at most 8 times what they hold) share one linear segment, segments
 * are separated by fixed-width breaks that say how much was skipped, and each
 * segment gets a width that grows with the logarithm of its length, so a
 * 64 KiB region beside a 1 TiB one is still wide enough to read.
 */
import type { VaSnapshot } from './snapshot.js';

/**
 * One linear piece of the axis: [start, end) drawn over [x0 + inset, x1 - inset];
 * the inset keeps what touches a segment's edge clear of the break beside it.
 */
export interface AxisSegment {
  start: bigint;
  end: bigint;
  x0: number;
  x1: number;
  inset: number;
}

/** Address space left out between two segments, drawn as a break over [x0, x1]. */
export interface AxisGap {
  start: bigint;
  end: bigint;
  x0: number;
  x1: number;
}

export interface AxisTick {
  addr: bigint;
  x: number;
  /** a segment edge (always labelled) rather than an inner tick */
  edge: boolean;
}

export interface Axis {
  x0: number;
  x1: number;
  segments: AxisSegment[];
  gaps: AxisGap[];
}

export interface AxisOptions {
  /** most segments (default 8): closest neighbours are merged beyond it */
  maxSegments?: number;
  /** width of a break (default 22) */
  gapWidth?: number;
}

const maxB = (a: bigint, b: bigint) => (a > b ? a : b);

/** The address intervals a snapshot draws, unmerged. */
export function occupied(s: VaSnapshot): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  if (s.vm) for (const m of s.vm.mappings) out.push([m.addr, m.addr + m.range]);
  if (s.pageTable) {
    // leaves only: a directory entry spans its whole table, which would hide the detail
    for (const e of s.pageTable.entries) if (e.kind !== 'dir') out.push([e.va, e.va + e.size]);
  }
  if (s.svm) {
    for (const r of s.svm.ranges) out.push([r.start, r.start + r.size]);
    for (const v of s.svm.vmas) out.push([v.start, v.start + v.size]);
  }
  return out;
}

/** Sorted, overlapping and touching intervals joined. */
function merge(intervals: [bigint, bigint][]): [bigint, bigint][] {
  const sorted = intervals.filter(([s, e]) => e > s).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && s <= last[1]) last[1] = maxB(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** log2 of a positive bigint, as a float. */
function log2(v: bigint): number {
  const bits = v.toString(2).length;
  if (bits <= 52) return Math.log2(Number(v));
  return bits - 52 + Math.log2(Number(v >> BigInt(bits - 52)));
}

/**
 * An axis over `intervals` spanning [x0, x1] pixels. With nothing to show it
 * covers `fallback` (or the first 64 KiB).
 */
export function buildAxis(
  intervals: [bigint, bigint][],
  x0: number,
  x1: number,
  fallback: [bigint, bigint] | null = null,
  options: AxisOptions = {},
): Axis {
  const maxSegments = options.maxSegments ?? 8;
  const gapWidth = options.gapWidth ?? 22;
  let regions = merge(intervals);
  if (regions.length === 0) regions = [fallback !== null && fallback[1] > fallback[0] ? [...fallback] : [0n, 0x10000n]];
  // join neighbours whose gap is small next to what they hold: they read best on one
  // scale (a stack, so a region grown by a join can join its left neighbour too)
  const joined: [bigint, bigint][] = [];
  for (const r of regions) {
    joined.push([r[0], r[1]]);
    while (joined.length >= 2) {
      const [as, ae] = joined[joined.length - 2];
      const [bs, be] = joined[joined.length - 1];
      if (bs - ae > (ae - as + (be - bs)) * 8n) break;
      joined.splice(joined.length - 2, 2, [as, be]);
    }
  }
  regions = joined;
  if (regions.length > maxSegments) {
    // keep the widest gaps as breaks; every other gap is drawn to scale
    const widest = regions
      .slice(1)
      .map((r, i) => ({ i, gap: r[0] - regions[i][1] }))
      .sort((p, q) => (p.gap > q.gap ? -1 : p.gap < q.gap ? 1 : p.i - q.i))
      .slice(0, maxSegments - 1)
      .map((g) => g.i)
      .sort((p, q) => p - q);
    const kept: [bigint, bigint][] = [];
    let from = 0;
    for (const i of [...widest, regions.length - 1]) {
      kept.push([regions[from][0], regions[i][1]]);
      from = i + 1;
    }
    regions = kept;
  }
  const gapsNeeded = regions.length - 1;
  const width = x1 - x0 - gapsNeeded * gapWidth;
  const weights = regions.map(([s, e]) => 4 + Math.max(0, log2(e - s) - 12));
  const total = weights.reduce((a, b) => a + b, 0);
  const segments: AxisSegment[] = [];
  const gaps: AxisGap[] = [];
  let x = x0;
  regions.forEach(([s, e], i) => {
    const w = (width * weights[i]) / total;
    segments.push({ start: s, end: e, x0: x, x1: x + w, inset: Math.min(6, w / 20) });
    x += w;
    if (i < regions.length - 1) {
      gaps.push({ start: e, end: regions[i + 1][0], x0: x, x1: x + gapWidth });
      x += gapWidth;
    }
  });
  return { x0, x1, segments, gaps };
}

/** The x of an address: linear inside a segment, the middle of a break between segments. */
export function toX(axis: Axis, addr: bigint): number {
  const segs = axis.segments;
  if (addr <= segs[0].start) return segs[0].x0 + segs[0].inset;
  for (let i = 0; i < segs.length; i++) {
    const g = segs[i];
    if (addr <= g.end) {
      if (addr < g.start) {
        const gap = axis.gaps[i - 1];
        return (gap.x0 + gap.x1) / 2;
      }
      const len = g.end - g.start;
      const frac = Number(((addr - g.start) * 1_000_000n) / len) / 1_000_000;
      return g.x0 + g.inset + frac * (g.x1 - g.x0 - 2 * g.inset);
    }
  }
  const last = segs[segs.length - 1];
  return last.x1 - last.inset;
}

/** The pixel span of [start, end), at least `min` wide (a 4 KiB page in a 1 TiB segment stays visible). */
export function spanX(axis: Axis, start: bigint, end: bigint, min = 1): [number, number] {
  const a = toX(axis, start);
  const b = toX(axis, end);
  if (b - a >= min) return [a, b];
  const mid = (a + b) / 2;
  return [mid - min / 2, mid + min / 2];
}

/** Segment edges, plus aligned inner ticks where a segment is wide enough. */
export function ticks(axis: Axis, spacing = 130): AxisTick[] {
  const out: AxisTick[] = [];
  for (const g of axis.segments) {
    out.push({ addr: g.start, x: g.x0 + g.inset, edge: true });
    const w = g.x1 - g.x0;
    const n = Math.floor(w / spacing);
    if (n >= 1) {
      // the largest power-of-two step giving at least n inner ticks
      const len = g.end - g.start;
      let step = 1n;
      while (len / (step * 2n) >= BigInt(n + 1)) step *= 2n;
      for (let a = ((g.start + step) / step) * step; a < g.end; a += step) {
        const x = toX(axis, a);
        if (x - g.x0 > spacing * 0.6 && g.x1 - x > spacing * 0.6) out.push({ addr: a, x, edge: false });
      }
    }
    out.push({ addr: g.end, x: g.x1 - g.inset, edge: true });
  }
  return out;
}

export const hex = (v: bigint): string => '0x' + v.toString(16);

/** Bytes in binary units: 4K, 2M, 1.5G, 256T. */
export function bytes(v: bigint): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P', 'E'];
  let u = 0;
  let whole = v;
  while (u < units.length - 1 && whole >= 1024n) {
    whole /= 1024n;
    u++;
  }
  if (u === 0) return `${v}B`;
  const exact = Number(v >> BigInt(10 * (u - 1))) / 1024;
  const text = exact >= 100 || Number.isInteger(exact) ? String(Math.round(exact)) : exact.toFixed(1);
  return text + units[u];
}
