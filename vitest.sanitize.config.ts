// `npm run test:sanitize` (scripts/test-sanitize.mjs): the suites that drive the
// native engine, under the ASan/UBSan build. The no-compiler and package
// suites install or load the package as users get it, not the engine built
// here, so they stay in `npm test` only.
import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.ts';

export default mergeConfig(
  base,
  defineConfig({
    test: {
      exclude: ['**/node_modules/**', 'test/no-compiler.test.ts', 'test/package.test.ts'],
    },
  }),
);
