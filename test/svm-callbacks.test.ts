/**
 * Callbacks inside the SVM layer: a notifier callback may not change the
 * address space (EBUSY, as in Linux), a callback or device hook that throws
 * does not leave an operation half done (the operation completes, then the
 * error reaches the caller), and system frames are placed so that a 2 MiB
 * block populated at once maps with one large page.
 */
import { describe, expect, it } from 'vitest';
import { CpuMm, DevMem, GpuVmError, PageTable, SvmDriver } from '../src/index.js';
import { backends } from './support/engines.js';

const M2 = 0x20_0000;

function state(mm: CpuMm<number>) {
  return {
    vmas: mm.vmas().map((v) => [v.start, v.size, v.readOnly]),
    pages: mm.pages(0x1000_0000, 0x100_0000).map((r) => [r.start, r.size, r.state]),
  };
}

describe.each(backends)('SVM callbacks on %s', (backend) => {
  it('a notifier callback that tries to change the mm gets EBUSY; the outer munmap still completes', () => {
    const mm = new CpuMm<number>({ backend });
    mm.mmap(0x1000_0000, 0x40_0000);
    mm.access(0x1000_0000, 0x10_0000);
    const seen: string[] = [];
    const n = mm.insertNotifier(0x1000_0000, 0x40_0000, (_n, r) => {
      seen.push(r.event);
      try {
        mm.munmap(0x1020_0000, 0x1000);
      } catch (e) {
        seen.push((e as GpuVmError).code);
      }
      expect(() => mm.access(0x1030_0000, 0x1000)).toThrow(/EBUSY/);
      expect(() => mm.mmap(0x1030_0000, 0x1000)).toThrow(/EBUSY/);
      expect(() => mm.mprotect(0x1030_0000, 0x1000, 'ro')).toThrow(/EBUSY/);
      expect(() => mm.madvise(0x1030_0000, 0x1000, 'dontneed')).toThrow(/EBUSY/);
    });
    const seq = n.readBegin();
    mm.munmap(0x1000_0000, 0x10_0000);
    expect(seen).toEqual(['UNMAP', 'EBUSY']);
    expect(n.readRetry(seq)).toBe(true);
    // only the outer munmap happened
    expect(state(mm).vmas).toEqual([[0x1010_0000, 0x30_0000, false]]);
    expect(mm.pages(0x1000_0000, 0x20_0000).map((r) => r.state)).toEqual(['none']);
    mm.destroy();
  });

  it('a notifier callback that throws: the operation completes, then the error reaches the caller', () => {
    const mm = new CpuMm<number>({ backend });
    mm.mmap(0x1000_0000, 0x40_0000);
    mm.access(0x1000_0000, 0x40_0000);
    const boom = new Error('boom');
    let calls = 0;
    mm.insertNotifier(0x1000_0000, 0x10_0000, () => {
      calls++;
      throw boom;
    });
    let calls2 = 0;
    mm.insertNotifier(0x1010_0000, 0x10_0000, () => calls2++);
    expect(() => mm.munmap(0x1000_0000, 0x20_0000)).toThrow(boom);
    expect([calls, calls2]).toEqual([1, 1]); // the second notifier was still told
    expect(state(mm).vmas).toEqual([[0x1020_0000, 0x20_0000, false]]);
    // the address space stays usable
    mm.mmap(0x1000_0000, 0x1000);
    expect(mm.vmas().length).toBe(2);
    mm.destroy();
  });

  it('a device hook that throws does not stop the migration back to RAM', () => {
    const mm = new CpuMm<number>({ backend });
    const boom = new Error('hook');
    const devmem = new DevMem({ size: 0x40_0000, backend, hooks: { copyToRam: () => { throw boom; } } });
    const d = new SvmDriver({ mm, devmem, start: 0, range: 2 ** 40, notifierSize: 0x2000_0000, chunks: [M2, 0x1000] });
    mm.mmap(0x1000_0000, M2);
    d.fault(0x1000_0000, { devmem: true });
    expect(devmem.allocationCount).toBe(1);
    expect(() => mm.access(0x1000_0000, 0x1000)).toThrow(boom);
    expect(devmem.allocationCount).toBe(0);
    expect(mm.pages(0x1000_0000, M2).map((r) => r.state)).toEqual(['sys']);
    d.fini();
    mm.destroy();
  });

  it('a GpuSvm invalidate callback cannot fault pages in (EBUSY) while the mm is notifying', () => {
    const mm = new CpuMm<number>({ backend });
    const errors: string[] = [];
    const d = new SvmDriver({ mm, start: 0, range: 2 ** 40, notifierSize: 0x2000_0000, chunks: [M2, 0x1000] });
    mm.mmap(0x1000_0000, 2 * M2);
    const r = d.fault(0x1000_0000);
    mm.insertNotifier(0x1000_0000, M2, () => {
      try {
        d.svm.getPages(r);
      } catch (e) {
        errors.push((e as GpuVmError).code);
      }
    });
    mm.munmap(0x1010_0000, 0x1000);
    expect(errors).toEqual(['EBUSY']);
    d.fini();
    mm.destroy();
  });

  it('readRetry refuses what readBegin cannot have returned', () => {
    const mm = new CpuMm<number>({ backend });
    const n = mm.insertNotifier(0, 0x1000, () => {});
    for (const bad of ['x', NaN, -1, 1.5, {}, undefined, 2 ** 32]) {
      expect(() => n.readRetry(bad as number)).toThrow(TypeError);
    }
    expect(n.readRetry(n.readBegin())).toBe(false);
    mm.destroy();
  });

  it('a 2 MiB block populated at once is one aligned physical block: the page table maps it with one large page', () => {
    const mm = new CpuMm<number>({ backend });
    const pt = new PageTable({ backend });
    const d = new SvmDriver({ mm, start: 0, range: 2 ** 40, notifierSize: 0x2000_0000, chunks: [M2, 0x1000], pageTable: pt });
    mm.mmap(0x1000_0000, 4 * M2);
    mm.access(0x1000_0000 + 0x3000, 0x1000); // an earlier, unaligned population
    d.fault(0x1020_0000);
    d.fault(0x1040_0000);
    for (const va of [0x1020_0000, 0x1040_0000]) {
      const t = pt.translate(va + 0x5123)!;
      expect(t.level).toBe(1);
      expect(t.size).toBe(M2);
      const run = mm.pages(va, M2);
      expect(run).toHaveLength(1);
      expect(run[0].pa % M2).toBe(0);
      expect(t.pa).toBe(run[0].pa + 0x5123);
    }
    d.fini();
    pt.destroy();
    mm.destroy();
  });
});
