/**
 * svm: the shared-virtual-memory layer (CpuMm + DevMem + GpuSvm driven by the
 * reference driver SvmDriver), on each engine.
 *
 * Cases (impl '<engine>:<case>', nsPerOp per fault / per invalidation):
 * - first-fault: a GPU fault on a fresh 2 MiB block of a large anonymous VMA:
 *   the collector (empty), find_or_insert creating the range (and its
 *   notifier), get_pages populating 512 pages (one extent), and the bind
 * - first-fault+pt: the same with a PageTable kept in step (512 entries written)
 * - fast-fault: a fault on a bound range (the fast path), cycling 1024 ranges
 * - migrate-fault: a devmem fault on a fresh 2 MiB block: device allocation,
 *   MIGRATE invalidation, 512 pages made device pages, get_pages, bind
 * - unmap-512m: munmap of a 512 MiB notifier holding 256 bound ranges: one
 *   UNMAP invalidation unmapping and queueing every range (timed alone; the
 *   setup before each round is not timed)
 * Memory rows (bytesPer = engine bytes + JS heap growth, per object):
 * - per-vma: 1e5 VMAs that cannot merge (alternating ro/rw)
 * - per-range: 1e5 bound 64 KiB ranges (with their notifiers and extents)
 * - per-extent: 1e5 page extents (every other page of one VMA populated)
 * - vma-size: bytes of a VMA touched in three places, for a 2 MiB and a 1 TiB
 *   VMA (page state is kept as extents: the size must not matter)
 *
 * Fault timings are benchmark.js medians of batches (256 faults per call);
 * the unmap timing is the median of 30 one-call rounds after 100 warm-up
 * rounds (the setup of each round is not timed). Each engine runs in a
 * process of its own.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gc, median, ROOT } from '../harness.mjs';

const M2 = 0x20_0000;
const K64 = 0x1_0000;
const PAGE = 0x1000;
const BATCH = 256;

function ns(t0) {
  return Number(process.hrtime.bigint() - t0);
}

/**
 * One engine's cases, in a process of its own: the facade code then sees one
 * engine only, as an application's does (sharing a process, the second
 * engine measured would run on polymorphic call sites), and the heap figures
 * start from a quiet heap.
 */
async function runEngine(backend, options, ctx) {
  const mod = await import(pathToFileURL(join(ROOT, 'dist', 'index.js')).href);
  const { CpuMm, DevMem, SvmDriver, PageTable } = mod;
  const rounds = options.rounds;
  const timing = { maxTime: options.maxTime, minSamples: options.minSamples };

  /** A driver over a 2^46-byte window with one big anonymous VMA. */
  function world(backend, { devmem = 0, pt = false, chunks = [M2, K64, PAGE], vmaSize = 2 ** 45 } = {}) {
    const mm = new CpuMm({ backend });
    const dm = devmem > 0 ? new DevMem({ size: devmem, backend }) : null;
    const pageTable = pt ? new PageTable({ backend }) : null;
    const driver = new SvmDriver({ mm, devmem: dm, start: 0, range: 2 ** 46, notifierSize: 0x2000_0000, chunks, pageTable });
    mm.mmap(M2, vmaSize);
    return {
      mm,
      driver,
      destroy() {
        driver.fini();
        dm?.destroy();
        pageTable?.destroy();
        mm.destroy();
      },
    };
  }

    // memory first, on a quiet heap (after the timing cases V8's heap accounting no longer shows
    // what a build adds)
    const heapNow = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const n = options.quick ? 1e4 : 1e5;
    {
      const mm = new CpuMm({ backend });
      const h0 = heapNow();
      const e0 = mm.stats().engineBytes;
      for (let i = 0; i < n; i++) mm.mmap(M2 + i * 2 * PAGE, PAGE, { readOnly: (i & 1) === 1 });
      // neighbours differ in access mode: nothing merges
      const st = mm.stats();
      if (st.vmas !== n) ctx.error(`svm memory: ${st.vmas} VMAs, expected ${n}`);
      const heap = Math.max(0, heapNow() - h0);
      ctx.report({ suite: 'svm', impl: `${backend}:per-vma`, n, nsPerOp: 0, bytesPer: (st.engineBytes - e0 + heap) / n, engineBytesPer: (st.engineBytes - e0) / n, heapBytesPer: heap / n });
      mm.destroy();
    }
    {
      const w = world(backend, { chunks: [K64, PAGE] });
      // warm the fault path first: compiling it while measuring would blur the heap figure
      for (let i = 0; i < 2000; i++) w.driver.fault(2 ** 44 + i * K64);
      const h0 = heapNow();
      const e0 = w.mm.stats().engineBytes;
      for (let i = 0; i < n; i++) w.driver.fault(M2 + i * K64);
      const heap = Math.max(0, heapNow() - h0);
      const bytes = w.mm.stats().engineBytes - e0 + w.driver.svm.stats().engineBytes * (n / (n + 2000));
      ctx.report({ suite: 'svm', impl: `${backend}:per-range`, n, nsPerOp: 0, bytesPer: (bytes + heap) / n, engineBytesPer: bytes / n, heapBytesPer: heap / n });
      w.destroy();
    }
    {
      const mm = new CpuMm({ backend });
      mm.mmap(M2, 2 * n * PAGE);
      const h0 = heapNow();
      const e0 = mm.stats().engineBytes;
      for (let i = 0; i < n; i++) mm.access(M2 + 2 * i * PAGE, PAGE);
      const st = mm.stats();
      if (st.extents !== n) ctx.error(`svm memory: ${st.extents} extents, expected ${n}`);
      const heap = Math.max(0, heapNow() - h0);
      ctx.report({ suite: 'svm', impl: `${backend}:per-extent`, n: st.extents, nsPerOp: 0, bytesPer: (st.engineBytes - e0 + heap) / n, engineBytesPer: (st.engineBytes - e0) / n, heapBytesPer: heap / n });
      mm.destroy();
    }
    for (const size of [M2, 2 ** 40]) {
      const mm = new CpuMm({ backend });
      const e0 = mm.stats().engineBytes;
      mm.mmap(2 ** 41, size);
      for (const off of [0, size / 2, size - PAGE]) mm.access(2 ** 41 + off, PAGE);
      const st = mm.stats();
      ctx.report({ suite: 'svm', impl: `${backend}:vma-size-${size === M2 ? "2m" : "1t"}`, n: size, nsPerOp: 0, engineBytes: st.engineBytes - e0, extents: st.extents });
      mm.destroy();
    }
    const cases = [];
    // first-fault, with and without a page table; fresh 2 MiB blocks from a cursor
    for (const pt of [false, true]) {
      const w = world(backend, { pt });
      let next = M2;
      cases.push({
        impl: `${backend}:first-fault${pt ? '+pt' : ''}`,
        fn: () => {
          const d = w.driver;
          for (let i = 0; i < BATCH; i++) {
            d.fault(next);
            next += M2;
          }
        },
        w,
      });
    }
    {
      const w = world(backend);
      for (let i = 0; i < 1024; i++) w.driver.fault(M2 * (i + 1));
      let i = 0;
      cases.push({
        impl: `${backend}:fast-fault`,
        fn: () => {
          const d = w.driver;
          for (let k = 0; k < BATCH; k++) {
            d.fault(M2 * ((i & 1023) + 1) + 0x40);
            i++;
          }
        },
        w,
      });
    }
    {
      const w = world(backend, { devmem: 2 ** 44 });
      let next = M2;
      cases.push({
        impl: `${backend}:migrate-fault`,
        fn: () => {
          const d = w.driver;
          for (let i = 0; i < BATCH; i++) {
            d.fault(next, { devmem: true });
            next += M2;
          }
        },
        w,
      });
    }
    const results = new Map(cases.map((c) => [c.impl, []]));
    for (let r = 0; r < rounds; r++) {
      for (const c of cases) {
        gc();
        const m = ctx.measure(c.fn, { opsPerCall: BATCH, ...timing });
        results.get(c.impl).push(m.nsPerOp);
      }
    }
    for (const c of cases) {
      const rs = results.get(c.impl);
      const st = c.w.driver.svm.stats();
      ctx.report({ suite: 'svm', impl: c.impl, n: st.ranges, nsPerOp: median(rs), rounds: rs });
      c.w.destroy();
    }

    // unmap-512m: 256 bound 2 MiB ranges in one 512 MiB notifier, one munmap
    {
      const w = world(backend, { vmaSize: 0x2000_0000 });
      const base = 0x2000_0000;
      const times = [];
      // one invalidation per round: the first ~20 rounds run before V8 optimizes the
      // path (180 us instead of 14), so warm-up rounds come first, untimed
      const warm = options.quick ? 20 : 100;
      for (let r = 0; r < warm + (options.quick ? 5 : 30); r++) {
        w.mm.mmap(base, 0x2000_0000);
        for (let i = 0; i < 256; i++) w.driver.fault(base + i * M2);
        // no gc() here: a collection right before the call makes it ~5x slower (cold heap), which no user sees
        const t0 = process.hrtime.bigint();
        w.mm.munmap(base, 0x2000_0000);
        if (r >= warm) times.push(ns(t0));
        w.driver.gc();
      }
      ctx.report({ suite: 'svm', impl: `${backend}:unmap-512m`, n: 256, nsPerOp: median(times), nsPerRange: median(times) / 256 });
      w.destroy();
    }


}

if (process.argv[2] === '--child') {
  const [backend, json] = process.argv.slice(3);
  const { measure } = await import('../harness.mjs');
  const ctx = {
    measure,
    report: (row) => process.stdout.write(JSON.stringify(row) + '\n'),
    error: (msg) => process.stdout.write(JSON.stringify({ error: msg }) + '\n'),
  };
  await runEngine(backend, JSON.parse(json), ctx);
}

export default {
  name: 'svm',
  description: 'GPU SVM faults (first, fast path, with migration), a 512 MiB UNMAP invalidation, memory per VMA / range / extent',
  async run(ctx) {
    if (!ctx.gpuvm) return;
    const { options } = ctx;
    for (const backend of ctx.gpuvm.backends) {
      const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', backend, JSON.stringify(options)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 24,
      });
      if (child.status !== 0) {
        ctx.error(`svm: the ${backend} run exited with ${child.status}`);
        continue;
      }
      for (const line of child.stdout.split('\n')) {
        if (line.trim() === '') continue;
        const row = JSON.parse(line);
        if ('error' in row) ctx.error(row.error);
        else ctx.report(row);
      }
    }
  },

  table(rows, out) {
    out('\n## svm');
    const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
    const byCase = new Map();
    for (const r of rows) {
      const [engine, kase] = r.impl.split(':');
      if (!byCase.has(kase)) byCase.set(kase, {});
      byCase.get(kase)[engine] = r;
    }
    out('case            native          wasm            wasm/native');
    for (const [kase, e] of byCase) {
      const cell = (r) => {
        if (!r) return '-';
        if (r.bytesPer !== undefined) return `${fmt(r.bytesPer)} B (eng ${fmt(r.engineBytesPer)})`;
        if (r.engineBytes !== undefined) return `${r.engineBytes} B, ${r.extents} ext`;
        return `${fmt(r.nsPerOp)} ns`;
      };
      const a = e.native;
      const b = e.wasm;
      const val = (r) => (r ? (r.bytesPer ?? r.engineBytes ?? r.nsPerOp) : NaN);
      const ratio = a && b && val(a) > 0 ? `${(val(b) / val(a)).toFixed(2)}x` : '-';
      const label = kase;
      out(`${label.padEnd(16)}${cell(a).padEnd(16)}${cell(b).padEnd(16)}${ratio}`);
    }
  },
};
