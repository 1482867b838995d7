/**
 * Op lists outlive what they name: an op read long after its list was
 * applied, replaced or its VM destroyed still names the right Bo, even when
 * the VM forgot that BO (its last mapping went and its VmBo was reaped).
 * Lists resolve BOs only when an op is read, so this is what keeps that lazy
 * resolution honest.
 */
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { Bo, GpuVm } from '../src/index.js';
import { backends } from './support/engines.js';

describe.each(backends)('op list lifetime on %s', (backend) => {
  it('ops read after apply, replacement and BO reaping still name their BOs', () => {
    const vm = new GpuVm({ start: 0, range: 2 ** 40, backend });
    const gone = new Bo({ name: 'gone' });
    const l1 = vm.smMapOps({ addr: 0x1000, range: 0x2000, bo: gone, offset: 0 });
    l1.apply();
    const l2 = vm.smUnmapOps(0x1000, 0x2000);
    l2.apply(); // the last mapping of `gone` goes: the VM forgets the BO
    expect(vm.findBo(gone)).toBeNull();
    const l3 = vm.smMapOps({ addr: 0x8000, range: 0x1000, bo: null });
    const l4 = vm.smUnmapOps(0x8000, 0x1000); // replaces l3, untouched: l3 is stale
    expect(l1.get(0).kind).toBe('map');
    expect((l1.get(0) as { bo: Bo | null }).bo).toBe(gone);
    expect((l2.get(0) as { va: { bo: Bo | null } }).va.bo).toBe(gone);
    expect(l3.state).toBe('stale');
    expect(l3.get(0).kind).toBe('map');
    expect(l4.length).toBe(0);
    vm.destroy();
  });

  it('a list made before destroy is readable afterwards, with its BOs', () => {
    const vm = new GpuVm({ start: 0, range: 2 ** 40, backend });
    const kept = new Bo({ name: 'kept' });
    vm.bind(0x10000, 0x1000, kept);
    const list = vm.smUnmapOps(0x10000, 0x1000);
    vm.destroy();
    expect(list.toArray()).toHaveLength(1);
    expect((list.get(0) as { va: { bo: Bo | null } }).va.bo).toBe(kept);
  });

  it('BOs of many lists in a loop resolve to the right objects (ids are never confused)', () => {
    const vm = new GpuVm({ start: 0, range: 2 ** 40, backend });
    const lists = [];
    const bos = [];
    // more BOs than the id memo has entries, so that ids share its slots
    for (let i = 0; i < 150; i++) {
      const bo = new Bo({ name: `b${i}` });
      bos.push(bo);
      const l = vm.smMapOps({ addr: 0x100000 + i * 0x1000, range: 0x1000, bo, offset: 0 });
      l.apply();
      lists.push(l);
      const u = vm.smUnmapOps(0x100000 + i * 0x1000, 0x1000);
      u.apply(); // reaps the VmBo again
      lists.push(u);
    }
    for (let i = 0; i < 150; i++) {
      expect((lists[2 * i].get(0) as { bo: Bo | null }).bo).toBe(bos[i]);
      expect((lists[2 * i + 1].get(0) as { va: { bo: Bo | null } }).va.bo).toBe(bos[i]);
    }
    vm.destroy();
  });

  it('a live mapping keeps its GpuVa through reading ops; an unmapped one is let go once applied', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const vm = new GpuVm<number>({ start: 0, range: 2 ** 40, backend });
    // (in a function of its own, so that nothing of it stays on this frame)
    const lost = ((): WeakRef<object> => {
      const bo = new Bo();
      vm.bind(0x10000, 0x4000, bo, 0);
      vm.bind(0x20000, 0x1000, bo, 0);
      const found = vm.findFirst(0x10000, 0x1000)!;
      const list = vm.smUnmapOps(0x11000, 0x10000);
      const [remap, unmap] = list.toArray();
      if (remap.kind !== 'remap' || unmap.kind !== 'unmap') throw new Error(`unexpected ops ${list.toJSON()}`);
      // the same mapping, the same object: looked up before or named by an op
      expect(remap.unmap.va).toBe(found);
      expect(vm.findFirst(0x20000, 0x1000)).toBe(unmap.va);
      // op by op: the mapping of the op not applied yet is still the same object
      vm.vaRemap(remap);
      expect(found.live).toBe(false);
      expect(vm.findFirst(0x20000, 0x1000)).toBe(unmap.va);
      expect(vm.findFirst(0x10000, 0x1000)).not.toBe(found);
      vm.vaUnmap(unmap);
      expect(unmap.va.live).toBe(false);
      expect(vm.count).toBe(1);
      return new WeakRef(unmap.va);
    })();
    // and the same with the whole list applied after reading it
    const lostToo = ((): WeakRef<object> => {
      vm.bind(0x40000, 0x1000, null, 0);
      const list = vm.smUnmapOps(0x40000, 0x1000);
      const va = (list.get(0) as { va: object }).va;
      expect(vm.findFirst(0x40000, 0x1000)).toBe(va);
      list.apply();
      return new WeakRef(va);
    })();
    // nothing holds the unmapped mappings' GpuVas now, the VM included (a
    // deref keeps its target alive until the current job ends: collect in a
    // later one)
    for (let round = 0; round < 3; round++) {
      gc();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(lost.deref()).toBeUndefined();
    expect(lostToo.deref()).toBeUndefined();
    vm.destroy();
  });
});
