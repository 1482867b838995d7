/**
 * The SVM replay language step by step, part 3b: find_or_insert (window,
 * VMA and permission checks, the chunk rule with GPU windows, overlaps,
 * notifier blocks and the threshold, migrate_devmem) and the retry budgets.
 * Every expected output was derived by hand from the language's definition.
 *
 * Transcripts: `> command` lines are the input; the lines after one are the
 * exact output of that command.
 */
import { describe, expect, it } from 'vitest';
import { backends } from './support/engines.js';
import { SVM, transcript } from './support/svm-transcript.js';


describe.each(backends)('SVM steps on %s: §5.8 find_or_insert and the chunk rule', (backend) => {
  it('EINVAL outside the window (x == end included) before looking for a VMA; ENOENT without a VMA', () => {
    transcript(backend, `
      > svm 0x10000000 0x10000000 0x10000000 0x200000,0x10000,0x1000
      > mmap 0x0fff0000 0x30000             # straddles the window start
      ok
      > mmap 0x1fff0000 0x20000             # straddles the window end
      ok
      > gpufault 0x0ffff000
      err EINVAL
      > gpufault 0x20000000
      err EINVAL
      > gpufault 0xffffffffffffffff
      err EINVAL
      > gpufault 0x18000000
      err ENOENT
      > gpufault 0x10000000
      range 0x10000000 0x10000 new
      pages 0x10000000 0x10000 sys
      bind 0x10000000 0x10000
      ok
      > gpufault 0x1fffffff
      range 0x1fff0000 0x10000 new
      pages 0x1fff0000 0x10000 sys
      bind 0x1fff0000 0x10000
      ok
      > svmdump
      notifier 0x10000000 0x10000000 ranges=2
      range 0x10000000 0x10000 flags=has_dma_mapping pages=sys valid=1 bound=1
      range 0x1fff0000 0x10000 flags=has_dma_mapping pages=sys valid=1 bound=1
    `);
  });

  it('EPERM for a write on an ro VMA comes before finding the existing range; nothing is created on error', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > mprotect 0x10000000 0x200000 ro
      invalidate 0x0 0x10000000 0x10200000 PROTECTION
      unmap-pages 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      err EPERM
      > gpufault 0x10000000 ro
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10000000              # bound, but the write is refused first
      err EPERM
      > mmap 0x30000000 0x1000 ro
      ok
      > gpufault 0x30000000
      err EPERM
      > svmdump                          # no notifier for the refused fault
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
    `);
  });

  it('the chunk must lie in the GPU window (unaligned edges included), which is not clipped; an existing range is found whatever the window', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10005000 0x10000800 0x10020000
      range 0x10005000 0x1000 new
      pages 0x10005000 0x1000 sys
      bind 0x10005000 0x1000
      ok
      > gpufault 0x10010000 0x10000000 0x1001f800
      range 0x10010000 0x1000 new
      pages 0x10010000 0x1000 sys
      bind 0x10010000 0x1000
      ok
      > gpufault 0x10020000 0x10020000 0x10030000
      range 0x10020000 0x10000 new
      pages 0x10020000 0x10000 sys
      bind 0x10020000 0x10000
      ok
      > gpufault 0x10040000 0x10000000 0x10030000    # the address is not clamped into the window
      err EINVAL
      > gpufault 0x10040000 0x10040fff 0x10041000    # not even a 4K chunk
      err EINVAL
      > gpufault 0x10040000 0x10040000 0x10040000    # empty window
      err EINVAL
      > gpufault 0x10005000 0x10100000 0x10200000
      range 0x10005000 0x1000 found
      ok
      > gpufault 0x10100000 0x0 0xffffffffffffffff   # overlaps keep 2M out: 64K
      range 0x10100000 0x10000 new
      pages 0x10100000 0x10000 sys
      bind 0x10100000 0x10000
      ok
    `);
  });

  it('threshold: a chunk no larger than it needs every page present, for file VMAs too; no fitting chunk is EINVAL', () => {
    transcript(backend, `
      > ${SVM} threshold=0x200000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      err EINVAL
      > cpu 0x10000000 0x1000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x1000 new
      pages 0x10000000 0x1000 sys
      bind 0x10000000 0x1000
      ok
      > cpu 0x10010000 0x10000
      ok
      > gpufault 0x10010000
      range 0x10010000 0x10000 new
      pages 0x10010000 0x10000 sys
      bind 0x10010000 0x10000
      ok
      > mmap 0x10200000 0x200000 file
      ok
      > gpufault 0x10200000
      err EINVAL
      > cpu 0x10200000 0x200000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > svmdump
      notifier 0x0 0x20000000 ranges=3
      range 0x10000000 0x1000 flags=has_dma_mapping pages=sys valid=1 bound=1
      range 0x10010000 0x10000 flags=has_dma_mapping pages=sys valid=1 bound=1
      range 0x10200000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
    `);
  });

  it('threshold: device pages are present for the pool owner only', () => {
    transcript(backend, `
      > ${SVM} threshold=0x10000 devmem=0x1000000
      > mmap 0x10000000 0x20000
      ok
      > cpu 0x10000000 0x20000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x10000 new
      migrate 0x10000000 0x10000
      invalidate 0x0 0x10000000 0x10010000 MIGRATE
      pages 0x10000000 0x10000 dev
      bind 0x10000000 0x10000
      ok
      > munmap 0x1000f000 0x1000
      invalidate 0x0 0x1000f000 0x10010000 UNMAP
      unmap-pages 0x10000000 0x10000
      gc-queue 0x10000000 partial
      ok
      > gc
      unbind 0x10000000 0x10000
      remove 0x10000000 0x10000
      notifier-remove 0x0
      ok
      > mmap 0x1000f000 0x1000
      ok
      > cpu 0x1000f000 0x1000
      ok
      > gpufault 0x10000000                  # owner none: the device pages do not count, at 64K nor at 4K
      err EINVAL
      > gpufault 0x10000000 devmem           # owner pool: they do
      range 0x10000000 0x10000 new
      migrate 0x10000000 0x10000
      invalidate 0x0 0x10000000 0x10010000 MIGRATE
      migrate-fail EBUSY
      evict 0x10000000 0x10000
      invalidate 0x0 0x10000000 0x10010000 MIGRATE
      hmm-retry
      migrate 0x10000000 0x10000
      invalidate 0x0 0x10000000 0x10010000 MIGRATE
      pages 0x10000000 0x10000 dev
      bind 0x10000000 0x10000
      ok
    `);
  });

  it('chunks: a 2M chunk that would overlap a range gives way; notifier blocks smaller than a chunk keep it out', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10100000 0x10100000 0x10110000
      range 0x10100000 0x10000 new
      pages 0x10100000 0x10000 sys
      bind 0x10100000 0x10000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x10000 new
      pages 0x10000000 0x10000 sys
      bind 0x10000000 0x10000
      ok
      > svm 0 0x1000000000 0x100000 0x200000,0x10000,0x1000
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x10000 new
      pages 0x10000000 0x10000 sys
      bind 0x10000000 0x10000
      ok
      > gpufault 0x10100000
      range 0x10100000 0x10000 new
      pages 0x10100000 0x10000 sys
      bind 0x10100000 0x10000
      ok
      > svmdump
      notifier 0x10000000 0x100000 ranges=1
      range 0x10000000 0x10000 flags=has_dma_mapping pages=sys valid=1 bound=1
      notifier 0x10100000 0x100000 ranges=1
      range 0x10100000 0x10000 flags=has_dma_mapping pages=sys valid=1 bound=1
    `);
  });

  it('migrate_devmem only for ranges of anonymous VMAs on a device with memory', () => {
    transcript(backend, `
      > ${SVM} devmem=0x1000000
      > mmap 0x10000000 0x200000
      ok
      > mmap 0x10200000 0x200000 file
      ok
      > mmap 0x10400000 0x200000 hugetlb
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10200000 devmem
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > gpufault 0x10400000 devmem
      range 0x10400000 0x200000 new
      pages 0x10400000 0x200000 sys
      bind 0x10400000 0x200000
      ok
      > svmdump
      notifier 0x0 0x20000000 ranges=3
      range 0x10000000 0x200000 flags=migrate_devmem,has_dma_mapping pages=sys valid=1 bound=1
      range 0x10200000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
      range 0x10400000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
    `);
  });
});

describe.each(backends)('SVM steps on %s: §5.9 retry budgets', (backend) => {
  it('retries=0: no loop repeats and no retry line is printed', () => {
    transcript(backend, `
      > ${SVM} retries=0 devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > evict 0x10000000
      evict 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      err EBUSY
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=migrate_devmem pages=sys valid=0 bound=0
      > inject after-find munmap 0x10000000 0x1000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 found
      inject after-find 1
      invalidate 0x0 0x10000000 0x10001000 UNMAP
      gc-queue 0x10000000 partial
      inject-done ok
      migrate 0x10000000 0x200000
      migrate-fail ENOENT
      err EBUSY
      > inject in-hmm madvise 0x10100000 0x1000 dontneed
      ok
      > gpufault 0x10100000
      unbind 0x10000000 0x200000
      remove 0x10000000 0x200000
      notifier-remove 0x0
      range 0x10100000 0x10000 new
      inject in-hmm 1
      invalidate 0x0 0x10100000 0x10101000 CLEAR
      inject-done ok
      err EBUSY
    `);
  });
});
