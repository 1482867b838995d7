// The native engine built with AddressSanitizer and UndefinedBehaviorSanitizer,
// for `npm run test:sanitize`. It goes to build/sanitize/build/Release/gpuvm.node
// and never touches build/Release/gpuvm.node, which every other run loads.
// Unlike the install step, a failed build here is an error.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const sanitizeDir = join(root, 'build', 'sanitize');
export const sanitizedAddon = join(sanitizeDir, 'build', 'Release', 'gpuvm.node');

export function buildSanitized() {
  // node-gyp only builds the binding.gyp of its working directory, into its
  // build/: a one-line binding.gyp here includes the real one (gyp resolves
  // the included file's paths relative to it) and keeps the output apart.
  mkdirSync(sanitizeDir, { recursive: true });
  writeFileSync(join(sanitizeDir, 'binding.gyp'), JSON.stringify({ includes: ['../../binding.gyp'] }) + '\n');
  const gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  // same offline header lookup as scripts/build-native.mjs
  const extra = [];
  const prefix = resolve(dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
    extra.push(`--nodedir=${prefix}`);
  }
  const run = (args) => spawnSync(process.execPath, [gyp, ...args], { cwd: sanitizeDir, stdio: 'inherit' });
  // gyp's own arguments come after `--`
  let r = run(['configure', ...extra, '--', '-Dgpuvm_sanitize=1']);
  if (r.status === 0) r = run(['build', ...extra]);
  if (r.status !== 0 || !existsSync(sanitizedAddon)) {
    throw new Error(`the sanitizer build of the native engine failed (node-gyp exit ${r.status})`);
  }
  return sanitizedAddon;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    console.log(buildSanitized());
  } catch (err) {
    console.error(`gpuvm: ${err.message}`);
    process.exit(1);
  }
}
