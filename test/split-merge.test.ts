/**
 * The 15 split/merge cases documented with the kernel's GPU VA manager, the
 * derived cases D1-D8 and the sm_unmap cases U1-U9, written as readable API
 * tests. Units are pages; n, m, p, q are
 * distinct BO offsets. Each case checks the ops, then the resulting layout.
 */
import { describe, expect, it } from 'vitest';
import { Bo, GpuVm, GpuVmError, type Op } from '../src/index.js';
import { backends } from './support/engines.js';

const U = 0x1000; // one page
const BASE = 0x100000; // the VM starts here; case addresses are BASE + units
const n = 0x10, m = 0x40, p = 0x80, q = 0xc0;

type M = [addr: number, range: number, bo: string, offset: number];
/** An op as a compact string, independent of engine handles. */
function show(op: Op<number>, name: (bo: Bo | null) => string): string {
  const g = (a: number, r: number, bo: Bo | null, o: number) => `${(a - BASE) / U},${r / U},${name(bo)},${o / U}`;
  switch (op.kind) {
    case 'map':
      return `MAP(${g(op.addr, op.range, op.bo, op.offset)})`;
    case 'unmap':
      return `UNMAP(${g(op.va.addr, op.va.range, op.va.bo, op.va.offset)},${op.keep ? 'T' : 'F'})`;
    case 'remap': {
      const piece = (x: { addr: number; range: number; bo: Bo | null; offset: number } | null) =>
        x ? `{${g(x.addr, x.range, x.bo, x.offset)}}` : '-';
      const v = op.unmap.va;
      return `REMAP(${piece(op.prev)},${piece(op.next)},(${g(v.addr, v.range, v.bo, v.offset)},${op.unmap.keep ? 'T' : 'F'}))`;
    }
    case 'prefetch':
      return `PREFETCH(${g(op.va.addr, op.va.range, op.va.bo, op.va.offset)})`;
  }
}

describe.each(backends)('split/merge on %s', (backend) => {
  function setup(old: M[]) {
    const vm = new GpuVm({ start: BASE, range: 0x1000 * U, backend });
    const bos: Record<string, Bo | null> = { a: new Bo({ name: 'a' }), b: new Bo({ name: 'b' }), x: new Bo({ name: 'x' }), '-': null };
    const name = (bo: Bo | null) => (bo === null ? '-' : bo.name);
    for (const [a, r, bo, o] of old) vm.bind(BASE + a * U, r * U, bos[bo], o * U);
    const layout = () => [...vm.mappings()].map((va) => [(va.addr - BASE) / U, va.range / U, name(va.bo), va.offset / U]);
    const map = (a: number, r: number, bo: string, o: number) => {
      const ops = vm.smMapOps({ addr: BASE + a * U, range: r * U, bo: bos[bo], offset: o * U });
      const shown = ops.toArray().map((op) => show(op, name));
      ops.apply();
      return shown;
    };
    const unmap = (a: number, r: number) => {
      const ops = vm.smUnmapOps(BASE + a * U, r * U);
      const shown = ops.toArray().map((op) => show(op, name));
      ops.apply();
      return shown;
    };
    return { vm, bos, map, unmap, layout };
  }

  // [case, old, request, expected ops, resulting layout]
  const documented: [string, M[], M, string[], M[]][] = [
    ['1 identical request: not empty, keep', [[0, 1, 'a', n]], [0, 1, 'a', n],
      [`UNMAP(0,1,a,${n},T)`, `MAP(0,1,a,${n})`], [[0, 1, 'a', n]]],
    ['2 same range, other offset', [[0, 1, 'a', n]], [0, 1, 'a', m],
      [`UNMAP(0,1,a,${n},F)`, `MAP(0,1,a,${m})`], [[0, 1, 'a', m]]],
    ['3 same range, other BO', [[0, 1, 'a', n]], [0, 1, 'b', n],
      [`UNMAP(0,1,a,${n},F)`, `MAP(0,1,b,${n})`], [[0, 1, 'b', n]]],
    ['4 old is a left-aligned subset', [[0, 1, 'a', n]], [0, 2, 'a', n],
      [`UNMAP(0,1,a,${n},T)`, `MAP(0,2,a,${n})`], [[0, 2, 'a', n]]],
    ['5 request left part of old, other BO', [[0, 2, 'a', n]], [0, 1, 'b', n],
      [`REMAP(-,{1,1,a,${n + 1}},(0,2,a,${n},F))`, `MAP(0,1,b,${n})`], [[0, 1, 'b', n], [1, 1, 'a', n + 1]]],
    ['6 request left part of old, same BO contiguous', [[0, 2, 'a', n]], [0, 1, 'a', n],
      [`REMAP(-,{1,1,a,${n + 1}},(0,2,a,${n},T))`, `MAP(0,1,a,${n})`], [[0, 1, 'a', n], [1, 1, 'a', n + 1]]],
    ['7 request right part of old, other BO', [[0, 2, 'a', n]], [1, 1, 'b', m],
      [`REMAP({0,1,a,${n}},-,(0,2,a,${n},F))`, `MAP(1,1,b,${m})`], [[0, 1, 'a', n], [1, 1, 'b', m]]],
    ['8 request right part of old, same BO contiguous', [[0, 2, 'a', n]], [1, 1, 'a', n + 1],
      [`REMAP({0,1,a,${n}},-,(0,2,a,${n},T))`, `MAP(1,1,a,${n + 1})`], [[0, 1, 'a', n], [1, 1, 'a', n + 1]]],
    ['9 request overlaps the end of old, other BO', [[0, 2, 'a', n]], [1, 2, 'b', m],
      [`REMAP({0,1,a,${n}},-,(0,2,a,${n},F))`, `MAP(1,2,b,${m})`], [[0, 1, 'a', n], [1, 2, 'b', m]]],
    ['10 request overlaps the end of old, same BO contiguous', [[0, 2, 'a', n]], [1, 2, 'a', n + 1],
      [`REMAP({0,1,a,${n}},-,(0,2,a,${n},T))`, `MAP(1,2,a,${n + 1})`], [[0, 1, 'a', n], [1, 2, 'a', n + 1]]],
    ['11 request centred in old, other BO', [[0, 3, 'a', n]], [1, 1, 'b', m],
      [`REMAP({0,1,a,${n}},{2,1,a,${n + 2}},(0,3,a,${n},F))`, `MAP(1,1,b,${m})`], [[0, 1, 'a', n], [1, 1, 'b', m], [2, 1, 'a', n + 2]]],
    ['12 request centred in old, same BO contiguous', [[0, 3, 'a', n]], [1, 1, 'a', n + 1],
      [`REMAP({0,1,a,${n}},{2,1,a,${n + 2}},(0,3,a,${n},T))`, `MAP(1,1,a,${n + 1})`], [[0, 1, 'a', n], [1, 1, 'a', n + 1], [2, 1, 'a', n + 2]]],
    ['13 old is a right-aligned subset', [[1, 1, 'a', n + 1]], [0, 2, 'a', n],
      [`UNMAP(1,1,a,${n + 1},T)`, `MAP(0,2,a,${n})`], [[0, 2, 'a', n]]],
    ['14 old is centred in the request', [[1, 1, 'a', n + 1]], [0, 3, 'a', n],
      [`UNMAP(1,1,a,${n + 1},T)`, `MAP(0,3,a,${n})`], [[0, 3, 'a', n]]],
    ['15 request overlaps the start of old: tail offset n+1', [[1, 2, 'a', n]], [0, 2, 'b', m],
      [`REMAP(-,{2,1,a,${n + 1}},(1,2,a,${n},F))`, `MAP(0,2,b,${m})`], [[0, 2, 'b', m], [2, 1, 'a', n + 1]]],
    ['D1 empty VM', [], [0, 2, 'x', m], [`MAP(0,2,x,${m})`], [[0, 2, 'x', m]]],
    ['D2 three mappings fully covered', [[0, 1, 'a', n], [1, 1, 'b', p], [2, 1, 'a', q]], [0, 3, 'x', m],
      [`UNMAP(0,1,a,${n},F)`, `UNMAP(1,1,b,${p},F)`, `UNMAP(2,1,a,${q},F)`, `MAP(0,3,x,${m})`], [[0, 3, 'x', m]]],
    ['D3 across two mappings', [[0, 2, 'a', n], [2, 2, 'b', p]], [1, 2, 'x', m],
      [`REMAP({0,1,a,${n}},-,(0,2,a,${n},F))`, `REMAP(-,{3,1,b,${p + 1}},(2,2,b,${p},F))`, `MAP(1,2,x,${m})`],
      [[0, 1, 'a', n], [1, 2, 'x', m], [3, 1, 'b', p + 1]]],
    ['D4 across a gap, keep only where contiguous', [[0, 2, 'a', n], [3, 2, 'b', p]], [1, 3, 'a', n + 1],
      [`REMAP({0,1,a,${n}},-,(0,2,a,${n},T))`, `REMAP(-,{4,1,b,${p + 1}},(3,2,b,${p},F))`, `MAP(1,3,a,${n + 1})`],
      [[0, 1, 'a', n], [1, 3, 'a', n + 1], [4, 1, 'b', p + 1]]],
    ['D5 BO-less mappings never keep', [[0, 2, '-', 0]], [0, 2, '-', 0],
      ['UNMAP(0,2,-,0,F)', 'MAP(0,2,-,0)'], [[0, 2, '-', 0]]],
    ['D6 touching neighbours are untouched', [[0, 1, 'a', n], [2, 1, 'b', p]], [1, 1, 'x', m],
      [`MAP(1,1,x,${m})`], [[0, 1, 'a', n], [1, 1, 'x', m], [2, 1, 'b', p]]],
    ['D7 shifted offset on the same BO', [[0, 4, 'a', n]], [0, 4, 'a', n + 1],
      [`UNMAP(0,4,a,${n},F)`, `MAP(0,4,a,${n + 1})`], [[0, 4, 'a', n + 1]]],
    ['D8 two contiguous pieces of one BO', [[0, 1, 'a', n], [1, 1, 'a', n + 1]], [0, 2, 'a', n],
      [`UNMAP(0,1,a,${n},T)`, `UNMAP(1,1,a,${n + 1},T)`, `MAP(0,2,a,${n})`], [[0, 2, 'a', n]]],
  ];

  it.each(documented)('case %s', (_name, old, [a, r, bo, o], ops, layout) => {
    const t = setup(old);
    expect(t.map(a, r, bo, o)).toEqual(ops);
    expect(t.layout()).toEqual(layout);
  });

  const unmaps: [string, M[], [number, number], string[], M[]][] = [
    ['U1 whole mapping', [[0, 2, 'a', n]], [0, 2], [`UNMAP(0,2,a,${n},F)`], []],
    ['U2 head', [[0, 2, 'a', n]], [0, 1], [`REMAP(-,{1,1,a,${n + 1}},(0,2,a,${n},F))`], [[1, 1, 'a', n + 1]]],
    ['U3 tail', [[0, 2, 'a', n]], [1, 1], [`REMAP({0,1,a,${n}},-,(0,2,a,${n},F))`], [[0, 1, 'a', n]]],
    ['U4 middle: one remap with both pieces', [[0, 3, 'a', n]], [1, 1],
      [`REMAP({0,1,a,${n}},{2,1,a,${n + 2}},(0,3,a,${n},F))`], [[0, 1, 'a', n], [2, 1, 'a', n + 2]]],
    ['U5 two whole mappings', [[0, 1, 'a', n], [2, 1, 'b', p]], [0, 3], [`UNMAP(0,1,a,${n},F)`, `UNMAP(2,1,b,${p},F)`], []],
    ['U6 across two mappings', [[0, 2, 'a', n], [2, 2, 'b', p]], [1, 2],
      [`REMAP({0,1,a,${n}},-,(0,2,a,${n},F))`, `REMAP(-,{3,1,b,${p + 1}},(2,2,b,${p},F))`], [[0, 1, 'a', n], [3, 1, 'b', p + 1]]],
    ['U7 nothing there: success, no ops', [[0, 1, 'a', n]], [5, 3], [], [[0, 1, 'a', n]]],
    ['keep is never set, even for a contiguous BO', [[0, 1, 'a', n], [1, 1, 'a', n + 1]], [0, 2],
      [`UNMAP(0,1,a,${n},F)`, `UNMAP(1,1,a,${n + 1},F)`], []],
  ];

  it.each(unmaps)('sm_unmap %s', (_name, old, [a, r], ops, layout) => {
    const t = setup(old);
    expect(t.unmap(a, r)).toEqual(ops);
    expect(t.layout()).toEqual(layout);
  });

  it('U8: anything overlapping the kernel node is EINVAL and changes nothing', () => {
    const vm = new GpuVm({ start: BASE, range: 0x100 * U, reserve: { start: BASE + 0x10 * U, range: 0x10 * U }, backend });
    const a = new Bo();
    vm.bind(BASE, 0x10 * U, a, 0);
    for (const [addr, range] of [[BASE + 0x10 * U, U], [BASE + 0xf * U, 2 * U], [BASE, 0x100 * U]]) {
      expect(() => vm.smUnmapOps(addr, range)).toThrow(GpuVmError);
      expect(() => vm.unbind(addr, range)).toThrow(/kernel-reserved node/);
      expect(() => vm.bind(addr, range, a, 0)).toThrow(/kernel-reserved node/);
    }
    expect([...vm.mappings()].map((v) => [v.addr, v.range, v.isKernelNode])).toEqual([
      [BASE, 0x10 * U, false],
      [BASE + 0x10 * U, 0x10 * U, true],
    ]);
  });

  it('U9: a range outside the VM is EINVAL (upstream range_valid), naming the range', () => {
    const vm = new GpuVm({ start: BASE, range: 0x100 * U, backend });
    expect(() => vm.unbind(BASE + 0x100 * U, U)).toThrow(/is not inside the VM/);
    try {
      vm.unbind(0, U);
    } catch (e) {
      expect(e).toBeInstanceOf(GpuVmError);
      expect((e as GpuVmError).code).toBe('EINVAL');
      expect((e as GpuVmError).message).toContain('[0x0, 0x1000)');
    }
  });

  it('prefetch: whole mappings in order, kernel node skipped, nothing changes', () => {
    const vm = new GpuVm({ start: BASE, range: 0x100 * U, reserve: { start: BASE + 4 * U, range: 2 * U }, backend });
    const a = new Bo({ name: 'a' });
    vm.bind(BASE, 3 * U, a, 0);
    vm.bind(BASE + 8 * U, 2 * U, null, 0);
    const ops = vm.prefetchOps(BASE + U, 8 * U);
    expect(ops.toArray().map((op) => show(op, (b) => (b ? b.name : '-')))).toEqual(['PREFETCH(0,3,a,0)', 'PREFETCH(8,2,-,0)']);
    ops.drop();
    expect(vm.count).toBe(2);
  });

  it('callback mode emits the same ops as list mode and applies through vaMap/vaRemap/vaUnmap', () => {
    const t1 = setup([[0, 2, 'a', n], [2, 1, 'b', p], [3, 2, 'a', q]]);
    const t2 = setup([[0, 2, 'a', n], [2, 1, 'b', p], [3, 2, 'a', q]]);
    const listOps = t1.map(1, 3, 'a', n + 1);
    const seen: string[] = [];
    const name = (bo: Bo | null) => (bo === null ? '-' : bo.name);
    t2.vm.smMap({ addr: BASE + U, range: 3 * U, bo: t2.bos.a, offset: (n + 1) * U }, {
      map: (op) => { seen.push(show(op, name)); t2.vm.vaMap(op); },
      remap: (op) => { seen.push(show(op, name)); t2.vm.vaRemap(op); },
      unmap: (op) => { seen.push(show(op, name)); t2.vm.vaUnmap(op); },
    });
    expect(seen).toEqual(listOps);
    expect(t2.layout()).toEqual(t1.layout());
  });

  it('callback mode: a throwing step stops the walk, keeps what earlier steps did, re-throws', () => {
    const t = setup([[0, 1, 'a', n], [1, 1, 'b', p], [2, 1, 'a', q]]);
    const boom = new Error('driver says no');
    const calls: string[] = [];
    expect(() =>
      t.vm.smUnmap(BASE, 3 * U, {
        remap: () => calls.push('remap'),
        unmap: (op) => {
          calls.push('unmap');
          if (calls.length === 2) throw boom;
          t.vm.vaUnmap(op);
        },
      }),
    ).toThrow(boom);
    expect(calls).toEqual(['unmap', 'unmap']);
    expect(t.layout()).toEqual([[1, 1, 'b', p], [2, 1, 'a', q]]);
    // the walk's list was dropped: the VM takes new requests
    expect(t.unmap(0, 3)).toHaveLength(2);
  });

  it('callback mode without a step hook is EINVAL', () => {
    const t = setup([]);
    expect(() => t.vm.smMap({ addr: BASE, range: U }, { remap() {}, unmap() {} })).toThrow(/steps.map/);
    expect(() => t.vm.smUnmap(BASE, U, { unmap() {} } as never)).toThrow(/steps.remap/);
  });

  it('remapHole gives the part a remap leaves free', () => {
    const t = setup([[0, 4, 'a', n]]);
    const ops = t.vm.smUnmapOps(BASE + U, 2 * U);
    const op = ops.get(0);
    if (op.kind !== 'remap') throw new Error('expected a remap');
    expect(t.vm.remapHole(op)).toEqual({ addr: BASE + U, range: 2 * U });
    ops.drop();
    const head = t.vm.smUnmapOps(BASE, U).get(0);
    if (head.kind !== 'remap') throw new Error('expected a remap');
    expect(t.vm.remapHole(head)).toEqual({ addr: BASE, range: U });
  });

  it('touchedBos: the BOs of unmapped and split mappings, plus the mapped one', () => {
    const t = setup([[0, 2, 'a', n], [2, 1, 'b', p], [5, 1, '-', 0], [8, 1, 'x', m]]);
    const touched = t.vm.touchedBos({ op: 'map', addr: BASE + U, range: 5 * U, bo: t.bos.x, offset: 0 });
    expect([...touched].map((b) => b.name).sort()).toEqual(['a', 'b', 'x']);
    const unmapTouched = t.vm.touchedBos({ op: 'unmap', addr: BASE + 2 * U, range: 7 * U });
    expect([...unmapTouched].map((b) => b.name).sort()).toEqual(['b', 'x']);
    expect(t.vm.count).toBe(4);
  });

  it('madvise splits BO-less mappings at the edges and never unmaps', () => {
    const t = setup([[0, 8, '-', 0], [10, 2, 'a', n]]);
    const ops = t.vm.madviseOps(BASE + 2 * U, 4 * U);
    const name = (bo: Bo | null) => (bo === null ? '-' : bo.name);
    const shown = ops.toArray().map((op) => show(op, name));
    expect(shown.some((s) => s.startsWith('UNMAP'))).toBe(false);
    // upstream: the madvise MAP is the request itself (no BO, the request's offset: 0)
    expect(shown).toEqual([`REMAP({0,2,-,0},{6,2,-,6},(0,8,-,0,F))`, 'MAP(2,4,-,0)']);
    ops.apply();
    expect(t.layout()).toEqual([[0, 2, '-', 0], [2, 4, '-', 0], [6, 2, '-', 6], [10, 2, 'a', n]]);
    // a range starting inside one BO-less mapping and ending inside the next:
    // REMAP(prev) + MAP of the covered tail, then REMAP(next) + MAP of the head, and nothing else
    const t2 = setup([[0, 4, '-', 0], [4, 4, '-', 0x20]]);
    const ops2 = t2.vm.madviseOps(BASE + 2 * U, 4 * U).toArray().map((op) => show(op, name));
    expect(ops2).toEqual([
      'REMAP({0,2,-,0},-,(0,4,-,0,F))',
      'MAP(2,2,-,0)',
      `REMAP(-,{6,2,-,${0x20 + 2}},(4,4,-,${0x20},F))`,
      'MAP(4,2,-,0)',
    ]);
    // mappings with a BO are skipped entirely
    expect(t.vm.madviseOps(BASE + 10 * U, U).length).toBe(0);
  });
});
