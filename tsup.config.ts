import { defineConfig } from 'tsup';

// One bundle per format: ESM for import, CJS for require, both with types.
// shims: import.meta.url is rewritten for the CJS build, so the engine loader
// finds build/ the same way from either format.
export default defineConfig({
  entry: { index: 'src/index.ts', cli: 'src/cli.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src/index.ts' } },
  shims: true,
  clean: true,
  sourcemap: false,
  target: 'node20',
  splitting: false,
});
