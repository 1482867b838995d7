/**
 * Engine edges: the over-put rule (a put may not drop a reference that a
 * linked mapping or a pending list holds) and the kernel's prefetch edges (a
 * zero-length prefetch lists nothing; a prefetch reaching outside the VA
 * space lists what it overlaps; only u64 overflow is EINVAL), through the
 * facade, on every engine.
 */
import { describe, expect, it } from 'vitest';
import { Bo, GpuVm, GpuVmError, type PrefetchOp } from '../src/index.js';
import { backends } from './support/engines.js';
import { snapshotWorld, thrown } from './support/state.js';

const PG = 0x1000;
const TWO64 = 1n << 64n;

function code(f: () => unknown): string {
  const e = thrown(f);
  return e instanceof GpuVmError ? e.code : e.name;
}

for (const backend of backends) {
  describe(`over-put on ${backend}`, () => {
    it('a put beyond the holders is EINVAL and changes nothing (the issue reproduction)', () => {
      const vm = new GpuVm({ name: 'v', start: 0, range: 0x100000, backend });
      const b1 = new Bo({ name: 'b1' });
      const b2 = new Bo({ name: 'b2' });
      vm.bind(0x1000, 0x1000, b1, 0);
      const vb = vm.findBo(b1)!;
      expect(vb.refcount).toBe(2); // the mapping's and ours
      vb.put();
      const before = snapshotWorld([vm], [b1, b2]);
      expect(code(() => vb.put())).toBe('EINVAL');
      expect(snapshotWorld([vm], [b1, b2])).toEqual(before);
      expect(vb.refcount).toBe(1);
      vm.bind(0x5000, 0x1000, b2, 0);
      expect(vm.findFirst(0x1000, 1)!.vmBo!.bo).toBe(b1);
      expect(vm.findFirst(0x5000, 1)!.vmBo!.bo).toBe(b2);
      expect(vm.findBo(b1)).toBe(vb);
      // the mapping's own reference still goes with the mapping
      vm.unbind(0x1000, 0x1000);
      expect(vm.findFirst(0x1000, 1)).toBe(null);
      expect(vm.findFirst(0x5000, 1)!.vmBo!.bo).toBe(b2);
      vm.destroy();
    });

    it("a pending list's reference is not the caller's to drop", () => {
      const vm = new GpuVm({ name: 'v', start: 0, range: 0x100000, backend });
      const bo = new Bo({ name: 'b' });
      const vb = vm.obtainBo(bo);
      const list = vm.smMapOps({ addr: 0x2000, range: 0x1000, bo, offset: 0 });
      expect(vb.refcount).toBe(2); // ours and the list's
      vb.put();
      expect(code(() => vb.put())).toBe('EINVAL');
      list.apply();
      expect(vm.findFirst(0x2000, 1)!.vmBo).toBe(vb);
      expect(vb.refcount).toBe(1);
      vm.destroy();
    });
  });

  describe(`prefetch edges on ${backend}`, () => {
    const make = () => {
      const vm = new GpuVm({ name: 'p', start: 0x10000, range: 0x100000, reserve: { start: 0x10000, range: 0x1000 }, backend, bigint: true });
      const bo = new Bo({ name: 'b' });
      vm.bind(0x20000, 0x2000, bo, 0);
      vm.bind(0x10f000, 0x1000, bo, 0x2000); // the last page of the VA space
      return { vm, bo };
    };

    it('a zero-length prefetch is success with no ops, wherever it is', () => {
      const { vm, bo } = make();
      const before = snapshotWorld([vm], [bo]);
      for (const addr of [0x20000n, 0n, 0x500000n, TWO64 - 1n]) {
        const l = vm.prefetchOps(addr, 0n);
        expect(l.length).toBe(0);
        expect([...l]).toEqual([]);
      }
      expect(vm.bindArray([{ op: 'prefetch', addr: 0x20000n, range: 0n }]).length).toBe(0);
      expect(snapshotWorld([vm], [bo])).toEqual(before);
    });

    it('a prefetch reaching outside the VA space lists the mappings it overlaps', () => {
      const { vm } = make();
      // from below the start through the first mapping; the kernel node is skipped
      let l = vm.prefetchOps(0n, 0x21000n);
      expect([...l].map((op) => [op.kind, (op as PrefetchOp<bigint>).va.addr])).toEqual([['prefetch', 0x20000n]]);
      // past the end, through the last page
      l = vm.prefetchOps(0x10f800n, 0x100000n);
      expect([...l].map((op) => [op.kind, (op as PrefetchOp<bigint>).va.addr, (op as PrefetchOp<bigint>).va.range])).toEqual([['prefetch', 0x10f000n, 0x1000n]]);
      // wholly outside: nothing
      expect(vm.prefetchOps(0x200000n, 0x1000n).length).toBe(0);
      // up to the last byte of u64 (no overflow)
      expect(vm.prefetchOps(0x20000n, TWO64 - 1n - 0x20000n).length).toBe(2);
      // the same in a transaction
      const t = vm.bindArray([{ op: 'prefetch', addr: 0n, range: 0x200000n }]);
      expect([...t].map((op) => op.kind)).toEqual(['prefetch', 'prefetch']);
    });

    it('only an overflowing prefetch is EINVAL (an end of exactly 2^64 included), changing nothing', () => {
      const { vm, bo } = make();
      const pending = vm.smUnmapOps(0x20000n, 0x1000n);
      const before = snapshotWorld([vm], [bo]);
      expect(code(() => vm.prefetchOps(TWO64 - 0x1000n, 0x2000n))).toBe('EINVAL');
      expect(code(() => vm.prefetchOps(TWO64 - 0x1000n, 0x1000n))).toBe('EINVAL');
      expect(code(() => vm.bindArray([{ op: 'prefetch', addr: TWO64 - 0x1000n, range: 0x1000n }]))).toBe('EINVAL');
      expect(snapshotWorld([vm], [bo])).toEqual(before);
      pending.apply(); // the untouched list survived the failures
      expect(vm.findFirst(0x20000n, 1n)).toBe(null);
    });

    it('an empty op list from a fresh VM reads back empty (no copy from a null list)', () => {
      const vm = new GpuVm({ name: 'e', start: 0, range: 0x10000, backend });
      expect(vm.prefetchOps(0x1000, 0x1000).length).toBe(0);
      expect(vm.smUnmapOps(0x1000, 0x1000).toArray()).toEqual([]);
      vm.destroy();
    });
  });
}
