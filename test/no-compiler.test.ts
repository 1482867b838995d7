/**
 * Install without a compiler (the WASM twin issue): a clean copy of the
 * package is installed with every C++ toolchain made unusable, `npm install`
 * must still succeed, and the suite must pass there in a plain environment:
 * test/engines.test.ts sees that no native binary was built and checks that
 * auto picked WASM and says why.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
describe.skipIf(process.env.GPUVM_SKIP_NO_COMPILER === '1')('install on a machine without a working compiler', () => {
  it('npm install succeeds and the suite passes on WASM alone', () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'gpuvm-nocc-'))); // the path engines.test.ts will name
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
      const env: Record<string, string | undefined> = {
        ...process.env,
        PATH: `${bin}:${process.env.PATH}`,
        CC: 'false',
        CXX: 'false',
      };
      // nothing of this run's engine choice may leak into the fresh install
      for (const name of ['VITEST', 'VITEST_WORKER_ID', 'GPUVM_BACKEND', 'GPUVM_NATIVE_PATH']) delete env[name];
      const install = existsSync(join(pkg, 'package-lock.json')) ? ['ci'] : ['install'];
      execFileSync('npm', [...install, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: pkg, env, stdio: 'pipe' });
      expect(existsSync(join(pkg, 'build', 'Release', 'gpuvm.node'))).toBe(false);
      expect(existsSync(join(pkg, 'build', 'gpuvm.wasm'))).toBe(true);
      // the whole suite but this file (which would install yet another copy);
      // verbose, to see which of engines.test.ts's two cases ran
      const raw = execFileSync('npm', ['test', '--', '--reporter=verbose', '--exclude', 'test/no-compiler.test.ts'], {
        cwd: pkg,
        env,
        encoding: 'utf8',
        stdio: 'pipe',
        maxBuffer: 256 * 1024 * 1024,
      });
      const out = raw.replace(/\x1b\[[0-9;]*m/g, ''); // vitest may colour its summary
      expect(out).toContain(`no native binary (${join(pkg, 'build', 'Release', 'gpuvm.node')}): auto picked WASM and says why`);
      expect(out).not.toContain('and WASM both load');
      expect(out).toMatch(/Tests\s+\d+ passed/);
      expect(out).not.toMatch(/\d+ failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
