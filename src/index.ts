/**
 * gpuvm: Linux's GPU virtual-memory machinery for Node.js.
 * The public surface; see README.md for the API at a glance.
 */
export { GpuVm } from './gpuvm.js';
export type { GpuVmImpl } from './gpuvm.js';
export { MAX_BATCH } from './gpuvm.js';
export type { GpuVmOptions, GpuVmBaseOptions, GpuVmConstructor, MapRequest, BindEntry, SmSteps, GpuVmStats, MirrorOptions } from './gpuvm.js';
export { BindRequests } from './submit.js';
export type { BindRequestsImpl } from './submit.js';
export type { BindRequestsConstructor, U64Array } from './submit.js';
export { GpuVa } from './gpu-va.js';
export { Bo, VmBo } from './vm-bo.js';
export type { BoOptions } from './vm-bo.js';
export { OpList } from './ops.js';
export type { Op, MapOp, UnmapOp, RemapOp, PrefetchOp, OpMapping, OpListState } from './ops.js';
export { GpuVmError } from './errors.js';
export type { ErrnoName } from './backend/engine.js';
export { Errno } from './backend/engine.js';
export { availableBackends, backendInfo, packageVersion } from './backend/loader.js';
export { engineMemory, setEngineMemoryLimit } from './engine-memory.js';
export type { EngineMemory } from './engine-memory.js';
import { backendInfo as info, type BackendInfo as Info } from './backend/loader.js';
/**
 * The engine in use by default (`backend.name`), what GPUVM_BACKEND asked for
 * and, in auto mode, why native was skipped (`backend.reason`). Read lazily:
 * importing gpuvm loads no engine until something needs one.
 */
export const backend: Info = {
  get name() {
    return info().name;
  },
  get requested() {
    return info().requested;
  },
  get reason() {
    return info().reason;
  },
};
export type { BackendName, BackendInfo } from './backend/loader.js';
export type { U64 } from './u64.js';
export type { BigintOption } from './options.js';
export { replay } from './replay.js';
export type { ReplayOptions } from './replay.js';
/** The kernel-stream workload (request generator, checksum, reference results) that `gpuvm bench` runs. */
export * as workload from './workload.js';
export type { PageTableImpl } from './page-table.js';
export { PageTable, DEFAULT_SHIFTS, DEFAULT_MAX_ENTRIES_PER_CALL } from './page-table.js';
export type {
  PageTableOptions,
  PageTableBaseOptions,
  PageTableConstructor,
  PtCost,
  PtCommitCost,
  PtBatchEntry,
  PtSegment,
  PtTranslation,
  PtEntryKind,
  PtEntry,
  PtWalkOptions,
  PtResolve,
  PtCommitOptions,
  PtBacking,
} from './page-table.js';
export { CpuMm, MmuNotifier } from './svm/cpu-mm.js';
export type { CpuMmOptions, Vma, VmaKind, PageRun, PageState, MmEvent, MmInvalidation, MmuNotifierCallback } from './svm/cpu-mm.js';
export { DevMem, DevAllocation } from './svm/dev-mem.js';
export type { DevMemOptions, DevMemHooks, DevRun } from './svm/dev-mem.js';
export { GpuSvm, SvmRange, SvmNotifier, formatSvmEvent } from './svm/gpu-svm.js';
export type { GpuSvmOptions, SvmEvent, SvmTrace, SvmInvalidate, GetPagesHooks, PagesKind } from './svm/gpu-svm.js';
export { SvmDriver, ARRIVAL_POINTS } from './svm/driver.js';
export type { SvmDriverOptions, FaultOptions, SvmHooks, ArrivalPoint } from './svm/driver.js';
