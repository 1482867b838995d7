/**
 * Shared benchmark machinery: timing with benchmark.js, interleaved rounds,
 * the gpuvm facade loader, and small helpers the suites share.
 *
 * Timing model: every timed function does a batch of work (e.g. 1000 binds,
 * or a whole 1e5-request stream) and reports how many operations it did;
 * benchmark.js calibrates how many calls make one sample and collects
 * samples; we take the median sample. Candidates are interleaved: round 1 runs
 * A, B, C, round 2 runs A, B, C again, ..., and the reported figure is the
 * median over rounds, so a slow phase of the machine (2 cores, shared with
 * compilers) hits every candidate rather than one.
 */
import Benchmark from 'benchmark';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { XorShift64Star } from './workload.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** @param {number[]} xs */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n & 1 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export function gc() {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
  }
}

/**
 * A fresh copy of a function that uses no closure variables: its own
 * feedback in V8, so that a timing loop used for several candidates stays
 * monomorphic for each.
 * @template {Function} F
 * @param {F} fn
 * @returns {F}
 */
export function fresh(fn) {
  return /** @type {F} */ (new Function(`return (${fn.toString()});`)());
}

/**
 * Times fn with benchmark.js. fn does `opsPerCall` operations per call.
 * @param {() => unknown} fn
 * @param {{ opsPerCall: number, maxTime?: number, minSamples?: number }} o
 * @returns {{ nsPerOp: number, rme: number, samples: number }}
 */
export function measure(fn, { opsPerCall, maxTime = 0.5, minSamples = 5 }) {
  const bench = new Benchmark({ fn, maxTime, minSamples, async: false });
  bench.run({ async: false });
  if (bench.error) throw bench.error;
  const sample = bench.stats.sample;
  return {
    nsPerOp: (median(sample) * 1e9) / opsPerCall,
    rme: bench.stats.rme,
    samples: sample.length,
  };
}

/**
 * Runs candidates interleaved over `rounds` rounds.
 * @param {{ impl: string, fn: () => unknown, opsPerCall: number }[]} cases
 * @param {{ rounds: number, maxTime?: number, minSamples?: number }} o
 * @returns {Map<string, { nsPerOp: number, rounds: number[], rme: number }>}
 */
export function interleave(cases, { rounds, maxTime, minSamples }) {
  /** @type {Map<string, { rounds: number[], rmes: number[] }>} */
  const acc = new Map(cases.map((c) => [c.impl, { rounds: [], rmes: [] }]));
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      gc();
      const m = measure(c.fn, { opsPerCall: c.opsPerCall, maxTime, minSamples });
      const a = /** @type {{ rounds: number[], rmes: number[] }} */ (acc.get(c.impl));
      a.rounds.push(m.nsPerOp);
      a.rmes.push(m.rme);
    }
  }
  const out = new Map();
  for (const [impl, a] of acc) out.set(impl, { nsPerOp: median(a.rounds), rounds: a.rounds, rme: median(a.rmes) });
  return out;
}

/** Deterministic permutation of 0..n-1 (Fisher-Yates on xorshift64*). */
export function permutation(n, seed = 7) {
  const rng = new XorShift64Star(seed);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.rnd(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/**
 * Whether dist/ is missing or older than src/ (src/ only exists in a checkout).
 * @returns {'missing' | 'stale' | 'ok'}
 */
export function distState() {
  const dist = join(ROOT, 'dist', 'index.js');
  if (!existsSync(dist)) return 'missing';
  const src = join(ROOT, 'src');
  if (!existsSync(src)) return 'ok';
  const built = statSync(dist).mtimeMs;
  /** @param {string} dir */
  const newer = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory() ? newer(p) : e.name.endsWith('.ts') && statSync(p).mtimeMs > built) return true;
    }
    return false;
  };
  return newer(src) ? 'stale' : 'ok';
}

/** Runs `npm run build:ts`, its output on stderr. Returns whether it succeeded. */
export function buildDist() {
  const r = spawnSync('npm', ['run', 'build:ts'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  return r.status === 0;
}

/**
 * @typedef {object} Gpuvm
 * @property {any} GpuVm
 * @property {any} Bo
 * @property {('native' | 'wasm')[]} backends  engines that load
 * @property {Record<string, string>} unavailable  engine -> why it does not load
 */

/**
 * Imports the facade from dist/ and finds which of `engines` load.
 * @param {("native" | "wasm")[]} [engines]
 * @returns {Promise<Gpuvm | { error: string }>}
 */
export async function loadGpuvm(engines = ['native', 'wasm']) {
  let mod;
  try {
    mod = await import(pathToFileURL(join(ROOT, 'dist', 'index.js')).href);
  } catch (e) {
    return { error: `cannot import dist/index.js: ${/** @type {Error} */ (e).message}` };
  }
  const { GpuVm, Bo } = mod;
  /** @type {('native' | 'wasm')[]} */
  const backends = [];
  /** @type {Record<string, string>} */
  const unavailable = {};
  for (const backend of /** @type {('native' | 'wasm')[]} */ (engines)) {
    try {
      const vm = new GpuVm({ start: 0, range: 2 ** 47, backend });
      vm.destroy();
      backends.push(backend);
    } catch (e) {
      unavailable[backend] = /** @type {Error} */ (e).message;
    }
  }
  return { GpuVm, Bo, backends, unavailable };
}

/** BOs 1..8 as facade Bo objects (index 0 = no BO), and Bo -> workload id. */
export function facadeBos(Bo, count = 8) {
  const bos = [null];
  const ids = new Map();
  for (let i = 1; i <= count; i++) {
    const bo = new Bo({ size: 2 ** 40, name: `bench-bo${i}` });
    bos.push(bo);
    ids.set(bo, i);
  }
  return { bos, ids };
}

/** A facade VM's mappings as { addr, range, bo (workload id), offset }. */
export function* facadeState(vm, ids) {
  for (const va of vm.mappings()) {
    yield { addr: va.addr, range: va.range, bo: va.bo === null ? 0 : ids.get(va.bo), offset: va.offset };
  }
}
