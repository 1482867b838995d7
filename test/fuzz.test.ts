/**
 * Model-based fuzzer of the public API (fast-check commands, with shrinking):
 * GpuVm, VmBo, GpuVa, OpList, bindArray and PageTable, on two VMs (number
 * mode; bigint mode with a kernel-reserved node) and two page tables, with
 * hostile arguments (NaN, negatives, fractions, Infinity, 2^53+1, huge and
 * negative bigints, strings, forged / foreign / destroyed objects, getters
 * and callbacks that re-enter gpuvm or throw). Every command runs on every
 * engine at once; after each one: success or GpuVmError/TypeError/RangeError,
 * an unchanged state after a failure, the engines agree, the model
 * (test/support/model.ts, extended in fuzz-model.ts) agrees. Commands and
 * checks: test/support/fuzz-*.ts.
 *
 * Runs:
 * - `npm test`: a bounded run (a few seconds) with a fixed seed;
 *   GPUVM_FUZZ_SEED=<n> picks another one. A failure prints the seed, the
 *   path and the shrunk command sequence (replay it with that seed).
 * - GPUVM_FUZZ_LONG=<minutes>: loops with new seeds until the time is up
 *   (each seed is printed before it runs). Without the build step:
 *   `GPUVM_FUZZ_LONG=30 nice -n 19 npx vitest run --config test/support/fuzz-vitest.config.ts`.
 *   GPUVM_FUZZ_LOG=<file> also appends each seed and finding to that file as
 *   it happens (vitest prints test output only at the end, and an engine that
 *   crashes the process would take the seed with it).
 * - GPUVM_BACKEND=native or wasm fuzzes that engine alone (one long run per
 *   engine); unset or auto, every engine that loads, side by side.
 */
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as gpuvm from '../src/index.js';
import { backends as loaded } from './support/engines.js';
import { digestRun, fuzzProperty } from './support/fuzz-run.js';

const here = dirname(fileURLToPath(import.meta.url));
const SEED = process.env.GPUVM_FUZZ_SEED ? Number(process.env.GPUVM_FUZZ_SEED) : 0x6a7e_2025;
const LONG_MIN = Number(process.env.GPUVM_FUZZ_LONG ?? 0);
const LOG = process.env.GPUVM_FUZZ_LOG;
const log = (s: string) => {
  console.log(s);
  if (LOG) appendFileSync(LOG, `${new Date().toISOString()} ${s}\n`);
};
const RUNS = 150;
const MAX_COMMANDS = 40;
const only = (process.env.GPUVM_BACKEND ?? '').trim().toLowerCase();
const backends = only === 'native' || only === 'wasm' ? loaded.filter((b) => b === only) : loaded;

function check(name: string, engines: readonly ('native' | 'wasm')[], seed: number, numRuns: number): void {
  const r = fc.check(fuzzProperty(gpuvm, engines, MAX_COMMANDS), { seed, numRuns, verbose: 1 });
  if (r.failed) {
    throw new Error(`fuzz ${name} failed (GPUVM_FUZZ_SEED=${seed}, path ${r.counterexamplePath}):\n${fc.defaultReportMessage(r)}\n${r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance)}`);
  }
}

describe('fuzz: the public API against the model, every engine at once', () => {
  it('fuzzes at least one engine', () => {
    expect(backends.length).toBeGreaterThan(0);
  });

  it(`${RUNS} command sequences on ${backends.join(' + ')} (seed ${SEED})`, () => {
    check('bounded', backends, SEED, RUNS);
  });

  it.skipIf(!(LONG_MIN > 0))(`long run: ${LONG_MIN} minutes of new seeds`, () => {
    const until = Date.now() + LONG_MIN * 60_000;
    let seed = SEED;
    let n = 0;
    // every finding is printed as it happens and the run goes on: one run reports them all
    const found: string[] = [];
    while (Date.now() < until) {
      // 32-bit LCG step (Math.imul: a plain product would lose the low bits)
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      log(`fuzz long run: seed ${seed}`);
      try {
        check('long', backends, seed, RUNS);
      } catch (e) {
        found.push((e as Error).message);
        log(`fuzz long run: FINDING\n${(e as Error).message}`);
      }
      n++;
    }
    log(`fuzz long run on ${backends.join(' + ')}: ${n} seeds x ${RUNS} sequences, ${found.length} finding(s)`);
    expect(found).toEqual([]);
  }, (LONG_MIN + 2) * 60_000);
});

describe('fuzz: worker threads give the main thread results', () => {
  it.each(backends)('%s: 3 workers at once, the same digests', async (backend) => {
    const esbuild = await import('esbuild');
    const dir = mkdtempSync(join(tmpdir(), 'gpuvm-fuzz-'));
    const stub = join(dir, 'vitest-stub.mjs');
    // state.ts imports expect from vitest for its test helpers; the snapshots never call it
    writeFileSync(stub, 'export const expect = () => { throw new Error("no expect in a worker"); };\n');
    const out = join(dir, 'fuzz-worker.mjs');
    await esbuild.build({
      entryPoints: [join(here, 'support', 'fuzz-worker.ts')],
      bundle: true,
      format: 'esm',
      platform: 'node',
      outfile: out,
      alias: { vitest: stub },
      nodePaths: [join(here, '..', 'node_modules')],
      logLevel: 'silent',
    });
    const dist = pathToFileURL(join(here, '..', 'dist', 'index.js')).href;
    const seeds = [SEED, SEED + 1, SEED + 2];
    const runs = 6;
    const digests = await Promise.all(
      seeds.map(
        (seed) =>
          new Promise<string>((resolve, reject) => {
            const w = new Worker(out, { workerData: { dist, backend, seed, runs, max: MAX_COMMANDS } });
            w.once('message', resolve);
            w.once('error', reject);
            w.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
          }),
      ),
    );
    const main = seeds.map((seed) => digestRun(gpuvm, backend, seed, runs, MAX_COMMANDS));
    expect(digests).toEqual(main);
  });
});
