/**
 * The kernel-stream workload of /work/shared/BENCH-WORKLOAD.md, exactly:
 * xorshift64* request generation and the FNV-1a 64 checksum of a final state.
 *
 * Plain ESM so that both the benchmark runner and the vitest suites can use it.
 * All u64 arithmetic is done on two u32 halves (no BigInt), which is exact:
 * - xorshift steps are shifts and xors on the halves;
 * - the multiply keeps the low 64 bits of the product from 16-bit partial
 *   products (each below 2^32, so exact in doubles) and Math.imul;
 * - rnd(n) = (next() >> 11) % n: the shifted value is below 2^53, so it is an
 *   exact double and `%` on doubles is exact.
 * Every request field (addr, range, bo, offset) is below 2^53, so requests are
 * plain numbers.
 */

export const PAGE = 0x1000;
export const BASE = 0x100000000;
export const W = 65536;
export const MAXP = 64;
export const VM_START = 0;
export const VM_RANGE = 2 ** 47;
export const BO_COUNT = 8;

/** The table of BENCH-WORKLOAD.md. */
export const EXPECTED = Object.freeze({
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
  /** @param {number | bigint} [seed] any u64 (numbers must be safe integers) */
  constructor(seed = 1) {
    let hi;
    let lo;
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
    /** @type {number} */ this.hi = hi >>> 0;
    /** @type {number} */ this.lo = lo >>> 0;
    /** high and low halves of the last next() */
    this.rhi = 0;
    this.rlo = 0;
  }

  /** Advances; the result is left in this.rhi / this.rlo (u32 halves). */
  step() {
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
    // s * M mod 2^64: lo*M_LO in full, plus the low 32 bits of the cross terms.
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

  /** next() as a bigint (for checks and tests; not used on the hot path). */
  nextBig() {
    this.step();
    return (BigInt(this.rhi) << 32n) | BigInt(this.rlo);
  }

  /** rnd(n) = (next() >> 11) % n, for 0 < n <= 2^53. */
  rnd(n) {
    this.step();
    const x = (this.rhi >>> 11) * TWO32 + (((this.rlo >>> 11) | (this.rhi << 21)) >>> 0);
    return x % n;
  }
}

/**
 * @typedef {object} Workload
 * @property {number} n          requests
 * @property {number} seed
 * @property {Uint8Array} kind   0 unmap, 1..3 map
 * @property {Float64Array} addr
 * @property {Float64Array} range
 * @property {Uint8Array} bo     0 = no BO (map requests only; 0 for unmaps)
 * @property {Float64Array} offset  (map requests only; 0 for unmaps)
 * @property {number} maps       map requests
 * @property {number} unmaps     unmap requests
 */

/**
 * Generates n requests with the given seed (BENCH-WORKLOAD.md "One request").
 * @param {number} n
 * @param {number | bigint} [seed]
 * @returns {Workload}
 */
export function generate(n, seed = 1) {
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
  constructor() {
    this.hi = 0xcbf29ce4;
    this.lo = 0x84222325;
  }

  /** @param {number} b a byte */
  byte(b) {
    const lo = (this.lo ^ b) >>> 0;
    const hi = this.hi;
    // h * (2^40 + 0x1b3) mod 2^64
    const pl = lo * 0x1b3; // < 2^41, exact
    const plo = pl >>> 0;
    const carry = (pl - plo) / TWO32;
    this.hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
    this.lo = plo;
  }

  /** @param {number} w a u32, as 4 little-endian bytes */
  u32(w) {
    this.byte(w & 0xff);
    this.byte((w >>> 8) & 0xff);
    this.byte((w >>> 16) & 0xff);
    this.byte(w >>> 24);
  }

  /** @param {number | bigint} v a u64 (numbers: safe non-negative integers) */
  u64(v) {
    if (typeof v === 'bigint') {
      this.u32(Number(v & 0xffffffffn));
      this.u32(Number((v >> 32n) & 0xffffffffn));
    } else {
      this.u32(v >>> 0);
      this.u32(Math.floor(v / TWO32) >>> 0);
    }
  }

  /** '0x' and 16 lowercase hex digits */
  hex() {
    return '0x' + this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
  }
}

/**
 * Checksum of a final state: mappings in address order, each with addr, range,
 * bo (the workload id, 0 for none) and offset.
 * @param {Iterable<{addr: number | bigint, range: number | bigint, bo: number | bigint, offset: number | bigint}>} mappings
 * @returns {{ checksum: string, count: number }}
 */
export function checksum(mappings) {
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

/**
 * The same over parallel arrays (the first `count` entries).
 * @param {ArrayLike<number>} addr
 * @param {ArrayLike<number>} range
 * @param {ArrayLike<number>} bo
 * @param {ArrayLike<number>} offset
 * @param {number} [count]
 */
export function checksumArrays(addr, range, bo, offset, count = addr.length) {
  const h = new Fnv1a64();
  for (let i = 0; i < count; i++) {
    h.u64(addr[i]);
    h.u64(range[i]);
    h.u64(bo[i]);
    h.u64(offset[i]);
  }
  return { checksum: h.hex(), count };
}

/**
 * Drives a VM through a workload. `vm` needs bind(addr, range, bo, offset)
 * where bo is the workload id (0 = none) and unbind(addr, range).
 * @param {{ bind(a: number, r: number, bo: number, off: number): unknown, unbind(a: number, r: number): unknown }} vm
 * @param {Workload} w
 * @param {number} [from]
 * @param {number} [to]
 */
export function replay(vm, w, from = 0, to = w.n) {
  const { kind, addr, range, bo, offset } = w;
  for (let i = from; i < to; i++) {
    if (kind[i] === 0) vm.unbind(addr[i], range[i]);
    else vm.bind(addr[i], range[i], bo[i], offset[i]);
  }
}
