// Shared virtual memory: a GPU page fault on memory the CPU mmapped, served
// by the reference driver (find the range, migrate it to device memory, map
// the pages, bind them in the page table), then a CPU touch that moves it back.
// Run: node examples/svm-fault.mjs
import { CpuMm, DevMem, SvmDriver, PageTable, formatSvmEvent } from 'gpuvm';

const mm = new CpuMm();
const pageTable = new PageTable();
const driver = new SvmDriver({
  mm,
  devmem: new DevMem({ size: 0x4000000 }),
  pageTable,
  start: 0,
  range: 2 ** 40,
  notifierSize: 0x20000000,
  chunks: [0x200000, 0x10000, 0x1000],
  trace: (e) => console.log('  ' + formatSvmEvent(e)),
});

mm.mmap(0x10000000, 0x1000000); // 16 MiB of anonymous memory
console.log('GPU fault at 0x10000040, device memory wanted:');
driver.fault(0x10000040, { devmem: true });
console.log('GPU sees 0x10000040 at', `0x${pageTable.translate(0x10000040).pa.toString(16)}`);

console.log('CPU touches the first page:');
mm.access(0x10000000, 0x1000);
console.log('GPU mapping after the CPU touch:', pageTable.translate(0x10000040));
