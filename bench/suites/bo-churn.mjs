/**
 * bo-churn: BOs mapped once and unmapped once, as a driver maps a buffer for
 * as long as it lives. The VM holds 1000 long-lived mappings of 8 BOs; each
 * step binds one page of a BO that has no mapping in the VM (so its VmBo is
 * created) and unbinds the page bound WINDOW steps before, the last mapping
 * of its BO (so that VmBo goes). Timed: batches of 1000 steps; reported: ns
 * per step (one bind and one unbind).
 *
 * Rows per engine: fused bind / unbind; `-opslist`, smMapOps / smUnmapOps
 * then apply, the ops unread; `-batched`, the same requests through
 * vm.submit, 1000 steps a call (a VmBo needed again after it went stops the
 * batch, every few requests here). The sorted-btree peer keeps its VmBos in a Map
 * by BO id, as a JS user would. Before timing, one untimed batch runs on every
 * candidate and its state must equal the peer's.
 */
import { checksum } from '../workload.mjs';
import { SortedBtreeVm } from '../peers/sorted-btree-vm.mjs';
import { fresh, interleave, facadeState } from '../harness.mjs';

const PAGE = 0x1000;
const BASE = 0x1_0000_0000;
const STEADY = 1000;
const BOS = 64; // transient BOs, used in turn: BO (i % BOS) is unmapped again long before its next turn
const WINDOW = 16;
const BATCH = 1000;
const CHURN_BASE = BASE + 2 * STEADY * 16 * PAGE;

/** The steady mappings: 1000 of 8 BOs (bo(k) is the k-th of them). */
function fillSteady(bind, bo) {
  for (let k = 0; k < STEADY; k++) bind(BASE + k * 16 * PAGE, 4 * PAGE, bo(1 + (k & 7)), k * PAGE);
}

// The step loops are timed as fresh copies (harness.fresh), so they use no
// module bindings: BOS (64), WINDOW (16) and the slot stride (16 pages) are
// spelled out, and step i binds at st.base + (i % 64) * 16 pages.

/** One batch of steps on a facade VM; st.i counts steps. `bos[j]`: transient BO j. */
function stepsFused(vm, st, bos, n) {
  for (let s = 0; s < n; s++, st.i++) {
    const i = st.i;
    vm.bind(st.base + (i % 64) * 0x10000, 0x1000, bos[i % 64], 0);
    if (i >= 16) vm.unbind(st.base + ((i - 16) % 64) * 0x10000, 0x1000);
  }
}

function stepsOps(vm, st, bos, n) {
  for (let s = 0; s < n; s++, st.i++) {
    const i = st.i;
    vm.smMapOps({ addr: st.base + (i % 64) * 0x10000, range: 0x1000, bo: bos[i % 64], offset: 0 }).apply();
    if (i >= 16) vm.smUnmapOps(st.base + ((i - 16) % 64) * 0x10000, 0x1000).apply();
  }
}

/**
 * The same steps through vm.submit, one batch per call: batches[k] holds the
 * steps of a call that starts at step st.i with (st.i / n) % 8 === k (1000
 * steps move the slot pattern by 40 of 64, so it repeats every 8 calls), and
 * batches[8] those of the first call.
 */
function stepsBatched(vm, st, bos, n, batches) {
  vm.submit(batches[st.i === 0 ? 8 : (st.i / n) % 8], bos);
  st.i += n;
}

/** The peer: BOs are numbers (steady 1..8, transient 100 + j). */
function stepsPeer(vm, st, n) {
  for (let s = 0; s < n; s++, st.i++) {
    const i = st.i;
    vm.bind(st.base + (i % 64) * 0x10000, 0x1000, 100 + (i % 64), 0);
    if (i >= 16) vm.unbind(st.base + ((i - 16) % 64) * 0x10000, 0x1000);
  }
}

export default {
  name: 'bo-churn',
  description: 'BOs mapped once and unmapped once (VmBo made and dropped every step): ns per step',
  async run(ctx) {
    const { gpuvm } = ctx;
    if (BOS !== 64 || WINDOW !== 16) throw new Error('bo-churn: the step loops spell BOS and WINDOW out');
    const range = 2 ** 40;
    /** @type {{ impl: string, fn: () => unknown, opsPerCall: number, vm: any, st: any, sum: string }[]} */
    const built = [];

    const peerLoop = fresh(stepsPeer);
    const peer = new SortedBtreeVm({ start: 0, range });
    fillSteady((a, r, b, o) => peer.bind(a, r, b, o), (j) => j);
    const pst = { i: 0, base: CHURN_BASE };
    peerLoop(peer, pst, BATCH);
    const reference = checksum(peer.mappings()).checksum;
    built.push({ impl: 'sorted-btree', fn: () => peerLoop(peer, pst, BATCH), opsPerCall: BATCH, sum: reference });

    if (gpuvm) {
      const { GpuVm, Bo } = gpuvm;
      const steadyBos = [null];
      const ids = new Map();
      for (let j = 1; j <= 8; j++) {
        const b = new Bo({ size: range, name: `churn-steady${j}` });
        steadyBos.push(b);
        ids.set(b, j);
      }
      const { BindRequests } = await import('../../dist/index.js');
      /**
       * One BindRequests per starting pattern (see stepsBatched), and batches[8]
       * for the very first call, whose first WINDOW steps unbind nothing yet;
       * bo index = transient BO j.
       */
      const batches = [];
      for (let k = 0; k <= 8; k++) {
        const r = new BindRequests(2 * BATCH);
        for (let s = 0; s < BATCH; s++) {
          const i = (k % 8) * BATCH + s + (k === 8 ? 0 : 8 * BATCH);
          r.bind(CHURN_BASE + (i % BOS) * 16 * PAGE, PAGE, i % BOS, 0);
          if (i >= WINDOW) r.unbind(CHURN_BASE + ((i - WINDOW) % BOS) * 16 * PAGE, PAGE);
        }
        batches.push(r);
      }
      for (const backend of gpuvm.backends) {
        for (const [suffix, steps] of /** @type {const} */ ([['', stepsFused], ['-opslist', stepsOps], ['-batched', stepsBatched]])) {
          const impl = `${backend}${suffix}`;
          // BOs of this VM alone, as a driver's buffers are
          const bos = [];
          for (let j = 0; j < BOS; j++) {
            const b = new Bo({ size: range, name: `churn-${impl}-${j}` });
            bos.push(b);
            ids.set(b, 100 + j);
          }
          const loop = fresh(steps);
          const vm = new GpuVm({ name: `churn-${impl}`, start: 0, range, backend });
          fillSteady((a, r, b, o) => vm.bind(a, r, b, o), (j) => steadyBos[j]);
          const st = { i: 0, base: CHURN_BASE };
          loop(vm, st, bos, BATCH, batches);
          const sum = checksum(facadeState(vm, ids)).checksum;
          if (sum !== reference) {
            ctx.error(`bo-churn: ${impl} after the check batch: state ${sum}, sorted-btree ${reference}; not timed`);
            vm.destroy();
            continue;
          }
          built.push({ impl, fn: () => loop(vm, st, bos, BATCH, batches), opsPerCall: BATCH, vm, sum });
        }
      }
    }

    const res = interleave(built, { rounds: ctx.options.rounds, maxTime: ctx.options.maxTime, minSamples: ctx.options.minSamples });
    for (const b of built) {
      const r = /** @type {{ nsPerOp: number, rounds: number[] }} */ (res.get(b.impl));
      ctx.report({ suite: 'bo-churn', impl: b.impl, n: STEADY, nsPerOp: r.nsPerOp, checksum: b.sum, rounds: r.rounds });
      b.vm?.destroy();
    }
  },
};
