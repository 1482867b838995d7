/**
 * The kernel-stream workload (src/workload.ts): every engine
 * that loads must reproduce the table, through the fused calls and through
 * op lists, and so must the sorted-btree peer the benchmarks compare against
 * (which keeps that comparison honest). N=1e6 runs only with GPUVM_LONG=1.
 */
import { describe, it, expect } from 'vitest';
import { availableBackends } from '../src/backend/loader.js';
import { GpuVm, Bo } from '../src/index.js';
import {
  EXPECTED,
  VM_START,
  VM_RANGE,
  XorShift64Star,
  Fnv1a64,
  generate,
  checksum,
  type Workload,
  type Expected,
} from '../bench/workload.mjs';
import { SortedBtreeVm } from '../bench/peers/sorted-btree-vm.mjs';
import { IntervalTreeVm } from '../bench/peers/interval-tree-vm.mjs';

const LONG = process.env.GPUVM_LONG === '1';
const sizes = LONG ? [100000, 1000000] : [100000];
const backends = availableBackends();

const workloads = new Map<number, Workload>();
function workload(n: number): Workload {
  let w = workloads.get(n);
  if (!w) {
    w = generate(n, 1);
    workloads.set(n, w);
  }
  return w;
}

function expected(n: number): Expected {
  const e = EXPECTED[n];
  if (!e) throw new Error(`no expected results for N=${n}`);
  return e;
}

/** BOs 1..8 (index 0: no BO) and Bo -> workload id. */
function makeBos(): { bos: (Bo | null)[]; ids: Map<Bo, number> } {
  const bos: (Bo | null)[] = [null];
  const ids = new Map<Bo, number>();
  for (let i = 1; i <= 8; i++) {
    const bo = new Bo({ size: 2 ** 40, name: `stream-bo${i}` });
    bos.push(bo);
    ids.set(bo, i);
  }
  return { bos, ids };
}

function state(vm: GpuVm, ids: Map<Bo, number>) {
  const out: { addr: number; range: number; bo: number; offset: number }[] = [];
  for (const va of vm.mappings()) {
    out.push({ addr: va.addr, range: va.range, bo: va.bo === null ? 0 : (ids.get(va.bo) ?? -1), offset: va.offset });
  }
  return out;
}

describe('kernel-stream workload generator', () => {
  it('xorshift64* gives the documented first values for seed 1', () => {
    const r = new XorShift64Star(1);
    expect([r.nextBig(), r.nextBig(), r.nextBig()]).toEqual([0x47e4ce4b896cdd1dn, 0xabcfa6a8e079651dn, 0xb9d10d8feb731f57n]);
  });

  it('matches a BigInt reference for u64 steps, rnd and seed 0', () => {
    const M = (1n << 64n) - 1n;
    for (const seed of [0, 1, 0xdeadbeef, 2 ** 53 - 1]) {
      let s = BigInt(seed) || 0x9e3779b97f4a7c15n;
      const x = new XorShift64Star(seed);
      const y = new XorShift64Star(seed);
      for (let i = 0; i < 2000; i++) {
        s ^= s >> 12n;
        s = (s ^ (s << 25n)) & M;
        s ^= s >> 27n;
        const v = (s * 0x2545f4914f6cdd1dn) & M;
        expect(x.nextBig()).toBe(v);
        const n = [4, 9, 64, 65536, 2 ** 20, 2 ** 53][i % 6];
        expect(y.rnd(n)).toBe(Number((v >> 11n) % BigInt(n)));
      }
    }
  });

  it('FNV-1a 64 over little-endian u64 values matches a BigInt reference', () => {
    const M = (1n << 64n) - 1n;
    let h = 0xcbf29ce484222325n;
    const f = new Fnv1a64();
    for (const v of [0, 1, 0x1000, 2 ** 32, 2 ** 47 + 5, 2 ** 53 - 1]) {
      f.u64(v);
      let b = BigInt(v);
      for (let k = 0; k < 8; k++) {
        h = ((h ^ (b & 0xffn)) * 0x100000001b3n) & M;
        b >>= 8n;
      }
    }
    expect(f.hex()).toBe(`0x${h.toString(16).padStart(16, '0')}`);
  });

  it.each(sizes)('N=%i has the documented map / unmap request counts', (n) => {
    const w = workload(n);
    expect({ map: w.maps, unmap: w.unmaps }).toEqual({ map: expected(n).mapRequests, unmap: expected(n).unmapRequests });
  });
});

describe('kernel-stream peers (the benchmark baselines) reproduce the table', () => {
  it.each(sizes)('sorted-btree, N=%i', (n) => {
    const w = workload(n);
    const e = expected(n);
    const vm = new SortedBtreeVm({ start: VM_START, range: VM_RANGE });
    for (let i = 0; i < n; i++) {
      if (w.kind[i] === 0) vm.unbind(w.addr[i], w.range[i]);
      else vm.bind(w.addr[i], w.range[i], w.bo[i], w.offset[i]);
    }
    expect(vm.applied).toEqual(e.ops);
    expect(vm.count).toBe(e.mappings);
    expect(checksum(vm.mappings())).toEqual({ checksum: e.checksum, count: e.mappings });
    // VmBo bookkeeping: every mapping with a BO is in its VmBo, refcounts match
    let linked = 0;
    for (const va of vm.mappings()) {
      if (va.bo === 0) expect(va.vmBo).toBeNull();
      else {
        expect(va.vmBo?.bo).toBe(va.bo);
        expect(va.vmBo?.mappings.has(va)).toBe(true);
        linked++;
      }
    }
    let sets = 0;
    for (const vb of vm.vmBos.values()) {
      expect(vb.refcount).toBe(vb.mappings.size);
      sets += vb.mappings.size;
    }
    expect(sets).toBe(linked);
  });

  it('interval-tree, N=100000', () => {
    const n = 100000;
    const w = workload(n);
    const e = expected(n);
    const vm = new IntervalTreeVm({ start: VM_START, range: VM_RANGE });
    for (let i = 0; i < n; i++) {
      if (w.kind[i] === 0) vm.unbind(w.addr[i], w.range[i]);
      else vm.bind(w.addr[i], w.range[i], w.bo[i], w.offset[i]);
    }
    expect(vm.applied).toEqual(e.ops);
    expect(checksum(vm.mappings())).toEqual({ checksum: e.checksum, count: e.mappings });
  });
});

describe('kernel-stream engines', () => {
  it('at least one engine loads', () => {
    expect(backends.length).toBeGreaterThan(0);
  });

  describe.each(backends)('%s', (backend) => {
    it.each(sizes)('fused bind / unbind, N=%i', (n) => {
      const w = workload(n);
      const e = expected(n);
      const { bos, ids } = makeBos();
      const vm = new GpuVm({ name: `stream-${backend}`, start: VM_START, range: VM_RANGE, backend });
      try {
        for (let i = 0; i < n; i++) {
          if (w.kind[i] === 0) vm.unbind(w.addr[i], w.range[i]);
          else vm.bind(w.addr[i], w.range[i], bos[w.bo[i]], w.offset[i]);
        }
        expect(vm.count).toBe(e.mappings);
        expect(checksum(state(vm, ids))).toEqual({ checksum: e.checksum, count: e.mappings });
      } finally {
        vm.destroy();
      }
    });

    it.each(sizes)('op lists (smMapOps / smUnmapOps, apply), N=%i', (n) => {
      const w = workload(n);
      const e = expected(n);
      const { bos, ids } = makeBos();
      const vm = new GpuVm({ name: `stream-ops-${backend}`, start: VM_START, range: VM_RANGE, backend });
      const counts: Record<string, number> = { map: 0, remap: 0, unmap: 0 };
      try {
        for (let i = 0; i < n; i++) {
          const ops =
            w.kind[i] === 0
              ? vm.smUnmapOps(w.addr[i], w.range[i])
              : vm.smMapOps({ addr: w.addr[i], range: w.range[i], bo: bos[w.bo[i]], offset: w.offset[i] });
          for (const op of ops) counts[op.kind] = (counts[op.kind] ?? 0) + 1;
          ops.apply(); // also when empty (an unmap of nothing)
        }
        expect(counts).toEqual(e.ops);
        expect(vm.count).toBe(e.mappings);
        expect(checksum(state(vm, ids))).toEqual({ checksum: e.checksum, count: e.mappings });
      } finally {
        vm.destroy();
      }
    });
  });
});
