/**
 * Native loads exactly when a native binary was built (the install step builds
 * it where a compiler works, or GPUVM_NATIVE_PATH names one); WASM always
 * loads. Without a native binary, auto must have picked WASM and say why.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendInfo } from '../src/backend/loader.js';
import { backends } from './support/engines.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// the same file the loader looks for
const nativeFile = process.env.GPUVM_NATIVE_PATH ?? join(root, 'build', 'Release', 'gpuvm.node');
const nativeBuilt = existsSync(nativeFile);

describe('engines', () => {
  if (nativeBuilt) {
    it(`native (${nativeFile}) and WASM both load`, () => {
      expect(backends).toEqual(['native', 'wasm']);
    });
  } else {
    it(`no native binary (${nativeFile}): auto picked WASM and says why`, () => {
      expect(backends).toEqual(['wasm']);
      // in a child, so that a GPUVM_BACKEND of this run cannot hide auto's choice
      const r = spawnSync(process.execPath, [join(root, 'bin', 'gpuvm.js'), '--version'], {
        env: { ...process.env, GPUVM_BACKEND: 'auto' },
        encoding: 'utf8',
      });
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('engine=wasm (native skipped: ');
      expect(r.stdout).toContain(`${nativeFile} does not exist`);
      if (backendInfo().requested === 'auto') {
        expect(backendInfo().name).toBe('wasm');
        expect(backendInfo().reason).toContain(`${nativeFile} does not exist`);
      }
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
