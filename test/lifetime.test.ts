/**
 * Lifetime: creating and destroying many VMs with mappings reaches a steady
 * state (engine pools are reused), and handles of destroyed objects give a
 * GpuVmError instead of a crash.
 */
import { describe, expect, it } from 'vitest';
import { Bo, GpuVm, GpuVmError } from '../src/index.js';
import { loadEngine } from '../src/backend/loader.js';
import { backends } from './support/engines.js';

const U = 0x1000;
const VMS = 100_000;

function cycle(backend: 'native' | 'wasm', count: number, bos: Bo[]): void {
  for (let i = 0; i < count; i++) {
    const vm = new GpuVm({ start: 0, range: 0x1000 * U, backend });
    vm.bind(0, 8 * U, bos[i & 3], 0);
    vm.bind(2 * U, 2 * U, bos[(i + 1) & 3], 0);
    vm.bind(16 * U, 4 * U, null, 0);
    vm.unbind(3 * U, 14 * U);
    vm.destroy();
  }
}

describe.each(backends)('lifetime on %s', (backend) => {
  it(`${VMS} VMs with mappings created and destroyed do not grow memory`, () => {
    const bos = [new Bo(), new Bo(), new Bo(), new Bo()];
    cycle(backend, 2000, bos); // warm up pools and the JIT
    const engine = loadEngine(backend) as unknown as { memory?: WebAssembly.Memory };
    (globalThis as { gc?: () => void }).gc?.();
    const rss0 = process.memoryUsage().rss;
    const pages0 = engine.memory ? engine.memory.buffer.byteLength : 0;
    cycle(backend, VMS, bos);
    (globalThis as { gc?: () => void }).gc?.();
    const rss1 = process.memoryUsage().rss;
    const pages1 = engine.memory ? engine.memory.buffer.byteLength : 0;
    if (engine.memory) expect(pages1).toBe(pages0); // WASM memory: not one page more
    expect(rss1 - rss0).toBeLessThan(64 * 1024 * 1024); // generous: JS garbage may not be collected yet
    for (const bo of bos) expect(bo.vmBos).toEqual([]);
  });

  it('destroyed VMs, mappings and VmBos fail with GpuVmError', () => {
    const bo = new Bo();
    const vm = new GpuVm({ start: 0, range: 0x1000 * U, backend });
    vm.bind(0, U, bo, 0);
    const va = vm.findFirst(0, U)!;
    const vb = vm.obtainBo(bo);
    const ops = vm.smUnmapOps(0, U);
    vm.destroy();
    const other = new GpuVm({ start: 0, range: 0x1000 * U, backend }); // may reuse the handles
    other.bind(0, U, bo, 0);
    for (const fn of [() => va.flags, () => va.unlink(), () => vb.get(), () => vb.mappings(), () => ops.apply(), () => vm.unbind(0, U)]) {
      expect(fn).toThrow(GpuVmError);
    }
    expect(other.count).toBe(1);
    other.destroy();
  });
});
