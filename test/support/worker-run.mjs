// Worker entry: imports the built package, runs the streams it is asked for
// and posts their digests. With no streams it only imports gpuvm and makes a
// page table and a VM (the old bug: that alone broke the main thread).
import { parentPort, workerData } from 'node:worker_threads';
import { runStream } from './worker-stream.mjs';

const gpuvm = await import(workerData.dist);
const out = [];
if (workerData.streams.length === 0) {
  for (const backend of workerData.backends) {
    const pt = new gpuvm.PageTable({ backend });
    pt.bind(0x200000, 0x1000, [[0x7000, 0x1000]]);
    const vm = new gpuvm.GpuVm({ start: 0, range: 2 ** 32, backend });
    vm.bind(0x1000, 0x1000, new gpuvm.Bo({ size: 0x1000 }), 0);
  }
}
for (const { backend, seed } of workerData.streams) out.push(runStream(gpuvm, backend, seed));
parentPort.postMessage(out);
