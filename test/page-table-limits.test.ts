// PageTable hardening: the per-call leaf budget, memory after a big unbind,
// and re-entrant or throwing argument getters (the facade rule).
import { describe, expect, it } from 'vitest';
import { backends } from './support/engines.js';
import { IO } from '../src/backend/engine.js';
import { loadEngine } from '../src/backend/loader.js';
import { Bo, engineMemory, GpuVm, GpuVmError, PageTable } from '../src/index.js';

function snapshot(pt: PageTable<number>) {
  return { stats: pt.stats, entries: [...pt.walk(0, undefined, { dirs: true, zapped: true })] };
}

describe.each(backends)('%s engine', (backend) => {
  it('options are checked like GpuVm checks them: no silent fallback', () => {
    expect(() => new PageTable({ backend: 'NATIVE' as never })).toThrow(/backend must be 'native' or 'wasm', got "NATIVE"/);
    expect(() => new PageTable({ backend, bigint: 'yes' as never })).toThrow(/bigint must be a boolean/);
    expect(() => new PageTable({ backend, compact: 1 as never })).toThrow(/compact must be a boolean/);
    expect(() => engineMemory('Wasm' as never)).toThrow(TypeError);
    expect(new PageTable({ backend }).backend).toBe(backend);
  });

  it('a huge-page bind reserves storage near what it writes, not what 4 KiB pages would need', () => {
    const pt = new PageTable({ backend });
    const before = engineMemory(backend).used;
    // 1 TiB of 1 GiB leaves: 1024 entries in two tables
    expect(pt.bind(0, 2 ** 40, [[0, 2 ** 40]])).toMatchObject({ new: 1024, alloc: 2 });
    expect(engineMemory(backend).used - before).toBeLessThan(16 * 2 ** 20);
    // 4 GiB of 2 MiB leaves (physically 2 MiB- but not 1 GiB-aligned) with 4 KiB edges:
    // still only the tables on the way
    const pt2 = new PageTable({ backend });
    expect(pt2.bind(0x1000, 2 ** 32, [[0x201000, 2 ** 32]]).new).toBeGreaterThan(2000);
    expect(engineMemory(backend).used - before).toBeLessThan(16 * 2 ** 20);
    pt.destroy();
    pt2.destroy();
  });

  it('a bind above maxEntriesPerCall is E2BIG and changes nothing; the largest allowed one works', () => {
    const pt = new PageTable<number>({ backend, maxEntriesPerCall: 4096 });
    pt.bind(0x40000000, 0x3000, [[0x7000, 0x3000]]);
    const before = snapshot(pt);
    // 4097 leaves of 4 KiB (physically misaligned for 2 MiB pages)
    const err = (() => {
      try {
        pt.bind(0, 4097 * 0x1000, [[0x1000, 4097 * 0x1000]]);
      } catch (e) {
        return e as GpuVmError;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(GpuVmError);
    expect(err!.code).toBe('E2BIG');
    expect(err!.message).toMatch(/4097 page-table entries.*maxEntriesPerCall = 4096/);
    expect(snapshot(pt)).toEqual(before);
    expect(() => pt.batch([{ op: 'bind', va: 0, size: 0x2000000, backing: null }, { op: 'bind', va: 0x2000000, size: 0x1000, backing: null }])).not.toThrow();
    expect(() => pt.batch([{ op: 'bind', va: 0, size: 4096 * 0x1000, backing: [[0x1000, 4096 * 0x1000]] }, { op: 'bind', va: 0x10000000, size: 0x1000, backing: null }])).toThrow(/E2BIG.*record 1/);
    const c = pt.bind(0, 4096 * 0x1000, [[0x1000, 4096 * 0x1000]]);
    expect(c.new + c.live).toBeGreaterThanOrEqual(4096);
    expect(pt.translate(4095 * 0x1000)?.pa).toBe(4096 * 0x1000);
    pt.maxEntriesPerCall = 8192;
    expect(pt.bind(0, 8192 * 0x1000, [[0x1000, 8192 * 0x1000]]).alloc).toBeGreaterThan(0);
    expect(() => (pt.maxEntriesPerCall = 0)).toThrow(RangeError);
    expect(() => new PageTable({ backend, maxEntriesPerCall: 2 ** 32 })).toThrow(RangeError);
  });

  it('the leaf count of a bind is exact with short and long segments mixed, in both backing forms', () => {
    // [pa, len] from va 0 (default geometry: 4 KiB, 2 MiB, 1 GiB leaves)
    const segs: [number, number][] = [
      [0x10_0000_5000, 0x1000], // three scattered pages: 3 leaves
      [0x10_0000_9000, 0x1000],
      [0x10_0002_0000, 0x1000],
      [0x20_0000_3000, 0x1fd000], // up to the first 2 MiB boundary: 509
      [0x30_0020_0000, 0x400000], // 2 MiB aligned both sides: 2 leaves of 2 MiB
      [0x40_0000_1000, 0x400000], // misaligned physically: 1024
      [0x50_0000_0000, 0x2000], // 2
      [0x60_0000_0000, 0x1fe000], // 510, up to 0xc00000
      [0x70_0020_0000, 0x200000], // exactly one 2 MiB entry long: 1 leaf
    ];
    const size = 0xe00000;
    const leaves = 3 + 509 + 2 + 1024 + 2 + 510 + 1;
    const typed = new BigUint64Array(segs.flatMap(([pa, len]) => [BigInt(pa), BigInt(len)]));
    for (const backing of [segs, typed]) {
      const pt = new PageTable<number>({ backend, maxEntriesPerCall: leaves - 1 });
      expect(() => pt.bind(0, size, backing)).toThrow(new RegExp(`would write ${leaves} page-table entries`));
      expect(pt.stats).toEqual({ tables: 1, entries: 0 });
      pt.maxEntriesPerCall = leaves;
      pt.bind(0, size, backing);
      const got = [...pt.walk(0)];
      expect(got.length).toBe(leaves);
      expect(got.filter((e) => e.level === 1).map((e) => [e.va, e.pa])).toEqual([
        [0x200000, 0x30_0020_0000],
        [0x400000, 0x30_0040_0000],
        [0xc00000, 0x70_0020_0000],
      ]);
      expect(pt.translate(0x2000)?.pa).toBe(0x10_0002_0000);
      expect(pt.translate(0x600000 + 0x3ff234)?.pa).toBe(0x40_0000_1000 + 0x3ff234);
      pt.destroy();
    }
    // leaves only at level 0: every segment counts its pages
    const flat = new PageTable<number>({ backend, shifts: [12, 21, 30, 39], leaf: 0, maxEntriesPerCall: size / 0x1000 - 1 });
    expect(() => flat.bind(0, size, typed)).toThrow(new RegExp(`would write ${size / 0x1000} page-table entries`));
    flat.maxEntriesPerCall = size / 0x1000;
    expect(flat.bind(0, size, typed).new).toBe(size / 0x1000 + 7 + 1);
    flat.destroy();
  });

  it('a bad segment anywhere in typed backing is EINVAL and changes nothing', () => {
    const pt = new PageTable<bigint>({ backend, bigint: true });
    pt.bind(0x40000000n, 0x3000n, [[0x7000n, 0x3000n]]);
    const before = [...pt.walk(0n, undefined, { dirs: true })];
    const pages = (n: number, at = 0x1_0000_0000n) => Array.from({ length: n }, (_, i) => [at + BigInt(i) * 0x2000n, 0x1000n]).flat();
    const cases: bigint[][] = [
      [...pages(5), 0x9000n, 0n, ...pages(2)], // an empty segment
      [...pages(3), 0x9800n, 0x1000n, ...pages(4)], // a misaligned pa
      [...pages(3), 0x9000n, 0x1800n, 0x20000n, 0x800n, ...pages(3)], // misaligned lengths
      [...pages(7), 0xffff_ffff_ffff_f000n, 0x2000n], // running past 2^64
      [...pages(9)], // one page more than the size
      [...pages(7)], // one page less
    ];
    for (const c of cases) {
      expect(() => pt.bind(0n, 0x8000n, new BigUint64Array(c))).toThrow(GpuVmError);
      expect([...pt.walk(0n, undefined, { dirs: true })]).toEqual(before);
    }
    pt.destroy();
  });

  it('a 2^40-byte bind of 4 KiB pages is refused at once; huge pages for it are fine', () => {
    const pt = new PageTable<number>({ backend });
    const t = performance.now();
    expect(() => pt.bind(0, 2 ** 40, [[0x1000, 2 ** 40]])).toThrow(/E2BIG/);
    expect(performance.now() - t).toBeLessThan(1000);
    expect(pt.stats).toEqual({ tables: 1, entries: 0 });
    expect(pt.bind(0, 2 ** 40, [[0, 2 ** 40]]).new).toBe(1024);
    expect(pt.translate(2 ** 39 + 0x1234)).toMatchObject({ pa: 2 ** 39 + 0x1234, level: 2 });
  });

  it('entry storage is compacted after a big unbind and reused', () => {
    const pt = new PageTable<number>({ backend });
    const keep = new PageTable<number>({ backend });
    keep.bind(0x1000, 0x1000, [[0x5000, 0x1000]]);
    // (a PageTable hands out no engine, not even to tests)
    expect(Object.getOwnPropertyNames(pt)).not.toContain('engine');
    // entry slots the engine ever allocated (engine-wide), through a raw table of the test's own
    const E = loadEngine(backend);
    E.io()[IO.DATA] = 12;
    E.io()[IO.DATA + 1] = 21;
    const probe = E.ptCreate(2, 1, 0);
    expect(probe).toBeGreaterThan(0);
    const slots = () => {
      expect(E.ptStats(probe)).toBeGreaterThan(0);
      return E.io()[IO.OUT + 3];
    };
    pt.bind(0, 2 ** 33, [[0x1000, 2 ** 33]]); // 2^21 leaves
    const peak = slots();
    expect(peak).toBeGreaterThan(2 ** 21);
    pt.unbind(0, 2 ** 33);
    expect(slots()).toBeLessThan(peak / 4);
    expect(keep.translate(0x1000)?.pa).toBe(0x5000);
    pt.bind(0, 2 ** 33, [[0x1000, 2 ** 33]]);
    expect(slots()).toBeLessThanOrEqual(peak);
    E.ptDestroy(probe);
    expect(pt.translate(2 ** 33 - 0x1000)?.pa).toBe(2 ** 33);
    pt.destroy();
    expect(keep.translate(0x1000)?.pa).toBe(0x5000);
  });

  it('getters that call into gpuvm do not corrupt any PageTable call', () => {
    const pt = new PageTable<number>({ backend });
    const other = new PageTable<number>({ backend });
    other.bind(0x8000, 0x1000, [[0xa000, 0x1000]]);
    const vm = new GpuVm<number>({ start: 0, range: 2 ** 32, backend });
    vm.bind(0x8000, 0x1000, null, 0);
    const meddle = () => {
      other.translate(0x8000);
      other.translateMany([0x8000, 0x9000]);
      [...other.walk()];
      other.bind(0x20000, 0x1000, [[0x3000, 0x1000]]);
      pt.translate(0x8000);
      vm.findFirst(0x8000, 0x1000);
    };
    const seg = (pa: number, len: number) => ({
      get pa() {
        meddle();
        return pa;
      },
      get len() {
        meddle();
        return len;
      },
    });
    pt.bind(0x1000, 0x2000, [seg(0x40000, 0x1000), seg(0x50000, 0x1000)]);
    expect(pt.translate(0x2000)?.pa).toBe(0x50000);
    pt.batch([
      { op: 'bind', va: 0x10000, size: 0x1000, get backing() { meddle(); return [seg(0x60000, 0x1000)]; } },
      { get op() { meddle(); return 'zap' as const; }, va: 0x1000, size: 0x1000 },
    ]);
    expect(pt.translate(0x10000)?.pa).toBe(0x60000);
    expect(pt.translate(0x1000)).toBeNull();
    const vas = { length: 2, get 0() { meddle(); return 0x2000; }, get 1() { meddle(); return 0x10000; } };
    expect(pt.translateMany(vas).map((t) => t?.pa)).toEqual([0x50000, 0x60000]);
    const opts = { get chunk() { meddle(); return 1; } };
    expect([...pt.walk(0, 0x20000, opts)].map((e) => e.va)).toEqual([0x2000, 0x10000]);
    const made = new PageTable<number>({ backend, get shifts() { meddle(); return [12, 21, 30, 39]; }, get leaf() { meddle(); return 1; } });
    made.bind(0x200000, 0x200000, [[0x400000, 0x200000]]);
    expect(made.translate(0x200000)?.level).toBe(1);
    // re-entering the same table from a getter: the inner call happens first
    pt.bind(0x30000, 0x1000, [{ get pa() { pt.bind(0x31000, 0x1000, [[0x9000, 0x1000]]); return 0x8000; }, len: 0x1000 }]);
    expect(pt.translate(0x30000)?.pa).toBe(0x8000);
    expect(pt.translate(0x31000)?.pa).toBe(0x9000);
    expect(other.translate(0x8000)?.pa).toBe(0xa000);
    expect(vm.findFirst(0x8000, 0x1000)?.addr).toBe(0x8000);
  });

  it('a throwing getter or resolve leaves the table unchanged', () => {
    const pt = new PageTable<number>({ backend });
    pt.bind(0x1000, 0x4000, [[0x40000, 0x4000]]);
    pt.zap(0x2000, 0x1000);
    const before = snapshot(pt);
    const boom = () => {
      throw new Error('boom');
    };
    const bad = { get pa() { return boom(); }, len: 0x1000 };
    expect(() => pt.bind(0x1000, 0x2000, [[0x9000, 0x1000], bad])).toThrow('boom');
    expect(() => pt.batch([{ op: 'unbind', va: 0x1000, size: 0x4000 }, { op: 'bind', va: 0, size: 0x1000, backing: [bad] }])).toThrow('boom');
    expect(() => pt.batch([{ op: 'unbind', va: 0x1000, size: 0x1000 }, { get op(): 'zap' { return boom(); }, va: 0, size: 0x1000 }])).toThrow('boom');
    expect(() => pt.translateMany({ length: 2, 0: 0x1000, get 1() { return boom(); } })).toThrow('boom');
    expect(() => [...pt.walk(0, undefined, { get dirs() { return boom(); } })]).toThrow('boom');
    const vm = new GpuVm<number>({ start: 0, range: 2 ** 32, backend });
    const bo = new Bo({ size: 2 ** 20 });
    expect(() => pt.commit(vm.smMapOps({ addr: 0x1000, range: 0x2000, bo, offset: 0 }), () => boom())).toThrow('boom');
    expect(() => pt.commit(vm.smMapOps({ addr: 0x1000, range: 0x2000, bo, offset: 0 }), () => [bad])).toThrow('boom');
    expect(snapshot(pt)).toEqual(before);
    // a resolve that re-enters and then succeeds: the commit is still right
    const ok = pt.commit(vm.smMapOps({ addr: 0x8000, range: 0x1000 }), () => { pt.translate(0x1000); return null; });
    expect(ok.binds).toBe(1);
    expect(pt.translate(0x8000)?.pa).toBeNull();
  });
});
