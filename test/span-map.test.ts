/**
 * Span maps (src/backend/span-engine.ts, src/svm/span-map.ts) on every
 * engine: fast-check command sequences and long seeded streams against a
 * sorted-array model (every result, and the whole map after each step), the
 * same streams on native and WASM side by side (identical tree node counts),
 * u64 edges through raw engine calls, ENOMEM with nothing changed, use after
 * destroy, reclaiming dropped maps, and the bytes an entry costs.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { IO, type Engine } from '../src/backend/engine.js';
import { loadEngine } from '../src/backend/loader.js';
import {
  SPAN_ENTRY_WORDS,
  SPAN_MAP_BYTES,
  SPAN_MERGE,
  SPAN_NODE_BYTES,
  SPAN_RECORD_BYTES,
  SPANS_PER_CHUNK,
} from '../src/backend/span-engine.js';
import { GpuVmError } from '../src/errors.js';
import { SpanMap, type SpanEntry } from '../src/svm/span-map.js';
import { backends } from './support/engines.js';

// ---------------------------------------------------------------------------
// The model: entries sorted by start, all values below 2^53.

class SpanModel {
  entries: SpanEntry[] = [];

  private overlapping(s: number, e: number): SpanEntry[] {
    return this.entries.filter((x) => x.start < e && x.end > s);
  }

  insert(s: number, e: number, tag: number, aux: number): string {
    if (e <= s) return 'EINVAL';
    if (this.overlapping(s, e).length > 0) return 'EEXIST';
    this.entries.push({ start: s, end: e, tag, aux });
    this.sort();
    return 'ok';
  }

  remove(start: number): boolean {
    const i = this.entries.findIndex((x) => x.start === start);
    if (i < 0) return false;
    this.entries.splice(i, 1);
    return true;
  }

  find(p: number): SpanEntry | null {
    return this.entries.find((x) => x.start <= p && p < x.end) ?? null;
  }

  seek(s: number, e: number): SpanEntry | null {
    if (e <= s) return null;
    return this.overlapping(s, e)[0] ?? null;
  }

  list(s: number, e: number): SpanEntry[] {
    if (e <= s) return [];
    return this.overlapping(s, e).map((x) => ({ ...x }));
  }

  assign(s: number, e: number, tag: number, aux: number, merge: boolean): string {
    if (e <= s) return 'EINVAL';
    const out: SpanEntry[] = [];
    for (const x of this.entries) {
      if (x.end <= s || x.start >= e) {
        out.push(x);
        continue;
      }
      if (x.start < s) out.push({ start: x.start, end: s, tag: x.tag, aux: x.aux });
      if (x.end > e) out.push({ start: e, end: x.end, tag: x.tag, aux: x.aux + (e - x.start) });
    }
    this.entries = out;
    this.sort();
    if (tag === 0) return 'ok';
    const left = merge ? this.entries.find((x) => x.end === s && x.tag === tag && x.aux + (s - x.start) === aux) : undefined;
    const right = merge ? this.entries.find((x) => x.start === e && x.tag === tag && aux + (e - s) === x.aux) : undefined;
    let end = e;
    if (right) {
      end = right.end;
      this.entries.splice(this.entries.indexOf(right), 1);
    }
    if (left) {
      left.end = end;
    } else {
      this.entries.push({ start: s, end, tag, aux });
      this.sort();
    }
    return 'ok';
  }

  private sort(): void {
    this.entries.sort((a, b) => a.start - b.start);
  }
}

// ---------------------------------------------------------------------------
// Commands, run on the model and on maps of several engines at once.

type Cmd =
  | { op: 'insert'; s: number; e: number; tag: number; aux: number }
  | { op: 'remove'; s: number }
  | { op: 'assign'; s: number; e: number; tag: number; aux: number; merge: boolean }
  | { op: 'find'; s: number }
  | { op: 'seek'; s: number; e: number }
  | { op: 'list'; s: number; e: number };

function code(f: () => void): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    if (err instanceof GpuVmError) return err.code;
    throw err;
  }
}

function found(m: SpanMap, hit: boolean): SpanEntry | null {
  return hit ? { start: m.start, end: m.end, tag: m.tag, aux: m.aux } : null;
}

/** Runs one command on the model and on every map; every result must agree. */
function step(model: SpanModel, maps: SpanMap[], c: Cmd): void {
  switch (c.op) {
    case 'insert': {
      const want = model.insert(c.s, c.e, c.tag, c.aux);
      for (const m of maps) expect(code(() => m.insert(c.s, c.e, c.tag, c.aux))).toBe(want);
      break;
    }
    case 'remove': {
      const want = model.remove(c.s);
      for (const m of maps) expect(m.remove(c.s)).toBe(want);
      break;
    }
    case 'assign': {
      const want = model.assign(c.s, c.e, c.tag, c.aux, c.merge);
      for (const m of maps) expect(code(() => m.assign(c.s, c.e, c.tag, c.aux, c.merge))).toBe(want);
      break;
    }
    case 'find': {
      const want = model.find(c.s);
      for (const m of maps) expect(found(m, m.find(c.s))).toEqual(want);
      break;
    }
    case 'seek': {
      if (c.e < c.s) {
        for (const m of maps) expect(code(() => m.seek(c.s, c.e))).toBe('EINVAL');
        break;
      }
      const want = model.seek(c.s, c.e);
      for (const m of maps) expect(found(m, m.seek(c.s, c.e))).toEqual(want);
      break;
    }
    case 'list': {
      if (c.e < c.s) {
        for (const m of maps) expect(code(() => m.list(c.s, c.e))).toBe('EINVAL');
        break;
      }
      const want = model.list(c.s, c.e);
      for (const m of maps) expect(m.list(c.s, c.e)).toEqual(want);
      break;
    }
  }
}

function checkWhole(model: SpanModel, maps: SpanMap[]): void {
  for (const m of maps) {
    expect(m.list(0, 2 ** 53 - 1)).toEqual(model.entries);
    expect(m.count).toBe(model.entries.length);
  }
  // The engines build the same trees.
  const stats = maps.map((m) => m.stats());
  for (const s of stats) expect(s).toEqual(stats[0]);
}

// Coordinates cluster around a few bases (across 2^32, near 2^52) so that
// commands overlap; aux values stay small enough that aux + length < 2^53.
const BASES = [0, 1000, 2 ** 32 - 24, 2 ** 52 - 64];
const AUX = [0, 7, 2 ** 32 - 3, 2 ** 40 + 5, 2 ** 51];
const arbPoint = fc.tuple(fc.constantFrom(...BASES), fc.integer({ min: 0, max: 48 })).map(([b, o]) => b + o);
const arbRange = fc.tuple(arbPoint, fc.integer({ min: -2, max: 24 })).map(([s, l]) => [s, Math.max(0, s + l)] as const);
const arbTag = fc.integer({ min: 0, max: 3 });
const arbAux = fc.oneof(fc.constantFrom(...AUX), fc.integer({ min: 0, max: 64 }));
const arbCmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ r: arbRange, tag: arbTag, aux: arbAux }).map(({ r, tag, aux }) => ({ op: 'insert' as const, s: r[0], e: r[1], tag, aux })) },
  { weight: 1, arbitrary: arbPoint.map((s) => ({ op: 'remove' as const, s })) },
  {
    weight: 5,
    arbitrary: fc
      .record({ r: arbRange, tag: arbTag, aux: arbAux, merge: fc.boolean() })
      .map(({ r, tag, aux, merge }) => ({ op: 'assign' as const, s: r[0], e: r[1], tag, aux, merge })),
  },
  { weight: 1, arbitrary: arbPoint.map((s) => ({ op: 'find' as const, s })) },
  { weight: 1, arbitrary: arbRange.map(([s, e]) => ({ op: 'seek' as const, s, e })) },
  { weight: 1, arbitrary: arbRange.map(([s, e]) => ({ op: 'list' as const, s, e })) },
);

/** A mulberry32 stream for long runs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Commands over a window of `width` units at `base`, mostly assigns of
 * short runs with aux continuing linearly (so merges happen), enough of them
 * to build trees several levels deep and to shrink them again.
 */
function stream(seed: number, n: number, base: number, width: number): Cmd[] {
  const r = prng(seed);
  const int = (k: number) => Math.floor(r() * k);
  const out: Cmd[] = [];
  for (let i = 0; i < n; i++) {
    const s = base + int(width);
    const len = 1 + int(r() < 0.9 ? 6 : 200);
    const e = s + len;
    const tag = int(4);
    // aux linear in the address for most, so neighbours may merge
    const aux = r() < 0.7 ? s - base + 2 ** 40 * tag : int(1000);
    const k = r();
    if (k < 0.55) out.push({ op: 'assign', s, e, tag: r() < 0.15 ? 0 : tag, aux, merge: r() < 0.6 });
    else if (k < 0.75) out.push({ op: 'insert', s, e, tag, aux });
    else if (k < 0.82) out.push({ op: 'remove', s });
    else if (k < 0.88) out.push({ op: 'find', s });
    else if (k < 0.94) out.push({ op: 'seek', s, e });
    else out.push({ op: 'list', s, e });
  }
  return out;
}

// ---------------------------------------------------------------------------

const open: SpanMap[] = [];
function newMap(E: Engine): SpanMap {
  const m = new SpanMap(E);
  open.push(m);
  return m;
}
afterEach(() => {
  for (const m of open.splice(0)) m.destroy();
});

/** Raw engine access for what the wrapper cannot say (u64 beyond 2^53). */
function put64(io: Uint32Array, i: number, v: bigint): void {
  io[i] = Number(v & 0xffffffffn);
  io[i + 1] = Number((v >> 32n) & 0xffffffffn);
}
function get64(io: Uint32Array, i: number): bigint {
  return BigInt(io[i]) | (BigInt(io[i + 1]) << 32n);
}
function rawAssign(E: Engine, h: number, s: bigint, e: bigint, tag: number, aux: bigint, flags: number): number {
  const io = E.io();
  put64(io, IO.ARG, s);
  put64(io, IO.ARG + 2, e);
  io[IO.ARG + 4] = tag;
  put64(io, IO.ARG + 5, aux);
  io[IO.ARG + 7] = flags;
  return E.spanAssign(h);
}
function rawList(E: Engine, h: number, s: bigint, e: bigint): { start: bigint; end: bigint; tag: number; aux: bigint }[] {
  let io = E.io();
  put64(io, IO.ARG, s);
  put64(io, IO.ARG + 2, e);
  const n = E.spanList(h, SPANS_PER_CHUNK);
  expect(n).toBeGreaterThanOrEqual(0);
  io = E.io();
  const out = [];
  for (let i = 0; i < n; i++) {
    const w = IO.DATA + i * SPAN_ENTRY_WORDS;
    out.push({ start: get64(io, w), end: get64(io, w + 2), tag: io[w + 4], aux: get64(io, w + 5) });
    expect(io[w + 7]).toBe(0);
  }
  return out;
}

function memUsed(E: Engine): bigint {
  expect(E.memStats()).toBe(0);
  const io = E.io();
  return BigInt(io[IO.OUT_INFO]) | (BigInt(io[IO.OUT_INFO + 1]) << 32n);
}
function setLimit(E: Engine, bytes: bigint): void {
  const io = E.io();
  put64(io, IO.ARG, bytes);
  expect(E.memSetLimit()).toBe(0);
}

for (const backend of backends) {
  describe(`span maps on ${backend}`, () => {
    const E = loadEngine(backend);
    afterEach(() => setLimit(E, 0n));

    it('fast-check command sequences agree with the model after every step', () => {
      fc.assert(
        fc.property(fc.array(arbCmd, { minLength: 1, maxLength: 60 }), (cmds) => {
          const model = new SpanModel();
          const m = new SpanMap(E);
          try {
            for (const c of cmds) {
              step(model, [m], c);
              checkWhole(model, [m]);
            }
          } finally {
            m.destroy();
          }
        }),
        { numRuns: 300, seed: 0x5ba9 },
      );
    });

    it('long seeded streams (deep trees, splits and merges) agree with the model', () => {
      for (const [seed, base] of [
        [1, 0],
        [2, 2 ** 32 - 3000],
        [3, 2 ** 52 - 5000],
      ] as const) {
        const model = new SpanModel();
        const m = newMap(E);
        const cmds = stream(seed, 6000, base, 4000);
        let deepest = 0;
        cmds.forEach((c, i) => {
          step(model, [m], c);
          if (i % 250 === 0) checkWhole(model, [m]);
          deepest = Math.max(deepest, m.stats().nodes);
        });
        checkWhole(model, [m]);
        expect(deepest).toBeGreaterThan(17); // more than a root and its 16 leaves: three levels
        // clearing everything returns the tree to one empty leaf
        m.assign(base, base + 5000, 0, 0, false);
        expect(m.stats()).toEqual({ entries: 0, nodes: 1, bytes: SPAN_MAP_BYTES + SPAN_NODE_BYTES });
      }
    });

    it('assign: cuts, aux of the right piece, merges', () => {
      const m = newMap(E);
      m.insert(10, 20, 1, 100);
      m.assign(12, 15, 2, 7, false); // punch a hole of another tag
      expect(m.list(0, 100)).toEqual([
        { start: 10, end: 12, tag: 1, aux: 100 },
        { start: 12, end: 15, tag: 2, aux: 7 },
        { start: 15, end: 20, tag: 1, aux: 105 },
      ]);
      m.assign(12, 15, 1, 102, true); // back, linear: one entry again
      expect(m.list(0, 100)).toEqual([{ start: 10, end: 20, tag: 1, aux: 100 }]);
      m.assign(12, 15, 1, 999, true); // not linear: no merge
      expect(m.count).toBe(3);
      m.assign(0, 100, 0, 0, false);
      expect(m.count).toBe(0);
      // merge only when asked
      m.assign(0, 4, 3, 0, false);
      m.assign(4, 8, 3, 4, false);
      expect(m.count).toBe(2);
      m.assign(8, 12, 3, 8, true);
      expect(m.list(0, 100)).toEqual([
        { start: 0, end: 4, tag: 3, aux: 0 },
        { start: 4, end: 12, tag: 3, aux: 4 },
      ]);
      // tag 0 clears and never merges; clearing nothing is fine
      m.assign(50, 60, 0, 0, true);
      expect(m.count).toBe(2);
      expect(code(() => m.assign(5, 5, 1, 0, false))).toBe('EINVAL');
      expect(code(() => m.insert(5, 4, 1, 0))).toBe('EINVAL');
      expect(code(() => m.insert(11, 13, 1, 0))).toBe('EEXIST');
      expect(m.seek(4, 4)).toBe(false);
      expect(m.list(4, 4)).toEqual([]);
    });

    it('u64 edges: ends up to 2^64 - 1, aux wraps mod 2^64, unknown flags and bad ranges', () => {
      const h = E.spanCreate();
      expect(h).toBeGreaterThan(0);
      try {
        const top = (1n << 64n) - 1n;
        expect(rawAssign(E, h, top - 100n, top, 5, top - 10n, 0)).toBe(0);
        // cut [top - 60, top - 40): the right piece's aux wraps
        expect(rawAssign(E, h, top - 60n, top - 40n, 0, 0n, 0)).toBe(0);
        expect(rawList(E, h, 0n, top)).toEqual([
          { start: top - 100n, end: top - 60n, tag: 5, aux: top - 10n },
          { start: top - 40n, end: top, tag: 5, aux: 49n }, // top - 10 + 60 mod 2^64
        ]);
        // merging across the wrap: left aux + 40 == (top - 10 + 40) mod 2^64 = 29
        expect(rawAssign(E, h, top - 60n, top - 40n, 5, 29n, SPAN_MERGE)).toBe(0);
        expect(rawList(E, h, 0n, top)).toEqual([{ start: top - 100n, end: top, tag: 5, aux: top - 10n }]);
        let io = E.io();
        put64(io, IO.ARG, top - 1n);
        expect(E.spanFind(h)).toBe(1);
        io = E.io();
        expect(get64(io, IO.OUT)).toBe(top - 100n);
        put64(io, IO.ARG, top);
        expect(E.spanFind(h)).toBe(0);
        // seek / list with e < s are EINVAL, e == s nothing
        put64(io, IO.ARG, 10n);
        put64(io, IO.ARG + 2, 5n);
        expect(E.spanSeek(h)).toBe(-22);
        expect(E.spanList(h, 10)).toBe(-22);
        put64(io, IO.ARG + 2, 10n);
        expect(E.spanSeek(h)).toBe(0);
        expect(E.spanList(h, 10)).toBe(0);
        expect(rawAssign(E, h, 0n, 10n, 1, 0n, 2)).toBe(-22);
        expect(rawAssign(E, h, 10n, 10n, 1, 0n, 0)).toBe(-22);
        expect(rawAssign(E, h, 0n, 1n << 32n, 1, 0n, 0)).toBe(0);
        expect(E.spanStats(h)).toBe(2);
        // max caps the chunk
        put64(io, IO.ARG, 0n);
        put64(io, IO.ARG + 2, top);
        expect(E.spanList(h, 1)).toBe(1);
        expect(E.spanList(h, 0)).toBe(0);
      } finally {
        expect(E.spanDestroy(h)).toBe(0);
      }
    });

    it('list comes in chunks and the wrapper continues past them', () => {
      const m = newMap(E);
      const n = SPANS_PER_CHUNK * 2 + 17;
      for (let i = 0; i < n; i++) m.insert(2 ** 33 + 3 * i, 2 ** 33 + 3 * i + 2, 1 + (i & 7), i);
      const all = m.list(0, 2 ** 53);
      expect(all.length).toBe(n);
      expect(all[n - 1]).toEqual({ start: 2 ** 33 + 3 * (n - 1), end: 2 ** 33 + 3 * (n - 1) + 2, tag: 1 + ((n - 1) & 7), aux: n - 1 });
      // starting inside an entry includes it
      expect(m.list(2 ** 33 + 1, 2 ** 33 + 4).map((x) => x.start)).toEqual([2 ** 33, 2 ** 33 + 3]);
    });

    it('bytes per entry: a map reports its record, nodes and side records', () => {
      const m = newMap(E);
      const n = 20000;
      for (let i = 0; i < n; i++) m.insert(2 * i, 2 * i + 1, 1, i);
      const asc = m.stats();
      expect(asc.entries).toBe(n);
      expect(asc.bytes).toBe(SPAN_MAP_BYTES + asc.nodes * SPAN_NODE_BYTES + n * SPAN_RECORD_BYTES);
      // ascending inserts leave leaves half full: about 16 + 384 / 8 bytes an entry
      expect(asc.bytes / n).toBeLessThan(72);
      const r = newMap(E);
      const order = Array.from({ length: n }, (_, i) => i);
      const rnd = prng(9);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      for (const i of order) r.insert(2 * i, 2 * i + 1, 1, i);
      expect(r.stats().bytes / n).toBeLessThan(72);
    });

    it('ENOMEM under the engine memory limit, with nothing changed, then on', () => {
      const m = newMap(E);
      for (let i = 0; i < 100; i++) m.insert(10 * i, 10 * i + 8, 1, 0);
      // Pools never shrink: first use up what earlier tests left free.
      setLimit(E, memUsed(E));
      let filled = 0;
      while (code(() => m.insert(2 ** 40 + 2 * filled, 2 ** 40 + 2 * filled + 1, 2, filled)) === 'ok') filled++;
      expect(m.count).toBe(100 + filled);
      const snap = () => [m.list(0, 2 ** 53), m.stats()];
      const before = snap();
      const refused = (f: () => void) => {
        expect(code(f)).toBe('ENOMEM');
        expect(snap()).toEqual(before);
      };
      refused(() => m.insert(2 ** 41, 2 ** 41 + 1, 2, 0));
      // a hole inside an entry: the piece right of it and the new entry
      refused(() => m.assign(3, 4, 3, 0, false));
      refused(() => m.assign(3, 4, 0, 0, false));
      // merging needs nothing new, but the check comes first
      refused(() => m.assign(8, 10, 1, 8, true));
      const maps: SpanMap[] = [];
      try {
        for (;;) {
          const c = code(() => maps.push(new SpanMap(E)));
          if (c === 'ok') continue;
          expect(c).toBe('ENOMEM');
          break;
        }
      } finally {
        for (const x of maps) x.destroy();
      }
      expect(snap()).toEqual(before);
      // lookups, removal and clearing whole entries need no storage
      expect(m.find(3)).toBe(true);
      expect(m.remove(0)).toBe(true);
      m.assign(10, 18, 0, 0, false);
      expect(m.count).toBe(98 + filled);
      setLimit(E, 0n);
      m.assign(3 + 20, 4 + 20, 3, 0, false);
      m.insert(2 ** 45, 2 ** 45 + 1, 1, 0);
      expect(m.count).toBe(101 + filled);
    });

    it('destroyed maps: EINVAL from the engine and from the wrapper', () => {
      const h = E.spanCreate();
      expect(E.spanDestroy(h)).toBe(0);
      expect(E.spanDestroy(h)).toBe(-22);
      const io = E.io();
      put64(io, IO.ARG, 0n);
      put64(io, IO.ARG + 2, 1n);
      for (const f of [E.spanInsert, E.spanRemove, E.spanFind, E.spanSeek, E.spanAssign, E.spanStats]) expect(f(h)).toBe(-22);
      expect(E.spanList(h, 1)).toBe(-22);
      expect(E.spanStats(0)).toBe(-22);
      expect(E.spanStats(0x7fffffff)).toBe(-22);
      const m = new SpanMap(E);
      m.insert(0, 1, 1, 0);
      m.destroy();
      m.destroy();
      expect(m.destroyed).toBe(true);
      for (const f of [() => m.find(0), () => m.insert(2, 3, 1), () => m.list(0, 1), () => m.count, () => m.stats()]) {
        expect(code(f)).toBe('EINVAL');
      }
    });

    it('a dropped map gives its storage back when collected', async () => {
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as () => void;
      const handles: number[] = [];
      (() => {
        for (let i = 0; i < 20; i++) {
          const m = new SpanMap(E);
          m.insert(0, 10, 1, 0);
          handles.push((m as unknown as { handle: number }).handle);
        }
      })();
      for (let round = 0; round < 50 && handles.some((h) => E.spanStats(h) >= 0); round++) {
        gc();
        await new Promise((r) => setTimeout(r, 10));
      }
      for (const h of handles) expect(E.spanStats(h)).toBe(-22);
    });
  });
}

describe.runIf(backends.length === 2)('span maps: native and WASM agree', () => {
  it('the same commands give the same results and the same trees', () => {
    const engines = backends.map((b) => loadEngine(b));
    fc.assert(
      fc.property(fc.array(arbCmd, { minLength: 1, maxLength: 80 }), (cmds) => {
        const model = new SpanModel();
        const maps = engines.map((E) => new SpanMap(E));
        try {
          for (const c of cmds) {
            step(model, maps, c);
            checkWhole(model, maps);
          }
        } finally {
          for (const m of maps) m.destroy();
        }
      }),
      { numRuns: 150, seed: 0xa9ee },
    );
    for (const seed of [21, 22]) {
      const model = new SpanModel();
      const maps = engines.map((E) => newMap(E));
      stream(seed, 5000, 2 ** 32 - 2000, 3000).forEach((c, i) => {
        step(model, maps, c);
        if (i % 100 === 0) checkWhole(model, maps);
      });
      checkWhole(model, maps);
    }
  });
});
