/**
 * A map request that asks the engine to make its VmBo (VMBO_MAKE in A7), on
 * every engine, through the raw engine calls: bind and smMapOps make it,
 * keep it exactly when the request linked a mapping to it or left a list
 * mapping to it, report it at OUT_MADE_VMBO, and leave nothing behind when
 * the request fails, as vmboCreate, the call and vmboPut would.
 */
import { describe, expect, it } from 'vitest';
import { Errno, IO, SUBMIT_MAKE, SUBMIT_SAME, SUBMIT_WORDS, SubmitKind, VA_WORDS, VMBO_MAKE, type Engine } from '../src/backend/engine.js';
import { loadEngine } from '../src/backend/loader.js';
import { backends } from './support/engines.js';
import { mapArgs, put64, rawVm } from './support/raw-engine.js';

const A = IO.ARG;
const D = IO.DATA;
const PAGE = 0x1000;
const PAGES = 64;
const BO = 7;

function vmCreate(E: Engine): number {
  return rawVm(E, PAGES * PAGE);
}

/** refcount, linked mappings, BO id of a VmBo, or null when it is not a live VmBo. */
function info(E: Engine, vm: number, vmbo: number): [number, number, number] | null {
  const r = E.vmboInfo(vm, vmbo);
  if (r < 0) return null;
  const io = E.io();
  return [io[IO.OUT_INFO], io[IO.OUT_INFO + 1], io[IO.OUT_INFO + 2]];
}

/** The VmBo words (10) of the VM's mappings, in address order. */
function linkedTo(E: Engine, vm: number): number[] {
  const io = E.io();
  put64(io, A, 0);
  put64(io, A + 2, PAGES * PAGE);
  const n = E.iterate(vm, 1024);
  const at = E.io();
  return Array.from({ length: n }, (_, i) => at[D + i * VA_WORDS + 10]);
}

/** The handle the engine's next VmBo gets (made and put again, so nothing stays). */
function nextVmBoHandle(E: Engine, vm: number): number {
  const h = E.vmboCreate(vm, BO);
  expect(h).toBeGreaterThan(0);
  expect(E.vmboPut(vm, h)).toBe(0);
  return h;
}

describe.each(backends)('map requests that make their VmBo on %s', (backend) => {
  it('bind makes it, links the mapping to it and keeps it with the mapping\'s reference only', () => {
    const E = loadEngine(backend);
    const vm = vmCreate(E);
    mapArgs(E, 0, 4, BO, VMBO_MAKE);
    expect(E.bind(vm)).toBe(1);
    const h = E.io()[IO.OUT_MADE_VMBO];
    expect(h).toBeGreaterThan(0);
    expect(info(E, vm, h)).toEqual([1, 1, BO]);
    expect(linkedTo(E, vm)).toEqual([h]);
    // the made VmBo is an ordinary one: a second bind names it, an unbind of both mappings ends it
    mapArgs(E, 8, 2, BO, h);
    expect(E.bind(vm)).toBe(1);
    expect(E.io()[IO.OUT_MADE_VMBO]).toBe(0);
    expect(info(E, vm, h)).toEqual([2, 2, BO]);
    put64(E.io(), A, 0);
    put64(E.io(), A + 2, 16 * PAGE);
    expect(E.unbind(vm)).toBe(2);
    // (the fused call releases the VmBo it ended itself)
    expect(E.io()[IO.OUT_ZOMBIES]).toBe(0);
    expect([...E.io().subarray(IO.OUT_REAPED, IO.OUT_REAPED + 2)]).toEqual([1, h]);
    expect(info(E, vm, h)).toBeNull();
    E.vmDestroy(vm);
  });

  it('smMapOps makes it and the pending list holds it; dropping the list lets it go', () => {
    const E = loadEngine(backend);
    const vm = vmCreate(E);
    mapArgs(E, 0, 4, BO, VMBO_MAKE);
    expect(E.smMapOps(vm)).toBe(1);
    const h = E.io()[IO.OUT_MADE_VMBO];
    expect(h).toBeGreaterThan(0);
    expect(info(E, vm, h)).toEqual([1, 0, BO]);
    expect(E.opsApply(vm, 0, 1)).toBe(0);
    expect(info(E, vm, h)).toEqual([1, 1, BO]);
    expect(linkedTo(E, vm)).toEqual([h]);
    mapArgs(E, 8, 4, BO + 1, VMBO_MAKE);
    expect(E.smMapOps(vm)).toBe(1);
    const h2 = E.io()[IO.OUT_MADE_VMBO];
    expect(h2).toBeGreaterThan(0);
    expect(h2).not.toBe(h);
    expect(E.opsDrop(vm)).toBe(0);
    expect(E.io()[IO.OUT_ZOMBIES]).toBe(1);
    expect(E.vmboReap(vm)).toBe(1);
    expect(E.io()[D]).toBe(h2);
    expect(info(E, vm, h)).toEqual([1, 1, BO]);
    E.vmDestroy(vm);
  });

  it('a request that fails leaves no VmBo behind, as create + call + put would', () => {
    const E = loadEngine(backend);
    const vm = vmCreate(E);
    for (const call of ['bind', 'smMapOps'] as const) {
      const next = nextVmBoHandle(E, vm);
      // outside the VM: EINVAL after the VmBo was made, which then goes at once
      mapArgs(E, PAGES - 2, 4, BO, VMBO_MAKE);
      expect(E[call](vm)).toBe(-Errno.EINVAL);
      expect(E.io()[IO.OUT_MADE_VMBO]).toBe(0);
      expect(E.io()[IO.OUT_ZOMBIES]).toBe(0);
      expect(info(E, vm, next)).toBeNull();
      expect(nextVmBoHandle(E, vm)).toBe(next);
      // no BO to make a VmBo of
      mapArgs(E, 0, 4, 0, VMBO_MAKE);
      expect(E[call](vm)).toBe(-Errno.EINVAL);
      expect(E.io()[IO.OUT_MADE_VMBO]).toBe(0);
      expect(nextVmBoHandle(E, vm)).toBe(next);
      expect(linkedTo(E, vm)).toEqual([]);
    }
    // a list applied in part makes map requests EBUSY: the VmBo made goes too
    mapArgs(E, 0, 2, 0, 0);
    expect(E.bind(vm)).toBe(1);
    mapArgs(E, 4, 2, 0, 0);
    expect(E.bind(vm)).toBe(1);
    put64(E.io(), A, 0);
    put64(E.io(), A + 2, 8 * PAGE);
    expect(E.smUnmapOps(vm)).toBe(2);
    expect(E.opsApply(vm, 0, 1)).toBe(0);
    const next = nextVmBoHandle(E, vm);
    mapArgs(E, 4, 2, BO, VMBO_MAKE);
    for (const call of ['bind', 'smMapOps'] as const) {
      expect(E[call](vm)).toBe(-Errno.EBUSY);
      expect(E.io()[IO.OUT_MADE_VMBO]).toBe(0);
      expect(nextVmBoHandle(E, vm)).toBe(next);
    }
    E.vmDestroy(vm);
  });

  it('submit: SUBMIT_MAKE makes the VmBo of a bind, SUBMIT_SAME binds use it, and stop once it is gone', () => {
    const E = loadEngine(backend);
    const vm = vmCreate(E);
    const rec = (i: number, w0: number, w1: number, page: number, pages: number): void => {
      const io = E.io();
      const p = D + i * SUBMIT_WORDS;
      io[p] = w0;
      io[p + 1] = w1;
      put64(io, p + 2, page * PAGE);
      put64(io, p + 4, pages * PAGE);
      put64(io, p + 6, 0);
    };
    const B = SubmitKind.BIND;
    rec(0, B | SUBMIT_MAKE, BO, 0, 2);
    rec(1, B | SUBMIT_SAME, 0, 4, 2);
    rec(2, B | SUBMIT_SAME, 2, 8, 2); // names itself: not an earlier record
    rec(3, B | SUBMIT_MAKE | SUBMIT_SAME, BO + 1, 12, 2); // MAKE takes no other flag
    rec(4, B | SUBMIT_MAKE, 0, 12, 2); // no BO
    rec(5, SubmitKind.UNBIND, 0, 0, 8); // both of BO's mappings go: its VmBo is a zombie
    rec(6, B | SUBMIT_SAME, 0, 20, 2); // stops here
    rec(7, B, 0, 24, 2);
    expect(E.submit(vm, 8)).toBe(6);
    const io = E.io();
    const h = io[D + 1];
    expect(h).toBeGreaterThan(0);
    expect([0, 1, 2, 3, 4, 5].map((i) => io[D + i * SUBMIT_WORDS] | 0)).toEqual([1, 1, -Errno.EINVAL, -Errno.EINVAL, -Errno.EINVAL, 2]);
    expect(io[D + 4 * SUBMIT_WORDS + 1]).toBe(0);
    expect(io[D + 6 * SUBMIT_WORDS]).toBe(B | SUBMIT_SAME); // not run
    expect(io[IO.OUT_ZOMBIES]).toBe(1);
    expect(E.vmboReap(vm)).toBe(1);
    expect(E.io()[D]).toBe(h);
    // a make whose bind fails leaves no VmBo, and a SAME naming it stops
    const next = nextVmBoHandle(E, vm);
    rec(0, B | SUBMIT_MAKE, BO, PAGES - 1, 2); // outside the VM
    rec(1, B | SUBMIT_SAME, 0, 0, 2);
    expect(E.submit(vm, 2)).toBe(1);
    expect(E.io()[D] | 0).toBe(-Errno.EINVAL);
    expect(E.io()[D + 1]).toBe(0);
    expect(nextVmBoHandle(E, vm)).toBe(next);
    expect(linkedTo(E, vm)).toEqual([]);
    E.vmDestroy(vm);
  });
});
