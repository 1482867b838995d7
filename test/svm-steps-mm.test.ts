/**
 * The SVM replay language step by step, part 2: the CPU commands (mmap and
 * munmap with MAP_FIXED replacement and holes, mprotect, madvise, cpu, the
 * migration back to RAM, tick) and the device-memory pool. Every expected
 * output was derived by hand from the language's definition.
 *
 * Transcripts: `> command` lines are the input; the lines after one are the
 * exact output of that command.
 */
import { describe, expect, it } from 'vitest';
import { backends } from './support/engines.js';
import { SVM, transcript } from './support/svm-transcript.js';


describe.each(backends)('SVM steps on %s: §3.3 mmap and munmap', (backend) => {
  it('mmap over a mapped interval first unmaps it (one UNMAP), then inserts the new VMA; over nothing it is silent', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > mmap 0x10100000 0x1000 ro
      invalidate 0x0 0x10100000 0x10101000 UNMAP
      unmap-pages 0x10000000 0x200000
      gc-queue 0x10000000 partial
      ok
      > cpu 0x10100000 0x1000 write        # the new VMA is read-only
      err EPERM
      > mmap 0x10400000 0x1000             # nothing mapped there: no invalidation
      ok
      > svmdump                            # the replaced page is none, the others sys
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=unmapped,partial_unmap pages=mixed valid=0 bound=0
    `);
  });

  it('munmap sends one UNMAP over the whole interval, holes included, and removes only the VMA parts inside', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x10000
      ok
      > mmap 0x10020000 0x10000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x10000 new
      pages 0x10000000 0x10000 sys
      bind 0x10000000 0x10000
      ok
      > gpufault 0x10020000
      range 0x10020000 0x10000 new
      pages 0x10020000 0x10000 sys
      bind 0x10020000 0x10000
      ok
      > munmap 0x1000f000 0x12000          # last page of the first VMA, the hole, first page of the second
      invalidate 0x0 0x1000f000 0x10021000 UNMAP
      unmap-pages 0x10000000 0x10000
      gc-queue 0x10000000 partial
      unmap-pages 0x10020000 0x10000
      gc-queue 0x10020000 partial
      ok
      > munmap 0x10010000 0x10000          # only a hole: nothing at all
      ok
      > cpu 0x1000e000 0x1000
      ok
      > cpu 0x1000f000 0x1000
      err EFAULT
      > cpu 0x10020000 0x1000
      err EFAULT
      > cpu 0x10021000 0x1000
      ok
      > munmap 0x10000000 0x10000          # covers the first range; it stays partial and is printed again
      invalidate 0x0 0x10000000 0x10010000 UNMAP
      gc-queue 0x10000000 partial
      ok
      > gc                                 # queued once each, in queue order
      unbind 0x10000000 0x10000
      remove 0x10000000 0x10000
      unbind 0x10020000 0x10000
      remove 0x10020000 0x10000
      notifier-remove 0x0
      ok
    `);
  });
});

describe.each(backends)('SVM steps on %s: §3.4 mprotect', (backend) => {
  it('ENOMEM when nothing or a hole is at the start; a hole later stops after the earlier pieces changed', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x10000
      ok
      > mmap 0x10020000 0x10000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x10000 new
      pages 0x10000000 0x10000 sys
      bind 0x10000000 0x10000
      ok
      > mprotect 0x0fff0000 0x20000 ro      # starts below the first VMA
      err ENOMEM
      > mprotect 0x10010000 0x20000 ro      # starts in the hole
      err ENOMEM
      > mprotect 0x30000000 0x1000 ro       # no VMA at all
      err ENOMEM
      > cpu 0x10000000 0x10000 write        # nothing changed
      ok
      > mprotect 0x10008000 0x20000 ro      # the piece of the first VMA, then the hole
      invalidate 0x0 0x10008000 0x10010000 PROTECTION
      unmap-pages 0x10000000 0x10000
      err ENOMEM
      > cpu 0x10008000 0x1000 write
      err EPERM
      > cpu 0x10007000 0x1000 write         # left of the piece: still rw
      ok
      > cpu 0x10020000 0x1000 write         # after the hole: untouched
      ok
      > mprotect 0x10020000 0x20000 ro      # the last VMA ends below E: its piece changes, then ENOMEM
      invalidate 0x0 0x10020000 0x10030000 PROTECTION
      err ENOMEM
      > cpu 0x10020000 0x1000 write
      err EPERM
    `);
  });

  it('a piece across a notifier boundary is one PROTECTION per notifier, each clipped to its block', () => {
    transcript(backend, `
      > svm 0 0x1000000000 0x100000 0x10000,0x1000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x100f0000
      range 0x100f0000 0x10000 new
      pages 0x100f0000 0x10000 sys
      bind 0x100f0000 0x10000
      ok
      > gpufault 0x10100000
      range 0x10100000 0x10000 new
      pages 0x10100000 0x10000 sys
      bind 0x10100000 0x10000
      ok
      > mprotect 0x100f8000 0x10000 ro
      invalidate 0x10000000 0x100f8000 0x10100000 PROTECTION
      unmap-pages 0x100f0000 0x10000
      invalidate 0x10100000 0x10100000 0x10108000 PROTECTION
      unmap-pages 0x10100000 0x10000
      ok
    `);
  });

  it('PROTECTION only when the piece holds a present page and the mode really changes; the notifier is told even with no range there', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x1000
      ok
      > gpufault 0x10000000                 # a notifier over the block
      range 0x10000000 0x1000 new
      pages 0x10000000 0x1000 sys
      bind 0x10000000 0x1000
      ok
      > mmap 0x10040000 0x10000
      ok
      > mprotect 0x10040000 0x10000 ro      # no page present
      ok
      > mprotect 0x10040000 0x10000 ro      # already ro
      ok
      > cpu 0x10048000 0x1000
      ok
      > mprotect 0x10040000 0x10000 ro      # already ro, with a page: still nothing
      ok
      > mprotect 0x10040000 0x10000 rw      # the whole piece, although one page is present
      invalidate 0x0 0x10040000 0x10050000 PROTECTION
      ok
      > mprotect 0x10044000 0x1000 ro       # a piece without pages inside a VMA with pages
      ok
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x1000 flags=has_dma_mapping pages=sys valid=1 bound=1
    `);
  });
});

describe.each(backends)('SVM steps on %s: §3.5 madvise', (backend) => {
  it('one CLEAR per VMA piece, holes skipped, ENOMEM after all pieces when there was a hole; pages go, VMAs stay', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x10000
      ok
      > mmap 0x10020000 0x10000
      ok
      > madvise 0x10010000 0x10000 dontneed     # only a hole: nothing happens
      err ENOMEM
      > gpufault 0x10000000 devmem
      range 0x10000000 0x10000 new
      migrate 0x10000000 0x10000
      invalidate 0x0 0x10000000 0x10010000 MIGRATE
      pages 0x10000000 0x10000 dev
      bind 0x10000000 0x10000
      ok
      > madvise 0x0fff0000 0x50000 dontneed     # hole, VMA, hole, VMA (no pages: CLEAR anyway), hole
      invalidate 0x0 0x10000000 0x10010000 CLEAR
      unmap-pages 0x10000000 0x10000
      invalidate 0x0 0x10020000 0x10030000 CLEAR
      err ENOMEM
      > devdump                                 # the zapped device pages were the allocation's last
      devmem used=0x0 free=0x400000 allocations=0
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x10000 flags=migrate_devmem pages=none valid=0 bound=0
      > madvise 0x10000000 0x10000 dontneed     # no hole: ok, CLEAR although nothing is present
      invalidate 0x0 0x10000000 0x10010000 CLEAR
      ok
      > cpu 0x10000000 0x10000 write             # the VMAs are unchanged
      ok
      > cpu 0x10020000 0x10000 write
      ok
    `);
  });
});

describe.each(backends)('SVM steps on %s: §3.6-§3.8 cpu, migration back, tick', (backend) => {
  it('cpu checks every page first, lowest failing page decides (EFAULT, EPERM, EAGAIN), and then changes nothing', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000 timeslice=10
      > mmap 0x10000000 0x10000 ro
      ok
      > mmap 0x10020000 0x10000
      ok
      > mmap 0x10030000 0x10000 ro
      ok
      > gpufault 0x10000000 ro
      range 0x10000000 0x10000 new
      pages 0x10000000 0x10000 sys
      bind 0x10000000 0x10000
      ok
      > gpufault 0x10020000 atomic                # device pages with a 10 ms timeslice
      range 0x10020000 0x10000 new
      migrate 0x10020000 0x10000
      invalidate 0x0 0x10020000 0x10030000 MIGRATE
      pages 0x10020000 0x10000 dev
      bind 0x10020000 0x10000
      ok
      > madvise 0x10000000 0x10000 dontneed
      invalidate 0x0 0x10000000 0x10010000 CLEAR
      unmap-pages 0x10000000 0x10000
      ok
      > cpu 0x10000000 0x30000 write     # first page: write to ro
      err EPERM
      > cpu 0x10000000 0x30000           # reads pass the ro VMA, then the hole
      err EFAULT
      > cpu 0x10020000 0x10000           # device pages inside their timeslice
      err EAGAIN
      > cpu 0x10020000 0x20000 write     # EAGAIN at the lowest page wins over the later ro VMA
      err EAGAIN
      > cpu 0x1000f000 0x12000 write     # EPERM at the lowest page wins over the later hole
      err EPERM
      > svmdump                          # none of the failed accesses populated or migrated anything
      notifier 0x0 0x20000000 ranges=2
      range 0x10000000 0x10000 flags=migrate_devmem pages=none valid=0 bound=0
      range 0x10020000 0x10000 flags=migrate_devmem,has_devmem_pages,has_dma_mapping pages=dev valid=1 bound=1
      > tick 9
      ok
      > cpu 0x10020000 0x1000            # 9 - 0 < 10: still inside
      err EAGAIN
      > tick 1
      ok
      > cpu 0x10020000 0x2000 write      # 10 - 0 < 10 is false: migrated back, whole allocation block
      invalidate 0x0 0x10020000 0x10030000 MIGRATE
      unmap-pages 0x10020000 0x10000
      ok
      > cpu 0x10000000 0x10000
      ok
      > svmdump
      notifier 0x0 0x20000000 ranges=2
      range 0x10000000 0x10000 flags=migrate_devmem pages=sys valid=0 bound=0
      range 0x10020000 0x10000 flags=migrate_devmem pages=sys valid=0 bound=0
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
    `);
  });

  it('one access over two allocations migrates each block back, ascending', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10200000 devmem
      range 0x10200000 0x200000 new
      migrate 0x10200000 0x200000
      invalidate 0x0 0x10200000 0x10400000 MIGRATE
      pages 0x10200000 0x200000 dev
      bind 0x10200000 0x200000
      ok
      > cpu 0x101ff000 0x2000 write
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      invalidate 0x0 0x10200000 0x10400000 MIGRATE
      unmap-pages 0x10200000 0x200000
      ok
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
    `);
  });

  it('the migration back covers the allocation clipped to the VMA; pages of A in another VMA stay', () => {
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
      > cpu 0x10000000 0x1000
      invalidate 0x0 0x10000000 0x10100000 MIGRATE
      ok
      > devdump
      devmem used=0x200000 free=0x200000 allocations=1
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=migrate_devmem pages=mixed valid=0 bound=0
      > cpu 0x10180000 0x1000            # the ro VMA's block: the allocation's last pages
      invalidate 0x0 0x10100000 0x10200000 MIGRATE
      ok
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
    `);
  });

  it('device pages of another allocation inside the block are left alone; the block may reach beyond any range', () => {
    transcript(backend, `
      > ${SVM} devmem=0x1000000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 devmem                   # allocation A over [0x10000000, +2M)
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > munmap 0x10000000 0x10000
      invalidate 0x0 0x10000000 0x10010000 UNMAP
      unmap-pages 0x10000000 0x200000
      gc-queue 0x10000000 partial
      ok
      > mmap 0x10000000 0x10000                      # merges back into one VMA
      ok
      > gpufault 0x10000000 0x10000000 0x10010000 devmem   # allocation B over the first 64K, inside A's extent
      unbind 0x10000000 0x200000
      remove 0x10000000 0x200000
      notifier-remove 0x0
      range 0x10000000 0x10000 new
      migrate 0x10000000 0x10000
      invalidate 0x0 0x10000000 0x10010000 MIGRATE
      pages 0x10000000 0x10000 dev
      bind 0x10000000 0x10000
      ok
      > devdump
      devmem used=0x210000 free=0xdf0000 allocations=2
      > cpu 0x10010000 0x1000                        # a page of A: A's block is [0x10000000, 0x10200000)
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x10000
      ok
      > devdump
      devmem used=0x10000 free=0xff0000 allocations=1
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x10000 flags=migrate_devmem pages=dev valid=0 bound=0
    `);
  });

  it('tick adds to the clock; reaching 2^64 is err EINVAL with the clock unchanged', () => {
    transcript(backend, `
      > ${SVM}
      > tick 0xfffffffffffffffe
      ok
      > tick 2
      err EINVAL
      > tick 1
      ok
      > tick 1
      err EINVAL
      > tick 0
      ok
    `);
  });
});

describe.each(backends)('SVM steps on %s: §4 device memory', (backend) => {
  it('used, free and allocations; an allocation goes with its last device page (munmap, madvise, mmap), not with its range', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > gpufault 0x10200000 devmem
      range 0x10200000 0x200000 new
      migrate 0x10200000 0x200000
      invalidate 0x0 0x10200000 0x10400000 MIGRATE
      pages 0x10200000 0x200000 dev
      bind 0x10200000 0x200000
      ok
      > devdump
      devmem used=0x400000 free=0x0 allocations=2
      > munmap 0x10000000 0x100000             # half of A's pages: A still counts whole
      invalidate 0x0 0x10000000 0x10100000 UNMAP
      unmap-pages 0x10000000 0x200000
      gc-queue 0x10000000 partial
      ok
      > devdump
      devmem used=0x400000 free=0x0 allocations=2
      > gc                                     # removing the range leaves its device pages
      unbind 0x10000000 0x200000
      remove 0x10000000 0x200000
      ok
      > devdump
      devmem used=0x400000 free=0x0 allocations=2
      > madvise 0x10100000 0x100000 dontneed   # the rest of A
      invalidate 0x0 0x10100000 0x10200000 CLEAR
      ok
      > devdump
      devmem used=0x200000 free=0x200000 allocations=1
      > mmap 0x10200000 0x200000 file          # replacing B's pages releases B
      invalidate 0x0 0x10200000 0x10400000 UNMAP
      unmap-pages 0x10200000 0x200000
      gc-queue 0x10200000 full
      ok
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
    `);
  });

  it('a failed migration never changes used (ENOSPC, then the fault settles in system memory)', () => {
    transcript(backend, `
      > ${SVM} devmem=0x100000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      migrate-fail ENOSPC
      retry migrate ENOSPC
      range 0x10000000 0x200000 found
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > devdump
      devmem used=0x0 free=0x100000 allocations=0
    `);
  });

  it('timeslice: 0 never holds pages; a non-atomic migration gets 0 whatever the svm timeslice; freeing ignores it', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 atomic          # timeslice 0
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > cpu 0x10000000 0x1000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      ok
      > ${SVM} devmem=0x400000 timeslice=1000
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10000000 devmem          # not atomic: timeslice 0
      range 0x10000000 0x200000 new
      migrate 0x10000000 0x200000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      pages 0x10000000 0x200000 dev
      bind 0x10000000 0x200000
      ok
      > cpu 0x10000000 0x1000
      invalidate 0x0 0x10000000 0x10200000 MIGRATE
      unmap-pages 0x10000000 0x200000
      ok
      > gpufault 0x10200000 atomic          # 1000 ms
      range 0x10200000 0x200000 new
      migrate 0x10200000 0x200000
      invalidate 0x0 0x10200000 0x10400000 MIGRATE
      pages 0x10200000 0x200000 dev
      bind 0x10200000 0x200000
      ok
      > cpu 0x10200000 0x1000
      err EAGAIN
      > madvise 0x10200000 0x1000 dontneed  # freeing is not held back
      invalidate 0x0 0x10200000 0x10201000 CLEAR
      unmap-pages 0x10200000 0x200000
      ok
      > munmap 0x10201000 0x1ff000
      invalidate 0x0 0x10201000 0x10400000 UNMAP
      gc-queue 0x10200000 partial
      ok
      > devdump
      devmem used=0x0 free=0x400000 allocations=0
    `);
  });
});
