/**
 * u64 values at the boundary: the engines see two u32 words (low first).
 * Number-mode callers stay on doubles (exact below 2^53); bigint mode covers
 * all of u64. Nothing is ever rounded silently.
 */

export type U64 = number | bigint;

export const TWO32 = 4294967296;
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
export const U64_MAX = 0xffff_ffff_ffff_ffffn;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

export function hex(v: U64): string {
  return '0x' + v.toString(16);
}

/**
 * A value for an error message. Never runs user code: an object's toString,
 * getters or proxy traps could re-enter the library or throw while a call is
 * failing.
 */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'bigint':
      return `${v}n`;
    case 'string':
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(v);
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    default:
      return 'an object';
  }
}

/**
 * Writes `v` into io[i], io[i+1]. `big` says whether values above 2^53 are
 * allowed (bigint-mode VMs).
 */
export function putU64(io: Uint32Array, i: number, v: unknown, name: string, big: boolean): void {
  // Kept tiny so V8 inlines it into every hot call: the common case is a
  // safe non-negative integer number; everything else takes the slow path.
  if (typeof v === 'number') {
    // v = hi * 2^32 + lo exactly iff v is an integer in [0, 2^53): then
    // (v - lo) / 2^32 is an integer in [0, 2^21); fractions, negatives, NaN,
    // infinities and values from 2^53 up all fail the test.
    const lo = v >>> 0;
    const hi = (v - lo) / TWO32;
    if (hi >= 0 && hi <= 0x1f_ffff && (hi | 0) === hi) {
      io[i] = lo;
      io[i + 1] = hi;
      return;
    }
  }
  putU64Slow(io, i, v, name, big);
}

function putU64Slow(io: Uint32Array, i: number, v: unknown, name: string, big: boolean): void {
  if (typeof v === 'number') throw badNumber(v, name);
  if (typeof v === 'bigint') {
    if (v < 0n || v > U64_MAX) throw new RangeError(`${name} must be a u64, got ${describe(v)}`);
    if (!big && v > MAX_SAFE_BIG) {
      throw new RangeError(
        `${name} = ${describe(v)} is above Number.MAX_SAFE_INTEGER; create the VM with { bigint: true }`,
      );
    }
    io[i] = Number(v & 0xffff_ffffn);
    io[i + 1] = Number(v >> 32n);
    return;
  }
  throw new TypeError(`${name} must be a number or a bigint, got ${describe(v)}`);
}

function badNumber(v: number, name: string): Error {
  if (Number.isNaN(v) || !Number.isFinite(v) || Math.floor(v) !== v) {
    return new RangeError(`${name} must be a non-negative integer, got ${v}`);
  }
  if (v < 0) return new RangeError(`${name} must not be negative, got ${v}`);
  return new RangeError(
    `${name} = ${v} is above Number.MAX_SAFE_INTEGER and cannot be exact; pass a bigint to a VM created with { bigint: true }`,
  );
}

/** Reads io[i], io[i+1] as a number; RangeError if it cannot be exact. */
export function getNum(io: Uint32Array, i: number, name: string): number {
  const hi = io[i + 1];
  if (hi > 0x1f_ffff) {
    throw new RangeError(
      `${name} = 0x${(BigInt(hi) << 32n | BigInt(io[i])).toString(16)} does not fit a number; use a VM with { bigint: true }`,
    );
  }
  return io[i] + hi * TWO32;
}

export function getBig(io: Uint32Array, i: number): bigint {
  return (BigInt(io[i + 1]) << 32n) | BigInt(io[i]);
}

/** Exact bigint of any accepted input (slow paths: messages, validation detail). */
export function toBig(v: U64): bigint {
  return typeof v === 'bigint' ? v : BigInt(v);
}

/**
 * io[dst..dst+1] = io[a..a+1] + io[b..b+1] - 1, clamped to u64 max: the
 * inclusive last address of [addr, addr+range), computed exactly in u32 words.
 */
export function putLast(io: Uint32Array, dst: number, a: number, b: number): void {
  let lo = io[a] + io[b];
  let hi = io[a + 1] + io[b + 1];
  if (lo >= TWO32) {
    lo -= TWO32;
    hi += 1;
  }
  // subtract one
  if (lo === 0) {
    lo = TWO32 - 1;
    hi -= 1;
  } else {
    lo -= 1;
  }
  if (hi >= TWO32) {
    lo = TWO32 - 1;
    hi = TWO32 - 1;
  }
  io[dst] = lo;
  io[dst + 1] = hi;
}

const scratch = new Uint32Array(2);
/** Validates a u64 argument exactly as putU64 would, without writing anywhere. */
export function checkU64(v: unknown, name: string, big: boolean): void {
  putU64(scratch, 0, v, name, big);
}
