/**
 * Both engines load here (CI has a compiler), unless this run is the
 * no-compiler configuration, where auto must have picked WASM.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendInfo } from '../src/backend/loader.js';
import { backends } from './support/engines.js';

describe('engines', () => {
  if (process.env.GPUVM_EXPECT_WASM_ONLY === '1') {
    it('auto picked WASM and says why native was skipped', () => {
      expect(backends).toEqual(['wasm']);
      const info = backendInfo();
      expect(info.name).toBe('wasm');
      expect(info.reason).toMatch(/native/);
    });
  } else {
    it('native and WASM both load', () => {
      expect(backends).toEqual(['native', 'wasm']);
    });
  }
});

describe('gpuvm.backend', () => {
  it('names the engine auto or GPUVM_BACKEND picked, like backendInfo()', async () => {
    const gpuvm = await import('../src/index.js');
    expect(gpuvm.backend.name).toBe(backendInfo().name);
    expect(gpuvm.backend.requested).toBe(backendInfo().requested);
    expect(backends).toContain(gpuvm.backend.name);
    if (gpuvm.backend.requested === 'auto' && backends.includes('native')) {
      expect(gpuvm.backend.name).toBe('native');
      expect(gpuvm.backend.reason).toBeNull();
    }
  });
});

describe('engine selection (GPUVM_BACKEND)', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, [join(root, 'bin', 'gpuvm.js'), '--version'], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });

  it('auto falls back to WASM and says why native was skipped', () => {
    const r = run({ GPUVM_BACKEND: 'auto', GPUVM_NATIVE_PATH: '/nonexistent/gpuvm.node' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/engine=wasm \(native skipped: .*nonexistent\/gpuvm\.node does not exist/);
  });

  it('native is strict: a GpuVmError saying why it cannot load', () => {
    const r = run({ GPUVM_BACKEND: 'native', GPUVM_NATIVE_PATH: '/nonexistent/gpuvm.node' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^gpuvm: ENOENT: the native engine cannot load: .*nonexistent/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });

  it('an unknown value is refused', () => {
    const r = run({ GPUVM_BACKEND: 'fast' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/GPUVM_BACKEND must be auto, native or wasm, got "fast"/);
  });
});
