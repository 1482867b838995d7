/**
 * memory: bytes per mapping with n mappings (slots layout of ../slots.mjs,
 * BOs 1..8 with their VmBos).
 *
 * Engines: vm.stats().bytes (what the engine holds for the VM: tree nodes,
 * mapping records, VmBos) plus the JS heap the facade grew by (normally
 * nothing: it creates no per-mapping objects unless asked for them). Peers:
 * the JS heap growth (global.gc, then process.memoryUsage().heapUsed before
 * and after building), which covers the tree, the mapping objects and the
 * VmBo sets. The row's nsPerOp is the build cost: ns per bind into a hole
 * (one untimed-by-benchmark.js pass, so indicative only).
 */
import { candidates, fillOrder, groups } from '../slots.mjs';
import { gc } from '../harness.mjs';

export default {
  name: 'memory',
  description: 'bytes per mapping (engine bytes + JS heap growth) and build cost',
  async run(ctx) {
    const { options } = ctx;
    if (typeof globalThis.gc !== 'function') ctx.log('memory: run node with --expose-gc for heap figures (npm run bench does)');
    for (const n of options.memorySizes) {
      const order = fillOrder(n);
      for (const c of groups(candidates(ctx.gpuvm), n, options).flat()) {
        gc();
        const heap0 = process.memoryUsage().heapUsed;
        const vm = c.make();
        const t0 = process.hrtime.bigint();
        c.fill(vm, order);
        const t1 = process.hrtime.bigint();
        gc();
        const heap = Math.max(0, process.memoryUsage().heapUsed - heap0);
        const count = c.count(vm);
        if (count !== n) {
          ctx.error(`memory n=${n}: ${c.impl} holds ${count} mappings, expected ${n}; no row`);
          c.destroy(vm);
          continue;
        }
        const engineBytes = c.engineBytes(vm);
        const engine = engineBytes ?? 0;
        ctx.report({
          suite: 'memory',
          impl: c.impl,
          n,
          nsPerOp: Number(t1 - t0) / n,
          bytesPerMapping: (engine + heap) / n,
          engineBytesPerMapping: engineBytes === null ? undefined : engine / n,
          heapBytesPerMapping: heap / n,
        });
        c.destroy(vm);
      }
      gc();
    }
  },
};
