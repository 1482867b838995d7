/**
 * A picture's input: what a GpuVm, a PageTable and an SVM world hold at one
 * moment, copied into plain data with bigint addresses. Taking one only
 * reads (mapping iteration, a page-table walk, CpuMm/GpuSvm lookups); the
 * renderers are pure functions of it, so a replay, the demo and a test can
 * all draw the same way. Very large states are cut at `limit` records per
 * layer (and say so) rather than exhausting memory for a drawing.
 */
import type { GpuVm } from '../gpuvm.js';
import type { PageTable } from '../page-table.js';
import type { CpuMm, PageState, VmaKind } from '../svm/cpu-mm.js';
import type { DevMem } from '../svm/dev-mem.js';
import type { SvmDriver } from '../svm/driver.js';
import type { Bo } from '../vm-bo.js';

export interface SnapMapping {
  addr: bigint;
  range: bigint;
  /** the BO's name in the picture ('0' for a mapping without a BO) */
  bo: string;
  offset: bigint;
  /** the kernel-reserved node */
  kernel: boolean;
}

export interface SnapVm {
  start: bigint;
  range: bigint;
  mappings: SnapMapping[];
  truncated: boolean;
}

export interface SnapPtEntry {
  va: bigint;
  size: bigint;
  level: number;
  kind: 'leaf' | 'null' | 'dir';
  zapped: boolean;
}

export interface SnapPageTable {
  shifts: number[];
  top: number;
  leaf: number;
  span: bigint;
  /** tables and non-empty entries in use */
  tables: number;
  /** leaves, null leaves and directory entries in walk order (zapped ones included) */
  entries: SnapPtEntry[];
  truncated: boolean;
}

export interface SnapPageRun {
  start: bigint;
  size: bigint;
  state: PageState;
}

export interface SnapSvmRange {
  start: bigint;
  size: bigint;
  flags: string[];
  valid: boolean;
  bound: boolean;
  /** residency of the range's pages, in runs */
  pages: SnapPageRun[];
}

export interface SnapVma {
  start: bigint;
  size: bigint;
  readOnly: boolean;
  kind: VmaKind;
}

export interface SnapSvm {
  window: { start: bigint; range: bigint };
  notifiers: { start: bigint; size: bigint }[];
  ranges: SnapSvmRange[];
  vmas: SnapVma[];
  devmem: { size: bigint; used: bigint; allocations: number } | null;
  truncated: boolean;
}

export interface VaSnapshot {
  vm: SnapVm | null;
  pageTable: SnapPageTable | null;
  svm: SnapSvm | null;
  /** what the picture shows (a file name, the command that ended a frame) */
  label?: string;
}

/** The objects of an SVM world, as a replay or the demo holds them. */
export interface SvmWorld {
  mm: CpuMm<any>;
  devmem: DevMem<any> | null;
  driver: SvmDriver<any>;
}

export interface SnapshotSources {
  vm?: GpuVm<any> | null;
  /** how a BO is named in the picture (default: its name, or its id) */
  boName?: (bo: Bo | null) => string;
  pageTable?: PageTable<any> | null;
  svm?: SvmWorld | null;
  label?: string;
}

export interface SnapshotOptions {
  /** records kept per layer (default 200000) */
  limit?: number;
}

const big = (v: number | bigint): bigint => (typeof v === 'bigint' ? v : BigInt(v));

function defaultBoName(bo: Bo | null): string {
  if (bo === null) return '0';
  return bo.name !== undefined && bo.name !== '' ? String(bo.name) : String(bo.id);
}

function snapVm(vm: GpuVm<any>, name: (bo: Bo | null) => string, limit: number): SnapVm {
  const mappings: SnapMapping[] = [];
  let truncated = false;
  for (const va of vm.mappings()) {
    if (mappings.length >= limit) {
      truncated = true;
      break;
    }
    mappings.push({
      addr: big(va.addr),
      range: big(va.range),
      bo: va.isKernelNode ? '' : name(va.bo),
      offset: big(va.offset),
      kernel: va.isKernelNode,
    });
  }
  return { start: big(vm.start), range: big(vm.range), mappings, truncated };
}

function snapPageTable(pt: PageTable<any>, limit: number): SnapPageTable {
  const entries: SnapPtEntry[] = [];
  let truncated = false;
  for (const e of pt.walk(0, undefined, { dirs: true, zapped: true })) {
    if (e.post || e.kind === 'empty') continue;
    if (entries.length >= limit) {
      truncated = true;
      break;
    }
    entries.push({ va: big(e.va), size: big(e.size), level: e.level, kind: e.kind, zapped: e.zapped });
  }
  return {
    shifts: [...pt.shifts],
    top: pt.top,
    leaf: pt.leaf,
    span: big(pt.span),
    tables: pt.stats.tables,
    entries,
    truncated,
  };
}

function snapSvm(world: SvmWorld, limit: number): SnapSvm {
  const { mm, devmem, driver } = world;
  const svm = driver.svm;
  let truncated = false;
  const notifiers: SnapSvm['notifiers'] = [];
  const ranges: SnapSvmRange[] = [];
  for (const n of svm.notifiers()) {
    notifiers.push({ start: big(n.start), size: big(n.size) });
    for (const r of n.ranges()) {
      if (ranges.length >= limit) {
        truncated = true;
        break;
      }
      const pages = mm.pages(r.start, r.size).map((p) => ({ start: big(p.start), size: big(p.size), state: p.state }));
      ranges.push({ start: big(r.start), size: big(r.size), flags: r.flagNames, valid: r.valid, bound: r.bound, pages });
    }
  }
  const vmas = mm.vmas().slice(0, limit).map((v) => ({ start: big(v.start), size: big(v.size), readOnly: v.readOnly, kind: v.kind }));
  if (vmas.length >= limit) truncated = true;
  const dm = devmem !== null && big(devmem.size) > 0n ? devmem : null;
  return {
    window: { start: big(svm.start), range: big(svm.range) },
    notifiers,
    ranges,
    vmas,
    devmem: dm === null ? null : { size: big(dm.size), used: big(dm.used), allocations: dm.allocationCount },
    truncated,
  };
}

/** Copies what the given objects hold now into a VaSnapshot. */
export function takeSnapshot(sources: SnapshotSources, options: SnapshotOptions = {}): VaSnapshot {
  const limit = options.limit ?? 200_000;
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  const vm = sources.vm && !sources.vm.destroyed ? snapVm(sources.vm, sources.boName ?? defaultBoName, limit) : null;
  const pageTable = sources.pageTable && !sources.pageTable.destroyed ? snapPageTable(sources.pageTable, limit) : null;
  const svm = sources.svm && !sources.svm.mm.destroyed && !sources.svm.driver.svm.finished ? snapSvm(sources.svm, limit) : null;
  return { vm, pageTable, svm, ...(sources.label !== undefined ? { label: sources.label } : {}) };
}
