/**
 * PageTable on every engine: the entry counts of research/upstream-anchors.md
 * §4.6, bad input (EINVAL and nothing changed), zap, walks in chunks and in
 * shared mode, compact 64 KiB tables and the PS64 hint, geometry checks.
 */
import { describe, expect, it } from 'vitest';
import { GpuVmError } from '../src/errors.js';
import { PageTable, type PtCost, type PtSegment } from '../src/page-table.js';
import { backends } from './support/engines.js';

const K4 = 0x1000;
const K64 = 0x10000;
const M1 = 0x100000;
const M2 = 0x200000;
const G1 = 0x40000000;

const cost = (live: number, fresh: number, alloc: number, free: number, records: number): PtCost => ({
  live,
  new: fresh,
  alloc,
  free,
  records,
});

/** n pieces of `piece` bytes each at scattered, piece-aligned physical addresses */
function scattered(n: number, piece: number, base = 0x7_0000_0000): PtSegment[] {
  const out: PtSegment[] = [];
  for (let i = 0; i < n; i++) out.push({ pa: base + ((i * 7919) % 4096) * piece * 2, len: piece });
  return out;
}

function snapshot(pt: PageTable) {
  return {
    stats: pt.stats,
    all: [...pt.walk(0, undefined, { dirs: true, zapped: true })],
  };
}

describe.each(backends)('PageTable on %s', (backend) => {
  /** A 4-level 48-bit table with tables present down to level 1 for [0, 1 GiB) */
  function prepared(options: { compact?: boolean } = {}): PageTable<number> {
    const pt = new PageTable<number>({ backend, compact: options.compact });
    // a page near the end of the first GiB: creates the level-2 and level-1 tables
    pt.bind(G1 - K4, K4, [{ pa: 0x1234_5000, len: K4 }]);
    expect(pt.stats.tables).toBe(4);
    return pt;
  }

  describe('entry counts (upstream-anchors §4.6)', () => {
    it('bind 4 KiB where the level-0 table exists: 1 x 1 at level 0', () => {
      const pt = prepared();
      pt.bind(0, K4, [[0x1000_0000, K4]]);
      expect(pt.bind(K4, K4, [[0x1000_1000, K4]])).toEqual(cost(1, 0, 0, 0, 1));
      expect(pt.translate(K4 + 5)).toMatchObject({ pa: 0x1000_1005, size: K4, level: 0 });
    });

    it('bind 4 KiB with no level-0 table yet: the PDE in level 1, the leaf in a new table', () => {
      const pt = prepared();
      expect(pt.bind(M2, K4, [[0x1000_0000, K4]])).toEqual(cost(1, 1, 1, 0, 1));
    });

    it('bind 2 MiB aligned and contiguous: one 2 MiB leaf; an old level-0 child is freed', () => {
      const pt = prepared();
      expect(pt.bind(2 * M2, M2, [[0x4000_0000, M2]])).toEqual(cost(1, 0, 0, 0, 1));
      expect(pt.translate(2 * M2 + 0x1234)).toMatchObject({ pa: 0x4000_1234, size: M2, level: 1 });
      pt.bind(0, K4, [[0x1000_0000, K4]]);
      expect(pt.bind(0, M2, [[0x4020_0000, M2]])).toEqual(cost(1, 0, 0, 1, 1));
    });

    it('bind 2 MiB aligned but fragmented: a PDE and a new table of 512 leaves', () => {
      const pt = prepared();
      expect(pt.bind(M2, M2, scattered(2, M1))).toEqual(cost(1, 512, 1, 0, 1));
      // adjacent segments are never coalesced
      expect(pt.bind(2 * M2, M2, [[0x4000_0000, M1], [0x4010_0000, M1]])).toEqual(cost(1, 512, 1, 0, 1));
      expect(pt.translate(2 * M2)).toMatchObject({ size: K4, level: 0 });
    });

    it('bind 2 MiB of 64 KiB-contiguous pieces with compact tables: 32 entries of 64 KiB', () => {
      const pt = prepared({ compact: true });
      expect(pt.bind(M2, M2, scattered(32, K64))).toEqual(cost(1, 32, 1, 0, 1));
      const t = pt.translate(M2 + K64 + 0x10)!;
      expect(t).toMatchObject({ size: K64, level: 0, compact: true });
      expect(t.pa).toBe((scattered(32, K64)[1] as { pa: number }).pa + 0x10);
      // not 64 KiB aligned physically: a normal table
      expect(pt.bind(2 * M2, M2, scattered(64, 0x8000, 0x9_0000_8000))).toEqual(cost(1, 512, 1, 0, 1));
    });

    it('bind 1 GiB aligned and contiguous: one entry at level 2', () => {
      const pt = prepared();
      expect(pt.bind(G1, G1, [[0x8000_0000, G1]])).toEqual(cost(1, 0, 0, 0, 1));
      expect(pt.translate(G1 + 0x1234_5678)).toMatchObject({ pa: 0x9234_5678, size: G1, level: 2 });
    });

    it('bind [1 MiB, 9 MiB): 256 + 3 + 256 entries in three records', () => {
      const pt = prepared();
      pt.bind(0, K4, [[0x1000_0000, K4]]);
      pt.bind(9 * M1 + M1 - K4, K4, [[0x1000_1000, K4]]);
      // 2 MiB-contiguous and aligned backing: 2 MiB leaves in the middle
      expect(pt.bind(M1, 8 * M1, [[0x2000_0000 + M1, 8 * M1]])).toEqual(cost(256 + 3 + 256, 0, 0, 0, 3));
      expect(pt.translate(4 * M1)).toMatchObject({ size: M2, level: 1 });
      // fragmented backing: three new private tables
      expect(pt.bind(M1, 8 * M1, scattered(8, M1))).toEqual(cost(256 + 3 + 256, 3 * 512, 3, 0, 3));
    });

    it('bind without edge tables: PDEs only in level 1, the edges in new tables', () => {
      const pt = prepared();
      expect(pt.bind(M1, 8 * M1, [[0x2000_0000 + M1, 8 * M1]])).toEqual(cost(5, 512, 2, 0, 1));
    });

    it('unbind 4 KiB while other entries of the level-0 table stay live: 1 x 1', () => {
      const pt = prepared();
      pt.bind(0, 2 * K4, [[0x1000_0000, 2 * K4]]);
      expect(pt.unbind(K4, K4)).toEqual(cost(1, 0, 0, 0, 1));
      expect(pt.translate(K4)).toBeNull();
      expect(pt.translate(0)).not.toBeNull();
    });

    it('unbind the last live 4 KiB of a level-0 table: the PDE is cleared, the table freed, and it cascades', () => {
      const pt = prepared();
      pt.bind(M2, K4, [[0x1000_0000, K4]]);
      expect(pt.unbind(M2, K4)).toEqual(cost(1, 0, 0, 1, 1));
      // alone under a level-1 table: the kill cascades to level 2
      pt.bind(2 * G1, K4, [[0x1000_0000, K4]]);
      const before = pt.stats.tables;
      expect(pt.unbind(2 * G1, K4)).toEqual(cost(1, 0, 0, 2, 1));
      expect(pt.stats.tables).toBe(before - 2);
    });

    it('unbind a 2 MiB huge page: 1 x 1', () => {
      const pt = prepared();
      pt.bind(M2, M2, [[0x4000_0000, M2]]);
      expect(pt.unbind(M2, M2)).toEqual(cost(1, 0, 0, 0, 1));
    });

    it('unbind [2 MiB, 10 MiB) made of private level-0 tables: 1 x 4 at level 1, 4 subtrees freed', () => {
      const pt = prepared();
      pt.bind(M2, 4 * M2, scattered(16, M1 / 2));
      expect(pt.stats.tables).toBe(8);
      expect(pt.unbind(M2, 4 * M2)).toEqual(cost(4, 0, 0, 4, 1));
    });

    it('unbinding empty space costs nothing', () => {
      const pt = prepared();
      expect(pt.unbind(0, G1 - M2)).toEqual(cost(0, 0, 0, 0, 0));
      expect(pt.zap(0, G1 - M2)).toEqual(cost(0, 0, 0, 0, 0));
    });

    it('binds never use more than 2 x levels + 1 update records', () => {
      const pt = new PageTable<number>({ backend });
      // fill densely so every edge table exists, then bind ragged ranges across everything
      pt.bind(0, 4 * G1, scattered(4 * 512, M2));
      pt.bind(0x1ff_f000, 2 * G1 + 0x3000, scattered(1, 2 * G1 + 0x3000));
      const c = pt.bind(K4, 4 * G1 - 2 * K4, scattered(1, 4 * G1 - 2 * K4));
      expect(c.records).toBeLessThanOrEqual(2 * 4 + 1);
      const five = new PageTable<number>({ backend, shifts: [12, 21, 30, 39, 48] });
      five.bind(0, K4, [[0, K4]]);
      five.bind(2 ** 40 - K4, K4, [[0, K4]]);
      five.bind(2 * G1 + K4, K4, [[0, K4]]);
      expect(five.bind(K4, 2 ** 40 - 2 * K4, null).records).toBeLessThanOrEqual(2 * 5 + 1);
    });
  });

  describe('bind replaces what was there', () => {
    it('a partial bind over a 2 MiB leaf splits it; the rest stays mapped', () => {
      const pt = prepared();
      pt.bind(M2, M2, [[0x4000_0000, M2]]);
      expect(pt.bind(M2 + K4, K4, [[0x5000_0000, K4]])).toEqual(cost(1, 512, 1, 0, 1));
      expect(pt.translate(M2)).toMatchObject({ pa: 0x4000_0000, size: K4, level: 0 });
      expect(pt.translate(M2 + K4)).toMatchObject({ pa: 0x5000_0000, size: K4 });
      expect(pt.translate(2 * M2 - 1)).toMatchObject({ pa: 0x401f_ffff });
    });

    it('a 1 GiB leaf split twice re-expresses both levels', () => {
      const pt = new PageTable<number>({ backend });
      pt.bind(G1, G1, [[0x8000_0000, G1]]);
      expect(pt.unbind(G1 + M2 + K4, K4)).toEqual(cost(1, 511 + 512, 2, 0, 1));
      expect(pt.translate(G1)).toMatchObject({ pa: 0x8000_0000, size: M2, level: 1 });
      expect(pt.translate(G1 + M2)).toMatchObject({ pa: 0x8020_0000, size: K4, level: 0 });
      expect(pt.translate(G1 + M2 + K4)).toBeNull();
    });

    it('a covered bind over a subtree rebuilds it and frees the old one', () => {
      const pt = prepared();
      pt.bind(0, M2, scattered(2, M1));
      expect(pt.bind(0, M2, scattered(2, M1, 0x3_0000_0000))).toEqual(cost(1, 512, 1, 1, 1));
    });

    it('null bindings translate to pa null', () => {
      const pt = prepared();
      pt.bind(M2, M2, null);
      expect(pt.translate(M2 + 5)).toMatchObject({ pa: null, size: M2, level: 1 });
    });
  });

  describe('zap', () => {
    it('keeps the subtree hidden; the bind that clears the entry frees it', () => {
      const pt = prepared();
      pt.bind(0, M2, scattered(2, M1));
      const tables = pt.stats.tables;
      expect(pt.zap(0, M2)).toEqual(cost(1, 0, 0, 0, 1));
      expect(pt.stats.tables).toBe(tables);
      expect(pt.translate(0)).toBeNull();
      expect(pt.dump().filter((e) => e.va < M2)).toEqual([]);
      expect([...pt.walk(0, M2, { zapped: true })]).toMatchObject([{ kind: 'dir', zapped: true, va: 0 }]);
      // zapping again writes nothing
      expect(pt.zap(0, M2)).toEqual(cost(0, 0, 0, 0, 0));
      // a partial bind over the zapped entry: a new empty child, the hidden one freed
      expect(pt.bind(K4, K4, [[0x1000_0000, K4]])).toEqual(cost(1, 1, 1, 1, 1));
      expect(pt.translate(0)).toBeNull();
      expect(pt.translate(K4)).toMatchObject({ pa: 0x1000_0000 });
    });

    it('a leaf only partly inside stays mapped; an unbind over zapped entries frees hidden tables', () => {
      const pt = prepared();
      pt.bind(M2, M2, [[0x4000_0000, M2]]);
      expect(pt.zap(M2, M1)).toEqual(cost(0, 0, 0, 0, 0));
      expect(pt.translate(M2)).not.toBeNull();
      pt.bind(2 * M2, M2, scattered(4, M1 / 2));
      pt.zap(2 * M2, M2);
      expect(pt.unbind(2 * M2, M2)).toEqual(cost(1, 0, 0, 1, 1));
      // a partial unbind of a zapped entry leaves it alone
      pt.bind(3 * M2, M2, scattered(4, M1 / 2));
      pt.zap(3 * M2, M2);
      const before = snapshot(pt);
      expect(pt.unbind(3 * M2 + K4, K4)).toEqual(cost(0, 0, 0, 0, 0));
      expect(snapshot(pt)).toEqual(before);
    });
  });

  describe('bad input is EINVAL and changes nothing', () => {
    const bad: [string, (pt: PageTable<number | bigint>) => unknown][] = [
      ['misaligned va', (pt) => pt.bind(0x1001, K4, [[0, K4]])],
      ['misaligned size', (pt) => pt.bind(0, 0x1800, [[0, 0x1800]])],
      ['misaligned pa', (pt) => pt.bind(0, K4, [[0x800, K4]])],
      ['misaligned segment length', (pt) => pt.bind(0, 2 * K4, [[0, 0x1800], [0x2000, 0x800]])],
      ['segments short of the size', (pt) => pt.bind(0, 2 * K4, [[0, K4]])],
      ['segments beyond the size', (pt) => pt.bind(0, K4, [[0, K4], [0x1000, K4]])],
      ['a zero-length segment', (pt) => pt.bind(0, K4, [[0, 0], [0, K4]])],
      ['no segments', (pt) => pt.bind(0, K4, [])],
      ['zero size', (pt) => pt.bind(0, 0, null)],
      ['beyond the span', (pt) => pt.bind(2 ** 48 - K4, 2 * K4, null)],
      ['va beyond the span', (pt) => pt.bind(2 ** 48, K4, null)],
      ['va + size overflowing u64', (pt) => pt.bind(0xffff_ffff_ffff_f000n, 0x2000n, null)],
      ['pa + len above 2^64', (pt) => pt.bind(0, 2 * K4, [[0xffff_ffff_ffff_f000n, 0x2000n]])],
      ['unbind misaligned', (pt) => pt.unbind(0x800, K4)],
      ['unbind zero size', (pt) => pt.unbind(0, 0)],
      ['unbind beyond the span', (pt) => pt.unbind(0, 2 ** 48 + K4)],
      ['zap misaligned', (pt) => pt.zap(0, 0x800)],
      ['zap beyond the span', (pt) => pt.zap(2 ** 48, K4)],
    ];
    it.each(bad)('%s', (_name, call) => {
      const pt = new PageTable<bigint>({ backend, bigint: true });
      pt.bind(0, 3n * BigInt(M2), scattered(6, M1));
      pt.bind(BigInt(G1), BigInt(G1), [[0x8000_0000n, BigInt(G1)]]);
      pt.zap(BigInt(M2), BigInt(M2));
      const before = snapshot(pt);
      const last = pt.lastCost;
      expect(() => call(pt)).toThrow(GpuVmError);
      try {
        call(pt);
      } catch (e) {
        expect((e as GpuVmError).code).toBe('EINVAL');
      }
      expect(snapshot(pt)).toEqual(before);
      expect(pt.lastCost).toBe(last);
    });

    it('wrong types are TypeError / RangeError', () => {
      const pt = new PageTable<number>({ backend });
      expect(() => pt.bind('0' as unknown as number, K4, null)).toThrow(TypeError);
      expect(() => pt.bind(0, K4, {} as unknown as PtSegment[])).toThrow(TypeError);
      expect(() => pt.bind(0, K4, [5 as unknown as PtSegment])).toThrow(TypeError);
      expect(() => pt.bind(0, K4, [[0, K4, 1] as unknown as PtSegment])).toThrow(TypeError);
      expect(() => pt.bind(-4096, K4, null)).toThrow(RangeError);
      expect(() => pt.bind(2 ** 60, K4, null)).toThrow(RangeError);
      expect(() => pt.bind(0, K4, [[2n ** 60n, K4]])).toThrow(RangeError);
      expect(pt.stats).toEqual({ tables: 1, entries: 0 });
      // a failed call leaves nothing staged behind
      expect(pt.bind(0, K4, [[0, K4]])).toEqual(cost(1, 3, 3, 0, 1));
    });

    it('bad geometries', () => {
      const bad = [[12], [12, 12], [12, 29], [12, 40, 56], [21, 12], [0, 17]];
      for (const shifts of bad) {
        expect(() => new PageTable({ backend, shifts }), shifts.join(' ')).toThrow(GpuVmError);
      }
      expect(() => new PageTable({ backend, leaf: 4 })).toThrow(GpuVmError);
      expect(() => new PageTable({ backend, shifts: [12, 14, 16, 18], compact: true })).toThrow(GpuVmError);
      expect(() => new PageTable({ backend, shifts: [17, 21, 30], compact: true })).toThrow(GpuVmError);
      expect(new PageTable({ backend, shifts: [12, 21, 30, 39, 48], bigint: true }).span).toBe(2n ** 57n);
      expect(() => new PageTable({ backend, shifts: [12, 21, 30, 39, 48] }).span).toThrow(RangeError);
      expect(new PageTable({ backend, shifts: [0, 16, 32, 48], bigint: true }).span).toBe(2n ** 64n);
      expect(new PageTable({ backend, shifts: [12, 21] }).leaf).toBe(1);
    });

    it('destroyed tables refuse calls', () => {
      const pt = new PageTable<number>({ backend });
      pt.destroy();
      expect(() => pt.translate(0)).toThrow(GpuVmError);
      expect(() => pt.bind(0, K4, null)).toThrow(GpuVmError);
      pt.destroy();
    });
  });

  describe('walk', () => {
    function filled(): PageTable<number> {
      const pt = new PageTable<number>({ backend });
      pt.bind(0, 3 * M2, scattered(12, M1 / 2));
      pt.bind(4 * M2, M2, [[0x4000_0000, M2]]);
      pt.bind(G1, G1, [[0x8000_0000, G1]]);
      pt.bind(2 * G1 + K4, 5 * K4, null);
      return pt;
    }

    it('yields leaves in address order, in chunks of any size', () => {
      const pt = filled();
      const all = pt.dump();
      expect(all.length).toBe(3 * 512 + 1 + 1 + 5);
      for (let i = 1; i < all.length; i++) expect(all[i].va).toBeGreaterThan(all[i - 1].va);
      for (const chunk of [1, 7, 512, 1537]) expect([...pt.walk(0, undefined, { chunk })]).toEqual(all);
      const some = [...pt.walk(M2 + 5 * K4, 3 * K4)];
      expect(some.map((e) => e.va)).toEqual([M2 + 5 * K4, M2 + 6 * K4, M2 + 7 * K4]);
      expect([...pt.walk(G1 + 5, 1)]).toMatchObject([{ kind: 'leaf', va: G1, size: G1, level: 2, pa: 0x8000_0000 }]);
      expect([...pt.walk(0, 0)]).toEqual([]);
    });

    it('directory and post records nest, and chunking does not change them', () => {
      const pt = filled();
      const rec = [...pt.walk(0, undefined, { dirs: true, post: true })];
      let depth = 0;
      for (const e of rec) {
        if (e.kind === 'dir' && !e.post) depth++;
        if (e.post) depth--;
        expect(depth).toBeGreaterThanOrEqual(0);
      }
      expect(depth).toBe(0);
      expect(rec[0]).toMatchObject({ kind: 'dir', level: 3, va: 0, childLive: 3 });
      expect(rec.at(-1)).toMatchObject({ kind: 'dir', level: 3, post: true });
      for (const chunk of [1, 3, 100]) expect([...pt.walk(0, undefined, { dirs: true, post: true, chunk })]).toEqual(rec);
    });

    it('shared mode visits only the partially covered edge entries', () => {
      const pt = filled();
      const shared = [...pt.walk(K4, 3 * M2 - 2 * K4, { shared: true, dirs: true, empty: true })];
      // page-aligned: every level-0 entry is covered, so only directory edges remain
      expect(shared.map((e) => [e.kind, e.level, e.va])).toEqual([
        ['dir', 3, 0],
        ['dir', 2, 0],
        ['dir', 1, 0],
        ['dir', 1, 2 * M2],
      ]);
      // ragged: the partially covered first and last pages too
      const ragged = [...pt.walk(K4 + 1, 3 * M2 - 2 * K4, { shared: true, dirs: true })];
      expect(ragged.map((e) => [e.kind, e.level, e.va])).toEqual([
        ['dir', 3, 0],
        ['dir', 2, 0],
        ['dir', 1, 0],
        ['leaf', 0, K4],
        ['dir', 1, 2 * M2],
        ['leaf', 0, 3 * M2 - K4],
      ]);
    });

    it('resumes after the last record when the table changes between chunks', () => {
      const pt = filled();
      const seen: number[] = [];
      for (const e of pt.walk(0, undefined, { chunk: 10 })) {
        seen.push(e.va);
        if (e.va === 59 * K4) pt.unbind(60 * K4, 1000 * K4); // ahead of the walk (the next chunk)
        if (e.va === 1100 * K4) pt.bind(0, K4, [[0, K4]]); // behind it
      }
      expect(seen).toContain(59 * K4);
      expect(seen).not.toContain(60 * K4);
      expect(seen).not.toContain(1059 * K4);
      expect(seen).toContain(1060 * K4);
      expect(seen.filter((v) => v === 0).length).toBe(1);
      for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1]);
    });

    it('translate: beyond the span is none; translateMany agrees with translate', () => {
      const pt = filled();
      expect(pt.translate(2 ** 48)).toBeNull();
      const vas = [0, K4 + 3, M2, 4 * M2 + 77, G1 + 12345, 2 * G1 + K4, 2 * G1, 2 ** 48 + 1, 3 * G1];
      expect(pt.translateMany(vas)).toEqual(vas.map((v) => pt.translate(v)));
      const big = Array.from({ length: 40000 }, (_, i) => i * K4);
      expect(pt.translateMany(big).filter((t) => t !== null).length).toBe(3 * 512 + 512);
    });
  });

  describe('compact 64 KiB tables and the PS64 hint', () => {
    it('binds inside a compact table 64 KiB at a time, and splits it for anything finer', () => {
      const pt = prepared({ compact: true });
      const segs = scattered(32, K64);
      pt.bind(0, M2, segs);
      // 64 KiB aligned, 64 KiB contiguous: written straight into the compact table
      expect(pt.bind(2 * K64, 2 * K64, [[0x6_0000_0000, 2 * K64]])).toEqual(cost(2, 0, 0, 0, 1));
      expect(pt.translate(2 * K64 + K4)).toMatchObject({ pa: 0x6_0000_1000, size: K64, compact: true });
      // a 4 KiB bind: the compact table becomes a normal one (a new table, the old freed)
      expect(pt.bind(K4, K4, [[0x7000_0000, K4]])).toEqual(cost(1, 512, 1, 1, 1));
      expect(pt.translate(K4)).toMatchObject({ pa: 0x7000_0000, size: K4, compact: false, hint64k: false });
      expect(pt.translate(0)).toMatchObject({ pa: (segs[0] as { pa: number }).pa, size: K4, hint64k: false });
      expect(pt.translate(5 * K64 + 0x2345)).toMatchObject({ pa: (segs[5] as { pa: number }).pa + 0x2345, hint64k: true });
      // unbinds: 64 KiB aligned inside a compact table clears entries, finer splits it
      pt.bind(M2, M2, scattered(32, K64));
      expect(pt.unbind(M2, K64)).toEqual(cost(1, 0, 0, 0, 1));
      expect(pt.unbind(M2 + K64, K4)).toEqual(cost(1, 30 * 16 + 15, 1, 1, 1));
      expect(pt.translate(M2 + K64 + K4)).toMatchObject({ size: K4 });
      // zap inside a compact table never splits
      pt.bind(2 * M2, M2, scattered(32, K64));
      expect(pt.zap(2 * M2, K64 + K4)).toEqual(cost(1, 0, 0, 0, 1));
      expect(pt.translate(2 * M2 + K64)).toMatchObject({ size: K64 });
    });

    it('PS64 on level-0 leaves of uniform 64 KiB blocks', () => {
      const pt = new PageTable<number>({ backend });
      pt.bind(M2 + K64, K64, [[0x5_0001_0000, K64]]);
      expect(pt.translate(M2 + K64 + K4)?.hint64k).toBe(true);
      pt.bind(M2 + 2 * K64, K64, [[0x5_0001_1000, K64]]); // not 64 KiB aligned physically
      expect(pt.translate(M2 + 2 * K64)?.hint64k).toBe(false);
      pt.bind(M2 + 3 * K64, K64, null);
      expect(pt.translate(M2 + 3 * K64)?.hint64k).toBe(true);
      pt.unbind(M2 + K64, K4);
      expect(pt.translate(M2 + K64 + K4)?.hint64k).toBe(false);
    });
  });

  it('stays consistent across many tables (pool reuse)', () => {
    for (let round = 0; round < 3; round++) {
      const tables = Array.from({ length: 20 }, () => new PageTable<number>({ backend }));
      tables.forEach((pt, i) => pt.bind(i * M2, M2, scattered(4, M1 / 2, 0x1_0000_0000 * (i + 1))));
      tables.forEach((pt, i) => expect(pt.translate(i * M2)?.pa).toBe((scattered(4, M1 / 2, 0x1_0000_0000 * (i + 1))[0] as { pa: number }).pa));
      tables.forEach((pt) => pt.destroy());
    }
  });
});

describe.each(backends)('PageTable.batch on %s', (backend) => {
  it('runs several records in one call, summing costs, all or nothing', () => {
    const pt = new PageTable<number>({ backend });
    const one = new PageTable<number>({ backend });
    const recs = [
      { op: 'bind', va: 0, size: 0x4000, backing: [[0x1000_0000, 0x4000]] },
      { op: 'bind', va: 0x20_0000, size: 0x20_0000, backing: null },
      { op: 'zap', va: 0x1000, size: 0x1000 },
      { op: 'unbind', va: 0, size: 0x2000 },
    ] as const;
    const sum = { live: 0, new: 0, alloc: 0, free: 0, records: 0 };
    for (const r of recs) {
      const c =
        r.op === 'bind' ? one.bind(r.va, r.size, r.backing as never) : r.op === 'zap' ? one.zap(r.va, r.size) : one.unbind(r.va, r.size);
      for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += c[k];
    }
    expect(pt.batch(recs as never)).toEqual(sum);
    expect(pt.dump()).toEqual(one.dump().map((e) => ({ ...e, table: expect.any(Number) })));
    const before = [...pt.walk(0, undefined, { dirs: true, zapped: true })];
    expect(() => pt.batch([{ op: 'unbind', va: 0, size: 0x1000 }, { op: 'zap', va: 1, size: 0x1000 }])).toThrow(GpuVmError);
    expect(() => pt.batch([{ op: 'frob' } as never])).toThrow(TypeError);
    expect([...pt.walk(0, undefined, { dirs: true, zapped: true })]).toEqual(before);
    expect(pt.batch([])).toEqual({ live: 0, new: 0, alloc: 0, free: 0, records: 0 });
  });
});

describe.each(backends)('typed backing on %s', (backend) => {
  it('a BigUint64Array of (pa, len) pairs binds like the array form, in chunks when large', () => {
    const n = 40000;
    const arr: PtSegment[] = [];
    const typed = new BigUint64Array(2 * n);
    for (let i = 0; i < n; i++) {
      const pa = 0x1_0000_0000 + ((i * 7919) % 65536) * 0x2000;
      arr.push([pa, 0x1000]);
      typed[2 * i] = BigInt(pa);
      typed[2 * i + 1] = 0x1000n;
    }
    const a = new PageTable<number>({ backend });
    const b = new PageTable<number>({ backend });
    expect(b.bind(0x1000, n * 0x1000, typed)).toEqual(a.bind(0x1000, n * 0x1000, arr));
    const strip = (e: { table: number }) => ({ ...e, table: 0 });
    expect(b.dump().map(strip)).toEqual(a.dump().map(strip));
    // a typed view at an offset into a larger buffer
    const view = new BigUint64Array(typed.buffer, 16, 2);
    expect(b.bind(0, 0x1000, view)).toMatchObject({ live: 1 });
    expect(b.translate(0)?.pa).toBe(Number(typed[2]));
    expect(() => b.bind(0, 0x1000, new BigUint64Array(3))).toThrow(GpuVmError);
    expect(() => b.bind(0, 0x1000, new BigUint64Array([0n, 0x800n]))).toThrow(GpuVmError);
    a.destroy();
    b.destroy();
  });
});
