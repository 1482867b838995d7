/**
 * Op lists outlive what they name: an op read long after its list was
 * applied, replaced or its VM destroyed still names the right Bo, even when
 * the VM forgot that BO (its last mapping went and its VmBo was reaped).
 * Lists resolve BOs only when an op is read, so this is what keeps that lazy
 * resolution honest.
 */
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
    for (let i = 0; i < 50; i++) {
      const bo = new Bo({ name: `b${i}` });
      bos.push(bo);
      const l = vm.smMapOps({ addr: 0x100000 + i * 0x1000, range: 0x1000, bo, offset: 0 });
      l.apply();
      lists.push(l);
      const u = vm.smUnmapOps(0x100000 + i * 0x1000, 0x1000);
      u.apply(); // reaps the VmBo again
      lists.push(u);
    }
    for (let i = 0; i < 50; i++) {
      expect((lists[2 * i].get(0) as { bo: Bo | null }).bo).toBe(bos[i]);
      expect((lists[2 * i + 1].get(0) as { va: { bo: Bo | null } }).va.bo).toBe(bos[i]);
    }
    vm.destroy();
  });
});
