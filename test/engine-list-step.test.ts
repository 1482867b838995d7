/**
 * The engines' smMapApply / smUnmapApply (an op list made and applied in one
 * call) against smMapOps / smUnmapOps followed by opsApply of the whole
 * list, on every engine, through the raw engine calls: the same op count or
 * error, the same records (handles and serials aside: the two VMs share the
 * engine's pools) and the same mappings after every request.
 */
import { describe, expect, it } from 'vitest';
import { IO, OP_WORDS, VA_WORDS, type Engine } from '../src/backend/engine.js';
import { loadEngine } from '../src/backend/loader.js';
import { backends } from './support/engines.js';
import { put64, rawVm } from './support/raw-engine.js';
import { Prng } from './support/prng.js';

const A = IO.ARG;
const D = IO.DATA;
const PAGE = 0x1000;
const PAGES = 512;

function vmCreate(E: Engine, pages = PAGES + 1): number {
  return rawVm(E, pages * PAGE);
}

/** The op records at DATA, handle and serial (words 1, 2) left out. */
function records(E: Engine, n: number): number[][] {
  const io = E.io();
  const out: number[][] = [];
  for (let i = 0; i < Math.min(n, 4096); i++) {
    const r = Array.from(io.subarray(D + i * OP_WORDS, D + (i + 1) * OP_WORDS));
    r.splice(1, 2);
    out.push(r);
  }
  return out;
}

/** The VM's mappings: bo, addr, range, offset words of each. */
function mappings(E: Engine, vm: number): number[][] {
  const io = E.io();
  put64(io, A, 0);
  put64(io, A + 2, (PAGES + 1) * PAGE - 1);
  const n = E.iterate(vm, 4096);
  const at = E.io();
  return Array.from({ length: n }, (_, i) => Array.from(at.subarray(D + i * VA_WORDS + 2, D + i * VA_WORDS + 10)));
}

describe.each(backends)('smMapApply / smUnmapApply on %s', (backend) => {
  it('equal the list made, then applied whole', () => {
    const E = loadEngine(backend);
    const one = vmCreate(E);
    const two = vmCreate(E);
    const r = new Prng(0x11575);
    for (let i = 0; i < 2000; i++) {
      const map = r.int(4) !== 0;
      const pages = 1 + r.int(24);
      // now and then a request that is not valid for the VM (past its end, or empty)
      const addr = PAGE * (r.int(50) === 0 ? PAGES + 2 : 1 + r.int(PAGES - pages));
      const range = r.int(60) === 0 ? 0 : pages * PAGE;
      const bo = r.int(4);
      const offset = PAGE * r.int(64);
      const write = (): void => {
        const io = E.io();
        put64(io, A, addr);
        put64(io, A + 2, range);
        put64(io, A + 4, offset);
        io[A + 6] = bo;
        io[A + 7] = 0; // no VmBo: the mapping only names its BO
        io[A + 8] = 0; // no room in the record ring: records to DATA
        io[A + 9] = 0;
      };
      write();
      const n = map ? E.smMapApply(one) : E.smUnmapApply(one);
      const got = n >= 0 ? records(E, n) : [];
      write();
      const m = map ? E.smMapOps(two) : E.smUnmapOps(two);
      expect(n, `request ${i}`).toBe(m);
      if (m > 0) {
        expect(got, `request ${i}`).toEqual(records(E, m));
        expect(E.opsApply(two, 0, m)).toBe(0);
      }
      if (i % 50 === 0) expect(mappings(E, one)).toEqual(mappings(E, two));
    }
    expect(mappings(E, one)).toEqual(mappings(E, two));
    expect(E.vmDestroy(one)).toBe(0);
    expect(E.vmDestroy(two)).toBe(0);
  });

  it('a list longer than DATA holds is made and applied the long way, and stays readable', () => {
    const E = loadEngine(backend);
    const n = 4500;
    const vms = [vmCreate(E, 2 * n + 2), vmCreate(E, 2 * n + 2)];
    for (const vm of vms) {
      for (let i = 0; i < n; i++) {
        const io = E.io();
        put64(io, A, PAGE * (1 + 2 * i));
        put64(io, A + 2, PAGE);
        put64(io, A + 4, 0);
        io[A + 6] = 1;
        io[A + 7] = 0;
        expect(E.bind(vm)).toBe(1);
      }
    }
    const write = (): void => {
      const io = E.io();
      put64(io, A, PAGE);
      put64(io, A + 2, 2 * n * PAGE);
      io[A + 8] = 0;
      io[A + 9] = 0;
    };
    write();
    expect(E.smUnmapApply(vms[0])).toBe(n);
    const got = records(E, n);
    expect(E.opsRead(vms[0], 4096)).toBe(n - 4096);
    const rest = records(E, n - 4096);
    write();
    expect(E.smUnmapOps(vms[1])).toBe(n);
    expect(got).toEqual(records(E, n));
    expect(E.opsRead(vms[1], 4096)).toBe(n - 4096);
    expect(rest).toEqual(records(E, n - 4096));
    expect(E.opsApply(vms[1], 0, n)).toBe(0);
    expect(mappings(E, vms[0])).toEqual([]);
    expect(mappings(E, vms[1])).toEqual([]);
    for (const vm of vms) expect(E.vmDestroy(vm)).toBe(0);
  });
});
