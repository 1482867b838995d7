/**
 * kernel-stream: the kernel-stream workload (src/workload.ts: 1e5 random
 * map / unmap requests in a 256 MiB window, seed 1), the stream a userspace
 * build of the kernel's own algorithm is measured on as well.
 *
 * Generation is outside the timed region. One timed call runs the whole
 * stream on a fresh VM: op generation, application, VmBo bookkeeping and
 * release of the op lists, then the VM's destruction (a few thousand
 * mappings, negligible next to 1e5 requests). Reported: ns per request.
 *
 * Rows per engine: fused bind/unbind calls; `-batched`, the stream through
 * vm.submit; `-opslist`, smMapOps / smUnmapOps then apply, the ops unread;
 * `-opslist-read`, the same with every op read first, as drivers do.
 *
 * Before timing, each impl runs the stream once untimed and its final state is
 * checked against the table (mapping count and checksum; for the op-list and
 * peer impls also the applied map / remap / unmap counts). An impl that does
 * not reproduce the table is reported as an error (ctx.error) and not timed.
 */
import { generate, checksum, EXPECTED, VM_START, VM_RANGE } from '../workload.mjs';
import { SortedBtreeVm } from '../peers/sorted-btree-vm.mjs';
import { IntervalTreeVm } from '../peers/interval-tree-vm.mjs';
import { fresh, interleave, facadeBos, facadeState } from '../harness.mjs';

/** Facade, fused calls. bos[id] is a Bo or null. */
function streamFused(vm, w, bos) {
  const { kind, addr, range, bo, offset } = w;
  for (let i = 0, n = w.n; i < n; i++) {
    if (kind[i] === 0) vm.unbind(addr[i], range[i]);
    else vm.bind(addr[i], range[i], bos[bo[i]], offset[i]);
  }
}

/** The stream as one BindRequests batch (built outside the timed region); bo index = workload id (bos[0] is null). */
function batchOf(BindRequests, w) {
  const r = new BindRequests(w.n);
  for (let i = 0; i < w.n; i++) {
    r.kind[i] = w.kind[i] === 0 ? BindRequests.UNBIND : BindRequests.BIND;
    r.addr[i] = w.addr[i];
    r.range[i] = w.range[i];
    r.offset[i] = w.offset[i];
    r.bo[i] = w.bo[i];
  }
  r.length = w.n;
  return r;
}

/** Facade, ops-list mode: generate the list, apply it. counts: null or { map, remap, unmap }. */
function streamOpsList(vm, w, bos, counts) {
  const { kind, addr, range, bo, offset } = w;
  for (let i = 0, n = w.n; i < n; i++) {
    const ops =
      kind[i] === 0
        ? vm.smUnmapOps(addr[i], range[i])
        : vm.smMapOps({ addr: addr[i], range: range[i], bo: bos[bo[i]], offset: offset[i] });
    if (counts !== null) for (const op of ops) counts[op.kind]++;
    ops.apply();
  }
}

/** Peers: bo is the workload id itself. */
function streamPeer(vm, w) {
  const { kind, addr, range, bo, offset } = w;
  for (let i = 0, n = w.n; i < n; i++) {
    if (kind[i] === 0) vm.unbind(addr[i], range[i]);
    else vm.bind(addr[i], range[i], bo[i], offset[i]);
  }
}

/** -> null, or what is wrong */
function verify(expected, { count, checksum: sum, ops }) {
  const problems = [];
  if (count !== expected.mappings) problems.push(`final mappings ${count}, expected ${expected.mappings}`);
  if (sum !== expected.checksum) problems.push(`checksum ${sum}, expected ${expected.checksum}`);
  if (ops) {
    for (const k of /** @type {const} */ (['map', 'remap', 'unmap'])) {
      if (ops[k] !== expected.ops[k]) problems.push(`applied ${k} ops ${ops[k]}, expected ${expected.ops[k]}`);
    }
  }
  return problems.length ? problems.join('; ') : null;
}

export default {
  name: 'kernel-stream',
  description: 'kernel-stream workload (N=1e5, seed 1): ns per request, checksum verified',
  async run(ctx) {
    const { options, gpuvm } = ctx;
    const n = options.streamN ?? 100000;
    const seed = 1;
    const expected = EXPECTED[n];
    if (!expected) throw new Error(`kernel-stream: no expected results for N=${n}`);
    const w = generate(n, seed);
    /** @type {{ impl: string, fn: () => unknown, opsPerCall: number, checksum: string }[]} */
    const cases = [];

    if (gpuvm) {
      const { GpuVm, Bo } = gpuvm;
      const { bos, ids } = facadeBos(Bo);
      /**
       * Runs `stream` once untimed on a fresh VM and checks the final state
       * (and, when `counts` is given, the applied op counts); a candidate that
       * reproduces the table is timed on a fresh VM per call.
       */
      const addCase = (impl, make, stream, counts) => {
        const vm = make();
        stream(vm, counts);
        const c = checksum(facadeState(vm, ids));
        const wrong = verify(expected, { count: vm.count, checksum: c.checksum, ops: counts });
        vm.destroy();
        if (wrong) {
          ctx.error(`kernel-stream: ${impl} does not reproduce the workload: ${wrong}; not timed`);
          return;
        }
        cases.push({
          impl,
          fn: () => {
            const v = make();
            stream(v, null);
            v.destroy();
          },
          opsPerCall: n,
          checksum: c.checksum,
        });
      };
      // the harness hands over GpuVm and Bo only; the batch class comes from the same build
      const { BindRequests } = await import('../../dist/index.js');
      const reqs = batchOf(BindRequests, w);
      for (const backend of gpuvm.backends) {
        const make = () => new GpuVm({ name: `bench-${backend}`, start: VM_START, range: VM_RANGE, backend });
        const fused = fresh(streamFused);
        const opsList = fresh(streamOpsList);
        const opsRead = fresh(streamOpsList);
        addCase(backend, make, (vm) => fused(vm, w, bos), undefined);
        // batched: vm.submit, one engine crossing per 8192 requests
        addCase(`${backend}-batched`, make, (vm) => vm.submit(reqs, bos), undefined);
        // op lists applied unread (the check run reads them to count the ops)
        addCase(`${backend}-opslist`, make, (vm, counts) => opsList(vm, w, bos, counts), { map: 0, remap: 0, unmap: 0 });
        // op lists as drivers use them: every op read, then the list applied
        const tally = { map: 0, remap: 0, unmap: 0 };
        addCase(`${backend}-opslist-read`, make, (vm, counts) => opsRead(vm, w, bos, counts ?? tally), { map: 0, remap: 0, unmap: 0 });
      }
    }

    for (const [impl, Peer] of /** @type {const} */ ([
      ['sorted-btree', SortedBtreeVm],
      ['interval-tree', IntervalTreeVm],
    ])) {
      const loop = fresh(streamPeer);
      const vm = new Peer({ start: VM_START, range: VM_RANGE });
      loop(vm, w);
      const c = checksum(vm.mappings());
      const wrong = verify(expected, { count: vm.count, checksum: c.checksum, ops: vm.applied });
      if (wrong) ctx.error(`kernel-stream: ${impl} does not reproduce the workload: ${wrong}; not timed`);
      else cases.push({
        impl,
        fn: () => loop(new Peer({ start: VM_START, range: VM_RANGE }), w),
        opsPerCall: n,
        checksum: c.checksum,
      });
    }

    const res = interleave(cases, { rounds: options.rounds, maxTime: options.streamMaxTime, minSamples: options.streamMinSamples });
    for (const c of cases) {
      const r = /** @type {{ nsPerOp: number, rounds: number[], rme: number }} */ (res.get(c.impl));
      ctx.report({ suite: 'kernel-stream', impl: c.impl, n, nsPerOp: r.nsPerOp, checksum: c.checksum, rounds: r.rounds });
    }
  },
};
