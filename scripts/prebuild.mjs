// The prebuilt N-API binary of this machine's platform, for the package:
// prebuilds/<platform>-<arch>/gpuvm.<libc>.node, made by prebuildify --napi.
// One N-API binary serves every Node version from 20 on, so one file per
// platform is all a release needs.
//
//   node scripts/prebuild.mjs          build it (npm's prepack runs this)
//   node scripts/prebuild.mjs --clean  remove what the last build added (postpack),
//                                      so a checkout keeps loading its own build/Release
//
// Another platform's binary: run `npm ci && npm run build:prebuild` in a checkout on
// that platform and copy its prebuilds/<platform>-<arch>/ directory into
// prebuilds/ of the checkout that runs `npm pack`; packing keeps it (only this
// machine's directory is rebuilt, and only a directory this script created is
// removed again).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const scratch = join(root, 'build', 'prebuild');
const record = join(scratch, 'created.json');
const target = join(root, 'prebuilds', `${process.platform}-${process.arch}`);

if (process.argv.includes('--clean')) {
  if (existsSync(record)) {
    const { created } = JSON.parse(readFileSync(record, 'utf8'));
    if (created) rmSync(created, { recursive: true, force: true });
    rmSync(record);
    // an empty prebuilds/ is noise in a checkout
    try {
      rmdirSync(join(root, 'prebuilds'));
    } catch {
      /* other platforms' binaries are still there */
    }
  }
  process.exit(0);
}

const existed = existsSync(target);
// node-gyp rebuilds (cleans) its working directory: a scratch directory whose
// binding.gyp includes the real one keeps build/ of the checkout (the WASM
// module, the local and the sanitizer builds) out of its way.
mkdirSync(scratch, { recursive: true });
writeFileSync(join(scratch, 'binding.gyp'), JSON.stringify({ includes: ['../../binding.gyp'] }) + '\n');
const env = { ...process.env };
// the headers of the running Node when they came with it (offline machines)
const prefix = resolve(dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
const prebuildify = createRequire(import.meta.url).resolve('prebuildify/bin.js');
const r = spawnSync(
  process.execPath,
  [prebuildify, '--napi', '--strip', '--tag-libc', '--name', 'gpuvm', '--cwd', scratch, '--out', root],
  { stdio: 'inherit', env },
);
if (r.status !== 0) {
  console.error(`gpuvm: prebuildify failed (exit ${r.status ?? r.signal}); no prebuilt binary for ${process.platform}-${process.arch}`);
  process.exit(1);
}
writeFileSync(record, JSON.stringify({ created: existed ? null : target }) + '\n');
console.log(`gpuvm: prebuilt ${target}`);
