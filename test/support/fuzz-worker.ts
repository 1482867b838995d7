/**
 * Worker-thread entry of the fuzzer (bundled by test/fuzz.test.ts with
 * esbuild; gpuvm itself is loaded from the built dist/index.js): runs
 * digestRun for the seed it is given and posts the digest back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { digestRun } from './fuzz-run.js';
import type { Lib } from './fuzz-world.js';

const { dist, backend, seed, runs, max } = workerData as { dist: string; backend: 'native' | 'wasm'; seed: number; runs: number; max: number };
const lib = (await import(dist)) as Lib;
parentPort!.postMessage(digestRun(lib, backend, seed, runs, max));
