/**
 * bind: throughput of split/merge binds with n existing mappings
 * (n = 1e3 .. 1e6, slots layout of ../slots.mjs).
 *
 * Each bind replaces one existing mapping exactly (random slot, another BO and
 * offset): one lookup, one unmap and one map op, the tree removal and
 * insertion, and the VmBo bookkeeping of both BOs; the mapping count stays n.
 * Timed: batches of 1000 binds; reported: ns per bind. Engines and the
 * sorted-btree peer are interleaved; the interval-tree peer is measured on its
 * own (its large heap would tax the others' GC), up to 1e5 mappings unless
 * --full; above --peers-max only the engines run (then checked against each
 * other). Before timing, one untimed
 * batch runs on every candidate and its state must equal the sorted-btree
 * peer's.
 */
import { checksum, XorShift64Star } from '../workload.mjs';
import { candidates, fillOrder, groups } from '../slots.mjs';
import { interleave, gc } from '../harness.mjs';

const BATCH = 1000;
const SLOTS = 1 << 16;

export default {
  name: 'bind',
  description: 'replacement binds (unmap + map) with n existing mappings: ns per bind',
  async run(ctx) {
    const { options } = ctx;
    for (const n of options.sizes) {
      const rng = new XorShift64Star(11);
      const slots = new Uint32Array(SLOTS);
      for (let i = 0; i < SLOTS; i++) slots[i] = rng.rnd(n);
      const order = fillOrder(n);
      /** checksum of the state after the check batch, from sorted-btree */
      let reference = null;
      for (const group of groups(candidates(ctx.gpuvm), n, options)) {
        const built = [];
        for (const c of group) {
          let vm = c.make();
          c.fill(vm, order);
          const st = { c: 0 };
          c.bindBatch(vm, st, slots, BATCH); // untimed check batch
          const sum = checksum(c.state(vm));
          if (c.engine) {
            // Reading the state made a GpuVa object per mapping, which the VM
            // keeps for as long as it lives (object identity); with 1e6 of them
            // the collector, not the binds, would dominate the timing. Time a
            // twin built the same way that never handed any out.
            c.destroy(vm);
            gc(); // those objects are garbage now: collect them before timing, not during
            vm = c.make();
            c.fill(vm, order);
            st.c = 0;
            c.bindBatch(vm, st, slots, BATCH);
          }
          if (c.impl === 'sorted-btree') reference = sum.checksum;
          built.push({ c, vm, st, sum });
        }
        // Engines alone (--peers-max): the first engine is the others' reference.
        if (reference === null && built.length > 1) reference = built[0].sum.checksum;
        for (let i = built.length - 1; i >= 0; i--) {
          const { c, vm, sum } = built[i];
          let wrong = null;
          if (sum.count !== n) wrong = `holds ${sum.count} mappings, expected ${n}`;
          else if (reference !== null && sum.checksum !== reference) wrong = `state ${sum.checksum}, sorted-btree ${reference}`;
          if (wrong) {
            ctx.error(`bind n=${n}: ${c.impl} after the check batch: ${wrong}; not timed`);
            c.destroy(vm);
            built.splice(i, 1);
          }
        }
        const res = interleave(
          built.map(({ c, vm, st }) => ({ impl: c.impl, fn: () => c.bindBatch(vm, st, slots, BATCH), opsPerCall: BATCH })),
          { rounds: options.rounds, maxTime: options.maxTime, minSamples: options.minSamples },
        );
        for (const { c, vm } of built) {
          const r = res.get(c.impl);
          ctx.report({ suite: 'bind', impl: c.impl, n, nsPerOp: r.nsPerOp, rounds: r.rounds });
          c.destroy(vm);
        }
        built.length = 0;
        gc();
      }
    }
  },
};
