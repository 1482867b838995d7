/**
 * The SVM replay language step by step, part 1: dispatch and syntax, the
 * `svm` setup and the VMA rules of the CPU side. Every expected output below
 * was derived by hand from the language's definition, not copied from a run.
 *
 * Transcripts: `> command` lines are the input; the lines after one are the
 * exact output of that command. They are checked command by command through
 * the SVM command set (readable diffs) and as a whole through replay().
 */
import { describe, expect, it } from 'vitest';
import { CpuMm, type Vma } from '../src/index.js';
import { replay } from '../src/replay.js';
import { createSvmReplay } from '../src/replay-svm.js';
import { backends } from './support/engines.js';
import { SVM, transcript } from './support/svm-transcript.js';


describe.each(backends)('SVM steps on %s: §1 lines and dispatch', (backend) => {
  it('only the fourteen SVM words belong to the SVM command set (case-sensitive)', () => {
    const r = createSvmReplay(backend);
    try {
      for (const w of ['init', 'map', 'dump', 'pt', 'ptbind', 'Mmap', 'SVM', 'gpuFault', 'svmDump', '']) {
        expect(r.lines(w, [])).toBeNull();
      }
      for (const w of ['svm', 'mmap', 'munmap', 'mprotect', 'madvise', 'cpu', 'tick', 'gpufault', 'svmprefetch', 'inject', 'gc', 'evict', 'svmdump', 'devdump']) {
        const lines = r.lines(w, []);
        expect(lines).not.toBeNull();
        expect([...lines!]).toEqual(['err EINVAL']);
      }
    } finally {
      r.close();
    }
  });

  it('lines of another language in the same file neither print SVM output nor disturb the SVM state', () => {
    const svmBefore = [SVM, 'mmap 0x10000000 0x200000', 'gpufault 0x10000000'];
    const other = ['init 0x0 0x100000', 'map 0x1000 0x2000 7 0x0', 'dump'];
    const svmAfter = ['gpufault 0x10000000', 'svmdump'];
    const mixed = replay([...svmBefore, ...other, ...svmAfter].join('\n') + '\n', { backend });
    const a = replay(svmBefore.join('\n') + '\n', { backend });
    const b = replay(other.join('\n') + '\n', { backend });
    expect(b).toContain('va 0x1000 0x2000 bo=7 off=0x0');
    expect(mixed).toBe(
      a + b + 'range 0x10000000 0x200000 found\nok\nnotifier 0x0 0x20000000 ranges=1\n' +
        'range 0x10000000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1\n',
    );
  });

  it('a comment starts at #, blank and comment-only lines print nothing, words split at any whitespace', () => {
    const text = [SVM, '', '   # only a comment', 'mmap\t0x10000000   0x1000 # ro file', '\t', 'cpu 0x10000000 0x1000 write#x'].join('\n');
    // `ro file` after the # is a comment: the VMA is anonymous and writable, so the write succeeds
    expect(replay(text + '\n', { backend })).toBe('ok\nok\n');
  });

  it('numbers: decimal or 0x/0X hex of either case; anything else, or 2^64 and above, is err EINVAL and changes nothing', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 268435456 0X1000          # decimal address, upper-case X
      ok
      > mmap 0x10001000 0x1Aa000       # mixed-case hex digits
      ok
      > munmap 0010 4096               # leading zeros are decimal: 10 is not page aligned
      err EINVAL
      > mmap 0x 0x1000
      err EINVAL
      > mmap 0x20000000 0x1g000
      err EINVAL
      > mmap +4096 4096
      err EINVAL
      > mmap -4096 4096
      err EINVAL
      > mmap 1e4 4096
      err EINVAL
      > mmap 0x0x1000 4096
      err EINVAL
      > mmap 0x10000000000000000 0x1000
      err EINVAL
      > mmap 18446744073709551616 4096
      err EINVAL
      > mmap 0x20000000 0x1000 RO        # keywords are lower case
      err EINVAL
      > cpu 0x20000000 0x1000            # none of the refused mmaps created a VMA
      err EFAULT
      > cpu 0x10000000 0x1Ab000 write    # the two good ones did (and merged)
      ok
    `);
  });

  it('the interval rule: page multiples, len > 0, addr + len <= 2^64 (exactly 2^64 is fine)', () => {
    transcript(backend, `
      > ${SVM}
      > munmap 0x1001 0x1000
      err EINVAL
      > munmap 0x1000 0x1800
      err EINVAL
      > munmap 0x1000 0x0
      err EINVAL
      > munmap 0xfffffffffffff000 0x2000
      err EINVAL
      > mmap 0xfffffffffffff000 0x1000   # the last page of the 64-bit space
      ok
      > cpu 0xfffffffffffff000 0x1000 write
      ok
      > munmap 0xfffffffffffff000 0x1000
      ok
      > cpu 0xfffffffffffff000 0x1000
      err EFAULT
    `);
  });

  it('wrong argument counts and unknown, misplaced or repeated keywords are err EINVAL', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000
      err EINVAL
      > mmap 0x10000000 0x1000 ro file hugetlb
      err EINVAL
      > mmap 0x10000000 0x1000 file hugetlb
      err EINVAL
      > mmap 0x10000000 0x1000 ro ro
      err EINVAL
      > mmap 0x10000000 0x1000 anon
      err EINVAL
      > munmap 0x10000000 0x1000 0x1000
      err EINVAL
      > mprotect 0x10000000 0x1000
      err EINVAL
      > mprotect 0x10000000 0x1000 rx
      err EINVAL
      > madvise 0x10000000 0x1000 willneed
      err EINVAL
      > cpu 0x10000000 0x1000 read
      err EINVAL
      > cpu 0x10000000 0x1000 write write
      err EINVAL
      > tick
      err EINVAL
      > tick 1 2
      err EINVAL
      > gpufault
      err EINVAL
      > gpufault 0x10000000 0x10000000            # one window number
      err EINVAL
      > gpufault 0x10000000 ro 0x0 0x1000         # the window comes first
      err EINVAL
      > gpufault 0x10000000 ro ro
      err EINVAL
      > gpufault 0x10000000 write
      err EINVAL
      > svmprefetch 0x10000000
      err EINVAL
      > svmprefetch 0x10000000 0x1000 ro
      err EINVAL
      > svmprefetch 0x10000800 0x1000
      err EINVAL
      > gc now
      err EINVAL
      > evict
      err EINVAL
      > evict 0x10000000 0x1000
      err EINVAL
      > svmdump all
      err EINVAL
      > devdump 0
      err EINVAL
      > cpu 0x10000000 0x1000          # nothing above created a VMA
      err EFAULT
    `);
  });

  it('status lines: svm prints nothing, the dumps print only their dump, everything else ends with ok or err', () => {
    transcript(backend, `
      > ${SVM} devmem=0x1000
      > svmdump
      > devdump
      devmem used=0x0 free=0x1000 allocations=0
      > gc
      ok
      > tick 0
      ok
      > munmap 0x10000000 0x1000       # nothing mapped: still ok
      ok
    `);
  });

  it('before the first successful svm every other command is err EINVAL, well formed or not', () => {
    transcript(backend, `
      > mmap 0x10000000 0x1000
      err EINVAL
      > munmap 0x10000000 0x1000
      err EINVAL
      > mprotect 0x10000000 0x1000 ro
      err EINVAL
      > madvise 0x10000000 0x1000 dontneed
      err EINVAL
      > cpu 0x10000000 0x1000
      err EINVAL
      > tick 1
      err EINVAL
      > gpufault 0x10000000
      err EINVAL
      > svmprefetch 0x10000000 0x1000
      err EINVAL
      > inject after-gc cpu 0x10000000 0x1000
      err EINVAL
      > gc
      err EINVAL
      > evict 0x10000000
      err EINVAL
      > svmdump
      err EINVAL
      > devdump
      err EINVAL
      > svm 0 0 0x1000 0x1000           # a failed svm does not count
      err EINVAL
      > gc
      err EINVAL
      > svm 0 0x1000 0x1000 0x1000
      > gc
      ok
    `);
  });
});

describe.each(backends)('SVM steps on %s: §2 setup', (backend) => {
  it('every invalid svm line is err EINVAL', () => {
    transcript(backend, `
      > svm 0 0x1000000000 0x20000000                            # three arguments
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x1000 size=1               # unknown option
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x1000 devmem=0x1000 devmem=0x1000
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x1000 devmem              # a word without =
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x1000 threshold=
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x1000 threshold=0x10000000000000000
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x1000 Devmem=0x1000         # option names are case-sensitive
      err EINVAL
      > svm 0x800 0x1000000000 0x20000000 0x1000
      err EINVAL
      > svm 0 0x1800 0x1000 0x1000
      err EINVAL
      > svm 0 0 0x1000 0x1000
      err EINVAL
      > svm 0xfffffffffffff000 0x2000 0x1000 0x1000                # end above 2^64
      err EINVAL
      > svm 0 0x1000000000 0x3000 0x1000                           # notifier size not a power of two
      err EINVAL
      > svm 0 0x1000000000 0x800 0x1000                            # below 0x1000
      err EINVAL
      > svm 0 0x1000000000 0 0x1000
      err EINVAL
      > svm 0 0x1000000000 0x20000000 ,                            # empty chunk list
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x200000,,0x1000
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x3000,0x1000
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x10000,0x10000,0x1000      # not strictly descending
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x1000,0x10000
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x200000,0x10000             # does not end with 0x1000
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x0,0x1000
      err EINVAL
      > svm 0 0x1000000000 0x20000000 0x1000 devmem=0x1800         # pool not page-sized
      err EINVAL
      > gc                                                         # none of them set anything up
      err EINVAL
    `);
  });

  it('accepts the edge values: window ending at 2^64, any u64 for threshold/retries/timeslice, options in any order, chunk above the notifier size', () => {
    transcript(backend, `
      > svm 0xfffffffffffff000 0x1000 0x1000 0x1000
      > svm 0 0x1000000000 0x20000000 0x1000 timeslice=0xffffffffffffffff retries=18446744073709551615 threshold=0xffffffffffffffff devmem=0
      > svm 0 0x1000000000 0x10000 0x200000,0x1000        # 2M chunks never fit a 64K notifier block
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x1000 new
      pages 0x10000000 0x1000 sys
      bind 0x10000000 0x1000
      ok
    `);
  });

  it('any page-sized pool is accepted, up to the whole 64-bit space', () => {
    // regression: the pool's default device base (2^40) made pools above 2^64 - 2^40 bytes err EINVAL
    transcript(backend, `
      > svm 0 0x1000000000 0x20000000 0x1000 devmem=0xfffffffffffff000
      > devdump
      devmem used=0x0 free=0xfffffffffffff000 allocations=0
      > mmap 0x10000000 0x1000
      ok
      > gpufault 0x10000000 devmem
      range 0x10000000 0x1000 new
      migrate 0x10000000 0x1000
      invalidate 0x0 0x10000000 0x10001000 MIGRATE
      pages 0x10000000 0x1000 dev
      bind 0x10000000 0x1000
      ok
      > devdump
      devmem used=0x1000 free=0xffffffffffffe000 allocations=1
    `);
  });

  it('a new svm replaces everything: address space, clock, pool, ranges, collector queue and queued injections', () => {
    transcript(backend, `
      > ${SVM} devmem=0x400000 timeslice=5
      > mmap 0x10000000 0x400000
      ok
      > gpufault 0x10000000 atomic
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
      > munmap 0x10200000 0x1000
      invalidate 0x0 0x10200000 0x10201000 UNMAP
      unmap-pages 0x10200000 0x200000
      gc-queue 0x10200000 partial
      ok
      > tick 0xfffffffffffffff0
      ok
      > inject after-gc cpu 0x10000000 0x1000
      ok
      > ${SVM} devmem=0x200000
      > svmdump
      > devdump
      devmem used=0x0 free=0x200000 allocations=0
      > cpu 0x10000000 0x1000
      err EFAULT
      > tick 0xffffffffffffffff              # the clock is back at 0
      ok
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000                  # no collected range, no injection
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
    `);
  });

  it('a failed svm keeps the previous setup untouched', () => {
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
      > inject after-bind cpu 0x10000000 0x1000 write
      ok
      > svm 0 0x1000000000 0x20000000 0x1000 devmem=0x1800
      err EINVAL
      > svm 0 0x1000000000 0x3000 0x1000
      err EINVAL
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=migrate_devmem,has_devmem_pages,has_dma_mapping pages=dev valid=1 bound=1
      > devdump
      devmem used=0x200000 free=0x200000 allocations=1
      > gpufault 0x10000000 devmem             # fast path; the injection was still queued
      range 0x10000000 0x200000 found
      inject-unused after-bind
      ok
    `);
  });

  it('without devmem ranges never get migrate_devmem and devmem/atomic have no effect', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x200000
      ok
      > gpufault 0x10000000 atomic devmem
      range 0x10000000 0x200000 new
      pages 0x10000000 0x200000 sys
      bind 0x10000000 0x200000
      ok
      > svmdump
      notifier 0x0 0x20000000 ranges=1
      range 0x10000000 0x200000 flags=has_dma_mapping pages=sys valid=1 bound=1
      > devdump
      devmem used=0x0 free=0x0 allocations=0
    `);
  });
});

/** The VMA list, one string per VMA: start+size, mode, kind, anon_vma when set, acct when accounted. */
function layout(mm: CpuMm<number>): string[] {
  return mm
    .vmas()
    .map(
      (v: Vma<number>) =>
        `${v.start.toString(16)}+${v.size.toString(16)} ${v.readOnly ? 'ro' : 'rw'} ${v.kind}` +
        `${v.anonVma ? ' anon_vma' : ''}${v.accounted ? ' acct' : ''}`,
    );
}

describe.each(backends)('SVM steps on %s: §3.1-§3.2 VMA state and merging (CpuMm)', (backend) => {
  const withMm = (f: (mm: CpuMm<number>) => void) => {
    const mm = new CpuMm<number>({ backend });
    try {
      f(mm);
    } finally {
      mm.destroy();
    }
  };

  it('adjacent anonymous rw mappings merge; the merged VMA keeps the anon_vma that exists', () => {
    withMm((mm) => {
      mm.mmap(0x10000, 0x10000);
      mm.access(0x10000, 0x1000); // first present page: anon_vma
      const a = mm.findVma(0x10000)!.anonVma;
      expect(a).not.toBe(0);
      mm.mmap(0x20000, 0x10000);
      expect(layout(mm)).toEqual(['10000+20000 rw anon anon_vma acct']);
      expect(mm.findVma(0x2f000)!.anonVma).toBe(a);
    });
  });

  it('only present pages give an anon_vma; file and hugetlb VMAs never get one', () => {
    withMm((mm) => {
      mm.mmap(0x10000, 0x10000);
      mm.mmap(0x30000, 0x10000, { kind: 'file' });
      mm.mmap(0x50000, 0x10000, { kind: 'hugetlb' });
      mm.madvise(0x10000, 0x10000, 'dontneed');
      expect(mm.findVma(0x10000)!.anonVma).toBe(0);
      mm.access(0x30000, 0x10000);
      mm.access(0x50000, 0x10000, { write: true });
      expect(layout(mm)).toEqual(['10000+10000 rw anon acct', '30000+10000 rw file', '50000+10000 rw hugetlb']);
    });
  });

  it('anonymous pieces populated after a split get different anon_vmas and stay separate when their modes become equal again', () => {
    withMm((mm) => {
      mm.mmap(0x10000, 0x20000);
      mm.mprotect(0x20000, 0x10000, 'ro'); // no anon_vma yet: the ro piece loses its accounted bit
      expect(layout(mm)).toEqual(['10000+10000 rw anon acct', '20000+10000 ro anon']);
      mm.access(0x10000, 0x1000);
      mm.access(0x20000, 0x1000);
      expect(mm.findVma(0x10000)!.anonVma).not.toBe(mm.findVma(0x20000)!.anonVma);
      mm.mprotect(0x20000, 0x10000, 'rw');
      expect(layout(mm)).toEqual(['10000+10000 rw anon anon_vma acct', '20000+10000 rw anon anon_vma acct']);
    });
  });

  it('pieces of a split keep the shared anon_vma and merge back when the mode is restored', () => {
    withMm((mm) => {
      mm.mmap(0x10000, 0x30000);
      mm.access(0x10000, 0x1000);
      mm.mprotect(0x20000, 0x10000, 'ro'); // has an anon_vma: accounted kept
      expect(layout(mm)).toEqual([
        '10000+10000 rw anon anon_vma acct',
        '20000+10000 ro anon anon_vma acct',
        '30000+10000 rw anon anon_vma acct',
      ]);
      mm.mprotect(0x20000, 0x10000, 'rw');
      expect(layout(mm)).toEqual(['10000+30000 rw anon anon_vma acct']);
    });
  });

  it('an ro VMA that was writable and kept its accounted bit stays apart from one that never was; without anon_vma the bit is cleared and they merge', () => {
    withMm((mm) => {
      mm.mmap(0x10000, 0x10000);
      mm.access(0x10000, 0x1000);
      mm.mprotect(0x10000, 0x10000, 'ro');
      mm.mmap(0x20000, 0x10000, { readOnly: true });
      expect(layout(mm)).toEqual(['10000+10000 ro anon anon_vma acct', '20000+10000 ro anon']);
      mm.mmap(0x40000, 0x10000);
      mm.mmap(0x50000, 0x10000, { readOnly: true });
      mm.mprotect(0x40000, 0x10000, 'ro'); // never populated: accounted cleared, merges with the ro neighbour
      expect(layout(mm).slice(2)).toEqual(['40000+20000 ro anon']);
    });
  });

  it('the scan merges left to right as the list stands: A+B merge, then AB and C keep different anon_vmas apart', () => {
    withMm((mm) => {
      mm.mmap(0x10000, 0x10000);
      mm.access(0x10000, 0x1000);
      mm.mmap(0x30000, 0x10000);
      mm.access(0x30000, 0x1000);
      mm.mmap(0x20000, 0x10000); // B between A and C, no anon_vma
      expect(layout(mm)).toEqual(['10000+20000 rw anon anon_vma acct', '30000+10000 rw anon anon_vma acct']);
      mm.mmap(0x50000, 0x10000);
      mm.mmap(0x70000, 0x10000);
      mm.mmap(0x60000, 0x10000); // none has an anon_vma: all three merge
      expect(layout(mm).slice(2)).toEqual(['50000+30000 rw anon acct']);
    });
  });

  it('one mprotect over several VMAs merges each changed piece into what the walk already merged', () => {
    withMm((mm) => {
      mm.mmap(0x10000, 0x30000);
      mm.access(0x10000, 0x30000);
      mm.mprotect(0x20000, 0x10000, 'ro');
      expect(layout(mm)).toHaveLength(3);
      mm.mprotect(0x10000, 0x30000, 'ro'); // A joins B, then C joins AB
      expect(layout(mm)).toEqual(['10000+30000 ro anon anon_vma acct']);
      mm.mprotect(0x18000, 0x20000, 'rw'); // the middle only: three pieces again
      expect(layout(mm)).toEqual([
        '10000+8000 ro anon anon_vma acct',
        '18000+20000 rw anon anon_vma acct',
        '38000+8000 ro anon anon_vma acct',
      ]);
    });
  });

  it('file VMAs merge only with pieces of the same mmap; hugetlb never merges; kinds never mix', () => {
    withMm((mm) => {
      mm.mmap(0x10000, 0x10000, { kind: 'file' });
      mm.mmap(0x20000, 0x10000, { kind: 'file' });
      expect(layout(mm)).toEqual(['10000+10000 rw file', '20000+10000 rw file']);
      mm.mmap(0x40000, 0x30000, { kind: 'file' });
      mm.mprotect(0x50000, 0x10000, 'ro');
      expect(layout(mm).slice(2)).toEqual(['40000+10000 rw file', '50000+10000 ro file', '60000+10000 rw file']);
      mm.mprotect(0x50000, 0x10000, 'rw');
      expect(layout(mm).slice(2)).toEqual(['40000+30000 rw file']);
      mm.mmap(0x100000, 0x10000, { kind: 'hugetlb' });
      mm.mmap(0x110000, 0x10000, { kind: 'hugetlb' });
      mm.mmap(0x140000, 0x20000, { kind: 'hugetlb' });
      mm.mprotect(0x150000, 0x10000, 'ro');
      mm.mprotect(0x150000, 0x10000, 'rw');
      expect(layout(mm).slice(3)).toEqual([
        '100000+10000 rw hugetlb',
        '110000+10000 rw hugetlb',
        '140000+10000 rw hugetlb',
        '150000+10000 rw hugetlb',
      ]);
      mm.mmap(0x200000, 0x10000);
      mm.mmap(0x210000, 0x10000, { kind: 'file' });
      expect(layout(mm).slice(7)).toEqual(['200000+10000 rw anon acct', '210000+10000 rw file']);
    });
  });

  it('splitting keeps kind, mode, creating mmap, anon_vma and accounted in every piece', () => {
    withMm((mm) => {
      mm.mmap(0x10000, 0x30000, { kind: 'file' });
      const origin = mm.findVma(0x10000)!.origin;
      mm.munmap(0x20000, 0x10000);
      expect(mm.vmas().map((v) => [v.kind, v.origin, v.readOnly])).toEqual([
        ['file', origin, false],
        ['file', origin, false],
      ]);
      mm.mmap(0x20000, 0x10000, { kind: 'file' }); // another mmap: stays a third VMA
      expect(mm.vmas()).toHaveLength(3);
      mm.mmap(0x100000, 0x30000);
      mm.access(0x100000, 0x1000);
      mm.munmap(0x110000, 0x10000);
      const [a, b] = mm.vmas(0x100000, 0x30000);
      expect([a.anonVma, a.accounted, a.kind]).toEqual([b.anonVma, b.accounted, b.kind]);
      expect(a.anonVma).not.toBe(0);
    });
  });

  it('merging is visible in the replay: one PROTECTION per VMA, a merged pair counts as one', () => {
    transcript(backend, `
      > ${SVM}
      > mmap 0x10000000 0x10000
      ok
      > mmap 0x10010000 0x10000 file
      ok
      > mmap 0x10020000 0x10000 file          # another mmap: not merged with the previous file VMA
      ok
      > mmap 0x10030000 0x10000               # anonymous after a file VMA: separate
      ok
      > cpu 0x10000000 0x40000
      ok
      > gpufault 0x10000000
      range 0x10000000 0x10000 new
      pages 0x10000000 0x10000 sys
      bind 0x10000000 0x10000
      ok
      > mprotect 0x10000000 0x40000 ro
      invalidate 0x0 0x10000000 0x10010000 PROTECTION
      unmap-pages 0x10000000 0x10000
      invalidate 0x0 0x10010000 0x10020000 PROTECTION
      invalidate 0x0 0x10020000 0x10030000 PROTECTION
      invalidate 0x0 0x10030000 0x10040000 PROTECTION
      ok
      > munmap 0x10010000 0x20000             # no range there: the notifier is still told
      invalidate 0x0 0x10010000 0x10030000 UNMAP
      ok
      > mmap 0x10010000 0x10000 ro             # never writable: apart from its left neighbour, which kept its accounted bit
      ok
      > mmap 0x10020000 0x10000 ro             # merges with the previous one (neither has an anon_vma)
      ok
      > cpu 0x10010000 0x20000
      ok
      > mprotect 0x10000000 0x40000 rw         # three VMAs, the merged pair as one piece
      invalidate 0x0 0x10000000 0x10010000 PROTECTION
      invalidate 0x0 0x10010000 0x10030000 PROTECTION
      invalidate 0x0 0x10030000 0x10040000 PROTECTION
      ok
      > mprotect 0x10000000 0x40000 ro         # all rw before, but three anon_vmas kept them apart
      invalidate 0x0 0x10000000 0x10010000 PROTECTION
      invalidate 0x0 0x10010000 0x10030000 PROTECTION
      invalidate 0x0 0x10030000 0x10040000 PROTECTION
      ok
    `);
  });
});
