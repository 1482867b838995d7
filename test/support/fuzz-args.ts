/**
 * Argument descriptors for the fuzzer: plain data (so fast-check can
 * generate and shrink them, and every engine's world gets the same call),
 * turned into real arguments per world. A descriptor also says what the
 * argument is worth: a u64, "bad" (a TypeError/RangeError is due), or
 * "throws" (a getter of ours throws; that error must reach the caller).
 */
import fc from 'fast-check';
import { FuzzUserError, PG, SHAPES, type FuzzWorld } from './fuzz-world.js';

/** What a getter does before returning its value: nothing, a lookup on a VM or page table (re-entry), or throw. */
export type Act = 'none' | 'findA' | 'findB' | 'translate' | 'iterate' | 'throw';

export type Num =
  | { k: 'at'; n: number } // VM start + n pages (for page tables: n pages)
  | { k: 'pg'; n: number } // n pages
  | { k: 'lit'; v: bigint } // a literal u64 (or not: huge values)
  | { k: 'asNum'; inner: Num } // a bigint VM given a number
  | { k: 'bad'; v: 'NaN' | 'neg' | 'frac' | 'inf' | '2^53+1' | 'negBig' | 'big2^64' | 'str' | 'null' | 'undef' | 'obj' | 'bool' };

export type Field = { num: Num; act: Act };

export const bads = ['NaN', 'neg', 'frac', 'inf', '2^53+1', 'negBig', 'big2^64', 'str', 'null', 'undef', 'obj', 'bool'] as const;

const litU64 = fc.oneof(
  fc.constantFrom(0n, 1n, PG - 1n, (1n << 53n) - 1n, 1n << 53n, (1n << 64n) - 1n, (1n << 64n) - PG, 1n << 32n),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
);

export const numArb = (kind: 'addr' | 'size'): fc.Arbitrary<Num> =>
  fc.oneof(
    { weight: 14, arbitrary: kind === 'addr' ? fc.integer({ min: -2, max: 66 }).map((n) => ({ k: 'at', n }) as Num) : fc.integer({ min: 0, max: 10 }).map((n) => ({ k: 'pg', n }) as Num) },
    { weight: 3, arbitrary: kind === 'addr' ? fc.integer({ min: 0, max: 10 }).map((n) => ({ k: 'pg', n }) as Num) : fc.integer({ min: 60, max: 70 }).map((n) => ({ k: 'pg', n }) as Num) },
    { weight: 1, arbitrary: litU64.map((v) => ({ k: 'lit', v }) as Num) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 66 }).map((n) => ({ k: 'asNum', inner: { k: 'at', n } }) as Num) },
    { weight: 2, arbitrary: fc.constantFrom(...bads).map((v) => ({ k: 'bad', v }) as Num) },
  );

const actArb: fc.Arbitrary<Act> = fc.oneof(
  { weight: 12, arbitrary: fc.constant('none' as Act) },
  { weight: 3, arbitrary: fc.constantFrom<Act>('findA', 'findB', 'translate', 'iterate') },
  { weight: 1, arbitrary: fc.constant('throw' as Act) },
);

export const fieldArb = (kind: 'addr' | 'size'): fc.Arbitrary<Field> => fc.record({ num: numArb(kind), act: actArb });

/** A value as a world sees it: `v` the argument, `u` the u64 it means, or why it is not one. */
export interface Val {
  v: unknown;
  u: bigint | null;
  bad: boolean;
  throws: boolean;
}

/** Runs a getter's side effect (re-entry into gpuvm; errors of the lookup itself are swallowed). */
export function act(w: FuzzWorld, a: Act, where: string): void {
  switch (a) {
    case 'none':
      return;
    case 'throw':
      throw new FuzzUserError(where);
    case 'findA':
    case 'findB':
      try {
        const vm = w.vms[a === 'findA' ? 0 : 1];
        const s = SHAPES[a === 'findA' ? 0 : 1];
        const n = (x: bigint) => (s.bigint ? x : Number(x));
        vm.findFirst(n(s.start + 8n * PG), n(16n * PG));
        vm.isEmpty(n(s.start), n(PG));
      } catch {
        // a destroyed VM: the re-entry still wrote io
      }
      return;
    case 'translate':
      try {
        w.pts[0].translate(0x3000);
        w.pts[1].translate(0x201000n);
      } catch {
        // destroyed
      }
      return;
    case 'iterate':
      try {
        for (const va of w.vms[1].mappings()) void va.addr;
      } catch {
        // destroyed
      }
      return;
  }
}

/** Turns a descriptor into a value for a VM (or page table) of shape `big` with base `start`. */
export function val(n: Num, big: boolean, start: bigint): Val {
  const u = (x: bigint): Val => {
    if (x < 0n || x >= 1n << 64n) return { v: big ? x : Number(x), u: null, bad: true, throws: false };
    if (!big && x > BigInt(Number.MAX_SAFE_INTEGER)) return { v: x, u: null, bad: true, throws: false };
    return { v: big ? x : Number(x), u: x, bad: false, throws: false };
  };
  switch (n.k) {
    case 'at':
      return u(start + BigInt(n.n) * PG);
    case 'pg':
      return u(BigInt(n.n) * PG);
    case 'lit':
      return u(n.v);
    case 'asNum': {
      const x = val(n.inner, big, start);
      if (x.u === null || x.u > BigInt(Number.MAX_SAFE_INTEGER)) return { v: Number(x.u ?? 0n) + 0.5, u: null, bad: true, throws: false };
      return { v: Number(x.u), u: x.u, bad: false, throws: false };
    }
    case 'bad': {
      const table: Record<string, unknown> = {
        NaN: NaN,
        neg: -4096,
        frac: 4096.5,
        inf: Infinity,
        '2^53+1': 2 ** 53 + 2, // the nearest double above 2^53 (2^53 + 1 is not one)
        negBig: -1n,
        'big2^64': 1n << 64n,
        str: '4096',
        null: null,
        undef: undefined,
        obj: { valueOf: () => 4096 },
        bool: true,
      };
      return { v: table[n.v], u: null, bad: true, throws: false };
    }
  }
}

/**
 * Builds an object with the given fields; each field with an action gets a
 * getter that runs it. Returns the object and the fields' values.
 */
export function objectOf(
  w: FuzzWorld,
  fields: Record<string, Field | undefined>,
  big: boolean,
  start: bigint,
  extra: Record<string, unknown> = {},
): { obj: Record<string, unknown>; vals: Record<string, Val> } {
  const obj: Record<string, unknown> = { ...extra };
  const vals: Record<string, Val> = {};
  for (const [k, f] of Object.entries(fields)) {
    if (f === undefined) continue;
    const x = val(f.num, big, start);
    vals[k] = f.act === 'throw' ? { ...x, throws: true } : x;
    if (f.act === 'none') obj[k] = x.v;
    else
      Object.defineProperty(obj, k, {
        enumerable: true,
        get: () => {
          act(w, f.act, `getter ${k}`);
          return x.v;
        },
      });
  }
  return { obj, vals };
}

/** What a set of arguments asks of the call: all good, some bad, or one of our getters throws. */
export function verdict(vals: Val[]): 'ok' | 'bad' | 'throws' | 'bad-or-throws' {
  const bad = vals.some((x) => x.bad);
  const thr = vals.some((x) => x.throws);
  if (bad && thr) return 'bad-or-throws';
  if (thr) return 'throws';
  return bad ? 'bad' : 'ok';
}

export { fc };
