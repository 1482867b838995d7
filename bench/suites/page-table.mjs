/**
 * page-table: the xe-style page-table walker on each engine.
 *
 * Walker throughput (rows with `entries` = entries written or read per op):
 * - bind-4k-contig: bind 1 GiB of contiguous memory that is not 2 MiB aligned
 *   physically, so every entry is a 4 KiB leaf (262144 leaves + 512 PDEs)
 * - bind-4k-frag: the same 1 GiB from 262144 scattered 4 KiB segments given
 *   as [pa, len] arrays (built once, outside the timing; passing them is inside)
 * - bind-4k-frag-typed: the same segments as one BigUint64Array of (pa, len)
 *   pairs (copied into the engine word for word)
 * - unbind-1g: unbind that 1 GiB again (the kill rule: one PDE, 513 tables freed)
 * - unbind-4k: unbind it one 4 KiB page at a time (ns per unbind call)
 * - translate-many / translate: random addresses in the bound GiB, batched
 *   (translateMany, one crossing per 16384) and one call each
 * - commit: a GpuVm request stream (the kernel-stream shape in a 64 MiB
 *   window) whose op lists are committed to a page table; ns and entries per op
 * - keep savings: entries written (live + new) per request with and without
 *   `keep` on IGT-like patterns: munmap-style partial unbinds of a large
 *   mapping, mmap-style binds over an existing mapping of the same BO, and
 *   partial rebinds with another BO.
 *
 * Timing: median of rounds of one call each (the calls are large); rows are
 * { suite, impl: '<engine>:<case>', n, nsPerOp, entries, entriesPerSec }.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { median, gc, ROOT } from '../harness.mjs';
import { XorShift64Star } from '../workload.mjs';

const PAGE = 0x1000;
const G1 = 0x4000_0000;

function ns(t0) {
  return Number(process.hrtime.bigint() - t0);
}

/** n 4 KiB segments at scattered, 8 KiB-strided physical addresses (never adjacent). */
function scatteredPages(n) {
  const segs = new Array(n);
  for (let i = 0; i < n; i++) segs[i] = [0x1_0000_0000 + ((i * 40503) % (1 << 22)) * 0x2000, PAGE];
  return segs;
}

/** The same segments as (pa, len) pairs of a BigUint64Array. */
function typedPages(segs) {
  const t = new BigUint64Array(segs.length * 2);
  for (let i = 0; i < segs.length; i++) {
    t[2 * i] = BigInt(segs[i][0]);
    t[2 * i + 1] = BigInt(segs[i][1]);
  }
  return t;
}

/** Physical layout of a BO for commit: 64 KiB chunks scattered, contiguous inside. */
function makeResolve() {
  return (bo, offset, length) => {
    const base = bo.id * 2 ** 36;
    const segs = [];
    const end = offset + length;
    for (let at = offset; at < end; ) {
      const next = Math.min(end, (Math.floor(at / 0x10000) + 1) * 0x10000);
      const k = Math.floor(at / 0x10000);
      segs.push([base + ((k * 40503) % (1 << 20)) * 0x10000 + (at % 0x10000), next - at]);
      at = next;
    }
    return segs;
  };
}

function written(c) {
  return c.live + c.new;
}

/**
 * IGT-like patterns; each returns per-request entries written with keep and
 * without, over the same op lists.
 */
function keepPatterns(G, backend, quick) {
  const resolve = makeResolve();
  const out = [];
  const run = (name, requests, setup) => {
    const vm = new G.GpuVm({ start: 0, range: 2 ** 40, backend });
    const keep = new G.PageTable({ backend });
    const full = new G.PageTable({ backend });
    const bo = new G.Bo({ size: 2 ** 36 });
    const other = new G.Bo({ size: 2 ** 36 });
    const commit = (ops) => {
      const list = [...ops];
      const a = keep.commit(list, resolve);
      const b = full.commit(list, resolve, { keep: false });
      if (ops.state === 'pending') ops.apply();
      return [written(a), written(b)];
    };
    setup(vm, bo, commit);
    let wk = 0;
    let wf = 0;
    let n = 0;
    for (const req of requests(vm, bo, other)) {
      const [a, b] = commit(req());
      wk += a;
      wf += b;
      n++;
    }
    out.push({ pattern: name, requests: n, keep: wk / n, full: wf / n });
    keep.destroy();
    full.destroy();
    vm.destroy();
  };
  const rng = new XorShift64Star(3);
  const N = quick ? 200 : 2000;
  const REGION = 256 * 2 ** 20;
  // munmap-style: a 256 MiB mapping, then random 4..64 KiB holes punched into it
  run(
    'munmap-style partial unbinds',
    function* (vm) {
      for (let i = 0; i < N; i++) {
        const pages = 1 + rng.rnd(16);
        const addr = rng.rnd(REGION / PAGE - pages) * PAGE;
        yield () => vm.smUnmapOps(addr, pages * PAGE);
      }
    },
    (vm, bo, commit) => commit(vm.smMapOps({ addr: 0, range: REGION, bo, offset: 0 })),
  );
  // mmap-style: binds of the same BO at the matching offset over what is mapped; the
  // window is an eighth larger than the mapping, so some requests also extend it
  run(
    'mmap-style binds over a mapping (same BO)',
    function* (vm, bo) {
      for (let i = 0; i < N; i++) {
        const pages = 1 + rng.rnd(512);
        const addr = rng.rnd((REGION * 9) / 8 / PAGE - pages) * PAGE;
        yield () => vm.smMapOps({ addr, range: pages * PAGE, bo, offset: addr });
      }
    },
    (vm, bo, commit) => commit(vm.smMapOps({ addr: 0, range: REGION, bo, offset: 0 })),
  );
  // partial rebinds: another BO over a piece of the mapping, then the original back
  run(
    'partial rebinds (other BO, then back)',
    function* (vm, bo, other) {
      for (let i = 0; i < N; i++) {
        const pages = 1 + rng.rnd(64);
        const addr = rng.rnd(REGION / PAGE - pages) * PAGE;
        yield () => vm.smMapOps({ addr, range: pages * PAGE, bo: i % 2 ? bo : other, offset: addr });
      }
    },
    (vm, bo, commit) => commit(vm.smMapOps({ addr: 0, range: REGION, bo, offset: 0 })),
  );
  return out;
}

export default {
  name: 'page-table',
  description: 'xe page-table walker: entries/s for 1 GiB binds, unbinds, translates; commit cost; keep savings',
  async run(ctx) {
    const { options } = ctx;
    let G;
    try {
      G = await import(pathToFileURL(join(ROOT, 'dist', 'index.js')).href);
    } catch (e) {
      ctx.log(`page-table: cannot import dist/index.js (${e.message}); skipped`);
      return;
    }
    if (typeof G.PageTable !== 'function') {
      ctx.log('page-table: dist/index.js does not export PageTable; skipped');
      return;
    }
    const backends = ctx.gpuvm?.backends ?? ['native', 'wasm'];
    const quick = options.quick;
    const size = quick ? 64 * 2 ** 20 : G1;
    const pages = size / PAGE;
    const rounds = quick ? 2 : Math.max(5, options.rounds * 2);
    const frag = scatteredPages(pages);
    const fragTyped = typedPages(frag);
    const contig = [[0x2_0000_1000, size]]; // 4 KiB aligned only: every entry a 4 KiB leaf
    const rng = new XorShift64Star(5);
    const probes = Array.from({ length: 1 << 16 }, () => rng.rnd(size));

    for (const backend of backends) {
      const pt = new G.PageTable({ backend });
      const report = (cse, n, nsPerOp, entries, extra = {}) => {
        const row = {
          suite: 'page-table',
          impl: `${backend}:${cse}`,
          n,
          nsPerOp,
          entries,
          entriesPerSec: entries > 0 ? Math.round((entries / nsPerOp) * 1e9) : undefined,
          ...extra,
        };
        ctx.report(row);
        ctx.log(
          `page-table ${backend.padEnd(6)} ${cse.padEnd(16)} ${(nsPerOp / 1e6).toFixed(3).padStart(9)} ms/op` +
            (entries > 0 ? `  ${(row.entriesPerSec / 1e6).toFixed(1)} M entries/s` : `  ${nsPerOp.toFixed(0)} ns/op`),
        );
      };
      // ---- bind / unbind of 1 GiB ----
      for (const [cse, backing] of [
        ['bind-4k-contig', contig],
        ['bind-4k-frag', frag],
        ['bind-4k-frag-typed', fragTyped],
      ]) {
        const tb = [];
        const tu = [];
        let c = null;
        for (let r = 0; r < rounds + 1; r++) {
          gc();
          let t0 = process.hrtime.bigint();
          c = pt.bind(0, size, backing);
          const b = ns(t0);
          t0 = process.hrtime.bigint();
          const u = pt.unbind(0, size);
          const un = ns(t0);
          if (r > 0) {
            tb.push(b);
            tu.push(un);
          }
          if (u.free !== c.alloc) ctx.error(`page-table ${backend}: unbind freed ${u.free} tables, bind made ${c.alloc}`);
        }
        const entries = c.live + c.new;
        if (c.new !== pages + pages / 512 + 1) ctx.error(`page-table ${backend} ${cse}: ${c.new} new entries, expected ${pages + pages / 512 + 1}`);
        report(cse, pages, median(tb), entries);
        if (cse === 'bind-4k-contig') report('unbind-1g', pages, median(tu), 0, { tablesFreed: c.alloc });
      }
      // ---- unbind page by page, translate ----
      pt.bind(0, size, frag);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < probes.length; i++) pt.translate(probes[i]);
      report('translate', probes.length, ns(t0) / probes.length, 0);
      const tm = [];
      for (let r = 0; r < rounds; r++) {
        const t1 = process.hrtime.bigint();
        pt.translateMany(probes);
        tm.push(ns(t1) / probes.length);
      }
      report('translate-many', probes.length, median(tm), 0);
      const step = quick ? 1 : 4;
      let calls = 0;
      const t2 = process.hrtime.bigint();
      for (let p = 0; p < pages; p += step) {
        pt.unbind(p * PAGE, PAGE);
        calls++;
      }
      report('unbind-4k', calls, ns(t2) / calls, 0);
      pt.destroy();

      // ---- commit cost per GpuVm op ----
      {
        const window = 64 * 2 ** 20;
        const vm = new G.GpuVm({ start: 0, range: window, backend });
        const cpt = new G.PageTable({ backend });
        const bos = [null, ...Array.from({ length: 8 }, () => new G.Bo({ size: 2 ** 36 }))];
        const resolve = makeResolve();
        const r2 = new XorShift64Star(1);
        const reqs = [];
        const N = quick ? 2000 : 20000;
        for (let i = 0; i < N; i++) {
          const kind = r2.rnd(4);
          const np = 1 + r2.rnd(64);
          const ap = r2.rnd(window / PAGE - np + 1);
          const req = { kind, addr: ap * PAGE, range: np * PAGE };
          if (kind !== 0) {
            req.bo = bos[r2.rnd(9)];
            req.offset = (r2.rnd(2) === 0 ? ap : r2.rnd(1 << 20)) * PAGE;
          }
          reqs.push(req);
        }
        // op lists generated and applied outside the timing; only commits are timed
        let ops = 0;
        let entries = 0;
        let commitNs = 0;
        for (const q of reqs) {
          const list = q.kind === 0 ? vm.smUnmapOps(q.addr, q.range) : vm.smMapOps({ addr: q.addr, range: q.range, bo: q.bo, offset: q.offset });
          const arr = [...list];
          const t3 = process.hrtime.bigint();
          const c = cpt.commit(arr, resolve);
          commitNs += ns(t3);
          if (list.state === 'pending') list.apply();
          ops += arr.length;
          entries += written(c);
        }
        report('commit-per-op', ops, commitNs / ops, 0, { entriesPerOp: entries / ops, requests: N });
        cpt.destroy();
        vm.destroy();
      }

      // ---- keep savings on IGT-like patterns ----
      for (const k of keepPatterns(G, backend, quick)) {
        ctx.log(
          `page-table ${backend.padEnd(6)} keep: ${k.pattern}: ${k.keep.toFixed(1)} entries/request with keep, ` +
            `${k.full.toFixed(1)} without (${(100 * (1 - k.keep / k.full)).toFixed(1)}% saved)`,
        );
        ctx.report({
          suite: 'page-table',
          impl: `${backend}:keep:${k.pattern}`,
          n: k.requests,
          nsPerOp: 0,
          entriesWithKeep: k.keep,
          entriesWithoutKeep: k.full,
          savedPercent: 100 * (1 - k.keep / k.full),
        });
      }
      gc();
    }
  },
};
