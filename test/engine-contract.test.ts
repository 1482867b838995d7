/**
 * The engine objects: both are made from one list of calls (ENGINE_CALLS),
 * in one property order, so the facade's loads of their calls see one
 * hidden class in a process that runs both engines; and each engine exports
 * exactly those calls. The transfer area is read through ioOf, which follows
 * a grown WASM memory to its new buffer.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { IO, ioOf } from '../src/backend/engine.js';
import { ENGINE_CALLS, loadEngine } from '../src/backend/loader.js';
import { Bo, GpuVm } from '../src/index.js';
import { backends } from './support/engines.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeFile = process.env.GPUVM_NATIVE_PATH ?? join(root, 'build', 'Release', 'gpuvm.node');

/** The functions an engine's module itself exports, less its set-up entry points. */
function moduleCalls(backend: string): string[] {
  if (backend === 'native') {
    const addon = createRequire(nativeFile)(nativeFile) as Record<string, unknown>;
    return Object.keys(addon).filter((k) => typeof addon[k] === 'function' && k !== 'setup');
  }
  const m = new WebAssembly.Module(readFileSync(join(root, 'build', 'gpuvm.wasm')));
  return WebAssembly.Module.exports(m)
    .filter((e) => e.kind === 'function' && e.name !== 'ioPtr')
    .map((e) => e.name);
}

describe.each(backends)('the %s engine object', (backend) => {
  const E = loadEngine(backend) as unknown as Record<string, unknown>;

  it('has every call of the list, in its order, and nothing else', () => {
    expect(Object.keys(E)).toEqual([...ENGINE_CALLS, 'name', 'io', 'ioView', 'memory']);
    for (const k of ENGINE_CALLS) {
      // (only the native engine writes op records into memory the facade owns)
      if (k === 'setRing' && backend === 'wasm') expect(E[k]).toBeUndefined();
      else expect(typeof E[k], k).toBe('function');
    }
  });

  it('its module exports exactly those calls', () => {
    if (backend === 'native' && !existsSync(nativeFile)) return;
    const calls = moduleCalls(backend).sort();
    const want = ENGINE_CALLS.filter((k) => !(k === 'setRing' && backend === 'wasm'));
    expect(calls).toEqual([...want].sort());
  });
});

describe('the transfer area', () => {
  it.each(backends)('ioOf reads %s\'s current one, and follows a grown WASM memory', (backend) => {
    const E = loadEngine(backend);
    const before = ioOf(E);
    expect(before.length).toBe(IO.WORDS);
    expect(ioOf(E)).toBe(before);
    if (backend === 'wasm') {
      const memory = (E as unknown as { memory: WebAssembly.Memory }).memory;
      memory.grow(1);
      expect(before.length).toBe(0); // the old view is detached
      const after = ioOf(E);
      expect(after.length).toBe(IO.WORDS);
      expect(E.ioView).toBe(after);
      expect(ioOf(E)).toBe(after);
    }
    // and the facade works on it
    const vm = new GpuVm({ start: 0, range: 2 ** 32, backend });
    const bo = new Bo({ size: 2 ** 20 });
    vm.bind(0x1000, 0x2000, bo, 0);
    expect(vm.findFirst(0, 2 ** 32)?.addr).toBe(0x1000);
    vm.destroy();
  });
});
