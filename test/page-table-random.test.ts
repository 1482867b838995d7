/**
 * Seeded random streams (binds with fragmented backing, null binds, unbinds,
 * zaps, rebinds) on every engine: after every command translate agrees with
 * a page-by-page model, no empty non-root table is left, costs are sane and
 * a bind never uses more than 2 x levels + 1 update records. Then the same
 * streams on native and WASM side by side: identical costs, dumps, table
 * handles and stats.
 */
import { describe, expect, it } from 'vitest';
import { availableBackends, type BackendName } from '../src/backend/loader.js';
import { PageTable, type PtCost } from '../src/page-table.js';
import { backends } from './support/engines.js';
import { makeStream, PtModel, prng, type StreamOp, type StreamOptions } from './page-table-model.js';

interface Config {
  name: string;
  shifts: number[];
  leaf: number;
  window: bigint;
  ops: number;
  seeds: number[];
  /** compact 64 KiB tables: the model then only knows physical addresses, not leaf sizes */
  compact?: boolean;
  stream?: StreamOptions;
}

const configs: Config[] = [
  { name: '3-bit levels 12 15 18 21', shifts: [12, 15, 18, 21], leaf: 2, window: 1n << 24n, ops: 400, seeds: [1, 2, 3] },
  { name: '2-bit levels, 5 levels, leaf=3', shifts: [12, 14, 16, 18, 20], leaf: 3, window: 1n << 22n, ops: 400, seeds: [4, 5] },
  { name: 'leaves only at level 0', shifts: [12, 14, 16, 18], leaf: 0, window: 1n << 20n, ops: 300, seeds: [6] },
  { name: 'default geometry, 16 MiB window', shifts: [12, 21, 30, 39], leaf: 2, window: 1n << 24n, ops: 150, seeds: [7] },
  { name: 'root leaves (leaf = top)', shifts: [12, 13, 15, 16], leaf: 3, window: 1n << 17n, ops: 300, seeds: [8] },
  { name: 'byte-sized pages (shifts 0 3 6 9)', shifts: [0, 3, 6, 9], leaf: 2, window: 1n << 12n, ops: 300, seeds: [11] },
  {
    name: 'the top of u64 (shifts 52 56 60, span 2^64)',
    shifts: [52, 56, 60],
    leaf: 1,
    window: 1n << 64n,
    ops: 300,
    seeds: [12],
  },
  {
    name: 'compact 64 KiB tables',
    shifts: [12, 21, 30, 39],
    leaf: 2,
    window: 1n << 24n,
    ops: 200,
    seeds: [9, 10],
    compact: true,
    stream: { noZap: true, grain: 16 },
  },
];

function apply(pt: PageTable<bigint>, op: StreamOp): PtCost {
  if (op.kind === 'bind') return pt.bind(op.va, op.size, op.backing && op.backing.map((s) => ({ pa: s.pa, len: s.len })));
  if (op.kind === 'unbind') return pt.unbind(op.va, op.size);
  return pt.zap(op.va, op.size);
}

function modelApply(m: PtModel, op: StreamOp): void {
  if (op.kind === 'bind') m.bind(op.va, op.size, op.backing);
  else if (op.kind === 'unbind') m.unbind(op.va, op.size);
  else m.zap(op.va, op.size);
}

describe.each(backends)('random page-table streams on %s', (backend) => {
  it.each(configs.flatMap((c) => c.seeds.map((seed) => [c.name, seed, c] as const)))(
    '%s, seed %d: translate agrees with the model after every command',
    (_name, seed, c) => {
      const pt = new PageTable<bigint>({ shifts: c.shifts, leaf: c.leaf, compact: c.compact, bigint: true, backend });
      const model = new PtModel(c.shifts, c.leaf);
      const ops = makeStream(seed, c.ops, c.shifts, c.window, c.stream);
      const page = 1n << BigInt(c.shifts[0]);
      const npages = Number(c.window / page);
      const rnd = prng(seed * 7919);
      const levels = c.shifts.length;
      let tables = pt.stats.tables;
      try {
        for (let i = 0; i < ops.length; i++) {
          const op = ops[i];
          const cost = apply(pt, op);
          modelApply(model, op);
          const where = `op ${i} ${op.kind} 0x${op.va.toString(16)}+0x${op.size.toString(16)}`;
          // costs
          expect(cost.records, where).toBeLessThanOrEqual(cost.live);
          if (op.kind === 'bind') expect(cost.records, where).toBeLessThanOrEqual(2 * levels + 1);
          if (op.kind === 'zap') expect([cost.alloc, cost.free, cost.new], where).toEqual([0, 0, 0]);
          if (op.kind === 'unbind') expect(cost.new, where).toBeLessThanOrEqual(cost.alloc * 2 ** 16);
          const now = pt.stats.tables;
          expect(now - tables, where).toBe(cost.alloc - cost.free);
          tables = now;
          // translate of every page (at a random offset inside it) against the model
          const vas: bigint[] = [];
          for (let p = 0; p < npages; p++) vas.push(BigInt(p) * page + BigInt(Math.floor(rnd() * Number(page))));
          const got = pt.translateMany(vas);
          for (let p = 0; p < npages; p++) {
            const want = model.translate(vas[p]);
            const g = got[p];
            if (want === null) {
              if (g !== null) expect({ va: vas[p], got: g }, where).toEqual({ va: vas[p], got: null });
            } else if (g === null || g.pa !== want.pa || (!c.compact && (g.size !== want.size || g.level !== want.level))) {
              expect({ va: vas[p], got: g && { pa: g.pa, size: g.size, level: g.level } }, where).toEqual({ va: vas[p], got: want });
            }
          }
          // no empty non-root table anywhere (visible part of the tree)
          for (const e of pt.walk(0n, undefined, { dirs: true })) {
            if (e.kind === 'dir' && e.childLive === 0) expect.fail(`${where}: empty table under 0x${e.va.toString(16)} level ${e.level}`);
          }
        }
        // every table is reachable: after unbinding everything only the root is left
        // (a window of 2^64 takes two unbinds: a size is at most 2^64 - 1)
        const parts = c.window > 1n << 63n ? [0n, c.window / 2n] : [0n];
        let freed = 0;
        for (const at of parts) freed += pt.unbind(at, c.window / BigInt(parts.length)).free;
        expect(pt.stats).toEqual({ tables: 1, entries: 0 });
        expect(freed).toBe(tables - 1);
      } finally {
        pt.destroy();
      }
    },
  );
});

const both = availableBackends();
const differential = both.includes('native') && both.includes('wasm') ? describe : describe.skip;

differential('native and WASM side by side', () => {
  function trace(backend: BackendName, c: Config, seed: number): string[] {
    const pt = new PageTable<bigint>({ shifts: c.shifts, leaf: c.leaf, compact: c.compact, bigint: true, backend });
    const out: string[] = [];
    try {
      for (const op of makeStream(seed, c.ops, c.shifts, c.window, c.stream)) {
        const cost = apply(pt, op);
        out.push(JSON.stringify(cost));
        const s = pt.stats;
        out.push(`${s.tables} ${s.entries}`);
      }
      for (const e of pt.walk(0n, undefined, { dirs: true, post: true, zapped: true, empty: true, chunk: 97 })) {
        out.push(JSON.stringify(e, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v)));
      }
    } finally {
      pt.destroy();
    }
    return out;
  }

  it.each(configs.map((c) => [c.name, c] as const))('%s: identical costs, stats and full walks', (_name, c) => {
    for (const seed of c.seeds) {
      const a = trace('native', c, seed + 100);
      const b = trace('wasm', c, seed + 100);
      expect(a.length).toBe(b.length);
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) expect(b[i], `line ${i}`).toBe(a[i]);
    }
  });
});
