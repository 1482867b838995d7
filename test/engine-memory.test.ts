/**
 * The engine's memory budget (memSetLimit / memStats): with the limit at what
 * is in use, every call that needs more storage fails with ENOMEM and changes
 * nothing (mappings, VmBos, refcounts, link order, a pending list), calls that
 * need none still work, and after the limit is raised everything goes on.
 * Filling an engine to its real ceiling is too slow for CI; the limit stands
 * in for it (docs/engine-internals.md lists the real ceilings).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Bo, engineMemory, GpuVm, GpuVmError, PageTable, setEngineMemoryLimit } from '../src/index.js';
import { type Engine } from '../src/backend/engine.js';
import { loadEngine } from '../src/backend/loader.js';
import { backends } from './support/engines.js';
import { snapshotWorld } from './support/state.js';

const PG = 0x1000;

// Through the public calls: they also make a deferred op list first, which
// holds what applying it needs, as a list made when asked for does.
function memStats(E: Engine): { used: bigint; limit: bigint } {
  const m = engineMemory(E.name);
  return { used: BigInt(m.used), limit: BigInt(m.limit ?? 0) };
}

function setLimit(E: Engine, bytes: bigint): void {
  setEngineMemoryLimit(bytes === 0n ? null : bytes, E.name);
}

function enomem(e: unknown): boolean {
  return e instanceof GpuVmError && e.code === 'ENOMEM';
}

/**
 * Runs `step(i)` for i = 0, 1, ... until it fails; the failure must be ENOMEM
 * and leave `snap()` as it was just before. Returns the successful steps.
 */
function untilEnomem(step: (i: number) => void, snap: () => unknown, max = 5000, required = true): number {
  for (let i = 0; i < max; i++) {
    const before = snap();
    try {
      step(i);
    } catch (e) {
      if (!enomem(e)) throw e;
      expect(snap()).toEqual(before);
      return i;
    }
  }
  if (required) throw new Error(`no ENOMEM within ${max} steps`);
  return max;
}

for (const backend of backends) {
  describe(`engine memory budget on ${backend}`, () => {
    const E = loadEngine(backend);
    afterEach(() => setLimit(E, 0n));

    /** Caps the engine at what it uses now, then takes what is left with BO-less binds in a VM of its own. */
    function exhaust(): GpuVm {
      setLimit(E, memStats(E).used);
      const filler = new GpuVm({ name: 'filler', start: 0, range: 2 ** 40, backend });
      let n = 0;
      for (;;) {
        try {
          filler.bind(n * 2 * PG, PG);
          n++;
        } catch (e) {
          expect(enomem(e)).toBe(true);
          break;
        }
      }
      expect(filler.count).toBe(n);
      return filler;
    }

    it('memSetLimit / memStats: the limit reads back, a limit below the use is allowed', () => {
      const { used } = memStats(E);
      expect(used).toBeGreaterThan(0n);
      setLimit(E, 1n);
      expect(memStats(E).limit).toBe(1n);
      // nothing grows now, but lookups and calls that need no storage work
      const vm0 = new GpuVm({ name: 'x', start: 0, range: 0x10000, backend });
      expect(vm0.findFirst(0, 0x10000)).toBe(null);
      setLimit(E, 0n);
      expect(memStats(E).limit).toBe(0n);
      vm0.destroy();
    });

    it('bind, unbind, insert, VmBo and VM creation: ENOMEM with nothing changed, then on', () => {
      const vm = new GpuVm({ name: 's', start: 0, range: 0x10000000, backend });
      const bos = [new Bo({ name: 'a' }), new Bo({ name: 'b' })];
      vm.bind(0x100000, 0x10 * PG, bos[0], 0);
      vm.bind(0x200000, 0x4 * PG, bos[1], 0x1000);
      const snap = () => snapshotWorld([vm], bos);
      const filler = exhaust();

      untilEnomem((i) => vm.bind(0x1000000 + i * 2 * PG, PG, bos[i & 1], 0), snap);
      untilEnomem((i) => vm.insert({ addr: 0x2000000 + i * 2 * PG, range: PG }), snap);
      // a hole in the middle of a mapping: two new pieces
      untilEnomem((i) => vm.unbind(0x100000 + (2 * i + 1) * PG, PG / 2), snap, 8);
      const extra: Bo[] = [];
      const snapAll = () => [snapshotWorld([vm], bos), extra.map((b) => b.vmBos.length)];
      untilEnomem(() => {
        const b = new Bo({ name: `x${extra.length}` });
        vm.obtainBo(b);
        extra.push(b);
      }, snapAll, 100000);
      const vms: GpuVm[] = [];
      untilEnomem((i) => vms.push(new GpuVm({ name: `v${i}`, start: 0, range: 0x100000, reserve: { start: 0, range: PG }, backend })), () => vms.length, 100000);
      // lookups need no storage
      expect(vm.findFirstMany([0x100000, 0x200000, 0x300000]).map((v) => v !== null)).toEqual([true, true, false]);
      expect([...vm.mappings()].length).toBe(vm.count);

      setLimit(E, 0n);
      const before = vm.count;
      vm.bind(0x3000000, PG, bos[0], 0);
      vm.unbind(0x100000 + PG, PG / 2);
      vm.obtainBo(new Bo({ name: 'y' }));
      expect(vm.count).toBe(before + 2);
      expect(new GpuVm({ name: 'z', start: 0, range: PG, backend }).count).toBe(0);
      filler.bind(1, PG - 1);
      for (const v of vms) v.destroy();
      filler.destroy();
      vm.destroy();
    });

    it('op lists: a refused list leaves the pending one in place; opsApply never needs memory', () => {
      const vm = new GpuVm({ name: 'l', start: 0, range: 0x10000000, backend });
      const bo = new Bo({ name: 'a' });
      for (let i = 0; i < 64; i++) vm.bind(0x100000 + i * 2 * PG, PG, bo, i * PG);
      const snap = () => snapshotWorld([vm], [bo]);
      // a pending list that maps one page: it reserved what it needs
      let pending = vm.smMapOps({ addr: 0x50000, range: PG, bo, offset: 0 });
      const filler = exhaust();
      // lists that need more than the pending one holds: each success replaces
      // it, a refusal (if the leftovers run out first) must change nothing
      let pendingAddr = 0x50000;
      untilEnomem((i) => {
        try {
          filler.insert({ addr: 2 ** 39 + i * 2 * PG, range: PG }); // takes what is left over
        } catch (e) {
          if (!enomem(e)) throw e;
        }
        const addr = 0x100000 + (i % 60) * 2 * PG + PG / 2;
        pending = vm.smMapOps({ addr, range: 4 * PG, bo, offset: 0 });
        pendingAddr = addr;
      }, snap, 50, false);
      // bindArray with many new mappings: refused after some entries, all undone
      const entries = Array.from({ length: 400 }, (_, i) => ({ op: 'map' as const, addr: 0x4000000 + i * 2 * PG, range: PG, bo, offset: 0 }));
      untilEnomem(() => vm.bindArray([{ op: 'unmap', addr: 0x100000, range: PG }, ...entries]), snap, 1);
      // the pending list (made before the refusals) still applies, without memory
      pending.apply();
      expect(vm.find(pendingAddr, pendingAddr === 0x50000 ? PG : 4 * PG)!.bo).toBe(bo);
      setLimit(E, 0n);
      vm.bindArray(entries);
      expect(vm.findFirst(0x4000000, 1)!.bo).toBe(bo);
      filler.destroy();
      vm.destroy();
    });

    /**
     * Whether page-table storage is charged to this engine's budget (native:
     * once the addon hands the instance's budget to its page tables).
     */
    function pageTablesCharged(): boolean {
      const before = memStats(E).used;
      const probe = new PageTable({ backend, maxEntriesPerCall: 2 ** 32 - 1 });
      probe.bind(0, 2 ** 30, [[0x1000, 2 ** 30]]); // physically misaligned: 2^18 leaves of 4 KiB, 2 MiB of entries
      const grew = memStats(E).used > before;
      probe.destroy();
      return grew;
    }

    it('page tables and VMs share the engine budget', () => {
      expect(pageTablesCharged()).toBe(true);
    });

    it('a page-table bind that would not fit is ENOMEM, the table unchanged and usable', () => {
      const pt = new PageTable({ backend, maxEntriesPerCall: 2 ** 32 - 1, bigint: true });
      pt.bind(0x1000n, 0x3000n, [[0x10000000n, 0x3000n]]);
      const dump = () => pt.dump().map((e) => [e.va, e.pa, e.size]);
      const before = dump();
      const stats = pt.stats;
      setLimit(E, memStats(E).used + (1n << 20n));
      // 2^38 bytes of 4 KiB pages: 2^26 leaves, about 600 MB of entries
      const e = (() => {
        try {
          pt.bind(1n << 39n, 1n << 38n, [[0x1000n, 1n << 38n]]); // misaligned: every leaf is 4 KiB
        } catch (err) {
          return err;
        }
        return null;
      })();
      expect(enomem(e)).toBe(true);
      expect((e as Error).message).toMatch(/memory limit/);
      expect(dump()).toEqual(before);
      expect(pt.stats).toEqual(stats);
      // still usable, within the limit and after it is lifted
      pt.bind(0x10000n, 0x1000n, [[0x20000000n, 0x1000n]]);
      expect(pt.translate(0x10000n)!.pa).toBe(0x20000000n);
      setLimit(E, 0n);
      pt.bind(1n << 39n, 1n << 30n, [[0n, 1n << 30n]]);
      expect(pt.translate((1n << 39n) + 0x5000n)!.pa).toBe(0x5000n);
      pt.destroy();
    });
  });
}
