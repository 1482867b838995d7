/**
 * Both engines load here (CI has a compiler), unless this run is the
 * no-compiler configuration, where auto must have picked WASM.
 */
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
