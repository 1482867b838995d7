/**
 * Random requests in a small universe (a few dozen pages, a handful of BOs),
 * so that request edges collide with mapping edges all the time: exact
 * matches, touching neighbours, splits on one or both sides, contiguous and
 * non-contiguous offsets, offsets that wrap u64, and invalid requests (zero
 * range, overflow, an end of exactly 2^64, outside the VM, over the kernel
 * node).
 */
import type { Prng } from './prng.js';
import { TWO64, U64_MAX, wrap } from './model.js';

export interface Universe {
  name: string;
  /** the VM is created with { bigint } */
  bigint: boolean;
  page: bigint;
  start: bigint;
  pages: number;
  /** kernel-reserved node, in pages from start */
  reserve?: { page: number; pages: number };
  /** number of BOs besides "none" */
  bos: number;
}

/** What the generator needs to know of the current state. */
export interface Known {
  addr: bigint;
  range: bigint;
  /** BO index (0 none, 1..bos) */
  bo: number;
  offset: bigint;
}

export type ApplyMode = 'list' | 'fused' | 'callback' | 'drop' | 'partial';

export type Req =
  | { t: 'map'; addr: bigint; range: bigint; bo: number; offset: bigint; mode: ApplyMode; failAt: number }
  | { t: 'unmap'; addr: bigint; range: bigint; mode: ApplyMode; failAt: number }
  | { t: 'prefetch'; addr: bigint; range: bigint }
  | { t: 'madvise'; addr: bigint; range: bigint; apply: boolean }
  | { t: 'unmapbo'; bo: number; viaMapping: boolean }
  | { t: 'obtain'; bo: number }
  | { t: 'put'; pick: number }
  | { t: 'flags'; pick: number; flags: number };

export const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export function vmEnd(u: Universe): bigint {
  return u.start + BigInt(u.pages) * u.page;
}

/** The largest value the universe may pass (number mode: 2^53 - 1). */
function cap(u: Universe): bigint {
  return u.bigint ? U64_MAX : MAX_SAFE;
}

function clampU(u: Universe, v: bigint): bigint {
  if (v < 0n) return 0n;
  const c = cap(u);
  return v > c ? c : v;
}

export function genAddr(rng: Prng, u: Universe, known: readonly Known[]): bigint {
  const P = u.page;
  const k = rng.int(100);
  if (k < 45 && known.length > 0) {
    const m = rng.pick(known);
    const edge = rng.chance(0.5) ? m.addr : m.addr + m.range;
    const nudge = rng.chance(0.7) ? 0n : BigInt(rng.between(-1, 1)) * P;
    return clampU(u, edge + nudge);
  }
  if (k < 95) return clampU(u, u.start + BigInt(rng.between(-1, u.pages)) * P);
  if (k < 98 && u.reserve) return u.start + BigInt(u.reserve.page + rng.between(-1, u.reserve.pages)) * P;
  // wild
  return u.bigint ? rng.u64() : BigInt(rng.int(2 ** 30)) * P;
}

export function genRange(rng: Prng, u: Universe, addr: bigint, known: readonly Known[]): bigint {
  const P = u.page;
  const k = rng.int(100);
  if (k < 2) return 0n;
  if (k < 64) return BigInt(rng.between(1, 6)) * P;
  if (k < 80) {
    // up to the end of the VM, rarely past it
    const left = Number((u.start + BigInt(u.pages) * P - addr) / P);
    return BigInt(rng.between(1, Math.max(1, Math.min(u.pages, left + (rng.chance(0.1) ? 2 : 0))))) * P;
  }
  if (k < 96 && known.length > 0) {
    const m = rng.pick(known);
    const edge = rng.chance(0.5) ? m.addr + m.range : m.addr;
    if (edge > addr) return edge - addr;
    return BigInt(rng.between(1, 3)) * P;
  }
  if (u.bigint) {
    // overflow: an end of exactly 2^64, just past it, or anything
    const j = rng.int(3);
    if (j === 0) return TWO64 - addr <= U64_MAX ? TWO64 - addr : P;
    if (j === 1) return wrap(TWO64 - addr + BigInt(rng.between(1, 4)) * P) || P;
    return rng.u64() || P;
  }
  return BigInt(rng.between(1, 2 * u.pages)) * P;
}

export function genOffset(rng: Prng, u: Universe, addr: bigint, bo: number, known: readonly Known[]): bigint {
  const P = u.page;
  const k = rng.int(100);
  if (bo !== 0 && k < 40) {
    // contiguous with a mapping of the same BO (keep), or one page off
    const same = known.filter((m) => m.bo === bo);
    if (same.length > 0) {
      const m = rng.pick(same);
      let off = wrap(m.offset + (addr - m.addr));
      if (rng.chance(0.15)) off = wrap(off + P);
      if (off <= cap(u)) return off;
    }
  }
  if (bo === 0 && k < 60) return 0n;
  if (u.bigint && k >= 85) return TWO64 - BigInt(rng.between(1, 8)) * P; // pieces wrap past 2^64
  if (k < 75) return BigInt(rng.int(16)) * P;
  return BigInt(rng.int(1024)) * P;
}

const MODES: ApplyMode[] = ['list', 'fused', 'callback', 'drop', 'partial'];
const MODE_WEIGHTS = [55, 22, 15, 4, 4];

export interface GenOptions {
  /** include madvise requests (differential only: the model has no madvise) */
  madvise?: boolean;
}

/** One random request. */
export function genRequest(rng: Prng, u: Universe, known: readonly Known[], opt: GenOptions = {}): Req {
  const kind = rng.weighted([50, 24, 7, opt.madvise ? 4 : 0, 6, 3, 3, 3]);
  const mode = MODES[rng.weighted(MODE_WEIGHTS)];
  const failAt = mode === 'callback' && rng.chance(0.2) ? rng.int(4) : -1;
  switch (kind) {
    case 0: {
      const addr = genAddr(rng, u, known);
      const range = genRange(rng, u, addr, known);
      const bo = rng.int(u.bos + 1);
      return { t: 'map', addr, range, bo, offset: genOffset(rng, u, addr, bo, known), mode, failAt };
    }
    case 1: {
      const addr = genAddr(rng, u, known);
      return { t: 'unmap', addr, range: genRange(rng, u, addr, known), mode, failAt };
    }
    case 2: {
      const addr = genAddr(rng, u, known);
      return { t: 'prefetch', addr, range: genRange(rng, u, addr, known) };
    }
    case 3: {
      const addr = genAddr(rng, u, known);
      return { t: 'madvise', addr, range: genRange(rng, u, addr, known), apply: rng.chance(0.6) };
    }
    case 4:
      return { t: 'unmapbo', bo: rng.between(1, u.bos), viaMapping: rng.chance(0.4) };
    case 5:
      return { t: 'obtain', bo: rng.between(1, u.bos) };
    case 6:
      return { t: 'put', pick: rng.int(1 << 16) };
    default: {
      const bit = rng.int(30);
      const flags = (rng.chance(0.3) ? 1 : 0) | (rng.chance(0.3) ? 2 : 0) | ((4 << bit) >>> 0);
      return { t: 'flags', pick: rng.int(1 << 16), flags: flags >>> 0 };
    }
  }
}

/** A u64 as the VM's number mode wants it. */
export function num(u: Universe, v: bigint): number | bigint {
  return u.bigint ? v : Number(v);
}
