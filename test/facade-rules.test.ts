/**
 * The facade rule, case by case, on both engines: every public call reads and
 * checks all of its arguments (getters included) before it writes io or
 * changes anything; user callbacks run only where the engine and io are
 * consistent; op objects are read-only views of their list; forged objects
 * are refused. Each case is a reproduction of a defect found by fuzzing.
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BindRequests, Bo, CpuMm, DevMem, engineMemory, GpuVa, GpuVm, GpuVmError, MAX_BATCH, OpList, PageTable, setEngineMemoryLimit, SvmDriver, VmBo, type MapOp } from '../src/index.js';
import { backends } from './support/engines.js';
import { snapshotWorld, thrown } from './support/state.js';

const PG = 0x1000;

describe.each(backends)('facade rules on %s', (backend) => {
  const mk = (name = 'vm', range = 2 ** 32) => new GpuVm({ name, start: 0, range, backend });

  describe('arguments are read before io is written', () => {
    it('smMapOps: a getter that calls another VM does not redirect the request', () => {
      const vm = mk('a');
      const other = mk('b');
      other.bind(0x8000, PG, null, 0);
      const bo = new Bo();
      const list = vm.smMapOps({
        addr: 0x1000,
        get range() {
          expect(other.findFirst(0x8000, PG)!.addr).toBe(0x8000);
          return 0x1000;
        },
        bo,
        offset: 0,
      });
      const op = list.get(0) as MapOp<number>;
      expect([op.kind, op.addr, op.range, op.bo]).toEqual(['map', 0x1000, 0x1000, bo]);
      list.apply();
      expect(vm.findFirst(0, 2 ** 32)!.toJSON()).toEqual({ addr: '0x1000', range: '0x1000', bo: bo.id, offset: '0x0' });
      expect(vm.findFirst(0x8000, PG)).toBeNull();
    });

    it('insert: the returned GpuVa and the engine agree when a getter re-enters', () => {
      const vm = mk();
      vm.bind(0x20000, PG, null, 0);
      const va = vm.insert({
        addr: 0x3000,
        get range() {
          vm.findFirst(0x20000, PG); // writes io words the call already filled
          return 0x2000;
        },
        offset: 7,
      });
      expect([va.addr, va.range, va.offset]).toEqual([0x3000, 0x2000, 7]);
      const seen = vm.findFirst(0x3000, 1)!;
      expect(seen).toBe(va);
      expect(vm.find(0x3000, 0x2000)).toBe(va);
    });

    it('bindArray: entry getters that re-enter are read once, before staging', () => {
      const vm = mk();
      const other = mk('o');
      const bo = new Bo();
      let reads = 0;
      const entries = [
        { op: 'map' as const, addr: 0x1000, range: 0x1000, bo, offset: 0 },
        {
          op: 'map' as const,
          get addr() {
            reads++;
            other.bind(0x5000 + reads * PG, PG, null, 0);
            vm.isEmpty(0x9000, PG);
            return 0x4000;
          },
          range: 0x2000,
          bo: null,
        },
      ];
      const list = vm.bindArray(entries);
      expect(reads).toBe(1);
      expect(list.length).toBe(2);
      expect([...vm.mappings()].map((v) => [v.addr, v.range])).toEqual([
        [0x1000, 0x1000],
        [0x4000, 0x2000],
      ]);
    });

    it('findFirstMany: element getters run before the batch is written', () => {
      const vm = mk();
      vm.bind(0x1000, PG, null, 0);
      vm.bind(0x9000, PG, null, 0);
      const addrs = {
        length: 3,
        0: 0x1000,
        get 1() {
          vm.findFirst(0x9000, 1);
          return 0x9000;
        },
        2: 0x5000,
      };
      expect(vm.findFirstMany(addrs).map((v) => v?.addr ?? null)).toEqual([0x1000, 0x9000, null]);
    });

    it('constructor: a reserve getter that creates another VM does not disturb this one', () => {
      const made: GpuVm[] = [];
      const vm = new GpuVm({
        name: 'r',
        start: 0x10000,
        range: 0x100000,
        backend,
        get reserve() {
          made.push(new GpuVm({ start: 0, range: 0x4000, backend }));
          return { start: 0x80000, range: 0x10000 };
        },
      });
      expect([vm.start, vm.range]).toEqual([0x10000, 0x100000]);
      expect(vm.kernelNode!.addr).toBe(0x80000);
      expect(made[0].range).toBe(0x4000);
    });

    it('a getter that throws changes nothing, in every call that takes an object', () => {
      const vm = mk();
      const bo = new Bo({ name: 'x' });
      vm.bind(0x1000, 0x4000, bo, 0);
      const before = snapshotWorld([vm], [bo]);
      const boom = () => {
        throw new Error('getter');
      };
      const hostile = { addr: 0x2000, get range(): number { return boom() as never; }, bo };
      expect(() => vm.smMapOps(hostile)).toThrow('getter');
      expect(() => vm.insert(hostile)).toThrow('getter');
      expect(() => vm.touchedBos({ op: 'map', ...{ addr: 0x2000, bo }, get range(): number { return boom() as never; } })).toThrow('getter');
      const hostileEntry = { op: 'map' as const, addr: 0x2000, get range(): number { return boom() as never; }, bo };
      expect(() => vm.bindArray([{ op: 'unmap', addr: 0x1000, range: 0x1000 }, hostileEntry])).toThrow('getter');
      expect(() => vm.findFirstMany({ length: 2, 0: 0x1000, get 1(): number { return boom() as never; } })).toThrow('getter');
      expect(() => vm.smMap(hostile, { map() {}, remap() {}, unmap() {} })).toThrow('getter');
      expect(snapshotWorld([vm], [bo])).toEqual(before);
    });
  });

  describe('forged and foreign objects', () => {
    it('what a GpuVm or a Bo was made with cannot be reassigned, and calls read numbers as before', () => {
      const vm = mk('fixed', 2 ** 40);
      const bo = new Bo({ name: 'b', size: 4096 });
      const other = mk('other');
      const fields: [object, string, unknown][] = [
        [vm, 'bigint', true],
        [vm, 'name', 'renamed'],
        [vm, 'backend', 'wasm'],
        [vm, 'start', 0x1000],
        [vm, 'range', 1],
        [vm, 'end', 2],
        [bo, 'id', 12345],
        [bo, 'name', 'renamed'],
        [bo, 'size', 1],
        [bo, 'privateTo', other],
      ];
      for (const [obj, key, value] of fields) {
        const before = (obj as Record<string, unknown>)[key];
        expect(() => {
          (obj as Record<string, unknown>)[key] = value;
        }, key).toThrow(TypeError);
        expect((obj as Record<string, unknown>)[key], key).toBe(before);
      }
      // still a number VM: an address above 2^53 is refused as one, nothing changes
      expect(() => vm.bind(2n ** 60n as never, 0x1000, bo, 0)).toThrow(RangeError);
      expect(vm.count).toBe(0);
      vm.bind(0x1000, 0x1000, bo, 0);
      expect(vm.findFirst(0x1000, 1)!.bo).toBe(bo);
      expect(vm.findBo(bo)!.bo.id).toBe(bo.id);
      vm.destroy();
      other.destroy();
    });

    it('the settings the other classes work from cannot be reassigned either', () => {
      const pt = new PageTable({ backend });
      const mm = new CpuMm({ backend });
      const dm = new DevMem({ size: 0x200000, backend });
      const drv = new SvmDriver({ mm, devmem: dm, start: 0, range: 0x4000_0000, notifierSize: 0x20_0000, chunks: [0x20_0000, 0x1000] });
      const reqs = new BindRequests(4);
      const cases: [string, object, string[]][] = [
        ['PageTable', pt, ['backend', 'bigint', 'compact', 'shifts', 'top', 'leaf']],
        ['CpuMm', mm, ['bigint']],
        ['DevMem', dm, ['bigint']],
        ['SvmDriver', drv, ['pageTable', 'svm']],
        ['GpuSvm', drv.svm, ['mm', 'devmem', 'bigint', 'retries', 'timeslice']],
        ['BindRequests', reqs, ['capacity', 'bigint', 'kind', 'addr', 'range', 'offset', 'bo', 'results']],
      ];
      for (const [name, obj, keys] of cases) {
        for (const key of keys) {
          const o = obj as Record<string, unknown>;
          const before = o[key];
          expect(() => {
            o[key] = typeof before === 'boolean' ? !before : null;
          }, `${name}.${key}`).toThrow(TypeError);
          expect(o[key], `${name}.${key}`).toBe(before);
        }
      }
      // what stays settable does
      reqs.length = 2;
      expect(reqs.length).toBe(2);
      drv.trace = null;
      pt.destroy();
    });

    it('a forged Bo, GpuVa, VmBo or OpList is a TypeError on every engine, and changes nothing', () => {
      const vm = mk();
      const bo = new Bo();
      vm.bind(0x1000, PG, bo, 0);
      const before = snapshotWorld([vm], [bo]);
      // (own properties shadow the prototype's getters, as a forger would)
      const fakeBo = Object.defineProperties(Object.create(Bo.prototype), { id: { value: bo.id }, name: { value: 'fake' } });
      const proxyBo = new Proxy(bo, {});
      const fakeVa = Object.create(GpuVa.prototype);
      const fakeVmBo = Object.create(VmBo.prototype);
      for (const f of [
        () => vm.bind(0x3000, PG, fakeBo, 0),
        () => vm.bind(0x3000, PG, proxyBo, 0),
        () => vm.obtainBo(fakeBo),
        () => vm.findBo(proxyBo),
        () => vm.smMapOps({ addr: 0x3000, range: PG, bo: fakeBo }),
        () => vm.bindArray([{ op: 'unmapAll', bo: fakeBo }]),
        () => vm.remove(fakeVa),
        () => vm.obtainPrealloc(fakeVmBo),
        () => fakeVa.unlink(),
      ]) {
        expect(thrown(f)).toBeInstanceOf(TypeError);
      }
      expect(() => new (GpuVa as unknown as new () => GpuVa)()).toThrow(TypeError);
      expect(() => new (VmBo as unknown as new () => VmBo)()).toThrow(TypeError);
      expect(() => new (OpList as unknown as new () => OpList)()).toThrow(TypeError);
      expect(snapshotWorld([vm], [bo])).toEqual(before);
    });
  });

  describe('op objects are read-only views of their list', () => {
    it('a modified op cannot make the VM report what the engine did not do', () => {
      const vm = mk();
      const bo = new Bo();
      const list = vm.smMapOps({ addr: 0x1000, range: PG, bo, offset: 0 });
      const op = list.get(0) as MapOp<number>;
      // a read-only view: nothing can be written, and it still prints its fields
      expect(inspect(op)).toMatch(/kind: 'map'.*addr: 4096.*range: 4096/s);
      expect(inspect(list)).toBe('OpList of 1 ops (pending)');
      expect(JSON.parse(JSON.stringify(op))).toMatchObject({ kind: 'map', index: 0, addr: '0x1000', range: '0x1000', offset: '0x0' });
      expect(() => {
        (op as { addr: number }).addr = 0x8000;
      }).toThrow(TypeError);
      const va = vm.vaMap(op);
      expect(va.addr).toBe(0x1000);
      expect(inspect(va)).toBe(`GpuVa [0x1000, 0x2000) -> ${bo.name}+0x0`);
      expect(inspect(va.vmBo)).toBe(`VmBo ${bo.name} in vm`);
      expect(vm.findFirst(0, 2 ** 32)).toBe(va);
      expect([...vm.mappings()].map((v) => v.addr)).toEqual([0x1000]);
    });

    it('a hand-made op naming a real list is refused, and the list stays pending', () => {
      const vm = mk();
      vm.bind(0x1000, 0x3000, null, 0);
      const list = vm.smUnmapOps(0x2000, PG);
      const before = snapshotWorld([vm], []);
      const forged = { kind: 'remap', list, index: 0, unmap: { va: vm.findFirst(0x1000, 1), keep: false }, prev: null, next: null };
      expect(() => vm.vaRemap(forged as never)).toThrow(TypeError);
      expect(() => vm.vaMap({ kind: 'map', list, index: 0 } as never)).toThrow(TypeError);
      expect(() => vm.remapHole(forged as never)).toThrow(TypeError);
      expect(list.state).toBe('pending');
      expect(snapshotWorld([vm], [])).toEqual(before);
      // the real op still works, and remapHole reads the list's own record
      const real = list.get(0);
      expect(real.kind).toBe('remap');
      expect(vm.remapHole(real as never)).toEqual({ addr: 0x2000, range: PG });
      list.apply();
      expect([...vm.mappings()].map((v) => [v.addr, v.range])).toEqual([
        [0x1000, PG],
        [0x3000, PG],
      ]);
    });
  });

  describe('BOs stay known while a mapping names them', () => {
    it('unlink without remove leaves the VM fully usable', () => {
      const vm = mk();
      const bo = new Bo({ name: 'u' });
      vm.bind(0x1000, 0x2000, bo, 0);
      const va = vm.findFirst(0x1000, 1)!;
      va.unlink();
      expect(va.vmBo).toBeNull();
      expect(bo.vmBos).toEqual([]); // the last VmBo went with the unlink
      expect([...vm.mappings()].map((v) => v.bo)).toEqual([bo]);
      const ops = vm.smUnmapOps(0x1000, PG);
      expect(ops.get(0).kind).toBe('remap');
      ops.drop();
      const applied = vm.bindArray([{ op: 'unmap', addr: 0x1000, range: PG }]);
      expect(applied.length).toBe(1);
      expect([...vm.mappings()].map((v) => [v.addr, v.bo])).toEqual([[0x2000, bo]]);
      vm.unbind(0, 2 ** 32);
      expect(vm.count).toBe(0);
    });
  });

  describe('iteration', () => {
    it('destroying the VM inside the loop ends it with EINVAL', () => {
      const vm = mk();
      const bo = new Bo();
      for (let i = 0; i < 40; i++) vm.bind(i * 2 * PG, PG, i % 2 ? bo : null, 0);
      let n = 0;
      const err = thrown(() => {
        for (const _ of vm.mappings()) {
          if (++n === 3) vm.destroy();
        }
      });
      expect(err).toBeInstanceOf(GpuVmError);
      expect((err as GpuVmError).code).toBe('EINVAL');
      expect(err.message).toMatch(/destroyed while iterating/);
    });

    it('never goes back: a body that replaces the current mapping by a larger one', () => {
      const vm = mk();
      for (let i = 1; i <= 8; i++) vm.bind(i * 4 * PG, PG, null, 0);
      const seen: [number, number][] = [];
      for (const va of vm.mappings()) {
        seen.push([va.addr, va.end]);
        // replace it by one that starts two pages lower and covers the next gap
        if (va.addr === 8 * PG) vm.bind(6 * PG, 5 * PG, null, 0);
      }
      for (let i = 1; i < seen.length; i++) expect(seen[i][0]).toBeGreaterThanOrEqual(seen[i - 1][1]);
      expect(seen.map((s) => s[0] / PG)).toEqual([4, 8, 12, 16, 20, 24, 28, 32]);
    });
  });

  describe('callbacks run where the engine is consistent', () => {
    it('smMap steps are read once; a step may look up and bind in other VMs', () => {
      const vm = mk();
      const other = mk('o');
      vm.bind(0x1000, 0x4000, null, 0);
      let mapReads = 0;
      const steps = {
        get map() {
          mapReads++;
          return (op: MapOp<number>) => {
            other.bind(0x1000, PG, null, 0);
            expect(vm.findFirst(0x2000, 1)).toBeNull(); // the remap before was applied
            vm.vaMap(op);
          };
        },
        remap: (op: never) => {
          other.findFirst(0, 2 ** 32);
          vm.vaRemap(op);
        },
        unmap: (op: never) => vm.vaUnmap(op),
      };
      vm.smMap({ addr: 0x2000, range: 0x2000, bo: null, offset: 9 }, steps);
      expect(mapReads).toBe(1);
      expect([...vm.mappings()].map((v) => [v.addr, v.range, v.offset])).toEqual([
        [0x1000, PG, 0],
        [0x2000, 0x2000, 9],
        [0x4000, PG, 0x3000],
      ]);
      expect(other.count).toBe(1);
    });

    it('validate: fn may destroy the VM', () => {
      const vm = mk();
      const a = new Bo();
      const b = new Bo();
      vm.bind(0x1000, PG, a, 0);
      vm.bind(0x2000, PG, b, 0);
      vm.findBo(a)!.evict(true);
      vm.findBo(b)!.evict(true);
      const seen: Bo[] = [];
      vm.validate((vb) => {
        seen.push(vb.bo);
        vm.destroy();
      });
      expect(seen).toEqual([a]);
      expect(vm.destroyed).toBe(true);
    });
  });

  describe('lifetime', () => {
    it('a constructor that fails leaves no engine VM behind', () => {
      new GpuVm({ start: 0, range: 0x1000, backend }).destroy(); // warm up the pools
      const before = engineMemory(backend).used;
      const bad: unknown[] = [
        { start: 0, range: 0x1000, reserve: {}, backend },
        { start: 0, range: 0x1000, reserve: { start: 0x8000, range: 0x1000 }, backend }, // outside the VM
        { start: 0, range: 0, backend },
        { start: 0, get range(): number { throw new Error('getter'); }, backend },
        { start: 0, range: 0x1000, bigint: 'yes', backend },
      ];
      for (let i = 0; i < 20_000; i++) {
        const o = bad[i % bad.length];
        expect(() => new GpuVm(o as never)).toThrow();
      }
      expect(engineMemory(backend).used).toBe(before);
    });
  });

  describe('a destroyed VM', () => {
    it('refuses every call with EINVAL: empty queries and its kernel node too, bad arguments first', () => {
      const vm = new GpuVm({ name: 'k', start: 0, range: 0x100000, reserve: { start: 0x80000, range: 0x2000 }, backend });
      const bo = new Bo();
      vm.bind(0x1000, PG, bo, 0);
      const k = vm.kernelNode!;
      const va = vm.findFirst(0x1000, 1)!;
      vm.destroy();
      const before = snapshotWorld([vm], [bo]);
      for (const f of [
        () => vm.find(0x1000, 0),
        () => vm.findFirst(0x1000, 0),
        () => vm.isEmpty(0x1000, 0),
        () => vm.findPrev(0),
        () => vm.findFirstMany([0x1000], 0),
        () => vm.kernelNode,
        () => vm.remove(k),
        () => {
          k.flags = 0;
        },
        () => {
          va.flags = 0;
        },
      ]) {
        const e = thrown(f);
        expect(e).toBeInstanceOf(GpuVmError);
        expect((e as GpuVmError).code).toBe('EINVAL');
        expect(e.message).toMatch(/"k" was destroyed/);
      }
      // a bad argument is still reported as such
      expect(thrown(() => vm.find(-1, 0))).toBeInstanceOf(RangeError);
      expect(thrown(() => vm.findPrev('0' as never))).toBeInstanceOf(TypeError);
      expect(thrown(() => (k.flags = 1.5))).toBeInstanceOf(TypeError);
      expect(snapshotWorld([vm], [bo])).toEqual(before);
    });
  });

  describe('limits', () => {
    it('setEngineMemoryLimit: ENOMEM with nothing changed, then more room lets the VM go on', () => {
      expect(() => setEngineMemoryLimit(-1, backend)).toThrow(RangeError);
      expect(() => setEngineMemoryLimit('1' as never, backend)).toThrow(TypeError);
      expect(() => setEngineMemoryLimit(1, 'NATIVE' as never)).toThrow(TypeError);
      const vm = mk('mem', 2 ** 40);
      const bo = new Bo();
      const m0 = engineMemory(backend);
      expect(m0.backend).toBe(backend);
      expect(m0.used).toBeGreaterThan(0);
      setEngineMemoryLimit(m0.used + 64 * 1024, backend);
      try {
        expect(engineMemory(backend).limit).toBe(m0.used + 64 * 1024);
        let i = 0;
        let err: Error | null = null;
        for (; i < 1_000_000 && err === null; i++) {
          const snap = i % 512 === 0 ? snapshotWorld([vm], [bo]) : null;
          try {
            vm.bind(i * 2 * PG, PG, i % 3 ? bo : null, i * PG);
          } catch (e) {
            err = e as Error;
            if (snap) expect(snapshotWorld([vm], [bo])).toEqual(snap);
          }
        }
        expect(err).toBeInstanceOf(GpuVmError);
        expect((err as GpuVmError).code).toBe('ENOMEM');
        const count = vm.count;
        expect(count).toBe(i - 1);
        // the failed bind changed nothing, and reads still work
        expect(vm.findFirst((i - 1) * 2 * PG, PG)).toBeNull();
        expect(vm.findFirst((i - 2) * 2 * PG, PG)!.addr).toBe((i - 2) * 2 * PG);
      } finally {
        setEngineMemoryLimit(null, backend);
      }
      expect(engineMemory(backend).limit).toBeNull();
      const n = vm.count;
      for (let k = 0; k < 5000; k++) vm.bind((n + k) * 2 * PG, PG, bo, 0);
      expect(vm.count).toBe(n + 5000);
      vm.destroy();
    });


    it('findFirstMany refuses batches it cannot return, before reading them', () => {
      const vm = mk();
      const huge = {
        length: 1e9,
        get 0(): number {
          throw new Error('must not be read');
        },
      };
      expect(() => vm.findFirstMany(huge)).toThrow(RangeError);
      expect(() => vm.findFirstMany({ length: MAX_BATCH + 1 } as never)).toThrow(/at most 16777216/);
      expect(() => vm.findFirstMany({ length: NaN } as never)).toThrow(TypeError);
      expect(() => vm.findFirstMany({ length: -1 } as never)).toThrow(TypeError);
      expect(vm.findFirstMany({ length: 0 })).toEqual([]);
    });
  });
});
