/**
 * Batched submission: many bind/unbind requests in one engine crossing (the
 * analogue of a VM_BIND array, without its atomicity). The caller fills a
 * BindRequests (parallel typed arrays, one entry per request) and hands it
 * to GpuVm.submit with the batch's BO table; each request runs exactly as
 * the same bind/unbind call would, and its op count or -errno lands in
 * `results`. See docs/submit.md.
 */
import { Errno, IO, SUBMIT_MAKE, SUBMIT_PER_CHUNK, SUBMIT_SAME, SUBMIT_WORDS, SubmitKind, type ErrnoName, ioOf } from './backend/engine.js';
import { GpuVmError, errnoName } from './errors.js';
import { readBigint } from './options.js';
import { describe, TWO32, U64_MAX, type U64 } from './u64.js';
import { boState, isBo, vmBoHandle, type Bo } from './vm-bo.js';
import type { VmContext } from './vm-context.js';
import { lockFields } from './read-only.js';

const D = IO.DATA;
const TWO53 = 2 ** 53;
/** u64 typed arrays can be read as u32 pairs, low word first, on little-endian hosts. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The typed array of the u64 columns: Float64Array in number mode, BigUint64Array in bigint mode. */
export type U64Array<N extends U64> = [N] extends [bigint]
  ? BigUint64Array
  : [N] extends [number]
    ? Float64Array
    : Float64Array | BigUint64Array;

/** What a request's `kind` may be. */
export const BIND = SubmitKind.BIND;
export const UNBIND = SubmitKind.UNBIND;

let isRequests: (x: unknown) => x is BindRequestsImpl<U64>;
let wordsOf: (r: BindRequestsImpl<U64>) => U64Words | null;

/** u32 views of the bigint columns (little-endian hosts only). */
interface U64Words {
  addr: Uint32Array;
  range: Uint32Array;
  offset: Uint32Array;
}

/**
 * A batch of bind/unbind requests for {@link GpuVmImpl.submit | GpuVm.submit}, as parallel
 * typed arrays the caller fills in place (no object per request). Request i
 * is `kind[i]` (`BindRequests.BIND` or `BindRequests.UNBIND`)
 * with `addr[i]`, `range[i]` and, for a bind, `bo[i]` (an index into the BO
 * table given to submit, -1 for no BO) and `offset[i]`; an unbind ignores
 * `bo` and `offset`. The first `length` entries are submitted.
 *
 * In number mode (the default) the u64 columns are Float64Arrays and every
 * value must be an integer below 2^53; with `{ bigint: true }` they are
 * BigUint64Arrays and take all of u64. The mode must be the VM's.
 *
 * @typeParam N - `number` or `bigint`, as the VM it is submitted to.
 */
class BindRequestsImpl<N extends U64 = number> {
  /** `kind` of a bind request (sm_map + apply). */
  static readonly BIND = BIND;
  /** `kind` of an unbind request (sm_unmap + apply). */
  static readonly UNBIND = UNBIND;

  static {
    isRequests = (x): x is BindRequestsImpl<U64> => typeof x === 'object' && x !== null && #length in x;
    wordsOf = (r) => r.#words;
  }

  /** Entries the arrays hold. */
  readonly capacity: number;
  /** Whether the u64 columns are BigUint64Arrays. */
  readonly bigint: boolean;
  /** BIND (1) or UNBIND (2) per request. */
  readonly kind: Uint8Array;
  /** First address of each request. */
  readonly addr: U64Array<N>;
  /** Bytes of each request. */
  readonly range: U64Array<N>;
  /** Bind: offset into the BO of `addr`. */
  readonly offset: U64Array<N>;
  /** Bind: index into the submit call's BO table, or -1 for no BO (the initial value). */
  readonly bo: Int32Array;
  /**
   * Written by submit for each request it ran: the op count (>= 0), or the
   * negated errno of its failure (-22 EINVAL, -16 EBUSY, -12 ENOMEM); see
   * {@link BindRequestsImpl.error | BindRequests.error}.
   */
  readonly results: Int32Array;
  #length = 0;
  readonly #words: U64Words | null;

  /** Arrays for `capacity` requests, none of them in use yet (`length` 0). */
  constructor(capacity: number, options: { bigint?: boolean } = {}) {
    if (!Number.isSafeInteger(capacity) || capacity < 0) {
      throw new RangeError(`BindRequests: capacity must be a non-negative integer, got ${describe(capacity)}`);
    }
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`BindRequests: options must be an object, got ${describe(options)}`);
    }
    const big = readBigint(options.bigint);
    this.capacity = capacity;
    this.bigint = big;
    this.kind = new Uint8Array(capacity);
    const col = (): U64Array<N> => (big ? new BigUint64Array(capacity) : new Float64Array(capacity)) as U64Array<N>;
    this.addr = col();
    this.range = col();
    this.offset = col();
    this.bo = new Int32Array(capacity).fill(-1);
    this.results = new Int32Array(capacity);
    this.#words =
      big && LITTLE_ENDIAN
        ? {
            addr: new Uint32Array(this.addr.buffer, 0, 2 * capacity),
            range: new Uint32Array(this.range.buffer, 0, 2 * capacity),
            offset: new Uint32Array(this.offset.buffer, 0, 2 * capacity),
          }
        : null;
    lockFields(this, ['capacity', 'bigint', 'kind', 'addr', 'range', 'offset', 'bo', 'results']);
  }

  /** Requests in use: submit runs entries [0, length). */
  get length(): number {
    return this.#length;
  }

  set length(n: number) {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.capacity) {
      throw new RangeError(`BindRequests: length must be an integer in [0, ${this.capacity}], got ${describe(n)}`);
    }
    this.#length = n;
  }

  /** Appends a bind request (bo: index into the BO table, -1 for none). -> its index */
  bind(addr: N, range: N, bo = -1, offset: N = (this.bigint ? 0n : 0) as N): number {
    if (!Number.isInteger(bo) || bo < -1 || bo > 0x7fff_ffff) {
      throw new RangeError(`BindRequests.bind: bo must be -1 or an index into the BO table, got ${describe(bo)}`);
    }
    const i = this.#append('bind', addr, range, offset);
    this.kind[i] = BIND;
    this.bo[i] = bo;
    return i;
  }

  /** Appends an unbind request. -> its index */
  unbind(addr: N, range: N): number {
    const i = this.#append('unbind', addr, range, (this.bigint ? 0n : 0) as N);
    this.kind[i] = UNBIND;
    this.bo[i] = -1;
    return i;
  }

  /** Forgets every request (length 0); the arrays keep their contents. */
  clear(): void {
    this.#length = 0;
  }

  /** The errno name of request i's failure, or null if it succeeded (or has no result yet: 0). */
  error(i: number): ErrnoName | null {
    if (!Number.isInteger(i) || i < 0 || i >= this.capacity) {
      throw new RangeError(`BindRequests.error: index must be an integer in [0, ${this.capacity}), got ${describe(i)}`);
    }
    const r = this.results[i];
    return r < 0 ? errnoName(r) : null;
  }

  #append(what: string, addr: N, range: N, offset: N): number {
    const i = this.#length;
    if (i >= this.capacity) throw new RangeError(`BindRequests.${what}: full (capacity ${this.capacity})`);
    const check = (v: unknown, name: string): void => {
      if (this.bigint) {
        if (typeof v !== 'bigint') throw new TypeError(`BindRequests.${what}: ${name} must be a bigint, got ${describe(v)}`);
        if (v < 0n || v > U64_MAX) throw new RangeError(`BindRequests.${what}: ${name} must be a u64, got ${describe(v)}`);
      } else if (typeof v !== 'number') {
        throw new TypeError(`BindRequests.${what}: ${name} must be a number, got ${describe(v)}`);
      }
    };
    check(addr, 'addr');
    check(range, 'range');
    check(offset, 'offset');
    (this.addr as unknown as U64[])[i] = addr;
    (this.range as unknown as U64[])[i] = range;
    (this.offset as unknown as U64[])[i] = offset;
    this.#length = i + 1;
    return i;
  }
}

/** A batch of bind/unbind requests; see {@link BindRequestsImpl} for the members. */
export type BindRequests<N extends U64 = number> = BindRequestsImpl<N>;
/** The class behind {@link BindRequests}: its members are documented here. */
export type { BindRequestsImpl };

/** `new BindRequests(capacity, options)`: the column type follows the `bigint` option. */
export interface BindRequestsConstructor {
  /** Float64Array columns, for a number-mode VM. */
  new (capacity: number, options?: { bigint?: false }): BindRequests<number>;
  /** BigUint64Array columns, for a bigint-mode VM. */
  new (capacity: number, options: { bigint: true }): BindRequests<bigint>;
  /** The mode known only at run time. */
  new (capacity: number, options: { bigint?: boolean }): BindRequests<U64>;
  readonly BIND: typeof BIND;
  readonly UNBIND: typeof UNBIND;
  readonly prototype: BindRequests<U64>;
}
export const BindRequests = BindRequestsImpl as unknown as BindRequestsConstructor;

/** One request run through the fused facade calls (a VM with a page table attached). */
export type SubmitOne = (kind: number, addr: U64, range: U64, bo: Bo | null, offset: U64) => number;

/** Whether v is an integer in [0, 2^53): what a number-mode VM takes. */
function isU53(v: number): boolean {
  return v >= 0 && v < TWO53 && Math.floor(v) === v;
}

function badValue(col: string, i: number, v: number): RangeError {
  return new RangeError(`submit: requests.${col}[${i}] must be an integer in [0, 2^53) in number mode, got ${v}`);
}

/**
 * Reads and checks the whole batch before anything runs (so a bad request
 * changes nothing). -> request count and, per BO table index, whether a bind
 * links to it
 */
function readBatch(requests: unknown, bos: unknown, big: boolean): { n: number; used: Uint8Array; table: readonly (Bo | null)[] } {
  if (!isRequests(requests)) throw new TypeError(`submit: requests must be a BindRequests, got ${describe(requests)}`);
  if (requests.bigint !== big) {
    throw new TypeError(`submit: requests are in ${requests.bigint ? 'bigint' : 'number'} mode, the VM in ${big ? 'bigint' : 'number'} mode`);
  }
  if (!Array.isArray(bos)) throw new TypeError(`submit: bos must be an array of Bo or null, got ${describe(bos)}`);
  const table = bos as readonly unknown[];
  const nb = table.length;
  for (let j = 0; j < nb; j++) {
    const b = table[j];
    if (b !== null && !isBo(b)) throw new TypeError(`submit: bos[${j}] must be a Bo or null, got ${describe(b)}`);
  }
  const n = requests.length;
  const { kind, bo } = requests;
  const used = new Uint8Array(nb);
  const addr = requests.addr as Float64Array;
  const range = requests.range as Float64Array;
  const offset = requests.offset as Float64Array;
  for (let i = 0; i < n; i++) {
    const k = kind[i];
    if (k === BIND) {
      const b = bo[i];
      if (b !== -1) {
        if (b < -1 || b >= nb) throw new RangeError(`submit: requests.bo[${i}] = ${b} is neither -1 nor an index into bos (length ${nb})`);
        if (table[b] !== null) used[b] = 1;
      }
      if (!big) {
        const a = addr[i];
        const r = range[i];
        const o = offset[i];
        if (!isU53(a)) throw badValue('addr', i, a);
        if (!isU53(r)) throw badValue('range', i, r);
        if (!isU53(o)) throw badValue('offset', i, o);
        // as bind: every piece a split can make must report its offset exactly
        if (o > TWO53 - r) {
          throw new RangeError(
            `submit: requests[${i}]: offset + range is above 2^53, so a split piece's offset could not be reported exactly; use bigint mode`,
          );
        }
      }
    } else if (k === UNBIND) {
      if (!big) {
        const a = addr[i];
        const r = range[i];
        if (!isU53(a)) throw badValue('addr', i, a);
        if (!isU53(r)) throw badValue('range', i, r);
      }
    } else {
      throw new RangeError(`submit: requests.kind[${i}] must be BindRequests.BIND (1) or BindRequests.UNBIND (2), got ${k}`);
    }
  }
  return { n, used, table: table as readonly (Bo | null)[] };
}

/**
 * GpuVm.submit. `one`: null for the engine's batched call; with a page table
 * attached, the fused facade call that writes the table too (per request).
 * -> requests run
 */
export function submitRequests<N extends U64>(c: VmContext<N>, requests: unknown, bos: unknown, one: SubmitOne | null): number {
  const { n, used, table } = readBatch(requests, bos, c.bigint);
  c.alive('submit');
  const reqs = requests as BindRequestsImpl<U64>;
  return one !== null ? submitEach(reqs, n, table, one) : submitBatched(c, reqs, n, used, table);
}

/** One request at a time through `one`; a GpuVmError becomes the request's result. */
function submitEach(reqs: BindRequestsImpl<U64>, n: number, table: readonly (Bo | null)[], one: SubmitOne): number {
  const { kind, addr, range, offset, bo, results } = reqs;
  for (let i = 0; i < n; i++) {
    const b = bo[i];
    try {
      results[i] = one(kind[i], addr[i], range[i], kind[i] === BIND && b >= 0 ? table[b] : null, offset[i]);
    } catch (err) {
      if (!(err instanceof GpuVmError)) throw err;
      results[i] = -err.errno;
      if (err.errno === Errno.ENOMEM) return i + 1;
    }
  }
  return n;
}

/** The shortest chunk submitBatched writes after a stop. */
const SUBMIT_MIN_CHUNK = 8;

/** A VmBo handle that names nothing: the engine stops before a bind that carries it. */
const NO_VMBO = 0xffff_ffff;

function submitBatched<N extends U64>(c: VmContext<N>, reqs: BindRequestsImpl<U64>, n: number, used: Uint8Array, table: readonly (Bo | null)[]): number {
  const E = c.E;
  // The VmBo each BO-table entry links to as far as the facade knows
  // (NO_VMBO: none, and its binds make one, see markMakes). Read again after
  // every reap: a reaped VmBo's handle may name another BO's VmBo once one
  // is created.
  const handles = new Uint32Array(used.length);
  // BO table entries without a VmBo: their binds ask the engine to make it
  // (the first one in a chunk SUBMIT_MAKE, the later ones SUBMIT_SAME)
  let missing = 0;
  const refresh = (): void => {
    missing = 0;
    for (let j = 0; j < used.length; j++) {
      if (used[j] === 0) continue;
      const vb = boState(table[j] as Bo).vmBos.get(c.vm);
      handles[j] = vb === undefined ? NO_VMBO : vmBoHandle(vb);
      if (vb === undefined) missing++;
    }
  };
  refresh();
  // per BO table entry, the first entry of the same BO (a BO may stand in the
  // table more than once, and gets one VmBo); made when first needed
  let canon: Int32Array | null = null;
  /** per first table entry of a BO, the record of this chunk that makes its VmBo, else -1 */
  const makeAt = new Int32Array(used.length).fill(-1);
  /** the records of this chunk that make a VmBo, and their BO table entries */
  const makes: number[] = [];
  const { bo, results } = reqs;
  const words = wordsOf(reqs);
  let ran = 0;
  let changed = false;
  // A stop (a VmBo that went earlier in the batch is needed again) throws
  // away the rest of the chunk, which is written again after it: after a
  // stop the next chunk is only a few times as long as the run before it,
  // and grows back while chunks run whole, so that a batch that stops every
  // few requests does not write its requests over and over.
  let chunk = SUBMIT_PER_CHUNK;
  while (ran < n) {
    const m = Math.min(n - ran, chunk);
    const io = ioOf(E);
    if (words !== null) {
      writeWords(io, reqs, words, handles, ran, m);
    } else if (reqs.bigint) {
      writeBig(io, reqs, handles, ran, m);
    } else {
      writeNumbers(io, reqs, handles, ran, m);
    }
    makes.length = 0;
    if (missing !== 0) {
      canon ??= firstEntries(table);
      markMakes(io, reqs, table, handles, canon, makeAt, makes, ran, m);
    }
    const got = E.submit(c.h, m);
    if (got < 0 || got > m) throw new GpuVmError('EIO', `submit: the engine returned ${got} for ${m} requests`);
    const out = ioOf(E);
    for (let j = 0, i = ran; j < got; j++, i++) {
      const r = out[D + j * SUBMIT_WORDS] | 0;
      results[i] = r;
      if (r >= 0) changed = true;
    }
    let forgot = false;
    // the VmBos the engine made and kept, in the order they came (before the
    // reap below, which lets go of any that went again within the chunk)
    // (a bind that ran keeps its VmBo exactly when it succeeded)
    for (let x = 0; x < makes.length && makes[x] < got; x++) {
      const j = makes[x];
      if (results[ran + j] < 0) continue;
      c.adoptVmBo(table[bo[ran + j]] as Bo, out[D + j * SUBMIT_WORDS + 1]);
      forgot = true;
    }
    ran += got;
    // after the results: reaping writes DATA
    if (out[IO.OUT_ZOMBIES] !== 0) {
      c.reap();
      forgot = true;
    }
    if (forgot) refresh();
    if (got === m) {
      chunk = Math.min(SUBMIT_PER_CHUNK, 2 * chunk);
      continue;
    }
    chunk = Math.min(SUBMIT_PER_CHUNK, Math.max(SUBMIT_MIN_CHUNK, 4 * got));
    if (got > 0 && results[ran - 1] === -Errno.ENOMEM) break;
    // Request `ran` is a bind whose VmBo went earlier in the chunk (reaped
    // above) or was never kept: its BO has none now, so the next chunk, which
    // starts with it, has the engine make one (markMakes), as bind would.
    const b = table[bo[ran]] as Bo;
    const vb = boState(b).vmBos.get(c.vm);
    if (vb !== undefined) throw new GpuVmError('EIO', `submit: the engine refused the live VmBo of ${b.name} at request ${ran}`);
    if (handles[bo[ran]] !== NO_VMBO) refresh(); // (a handle of a VmBo the facade no longer has)
  }
  if (changed) {
    c.listGen++;
    c.mod++;
  }
  return ran;
}

/** Per entry of a BO table, the index of the first entry holding the same BO. */
function firstEntries(table: readonly (Bo | null)[]): Int32Array {
  const first = new Map<Bo | null, number>();
  const out = new Int32Array(table.length);
  for (let j = 0; j < table.length; j++) {
    const at = first.get(table[j]);
    if (at === undefined) first.set(table[j], j);
    out[j] = at ?? j;
  }
  return out;
}

/**
 * The binds of chunk [from, from + m) whose BO has no VmBo yet (handle
 * NO_VMBO): the first of each BO makes it (SUBMIT_MAKE, word 1 the BO id),
 * the others name that record (SUBMIT_SAME). Their indexes go to `makes`;
 * makeAt (by first table entry, all -1 between calls) is left as it came.
 */
function markMakes(
  io: Uint32Array,
  reqs: BindRequestsImpl<U64>,
  table: readonly (Bo | null)[],
  handles: Uint32Array,
  canon: Int32Array,
  makeAt: Int32Array,
  makes: number[],
  from: number,
  m: number,
): void {
  const { kind, bo } = reqs;
  for (let j = 0, i = from; j < m; j++, i++) {
    if (kind[i] !== BIND) continue;
    const b = bo[i];
    if (b < 0 || handles[b] !== NO_VMBO) continue;
    const p = D + j * SUBMIT_WORDS;
    const c = canon[b];
    const at = makeAt[c];
    if (at < 0) {
      makeAt[c] = j;
      makes.push(j);
      io[p] |= SUBMIT_MAKE;
      io[p + 1] = (table[b] as Bo).id;
    } else {
      io[p] |= SUBMIT_SAME;
      io[p + 1] = at;
    }
  }
  for (const j of makes) makeAt[canon[bo[from + j]]] = -1;
}

/** Number mode: doubles below 2^53 split into u32 halves. */
function writeNumbers(io: Uint32Array, reqs: BindRequestsImpl<U64>, handles: Uint32Array, from: number, m: number): void {
  const { kind, bo } = reqs;
  const addr = reqs.addr as Float64Array;
  const range = reqs.range as Float64Array;
  const offset = reqs.offset as Float64Array;
  for (let j = 0, i = from; j < m; j++, i++) {
    const p = D + j * SUBMIT_WORDS;
    const k = kind[i];
    const a = addr[i];
    const r = range[i];
    io[p] = k;
    io[p + 2] = a >>> 0;
    io[p + 3] = (a / TWO32) >>> 0;
    io[p + 4] = r >>> 0;
    io[p + 5] = (r / TWO32) >>> 0;
    if (k === BIND) {
      const b = bo[i];
      const o = offset[i];
      io[p + 1] = b < 0 ? 0 : handles[b];
      io[p + 6] = o >>> 0;
      io[p + 7] = (o / TWO32) >>> 0;
    }
  }
}

/** Bigint mode on a little-endian host: the u64 columns' own words. */
function writeWords(io: Uint32Array, reqs: BindRequestsImpl<U64>, w: U64Words, handles: Uint32Array, from: number, m: number): void {
  const { kind, bo } = reqs;
  const { addr, range, offset } = w;
  for (let j = 0, i = from; j < m; j++, i++) {
    const p = D + j * SUBMIT_WORDS;
    const k = kind[i];
    const q = 2 * i;
    io[p] = k;
    io[p + 2] = addr[q];
    io[p + 3] = addr[q + 1];
    io[p + 4] = range[q];
    io[p + 5] = range[q + 1];
    if (k === BIND) {
      const b = bo[i];
      io[p + 1] = b < 0 ? 0 : handles[b];
      io[p + 6] = offset[q];
      io[p + 7] = offset[q + 1];
    }
  }
}

/** Bigint mode elsewhere. */
function writeBig(io: Uint32Array, reqs: BindRequestsImpl<U64>, handles: Uint32Array, from: number, m: number): void {
  const { kind, bo } = reqs;
  const addr = reqs.addr as BigUint64Array;
  const range = reqs.range as BigUint64Array;
  const offset = reqs.offset as BigUint64Array;
  const put = (p: number, v: bigint): void => {
    io[p] = Number(v & 0xffff_ffffn);
    io[p + 1] = Number(v >> 32n);
  };
  for (let j = 0, i = from; j < m; j++, i++) {
    const p = D + j * SUBMIT_WORDS;
    const k = kind[i];
    io[p] = k;
    put(p + 2, addr[i]);
    put(p + 4, range[i]);
    if (k === BIND) {
      const b = bo[i];
      io[p + 1] = b < 0 ? 0 : handles[b];
      put(p + 6, offset[i]);
    }
  }
}
