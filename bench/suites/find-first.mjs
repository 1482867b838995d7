/**
 * findFirst: lowest-overlap lookups with n existing mappings
 * (n = 1e3 .. 1e6, slots layout of ../slots.mjs).
 *
 * Queries are 2-page ranges at random pages of the populated region: about
 * half start inside a mapping, the rest in a hole (a quarter of those reach
 * the next mapping, the others find nothing). Timed: batches of 1024 lookups.
 * Engines run twice: `native` / `wasm` use vm.findFirstMany (one engine call
 * per batch), `native-single` / `wasm-single` call vm.findFirst per lookup.
 * Peers call their findFirst per lookup. Engines and sorted-btree are
 * interleaved; the interval-tree peer is measured on its own, up to 1e5
 * mappings unless --full. Before timing,
 * every candidate answers all queries untimed; the answers (the row's
 * checksum: FNV-1a over the found addresses, 0 for none) must equal the
 * sorted-btree peer's, or the candidate is reported as an error and not timed.
 */
import { Fnv1a64, XorShift64Star, BASE, PAGE } from '../workload.mjs';
import { candidates, fillOrder, groups, SLOT_STRIDE } from '../slots.mjs';
import { interleave, gc } from '../harness.mjs';

const BATCH = 1024;
const QUERIES = 1 << 16;
const RANGE = 2 * PAGE;

export default {
  name: 'findFirst',
  description: 'lowest-overlap lookups with n existing mappings: ns per lookup',
  async run(ctx) {
    const { options } = ctx;
    for (const n of options.sizes) {
      const rng = new XorShift64Star(13);
      const addrs = new Float64Array(QUERIES);
      const pages = (n * SLOT_STRIDE) / PAGE;
      for (let i = 0; i < QUERIES; i++) addrs[i] = BASE + rng.rnd(pages) * PAGE;
      const order = fillOrder(n);
      let reference = null;
      for (const group of groups(candidates(ctx.gpuvm), n, options)) {
        const vms = [];
        /** @type {{ impl: string, fn: () => unknown, opsPerCall: number, checksum: string }[]} */
        const all = [];
        for (const c of group) {
          const vm = c.make();
          c.fill(vm, order);
          vms.push([c, vm]);
          const variants = c.engine
            ? [
                [c.impl, c.findMany],
                [`${c.impl}-single`, c.findSingle],
              ]
            : [[c.impl, c.findSingle]];
          for (const [impl, find] of variants) {
            // untimed: every answer, hashed, through the same API the timed batch uses
            const h = new Fnv1a64();
            if (find === c.findMany) {
              for (let i = 0; i < QUERIES; i += BATCH) {
                for (const va of vm.findFirstMany(addrs.subarray(i, i + BATCH), RANGE)) h.u64(va === null ? 0 : va.addr);
              }
            } else {
              for (let i = 0; i < QUERIES; i++) {
                const va = vm.findFirst(addrs[i], RANGE);
                h.u64(va === null ? 0 : va.addr);
              }
            }
            const st = { c: 0, sink: 0 };
            if (impl === 'sorted-btree') reference = h.hex();
            all.push({ impl, fn: () => find(vm, st, addrs, RANGE, BATCH), opsPerCall: BATCH, checksum: h.hex() });
          }
        }
        const cases = [];
        for (const x of all) {
          if (reference !== null && x.checksum !== reference) {
            ctx.error(`findFirst n=${n}: ${x.impl} gives wrong answers (${x.checksum}, sorted-btree ${reference}); not timed`);
          } else cases.push(x);
        }
        const res = interleave(cases, { rounds: options.rounds, maxTime: options.maxTime, minSamples: options.minSamples });
        for (const cs of cases) {
          const r = res.get(cs.impl);
          ctx.report({ suite: 'findFirst', impl: cs.impl, n, nsPerOp: r.nsPerOp, checksum: cs.checksum, rounds: r.rounds });
        }
        for (const [c, vm] of vms) c.destroy(vm);
        vms.length = 0;
        all.length = 0;
        gc();
      }
    }
  },
};
