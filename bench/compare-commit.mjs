/**
 * Before/after in one process: the kernel-stream workload (fused and op-list
 * mode) and single findFirst lookups, through this checkout's dist/ and
 * through another built checkout's, on both engines, interleaved round by
 * round so that the load of a shared box hits both sides alike.
 *
 *   git worktree add /tmp/base <commit> && cd /tmp/base && ln -s <this>/node_modules \
 *     && npm run build:wasm && npx tsup && node scripts/build-native.mjs
 *   node --expose-gc bench/compare-commit.mjs /tmp/base [--rounds 7]
 *
 * Prints ns per request (median over the rounds) and new/old for each case.
 */
import { resolve, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generate } from './workload.mjs';
import { ROOT } from './harness.mjs';

const args = process.argv.slice(2);
const base = args[0];
if (!base) {
  console.error('usage: node --expose-gc bench/compare-commit.mjs <built checkout> [--rounds N]');
  process.exit(2);
}
const ri = args.indexOf('--rounds');
const rounds = ri >= 0 ? Number(args[ri + 1]) : 7;
const OLD = await import(pathToFileURL(join(resolve(base), 'dist', 'index.js')).href);
const NEW = await import(pathToFileURL(join(ROOT, 'dist', 'index.js')).href);
const w = generate(100000, 1);

function bosOf(lib) {
  const bos = [null];
  for (let i = 1; i <= 8; i++) bos.push(new lib.Bo());
  return bos;
}
function fused(lib, backend) {
  const bos = bosOf(lib);
  return () => {
    const vm = new lib.GpuVm({ start: 0, range: 2 ** 47, backend });
    const { kind, addr, range, bo, offset } = w;
    for (let i = 0; i < w.n; i++) {
      if (kind[i] === 0) vm.unbind(addr[i], range[i]);
      else vm.bind(addr[i], range[i], bos[bo[i]], offset[i]);
    }
    vm.destroy();
  };
}
function opsList(lib, backend, read) {
  const bos = bosOf(lib);
  return () => {
    const vm = new lib.GpuVm({ start: 0, range: 2 ** 47, backend });
    const { kind, addr, range, bo, offset } = w;
    for (let i = 0; i < w.n; i++) {
      const ops =
        kind[i] === 0
          ? vm.smUnmapOps(addr[i], range[i])
          : vm.smMapOps({ addr: addr[i], range: range[i], bo: bos[bo[i]], offset: offset[i] });
      if (read) for (const op of ops) void op.kind;
      ops.apply();
    }
    vm.destroy();
  };
}
function lookups(lib, backend) {
  const vm = new lib.GpuVm({ start: 0, range: 2 ** 47, backend });
  const bo = new lib.Bo();
  for (let i = 0; i < 100000; i++) vm.bind(i * 0x2000, 0x1000, i % 2 ? bo : null, 0);
  return () => {
    let s = 0;
    for (let k = 0; k < 100000; k++) s += vm.findFirst(((k * 7919) % 100000) * 0x2000, 1)?.range ?? 0;
    return s;
  };
}

const kinds = [
  ['fused', (lib, b) => fused(lib, b)],
  ['opslist-apply', (lib, b) => opsList(lib, b, false)],
  ['opslist-read', (lib, b) => opsList(lib, b, true)],
  ['findFirst', (lib, b) => lookups(lib, b)],
];
const cases = [];
for (const backend of ['native', 'wasm']) {
  for (const [name, mk] of kinds) {
    for (const [side, lib] of [['old', OLD], ['new', NEW]]) cases.push({ key: `${backend} ${name} ${side}`, fn: mk(lib, backend) });
  }
}
const res = {};
for (let r = 0; r < rounds; r++) {
  for (const c of cases) {
    globalThis.gc?.();
    const t = process.hrtime.bigint();
    c.fn();
    (res[c.key] ??= []).push(Number(process.hrtime.bigint() - t) / 1e5);
  }
}
const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
for (const backend of ['native', 'wasm']) {
  for (const [name] of kinds) {
    const o = med(res[`${backend} ${name} old`]);
    const n = med(res[`${backend} ${name} new`]);
    console.log(`${backend.padEnd(6)} ${name.padEnd(13)} old ${o.toFixed(0).padStart(5)} ns  new ${n.toFixed(0).padStart(5)} ns  new/old ${(n / o).toFixed(2)}`);
  }
}
