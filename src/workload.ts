/**
 * The kernel-stream workload: a seeded stream of VM_BIND map and unmap
 * requests over a 256 MiB window (xorshift64* draws), and the FNV-1a 64
 * checksum of the state it leaves. The same stream is what the kernel's
 * split/merge algorithm is measured on, so a result (mapping count and
 * checksum) can be compared with other implementations; EXPECTED holds the
 * reference results for seed 1.
 *
 * `gpuvm bench` runs it through the package on every engine; bench/ and the
 * tests import it from the build, so there is one copy.
 *
 * u64 arithmetic is done on two u32 halves without BigInt, exactly:
 * xorshift steps are shifts and xors on the halves; the multiply keeps the
 * low 64 bits of the product from 16-bit partial products (each below 2^32,
 * exact as doubles) and Math.imul; rnd(n) = (next() >> 11) % n works on a
 * value below 2^53, an exact double. Every request field is below 2^53, so
 * requests are plain numbers.
 */
import { GpuVm } from './gpuvm.js';
import { Bo } from './vm-bo.js';
import type { BackendName } from './backend/loader.js';

export const PAGE = 0x1000;
/** first address of the request window */
export const BASE = 0x100000000;
/** pages in the request window */
export const W = 65536;
/** most pages per request */
export const MAXP = 64;
export const VM_START = 0;
export const VM_RANGE = 2 ** 47;
export const BO_COUNT = 8;

export interface Expected {
  readonly seed: number;
  readonly mapRequests: number;
  readonly unmapRequests: number;
  readonly ops: { readonly map: number; readonly remap: number; readonly unmap: number };
  readonly mappings: number;
  readonly checksum: string;
}

/** Reference results of the stream with seed 1, by request count. */
export const EXPECTED: Readonly<Record<number, Expected | undefined>> = Object.freeze({
  100000: Object.freeze({
    seed: 1,
    mapRequests: 75122,
    unmapRequests: 24878,
    ops: Object.freeze({ map: 75122, remap: 122288, unmap: 88245 }),
    mappings: 2949,
    checksum: '0x78e3464ca32dbf16',
  }),
  1000000: Object.freeze({
    seed: 1,
    mapRequests: 750372,
    unmapRequests: 249628,
    ops: Object.freeze({ map: 750372, remap: 1246381, unmap: 908989 }),
    mappings: 2910,
    checksum: '0x497e3539c5aec38d',
  }),
});

const TWO32 = 4294967296;
const M_HI = 0x2545f491;
const M_LO = 0x4f6cdd1d;

/** xorshift64* on two u32 halves. */
export class XorShift64Star {
  hi: number;
  lo: number;
  /** high and low halves of the last step() */
  rhi = 0;
  rlo = 0;

  /** @param seed any u64 (numbers must be safe integers); 0 is replaced by a fixed odd constant */
  constructor(seed: number | bigint = 1) {
    let hi: number;
    let lo: number;
    if (typeof seed === 'bigint') {
      const s = BigInt.asUintN(64, seed);
      hi = Number(s >> 32n);
      lo = Number(s & 0xffffffffn);
    } else {
      if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a u64, got ${seed}`);
      hi = Math.floor(seed / TWO32);
      lo = seed >>> 0;
    }
    if (hi === 0 && lo === 0) {
      hi = 0x9e3779b9;
      lo = 0x7f4a7c15;
    }
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
  }

  /** Advances; the result is left in rhi / rlo. */
  step(): void {
    let hi = this.hi;
    let lo = this.lo;
    // s ^= s >> 12
    lo = (lo ^ ((lo >>> 12) | (hi << 20))) >>> 0;
    hi = (hi ^ (hi >>> 12)) >>> 0;
    // s ^= s << 25
    hi = (hi ^ ((hi << 25) | (lo >>> 7))) >>> 0;
    lo = (lo ^ (lo << 25)) >>> 0;
    // s ^= s >> 27
    lo = (lo ^ ((lo >>> 27) | (hi << 5))) >>> 0;
    hi = (hi ^ (hi >>> 27)) >>> 0;
    this.hi = hi;
    this.lo = lo;
    // s * M mod 2^64: lo * M_LO in full, plus the low 32 bits of the cross terms
    const a0 = lo & 0xffff;
    const a1 = lo >>> 16;
    const b0 = M_LO & 0xffff;
    const b1 = M_LO >>> 16;
    const p00 = a0 * b0;
    const p01 = a0 * b1;
    const p10 = a1 * b0;
    const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    const carry = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
    this.rlo = Math.imul(lo, M_LO) >>> 0;
    this.rhi = (carry + Math.imul(hi, M_LO) + Math.imul(lo, M_HI)) >>> 0;
  }

  /** The next value as a bigint (for checks; the generator does not use it). */
  nextBig(): bigint {
    this.step();
    return (BigInt(this.rhi) << 32n) | BigInt(this.rlo);
  }

  /** (next() >> 11) % n, for 0 < n <= 2^53. */
  rnd(n: number): number {
    this.step();
    const x = (this.rhi >>> 11) * TWO32 + (((this.rlo >>> 11) | (this.rhi << 21)) >>> 0);
    return x % n;
  }
}

/** A generated stream, as parallel arrays. */
export interface Workload {
  n: number;
  seed: number;
  /** 0 unmap, 1..3 map */
  kind: Uint8Array;
  addr: Float64Array;
  range: Float64Array;
  /** 0 = no BO (and 0 for unmaps) */
  bo: Uint8Array;
  /** map requests only (0 for unmaps) */
  offset: Float64Array;
  maps: number;
  unmaps: number;
}

/**
 * n requests from `seed`. Each request draws, in order: its kind (one in four
 * is an unmap), a page count 1..MAXP, a first page that keeps it inside the
 * window; a map then draws its BO 0..8 and whether its offset follows the
 * address (half the time) or is a random page of a 4 GiB BO.
 */
export function generate(n: number, seed: number | bigint = 1): Workload {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  const rng = new XorShift64Star(seed);
  const kind = new Uint8Array(n);
  const addr = new Float64Array(n);
  const range = new Float64Array(n);
  const bo = new Uint8Array(n);
  const offset = new Float64Array(n);
  let maps = 0;
  for (let i = 0; i < n; i++) {
    const k = rng.rnd(4);
    const npages = 1 + rng.rnd(MAXP);
    const apage = rng.rnd(W - npages + 1);
    kind[i] = k;
    addr[i] = BASE + apage * PAGE;
    range[i] = npages * PAGE;
    if (k !== 0) {
      maps++;
      bo[i] = rng.rnd(9);
      const c = rng.rnd(2);
      offset[i] = (c === 0 ? apage : rng.rnd(1048576)) * PAGE;
    }
  }
  return { n, seed: typeof seed === 'bigint' ? Number(seed) : seed, kind, addr, range, bo, offset, maps, unmaps: n - maps };
}

/** FNV-1a 64 over u64 values as 8 little-endian bytes, on u32 halves. */
export class Fnv1a64 {
  hi = 0xcbf29ce4;
  lo = 0x84222325;

  byte(b: number): void {
    const lo = (this.lo ^ b) >>> 0;
    const hi = this.hi;
    // h * (2^40 + 0x1b3) mod 2^64
    const pl = lo * 0x1b3; // below 2^41: exact
    const plo = pl >>> 0;
    const carry = (pl - plo) / TWO32;
    this.hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
    this.lo = plo;
  }

  /** a u32 as 4 little-endian bytes */
  u32(w: number): void {
    this.byte(w & 0xff);
    this.byte((w >>> 8) & 0xff);
    this.byte((w >>> 16) & 0xff);
    this.byte(w >>> 24);
  }

  /** a u64 (numbers: safe non-negative integers) */
  u64(v: number | bigint): void {
    if (typeof v === 'bigint') {
      this.u32(Number(v & 0xffffffffn));
      this.u32(Number((v >> 32n) & 0xffffffffn));
    } else {
      this.u32(v >>> 0);
      this.u32(Math.floor(v / TWO32) >>> 0);
    }
  }

  /** '0x' and 16 lowercase hex digits */
  hex(): string {
    return '0x' + this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
  }
}

export interface StateEntry {
  addr: number | bigint;
  range: number | bigint;
  bo: number | bigint;
  offset: number | bigint;
}

/** Checksum of a final state: mappings in address order, each as addr, range, bo (workload id, 0: none), offset. */
export function checksum(mappings: Iterable<StateEntry>): { checksum: string; count: number } {
  const h = new Fnv1a64();
  let count = 0;
  for (const m of mappings) {
    h.u64(m.addr);
    h.u64(m.range);
    h.u64(m.bo);
    h.u64(m.offset);
    count++;
  }
  return { checksum: h.hex(), count };
}

/** The same over parallel arrays (the first `count` entries). */
export function checksumArrays(
  addr: ArrayLike<number>,
  range: ArrayLike<number>,
  bo: ArrayLike<number>,
  offset: ArrayLike<number>,
  count: number = addr.length,
): { checksum: string; count: number } {
  const h = new Fnv1a64();
  for (let i = 0; i < count; i++) {
    h.u64(addr[i]);
    h.u64(range[i]);
    h.u64(bo[i]);
    h.u64(offset[i]);
  }
  return { checksum: h.hex(), count };
}

/** Drives anything with bind(addr, range, bo id, offset) and unbind(addr, range) through requests [from, to). */
export function replayWorkload(
  vm: { bind(a: number, r: number, bo: number, off: number): unknown; unbind(a: number, r: number): unknown },
  w: Workload,
  from = 0,
  to = w.n,
): void {
  const { kind, addr, range, bo, offset } = w;
  for (let i = from; i < to; i++) {
    if (kind[i] === 0) vm.unbind(addr[i], range[i]);
    else vm.bind(addr[i], range[i], bo[i], offset[i]);
  }
}

// ---- gpuvm bench ---------------------------------------------------------------------

export interface BenchResult {
  suite: 'kernel-stream';
  engine: BackendName;
  /** fused: vm.bind / vm.unbind; opslist: smMapOps / smUnmapOps, then apply() */
  mode: 'fused' | 'opslist';
  requests: number;
  seed: string;
  /** median over the timed rounds */
  nsPerRequest: number;
  rounds: number;
  mappings: number;
  checksum: string;
  /** applied op counts (opslist mode) */
  ops?: { map: number; remap: number; unmap: number };
  /** against the reference results: null when there are none for this size and seed */
  verified: boolean | null;
}

function runStream(vm: GpuVm<number>, w: Workload, bos: (Bo | null)[], mode: 'fused' | 'opslist', counts: Record<string, number> | null): void {
  const { kind, addr, range, bo, offset } = w;
  if (mode === 'fused') {
    for (let i = 0, n = w.n; i < n; i++) {
      if (kind[i] === 0) vm.unbind(addr[i], range[i]);
      else vm.bind(addr[i], range[i], bos[bo[i]], offset[i]);
    }
    return;
  }
  for (let i = 0, n = w.n; i < n; i++) {
    const ops =
      kind[i] === 0 ? vm.smUnmapOps(addr[i], range[i]) : vm.smMapOps({ addr: addr[i], range: range[i], bo: bos[bo[i]], offset: offset[i] });
    if (counts !== null) for (const op of ops) counts[op.kind]++;
    ops.apply();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * The kernel-stream suite on each engine in `backends`, both modes: one
 * untimed run checks the final state (and, for seed 1 at a size with
 * reference results, the expected mapping count, checksum and op counts),
 * then `rounds` timed runs on fresh VMs give the median ns per request.
 */
export function* runKernelStream(options: {
  requests: number;
  seed: bigint;
  rounds: number;
  backends: BackendName[];
}): Generator<BenchResult> {
  const { requests, seed, rounds, backends } = options;
  const w = generate(requests, seed);
  const expected = seed === 1n ? EXPECTED[requests] : undefined;
  const bos: (Bo | null)[] = [null];
  const ids = new Map<Bo, number>();
  for (let i = 1; i <= BO_COUNT; i++) {
    const bo = new Bo({ size: 2 ** 40, name: `bench-bo${i}` });
    bos.push(bo);
    ids.set(bo, i);
  }
  for (const engine of backends) {
    const make = () => new GpuVm<number>({ name: `bench-${engine}`, start: VM_START, range: VM_RANGE, backend: engine });
    for (const mode of ['fused', 'opslist'] as const) {
      const vm = make();
      const counts = mode === 'opslist' ? { map: 0, remap: 0, unmap: 0 } : null;
      let state: { checksum: string; count: number };
      try {
        runStream(vm, w, bos, mode, counts);
        state = checksum(
          (function* () {
            for (const va of vm.mappings()) yield { addr: va.addr, range: va.range, bo: va.bo === null ? 0 : ids.get(va.bo)!, offset: va.offset };
          })(),
        );
      } finally {
        vm.destroy();
      }
      const times: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const v = make();
        const t0 = process.hrtime.bigint();
        runStream(v, w, bos, mode, null);
        const t1 = process.hrtime.bigint();
        v.destroy();
        times.push(Number(t1 - t0) / requests);
      }
      let verified: boolean | null = null;
      if (expected !== undefined) {
        verified = state.count === expected.mappings && state.checksum === expected.checksum;
        if (counts !== null) verified &&= counts.map === expected.ops.map && counts.remap === expected.ops.remap && counts.unmap === expected.ops.unmap;
      }
      yield {
        suite: 'kernel-stream',
        engine,
        mode,
        requests,
        seed: seed.toString(),
        nsPerRequest: Math.round(median(times) * 10) / 10,
        rounds,
        mappings: state.count,
        checksum: state.checksum,
        ...(counts !== null ? { ops: counts } : {}),
        verified,
      };
    }
  }
}

/** A result as one readable line. */
export function formatBenchLine(r: BenchResult): string {
  const check = r.verified === null ? 'no reference for this size/seed' : r.verified ? 'matches the reference' : 'DOES NOT MATCH the reference';
  const ops = r.ops ? ` ops map=${r.ops.map} remap=${r.ops.remap} unmap=${r.ops.unmap}` : '';
  return (
    `${r.suite} ${r.engine.padEnd(6)} ${r.mode.padEnd(7)} n=${r.requests} seed=${r.seed}: ${r.nsPerRequest.toFixed(1).padStart(7)} ns/request, ` +
    `${r.mappings} mappings, checksum ${r.checksum}${ops} (${check})`
  );
}
