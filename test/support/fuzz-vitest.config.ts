// The fuzzer alone, without the global build step: for long runs against an
// already built dist/ (nice -n 19 npx vitest run --config test/support/fuzz-vitest.config.ts).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: new URL('../..', import.meta.url).pathname,
  test: {
    include: ['test/fuzz.test.ts'],
    testTimeout: 120_000,
    pool: 'forks',
  },
});
