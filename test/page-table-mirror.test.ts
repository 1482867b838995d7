/**
 * A PageTable attached to a GpuVm, on every engine: after random streams of
 * bind, unbind, bindArray, applied op lists and callback-mode steps, the
 * mirror translates exactly like a table rebuilt from scratch from
 * vm.mappings(); a refusal (resolve throws, the table is over its per-call
 * limit) leaves the VM and the table as they were.
 */
import { describe, expect, it } from 'vitest';
import { GpuVmError } from '../src/errors.js';
import { GpuVm, type BindEntry } from '../src/gpuvm.js';
import { PageTable, type PtSegment } from '../src/page-table.js';
import { Bo } from '../src/vm-bo.js';
import { backends } from './support/engines.js';
import { prng } from './page-table-model.js';

const PAGE = 0x1000;
const K64 = 0x10000;
const WINDOW = 0x400000; // 4 MiB: 1024 pages, big enough for 2 MiB leaves

/** Odd BO ids are contiguous, even ones scattered in 64 KiB chunks. */
function physical(bo: Bo, offset: number): number {
  const base = bo.id * 2 ** 32;
  if (bo.id % 2 === 1) return base + offset;
  const k = Math.floor(offset / K64);
  return base + ((k * 40503) % 65536) * K64 + (offset % K64);
}

function resolve(bo: unknown, offset: number | bigint, length: number | bigint): PtSegment[] {
  const b = bo as Bo;
  const off = Number(offset);
  const len = Number(length);
  if (b.id % 2 === 1) return [{ pa: physical(b, off), len }];
  const segs: PtSegment[] = [];
  for (let at = off; at < off + len; ) {
    const next = Math.min(off + len, (Math.floor(at / K64) + 1) * K64);
    segs.push({ pa: physical(b, at), len: next - at });
    at = next;
  }
  return segs;
}

const VAS = Array.from({ length: WINDOW / PAGE }, (_, i) => i * PAGE);

/** A table built from scratch from the VM's mappings. */
function rebuilt(vm: GpuVm<number>, backend: 'native' | 'wasm'): PageTable<number> {
  const pt = new PageTable({ backend });
  for (const va of vm.mappings()) {
    if (va.isKernelNode) continue;
    pt.bind(va.addr, va.range, va.bo === null ? null : resolve(va.bo, va.offset, va.range));
  }
  return pt;
}

function expectInStep(vm: GpuVm<number>, mirror: PageTable<number>, backend: 'native' | 'wasm', where: string): void {
  const fresh = rebuilt(vm, backend);
  const want = fresh.translateMany(VAS).map((t) => (t === null ? null : t.pa));
  const got = mirror.translateMany(VAS).map((t) => (t === null ? null : t.pa));
  fresh.destroy();
  expect(got, where).toEqual(want);
}

function snapshot(vm: GpuVm<number>): string {
  return JSON.stringify([...vm.mappings()]);
}

describe.each(backends)('PageTable mirror on %s', (backend) => {
  it('the number type follows the bigint option (run time agrees with the types)', () => {
    const big = new GpuVm({ start: 0n, range: 2n ** 64n - 1n, bigint: true, backend });
    expect(typeof big.end).toBe('bigint');
    expect(big.end + 0x1000n).toBe(2n ** 64n - 1n + 0x1000n);
    const num = new GpuVm({ start: 0, range: 2 ** 32, backend });
    expect(typeof num.end).toBe('number');
    expect(typeof new PageTable({ bigint: true, backend }).span).toBe('bigint');
    big.destroy();
    num.destroy();
  });

  it('attach fills the table from the mappings the VM already has', () => {
    const vm = new GpuVm({ start: 0, range: WINDOW, backend });
    const a = new Bo();
    const b = new Bo();
    vm.bind(0x10000, 0x30000, a, 0x5000);
    vm.bind(0x200000, 0x200000, b, 0);
    vm.bind(0x50000, 0x2000, null);
    const pt = new PageTable({ backend });
    pt.bind(0x100000, 0x1000, [[0x77000, 0x1000]]); // stale content in the VM's range goes
    vm.attachPageTable(pt, resolve);
    expect(vm.pageTable).toBe(pt);
    expect(pt.attached).toBe(true);
    expectInStep(vm, pt, backend, 'after attach');
    // the table is the VM's now
    expect(() => pt.bind(0, PAGE, null)).toThrow(/EBUSY/);
    expect(() => pt.unbind(0, PAGE)).toThrow(/EBUSY/);
    expect(() => pt.commit([], resolve)).toThrow(/EBUSY/);
    expect(vm.detachPageTable()).toBe(pt);
    expect(pt.attached).toBe(false);
    vm.bind(0x10000, 0x1000, null);
    expect(pt.translate(0x10000)?.pa).toBe(physical(a, 0x5000)); // detached: no longer written
    pt.bind(0, PAGE, null);
    vm.destroy();
    pt.destroy();
  });

  it.each([1, 2, 3])('random streams keep the mirror in step (seed %i)', (seed) => {
    const rnd = prng(seed * 7919);
    const vm = new GpuVm({ start: 0, range: WINDOW, backend });
    const pt = new PageTable({ backend });
    const bos = [new Bo(), new Bo(), new Bo(), new Bo()];
    const keep = seed !== 2;
    vm.attachPageTable(pt, resolve, { keep });
    const span = () => {
      const a = Math.floor(rnd() * (WINDOW / PAGE - 1)) * PAGE;
      const n = 1 + Math.floor(rnd() * Math.min(600, (WINDOW - a) / PAGE - 1));
      return { addr: a, range: n * PAGE };
    };
    const someBo = () => (rnd() < 0.15 ? null : bos[Math.floor(rnd() * bos.length)]);
    for (let step = 0; step < 150; step++) {
      const r = rnd();
      const { addr, range } = span();
      const bo = someBo();
      const offset = Math.floor(rnd() * 64) * PAGE;
      let what: string;
      if (r < 0.3) {
        what = 'bind';
        vm.bind(addr, range, bo, offset);
      } else if (r < 0.45) {
        what = 'unbind';
        vm.unbind(addr, range);
      } else if (r < 0.6) {
        what = 'bindArray';
        const entries: BindEntry[] = [];
        const n = 1 + Math.floor(rnd() * 4);
        for (let i = 0; i < n; i++) {
          const s = span();
          const k = rnd();
          if (k < 0.5) entries.push({ op: 'map', ...s, bo: someBo(), offset: Math.floor(rnd() * 64) * PAGE });
          else if (k < 0.8) entries.push({ op: 'unmap', ...s });
          else if (k < 0.9) entries.push({ op: 'prefetch', ...s });
          else entries.push({ op: 'unmapAll', bo: bos[Math.floor(rnd() * bos.length)] });
        }
        vm.bindArray(entries);
      } else if (r < 0.75) {
        what = 'smMapOps + apply';
        vm.smMapOps({ addr, range, bo, offset }).apply();
      } else if (r < 0.82) {
        what = 'smUnmapOps + apply';
        vm.smUnmapOps(addr, range).apply();
      } else if (r < 0.86) {
        what = 'madviseOps + apply';
        vm.madviseOps(addr, range).apply();
      } else if (r < 0.93) {
        what = 'smMap steps';
        vm.smMap({ addr, range, bo, offset }, {
          map: (op) => {
            vm.vaMap(op); // links to the request's VmBo
          },
          remap: (op) => {
            vm.vaRemap(op);
          },
          unmap: (op) => vm.vaUnmap(op),
        });
      } else {
        what = 'VmBo unmapOps + apply';
        const vb = vm.findBo(bos[Math.floor(rnd() * bos.length)]);
        if (vb !== null) {
          vb.unmapOps().apply();
          if (vb.live) vb.put();
        }
      }
      expectInStep(vm, pt, backend, `seed ${seed} step ${step} (${what})`);
    }
    vm.destroy();
    expect(pt.attached).toBe(false); // destroying the VM detaches
    pt.destroy();
  });

  it('insert and remove are mirrored too', () => {
    const vm = new GpuVm({ start: 0, range: WINDOW, backend });
    const pt = new PageTable({ backend });
    vm.attachPageTable(pt, resolve);
    const bo = new Bo();
    const va = vm.insert({ addr: 0x40000, range: 0x10000, bo, offset: 0x3000 });
    expectInStep(vm, pt, backend, 'insert');
    vm.remove(va);
    expectInStep(vm, pt, backend, 'remove');
    expect(pt.translate(0x40000)).toBeNull();
    // a refused insert leaves no mapping behind
    const bad = (): never => {
      throw new Error('no backing');
    };
    vm.detachPageTable();
    vm.attachPageTable(pt, bad);
    expect(() => vm.insert({ addr: 0x40000, range: 0x1000, bo })).toThrow(/no backing/);
    expect(vm.count).toBe(0);
    vm.destroy();
    pt.destroy();
  });

  it('a refusal changes neither the VM nor the table', () => {
    const vm = new GpuVm({ start: 0, range: WINDOW, backend });
    const pt = new PageTable({ backend });
    const a = new Bo();
    const b = new Bo();
    let fail = false;
    vm.attachPageTable(pt, (bo, off, len) => {
      if (fail) throw new GpuVmError('EFAULT', 'resolve refused');
      return resolve(bo, off, len);
    });
    vm.bind(0x10000, 0x40000, a, 0);
    vm.bind(0x100000, 0x20000, b, 0x8000);
    const before = snapshot(vm);
    const table = JSON.stringify(pt.dump());
    fail = true;
    expect(() => vm.bind(0x20000, 0x10000, b, 0)).toThrow(/EFAULT/);
    expect(() => vm.smMapOps({ addr: 0x20000, range: 0x1000, bo: a }).apply()).toThrow(/EFAULT/);
    expect(() =>
      vm.bindArray([
        { op: 'unmap', addr: 0x10000, range: 0x8000 },
        { op: 'map', addr: 0x30000, range: 0x8000, bo: b, offset: 0 },
      ]),
    ).toThrow(/EFAULT/);
    expect(snapshot(vm)).toBe(before);
    expect(JSON.stringify(pt.dump())).toBe(table);
    // over the table's per-call limit: E2BIG, nothing changes
    fail = false;
    pt.maxEntriesPerCall = 4;
    expect(() => vm.bind(0x200000, 0x10000, a, 0)).toThrow(/E2BIG/);
    expect(() => vm.bindArray([{ op: 'map', addr: 0x200000, range: 0x10000, bo: a, offset: 0 }])).toThrow(/E2BIG/);
    expect(snapshot(vm)).toBe(before);
    expect(JSON.stringify(pt.dump())).toBe(table);
    pt.maxEntriesPerCall = 2 ** 24;
    // unbinding nothing still works, and the mirror follows real changes again
    vm.unbind(0x10000, 0x4000);
    expectInStep(vm, pt, backend, 'after the refusals');
    // an op list made before the VM changed is refused with a table attached
    const stale = vm.smUnmapOps(0x100000, 0x1000);
    vm.insert({ addr: 0x300000, range: 0x1000 });
    expect(() => stale.apply()).toThrow(/EBUSY/);
    expectInStep(vm, pt, backend, 'after the refused list');
    // a destroyed table detaches itself
    pt.destroy();
    expect(vm.pageTable).toBeNull();
    vm.bind(0x10000, 0x1000, a, 0);
    vm.destroy();
  });

  it('one table per VM and one VM per table', () => {
    const vm = new GpuVm({ start: 0, range: WINDOW, backend });
    const other = new GpuVm({ start: 0, range: WINDOW, backend });
    const pt = new PageTable({ backend });
    const pt2 = new PageTable({ backend });
    vm.attachPageTable(pt, resolve);
    expect(() => vm.attachPageTable(pt2, resolve)).toThrow(/EBUSY/);
    expect(() => other.attachPageTable(pt, resolve)).toThrow(/EBUSY/);
    expect(() => other.attachPageTable({} as PageTable, resolve)).toThrow(TypeError);
    expect(() => other.attachPageTable(pt2, 42 as never)).toThrow(TypeError);
    expect(other.pageTable).toBeNull();
    vm.destroy();
    other.destroy();
    pt.destroy();
    pt2.destroy();
  });

  it('prints and serializes addresses in hex, nothing internal', async () => {
    const { inspect } = await import('node:util');
    const vm = new GpuVm({ name: 'ctx0', start: 0x100000, range: 0x1000000, backend });
    const bo = new Bo({ name: 'fb', size: 0x10000 });
    vm.bind(0x200000, 0x3000, bo, 0);
    const va = vm.findFirst(0x200000, 1)!;
    expect(inspect(va)).toBe('GpuVa [0x200000, 0x203000) -> fb+0x0');
    expect(inspect(vm)).toMatch(/^GpuVm ctx0 \[0x100000, 0x1100000\)/);
    expect(inspect(bo)).toBe('Bo fb (0x10000 bytes)');
    expect(inspect(vm.obtainBo(bo))).toBe('VmBo fb in ctx0');
    const list = vm.smUnmapOps(0x201000, 0x1000);
    expect(inspect(list)).toBe('OpList of 1 ops (pending)');
    expect(inspect(list.get(0))).toContain('GpuVa [0x200000, 0x203000)');
    expect(JSON.parse(JSON.stringify(vm))).toEqual({
      name: 'ctx0', start: '0x100000', end: '0x1100000', bigint: false, backend, mappings: 1, destroyed: false,
    });
    expect(JSON.parse(JSON.stringify(list)).ops[0].kind).toBe('remap');
    const pt = new PageTable({ backend });
    expect(inspect(pt)).toBe(`PageTable [12 21 30 39] leaf 2, span 0x1000000000000 (${backend})`);
    for (const s of [inspect(vm), inspect(va), inspect(list), inspect(pt), JSON.stringify(vm), JSON.stringify(pt)]) {
      expect(s).not.toMatch(/handle|engine|#|_h\b/);
    }
    list.drop();
    vm.destroy();
    pt.destroy();
  });
});
