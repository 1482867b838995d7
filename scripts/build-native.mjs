// The install step, and `npm run build:native`.
//
// Installing: a prebuilt binary that fits this system (prebuilds/, shipped in
// the package) is used as it is, nothing is compiled. Without one, the C++
// engine is compiled with node-gyp; if that fails the install still succeeds,
// says so in one line, and the WASM engine takes over (node-gyp's output goes
// to build/gpuvm-build.log, which the engine's reason points at).
//
// Compiling is forced by `npm run build:native` (--from-source),
// `npm rebuild gpuvm --build-from-source` (npm_config_build_from_source) or
// GPUVM_BUILD_FROM_SOURCE=1; a forced build shows node-gyp's output and a
// failure is an error. GPUVM_SKIP_NATIVE=1 compiles nothing.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const say = (line) => console.warn(`gpuvm: ${line}`);
const forced =
  process.argv.includes('--from-source') ||
  process.env.npm_config_build_from_source === 'true' ||
  process.env.GPUVM_BUILD_FROM_SOURCE === '1';
const where = `${process.platform}-${process.arch}`;

if (!forced && process.env.GPUVM_SKIP_NATIVE === '1') {
  if (!fitsPrebuild()) say('GPUVM_SKIP_NATIVE=1 and no prebuilt binary for ' + where + ': the WASM engine will be used');
  process.exit(0);
}
if (!forced && fitsPrebuild()) process.exit(0);

const logFile = join(root, 'build', 'gpuvm-build.log');
const result = compile();
if (result.ok) process.exit(0);
if (forced) {
  say(`compiling the native engine failed (${result.why})`);
  process.exit(1);
}
say(`no prebuilt binary for ${where} and compiling failed (${result.why}, see ${logFile}); the WASM engine will be used`);
process.exit(0);

/** Whether a shipped prebuilt binary matches this system and loads (in a child, as node-gyp-build checks). */
function fitsPrebuild() {
  let file;
  try {
    // node-gyp-build: build/Release first, then prebuilds/ by its tag rules.
    // Only a prebuild counts here; a stale local build must not stop a build.
    process.env.PREBUILDS_ONLY = '1';
    file = require('node-gyp-build').path(root);
  } catch {
    return false;
  } finally {
    delete process.env.PREBUILDS_ONLY;
  }
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { stdio: 'ignore' });
  return r.status === 0;
}

/** node-gyp configure + build; its output is shown when forced, logged otherwise. */
function compile() {
  const gyp = nodeGyp();
  if (gyp === null) return { ok: false, why: 'node-gyp not found' };
  // Build against the headers of the running Node when they are installed with
  // it (as on Debian's nodejs): node-gyp would otherwise try to download them,
  // which fails offline.
  const extra = [];
  const prefix = resolve(dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
    extra.push(`--nodedir=${prefix}`);
  }
  const output = [];
  // configure + build, not rebuild: rebuild's clean step would delete build/gpuvm.wasm
  // and the sanitizer build of a checkout
  for (const step of ['configure', 'build']) {
    const r = spawnSync(gyp.cmd, [...gyp.args, step, ...extra], {
      cwd: root,
      stdio: forced ? 'inherit' : 'pipe',
      encoding: 'utf8',
      shell: gyp.shell,
    });
    output.push(r.stdout ?? '', r.stderr ?? '');
    if (r.status !== 0) {
      if (!forced) {
        mkdirSync(dirname(logFile), { recursive: true });
        writeFileSync(logFile, output.join(''));
      }
      const text = output.join('');
      const hint = /not found|No such file|ENOENT|no compiler|command not found|Permission denied/i.test(text)
        ? 'no working C++ toolchain?'
        : `node-gyp ${step} exited with ${r.status ?? r.signal}`;
      return { ok: false, why: hint };
    }
  }
  return { ok: true };
}

/** npm's own node-gyp (npm passes its path to scripts), a local one, or the one on PATH. */
function nodeGyp() {
  const npmGyp = process.env.npm_config_node_gyp;
  if (npmGyp && existsSync(npmGyp)) return { cmd: process.execPath, args: [npmGyp], shell: false };
  try {
    return { cmd: process.execPath, args: [require.resolve('node-gyp/bin/node-gyp.js')], shell: false };
  } catch {
    /* not installed here */
  }
  const probe = spawnSync('node-gyp', ['--version'], { stdio: 'ignore', shell: true });
  return probe.status === 0 ? { cmd: 'node-gyp', args: [], shell: true } : null;
}
