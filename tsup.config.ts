import { readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { defineConfig } from 'tsup';

// Node runs one implementation, the CommonJS build (dist/index.cjs);
// dist/index.js, the ES-module entry, only re-exports it. A process that both
// imports and requires gpuvm (an app and one of its dependencies, say) then
// holds one copy of every class and one engine: a Bo from one entry binds
// through the other, and `instanceof GpuVmError` holds for errors from either.
//
// Bundlers take the exports map's "module" condition, an ES-module build
// (dist/index.mjs), for import and require alike, so a bundle holds one copy
// too; being ES modules, its imports of Node's built-ins work in ES-module
// and CommonJS bundles alike (CommonJS code inlined into an ES-module bundle
// cannot require them).
//
// The WASM module is embedded as base64 (decoded when the WASM engine first
// loads), so the package keeps working when it is bundled into an app, or
// after `node-gyp clean` empties build/.
const wasmFile = 'build/gpuvm.wasm';
if (!existsSync(wasmFile)) throw new Error(`${wasmFile} is missing: run \`npm run build:wasm\` first`);
const define = {
  __GPUVM_WASM_BASE64__: JSON.stringify(readFileSync(wasmFile).toString('base64')),
  __GPUVM_VERSION__: JSON.stringify(JSON.parse(readFileSync('package.json', 'utf8')).version),
};

// both builds write to dist/: clean it once, here, rather than racing two
// clean steps (tsup loads this file again in its declaration worker: not there)
if (isMainThread) rmSync('dist', { recursive: true, force: true });

function writeEsmEntry(): void {
  // the export names from esbuild's annotation at the end of the CommonJS
  // build (the one Node reads for the same purpose): no library code runs here
  const cjs = readFileSync('dist/index.cjs', 'utf8');
  const list = /0 && \(module\.exports = \{([^}]*)\}\);\s*$/.exec(cjs);
  if (!list) throw new Error('dist/index.cjs has no export annotation to build dist/index.js from');
  const names = list[1]!.split(',').map((n) => n.trim()).filter(Boolean).sort();
  // createRequire, not `import ... from './index.cjs'`: Node 20 takes about
  // 90 ms to import a CommonJS file this size as an ES module (measured),
  // against 20 ms to require it.
  const lines = [
    '// The ES-module entry of gpuvm: the CommonJS build is the one implementation,',
    '// so importing and requiring the package in one process share every class.',
    "import { createRequire } from 'node:module';",
    "const gpuvm = createRequire(import.meta.url)('./index.cjs');",
    `export const { ${names.join(', ')} } = gpuvm;`,
    '',
  ];
  writeFileSync('dist/index.js', lines.join('\n'));
}

export default defineConfig([
  {
    entry: { index: 'src/index.ts' },
    // cjs: index.cjs + index.d.cts; esm: index.mjs (bundlers) + index.d.ts
    // (the declarations of the ES-module entry, whose exports are the same)
    format: ['cjs', 'esm'],
    outExtension: ({ format }) => (format === 'esm' ? { js: '.mjs', dts: '.d.ts' } : { js: '.cjs', dts: '.d.cts' }),
    dts: true,
    // no import.meta shim: it reads __filename when the module loads, which
    // throws in an ES-module bundle of this build; the loader finds its own
    // location without it
    shims: false,
    clean: false,
    sourcemap: false,
    target: 'node20',
    splitting: false,
    define,
    onSuccess: async () => writeEsmEntry(),
  },
  {
    // the command line is its own process: one ES-module bundle, bin/gpuvm.js runs it
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    dts: false,
    clean: false,
    sourcemap: false,
    target: 'node20',
    splitting: false,
    define,
  },
]);
