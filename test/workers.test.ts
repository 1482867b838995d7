// Page tables and VMs are per environment: worker threads and package copies
// that load the same addon do not share (or free) each other's state.
import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { cpSync, linkSync, mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { backends } from './support/engines.js';
import { Bo, GpuVm, PageTable } from '../src/index.js';
// @ts-expect-error plain JS helper shared with the workers
import { runStream } from './support/worker-stream.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = pathToFileURL(join(root, 'dist', 'index.js')).href;
const workerFile = new URL('./support/worker-run.mjs', import.meta.url);

function withoutNativePath(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.GPUVM_NATIVE_PATH; // each copy finds its own build/ (the hard link)
  return env;
}

function runWorker(streams: { backend: string; seed: number }[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerFile, { workerData: { dist, streams, backends } });
    let result: string[] | null = null;
    w.on('message', (m: string[]) => (result = m));
    w.on('error', reject);
    w.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`worker exited with ${code}`))));
  });
}

describe.each(backends)('%s engine', (backend) => {
  it('a worker that imports gpuvm leaves the main thread page tables and VMs alone, also after it exits', async () => {
    const pt = new PageTable({ backend });
    pt.bind(0x200000, 0x1000, [[0x5000, 0x1000]]);
    const vm = new GpuVm<number>({ start: 0, range: 2 ** 32, backend });
    const bo = new Bo({ size: 0x10000 });
    vm.bind(0x4000, 0x2000, bo, 0x1000);
    await runWorker([]);
    expect(pt.translate(0x200000)?.pa).toBe(0x5000);
    expect(pt.stats).toEqual({ tables: 4, entries: 4 });
    pt.bind(0x400000, 0x2000, [[0x9000, 0x2000]]);
    expect(pt.translate(0x401000)?.pa).toBe(0xa000);
    expect(new PageTable({ backend }).translate(0x200000)).toBeNull();
    expect([...vm.mappings()].map((m) => [m.addr, m.range, m.offset])).toEqual([[0x4000, 0x2000, 0x1000]]);
    pt.destroy();
    vm.destroy();
  });

  it('four workers running the same seeded stream at once give the main thread digest', async () => {
    const gpuvm = await import(dist);
    const seeds = [1, 2, 3, 4];
    const main = seeds.map((seed) => runStream(gpuvm, backend, seed) as string);
    expect(new Set(main).size).toBe(4); // the seeds really differ
    const digests = await Promise.all(seeds.map(() => runWorker(seeds.map((seed) => ({ backend, seed })))));
    for (const d of digests) expect(d).toEqual(main);
  });
});

describe('package copies', () => {
  // Through two paths each copy gets its own addon state; through one path
  // (GPUVM_NATIVE_PATH, or a bundled copy next to an installed one) both get
  // the same exports object and share its transfer area.
  it.each([
    ['two paths', false],
    ['one path, one transfer area', true],
  ])('two copies loading one gpuvm.node through %s do not disturb each other', (_name, onePath) => {
    const tmp = mkdtempSync(join(tmpdir(), 'gpuvm-copy-'));
    try {
      const copy = join(tmp, 'node_modules', 'gpuvm');
      mkdirSync(join(copy, 'build', 'Release'), { recursive: true });
      cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
      cpSync(join(root, 'package.json'), join(copy, 'package.json'));
      const addon = join(root, 'build', 'Release', 'gpuvm.node');
      if (existsSync(addon)) linkSync(addon, join(copy, 'build', 'Release', 'gpuvm.node'));
      linkSync(join(root, 'build', 'gpuvm.wasm'), join(copy, 'build', 'gpuvm.wasm'));
      if (onePath && !existsSync(addon)) return; // (no native engine: nothing is shared)
      const env = withoutNativePath();
      if (onePath) env.GPUVM_NATIVE_PATH = addon;
      const out = execFileSync(
        process.execPath,
        [
          join(root, 'test', 'support', 'worker-copies.mjs'),
          dist,
          pathToFileURL(join(copy, 'dist', 'index.js')).href,
          JSON.stringify(backends),
        ],
        { encoding: 'utf8', env },
      );
      const res = JSON.parse(out);
      for (const b of backends) {
        const r = res[b];
        expect(r.same).toBe(false); // really two copies of the facade
        expect(r.a).toEqual(Array.from({ length: 64 }, (_, i) => 0x100000 + i * 0x1000));
        expect(r.b).toEqual(Array.from({ length: 64 }, (_, i) => 0x900000 + i * 0x2000 + 0x1000));
        expect(r.sa.entries).toBe(64 - 8 + r.sa.tables - 1);
        expect(r.sb.entries).toBe(128 + r.sb.tables - 1);
        const ma = [[0x1000, 0x1000, 0]];
        const mb = [[0x1000, 0x1000, 0]];
        for (let i = 1; i <= 16; i++) {
          ma.push([0x10000 * i, 0x3000, 0x1000 * i]);
          mb.push([0x20000 * i, 0x1000, 0x2000 * i], [0x20000 * i + 0x2000, 0x3000, 0x2000 * i + 0x2000]);
        }
        expect(r.ma).toEqual(ma.sort((x, y) => x[0] - y[0]));
        expect(r.mb).toEqual(mb.sort((x, y) => x[0] - y[0]));
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
