/**
 * The SVM replay language step by step, part 5: concurrency injection (§8:
 * every arrival point of gpufault and svmprefetch and what it leads to,
 * nth/count/all, queue order, unused and malformed injections), and the same
 * behaviour through the object API (CpuMm, DevMem, GpuSvm, SvmDriver).
 * Every expected output was derived by hand from the language's definition.
 *
 * Transcripts: `> command` lines are the input; the lines after one are the
 * exact output of that command.
 */
import { describe, expect, it } from 'vitest';
import { CpuMm, DevMem, GpuSvm, GpuVmError, SvmDriver, formatSvmEvent, type SvmEvent } from '../src/index.js';
import { backends } from './support/engines.js';
import { SVM, transcript } from './support/svm-transcript.js';


describe.each(backends)('SVM steps on %s: §8 injection', (backend) => {
  it('every arrival point of a gpufault, in order', () => {
    const points = ['after-gc', 'after-find', 'after-migrate', 'in-hmm', 'before-map', 'before-bind', 'after-bind'];
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > mmap 0x30000000 0x1000
      ok
      ${points.map((p) => `> inject ${p} count=all cpu 0x30000000 0x1000\nok`).join('\n')}
      > gpufault 0x10000000 devmem
      inject after-gc 1
      inject-done ok
      range 0x10000000 0x200000 new
      inject after-find 1
      inject-done ok
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 1
      inject-done ok
      inject in-hmm 1
      inject-done ok
      inject before-map 1
      inject-done ok
      pages 0x10000000 0x200000 dev
      inject before-bind 1
      inject-done ok
      bind 0x10000000 0x200000
      inject after-bind 1
      inject-done ok
      ok
    `);
  });

  it('every arrival point of an svmprefetch: per range in phases 1 and 2, once in phase 3, never after-gc', () => {
    const points = ['after-gc', 'after-find', 'after-migrate', 'in-hmm', 'before-map', 'before-bind', 'after-bind'];
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x400000
      ok
      ${points.map((p) => `> inject ${p} count=all cpu 0x10000000 0x1000\nok`).join('\n')}
      > svmprefetch 0x10000000 0x400000
      range 0x10000000 0x200000 new
      inject after-find 1
      inject-done ok
      range 0x10200000 0x200000 new
      inject after-find 2
      inject-done ok
      inject after-migrate 1
      inject-done ok
      inject in-hmm 1
      inject-done ok
      inject before-map 1
      inject-done ok
      pages 0x10000000 0x200000 sys
      inject after-migrate 2
      inject-done ok
      inject in-hmm 2
      inject-done ok
      inject before-map 2
      inject-done ok
      pages 0x10200000 0x200000 sys
      inject before-bind 1
      inject-done ok
      bind 0x10000000 0x200000
      bind 0x10200000 0x200000
      inject after-bind 1
      inject-done ok
      inject-unused after-gc
      ok
    `);
  });

  it('in-hmm: any invalidation of the notifier makes the walk retry (hmm-retry)', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > inject in-hmm madvise 0x10200000 0x1000 dontneed
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      inject in-hmm 1
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      unmap-pages 0x10200000 0x200000
      inject-done ok
      hmm-retry
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
    `);
  });

  it('svmprefetch: before-map seq-retry as in a fault; an in-hmm invalidation with retries=0 ends it with EBUSY (not ENODATA)', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > inject before-map madvise 0x10200000 0x1000 dontneed
      ok
      > svmprefetch 0x10000000 0x200000
      range 0x10000000 0x200000 new
      inject before-map 1
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      unmap-pages 0x10200000 0x200000
      inject-done ok
      seq-retry
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > ${SVM} retries=0
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > inject in-hmm madvise 0x10200000 0x1000 dontneed
      ok
      > svmprefetch 0x10000000 0x200000
      range 0x10000000 0x200000 new
      inject in-hmm 1
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      unmap-pages 0x10200000 0x200000
      inject-done ok
      err EBUSY
    `);
  });

  it('before-map: an invalidation of another range of the notifier is a seq-retry; an unmap of this range is EFAULT first', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > inject before-map madvise 0x10200000 0x1000 dontneed
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      inject before-map 1
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      unmap-pages 0x10200000 0x200000
      inject-done ok
      seq-retry
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > madvise 0x10100000 0x1000 dontneed
      invalidate 0x0 0x10100000 0x10101000 CLEAR
      unmap-pages 0x10000000 0x200000
      ok
      > inject before-map munmap 0x101ff000 0x1000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 found
      inject before-map 1
      invalidate 0x0 0x101ff000 0x10200000 UNMAP
      gc-queue 0x10000000 partial
      inject-done ok
      retry pages EFAULT
      unbind 0x10000000 0x200000
      remove 0x10000000 0x200000
      range 0x10000000 0x10000 new
      pages 0x10000000 0x10000 sys
      bind 0x10000000 0x10000
      ok
    `);
  });

  it('before-bind only fails for an invalidation of this range (retry bind EAGAIN); after-bind leaves the range invalid but ok', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x600000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > inject before-bind madvise 0x10200000 0x1000 dontneed
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      inject before-bind 1
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      unmap-pages 0x10200000 0x200000
      inject-done ok
      bind 0x10000000 0x200000
      ok
      > inject before-bind madvise 0x10200000 0x1000 dontneed
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 found
      pages 0x10200000 0x200000 sys
      inject before-bind 1
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      unmap-pages 0x10200000 0x200000
      inject-done ok
      retry bind EAGAIN
      range 0x10200000 0x200000 found
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > inject after-bind madvise 0x10400000 0x1000 dontneed
      ok
      > gpufault 0x10400000
      range 0x10400000 0x200000 new
      pages 0x10400000 0x200000 sys
      bind 0x10400000 0x200000
      inject after-bind 1
      invalidate 0x0 0x10400000 0x10401000 CLEAR
      unmap-pages 0x10400000 0x200000
      inject-done ok
      ok
      > svmdump
      notifier 0x0 0x20000000 ranges=3
      range 0x10000000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
      range 0x10200000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
      range 0x10400000 0x200000 flags=- pages=mixed valid=0 bound=0
    `);
  });

  it('nth, count and count=all over the passes of one fault; several at one arrival in queue order; failures and unused ones reported', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > mprotect 0x10100000 0x100000 ro
      invalidate 0x0 0x10100000 0x10200000 PROTECTION
      unmap-pages 0x10000000 0x200000
      ok
      > inject after-find count=all cpu 0x10000000 0x1000
      ok
      > inject after-find nth=2 count=2 cpu 0x10001000 0x1000
      ok
      > inject after-find nth=5 cpu 0x30000000 0x1000
      ok
      > inject after-find count=1 nth=6 cpu 0x10000000 0x1000
      ok
      > inject after-bind cpu 0x10000000 0x1000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 found
      inject after-find 1
      inject-done ok
      retry pages EPERM
      range 0x10000000 0x200000 found
      inject after-find 2
      inject-done ok
      inject after-find 2
      inject-done ok
      retry pages EPERM
      range 0x10000000 0x200000 found
      inject after-find 3
      inject-done ok
      inject after-find 3
      inject-done ok
      retry pages EPERM
      range 0x10000000 0x200000 found
      inject after-find 4
      inject-done ok
      retry pages EPERM
      range 0x10000000 0x200000 found
      inject after-find 5
      inject-done ok
      inject after-find 5
      inject-done err EFAULT
      inject-unused after-find
      inject-unused after-bind
      err EBUSY
      > gpufault 0x10000000 ro                 # the queue belonged to the previous fault
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
    `);
  });

  it('a malformed inject queues nothing; a malformed fault and other commands leave the queue alone; a failing fault still uses it up', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x200000
      ok
      > inject after-gc munmap 0x10000001 0x1000
      err EINVAL
      > inject after-everything cpu 0x10000000 0x1000
      err EINVAL
      > inject After-gc cpu 0x10000000 0x1000
      err EINVAL
      > inject after-gc nth=0 cpu 0x10000000 0x1000
      err EINVAL
      > inject after-gc count=0 cpu 0x10000000 0x1000
      err EINVAL
      > inject after-gc nth=1 nth=2 cpu 0x10000000 0x1000
      err EINVAL
      > inject after-gc count=all count=1 cpu 0x10000000 0x1000
      err EINVAL
      > inject after-gc count=some cpu 0x10000000 0x1000
      err EINVAL
      > inject after-gc
      err EINVAL
      > inject after-gc nth=2
      err EINVAL
      > inject after-gc gc
      err EINVAL
      > inject after-gc tick 1
      err EINVAL
      > inject after-gc svmdump
      err EINVAL
      > inject after-gc cpu 0x10000000 0x1000 nth=2
      err EINVAL
      > inject after-gc nth=0x3 count=all mmap 0x30000000 0x1000 ro file
      ok
      > gpufault 0x10000000 bogus
      err EINVAL
      > gpufault 0x10000000 0x20000000 0x10000000
      err EINVAL
      > cpu 0x10000000 0x1000
      ok
      > gc
      ok
      > evict 0x10000000
      err ENOENT
      > svmdump
      > devdump
      devmem used=0x0 free=0x0 allocations=0
      > tick 5
      ok
      > gpufault 0x10000000                    # one pass: arrival 3 never comes
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      inject-unused after-gc
      ok
      > inject after-find cpu 0x10000000 0x1000
      ok
      > gpufault 0x1000000000                  # fails in the lookup: the injection is spent unused
      inject-unused after-find
      err EINVAL
      > gpufault 0x10000000
      range 0x10000000 0x200000 found
      ok
    `);
  });
});

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof GpuVmError) return err.code;
    throw err;
  }
  return 'ok';
}

describe.each(backends)('SVM steps on %s: the same behaviour through the object API', (backend) => {
  it('SvmDriver with CpuMm and DevMem reproduces the example of the definition as trace events', () => {
    const mm = new CpuMm({ backend });
    const devmem = new DevMem({ size: 0x400000, backend });
    const lines: string[] = [];
    const driver = new SvmDriver({
      mm,
      devmem,
      start: 0,
      range: 0x1000000000,
      notifierSize: 0x20000000,
      chunks: [0x200000, 0x10000, 0x1000],
      trace: (e: SvmEvent) => lines.push(formatSvmEvent(e)),
    });
    try {
      mm.mmap(0x10000000, 0x200000);
      const r = driver.fault(0x10000000, { devmem: true });
      expect([r.start, r.size, r.bound, r.hasDevmemPages, r.hasDmaMapping]).toEqual([0x10000000, 0x200000, true, true, true]);
      expect(driver.fault(0x10000000)).toBe(r);
      mm.mprotect(0x10100000, 0x100000, 'ro');
      expect(r.bound).toBe(false);
      expect(codeOf(() => driver.fault(0x10000000))).toBe('EBUSY');
      expect(lines).toEqual([
        'range 0x10000000 0x200000 new',
        'migrate 0x10000000 0x200000',
        'invalidate 0x0 0x10000000 0x10200000 MIGRATE',
        'pages 0x10000000 0x200000 dev',
        'bind 0x10000000 0x200000',
        'range 0x10000000 0x200000 found',
        'invalidate 0x0 0x10100000 0x10200000 PROTECTION',
        'unmap-pages 0x10000000 0x200000',
        'range 0x10000000 0x200000 found',
        'invalidate 0x0 0x10000000 0x10100000 MIGRATE',
        'hmm-retry',
        ...Array.from({ length: 4 }, () => ['retry pages EPERM', 'range 0x10000000 0x200000 found']).flat(),
      ]);
      expect([devmem.used, devmem.free, devmem.allocationCount]).toEqual([0x200000, 0x200000, 1]);
      expect(mm.pages(0x10000000, 0x200000).map((p) => [p.start, p.size, p.state])).toEqual([
        [0x10000000, 0x100000, 'sys'],
        [0x10100000, 0x100000, 'dev'],
      ]);
    } finally {
      driver.fini();
      devmem.destroy();
      mm.destroy();
    }
  });

  it('SvmDriver hooks get their arrival numbers; a hook that invalidates the notifier during the walk causes hmm-retry', () => {
    const mm = new CpuMm({ backend });
    const lines: string[] = [];
    const driver = new SvmDriver({
      mm,
      start: 0,
      range: 0x1000000000,
      notifierSize: 0x20000000,
      chunks: [0x200000, 0x10000, 0x1000],
      trace: (e: SvmEvent) => lines.push(formatSvmEvent(e)),
    });
    try {
      mm.mmap(0x10000000, 0x400000);
      driver.fault(0x10200000);
      lines.length = 0;
      const seen: string[] = [];
      driver.fault(0x10000000, {
        hooks: {
          afterGc: (k) => seen.push(`afterGc ${k}`),
          inHmm: (k) => {
            seen.push(`inHmm ${k}`);
            if (k === 1) mm.madvise(0x10200000, 0x1000, 'dontneed');
          },
          afterBind: (k) => seen.push(`afterBind ${k}`),
        },
      });
      expect(seen).toEqual(['afterGc 1', 'inHmm 1', 'inHmm 2', 'afterBind 1']);
      expect(lines).toEqual([
        'range 0x10000000 0x200000 new',
        'invalidate 0x0 0x10200000 0x10201000 CLEAR',
        'unmap-pages 0x10200000 0x200000',
        'hmm-retry',
        'pages 0x10000000 0x200000 sys',
        'bind 0x10000000 0x200000',
      ]);
    } finally {
      driver.fini();
      mm.destroy();
    }
  });

  it('GpuSvm core calls: find_or_insert errors and chunk choice, alloc_vram, get_pages, range_evict, with errno codes', () => {
    const mm = new CpuMm({ backend });
    const devmem = new DevMem({ size: 0x200000, backend });
    const lines: string[] = [];
    const svm = new GpuSvm({
      mm,
      devmem,
      start: 0,
      range: 0x1000000000,
      notifierSize: 0x20000000,
      chunks: [0x200000, 0x10000, 0x1000],
      trace: (e: SvmEvent) => lines.push(formatSvmEvent(e)),
    });
    try {
      mm.mmap(0x10000000, 0x200000);
      mm.mmap(0x10400000, 0x10000, { readOnly: true });
      expect(codeOf(() => svm.findOrInsert(0x1000000000))).toBe('EINVAL');
      expect(codeOf(() => svm.findOrInsert(0x30000000))).toBe('ENOENT');
      expect(codeOf(() => svm.findOrInsert(0x10400000))).toBe('EPERM');
      expect(codeOf(() => svm.findOrInsert(0x10000000, { threshold: 0x200000 }))).toBe('EINVAL');
      const { range: r, found } = svm.findOrInsert(0x10000000, { devmem: true });
      expect([found, r.start, r.size, r.migrateDevmem]).toEqual([false, 0x10000000, 0x200000, true]);
      expect(svm.findOrInsert(0x101fffff).range).toBe(r);
      const ro = svm.findOrInsert(0x10400000, { readOnly: true }).range;
      expect([ro.start, ro.size]).toEqual([0x10400000, 0x10000]);
      svm.allocVram(r);
      expect([devmem.used, devmem.allocationCount, svm.scanMm(r)]).toEqual([0x200000, 1, 'dev']);
      expect(codeOf(() => svm.allocVram(ro))).toBe('ENOSPC');
      expect(devmem.used).toBe(0x200000);
      svm.getPages(r, { devmem: true, write: true });
      expect([r.valid, r.hasDevmemPages, r.hasDmaMapping]).toEqual([true, true, true]);
      svm.rangeEvict(r); // the default callback clears the range's mapping on MIGRATE
      expect([r.valid, devmem.used, devmem.allocationCount, svm.scanMm(r)]).toEqual([false, 0, 0, 'sys']);
      expect(codeOf(() => svm.getPages(r, { devmemOnly: true }))).toBe('EFAULT');
      expect(lines).toEqual([
        'migrate 0x10000000 0x200000',
        'migrate 0x10400000 0x10000',
        'migrate-fail ENOSPC',
        'pages 0x10000000 0x200000 dev',
        'evict 0x10000000 0x200000',
        'unmap-pages 0x10000000 0x200000', // the default callback unmaps through the core call, which reports it
        'hmm-retry',
      ]);
    } finally {
      svm.fini();
      devmem.destroy();
      mm.destroy();
    }
  });
});
