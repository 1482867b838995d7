/**
 * vm.bindArray atomicity (VM_BIND arrays are all or nothing): an array of
 * map / unmap / prefetch / unmapAll entries takes effect entirely or not at
 * all. An injected error (ENOMEM) or an invalid entry (EINVAL) at any
 * position leaves every mapping, every VmBo list (link order), every
 * refcount, each BO's VmBo list, extobjs and evicted exactly as before, with
 * the same live objects; the error names the failing index. A successful
 * array equals applying the same entries one by one (op lists, op counts,
 * final state). Unbinding a range with no mapping is success.
 */
import { describe, expect, it } from 'vitest';
import { availableBackends, Bo, GpuVm, GpuVmError, type BindEntry, type GpuVa } from '../src/index.js';
import { byName, listKeys } from './support/keys.js';
import { Prng } from './support/prng.js';
import { checkInvariants, expectSameObjects, snapshotWorld, thrown, type Objects, type WorldSnap } from './support/state.js';
import { buildWorld, KERNEL, pa, pb, PG, type World } from './support/world.js';

const P = BigInt(PG);
const TWO64 = 1n << 64n;

/** The main array on vmA (bigint mode): ~12 mixed entries over the world of support/world.ts. */
function mainEntries(w: World): BindEntry[] {
  const { b } = w;
  return [
    { op: 'map', addr: pa(6), range: 4n * P, bo: b.s2, offset: 0x40000n }, // splits p [0,8) (prev) and s1 [8,12) (next)
    { op: 'unmap', addr: pa(13), range: 2n * P }, // hole in s1 [12,16): prev + next
    { op: 'prefetch', addr: pa(0), range: 0x100n * P }, // the whole VM; the kernel node is skipped
    { op: 'map', addr: pa(17), range: P, bo: b.fresh, offset: 0n }, // splits the null mapping; fresh has no VmBo yet
    { op: 'unmapAll', bo: b.s1 }, // every s1 mapping of A (pieces included), none of B's
    { op: 'map', addr: pa(48), range: 4n * P, bo: b.p, offset: 0x1000n }, // empty space
    { op: 'unmap', addr: pa(60), range: 0x10n * P }, // nothing there: success
    { op: 'map', addr: pa(20), range: 2n * P, bo: null }, // over the head of s2 [20,28): a flagged next piece
    { op: 'map', addr: pa(22), range: 2n * P, bo: b.s2, offset: 0x2000n }, // contiguous with s2: keep
    { op: 'unmapAll', bo: b.fresh }, // what entry 3 mapped
    { op: 'map', addr: pa(36), range: 4n * P, bo: b.held, offset: 0n }, // the held VmBo gets a mapping
  ];
}

/** Invalid entries (EINVAL) for vmA. */
function invalidEntries(w: World): BindEntry[] {
  const { b } = w;
  const k = BigInt(KERNEL.start);
  return [
    { op: 'map', addr: pa(2), range: 0n, bo: b.s1, offset: 0n }, // zero range
    { op: 'map', addr: k - P, range: 2n * P, bo: b.s1, offset: 0n }, // over the kernel node
    { op: 'unmap', addr: pa(-1), range: 2n * P }, // partly before the VM
    { op: 'prefetch', addr: TWO64 - P, range: 2n * P }, // overflows u64
    { op: 'unmap', addr: k, range: P }, // the kernel node
    { op: 'map', addr: pa(250), range: 10n * P, bo: null, offset: 0n }, // past the end
    { op: 'map', addr: TWO64 - 2n * P, range: 2n * P, bo: b.s2, offset: 0n }, // end of exactly 2^64
  ];
}

/** Extobjs and each BO's VmBo list compared as sets (the order is not what these tests are about). */
function unordered(s: WorldSnap): WorldSnap {
  return {
    vms: s.vms.map((v) => ({ ...v, extobjs: [...(v.extobjs ?? [])].sort(), evicted: [...(v.evicted ?? [])].sort() })),
    bos: Object.fromEntries(Object.entries(s.bos).map(([k, v]) => [k, [...v].sort()])),
  };
}

/** Applies entries one at a time with op lists; returns every op key (BOs by name). */
function oneByOneLists(vm: GpuVm<any>, entries: readonly BindEntry[]): string[] { // eslint-disable-line @typescript-eslint/no-explicit-any
  const keys: string[] = [];
  for (const e of entries) {
    switch (e.op) {
      case 'map': {
        const l = vm.smMapOps({ addr: e.addr, range: e.range, bo: e.bo, offset: e.offset });
        keys.push(...listKeys(l, byName));
        l.apply();
        break;
      }
      case 'unmap': {
        const l = vm.smUnmapOps(e.addr, e.range);
        keys.push(...listKeys(l, byName));
        if (l.length > 0) l.apply();
        break;
      }
      case 'prefetch': {
        const l = vm.prefetchOps(e.addr, e.range);
        keys.push(...listKeys(l, byName));
        l.drop();
        break;
      }
      case 'unmapAll': {
        const vb = vm.findBo(e.bo);
        if (vb === null) break;
        const l = vb.unmapOps();
        keys.push(...listKeys(l, byName));
        if (l.length > 0) l.apply();
        vb.put();
        break;
      }
    }
  }
  return keys;
}

/** Applies entries one at a time with bind / unbind; returns the op count. */
function oneByOneFused(vm: GpuVm<any>, entries: readonly BindEntry[]): number { // eslint-disable-line @typescript-eslint/no-explicit-any
  let n = 0;
  for (const e of entries) {
    switch (e.op) {
      case 'map':
        n += vm.bind(e.addr, e.range, e.bo ?? null, e.offset ?? 0);
        break;
      case 'unmap':
        n += vm.unbind(e.addr, e.range);
        break;
      case 'prefetch':
        n += vm.prefetchOps(e.addr, e.range).length;
        break;
      case 'unmapAll': {
        const vb = vm.findBo(e.bo);
        if (vb === null) break;
        const l = vb.unmapOps();
        n += l.length;
        if (l.length > 0) l.apply();
        vb.put();
        break;
      }
    }
  }
  return n;
}

function expectFailsAtomically(w: { snap(): WorldSnap; objects(): Objects[] }, vm: GpuVm<any>, entries: BindEntry[], code: string, index: number): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  const before = w.snap();
  const objects = w.objects();
  const err = thrown(() => vm.bindArray(entries));
  if (!(err instanceof GpuVmError)) throw err;
  expect(err.code, err.message).toBe(code);
  expect(err.message).toContain(`bindArray[${index}]`);
  expect(w.snap()).toEqual(before);
  const after = w.objects();
  for (let i = 0; i < objects.length; i++) expectSameObjects(objects[i], after[i]);
}

describe.each(availableBackends())('bindArray on %s', (backend) => {
  it('the main array really exercises splits, keeps, shared VmBos and empty entries', () => {
    const w = buildWorld(backend);
    const before = w.snap();
    const list = w.vmA.bindArray(mainEntries(w));
    expect(list.state).toBe('applied');
    const keys = listKeys(list, byName);
    const kinds = keys.map((k) => k.split(' ')[0]);
    expect(kinds).toContain('remap');
    expect(kinds).toContain('prefetch');
    expect(keys.some((k) => k.includes('keep=1'))).toBe(true);
    expect(keys.some((k) => /prev=\[.*next=\[/.test(k))).toBe(true); // a remap with both pieces
    // no op names a mapping of vmB, and vmB is untouched
    expect(w.snap().vms[1]).toEqual(before.vms[1]);
    expect(w.snap().vms[0]).not.toEqual(before.vms[0]);
    // s1's VmBo survives (the world holds a reference) with no mapping in A; fresh is gone
    expect(w.refs.s1.mappings()).toEqual([]);
    expect(w.refs.s1.refcount).toBe(1);
    expect(w.b.fresh.vmBos).toEqual([]);
    expect(w.refs.held.mappings().map((m) => m.addr)).toEqual([pa(36)]);
    checkInvariants(w.vmA, w.bos);
    checkInvariants(w.vmB, w.bos);
  });

  it('an injected error at any position changes nothing (ENOMEM, index named, same objects)', () => {
    const w = buildWorld(backend);
    const entries = mainEntries(w);
    for (let i = 0; i < entries.length; i++) {
      const arr = entries.map((e, j) => (j === i ? { ...e, injectError: true } : e));
      expectFailsAtomically(w, w.vmA, arr, 'ENOMEM', i);
    }
    // after all those unwinds the world still behaves like a fresh one
    const fresh = buildWorld(backend);
    const l1 = w.vmA.bindArray(mainEntries(w));
    const l2 = fresh.vmA.bindArray(mainEntries(fresh));
    expect(w.snap()).toEqual(fresh.snap());
    expect(listKeys(l1, byName)).toEqual(listKeys(l2, byName));
  });

  it('an invalid entry at any position changes nothing (EINVAL, index named)', () => {
    const w = buildWorld(backend);
    const entries = mainEntries(w);
    const bad = invalidEntries(w);
    for (let i = 0; i <= entries.length; i++) {
      const arr = [...entries.slice(0, i), bad[i % bad.length], ...entries.slice(i)];
      expectFailsAtomically(w, w.vmA, arr, 'EINVAL', i);
    }
    // each kind of invalid entry alone, too
    for (const e of bad) expectFailsAtomically(w, w.vmA, [e], 'EINVAL', 0);
  });

  it('injected errors in vmB (number mode) leave both VMs and the shared BOs unchanged', () => {
    const w = buildWorld(backend);
    const { b } = w;
    const entries: BindEntry[] = [
      { op: 'map', addr: pb(2), range: 4 * PG, bo: b.s1, offset: 0x2000 }, // keep with s1 [0,4)
      { op: 'unmapAll', bo: b.s2 }, // B's only s2 mapping: its VmBo goes
      { op: 'map', addr: pb(9), range: 2 * PG, bo: b.fresh, offset: 0 }, // fresh gets a VmBo in B
      { op: 'unmap', addr: pb(13), range: PG }, // hole in p
      { op: 'prefetch', addr: pb(0), range: 0x40 * PG },
      { op: 'map', addr: pb(20), range: PG, bo: null },
    ];
    for (let i = 0; i < entries.length; i++) {
      expectFailsAtomically(w, w.vmB, entries.map((e, j) => (j === i ? { ...e, injectError: true } : e)), 'ENOMEM', i);
    }
    const before = w.snap();
    w.vmB.bindArray(entries);
    const after = w.snap();
    expect(after.vms[0]).toEqual(before.vms[0]); // vmA untouched
    expect(after.bos.s2).toEqual(['A']);
    expect(after.bos.fresh).toEqual(['B']);
  });

  it('success equals the entries applied one by one (op lists, op counts, final state)', () => {
    const w1 = buildWorld(backend);
    const w2 = buildWorld(backend);
    const w3 = buildWorld(backend);
    const list = w1.vmA.bindArray(mainEntries(w1));
    const keys2 = oneByOneLists(w2.vmA, mainEntries(w2));
    const n3 = oneByOneFused(w3.vmA, mainEntries(w3));
    const s1 = w1.snap();
    expect(s1).toEqual(w2.snap());
    expect(s1).toEqual(w3.snap());
    expect(list.length).toBe(n3);
    expect(keys2.length).toBe(n3);
    expect(listKeys(list, byName)).toEqual(keys2);
  });

  it('unbinding ranges with no mapping, prefetching nothing and unmapAll of an unmapped BO succeed with no ops', () => {
    const w = buildWorld(backend);
    const before = w.snap();
    const list = w.vmA.bindArray([
      { op: 'unmap', addr: pa(100), range: 0x20n * P },
      { op: 'prefetch', addr: pa(100), range: 0x20n * P },
      { op: 'unmapAll', bo: w.b.never },
      { op: 'unmapAll', bo: w.b.fresh },
    ]);
    expect(list.length).toBe(0);
    expect(w.snap()).toEqual(before);
    expect(w.vmA.bindArray([]).length).toBe(0);
    expect(w.snap()).toEqual(before);
  });

  it('an entry may map a BO whose VmBo an earlier entry destroyed (and the unwind restores it)', () => {
    // solo has one mapping in A and no other reference: unmapAll destroys its VmBo,
    // the next entry maps solo again
    const entries = (w: World): BindEntry[] => [
      { op: 'unmapAll', bo: w.b.solo },
      { op: 'map', addr: pa(41), range: P, bo: w.b.solo, offset: 0x9000n },
      { op: 'unmap', addr: pa(40), range: P }, // nothing there any more
      { op: 'map', addr: pa(42), range: 2n * P, bo: w.b.solo, offset: 0xa000n }, // contiguous: keep
    ];
    const w = buildWorld(backend);
    for (let i = 0; i < 4; i++) {
      expectFailsAtomically(w, w.vmA, entries(w).map((e, j) => (j === i ? { ...e, injectError: true } : e)), 'ENOMEM', i);
    }
    const list = w.vmA.bindArray(entries(w));
    const w2 = buildWorld(backend);
    expect(oneByOneLists(w2.vmA, entries(w2))).toEqual(listKeys(list, byName));
    // whether the VmBo object survives or is re-created may differ; lists, refcounts and mappings may not
    expect(unordered(w.snap())).toEqual(unordered(w2.snap()));
    checkInvariants(w.vmA, w.bos);
  });

  // Random arrays over random states, in two flavours: with every BO's VmBo held by
  // a driver reference (VmBos never die mid-array: isolates the undo of mappings,
  // links and refcounts), and bare (VmBos die and come back inside the array).
  describe.each([
    { flavour: 'held VmBos', holdAll: true },
    { flavour: 'bare VmBos', holdAll: false },
  ])('random arrays over random states ($flavour)', ({ holdAll }) => {
    const rounds = Array.from({ length: 40 }, (_, i) => ({ round: i, seed: new Prng(0xb1a5 + i).u32() }));
    const entriesOf = (seed: number, w: RandomWorld): BindEntry[] => randomEntries(new Prng(seed ^ 0x1234), w, new Prng(seed).between(3, 10));

    it('an injected error at any position unwinds exactly', () => {
      for (const { round, seed } of rounds) {
        const w = randomWorld(backend, seed, holdAll);
        const n = entriesOf(seed, w).length;
        for (let i = 0; i < n; i++) {
          const arr = entriesOf(seed, w).map((e, j) => (j === i ? { ...e, injectError: true } : e));
          try {
            expectFailsAtomically(w, w.vm, arr, 'ENOMEM', i);
          } catch (e) {
            (e as Error).message = `round ${round} seed ${seed} inject at ${i}: ${(e as Error).message}`;
            throw e;
          }
        }
      }
    });

    it('success equals the entries one by one (state for every round, then op lists)', () => {
      const lists: { round: number; seed: number; got: () => string[]; want: string[] }[] = [];
      for (const { round, seed } of rounds) {
        const w1 = randomWorld(backend, seed, holdAll);
        const w2 = randomWorld(backend, seed, holdAll);
        const list = w1.vm.bindArray(entriesOf(seed, w1));
        const keys2 = oneByOneLists(w2.vm, entriesOf(seed, w2));
        expect(unordered(w1.snap()), `round ${round} seed ${seed}`).toEqual(unordered(w2.snap()));
        checkInvariants(w1.vm, w1.bos);
        expect(list.length, `round ${round} seed ${seed}`).toBe(keys2.length);
        lists.push({ round, seed, got: () => listKeys(list, byName), want: keys2 });
      }
      for (const l of lists) expect(l.got(), `round ${l.round} seed ${l.seed}`).toEqual(l.want);
    });
  });
});

// ---- random worlds ----------------------------------------------------------------------

interface RandomWorld {
  vm: GpuVm<number>;
  other: GpuVm<number>;
  bos: Bo[];
  snap(): WorldSnap;
  objects(): Objects[];
}

const R0 = 0x100000;
const RPAGES = 48;

function randomWorld(backend: 'native' | 'wasm', seed: number, holdAll: boolean): RandomWorld {
  const rng = new Prng(seed);
  const vm = new GpuVm({ name: 'R', start: R0, range: RPAGES * PG, reserve: { start: R0 + 40 * PG, range: PG }, backend });
  const other = new GpuVm({ name: 'O', start: R0, range: RPAGES * PG, backend });
  const bos = [0, 1, 2, 3, 4].map((i) => new Bo({ name: `r${i}`, privateTo: i === 4 ? vm : undefined }));
  for (let k = 0; k < 30; k++) {
    const a = rng.int(40);
    const len = rng.between(1, Math.min(8, 40 - a));
    const bo = rng.chance(0.2) ? null : rng.pick(bos);
    const off = rng.int(64) * PG;
    if (rng.chance(0.8)) vm.bind(R0 + a * PG, len * PG, bo, off);
    else vm.unbind(R0 + a * PG, len * PG);
    if (rng.chance(0.3)) other.bind(R0 + a * PG, len * PG, rng.pick(bos), off);
  }
  for (const va of [...vm.mappings()]) if (!va.isKernelNode && rng.chance(0.3)) (va as GpuVa<number>).flags = 4 << rng.int(20);
  if (holdAll) for (const bo of bos) vm.obtainBo(bo);
  else if (rng.chance(0.5)) vm.obtainBo(bos[rng.int(5)]); // a held reference
  const all = [vm, other];
  return {
    vm,
    other,
    bos,
    snap: () => snapshotWorld(all, bos),
    objects: () => all.map((v) => ({ vas: [...v.mappings()], vmBos: bos.flatMap((b) => b.vmBos.filter((x) => x.vm === v)) })),
  };
}

function randomEntries(rng: Prng, w: RandomWorld, n: number): BindEntry[] {
  const out: BindEntry[] = [];
  const edges = [...w.vm.mappings()].flatMap((v) => [v.addr, v.addr + v.range]);
  const addr = () => (rng.chance(0.6) && edges.length ? rng.pick(edges) : R0 + rng.int(40) * PG);
  for (let i = 0; i < n; i++) {
    const a = Math.min(addr(), R0 + 39 * PG);
    const r = rng.between(1, Math.max(1, Math.min(8, 40 - (a - R0) / PG))) * PG; // stays below the kernel node
    switch (rng.weighted([45, 30, 10, 15])) {
      case 0: {
        const bo = rng.chance(0.2) ? null : rng.pick(w.bos);
        const same = [...w.vm.mappings()].filter((v) => v.bo === bo && bo !== null);
        const off = same.length && rng.chance(0.4) ? Math.max(0, same[0].offset + (a - same[0].addr)) : rng.int(64) * PG;
        out.push({ op: 'map', addr: a, range: r, bo, offset: off });
        break;
      }
      case 1:
        out.push({ op: 'unmap', addr: a, range: r });
        break;
      case 2:
        out.push({ op: 'prefetch', addr: a, range: r });
        break;
      default: {
        // a BO with a VmBo in the VM (unmapAll of a BO never mapped here has its own test)
        const mapped = w.bos.filter((b) => b.vmBos.some((x) => x.vm === w.vm));
        if (mapped.length > 0) out.push({ op: 'unmapAll', bo: rng.pick(mapped) });
        else out.push({ op: 'prefetch', addr: a, range: r });
      }
    }
  }
  return out;
}
