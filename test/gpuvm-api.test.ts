/**
 * GpuVm lookups, iteration, flags, number modes and errors.
 */
import { describe, expect, it } from 'vitest';
import { Bo, GpuVa, GpuVm, GpuVmError } from '../src/index.js';
import { backends } from './support/engines.js';

const U = 0x1000;

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof GpuVmError) return e.code;
    return (e as Error).name;
  }
  return 'no error';
}

describe.each(backends)('GpuVm on %s', (backend) => {
  const layout = (vm: GpuVm<number>) => [...vm.mappings()].map((v) => [v.addr / U, v.range / U]);

  describe('creation', () => {
    it('validates geometry (zero, overflow, reserve outside)', () => {
      expect(code(() => new GpuVm({ start: 0, range: 0, backend }))).toBe('EINVAL');
      expect(code(() => new GpuVm({ start: 2n ** 64n - 0x1000n, range: 0x1000n, bigint: true, backend }))).toBe('EINVAL');
      expect(code(() => new GpuVm({ start: 0x1000, range: 0x1000, reserve: { start: 0, range: 0x1000 }, backend }))).toBe('EINVAL');
      expect(code(() => new GpuVm({ start: 0, range: 2 ** 54, backend }))).toBe('RangeError');
      expect(code(() => new GpuVm({ start: -1, range: 10, backend }))).toBe('RangeError');
      expect(code(() => new GpuVm({ start: '0' as never, range: 10, backend }))).toBe('TypeError');
      expect(() => new GpuVm({ start: 0, range: 0, backend })).toThrow(/range must not be zero/);
    });

    it('covers the whole u64 space but one in bigint mode', () => {
      const vm = new GpuVm<bigint>({ start: 0n, range: 2n ** 64n - 1n, bigint: true, backend });
      const bo = new Bo();
      vm.bind(2n ** 64n - 0x2000n, 0x1000n, bo, 2n ** 64n - 0x1000n);
      const [va] = [...vm.mappings()];
      expect(va.addr).toBe(2n ** 64n - 0x2000n);
      expect(va.offset).toBe(2n ** 64n - 0x1000n);
      expect(vm.end).toBe(2n ** 64n - 1n);
      expect(code(() => vm.bind(2n ** 64n - 0x1000n, 0x1000n, bo, 0n))).toBe('EINVAL'); // end = 2^64 overflows
    });
  });

  describe('number mode', () => {
    it('rejects values above 2^53 with RangeError and never rounds', () => {
      const vm = new GpuVm({ start: 0, range: 2 ** 52, backend });
      expect(() => vm.bind(2 ** 53 + 2, U, null, 0)).toThrow(RangeError);
      expect(() => vm.bind(0, U, null, 2n ** 60n)).toThrow(/MAX_SAFE_INTEGER/);
      expect(() => vm.bind(0.5, U, null, 0)).toThrow(RangeError);
      expect(() => vm.bind(NaN, U, null, 0)).toThrow(RangeError);
      // bigints inside the safe range are fine in number mode; results are numbers
      vm.bind(0x1000n, 0x1000n, null, 5n);
      const va = vm.findFirst(0, 2 ** 52)!;
      expect(va.addr).toBe(0x1000);
      expect(va.offset).toBe(5);
      // a mapping whose split pieces could get an offset above 2^53 is refused
      // up front, by every call that maps, and nothing changes
      const bo = new Bo();
      const before = [...vm.mappings()].map((v) => v.toJSON());
      const big = Number.MAX_SAFE_INTEGER - 0x1000;
      expect(() => vm.bind(0x10000, 0x10000, bo, big)).toThrow(/offset \+ range = 0x2000000000efff is above 2\^53/);
      expect(() => vm.smMapOps({ addr: 0x10000, range: 0x10000, bo, offset: big })).toThrow(RangeError);
      expect(() => vm.insert({ addr: 0x10000, range: 0x10000, bo, offset: big })).toThrow(RangeError);
      expect(() => vm.bindArray([{ op: 'map', addr: 0x10000, range: 0x10000, bo, offset: big }])).toThrow(/bindArray\[0\]/);
      expect([...vm.mappings()].map((v) => v.toJSON())).toEqual(before);
      expect(bo.vmBos).toEqual([]);
      // offset + range = 2^53 exactly is the largest allowed: every piece stays readable
      vm.bind(0x10000, 0x10000, bo, 2 ** 53 - 0x10000);
      vm.unbind(0x14000, 0x8000);
      expect(vm.findFirst(0x1c000, 1)!.offset).toBe(2 ** 53 - 0x4000);
      expect([...vm.mappings()].map((v) => v.addr)).toEqual([0x1000, 0x10000, 0x1c000]);
    });
  });

  describe('lookups', () => {
    const setup = () => {
      const vm = new GpuVm({ start: 0x10 * U, range: 0x100 * U, reserve: { start: 0x10 * U, range: 2 * U }, backend });
      const bo = new Bo();
      vm.bind(0x20 * U, 4 * U, bo, 0);
      vm.bind(0x24 * U, 2 * U, bo, 0x40 * U);
      vm.bind(0x30 * U, 1 * U, null, 0);
      return vm;
    };

    it('findFirst: lowest overlapping, null for zero range', () => {
      const vm = setup();
      expect(vm.findFirst(0x22 * U, 0x100 * U)!.addr).toBe(0x20 * U);
      expect(vm.findFirst(0x1f * U, 2 * U)!.addr).toBe(0x20 * U);
      expect(vm.findFirst(0x26 * U, 10 * U + 1)!.addr).toBe(0x30 * U);
      expect(vm.findFirst(0x26 * U, 10 * U)).toBeNull(); // [0x26, 0x30) ends where the next one starts
      expect(vm.findFirst(0x20 * U, 0)).toBeNull();
      expect(vm.findFirst(0, 2 ** 52)!.isKernelNode).toBe(true); // the kernel node is visible
    });

    it('find: exact match only', () => {
      const vm = setup();
      expect(vm.find(0x20 * U, 4 * U)!.range).toBe(4 * U);
      expect(vm.find(0x20 * U, 3 * U)).toBeNull();
      expect(vm.find(0x21 * U, 3 * U)).toBeNull();
      expect(vm.find(0x10 * U, 2 * U)!.isKernelNode).toBe(true);
    });

    it('findPrev / findNext: the mapping containing start-1 / end, within valid space', () => {
      const vm = setup();
      expect(vm.findPrev(0x24 * U)!.addr).toBe(0x20 * U);
      expect(vm.findNext(0x24 * U)!.addr).toBe(0x24 * U);
      expect(vm.findPrev(0x25 * U)!.addr).toBe(0x24 * U); // covers start-1 although it also covers start
      expect(vm.findPrev(0x27 * U)).toBeNull(); // start-1 = 0x26 is free
      expect(vm.findPrev(0x29 * U)).toBeNull(); // a gap
      expect(vm.findNext(0x110 * U)).toBeNull(); // end of the VM
      expect(vm.findPrev(0x10 * U)).toBeNull(); // start of the VM
      expect(vm.findPrev(0x12 * U)).toBeNull(); // start-1 in the kernel node
      expect(vm.findNext(0x11 * U)).toBeNull();
    });

    it('isEmpty: the kernel node counts as occupied, zero range is empty', () => {
      const vm = setup();
      expect(vm.isEmpty(0x12 * U, 0xe * U)).toBe(true);
      expect(vm.isEmpty(0x11 * U, 2 * U)).toBe(false);
      expect(vm.isEmpty(0x26 * U, 10 * U)).toBe(true);
      expect(vm.isEmpty(0x26 * U, 10 * U + 1)).toBe(false);
      expect(vm.isEmpty(0x20 * U, 0)).toBe(true);
    });

    it('findFirstMany agrees with findFirst', () => {
      const vm = setup();
      const addrs = Array.from({ length: 0x120 }, (_, i) => i * U);
      const many = vm.findFirstMany(addrs);
      expect(many).toEqual(addrs.map((a) => vm.findFirst(a, 1)));
      const wide = vm.findFirstMany(addrs, 3 * U);
      expect(wide).toEqual(addrs.map((a) => vm.findFirst(a, 3 * U)));
      expect(vm.findFirstMany(addrs, 0).every((x) => x === null)).toBe(true);
    });

    it('findFirstMany over several engine chunks, cold, agrees with findFirst', () => {
      const vm = new GpuVm({ start: 0, range: 0x100000 * U, backend });
      for (let i = 0; i < 3000; i++) vm.bind(i * 4 * U, 2 * U, null, i);
      const addrs = Array.from({ length: 13000 }, (_, i) => i * U); // 3 chunks of 5461
      const many = vm.findFirstMany(addrs); // nothing materialised yet: every hit is new
      const one = addrs.map((a) => vm.findFirst(a, 1));
      expect(many).toEqual(one);
      expect(many.filter((v) => v !== null).length).toBe(6000);
      expect(many[4]).toBe(one[4]); // the same cached objects
    });

    it('returns the same object for the same live mapping', () => {
      const vm = setup();
      const a = vm.findFirst(0x20 * U, 1)!;
      a.data = 'mine';
      expect(vm.find(0x20 * U, 4 * U)).toBe(a);
      expect([...vm.mappings()].find((v) => v.addr === 0x20 * U)!.data).toBe('mine');
    });
  });

  describe('iteration', () => {
    it('yields overlapping mappings in order, including one that starts before the range', () => {
      const vm = new GpuVm({ start: 0, range: 0x1000 * U, backend });
      for (let i = 0; i < 200; i++) vm.bind(i * 3 * U, 2 * U, null, 0);
      expect([...vm.mappings(U, 7 * U)].map((v) => v.addr / U)).toEqual([0, 3, 6]);
      expect([...vm].length).toBe(200);
      expect([...vm.mappings(0, 0)]).toEqual([]);
    });

    it('is safe against removing the current mapping and sees later changes', () => {
      const vm = new GpuVm({ start: 0, range: 0x1000 * U, backend });
      for (let i = 0; i < 100; i++) vm.bind(i * 2 * U, U, null, 0);
      const seen: number[] = [];
      for (const va of vm.mappings()) {
        seen.push(va.addr / U);
        vm.unbind(va.addr, va.range); // remove the current one
        if (va.addr === 10 * U) vm.unbind(12 * U, 2 * U); // and one ahead
      }
      expect(seen.length).toBe(99);
      expect(seen).not.toContain(12);
      expect(vm.count).toBe(0);
    });
  });

  describe('flags and data', () => {
    it('INVALIDATED, SPARSE and user bits with a width check; pieces inherit flags', () => {
      const vm = new GpuVm({ start: 0, range: 0x100 * U, backend });
      const bo = new Bo();
      vm.bind(0, 4 * U, bo, 0);
      const va = vm.findFirst(0, 1)!;
      expect(va.flags).toBe(0);
      const READ_ONLY = GpuVa.USERBITS;
      const TOP = GpuVa.USERBITS << 29; // bit 31, the last user bit
      va.flags = (READ_ONLY | TOP) >>> 0;
      va.invalidate(true);
      expect(va.invalidated).toBe(true);
      expect(va.flags).toBe((READ_ONLY | GpuVa.INVALIDATED | TOP) >>> 0);
      expect(() => (va.flags = 2 ** 32)).toThrow(RangeError);
      expect(() => (va.flags = -1)).toThrow(RangeError);
      expect(() => (va.flags = 1.5)).toThrow(TypeError);
      vm.unbind(U, U);
      const pieces = [...vm.mappings()];
      const all = (READ_ONLY | GpuVa.INVALIDATED | TOP) >>> 0;
      expect(pieces.map((p) => [p.addr / U, p.flags])).toEqual([[0, all], [2, all]]);
      expect(va.live).toBe(false);
      expect(() => va.flags).toThrow(/no longer exists/);
    });
  });

  describe('stats', () => {
    it('counts mappings, tree nodes and engine bytes, and shrinks back', () => {
      const vm = new GpuVm({ start: 0, range: 0x100000 * U, backend });
      const empty = vm.stats();
      expect(empty).toEqual({ mappings: 0, treeNodes: 1, bytes: expect.any(Number) });
      for (let i = 0; i < 1000; i++) vm.bind(i * 2 * U, U, null, 0);
      const full = vm.stats();
      expect(full.mappings).toBe(1000);
      expect(full.mappings).toBe(vm.count);
      expect(full.treeNodes).toBeGreaterThanOrEqual(Math.ceil(1000 / 16));
      expect(full.treeNodes).toBeLessThan(1000 / 4 + 20); // nodes at least a quarter full
      expect(full.bytes).toBeGreaterThan(empty.bytes + 1000 * 16);
      vm.unbind(0, 2000 * U);
      expect(vm.stats().mappings).toBe(0);
      expect(vm.stats().treeNodes).toBe(1);
    });
  });

  describe('insert / remove', () => {
    it('insert: EEXIST on overlap, EINVAL outside; remove: the kernel node is EPERM', () => {
      const vm = new GpuVm({ start: 0x10 * U, range: 0x100 * U, reserve: { start: 0x10 * U, range: U }, backend });
      const a = vm.insert({ addr: 0x20 * U, range: 2 * U });
      expect(code(() => vm.insert({ addr: 0x21 * U, range: 2 * U }))).toBe('EEXIST');
      expect(code(() => vm.insert({ addr: 0x1f * U, range: 2 * U }))).toBe('EEXIST');
      expect(code(() => vm.insert({ addr: 0x10 * U, range: U }))).toBe('EINVAL');
      expect(code(() => vm.insert({ addr: 0x200 * U, range: U }))).toBe('EINVAL');
      expect(code(() => vm.insert({ addr: 0x30 * U, range: 0 }))).toBe('EINVAL');
      expect(vm.find(0x20 * U, 2 * U)).toBe(a);
      expect(code(() => vm.remove(vm.kernelNode!))).toBe('EPERM');
      vm.remove(a);
      expect(code(() => vm.remove(a))).toBe('EINVAL');
      expect(layout(vm)).toEqual([[0x10, 1]]);
    });
  });

  describe('op lists', () => {
    it('a pending list goes stale when another is made; a partly applied one blocks (EBUSY)', () => {
      const vm = new GpuVm({ start: 0, range: 0x100 * U, backend });
      const bo = new Bo();
      const l1 = vm.smMapOps({ addr: 0, range: 4 * U, bo, offset: 0 });
      const l2 = vm.smMapOps({ addr: 0, range: 2 * U, bo, offset: 0 });
      expect(l1.state).toBe('stale');
      expect(code(() => l1.apply())).toBe('EINVAL');
      l2.apply();
      expect(layout(vm)).toEqual([[0, 2]]);
      const l3 = vm.smMapOps({ addr: U, range: 4 * U, bo, offset: 0 });
      expect(l3.length).toBe(2);
      vm.vaRemap(l3.get(0) as never);
      expect(code(() => vm.smUnmapOps(0, U))).toBe('EBUSY');
      expect(code(() => vm.bind(0, U, null))).toBe('EBUSY');
      l3.apply();
      expect(layout(vm)).toEqual([[0, 1], [1, 4]]);
      expect(l3.state).toBe('applied');
    });

    it('applying never needs the engine to allocate: a big list applies after other VMs grew', () => {
      const vm = new GpuVm({ start: 0, range: 0x100000 * U, backend });
      for (let i = 0; i < 1000; i++) vm.bind(i * 2 * U, U, null, 0);
      const list = vm.smMapOps({ addr: 0, range: 2000 * U, bo: null });
      const other = new GpuVm({ start: 0, range: 0x100000 * U, backend });
      for (let i = 0; i < 5000; i++) other.bind(i * 2 * U, U, null, 0);
      list.apply();
      expect(vm.count).toBe(1);
      other.destroy();
    });
  });

  describe('destroy', () => {
    it('makes the VM and its objects fail with EINVAL, not crash', () => {
      const vm = new GpuVm({ start: 0, range: 0x100 * U, backend });
      const bo = new Bo();
      vm.bind(0, U, bo, 0);
      const va = vm.findFirst(0, 1)!;
      const vb = bo.vmBos[0];
      vm.destroy();
      expect(vm.destroyed).toBe(true);
      expect(bo.vmBos).toEqual([]);
      expect(code(() => vm.bind(0, U, null))).toBe('EINVAL');
      expect(code(() => vm.findFirst(0, U))).toBe('EINVAL');
      expect(code(() => vm.count)).toBe('EINVAL');
      expect(code(() => va.flags)).toBe('EINVAL');
      expect(va.live).toBe(false);
      expect(code(() => vb.put())).toBe('EINVAL');
      expect(() => vm.bind(0, U, null)).toThrow(/destroyed/);
      vm.destroy(); // twice is fine
    });
  });
});
