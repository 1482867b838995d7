/**
 * The SVM replay language step by step, part 3: the GPU SVM core calls as
 * the reference driver uses them. Invalidations and the collector, the HMM
 * walk, get_pages, the migration to device memory and range_evict
 * (find_or_insert and the budgets: svm-steps-find.test.ts). Every expected
 * output was derived by hand from the language's definition.
 *
 * Transcripts: `> command` lines are the input; the lines after one are the
 * exact output of that command.
 */
import { describe, expect, it } from 'vitest';
import { backends } from './support/engines.js';
import { SVM, transcript } from './support/svm-transcript.js';


describe.each(backends)('SVM steps on %s: §5.1-§5.2 invalidations and the collector', (backend) => {
  it('one invalidate line per notifier reached, clipped to it, ascending; the collector removes emptied notifiers', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x1ff00000 0x200000            # across the notifier boundary at 0x20000000
      ok
      > gpufault 0x1ff00000
      range 0x1ff00000 0x10000 new
      pages 0x1ff00000 0x10000 sys
      bind 0x1ff00000 0x10000
      ok
      > gpufault 0x20000000
      range 0x20000000 0x10000 new
      pages 0x20000000 0x10000 sys
      bind 0x20000000 0x10000
      ok
      > munmap 0x1ff00000 0x200000
      invalidate 0x0 0x1ff00000 0x20000000 UNMAP
      unmap-pages 0x1ff00000 0x10000
      gc-queue 0x1ff00000 full
      invalidate 0x20000000 0x20000000 0x20100000 UNMAP
      unmap-pages 0x20000000 0x10000
      gc-queue 0x20000000 full
      ok
      > gc
      unbind 0x1ff00000 0x10000
      remove 0x1ff00000 0x10000
      notifier-remove 0x0
      unbind 0x20000000 0x10000
      remove 0x20000000 0x10000
      notifier-remove 0x20000000
      ok
      > svmdump
      > gc                                  # empty queue
      ok
    `);
  });

  it('an interval ending at 2^64 is printed as 0x10000000000000000 by every kind of invalidation', () => {
    // regression: the driver read the invalidation's end as a u64 argument, so every invalidation
    // reaching the top page of the address space failed with EINVAL and changed nothing
    transcript(backend, `
      > svm 0xfffffffff0000000 0x10000000 0x10000000 0x200000,0x10000,0x1000 devmem=0x400000
      > mmap 0xfffffffffff00000 0x100000
      ok
      > gpufault 0xffffffffffffffff devmem
      range 0xffffffffffff0000 0x10000 new
      migrate 0xffffffffffff0000 0x10000
      invalidate 0xfffffffff0000000 0xffffffffffff0000 0x10000000000000000 MIGRATE
      pages 0xffffffffffff0000 0x10000 dev
      bind 0xffffffffffff0000 0x10000
      ok
      > cpu 0xfffffffffffff000 0x1000
      invalidate 0xfffffffff0000000 0xffffffffffff0000 0x10000000000000000 MIGRATE
      unmap-pages 0xffffffffffff0000 0x10000
      ok
      > gpufault 0xffffffffffff0000
      range 0xffffffffffff0000 0x10000 found
      pages 0xffffffffffff0000 0x10000 sys
      bind 0xffffffffffff0000 0x10000
      ok
      > mprotect 0xffffffffffff8000 0x8000 ro
      invalidate 0xfffffffff0000000 0xffffffffffff8000 0x10000000000000000 PROTECTION
      unmap-pages 0xffffffffffff0000 0x10000
      ok
      > madvise 0xffffffffffff8000 0x8000 dontneed
      invalidate 0xfffffffff0000000 0xffffffffffff8000 0x10000000000000000 CLEAR
      ok
      > munmap 0xffffffffffff8000 0x8000
      invalidate 0xfffffffff0000000 0xffffffffffff8000 0x10000000000000000 UNMAP
      gc-queue 0xffffffffffff0000 partial
      ok
      > svmdump
      notifier 0xfffffffff0000000 0x10000000 ranges=1
      range 0xffffffffffff0000 0x10000 flags=migrate_devmem,unmapped,partial_unmap pages=mixed valid=0 bound=0
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
      > gc
      unbind 0xffffffffffff0000 0x10000
      remove 0xffffffffffff0000 0x10000
      notifier-remove 0xfffffffff0000000
      ok
    `);
  });

  it('only UNMAP queues; a range already queued is printed again, and partial_unmap is never cleared', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > madvise 0x10100000 0x200000 dontneed     # CLEAR over both ranges: unmapped, not queued
      invalidate 0x0 0x10100000 0x10300000 CLEAR
      unmap-pages 0x10000000 0x200000
      unmap-pages 0x10200000 0x200000
      ok
      > munmap 0x10000000 0x1000
      invalidate 0x0 0x10000000 0x10001000 UNMAP
      gc-queue 0x10000000 partial
      ok
      > munmap 0x10000000 0x400000               # covers both; the first stays partial
      invalidate 0x0 0x10000000 0x10400000 UNMAP
      gc-queue 0x10000000 partial
      gc-queue 0x10200000 full
      ok
      > svmdump
      notifier 0x0 0x20000000 ranges=2
      range 0x10000000 0x200000 flags=unmapped,partial_unmap pages=none valid=0 bound=0
      range 0x10200000 0x200000 flags=unmapped pages=none valid=0 bound=0
      > gc
      unbind 0x10000000 0x200000
      remove 0x10000000 0x200000
      unbind 0x10200000 0x200000
      remove 0x10200000 0x200000
      notifier-remove 0x0
      ok
    `);
  });
});

describe.each(backends)('SVM steps on %s: §5.3 the HMM walk and §5.6 range_evict', (backend) => {
  it('evict: EFAULT at a hole after populating what came before it; a queued range still counts; addr needs no alignment', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > munmap 0x10100000 0x1000
      invalidate 0x0 0x10100000 0x10101000 UNMAP
      unmap-pages 0x10000000 0x200000
      gc-queue 0x10000000 partial
      ok
      > madvise 0x10000000 0x200000 dontneed
      invalidate 0x0 0x10000000 0x10100000 CLEAR
      invalidate 0x0 0x10101000 0x10200000 CLEAR
      err ENOMEM
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=unmapped,partial_unmap pages=none valid=0 bound=0
      > evict 0x10000123
      evict 0x10000000 0x200000
      err EFAULT
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=unmapped,partial_unmap pages=mixed valid=0 bound=0
      > evict 0x10200000
      err ENOENT
    `);
  });

  it('evict: a device page goes back to RAM by its block, then EBUSY and one more walk; with nothing on the device one clean walk', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > evict 0x101fffff
      evict 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      hmm-retry
      ok
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=migrate_devmem pages=sys valid=0 bound=0
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
      > evict 0x10000000
      evict 0x10000000 0x200000
      ok
    `);
  });

  it('walk: a page inside its timeslice stops the walk with EBUSY and changes nothing, until the get_pages budget is spent', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000 timeslice=100 retries=2
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 atomic
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > mprotect 0x10000000 0x200000 ro
      invalidate 0x0 0x10000000 0x10200000 PROTECTION
      unmap-pages 0x10000000 0x200000
      ok
      > gpufault 0x10000000 ro                  # owner none: HMM would have to migrate them back
      range 0x10000000 0x200000 found
      hmm-retry
      hmm-retry
      err EBUSY
      > tick 100
      ok
      > gpufault 0x10000000 ro
      range 0x10000000 0x200000 found
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      hmm-retry
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
    `);
  });

  it('walk: pages before a device page held by its timeslice were already faulted in when the walk stops', () => {
    // Reading of "stop with EBUSY without changing anything": nothing changes for the held page, but
    // the pages before it were handled first (ascending) and changes made before a stop stay, as
    // with upstream hmm_range_fault, which keeps what it faulted before returning -EBUSY. Seen here
    // through the PROTECTION that mprotect sends only for a piece holding a present page.
    transcript(backend, `
      > ${SVM} devmem=0x400000 timeslice=100 retries=0
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10100000 0x10100000 0x10110000 atomic
      range 0x10100000 0x10000 new
      migrate 0x10100000 0x10000
      invalidate 0x0 0x10100000 0x10110000 MIGRATE
      pages 0x10100000 0x10000 dev
      bind 0x10100000 0x10000
      ok
      > munmap 0x1010f000 0x1000
      invalidate 0x0 0x1010f000 0x10110000 UNMAP
      unmap-pages 0x10100000 0x10000
      gc-queue 0x10100000 partial
      ok
      > mmap 0x1010f000 0x1000
      ok
      > gpufault 0x10000000
      unbind 0x10100000 0x10000
      remove 0x10100000 0x10000
      notifier-remove 0x0
      range 0x10000000 0x200000 new
      err EBUSY
      > mprotect 0x10000000 0x1000 ro
      invalidate 0x0 0x10000000 0x10001000 PROTECTION
      ok
      > mprotect 0x1010f000 0x1000 ro          # the page after the held ones was never reached
      ok
    `);
  });

  it('walk with write: an ro VMA refuses any page unless the owner is the pool and the page is a device page', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000 retries=1
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > mprotect 0x10100000 0x100000 ro
      invalidate 0x0 0x10100000 0x10200000 PROTECTION
      unmap-pages 0x10000000 0x200000
      ok
      > gpufault 0x10000000 devmem        # scan: all dev, no migration; the pool's dev pages pass the ro check
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > mprotect 0x10000000 0x100000 ro
      invalidate 0x0 0x10000000 0x10100000 PROTECTION
      unmap-pages 0x10000000 0x200000
      ok
      > mprotect 0x10000000 0x100000 rw
      invalidate 0x0 0x10000000 0x10100000 PROTECTION
      ok
      > gpufault 0x10000000               # owner none: the rw part goes back to RAM, then the ro part refuses the write
      range 0x10000000 0x200000 found
      invalidate 0x0 0x10000000 0x10100000 MIGRATE
      hmm-retry
      retry pages EPERM
      range 0x10000000 0x200000 found
      err EBUSY
      > gpufault 0x10000000 ro            # a read: the ro part migrates back too
      range 0x10000000 0x200000 found
      invalidate 0x0 0x10100000 0x10200000 MIGRATE
      hmm-retry
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10180000               # find_or_insert: a write on the ro VMA at the address
      err EPERM
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
    `);
  });
});

describe.each(backends)('SVM steps on %s: §5.4 get_pages', (backend) => {
  it('fast path: a range left valid but unbound by a failed prefetch is mapped again without a walk', () => {
    transcript(backend, `
      > ${SVM} devmem=0x200000
      > mmap 0x10000000 0x400000
      ok
      > svmprefetch 0x10000000 0x400000 devmem
      range 0x10000000 0x200000 new
      range 0x10200000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      migrate 0x10200000 0x200000
      migrate-fail ENOSPC
      err ENODATA
      > svmdump
      notifier 0x0 0x20000000 ranges=2
      range 0x10000000 0x200000 flags=migrate_devmem,has_devmem_pages,has_dma_mapping pages=dev valid=1 bound=0
      range 0x10200000 0x200000 flags=migrate_devmem pages=none valid=0 bound=0
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
    `);
  });

  it('EOPNOTSUPP when a system page comes before device pages: evict, retry, and the next pass maps system pages', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > inject after-migrate madvise 0x10000000 0x1000 dontneed
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 1
      invalidate 0x0 0x10000000 0x10001000 CLEAR
      inject-done ok
      evict 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      hmm-retry
      retry pages EOPNOTSUPP
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
    `);
  });

  it('EOPNOTSUPP when a system page comes after device pages', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > inject after-migrate madvise 0x101ff000 0x1000 dontneed
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 1
      invalidate 0x0 0x101ff000 0x10200000 CLEAR
      inject-done ok
      evict 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      hmm-retry
      retry pages EOPNOTSUPP
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
    `);
  });

  it('the seq-retry loop shares the get_pages budget: an invalidation of another range of the notifier every time ends in EBUSY', () => {
    transcript(backend, `
      > ${SVM} retries=1
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > inject before-map count=all madvise 0x10200000 0x1000 dontneed
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      inject before-map 1
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      unmap-pages 0x10200000 0x200000
      inject-done ok
      seq-retry
      inject before-map 2
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      inject-done ok
      err EBUSY
      > svmdump                         # the walk populated the first range, which has no mapping
      notifier 0x0 0x20000000 ranges=2
      range 0x10000000 0x200000 flags=- pages=sys valid=0 bound=0
      range 0x10200000 0x200000 flags=- pages=mixed valid=0 bound=0
    `);
  });
});

describe.each(backends)('SVM steps on %s: §5.5 alloc_vram', (backend) => {
  it('ENOENT: the range start lost its VMA after the lookup; the retry collects the range and finds no VMA', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > inject after-find munmap 0x10000000 0x1000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      inject after-find 1
      invalidate 0x0 0x10000000 0x10001000 UNMAP
      gc-queue 0x10000000 partial
      inject-done ok
      migrate 0x10000000 0x200000
      migrate-fail ENOENT
      retry migrate ENOENT
      unbind 0x10000000 0x200000
      remove 0x10000000 0x200000
      notifier-remove 0x0
      err ENOENT
    `);
  });

  it('EINVAL: the range reaches beyond the VMA of its start; the next pass fits a smaller range and stays in RAM', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > inject after-find munmap 0x101ff000 0x1000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      inject after-find 1
      invalidate 0x0 0x101ff000 0x10200000 UNMAP
      gc-queue 0x10000000 partial
      inject-done ok
      migrate 0x10000000 0x200000
      migrate-fail EINVAL
      retry migrate EINVAL
      unbind 0x10000000 0x200000
      remove 0x10000000 0x200000
      notifier-remove 0x0
      range 0x10000000 0x10000 new
      pages 0x10000000 0x10000 sys
      bind 0x10000000 0x10000
      ok
    `);
  });

  it('EBUSY for a non-anonymous VMA: evict, a second attempt, EBUSY again; used never moves', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > inject after-find mmap 0x10000000 0x200000 file
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      inject after-find 1
      invalidate 0x0 0x10000000 0x10200000 UNMAP
      gc-queue 0x10000000 full
      inject-done ok
      migrate 0x10000000 0x200000
      migrate-fail EBUSY
      evict 0x10000000 0x200000
      migrate 0x10000000 0x200000
      migrate-fail EBUSY
      retry migrate EBUSY
      unbind 0x10000000 0x200000
      remove 0x10000000 0x200000
      notifier-remove 0x0
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
    `);
  });

  it('EBUSY for a partially migrated range: the eviction brings the device pages back and the second attempt succeeds', () => {
    transcript(backend, `
      > ${SVM} devmem=0x1000000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > madvise 0x10000000 0x10000 dontneed
      invalidate 0x0 0x10000000 0x10010000 CLEAR
      unmap-pages 0x10000000 0x200000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      migrate-fail EBUSY
      evict 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      hmm-retry
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > devdump
      devmem used=0x200000 free=0xe00000 allocations=1
    `);
  });
});
