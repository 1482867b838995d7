/**
 * The compact engine layout at scale, on every engine: 48-byte mapping
 * records whose `end` the range tree reads (leaves keep no ends), BO and
 * VmBo folded into one owner word, leaves that shift entries into a
 * sibling with room before they split, and batched lookups that descend
 * side by side. Thousands of mappings make trees
 * three and four levels deep, so sibling shifts, splits and merges all run;
 * every lookup, the whole VM and each VmBo's list are checked against a
 * sorted-array model, and native and WASM must take the same shapes
 * (identical node counts and bytes after every request).
 */
import { describe, expect, it } from 'vitest';
import { Bo, GpuVm } from '../src/index.js';
import { backends } from './support/engines.js';
import { Prng } from './support/prng.js';

const P = 0x1000;
const BOS = 8;

interface Entry {
  addr: number;
  end: number;
  bo: number; // 0: none
  offset: number;
}

/** Split/merge semantics over a sorted array: what bind and unbind leave. */
class Model {
  entries: Entry[] = [];

  /** Index of the first entry ending after a (entries are disjoint and sorted). */
  private lower(a: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.entries[mid].end <= a) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Clears [a, e); returns where an entry starting at a goes. */
  private cut(a: number, e: number): number {
    const i = this.lower(a);
    let j = i;
    const keep: Entry[] = [];
    for (; j < this.entries.length && this.entries[j].addr < e; j++) {
      const x = this.entries[j];
      if (x.addr < a) keep.push({ addr: x.addr, end: a, bo: x.bo, offset: x.offset });
      if (x.end > e) keep.push({ addr: e, end: x.end, bo: x.bo, offset: x.offset + (e - x.addr) });
    }
    this.entries.splice(i, j - i, ...keep);
    return keep.length > 0 && keep[0].addr < a ? i + 1 : i;
  }

  bind(a: number, e: number, bo: number, offset: number): void {
    this.entries.splice(this.cut(a, e), 0, { addr: a, end: e, bo, offset });
  }

  unbind(a: number, e: number): void {
    this.cut(a, e);
  }

  findFirst(a: number, e: number): Entry | null {
    const x = this.entries[this.lower(a)];
    return x !== undefined && x.addr < e ? x : null;
  }
}

function vmState(vm: GpuVm<number>, ids: Map<Bo, number>): Entry[] {
  return [...vm.mappings()].map((va) => ({ addr: va.addr, end: va.addr + va.range, bo: va.bo === null ? 0 : ids.get(va.bo)!, offset: va.offset }));
}

function world(backend: (typeof backends)[number]) {
  const bos: (Bo | null)[] = [null];
  const ids = new Map<Bo, number>();
  for (let i = 1; i <= BOS; i++) {
    const bo = new Bo({ size: 2 ** 40, name: `tree-bo${i}` });
    bos.push(bo);
    ids.set(bo, i);
  }
  const vm = new GpuVm({ name: `tree-${backend}`, start: 0x1_0000_0000, range: 2 ** 40, backend });
  return { vm, bos, ids };
}

/** The VmBo lists hold exactly the model's mappings of each BO. */
function checkVmBos(vm: GpuVm<number>, bos: (Bo | null)[], model: Model): void {
  for (let i = 1; i <= BOS; i++) {
    const bo = bos[i]!;
    const want = model.entries.filter((x) => x.bo === i).map((x) => x.addr);
    const vb = bo.vmBos.find((v) => v.vm === vm && v.live);
    const got = vb ? vb.mappings().map((va) => va.addr).sort((x, y) => x - y) : [];
    expect(got).toEqual(want);
    if (vb) for (const va of vb.mappings()) expect(va.bo).toBe(bo);
  }
}

type Req = { t: 'bind'; a: number; e: number; bo: number; offset: number } | { t: 'unbind'; a: number; e: number };

/** A stream over `slots` 8-page slots: mostly binds of 1..6 pages (some across slot edges), some unbinds. */
function stream(seed: number, count: number, slots: number): Req[] {
  const rng = new Prng(seed);
  const out: Req[] = [];
  const base = 0x1_0000_0000;
  for (let i = 0; i < count; i++) {
    const a = base + (rng.int(slots) * 8 + rng.int(8)) * P;
    const e = a + rng.between(1, 6) * P;
    if (rng.chance(0.2)) out.push({ t: 'unbind', a, e: a + rng.between(1, 40) * P });
    else out.push({ t: 'bind', a, e, bo: rng.int(BOS + 1), offset: rng.int(1 << 20) * P });
  }
  return out;
}

function run(vm: GpuVm<number>, bos: (Bo | null)[], r: Req): void {
  if (r.t === 'bind') vm.bind(r.a, r.e - r.a, bos[r.bo], r.bo === 0 ? 0 : r.offset);
  else vm.unbind(r.a, r.e - r.a);
}

describe.each(backends)('compact range tree on %s', (backend) => {
  it('random fill: under 64 engine bytes a mapping, and every lookup and VmBo list right', () => {
    const { vm, bos, ids } = world(backend);
    const model = new Model();
    const n = 20000;
    const order = Array.from({ length: n }, (_, i) => i);
    const rng = new Prng(5);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const base = 0x1_0000_0000;
    for (const i of order) {
      vm.bind(base + i * 8 * P, 4 * P, bos[1 + (i & 7)], i * 4 * P);
      model.bind(base + i * 8 * P, base + i * 8 * P + 4 * P, 1 + (i & 7), i * 4 * P);
    }
    const st = vm.stats();
    expect(st.mappings).toBe(n);
    // 48-byte records and leaves above 90% full (208-byte nodes)
    expect(st.bytes / n).toBeLessThan(64);
    expect(st.treeNodes).toBeLessThan(n / 13);
    expect(vmState(vm, ids)).toEqual(model.entries);
    checkVmBos(vm, bos, model);
    for (let k = 0; k < 4000; k++) {
      const a = base + rng.int(n * 8 + 16) * P;
      const e = a + rng.between(1, 12) * P;
      const want = model.findFirst(a, e);
      const got = vm.findFirst(a, e - a);
      expect(got === null ? null : got.addr).toBe(want === null ? null : want.addr);
    }
    // batched lookups (run side by side in groups) answer as single ones
    for (const count of [1, 15, 16, 17, 1000, 5461]) {
      const addrs = Array.from({ length: count }, () => base + rng.int(n * 8 + 16) * P);
      const range = rng.between(1, 12) * P;
      const got = vm.findFirstMany(addrs, range).map((va) => (va === null ? null : [va.addr, va.range, va.offset, ids.get(va.bo!)]));
      const want = addrs.map((a) => model.findFirst(a, a + range)).map((x) => (x === null ? null : [x.addr, x.end - x.addr, x.offset, x.bo]));
      expect(got).toEqual(want);
    }
    // replacement binds (a slot-0 entry goes back through its left neighbour)
    for (let k = 0; k < 3000; k++) {
      const i = rng.int(n);
      vm.bind(base + i * 8 * P, 4 * P, bos[1 + (k & 7)], (k & 0xfff) * P);
      model.bind(base + i * 8 * P, base + i * 8 * P + 4 * P, 1 + (k & 7), (k & 0xfff) * P);
    }
    expect(vm.stats().treeNodes).toBeLessThan(n / 12);
    expect(vmState(vm, ids)).toEqual(model.entries);
    checkVmBos(vm, bos, model);
    vm.unbind(base, n * 8 * P);
    expect(vm.stats()).toMatchObject({ mappings: 0, treeNodes: 1 });
    checkVmBos(vm, bos, new Model());
    vm.destroy();
  });

  it('a long mixed stream (deep trees: shifts, splits, merges) agrees with the model', () => {
    for (const seed of [1, 2]) {
      const { vm, bos, ids } = world(backend);
      const model = new Model();
      const cmds = stream(seed, 30000, 3000);
      const rng = new Prng(seed + 100);
      let deepest = 0;
      cmds.forEach((r, i) => {
        run(vm, bos, r);
        if (r.t === 'bind') model.bind(r.a, r.e, r.bo, r.bo === 0 ? 0 : r.offset);
        else model.unbind(r.a, r.e);
        const a = 0x1_0000_0000 + rng.int(3000 * 8) * P;
        const want = model.findFirst(a, a + 3 * P);
        const got = vm.findFirst(a, 3 * P);
        expect(got === null ? null : [got.addr, got.range, got.offset]).toEqual(
          want === null ? null : [want.addr, want.end - want.addr, want.offset],
        );
        deepest = Math.max(deepest, vm.stats().treeNodes);
        if (i % 3000 === 0) {
          expect(vmState(vm, ids)).toEqual(model.entries);
          checkVmBos(vm, bos, model);
        }
      });
      expect(deepest).toBeGreaterThan(17 * 16); // above two levels of inner nodes
      expect(vmState(vm, ids)).toEqual(model.entries);
      checkVmBos(vm, bos, model);
      vm.destroy();
    }
  });
});

describe.runIf(backends.length > 1)('native and WASM', () => {
  it('take the same tree shapes and report the same bytes, request by request', () => {
    const worlds = backends.map((b) => world(b));
    for (const r of stream(7, 20000, 2500)) {
      for (const w of worlds) run(w.vm, w.bos, r);
      const [a, b] = worlds.map((w) => w.vm.stats());
      expect(b.treeNodes).toBe(a.treeNodes);
      expect(b.mappings).toBe(a.mappings);
    }
    for (const w of worlds) w.vm.destroy();
  });
});
