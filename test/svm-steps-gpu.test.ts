/**
 * The SVM replay language step by step, part 4: gpufault (§6: every ending
 * of the summary table, atomic faults and their timeslice), svmprefetch, gc,
 * evict and the dumps (§7). Every expected output was derived by hand from
 * the language's definition (the §9 example is the definition's own).
 *
 * Transcripts: `> command` lines are the input; the lines after one are the
 * exact output of that command.
 */
import { describe, expect, it } from 'vitest';
import { backends } from './support/engines.js';
import { SVM, transcript } from './support/svm-transcript.js';


/** One failed alloc_vram of the timeslice test: attempt, eviction stuck on the timeslice (retries=2), second attempt. */
const EVICT_PASS = `      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      migrate-fail EBUSY
      evict 0x10000000 0x200000
      hmm-retry
      hmm-retry
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      migrate-fail EBUSY`;

describe.each(backends)('SVM steps on %s: §6 gpufault', (backend) => {
  it('the example of the definition, byte for byte', () => {
    transcript(backend, `
      > svm 0 0x1000000000 0x20000000 0x200000,0x10000,0x1000 devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 found
      ok
      > mprotect 0x10100000 0x100000 ro
      invalidate 0x0 0x10100000 0x10200000 PROTECTION
      unmap-pages 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 found
      invalidate 0x0 0x10000000 0x10100000 MIGRATE
      hmm-retry
      retry pages EPERM
      range 0x10000000 0x200000 found
      retry pages EPERM
      range 0x10000000 0x200000 found
      retry pages EPERM
      range 0x10000000 0x200000 found
      retry pages EPERM
      range 0x10000000 0x200000 found
      err EBUSY
      > devdump
      devmem used=0x200000 free=0x200000 allocations=1
    `);
  });

  it('ok by the fast path: access mode is not remembered, a write fault on a range bound by a read fault is done', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 ro
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 found
      ok
      > gpufault 0x101ff000 ro
      range 0x10000000 0x200000 found
      ok
    `);
  });

  it('atomic: a range bound in system memory is no fast path; it migrates (unmapping the old mapping) and binds in device memory', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10000000 atomic
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10000000 atomic
      range 0x10000000 0x200000 found
      ok
      > gpufault 0x10000000 ro
      range 0x10000000 0x200000 found
      ok
    `);
  });

  it('err EACCES: atomic on a range that cannot use device memory (the new range stays)', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000 file
      ok
      > gpufault 0x10000000 atomic
      range 0x10000000 0x200000 new
      err EACCES
      > gpufault 0x10000000 devmem            # not atomic: system memory is fine
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10000000 atomic            # bound, but EACCES comes first
      range 0x10000000 0x200000 found
      err EACCES
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
    `);
  });

  it('atomic, err ENOSPC at the third failed migration; get_pages meanwhile fails EOPNOTSUPP (mixed) then EFAULT (system pages)', () => {
    transcript(backend, `
      > ${SVM} devmem=0x100000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 0x10000000 0x10010000 devmem
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
      > gpufault 0x10000000 atomic
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      migrate-fail ENOSPC
      evict 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10010000 MIGRATE
      hmm-retry
      retry pages EOPNOTSUPP
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      migrate-fail ENOSPC
      retry pages EFAULT
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      migrate-fail ENOSPC
      err ENOSPC
      > devdump
      devmem used=0x0 free=0x100000 allocations=0
    `);
  });

  it('atomic, err EINVAL at the third failed migration (the range spans two VMAs); get_pages fails EPERM meanwhile', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
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
      > gpufault 0x10000000 atomic
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      migrate-fail EINVAL
      retry pages EPERM
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      migrate-fail EINVAL
      retry pages EPERM
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      migrate-fail EINVAL
      err EINVAL
    `);
  });

  it('atomic, err EBUSY at the third failed migration: device pages inside their timeslice can neither move nor be evicted', () => {
    transcript(backend, `
      > ${SVM} devmem=0x1000000 timeslice=1000 retries=2
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 0x10000000 0x10010000 atomic    # 64K on the device for 1000 ms
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
      > gpufault 0x10100000 atomic
      range 0x10000000 0x200000 new
@EV@
      evict 0x10000000 0x200000
      hmm-retry
      hmm-retry
      retry pages EOPNOTSUPP
      range 0x10000000 0x200000 found
@EV@
      evict 0x10000000 0x200000
      hmm-retry
      hmm-retry
      retry pages EOPNOTSUPP
      range 0x10000000 0x200000 found
@EV@
      err EBUSY
    `.replace(/@EV@/g, EVICT_PASS));
  });

  it('atomic, err EPERM when get_pages fails with no attempt left (two passes lost to bind EAGAIN first)', () => {
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
      > mprotect 0x10100000 0x100000 ro
      invalidate 0x0 0x10100000 0x10200000 PROTECTION
      unmap-pages 0x10000000 0x200000
      ok
      > inject before-bind mprotect 0x10000000 0x1000 ro
      ok
      > inject before-bind nth=2 mprotect 0x10000000 0x1000 rw
      ok
      > inject in-hmm nth=3 cpu 0x10100000 0x1000
      ok
      > gpufault 0x10080000 atomic       # all dev: the scan skips the migration; the pool's pages pass the ro check
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 dev
      inject before-bind 1
      invalidate 0x0 0x10000000 0x10001000 PROTECTION
      unmap-pages 0x10000000 0x200000
      inject-done ok
      retry bind EAGAIN
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 dev
      inject before-bind 2
      invalidate 0x0 0x10000000 0x10001000 PROTECTION
      unmap-pages 0x10000000 0x200000
      inject-done ok
      retry bind EAGAIN
      range 0x10000000 0x200000 found
      inject in-hmm 3
      invalidate 0x0 0x10100000 0x10200000 MIGRATE
      inject-done ok
      hmm-retry
      err EPERM
    `);
  });

  it('atomic, err EOPNOTSUPP when get_pages fails with no attempt left', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > inject after-migrate count=all madvise 0x101ff000 0x1000 dontneed
      ok
      > gpufault 0x10000000 atomic
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
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 2
      invalidate 0x0 0x101ff000 0x10200000 CLEAR
      inject-done ok
      evict 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      hmm-retry
      retry pages EOPNOTSUPP
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 3
      invalidate 0x0 0x101ff000 0x10200000 CLEAR
      inject-done ok
      evict 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      hmm-retry
      err EOPNOTSUPP
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
    `);
  });

  it('atomic, err EFAULT when the pages keep going back to RAM before get_pages', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > inject after-migrate count=all cpu 0x10000000 0x1000
      ok
      > gpufault 0x10000000 atomic
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 1
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject-done ok
      retry pages EFAULT
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 2
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject-done ok
      retry pages EFAULT
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 3
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject-done ok
      err EFAULT
    `);
  });

  it('atomic timeslice: doubled after each migration and after each failed get_pages, visible through cpu EAGAIN and tick', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000 timeslice=10
      > mmap 0x10000000 0x200000
      ok
      > inject after-migrate madvise 0x10000000 0x200000 dontneed
      ok
      > gpufault 0x10000000 atomic              # 10 for the first migration, then 20, then 40
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 1
      invalidate 0x0 0x10000000 0x10200000 CLEAR
      inject-done ok
      retry pages EFAULT
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > tick 39
      ok
      > cpu 0x10000000 0x1000
      err EAGAIN
      > tick 1
      ok
      > cpu 0x10000000 0x1000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      ok
    `);
  });

  it('atomic timeslice: doubling keeps the low 64 bits (2^63 doubled is 0: no residency)', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000 timeslice=0x8000000000000000
      > mmap 0x10000000 0x200000
      ok
      > inject after-migrate madvise 0x10000000 0x200000 dontneed
      ok
      > gpufault 0x10000000 atomic
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      inject after-migrate 1
      invalidate 0x0 0x10000000 0x10200000 CLEAR
      inject-done ok
      retry pages EFAULT
      range 0x10000000 0x200000 found
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > cpu 0x10000000 0x1000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      ok
    `);
  });
});

describe.each(backends)('SVM steps on %s: §7 svmprefetch, gc, evict, dumps', (backend) => {
  it('phases: skip what is already placed, jump over holes to the next VMA, switch placement both ways', () => {
    transcript(backend, `
      > ${SVM} devmem=0x1000000
      > mmap 0x10000000 0x200000
      ok
      > mmap 0x10400000 0x200000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > svmprefetch 0x10000000 0x800000
      range 0x10000000 0x200000 found
      skip 0x10000000 0x200000
      range 0x10400000 0x200000 new
      pages 0x10400000 0x200000 sys
      bind 0x10400000 0x200000
      ok
      > svmprefetch 0x10000000 0x800000 devmem
      range 0x10000000 0x200000 found
      range 0x10400000 0x200000 found
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      pages 0x10000000 0x200000 dev
      migrate 0x10400000 0x200000
      invalidate 0x0 0x10400000 0x10600000 MIGRATE
      unmap-pages 0x10400000 0x200000
      pages 0x10400000 0x200000 dev
      bind 0x10000000 0x200000
      bind 0x10400000 0x200000
      ok
      > svmprefetch 0x10000000 0x800000 devmem
      range 0x10000000 0x200000 found
      skip 0x10000000 0x200000
      range 0x10400000 0x200000 found
      skip 0x10400000 0x200000
      ok
      > svmprefetch 0x10000000 0x200000
      range 0x10000000 0x200000 found
      evict 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      hmm-retry
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > devdump
      devmem used=0x200000 free=0xe00000 allocations=1
    `);
  });

  it('no collector: an unmapped range is found and collected; its hole makes get_pages fail, which is ENODATA', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > munmap 0x10000000 0x1000
      invalidate 0x0 0x10000000 0x10001000 UNMAP
      unmap-pages 0x10000000 0x200000
      gc-queue 0x10000000 partial
      ok
      > svmprefetch 0x10001000 0x1000
      range 0x10000000 0x200000 found
      err ENODATA
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=migrate_devmem,unmapped,partial_unmap pages=mixed valid=0 bound=0
      > gc
      unbind 0x10000000 0x200000
      remove 0x10000000 0x200000
      notifier-remove 0x0
      ok
    `);
  });

  it('errors: EPERM from the lookup ends the command; EPERM in get_pages is ENODATA', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x200000
      ok
      > mmap 0x10400000 0x200000 ro
      ok
      > svmprefetch 0x10400000 0x1000
      err EPERM
      > svmprefetch 0x10000000 0x600000        # the first range is made before the lookup at 0x10400000 fails
      range 0x10000000 0x200000 new
      err EPERM
      > mprotect 0x10100000 0x100000 ro
      ok
      > svmprefetch 0x10000000 0x200000
      range 0x10000000 0x200000 found
      err ENODATA
    `);
  });

  it('EAGAIN when an invalidation reaches a collected range before the bind (nothing bound); other ranges are harmless', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > inject before-bind madvise 0x10200000 0x1000 dontneed
      ok
      > svmprefetch 0x10000000 0x200000
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
      > svmprefetch 0x10000000 0x400000
      range 0x10000000 0x200000 found
      skip 0x10000000 0x200000
      range 0x10200000 0x200000 found
      pages 0x10200000 0x200000 sys
      inject before-bind 1
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      unmap-pages 0x10200000 0x200000
      inject-done ok
      err EAGAIN
      > svmdump
      notifier 0x0 0x20000000 ranges=2
      range 0x10000000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
      range 0x10200000 0x200000 flags=- pages=mixed valid=0 bound=0
    `);
  });

  it('S >= E: nothing happens and queued injections are unused; an empty interval still arrives at phase 3', () => {
    transcript(backend, `
      > ${SVM}
      > inject after-find cpu 0x10000000 0x1000
      ok
      > svmprefetch 0x1000000000 0x1000
      inject-unused after-find
      ok
      > inject before-bind cpu 0x30000000 0x1000
      ok
      > inject after-gc cpu 0x30000000 0x1000
      ok
      > svmprefetch 0x10000000 0x1000000
      inject before-bind 1
      inject-done err EFAULT
      inject-unused after-gc
      ok
      > svmdump
    `);
  });

  it('svmdump: flags in their fixed order, pages none/sys/dev/mixed; devdump', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x600000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10200000
      range 0x10200000 0x200000 new
      pages 0x10200000 0x200000 sys
      bind 0x10200000 0x200000
      ok
      > gpufault 0x10400000
      range 0x10400000 0x200000 new
      pages 0x10400000 0x200000 sys
      bind 0x10400000 0x200000
      ok
      > madvise 0x10400000 0x200000 dontneed
      invalidate 0x0 0x10400000 0x10600000 CLEAR
      unmap-pages 0x10400000 0x200000
      ok
      > munmap 0x101ff000 0x2000
      invalidate 0x0 0x101ff000 0x10201000 UNMAP
      unmap-pages 0x10000000 0x200000
      gc-queue 0x10000000 partial
      unmap-pages 0x10200000 0x200000
      gc-queue 0x10200000 partial
      ok
      > svmdump
      notifier 0x0 0x20000000 ranges=3
      range 0x10000000 0x200000 flags=migrate_devmem,unmapped,partial_unmap pages=mixed valid=0 bound=0
      range 0x10200000 0x200000 flags=migrate_devmem,unmapped,partial_unmap pages=mixed valid=0 bound=0
      range 0x10400000 0x200000 flags=migrate_devmem pages=none valid=0 bound=0
      > devdump
      devmem used=0x200000 free=0x200000 allocations=1
    `);
  });
});
