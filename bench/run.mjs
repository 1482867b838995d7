#!/usr/bin/env node
/**
 * The benchmark runner: `npm run bench` (node --expose-gc bench/run.mjs).
 *
 *   --json           one JSON object per line on stdout:
 *                    { suite, impl, n, nsPerOp, checksum?, bytesPerMapping?, ... }
 *                    and nothing else (progress and environment go to stderr)
 *   --suite NAME     run only that suite (comma-separated list allowed)
 *   --quick          small sizes, one round: a smoke run
 *   --rounds N       interleaved rounds per comparison (default 3)
 *   --max-time S     benchmark.js maxTime per measurement, seconds (default 0.5)
 *   --sizes LIST     existing-mapping counts for bind/findFirst (default 1e3,1e4,1e5,1e6)
 *   --full           also run the interval-tree peer at 1e6 mappings (building
 *                    it takes minutes here; by default it stops at 1e5)
 *   --peers-max N    run the JS peers only up to N mappings (bind, findFirst,
 *                    memory): the engines alone at 1e7
 *   --memory-sizes LIST  mapping counts for memory (default 1e4,1e5,1e6)
 *   --engine NAME    use only this engine (native or wasm). An application
 *                    runs one engine, so its calls into the engine see one
 *                    kind of function; with both engines in one process the
 *                    facade's hot call sites see two and V8 cannot inline
 *                    them (single findFirst at 1e3, native: ~73 ns alone,
 *                    ~90 with both; WASM ~80 either way). Run once per
 *                    engine for figures as applications see them.
 *   --build          rebuild dist/ (npm run build:ts) before running
 *   --list           list the suites and exit
 *
 * Suites are the files in bench/suites/: each default-exports
 * { name, description, async run(ctx), table?(rows, out) }, with ctx = { report(row), options,
 * gpuvm, log(msg), error(msg), measure, interleave } (see harness.mjs); error()
 * records a wrong result (the run then exits 1) while the suite carries on.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import os from 'node:os';
import { Command } from 'commander';
import { ROOT, distState, buildDist, loadGpuvm, measure, interleave } from './harness.mjs';

const program = new Command()
  .name('bench')
  .description('gpuvm benchmarks against JS peers')
  .option('--json', 'one JSON object per result line on stdout, nothing else')
  .option('--suite <names>', 'run only these suites (comma-separated)')
  .option('--quick', 'small sizes and one round (smoke run)')
  .option('--rounds <n>', 'interleaved rounds per comparison', (v) => parseInt(v, 10))
  .option('--max-time <seconds>', 'benchmark.js maxTime per measurement', parseFloat)
  .option('--sizes <list>', 'existing-mapping counts for bind/findFirst', (v) => v.split(',').map(Number))
  .option('--full', 'also build the interval-tree peer at 1e6 mappings (minutes)')
  .option('--peers-max <n>', 'run the JS peers only up to n mappings', (v) => Number(v))
  .option('--memory-sizes <list>', 'mapping counts for memory', (v) => v.split(',').map(Number))
  .option('--engine <name>', 'use only this engine (native or wasm), as an application does')
  .option('--build', 'rebuild dist/ before running')
  .option('--list', 'list the suites and exit')
  .parse();
const opts = program.opts();

const json = Boolean(opts.json);
const out = (s) => process.stdout.write(s + '\n');
const log = (s) => process.stderr.write(s + '\n');
if (json) {
  // Suites that print must not corrupt the JSON stream.
  console.log = (...a) => log(a.join(' '));
  console.info = console.log;
}

const quick = Boolean(opts.quick);
const options = {
  json,
  quick,
  rounds: opts.rounds ?? (quick ? 1 : 3),
  maxTime: opts.maxTime ?? (quick ? 0.1 : 0.5),
  minSamples: quick ? 3 : 5,
  sizes: opts.sizes ?? (quick ? [1e3, 1e4] : [1e3, 1e4, 1e5, 1e6]),
  memorySizes: opts.memorySizes ?? (quick ? [1e4] : [1e4, 1e5, 1e6]),
  slowPeerMaxN: Math.min(opts.full ? Infinity : 1e5, opts.peersMax ?? Infinity),
  peerMaxN: opts.peersMax ?? Infinity,
  streamN: 100000,
  streamMaxTime: quick ? 0.1 : 1,
  streamMinSamples: quick ? 1 : 3,
};

// ---- suites ---------------------------------------------------------------------
const suiteDir = join(ROOT, 'bench', 'suites');
const suites = [];
for (const f of readdirSync(suiteDir).filter((f) => f.endsWith('.mjs')).sort()) {
  const mod = await import(pathToFileURL(join(suiteDir, f)).href);
  const s = mod.default;
  if (!s || typeof s.name !== 'string' || typeof s.run !== 'function') {
    log(`bench: ${f} does not default-export { name, description, run }; skipped`);
    continue;
  }
  suites.push(s);
}
// A stable, readable order: the headline first.
const ORDER = ['kernel-stream', 'bind', 'findFirst', 'bo-churn', 'memory'];
suites.sort((a, b) => {
  const ia = ORDER.indexOf(a.name), ib = ORDER.indexOf(b.name);
  return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.name.localeCompare(b.name);
});
if (opts.list) {
  for (const s of suites) out(`${s.name.padEnd(16)} ${s.description ?? ''}`);
  process.exit(0);
}
let selected = suites;
if (opts.suite) {
  const want = String(opts.suite).split(',').map((s) => s.trim());
  const unknown = want.filter((w) => !suites.some((s) => s.name === w));
  if (unknown.length) {
    log(`bench: unknown suite ${unknown.join(', ')}; have ${suites.map((s) => s.name).join(', ')}`);
    process.exit(2);
  }
  selected = suites.filter((s) => want.includes(s.name));
}

// ---- the facade ------------------------------------------------------------------
const state = distState();
if (opts.build || state === 'missing') {
  log(`bench: ${state === 'missing' ? 'dist/ is missing' : 'rebuilding'}: npm run build:ts`);
  if (!buildDist()) log('bench: npm run build:ts failed; the gpuvm engines will be skipped');
} else if (state === 'stale') {
  log('bench: note: src/ is newer than dist/ (run with --build, or npm run build:ts, to measure the current source)');
}
if (opts.engine !== undefined && opts.engine !== 'native' && opts.engine !== 'wasm') {
  log(`bench: --engine must be native or wasm, got ${JSON.stringify(opts.engine)}`);
  process.exit(2);
}
const loaded = await loadGpuvm(opts.engine === undefined ? ['native', 'wasm'] : [opts.engine]);
const gpuvm = 'error' in loaded ? null : loaded;
if (!gpuvm) log(`bench: gpuvm facade unavailable (${loaded.error}); only the peers run`);
else for (const [b, why] of Object.entries(gpuvm.unavailable)) log(`bench: ${b} engine unavailable: ${why}`);

// ---- environment -----------------------------------------------------------------
const cpuModel = (() => {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    /* not Linux */
  }
  return os.cpus()[0]?.model ?? 'unknown';
})();
const env = [
  `node ${process.version} (V8 ${process.versions.v8}), ${os.platform()} ${os.arch()}`,
  `${os.availableParallelism?.() ?? os.cpus().length} CPUs: ${cpuModel}`,
  `engines: ${gpuvm ? gpuvm.backends.join(', ') || 'none' : 'none'}; rounds ${options.rounds}, maxTime ${options.maxTime}s${quick ? ', quick' : ''}`,
  typeof globalThis.gc === 'function' ? null : 'warning: no --expose-gc (heap figures and gc between cases are off)',
].filter(Boolean);
(json ? log : out)(env.join('\n'));

// ---- report ----------------------------------------------------------------------
/** @type {Record<string, any>[]} */
let rows = [];
function report(row) {
  for (const k of ['suite', 'impl', 'n', 'nsPerOp']) {
    if (!(k in row)) throw new Error(`report: a row needs ${k}: ${JSON.stringify(row)}`);
  }
  // one decimal is plenty for figures that move by percents between runs
  const round = (x) => (typeof x === 'number' && !Number.isInteger(x) ? Math.round(x * 10) / 10 : x);
  row = Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Array.isArray(v) ? v.map(round) : round(v)]));
  if (json) out(JSON.stringify(row));
  else rows.push(row);
}

const fmt = (x, d = 1) => (x >= 100 ? x.toFixed(0) : x.toFixed(d));
const ratio = (x) => (Number.isFinite(x) ? `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}x` : '-');

function table(suite, rs) {
  const byN = new Map();
  for (const r of rs) {
    if (!byN.has(r.n)) byN.set(r.n, []);
    byN.get(r.n).push(r);
  }
  const hasBytes = rs.some((r) => r.bytesPerMapping !== undefined);
  const hasSum = rs.some((r) => r.checksum !== undefined);
  const hasNative = rs.some((r) => r.impl === 'native');
  const hasBtree = rs.some((r) => r.impl === 'sorted-btree');
  const head = ['impl', 'ns/op', 'ops/s'];
  if (hasNative) head.push('vs native');
  if (hasBtree) head.push('btree/impl');
  if (hasBytes) head.push('B/mapping', 'engine B', 'heap B');
  if (hasSum) head.push('checksum');
  const lines = [];
  for (const [n, group] of byN) {
    const native = group.find((r) => r.impl === 'native');
    const btree = group.find((r) => r.impl === 'sorted-btree');
    lines.push([`n=${n}`]);
    for (const r of group) {
      const cells = [r.impl, fmt(r.nsPerOp), r.nsPerOp > 0 ? `${fmt(1e3 / r.nsPerOp, 2)}M` : '-'];
      if (hasNative) cells.push(native ? ratio(r.nsPerOp / native.nsPerOp) : '-');
      if (hasBtree) cells.push(btree ? ratio(btree.nsPerOp / r.nsPerOp) : '-');
      if (hasBytes) {
        cells.push(
          r.bytesPerMapping === undefined ? '-' : fmt(r.bytesPerMapping),
          r.engineBytesPerMapping === undefined ? '-' : fmt(r.engineBytesPerMapping),
          r.heapBytesPerMapping === undefined ? '-' : fmt(r.heapBytesPerMapping),
        );
      }
      if (hasSum) cells.push(r.checksum ?? '');
      lines.push(cells);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...lines.filter((l) => l.length > 1).map((l) => String(l[i]).length)));
  const row = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  out(`\n## ${suite}`);
  out(row(head));
  for (const l of lines) out(l.length === 1 ? l[0] : row(l));
  // Per-round speed-ups of native over sorted-btree: interleaved rounds share
  // the machine's slow and fast phases, so their spread shows the noise.
  for (const [n, group] of byN) {
    const a = group.find((r) => r.impl === 'native' || r.impl === 'native-single');
    const b = group.find((r) => r.impl === 'sorted-btree');
    if (suite !== 'memory' && a && b && a.rounds && b.rounds && a.rounds.length === b.rounds.length && a.rounds.length > 1) {
      out(`n=${n}: ${a.impl} over sorted-btree per round: ${a.rounds.map((x, i) => ratio(b.rounds[i] / x)).join(', ')}`);
    }
  }
  if (!hasNative && !hasBtree) {
    /* nothing to explain */
  } else if (suite === 'memory') {
    out('(vs native and btree/impl compare build time; B/mapping = engine B + heap B)');
  } else {
    out('(vs native: time relative to native, lower is better; btree/impl: speed-up over the sorted-btree peer)');
  }
}

// ---- run -------------------------------------------------------------------------
let failed = false;
/** A wrong result that a suite reports and works around (the run exits 1). */
const error = (msg) => {
  failed = true;
  log(`bench: ERROR: ${msg}`);
};
const ctx = { report, options, gpuvm, log, error, measure, interleave };
for (const s of selected) {
  log(`bench: ${s.name}: ${s.description ?? ''}`);
  const t0 = Date.now();
  rows = [];
  try {
    await s.run(ctx);
  } catch (e) {
    failed = true;
    log(`bench: suite ${s.name} failed: ${/** @type {Error} */ (e).stack ?? e}`);
  }
  log(`bench: ${s.name} took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // A suite may print its own table: table(rows, out).
  if (!json && rows.length) {
    if (typeof s.table === 'function') s.table(rows, out);
    else table(s.name, rows);
  }
}
process.exitCode = failed ? 1 : 0;
