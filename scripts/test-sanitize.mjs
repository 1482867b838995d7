// `npm run test:sanitize`: builds the native engine with ASan and UBSan into its
// own directory and runs the native suites (vitest.sanitize.config.ts) on it,
// native and WASM both, as in `npm test`, with native being the instrumented
// build. Node itself is not instrumented, so the compiler's libasan is
// preloaded into it and into every process the tests start.
//
// Every report fails the run: the sanitizers halt the process on the first
// one, which fails the vitest worker or the test that spawned the process;
// and since a test could expect a child to fail, the output is also scanned
// for reports.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSanitized } from './build-native-sanitize.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function fail(message) {
  console.error(`gpuvm sanitize: ${message}`);
  process.exit(1);
}

let addon;
try {
  addon = buildSanitized();
} catch (err) {
  fail(err.message);
}

// the runtime of the compiler that built the addon (node-gyp's make uses $CXX)
const cxx = process.env.CXX || 'g++';
const asan = spawnSync(`${cxx} -print-file-name=libasan.so`, { shell: true, encoding: 'utf8' }).stdout?.trim() ?? '';
if (!asan.startsWith('/') || !existsSync(asan)) fail(`${cxx} does not know where libasan.so is (got ${JSON.stringify(asan)})`);

const env = {
  ...process.env,
  LD_PRELOAD: [asan, process.env.LD_PRELOAD].filter(Boolean).join(':'),
  // node's own allocations are still live at exit: leak checking would only
  // report those. The engine answers a refused malloc with ENOMEM, so a
  // refusal must stay a null return here too, not an ASan abort. Freed blocks
  // wait in a quarantine before reuse; at the default 256 MiB it alone breaks
  // the memory-growth bounds of test/lifetime.test.ts, while 16 MiB still
  // covers a use shortly after a free. Options already in the environment
  // come last, so they win.
  ASAN_OPTIONS: [
    'detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:quarantine_size_mb=16',
    process.env.ASAN_OPTIONS,
  ]
    .filter(Boolean)
    .join(':'),
  UBSAN_OPTIONS: ['halt_on_error=1:print_stacktrace=1', process.env.UBSAN_OPTIONS].filter(Boolean).join(':'),
  GPUVM_BACKEND: 'native',
  GPUVM_NATIVE_PATH: addon,
};
console.log(`gpuvm sanitize: native engine ${addon}, preloading ${asan}`);

const report = /runtime error:|ERROR: AddressSanitizer|SUMMARY: (?:Address|UndefinedBehavior)Sanitizer/;
let reported = false;
let tail = '';
const watch = (chunk) => {
  // a report line may straddle two chunks
  const text = tail + chunk.toString('utf8');
  if (report.test(text)) reported = true;
  tail = text.slice(-200);
};
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const child = spawn(process.execPath, [vitest, 'run', '--config', 'vitest.sanitize.config.ts', ...process.argv.slice(2)], {
  cwd: root,
  env,
  stdio: ['inherit', 'pipe', 'pipe'],
});
child.stdout.on('data', (c) => {
  watch(c);
  process.stdout.write(c);
});
child.stderr.on('data', (c) => {
  watch(c);
  process.stderr.write(c);
});
child.on('close', (code, signal) => {
  if (reported) fail('a sanitizer reported an error (see above)');
  if (code !== 0) process.exit(code ?? (signal ? 1 : 0));
});
