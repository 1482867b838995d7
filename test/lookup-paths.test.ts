/**
 * findNext / findPrev take a number-only path for safe-integer addresses in a
 * number-mode VM and a bigint path otherwise. Both must answer alike: the same
 * mappings in a number VM and a bigint VM, probed at and around every edge
 * (VM bounds, the kernel node, mapping edges, 0).
 */
import { describe, expect, it } from 'vitest';
import { Bo, GpuVm } from '../src/index.js';
import { backends } from './support/engines.js';
import { Prng } from './support/prng.js';

const PAGE = 0x1000;

describe.each(backends)('lookup paths (%s)', (backend) => {
  it('findNext and findPrev answer alike for numbers and bigints, at every edge', () => {
    const rng = new Prng(5);
    for (const [start, range, reserve] of [
      [PAGE, 64 * PAGE, { start: 20 * PAGE, range: 4 * PAGE }],
      [0, 64 * PAGE, null],
      [2 ** 40, 2 ** 20, { start: 2 ** 40, range: PAGE }],
    ] as const) {
      const opts = reserve === null ? {} : { reserve };
      const num = new GpuVm({ start, range, backend, ...opts });
      const big = new GpuVm({ start, range, backend, bigint: true, ...opts });
      const bo = new Bo({ size: 2 ** 32 });
      const edges = new Set<number>([0, 1, start - 1, start, start + 1, start + range - 1, start + range, start + range + 1]);
      if (reserve !== null) for (const d of [-1, 0, 1]) for (const e of [reserve.start, reserve.start + reserve.range]) edges.add(e + d);
      for (let k = 0; k < 40; k++) {
        const a = start + PAGE * rng.int(range / PAGE);
        const r = PAGE * (1 + rng.int(4));
        if (a + r > start + range) continue;
        if (reserve !== null && a < reserve.start + reserve.range && a + r > reserve.start) continue;
        num.bind(a, r, bo, 0);
        big.bind(BigInt(a), BigInt(r), bo, 0n);
      }
      for (const va of num.mappings()) for (const d of [-1, 0, 1]) for (const e of [va.addr, va.addr + va.range]) edges.add(e + d);
      for (let k = 0; k < 200; k++) edges.add(start + rng.int(range + 2 * PAGE) - PAGE);
      let found = 0;
      for (const x of edges) {
        if (x < 0) continue;
        for (const f of ['findNext', 'findPrev'] as const) {
          const n = num[f](x);
          const b = big[f](BigInt(x));
          expect(n === null ? null : [n.addr, n.range], `${f}(${x.toString(16)})`).toEqual(b === null ? null : [Number(b.addr), Number(b.range)]);
          if (n !== null) found++;
        }
      }
      // both answers were reached
      expect(found).toBeGreaterThan(20);
      num.destroy();
      big.destroy();
    }
  });
});
