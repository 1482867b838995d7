// A VM_BIND session: map two buffer objects, punch a hole, and watch the
// split/merge operations a driver would turn into page-table updates.
// Run: node examples/vm-bind.mjs
import { GpuVm, Bo, GpuVmError, backend } from 'gpuvm';

const vm = new GpuVm({ name: 'ctx0', start: 0x100000, range: 2 ** 40 });
const color = new Bo({ name: 'color', size: 0x10000 });
const depth = new Bo({ name: 'depth', size: 0x10000 });

vm.bind(0x200000, 0x10000, color, 0);
vm.bind(0x210000, 0x8000, depth, 0);

// ops-list mode: look at what an unmap in the middle of `color` would do first
const ops = vm.smUnmapOps(0x204000, 0x2000);
for (const op of ops) {
  if (op.kind === 'remap') {
    const piece = (p) => (p ? `0x${p.addr.toString(16)}+0x${p.range.toString(16)}` : '-');
    console.log(`remap: keeps ${piece(op.prev)} below and ${piece(op.next)} above the hole`);
  } else {
    console.log(op.kind);
  }
}
ops.apply();

for (const va of vm.mappings()) {
  console.log(`0x${va.addr.toString(16)} 0x${va.range.toString(16)} ${va.bo?.name ?? '-'} off=0x${va.offset.toString(16)}`);
}

// bad requests are errno-coded errors and change nothing: this one starts
// below the VA space
try {
  vm.bind(0x1000, 0x1000, color, 0);
} catch (err) {
  console.log(err instanceof GpuVmError ? `refused: ${err.code}` : err);
}
console.log(`${vm.count} mappings on the ${backend.name} engine`);
vm.destroy();
