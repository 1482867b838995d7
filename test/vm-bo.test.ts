/**
 * VmBo (drm_gpuvm_bo) semantics: uniqueness per (VM, BO), refcounts that
 * count linked mappings plus holders, link order, remap ordering, the
 * extobj/evict lists and validate.
 */
import { describe, expect, it } from 'vitest';
import { Bo, GpuVa, GpuVm, GpuVmError, VmBo } from '../src/index.js';
import { backends } from './support/engines.js';

const U = 0x1000;

describe.each(backends)('VmBo on %s', (backend) => {
  const newVm = () => new GpuVm({ start: 0, range: 0x10000 * U, backend });

  it('obtain returns the unique VmBo per (VM, BO) and counts references (B-1, B-2)', () => {
    const vm = newVm();
    const bo = new Bo();
    const a = vm.obtainBo(bo);
    expect(a.refcount).toBe(1);
    const b = vm.obtainBo(bo);
    expect(b).toBe(a);
    expect(a.refcount).toBe(2);
    expect(bo.vmBos).toEqual([a]);
    vm.bind(0, 4 * U, bo, 0);
    vm.bind(8 * U, 4 * U, bo, 0);
    expect(a.refcount).toBe(4); // two holders + two linked mappings
    expect(a.mappings().map((v) => v.addr)).toEqual([0, 8 * U]);
    expect(a.put()).toBe(false);
    expect(a.put()).toBe(false);
    expect(a.refcount).toBe(2);
    vm.unbind(0, 16 * U); // last mappings go: the VmBo goes with them
    expect(a.live).toBe(false);
    expect(bo.vmBos).toEqual([]);
    expect(() => a.refcount).toThrow(/use after put/);
    expect(() => a.put()).toThrow(GpuVmError);
  });

  it('findBo never creates; VmBo.create is not findable until obtainPrealloc (B-5, B-6)', () => {
    const vm = newVm();
    const bo = new Bo();
    expect(vm.findBo(bo)).toBeNull();
    const pre = VmBo.create(vm, bo);
    expect(vm.findBo(bo)).toBeNull();
    expect(bo.vmBos).toEqual([]);
    const got = vm.obtainPrealloc(pre);
    expect(got).toBe(pre);
    expect(pre.refcount).toBe(1);
    expect(vm.findBo(bo)).toBe(pre);
    expect(pre.refcount).toBe(2);
    // a second pre-allocated one for the same pair is dropped, the existing one returned +1
    const pre2 = VmBo.create(vm, bo);
    expect(vm.obtainPrealloc(pre2)).toBe(pre);
    expect(pre2.live).toBe(false);
    expect(pre.refcount).toBe(3);
    expect(() => vm.obtainPrealloc(pre)).toThrow(/already obtained/);
  });

  it('mappings are listed in link order, not address order (V-13)', () => {
    const vm = newVm();
    const bo = new Bo();
    vm.bind(20 * U, U, bo, 0);
    vm.bind(0, U, bo, 0);
    vm.bind(10 * U, U, bo, 0);
    const vb = vm.findBo(bo)!;
    expect(vb.mappings().map((v) => v.addr / U)).toEqual([20, 0, 10]);
    // unmap ops follow link order too
    const ops = vb.unmapOps();
    expect(ops.toArray().map((op) => (op.kind === 'unmap' ? [op.va.addr / U, op.keep] : null))).toEqual([
      [20, false],
      [0, false],
      [10, false],
    ]);
    ops.apply();
    expect(vm.count).toBe(0);
    expect(vb.refcount).toBe(1);
    expect(vb.put()).toBe(true);
  });

  it('a remap links the pieces before unlinking the old mapping, so the last reference survives (B-7)', () => {
    const vm = newVm();
    const bo = new Bo();
    vm.bind(0, 8 * U, bo, 0);
    const vb = bo.vmBos[0];
    expect(vb.refcount).toBe(1); // only the mapping holds it
    vm.unbind(2 * U, 2 * U); // one remap with both pieces
    expect(vb.live).toBe(true);
    expect(vb.refcount).toBe(2);
    expect(vb.mappings().map((v) => [v.addr / U, v.range / U, v.offset / U])).toEqual([
      [0, 2, 0],
      [4, 4, 4],
    ]);
  });

  it('VmBo unmap ops never include other VMs (B-8)', () => {
    const vm1 = newVm();
    const vm2 = newVm();
    const bo = new Bo();
    vm1.bind(0, U, bo, 0);
    vm2.bind(0, U, bo, 0);
    vm2.bind(4 * U, U, bo, 0);
    expect(bo.vmBos.map((v) => v.vm)).toEqual([vm1, vm2]);
    const ops = vm1.findBo(bo)!.unmapOps();
    expect(ops.length).toBe(1);
    ops.apply();
    expect(vm2.count).toBe(2);
  });

  it('extobj list: external BOs only; private BOs share the VM reservation', () => {
    const vm = newVm();
    const ext = new Bo();
    const priv = new Bo({ privateTo: vm });
    vm.bind(0, U, ext, 0);
    vm.bind(U, U, priv, 0);
    expect(ext.external(vm)).toBe(true);
    expect(priv.external(vm)).toBe(false);
    expect(vm.extobjs.map((v) => v.bo)).toEqual([ext]);
    vm.unbind(0, U);
    expect(vm.extobjs).toEqual([]);
  });

  it('evict + validate: validated ones leave the list, an exception stops the walk', () => {
    const vm = newVm();
    const bos = [new Bo(), new Bo(), new Bo()];
    bos.forEach((bo, i) => vm.bind(i * U, U, bo, 0));
    const vbs = bos.map((bo) => bo.vmBos[0]);
    vbs.forEach((vb) => vb.evict(true));
    expect(vm.evicted).toEqual(vbs);
    const seen: VmBo[] = [];
    expect(() =>
      vm.validate((vb) => {
        seen.push(vb);
        if (vb === vbs[1]) throw new Error('move failed');
      }),
    ).toThrow('move failed');
    expect(seen).toEqual([vbs[0], vbs[1]]);
    expect(vm.evicted).toEqual([vbs[1], vbs[2]]);
    expect(vbs[0].evicted).toBe(false);
    vm.validate(() => {});
    expect(vm.evicted).toEqual([]);
    // a destroyed VmBo leaves the evict list
    vbs[2].evict(true);
    vm.unbind(2 * U, U);
    expect(vm.evicted).toEqual([]);
  });

  it('link / unlink by hand: BO must match, a mapping without a BO is never linked', () => {
    const vm = newVm();
    const a = new Bo();
    const b = new Bo();
    const va = vm.insert({ addr: 0, range: U, bo: a, offset: 0 });
    const sparse = vm.insert({ addr: U, range: U, flags: GpuVa.SPARSE });
    expect(va.vmBo).toBeNull();
    const vbA = vm.obtainBo(a);
    const vbB = vm.obtainBo(b);
    expect(() => va.link(vbB)).toThrow(/mapping is of/);
    va.link(vbA);
    expect(va.vmBo).toBe(vbA);
    expect(vbA.refcount).toBe(2);
    expect(() => va.link(vbA)).toThrow(/already linked/);
    sparse.link(vbA); // no-op like the kernel
    expect(sparse.vmBo).toBeNull();
    expect(sparse.sparse).toBe(true);
    va.unlink();
    va.unlink(); // harmless
    expect(vbA.refcount).toBe(1);
    expect(va.live).toBe(true);
    vm.remove(va);
    expect(va.live).toBe(false); // removed and unlinked: released
  });

  it('a mapping removed while linked stays linked until unlinked', () => {
    const vm = newVm();
    const a = new Bo();
    const vb = vm.obtainBo(a);
    const va = vm.insert({ addr: 0, range: U, bo: a });
    va.link(vb);
    vm.remove(va);
    expect(va.live).toBe(true);
    expect(va.inserted).toBe(false);
    expect(vm.findFirst(0, U)).toBeNull();
    expect(vb.mappings()).toEqual([va]);
    va.unlink();
    expect(va.live).toBe(false);
    expect(vb.refcount).toBe(1);
  });
});
