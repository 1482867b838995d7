/**
 * gpuvm: Linux's GPU virtual-memory machinery for Node.js.
 * The public surface; see README.md for the API at a glance.
 */
export { GpuVm } from './gpuvm.js';
export type { GpuVmOptions, MapRequest, BindEntry, SmSteps, GpuVmStats } from './gpuvm.js';
export { GpuVa } from './gpu-va.js';
export { Bo, VmBo } from './vm-bo.js';
export type { BoOptions } from './vm-bo.js';
export { OpList } from './ops.js';
export type { Op, MapOp, UnmapOp, RemapOp, PrefetchOp, OpMapping, OpListState } from './ops.js';
export { GpuVmError } from './errors.js';
export type { ErrnoName } from './backend/engine.js';
export { availableBackends, backendInfo, packageVersion } from './backend/loader.js';
export type { BackendName, BackendInfo } from './backend/loader.js';
export type { U64 } from './u64.js';
export { replay } from './replay.js';
export { PageTable, DEFAULT_SHIFTS } from './page-table.js';
export type {
  PageTableOptions,
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
