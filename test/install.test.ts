/**
 * The package as a user installs it: a tarball packed from this checkout (the
 * files `npm pack` would ship, with this build's native engine as the
 * prebuilt binary for this platform), installed into fresh apps.
 *
 * - with the prebuild, `--ignore-scripts` runs native; an install with scripts
 *   and no compiler compiles nothing and still runs native;
 * - without one and without a compiler, the install succeeds, says so in one
 *   line, runs WASM and tells why; an explicit build from source fails loudly;
 * - `node-gyp clean` costs nothing (the WASM module is embedded);
 * - an app bundled with esbuild runs, with gpuvm external (native) and inlined
 *   (WASM, quietly, the reason in backend.reason);
 * - the ES-module and CommonJS entries share one implementation, and the
 *   types resolve for both.
 *
 * A run pinned to one native binary by GPUVM_NATIVE_PATH (the sanitizer run)
 * skips this file: it tests the package's own binaries.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeBuilt = existsSync(join(root, 'build', 'Release', 'gpuvm.node'));
const platformDir = `${process.platform}-${process.arch}`;
// the name prebuildify --napi --tag-libc gives on glibc Linux; untagged elsewhere
const prebuildName = process.platform === 'linux' ? 'gpuvm.glibc.node' : 'gpuvm.node';

let work = '';
let withPrebuild = ''; // tarball with prebuilds/<platform>/
let withoutPrebuild = ''; // the same package without any prebuild
let noCompiler: NodeJS.ProcessEnv = {};

/** This process's environment without anything that would steer the children's engine choice. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('VITEST') || k.startsWith('GPUVM_') || k === 'NODE_DEBUG' || k.startsWith('npm_config_build_from')) {
      delete env[k];
    }
  }
  return env;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

/** stdout of a command that must succeed */
function mustRun(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  const r = run(cmd, args, cwd, env);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** `npm pack` of the staged package into its own directory; the tarball's path */
function pack(stage: string, into: string): string {
  mkdirSync(into);
  return join(into, mustRun('npm', ['pack', '--ignore-scripts', '--pack-destination', into], stage).trim().split('\n').pop()!);
}

/** A fresh app with the tarball installed. */
function app(name: string, tarball: string, flags: string[], env?: NodeJS.ProcessEnv): { dir: string; out: string } {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  const r = run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', ...flags], dir, env);
  if (r.status !== 0) throw new Error(`npm install ${tarball} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { dir, out: r.stdout + r.stderr };
}

// prints what the app sees: engine, reason, and a small session's result
const probe = `
import { GpuVm, Bo, backend } from 'gpuvm';
const vm = new GpuVm({ start: 0, range: 0x100000 });
vm.bind(0x1000, 0x3000, new Bo(), 0);
vm.unbind(0x2000, 0x1000);
const maps = [...vm.mappings()].map((v) => [v.addr, v.range, v.offset]);
console.log(JSON.stringify({ name: backend.name, reason: backend.reason, maps }));
`;
const probeMaps = [[0x1000, 0x1000, 0], [0x3000, 0x1000, 0x2000]];

function runProbe(dir: string, file = 'probe.mjs', env?: NodeJS.ProcessEnv) {
  if (!existsSync(join(dir, file))) writeFileSync(join(dir, file), probe);
  const r = run(process.execPath, [file], dir, env);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as { name: string; reason: string | null; maps: number[][] };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile());
}

describe.skipIf(process.env.GPUVM_NATIVE_PATH !== undefined)('the packed package, installed', () => {
  beforeAll(() => {
    work = realpathSync(mkdtempSync(join(tmpdir(), 'gpuvm-install-')));
    // what `npm pack` ships from this checkout, minus any prebuilds lying here
    const listing = JSON.parse(mustRun('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], root));
    const stage = join(work, 'stage');
    for (const { path } of listing[0].files as { path: string }[]) {
      if (path.startsWith('prebuilds/')) continue;
      mkdirSync(dirname(join(stage, path)), { recursive: true });
      copyFileSync(join(root, path), join(stage, path));
    }
    withoutPrebuild = pack(stage, join(work, 'plain'));
    if (nativeBuilt) {
      mkdirSync(join(stage, 'prebuilds', platformDir), { recursive: true });
      copyFileSync(join(root, 'build', 'Release', 'gpuvm.node'), join(stage, 'prebuilds', platformDir, prebuildName));
      withPrebuild = pack(stage, join(work, 'pre'));
    }
    // compilers and make that fail, first on PATH
    const bin = join(work, 'bin');
    mkdirSync(bin);
    for (const tool of ['cc', 'gcc', 'c++', 'g++', 'clang', 'clang++', 'make']) {
      writeFileSync(join(bin, tool), '#!/bin/sh\necho "no compiler here" >&2\nexit 1\n');
      chmodSync(join(bin, tool), 0o755);
    }
    noCompiler = { ...cleanEnv(), PATH: `${bin}:${process.env.PATH}`, CC: 'false', CXX: 'false' };
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships the license, docs, examples and sources, and nothing that points outside the package', () => {
    const dir = join(work, 'unpacked');
    mkdirSync(dir);
    execFileSync('tar', ['-xzf', withPrebuild || withoutPrebuild, '-C', dir]);
    const pkg = join(dir, 'package');
    for (const f of ['LICENSE', 'CHANGELOG.md', 'README.md', 'docs/replay.md', 'examples/vm-bind.mjs', 'examples/split-merge.replay', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'binding.gyp', 'native/addon.cc', 'scripts/build-native.mjs']) {
      expect(existsSync(join(pkg, f)), f).toBe(true);
    }
    for (const f of ['assembly', 'test', 'bench', 'build', 'src', 'tsup.config.ts']) expect(existsSync(join(pkg, f)), f).toBe(false);
    for (const f of filesUnder(pkg)) {
      const text = readFileSync(f, 'latin1');
      expect(text.includes('../shared'), f).toBe(false);
      expect(text.includes('SPEC'), f).toBe(false);
    }
    // the examples' replay file gives its expected output
    const out = mustRun(process.execPath, [join(root, 'bin', 'gpuvm.js'), 'replay', join(pkg, 'examples', 'split-merge.replay')], root);
    expect(out).toBe(readFileSync(join(pkg, 'examples', 'split-merge.expected'), 'utf8'));
  });

  describe.skipIf(!nativeBuilt)('with a prebuilt binary for this platform', () => {
    let dir = '';
    beforeAll(() => {
      dir = app('prebuilt', withPrebuild, ['--ignore-scripts']).dir;
    }, 120_000);

    it('--ignore-scripts: runs on the native engine from prebuilds/', () => {
      expect(runProbe(dir)).toEqual({ name: 'native', reason: null, maps: probeMaps });
      const r = run(process.execPath, ['probe.mjs'], dir, { ...cleanEnv(), NODE_DEBUG: 'gpuvm' });
      expect(r.stderr).toContain(`loading the prebuilt ${join(dir, 'node_modules', 'gpuvm', 'prebuilds', platformDir, prebuildName)}`);
      expect(existsSync(join(dir, 'node_modules', 'gpuvm', 'build'))).toBe(false);
    });

    it('an install with scripts and no compiler compiles nothing and still runs native', () => {
      const { dir: d, out } = app('prebuilt-scripts', withPrebuild, ['--foreground-scripts'], noCompiler);
      expect(out).not.toMatch(/^gpuvm:/m);
      expect(out).not.toContain('gyp');
      expect(existsSync(join(d, 'node_modules', 'gpuvm', 'build'))).toBe(false);
      expect(runProbe(d, 'probe.mjs', noCompiler).name).toBe('native');
    });

    it('node-gyp clean leaves both engines working', () => {
      const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
      mustRun(process.execPath, [gyp, 'clean'], join(dir, 'node_modules', 'gpuvm'));
      expect(runProbe(dir).name).toBe('native');
      expect(runProbe(dir, 'probe.mjs', { ...cleanEnv(), GPUVM_BACKEND: 'wasm' }).maps).toEqual(probeMaps);
    });

    it('esbuild: gpuvm external runs native, inlined runs WASM quietly and says why', async () => {
      const esbuild = await import('esbuild');
      writeFileSync(join(dir, 'probe.mjs'), probe);
      const out = join(work, 'bundles'); // away from node_modules: an inlined bundle must stand alone
      mkdirSync(out);
      const bundle = (outfile: string, format: 'esm' | 'cjs', external: string[]) =>
        esbuild.build({ entryPoints: [join(dir, 'probe.mjs')], bundle: true, platform: 'node', format, outfile, external, logLevel: 'silent' });
      await bundle(join(dir, 'external.mjs'), 'esm', ['gpuvm']);
      expect(runProbe(dir, 'external.mjs')).toEqual({ name: 'native', reason: null, maps: probeMaps });
      for (const [file, format] of [['inlined.mjs', 'esm'], ['inlined.cjs', 'cjs']] as const) {
        await bundle(join(out, file), format, []);
        const got = runProbe(out, file); // runProbe checks that stderr stays empty
        expect(got.name).toBe('wasm');
        expect(got.maps).toEqual(probeMaps);
        expect(got.reason).toContain('inlined into a bundle');
        expect(got.reason).toContain('--external:gpuvm');
      }
    });

    it('import and require in one process share one implementation; types resolve for both', () => {
      writeFileSync(
        join(dir, 'both.mjs'),
        `import * as esm from 'gpuvm';
import { createRequire } from 'node:module';
const cjs = createRequire(import.meta.url)('gpuvm');
const vm = new esm.GpuVm({ start: 0, range: 0x100000 });
vm.bind(0, 0x1000, new cjs.Bo(), 0);
let same = false;
try { new cjs.GpuVm({ start: 0, range: 0 }); } catch (e) { same = e instanceof esm.GpuVmError; }
console.log(JSON.stringify({ classes: esm.GpuVm === cjs.GpuVm && esm.Bo === cjs.Bo, errors: same, count: vm.count }));
`,
      );
      expect(JSON.parse(mustRun(process.execPath, ['both.mjs'], dir))).toEqual({ classes: true, errors: true, count: 1 });
      // a module and a CommonJS file type-checked against the installed package
      // (a `@ts-expect-error` that finds no error is itself an error: the types are real, not any)
      writeFileSync(
        join(dir, 'esm.mts'),
        "import { GpuVm, GpuVmError, type GpuVmOptions } from 'gpuvm';\n" +
          'const o = { start: 0, range: 0x1000 } satisfies GpuVmOptions;\n' +
          'export const vm = new GpuVm(o);\n' +
          '// @ts-expect-error no such method\n' +
          'vm.notAMethod();\n' +
          'export const isError = (e: unknown): e is GpuVmError => e instanceof GpuVmError;\n',
      );
      writeFileSync(
        join(dir, 'cjs.cts'),
        "import gpuvm = require('gpuvm');\n" +
          'export const vm = new gpuvm.GpuVm({ start: 0, range: 0x1000 });\n' +
          '// @ts-expect-error no such method\n' +
          'vm.notAMethod();\n',
      );
      const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
      const args = ['--noEmit', '--strict', '--module', 'node16', '--moduleResolution', 'node16', '--types', 'node', '--typeRoots', join(root, 'node_modules', '@types'), 'esm.mts', 'cjs.cts'];
      const r = run(process.execPath, [tsc, ...args], dir);
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  });

  describe('without a prebuild for this platform and without a compiler', () => {
    let dir = '';
    let out = '';
    beforeAll(() => {
      ({ dir, out } = app('nocc', withoutPrebuild, ['--foreground-scripts'], noCompiler));
    }, 120_000);

    it('installs, says in one line that it falls back to WASM, and why', () => {
      const lines = out.split('\n').filter((l) => l.startsWith('gpuvm:'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/no prebuilt binary for \S+ and compiling failed .*; the WASM engine will be used/);
      expect(out).not.toContain('gyp ERR'); // node-gyp's own output went to the log, not the terminal
      expect(existsSync(join(dir, 'node_modules', 'gpuvm', 'build', 'gpuvm-build.log'))).toBe(true);
    });

    it('runs on WASM; backend.reason says what was tried and how to fix it', () => {
      const got = runProbe(dir);
      expect(got.name).toBe('wasm');
      expect(got.maps).toEqual(probeMaps);
      const pkg = join(dir, 'node_modules', 'gpuvm');
      expect(got.reason).toContain(`no prebuilt binary for ${platformDir}`);
      expect(got.reason).toContain(`${join(pkg, 'build', 'Release', 'gpuvm.node')} does not exist`);
      expect(got.reason).toContain('npm rebuild gpuvm --build-from-source');
      expect(got.reason).toContain(join(pkg, 'build', 'gpuvm-build.log'));
      // nothing that only works in a checkout of gpuvm
      expect(got.reason).not.toContain('npm run');
    });

    it('an explicit build from source that fails is an error, not a silent success', () => {
      const r = run('npm', ['rebuild', 'gpuvm', '--build-from-source', '--foreground-scripts'], dir, noCompiler);
      expect(r.status).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/gpuvm: compiling the native engine failed/);
    });

    it('node-gyp clean leaves the WASM engine working', () => {
      const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
      mustRun(process.execPath, [gyp, 'clean'], join(dir, 'node_modules', 'gpuvm'));
      const got = runProbe(dir);
      expect(got.name).toBe('wasm');
      expect(got.maps).toEqual(probeMaps);
    });
  });
});

// the examples run against this checkout's build (the package imports itself by name)
describe('examples', () => {
  it.each(['vm-bind.mjs', 'page-table.mjs', 'svm-fault.mjs'])('%s runs', (file) => {
    const r = run(process.execPath, [join(root, 'examples', file)], root);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(0);
  });
});
