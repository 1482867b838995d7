/**
 * Committing GpuVm op lists to a PageTable on every engine: after every
 * request the table translates exactly what the VM maps (through resolve),
 * with and without `keep`; `keep` never writes more in total, and writes
 * nothing for a request identical to an existing mapping. A commit with an
 * invalid piece changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { GpuVmError } from '../src/errors.js';
import { GpuVm } from '../src/gpuvm.js';
import type { Op } from '../src/ops.js';
import { PageTable, type PtSegment } from '../src/page-table.js';
import { Bo } from '../src/vm-bo.js';
import { backends } from './support/engines.js';
import { prng } from './page-table-model.js';

const PAGE = 0x1000;
const K64 = 0x10000;

/**
 * Physical layout of a BO: odd ids are contiguous (base + offset); even ids
 * are scattered in 64 KiB chunks (chunk k at base + perm(k) * 64 KiB).
 */
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

function written(c: { live: number; new: number }): number {
  return c.live + c.new;
}

describe.each(backends)('PageTable.commit on %s', (backend) => {
  function check(vm: GpuVm<number>, pt: PageTable<number>, window: number, where: string): void {
    const want = new Map<number, number | null>();
    for (const va of vm.mappings()) {
      for (let a = va.addr; a < va.addr + va.range; a += PAGE) {
        want.set(a, va.bo === null ? null : physical(va.bo, va.offset + (a - va.addr)));
      }
    }
    const vas = Array.from({ length: window / PAGE }, (_, i) => i * PAGE);
    const got = pt.translateMany(vas);
    for (let i = 0; i < vas.length; i++) {
      const w = want.has(vas[i]) ? want.get(vas[i]) : undefined;
      const g = got[i];
      if (w === undefined ? g !== null : g === null || g.pa !== w) {
        expect({ va: vas[i], pa: g && g.pa }, where).toEqual({ va: vas[i], pa: w === undefined ? 'none' : w });
      }
    }
  }

  it('random map/unmap streams: both modes translate like the VM; keep writes less', () => {
    const window = 8 * 2 ** 20;
    const vm = new GpuVm<number>({ start: 0, range: window, backend });
    const keep = new PageTable<number>({ backend });
    const full = new PageTable<number>({ backend });
    const bos = [null, ...Array.from({ length: 4 }, () => new Bo({ size: 2 ** 30 }))];
    const rnd = prng(42);
    const int = (n: number) => Math.floor(rnd() * n);
    let wKeep = 0;
    let wFull = 0;
    try {
      for (let i = 0; i < 600; i++) {
        const pages = 1 + int(rnd() < 0.8 ? 48 : 600);
        const start = int(window / PAGE - pages + 1);
        const addr = start * PAGE;
        const range = pages * PAGE;
        let ops;
        if (rnd() < 0.25) {
          ops = vm.smUnmapOps(addr, range);
        } else {
          const bo = bos[int(bos.length)];
          // offsets often equal to the address, so requests overlap their own BO contiguously (keep)
          const offset = rnd() < 0.6 ? addr : int(256) * PAGE;
          ops = vm.smMapOps({ addr, range, bo, offset });
        }
        const list = [...ops] as Op<number>[];
        const a = keep.commit(list, resolve);
        const b = full.commit(list, resolve, { keep: false });
        expect(a.ops).toBe(list.length);
        wKeep += written(a);
        wFull += written(b);
        if (ops.state === 'pending') ops.apply();
        if (i % 10 === 0 || i > 590) {
          check(vm, keep, window, `keep, request ${i}`);
          check(vm, full, window, `full, request ${i}`);
        }
      }
      expect(wKeep).toBeLessThan(wFull);
    } finally {
      keep.destroy();
      full.destroy();
      vm.destroy();
    }
  });

  it('an identical request writes nothing with keep; a partial munmap unbinds only the hole', () => {
    const vm = new GpuVm<number>({ start: 0, range: 2 ** 32, backend });
    const pt = new PageTable<number>({ backend });
    const bo = new Bo({ size: 2 ** 30 }); // contiguous or not, by id parity
    try {
      let ops = vm.smMapOps({ addr: 0x40_0000, range: 0x40_0000, bo, offset: 0 });
      const first = pt.commit(ops, resolve);
      ops.apply();
      expect(first).toMatchObject({ binds: 1, unbinds: 0 });
      // identical: unmap(keep) + map: nothing to write
      ops = vm.smMapOps({ addr: 0x40_0000, range: 0x40_0000, bo, offset: 0 });
      expect(ops.get(0)).toMatchObject({ kind: 'unmap', keep: true });
      expect(pt.commit(ops, resolve)).toEqual({ live: 0, new: 0, alloc: 0, free: 0, records: 0, binds: 0, unbinds: 0, ops: 2 });
      const rewrite = new PageTable<number>({ backend });
      rewrite.commit([{ kind: 'map', addr: 0x40_0000, range: 0x40_0000, bo, offset: 0 } as Op<number>], resolve);
      expect(written(rewrite.commit(ops, resolve, { keep: false }))).toBeGreaterThan(0);
      rewrite.destroy();
      ops.apply();
      // mmap-style growth over the same BO: only the new part is bound
      ops = vm.smMapOps({ addr: 0x40_0000, range: 0x80_0000, bo, offset: 0 });
      const grow = pt.commit(ops, resolve);
      expect(grow).toMatchObject({ binds: 1, unbinds: 0 });
      ops.apply();
      // munmap of a page in the middle: one remap, one unbind of the hole
      ops = vm.smUnmapOps(0x50_0000, PAGE);
      const hole = pt.commit(ops, resolve);
      expect(hole).toMatchObject({ binds: 0, unbinds: 1, live: 1 });
      ops.apply();
      expect(pt.translate(0x50_0000)).toBeNull();
      expect(pt.translate(0x50_1000)?.pa).toBe(physical(bo, 0x10_1000));
      // prefetch writes nothing
      expect(pt.commit(vm.prefetchOps(0, 2 ** 32), resolve)).toMatchObject({ live: 0, binds: 0, unbinds: 0 });
      check(vm, pt, 0x100_0000, 'end');
    } finally {
      pt.destroy();
      vm.destroy();
    }
  });

  it('a commit with an invalid piece changes nothing', () => {
    const vm = new GpuVm<number>({ start: 0, range: 2 ** 32, backend });
    const pt = new PageTable<number>({ backend });
    const bo = new Bo({ size: 2 ** 30 });
    try {
      const ops = vm.smMapOps({ addr: 0, range: 0x20_0000, bo, offset: 0 });
      pt.commit(ops, resolve);
      ops.apply();
      const before = [...pt.walk(0, undefined, { dirs: true })];
      const bad = vm.smMapOps({ addr: 0x10_0000, range: 0x20_0000, bo: null, offset: 0 });
      // resolve is not asked for a BO-less map; make the second piece bad through a lying resolver
      const lying = [
        ...bad,
        { kind: 'map', addr: 0x80_0000, range: PAGE, bo, offset: 0 } as unknown as Op<number>,
      ];
      expect(() => pt.commit(lying, () => [{ pa: 0, len: 2 * PAGE }])).toThrow(GpuVmError);
      expect([...pt.walk(0, undefined, { dirs: true })]).toEqual(before);
      expect(() => pt.commit(lying, null as unknown as () => PtSegment[])).toThrow(TypeError);
      bad.drop();
    } finally {
      pt.destroy();
      vm.destroy();
    }
  });

  it('commits huge binds in chunks of io (more segments than fit at once)', () => {
    const pt = new PageTable<number>({ backend });
    const segs: PtSegment[] = [];
    for (let i = 0; i < 40000; i++) segs.push([((i * 7919) % 65536) * 0x2000 + 0x1_0000_0000, PAGE]);
    expect(pt.bind(0, 40000 * PAGE, segs)).toMatchObject({ alloc: 3 + Math.ceil(40000 / 512) - 1 });
    expect(pt.translate(39999 * PAGE + 5)?.pa).toBe(((39999 * 7919) % 65536) * 0x2000 + 0x1_0000_0000 + 5);
    pt.destroy();
  });
});
