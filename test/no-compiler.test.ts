/**
 * Install without a compiler (the WASM twin issue): a clean copy of the
 * package is installed with every C++ toolchain made unusable, `npm install`
 * must still succeed, and the whole suite must pass there with auto having
 * picked WASM (test/engines.test.ts checks that under GPUVM_EXPECT_WASM_ONLY).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const child = process.env.GPUVM_EXPECT_WASM_ONLY === '1';
const skipped = child || process.env.GPUVM_SKIP_NO_COMPILER === '1';

describe.skipIf(skipped)('install on a machine without a working compiler', () => {
  it('npm install succeeds and the whole suite passes on WASM', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpuvm-nocc-'));
    try {
      const pkg = join(dir, 'gpuvm');
      cpSync(root, pkg, {
        recursive: true,
        filter: (src) => !['node_modules', 'build', 'dist', '.git'].includes(basename(src)) || dirname(src) !== root,
      });
      // compilers and make that fail, first on PATH
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      for (const tool of ['cc', 'gcc', 'c++', 'g++', 'clang', 'clang++', 'make']) {
        writeFileSync(join(bin, tool), '#!/bin/sh\necho "no compiler here" >&2\nexit 1\n');
        chmodSync(join(bin, tool), 0o755);
      }
      const env = {
        ...process.env,
        PATH: `${bin}:${process.env.PATH}`,
        CC: 'false',
        CXX: 'false',
        GPUVM_EXPECT_WASM_ONLY: '1',
        GPUVM_BACKEND: 'auto',
      };
      delete (env as Record<string, string | undefined>).VITEST;
      delete (env as Record<string, string | undefined>).VITEST_WORKER_ID;
      const install = existsSync(join(pkg, 'package-lock.json')) ? ['ci'] : ['install'];
      execFileSync('npm', [...install, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: pkg, env, stdio: 'pipe' });
      expect(existsSync(join(pkg, 'build', 'Release', 'gpuvm.node'))).toBe(false);
      expect(existsSync(join(pkg, 'build', 'gpuvm.wasm'))).toBe(true);
      const raw = execFileSync('npm', ['test', '--', '--reporter=dot'], { cwd: pkg, env, encoding: 'utf8', stdio: 'pipe' });
      const out = raw.replace(/\x1b\[[0-9;]*m/g, ''); // vitest may colour its summary
      expect(out).toMatch(/Tests\s+\d+ passed/);
      expect(out).not.toMatch(/\d+ failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
