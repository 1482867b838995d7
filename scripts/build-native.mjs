// Install step: build the C++ engine when a toolchain works; otherwise leave
// the WASM engine to take over. A failed native build never fails the install.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

if (process.env.GPUVM_SKIP_NATIVE === '1') {
  console.log('gpuvm: GPUVM_SKIP_NATIVE=1, native engine not built; the WASM engine will be used');
  process.exit(0);
}
const require = createRequire(import.meta.url);
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  gyp = null;
}
// Build against the headers of the running Node when they are installed with
// it (as on Debian's nodejs): node-gyp would otherwise try to download them,
// which fails offline.
const extra = [];
const prefix = resolve(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  extra.push(`--nodedir=${prefix}`);
}
// configure + build, not rebuild: rebuild's clean step would delete build/gpuvm.wasm
const run = (sub) =>
  spawnSync(gyp ? process.execPath : 'node-gyp', gyp ? [gyp, sub, ...extra] : [sub, ...extra], {
    stdio: 'inherit',
    shell: !gyp,
  });
let r = run('configure');
if (r.status === 0) r = run('build');
if (r.status !== 0) {
  console.warn('gpuvm: native build failed (no working C++ toolchain?); the WASM engine will be used');
}
process.exit(0);
