/**
 * The calls that apply ops (bind, unbind, smMapApply, smUnmapApply,
 * opsApply) release the VmBos they end themselves, on every engine, through
 * the raw engine calls: on
 * success the zombies go and their handles are reported at OUT_REAPED (at
 * most OUT_REAP_MAX, the rest stay for vmboReap, oldest first); a failing
 * call releases nothing and reports none. The facade then drops those VmBos
 * without the vmboReap crossing: an unbind that ends a VmBo is one engine
 * call.
 */
import { describe, expect, it } from 'vitest';
import { Errno, IO, OUT_REAP_MAX, VMBO_MAKE, type Engine } from '../src/backend/engine.js';
import { loadEngine } from '../src/backend/loader.js';
import { Bo, GpuVm } from '../src/index.js';
import { backends } from './support/engines.js';
import { engineCallsDuring, mapArgs, put64, rawVm } from './support/raw-engine.js';

const A = IO.ARG;
const D = IO.DATA;
const R = IO.OUT_REAPED;
const PAGE = 0x1000;
const PAGES = 256;

function rangeArgs(E: Engine, page: number, pages: number): void {
  put64(E.io(), A, page * PAGE);
  put64(E.io(), A + 2, pages * PAGE);
}

/** The handles a call reported at OUT_REAPED. */
function reaped(E: Engine): number[] {
  const io = E.io();
  return [...io.subarray(R + 1, R + 1 + io[R])];
}

/** `n` VmBos of BOs 100.., each holding the one page it maps at page 2i; their handles. */
function vmBosOnePageEach(E: Engine, vm: number, n: number): number[] {
  const hs: number[] = [];
  for (let i = 0; i < n; i++) {
    const h = E.vmboCreate(vm, 100 + i);
    expect(h).toBeGreaterThan(0);
    mapArgs(E, 2 * i, 1, 100 + i, h);
    expect(E.bind(vm)).toBe(1);
    expect(E.vmboPut(vm, h)).toBe(1); // the mapping's reference only
    hs.push(h);
  }
  return hs;
}

const live = (E: Engine, vm: number, h: number): boolean => E.vmboInfo(vm, h) >= 0;

describe.each(backends)('calls that apply ops release the VmBos they end, on %s', (backend) => {
  it('unbind, bind over the last mapping, smUnmapApply and smMapApply each report what they released', () => {
    const E = loadEngine(backend);
    const vm = rawVm(E, PAGES * PAGE);
    const hs = vmBosOnePageEach(E, vm, 4);
    rangeArgs(E, 0, 1);
    expect(E.unbind(vm)).toBe(1);
    expect(reaped(E)).toEqual([hs[0]]);
    expect(E.io()[IO.OUT_ZOMBIES]).toBe(0);
    expect(live(E, vm, hs[0])).toBe(false);
    // a bind of another BO over a VmBo's last mapping
    mapArgs(E, 2, 1, 0, 0);
    expect(E.bind(vm)).toBe(2);
    expect(reaped(E)).toEqual([hs[1]]);
    // list steps, records to DATA (no ring room)
    rangeArgs(E, 4, 1);
    E.io()[A + 8] = 0;
    E.io()[A + 9] = 0;
    expect(E.smUnmapApply(vm)).toBe(1);
    expect(reaped(E)).toEqual([hs[2]]);
    mapArgs(E, 6, 1, 0, 0);
    E.io()[A + 8] = 0;
    E.io()[A + 9] = 0;
    expect(E.smMapApply(vm)).toBe(2);
    expect(reaped(E)).toEqual([hs[3]]);
    // a call that ends nothing reports nothing
    rangeArgs(E, 100, 4);
    expect(E.unbind(vm)).toBe(0);
    expect(E.io()[R]).toBe(0);
    E.vmDestroy(vm);
  });

  it(`more than ${OUT_REAP_MAX} ended in one call: the first ${OUT_REAP_MAX} go, the rest stay for vmboReap in order`, () => {
    const E = loadEngine(backend);
    const vm = rawVm(E, PAGES * PAGE);
    const n = OUT_REAP_MAX + 5;
    const hs = vmBosOnePageEach(E, vm, n);
    rangeArgs(E, 0, 2 * n);
    expect(E.unbind(vm)).toBe(n);
    expect(reaped(E)).toEqual(hs.slice(0, OUT_REAP_MAX));
    expect(E.io()[IO.OUT_ZOMBIES]).toBe(5);
    for (const h of hs.slice(0, OUT_REAP_MAX)) expect(live(E, vm, h)).toBe(false);
    expect(E.vmboReap(vm)).toBe(5);
    expect([...E.io().subarray(D, D + 5)]).toEqual(hs.slice(OUT_REAP_MAX));
    expect(E.io()[IO.OUT_ZOMBIES]).toBe(0);
    E.vmDestroy(vm);
  });

  it('a failing call releases nothing, not even zombies an earlier call left', () => {
    const E = loadEngine(backend);
    const vm = rawVm(E, PAGES * PAGE);
    const hs = vmBosOnePageEach(E, vm, 3);
    // opsDrop is not a call that applies: the VmBo a dropped list made and held stays a zombie
    mapArgs(E, 100, 1, 99, VMBO_MAKE);
    expect(E.smMapOps(vm)).toBe(1);
    const z = E.io()[IO.OUT_MADE_VMBO];
    expect(E.opsDrop(vm)).toBe(0);
    expect(E.io()[IO.OUT_ZOMBIES]).toBe(1);
    for (const call of ['unbind', 'smUnmapApply'] as const) {
      rangeArgs(E, PAGES, 1); // outside the VM
      E.io()[R] = 7; // must be written
      expect(E[call](vm)).toBe(-Errno.EINVAL);
      expect(E.io()[R]).toBe(0);
      expect(E.io()[IO.OUT_ZOMBIES]).toBe(1);
    }
    expect(live(E, vm, z)).toBe(true); // a zombie, not released
    // a list applied in parts: each part releases what is a zombie by then, oldest first
    rangeArgs(E, 0, 4);
    expect(E.smUnmapOps(vm)).toBe(2);
    expect(E.opsApply(vm, 0, 1)).toBe(0);
    expect(reaped(E)).toEqual([z, hs[0]]);
    // EBUSY while it is partly applied
    mapArgs(E, 8, 1, 0, 0);
    E.io()[R] = 7;
    expect(E.bind(vm)).toBe(-Errno.EBUSY);
    expect(E.io()[R]).toBe(0);
    expect(E.opsApply(vm, 1, 3)).toBe(-Errno.EINVAL); // past the list's end
    expect(E.io()[R]).toBe(0);
    expect(E.opsApply(vm, 1, 2)).toBe(0);
    expect(reaped(E)).toEqual([hs[1]]);
    expect(E.io()[IO.OUT_ZOMBIES]).toBe(0);
    for (const h of [z, hs[0], hs[1]]) expect(live(E, vm, h)).toBe(false);
    expect(live(E, vm, hs[2])).toBe(true);
    E.vmDestroy(vm);
  });

  it('the facade drops a VmBo an unbind ended with that one engine call', () => {
    const vm = new GpuVm({ start: 0, range: PAGES * PAGE, backend });
    const bos = [new Bo({ size: 2 ** 20 }), new Bo({ size: 2 ** 20 })];
    vm.bind(0, PAGE, bos[0], 0);
    vm.bind(PAGE, PAGE, bos[1], 0);
    // (bo.vmBos takes no reference; findBo would, and keep the VmBo)
    const [vb] = bos[0].vmBos;
    expect(vb.vm).toBe(vm);
    const E = loadEngine(backend);
    expect(engineCallsDuring(E, () => vm.unbind(0, PAGE))).toEqual(['unbind']);
    expect(engineCallsDuring(E, () => vm.smUnmapOps(PAGE, PAGE).apply())).toEqual(['smUnmapApply']);
    // a list read before it is applied: made, then opsApply, which releases too
    vm.bind(0, PAGE, bos[1], 0);
    const read = (): void => {
      const l = vm.smUnmapOps(0, PAGE);
      expect(l.length).toBe(1);
      l.apply();
    };
    expect(engineCallsDuring(E, read)).toEqual(['smUnmapOps', 'opsApply']);
    expect(vm.findBo(bos[0])).toBeNull();
    expect(vm.findBo(bos[1])).toBeNull();
    expect(() => vb.refcount).toThrow(/already destroyed/);
    expect(bos[0].vmBos).toEqual([]);
    expect(bos[1].vmBos).toEqual([]);
    expect(vm.extobjs.length).toBe(0);
    // a VmBo made again for the BO is a new one
    vm.bind(0, PAGE, bos[0], 0);
    expect(bos[0].vmBos.length).toBe(1);
    expect(bos[0].vmBos[0]).not.toBe(vb);
    vm.destroy();
  });
});
