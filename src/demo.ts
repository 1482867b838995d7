/**
 * `gpuvm demo`: a short, realistic VM_BIND session through the public API,
 * told in a few lines and drawn as a picture.
 *
 * A GPU context maps the BOs of a frame (vertex buffer, texture, scratch,
 * ring), unmaps part of the texture and maps scratch memory over another part
 * (both split mappings), tries an atomic bind array that fails half way and
 * leaves everything as it was, and writes every op list into one page table.
 * The same page table then serves shared virtual memory: the GPU faults on a
 * malloc'ed heap (migrating one range to device memory), the CPU touches it
 * (the pages come back to RAM), and part of the heap is unmapped and
 * collected. Snapshots after each act are the frames of the HTML picture.
 */
import { GpuVmError } from './errors.js';
import { GpuVm } from './gpuvm.js';
import type { OpList } from './ops.js';
import { PageTable, type PtCommitCost, type PtSegment } from './page-table.js';
import { takeSnapshot, type VaSnapshot } from './render/snapshot.js';
import { CpuMm } from './svm/cpu-mm.js';
import { DevMem } from './svm/dev-mem.js';
import { SvmDriver } from './svm/driver.js';
import { Bo } from './vm-bo.js';
import type { BackendName } from './backend/loader.js';

export interface DemoResult {
  /** what happened, one readable line each */
  lines: string[];
  /** the state after each act; the last one is the final state */
  frames: VaSnapshot[];
}

const MiB = 0x100000;
const h = (v: number | bigint) => '0x' + v.toString(16);
const size = (v: number) => (v >= MiB ? `${v / MiB} MiB` : `${v / 1024} KiB`);

/** Runs the demo session on `backend` (default: the active engine) and releases everything it made. */
export function runDemo(options: { backend?: BackendName } = {}): DemoResult {
  const { backend } = options;
  const lines: string[] = [];
  const frames: VaSnapshot[] = [];
  const say = (s: string) => lines.push(s);

  // the GPU context: a 48-bit VA space with the first MiB kept by the kernel
  const vm = new GpuVm({ name: 'ctx0', start: 0, range: 2 ** 48, reserve: { start: 0, range: MiB }, backend });
  const pt = new PageTable({ backend });
  const mm = new CpuMm<number>({ backend });
  const devmem = new DevMem<number>({ size: 16 * MiB, backend });
  try {
    const base = new Map<Bo, number>();
    const bo = (name: string, bytes: number, pa: number) => {
      const b = new Bo({ name, size: bytes });
      base.set(b, pa);
      return b;
    };
    const vertex = bo('vertex', 2 * MiB, 0x8000_0000);
    const texture = bo('texture', 8 * MiB, 0x9000_0000);
    const scratch = bo('scratch', 4 * MiB, 0xa000_0000);
    const ring = bo('ring', 64 * 1024, 0xb000_0000);
    let driver: SvmDriver<number> | null = null;
    const names = new Map<Bo, string>([[vertex, '1'], [texture, '2'], [scratch, '3'], [ring, '4']]);
    // BOs are physically contiguous here: offset o of a BO lives at its base + o
    const resolve = (b: unknown, offset: number | bigint, length: number | bigint): PtSegment[] | null =>
      b instanceof Bo ? [[base.get(b)! + Number(offset), Number(length)]] : null;
    const snap = (label: string) =>
      frames.push(
        takeSnapshot({
          vm,
          pageTable: pt,
          svm: driver === null ? null : { mm, devmem, driver },
          boName: (b) => (b === null ? '0' : names.get(b) ?? b.name),
          label,
        }),
      );
    /** Commits an op list to the page table, applies it, and says what it did. */
    const commit = (what: string, ops: OpList<number>) => {
      const kinds = ops.toArray().map((op) => op.kind);
      const cost: PtCommitCost = pt.commit(ops, resolve);
      ops.apply();
      say(`  ${what}: ops ${kinds.join(', ')}; page table: ${cost.live} live entr${cost.live === 1 ? "y" : "ies"} written, ${cost.alloc} new table${cost.alloc === 1 ? "" : "s"}, ${cost.free} freed`);
    };

    const VA = 0x1_0000_0000;
    say(`GpuVm ${vm.name}: VA [0x0, ${h(2 ** 48)}), kernel keeps the first MiB; one page table (4K/2M/1G leaves)`);
    commit(`bind vertex (bo1) ${size(2 * MiB)} at ${h(VA)}`, vm.smMapOps({ addr: VA, range: 2 * MiB, bo: vertex, offset: 0 }));
    commit(`bind texture (bo2) ${size(8 * MiB)} at ${h(VA + 2 * MiB)}`, vm.smMapOps({ addr: VA + 2 * MiB, range: 8 * MiB, bo: texture, offset: 0 }));
    commit(`bind scratch (bo3) ${size(MiB)} at ${h(VA + 12 * MiB)}`, vm.smMapOps({ addr: VA + 12 * MiB, range: MiB, bo: scratch, offset: 0 }));
    commit(`bind ring (bo4) 64 KiB at ${h(VA + 16 * MiB)}`, vm.smMapOps({ addr: VA + 16 * MiB, range: 0x10000, bo: ring, offset: 0 }));
    snap('after the binds');

    commit(`unmap 1 MiB in the middle of the texture`, vm.smUnmapOps(VA + 5 * MiB, MiB));
    commit(`map scratch over 512 KiB of the texture`, vm.smMapOps({ addr: VA + 8 * MiB, range: MiB / 2, bo: scratch, offset: 2 * MiB }));
    say(`  the texture is now ${vm.findBo(texture)?.mappings().length ?? 0} mappings; ${vm.count} mappings in all`);
    snap('after splitting the texture');

    const before = vm.count;
    try {
      vm.bindArray([
        { op: 'map', addr: VA + 20 * MiB, range: MiB, bo: scratch, offset: 0 },
        { op: 'unmap', addr: VA, range: MiB },
        { op: 'map', addr: VA + 24 * MiB, range: MiB, bo: vertex, offset: 0, injectError: true },
      ]);
      say('  bindArray: applied (unexpected)');
    } catch (err) {
      if (!(err instanceof GpuVmError)) throw err;
      say(`  atomic bindArray of 3 binds, the third failing (${err.code}): unwound, still ${vm.count} mappings (was ${before})`);
    }

    // shared virtual memory on the same page table
    const heap = 0x7f00_0000_0000;
    const events = new Map<string, number>();
    driver = new SvmDriver<number>({
      mm,
      devmem,
      pageTable: pt,
      start: 0,
      range: 2 ** 47,
      notifierSize: 0x2000_0000,
      chunks: [2 * MiB, 0x10000, 0x1000],
      trace: (e) => events.set(e.type, (events.get(e.type) ?? 0) + 1),
    });
    const told = () => {
      const parts = [...events.entries()].map(([k, n]) => `${k}×${n}`).join(' ');
      events.clear();
      return parts;
    };
    mm.mmap(heap, 8 * MiB);
    say(`SVM: malloc'ed heap of 8 MiB at ${h(heap)}, device memory ${size(Number(devmem.size))}`);
    driver.fault(heap + 0x40, { devmem: true });
    say(`  GPU fault at ${h(heap + 0x40)} wanting device memory: ${told()}; device memory used ${size(Number(devmem.used))}`);
    driver.fault(heap + 2 * MiB + 0x80);
    say(`  GPU fault at ${h(heap + 2 * MiB + 0x80)} in system memory: ${told()}`);
    driver.fault(heap + 6 * MiB, { devmem: true });
    say(`  GPU fault at ${h(heap + 6 * MiB)} wanting device memory: ${told()}`);
    snap('after the GPU faults');

    mm.access(heap, 0x1000, { write: true });
    say(`  CPU writes ${h(heap)}: ${told()}; device memory used ${size(Number(devmem.used))}`);
    mm.munmap(heap + 2 * MiB, 2 * MiB);
    say(`  munmap 2 MiB at ${h(heap + 2 * MiB)}: ${told()}`);
    const removed = driver.gc();
    say(`  gc: ${removed} range${removed === 1 ? '' : 's'} removed (${told()}); ${driver.svm.ranges().length} ranges left`);
    const tr = pt.translate(heap + 6 * MiB);
    say(`  page table at ${h(heap + 6 * MiB)}: ${tr === null ? 'not mapped' : `pa ${h(tr.pa ?? 0)} (device memory), ${size(Number(tr.size))} leaf`}`);
    snap('final state');
    driver.fini();
  } finally {
    devmem.destroy();
    mm.destroy();
    pt.destroy();
    vm.destroy();
  }
  return { lines, frames };
}
