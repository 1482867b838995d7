/**
 * The layout the sized suites (bind, findFirst, memory) use: n mappings of
 * 4 pages at a stride of 8 pages from BASE (so every mapping has a 4-page hole
 * after it), BO 1 + i % 8, offset i * 4 pages, inserted in a fixed random
 * order. Each candidate is built through its own bind call, VmBo bookkeeping
 * included.
 *
 * Candidates are { impl, engine, alone, make(): vm, fill(vm, order),
 * bindBatch(vm, st, slots, count), findSingle(vm, st, addrs, range, count),
 * findMany (engines: one findFirstMany per batch), state(vm) -> iterable,
 * count(vm), engineBytes(vm) -> number | null, destroy(vm) }.
 */
import { BASE, PAGE, VM_START, VM_RANGE } from './workload.mjs';
import { SortedBtreeVm } from './peers/sorted-btree-vm.mjs';
import { IntervalTreeVm } from './peers/interval-tree-vm.mjs';
import { fresh, permutation, facadeBos, facadeState } from './harness.mjs';

export const SLOT_STRIDE = 8 * PAGE;
export const SLOT_RANGE = 4 * PAGE;

/** slot i -> address */
export const slotAddr = (i) => BASE + i * SLOT_STRIDE;

function fillFacade(vm, order, bos) {
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    vm.bind(0x100000000 + i * 0x8000, 0x4000, bos[1 + (i & 7)], i * 0x4000);
  }
}

function fillPeer(vm, order) {
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    vm.bind(0x100000000 + i * 0x8000, 0x4000, 1 + (i & 7), i * 0x4000);
  }
}

/** Replacement binds: batch of `count` from cursor st.c over slots (length a power of two). */
function bindBatchFacade(vm, st, slots, bos, count) {
  const mask = slots.length - 1;
  let c = st.c;
  for (let j = 0; j < count; j++, c++) {
    vm.bind(0x100000000 + slots[c & mask] * 0x8000, 0x4000, bos[1 + (c & 7)], (c & 0xfff) * 0x1000);
  }
  st.c = c;
}

function bindBatchPeer(vm, st, slots, count) {
  const mask = slots.length - 1;
  let c = st.c;
  for (let j = 0; j < count; j++, c++) {
    vm.bind(0x100000000 + slots[c & mask] * 0x8000, 0x4000, 1 + (c & 7), (c & 0xfff) * 0x1000);
  }
  st.c = c;
}

/** One findFirst call per query: facade (GpuVa | null) and peers (Va | null) alike. */
function findBatchSingle(vm, st, addrs, range, count) {
  const mask = addrs.length - 1;
  let c = st.c;
  let sink = 0;
  for (let j = 0; j < count; j++, c++) {
    const va = vm.findFirst(addrs[c & mask], range);
    if (va !== null) sink += va.addr;
  }
  st.c = c;
  st.sink += sink;
}

/** Facade batched lookups: one findFirstMany per batch (count divides addrs.length). */
function findBatchMany(vm, st, addrs, range, count) {
  const c = st.c & (addrs.length - 1);
  const out = vm.findFirstMany(addrs.subarray(c, c + count), range);
  let sink = 0;
  for (let j = 0; j < out.length; j++) {
    const va = out[j];
    if (va !== null) sink += va.addr;
  }
  st.c += count;
  st.sink += sink;
}

/**
 * The candidates available in this process.
 * @param {import('./harness.mjs').Gpuvm | null} gpuvm
 */
export function candidates(gpuvm) {
  const list = [];
  if (gpuvm) {
    const { GpuVm, Bo } = gpuvm;
    const { bos, ids } = facadeBos(Bo);
    for (const backend of gpuvm.backends) {
      const fill = fresh(fillFacade);
      const bindBatch = fresh(bindBatchFacade);
      const findSingle = fresh(findBatchSingle);
      const findMany = fresh(findBatchMany);
      list.push({
        impl: backend,
        engine: true,
        alone: false,
        make: () => new GpuVm({ name: `bench-${backend}`, start: VM_START, range: VM_RANGE, backend }),
        fill: (vm, order) => fill(vm, order, bos),
        bindBatch: (vm, st, slots, count) => bindBatch(vm, st, slots, bos, count),
        findSingle,
        findMany,
        state: (vm) => facadeState(vm, ids),
        count: (vm) => vm.count,
        engineBytes: (vm) => vm.stats().bytes,
        destroy: (vm) => vm.destroy(),
      });
    }
  }
  for (const [impl, Peer] of /** @type {const} */ ([
    ['sorted-btree', SortedBtreeVm],
    ['interval-tree', IntervalTreeVm],
  ])) {
    const fill = fresh(fillPeer);
    list.push({
      impl,
      engine: false,
      // The interval tree's heap (~400 B per mapping) would slow every other
      // JS candidate's GC at 1e5-1e6 mappings: it is measured on its own.
      alone: impl === 'interval-tree',
      make: () => new Peer({ start: VM_START, range: VM_RANGE }),
      fill,
      bindBatch: fresh(bindBatchPeer),
      findSingle: fresh(findBatchSingle),
      findMany: null,
      state: (vm) => vm.mappings(),
      count: (vm) => vm.count,
      engineBytes: () => null,
      destroy: () => {},
    });
  }
  return list;
}

/**
 * Measurement groups: the candidates that are interleaved with each other
 * (engines and sorted-btree), then each `alone` candidate by itself. `alone`
 * candidates (the interval tree) are skipped above options.slowPeerMaxN
 * mappings: building 1e6 of them takes minutes on a busy 2-core box
 * (--full lifts the cap). Above options.peerMaxN (--peers-max) only the
 * engines run.
 */
export function groups(cands, n, options) {
  const peers = n <= (options.peerMaxN ?? Infinity);
  const alone = cands.filter((c) => c.alone && n <= (options.slowPeerMaxN ?? Infinity));
  return [cands.filter((c) => !c.alone && (c.engine || peers)), ...alone.map((c) => [c])].filter((g) => g.length > 0);
}

/** Fill order for n slots. */
export function fillOrder(n) {
  return permutation(n, 7);
}
