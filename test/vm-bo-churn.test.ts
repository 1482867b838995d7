/**
 * VmBos that come and go: the order of a BO's VmBos, of a VM's external
 * objects and of its evict list against a model, through random binds,
 * unbinds, holds, puts, evicts and validates across three VMs; and the BOs a
 * VM stops knowing: lists made before still name them, and the VM does not
 * keep them alive for long.
 */
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Bo, GpuVm, VmBo } from '../src/index.js';
import { backends } from './support/engines.js';

const U = 0x1000;
const SLOTS = 6;
const VMS = 3;
const BOS = 4;

type Step =
  | { t: 'bind'; vm: number; bo: number; slot: number }
  | { t: 'unbind'; vm: number; slot: number }
  | { t: 'hold'; vm: number; bo: number }
  | { t: 'put'; vm: number; bo: number }
  | { t: 'evict'; vm: number; bo: number; on: boolean }
  | { t: 'validate'; vm: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('bind' as const), vm: fc.nat(VMS - 1), bo: fc.nat(BOS - 1), slot: fc.nat(SLOTS - 1) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('unbind' as const), vm: fc.nat(VMS - 1), slot: fc.nat(SLOTS - 1) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('hold' as const), vm: fc.nat(VMS - 1), bo: fc.nat(BOS - 1) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('put' as const), vm: fc.nat(VMS - 1), bo: fc.nat(BOS - 1) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('evict' as const), vm: fc.nat(VMS - 1), bo: fc.nat(BOS - 1), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('validate' as const), vm: fc.nat(VMS - 1) }) },
);

/**
 * The model: per (VM, BO) the references a VmBo would have (mappings plus
 * holds); a VmBo exists while that is above zero. Orders are kept as lists
 * of indexes, appended when a VmBo (or an evict) begins.
 */
class Model {
  readonly slotBo: number[][] = Array.from({ length: VMS }, () => new Array<number>(SLOTS).fill(-1));
  readonly holds: number[][] = Array.from({ length: VMS }, () => new Array<number>(BOS).fill(0));
  readonly boVms: number[][] = Array.from({ length: BOS }, () => []);
  readonly extobjs: number[][] = Array.from({ length: VMS }, () => []);
  readonly evicted: number[][] = Array.from({ length: VMS }, () => []);
  constructor(readonly external: (vm: number, bo: number) => boolean) {}

  refs(vm: number, bo: number): number {
    return this.slotBo[vm].filter((b) => b === bo).length + this.holds[vm][bo];
  }
  /** Runs `change` and records the VmBos it made or ended. */
  change(vm: number, bo: number, change: () => void): void {
    const before = this.refs(vm, bo);
    change();
    const after = this.refs(vm, bo);
    if (before === 0 && after > 0) {
      this.boVms[bo].push(vm);
      if (this.external(vm, bo)) this.extobjs[vm].push(bo);
    } else if (before > 0 && after === 0) {
      const drop = (l: number[], x: number): void => {
        const i = l.indexOf(x);
        if (i >= 0) l.splice(i, 1);
      };
      drop(this.boVms[bo], vm);
      drop(this.extobjs[vm], bo);
      drop(this.evicted[vm], bo);
    }
  }
}

describe.each(backends)('VmBos that come and go on %s', (backend) => {
  it('keep the BO order, the extobj order and the evict order of a model (property)', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 80 }), (steps) => {
        const vms = Array.from({ length: VMS }, (_, i) => new GpuVm({ name: `vm${i}`, start: 0, range: 0x1000 * U, backend }));
        // BO 3 is private to VM 0: not one of VM 0's external objects
        const bos = Array.from({ length: BOS }, (_, i) => new Bo(i === 3 ? { privateTo: vms[0] } : {}));
        const model = new Model((vm, bo) => bos[bo].external(vms[vm]));
        const held: VmBo[][][] = Array.from({ length: VMS }, () => Array.from({ length: BOS }, () => []));
        for (const s of steps) {
          const vm = vms[s.vm];
          if (s.t === 'bind') {
            const old = model.slotBo[s.vm][s.slot];
            // a bind holds its own VmBo while it runs: replacing a mapping of
            // the same BO keeps that VmBo (and its place)
            if (old >= 0 && old !== s.bo) model.change(s.vm, old, () => (model.slotBo[s.vm][s.slot] = -1));
            model.change(s.vm, s.bo, () => (model.slotBo[s.vm][s.slot] = s.bo));
            vm.bind(s.slot * U, U, bos[s.bo], 0);
          } else if (s.t === 'unbind') {
            const old = model.slotBo[s.vm][s.slot];
            if (old >= 0) model.change(s.vm, old, () => (model.slotBo[s.vm][s.slot] = -1));
            vm.unbind(s.slot * U, U);
          } else if (s.t === 'hold') {
            model.change(s.vm, s.bo, () => model.holds[s.vm][s.bo]++);
            held[s.vm][s.bo].push(vm.obtainBo(bos[s.bo]));
          } else if (s.t === 'put') {
            const vb = held[s.vm][s.bo].pop();
            if (vb === undefined) continue;
            model.change(s.vm, s.bo, () => model.holds[s.vm][s.bo]--);
            vb.put();
          } else if (s.t === 'evict') {
            const vb = vm.findBo(bos[s.bo]);
            if (vb === null) continue;
            vb.evict(s.on);
            const l = model.evicted[s.vm];
            const i = l.indexOf(s.bo);
            if (s.on && i < 0) l.push(s.bo);
            if (!s.on && i >= 0) l.splice(i, 1);
            vb.put();
          } else {
            vm.validate(() => {});
            model.evicted[s.vm].length = 0;
          }
          for (let b = 0; b < BOS; b++) expect(bos[b].vmBos.map((vb) => vms.indexOf(vb.vm as GpuVm))).toEqual(model.boVms[b]);
          for (let v = 0; v < VMS; v++) {
            expect(vms[v].extobjs.map((vb) => bos.indexOf(vb.bo))).toEqual(model.extobjs[v]);
            expect(vms[v].evicted.map((vb) => bos.indexOf(vb.bo))).toEqual(model.evicted[v]);
          }
        }
        for (const v of vms) v.destroy();
        // a destroyed VM's VmBos leave their BOs
        for (const bo of bos) expect(bo.vmBos).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });

  it('a list made before hundreds of BOs came and went still names its BOs', () => {
    const vm = new GpuVm<number>({ start: 0, range: 2 ** 40, backend });
    const first = new Bo({ name: 'first' });
    vm.bind(0x10000, U, first, 0);
    const early = vm.smUnmapOps(0x10000, U); // unread, never applied
    early.drop();
    const lists = [];
    const bos: Bo[] = [];
    for (let i = 0; i < 600; i++) {
      const bo = new Bo();
      bos.push(bo);
      const a = 0x100000 + (i % 50) * U;
      vm.bind(a, U, bo, 0);
      // every tenth list is kept unread while the BO goes and others come
      const list = vm.smUnmapOps(a, U);
      list.apply();
      if (i % 10 === 0) lists.push({ list, bo });
      // a BO mapped again after the VM forgot it is the same Bo once more
      if (i % 97 === 0) {
        vm.bind(0x800000, U, bos[0], 0);
        expect((vm.smUnmapOps(0x800000, U).get(0) as { va: { bo: Bo } }).va.bo).toBe(bos[0]);
        vm.unbind(0x800000, U);
      }
    }
    expect((early.get(0) as { va: { bo: Bo } }).va.bo).toBe(first);
    for (const { list, bo } of lists) expect((list.get(0) as { va: { bo: Bo } }).va.bo).toBe(bo);
    expect(vm.findFirst(0x10000, U)?.bo).toBe(first);
    vm.destroy();
  });

  it('a VmBo not obtained yet outlives the sweeps of other BOs, and dies with its VM', () => {
    const vm = new GpuVm<number>({ start: 0, range: 2 ** 40, backend });
    const bo = new Bo({ name: 'pre' });
    const pre = VmBo.create(vm, bo);
    const later = VmBo.create(vm, new Bo());
    for (let i = 0; i < 500; i++) {
      const b = new Bo();
      vm.bind(0x100000, U, b, 0);
      vm.unbind(0x100000, U);
    }
    expect(pre.live).toBe(true);
    expect(vm.obtainPrealloc(pre)).toBe(pre);
    expect(bo.vmBos).toEqual([pre]);
    vm.bind(0x200000, U, bo, 0);
    expect(vm.findFirst(0x200000, U)?.bo).toBe(bo);
    expect(vm.findFirst(0x200000, U)?.vmBo).toBe(pre);
    vm.destroy();
    expect(pre.live).toBe(false);
    expect(later.live).toBe(false);
    expect(bo.vmBos).toEqual([]);
  });

  it('the VM lets go of the BOs it no longer knows', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const vm = new GpuVm<number>({ start: 0, range: 2 ** 40, backend });
    const keep = new Bo();
    vm.bind(0, U, keep, 0);
    const N = 1000;
    // (in a function of its own, so that nothing of it stays on this frame)
    const refs = ((): WeakRef<Bo>[] => {
      const out: WeakRef<Bo>[] = [];
      for (let i = 0; i < N; i++) {
        const bo = new Bo();
        vm.bind(0x100000 + (i % 8) * U, U, bo, 0);
        vm.smUnmapOps(0x100000 + (i % 8) * U, U).apply();
        out.push(new WeakRef(bo));
      }
      return out;
    })();
    for (let round = 0; round < 3; round++) {
      gc();
      await new Promise((r) => setTimeout(r, 5));
    }
    const alive = refs.filter((r) => r.deref() !== undefined).length;
    // it may hold about twice the BOs it knows (one here) plus a slack of 64
    expect(alive).toBeLessThanOrEqual(80);
    expect(vm.findFirst(0, U)?.bo).toBe(keep);
    vm.destroy();
  });
});
