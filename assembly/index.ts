// Marshalling: the module's exports, one function per GpuVmEngine method of
// src/backend/engine.ts (twin of native/addon.cc). Arguments are small
// integers; everything else goes through the io transfer area at ioPtr(),
// which JS views as a Uint32Array over memory.buffer (re-created when the
// memory grows). The page-table engine's exports come from page_table_api,
// the span maps' from span_map_api.

import { io } from "./io";

/** Byte offset of the io area (IO_WORDS u32 words) in linear memory; fixed for the module's life. */
export function ioPtr(): usize {
  return io;
}

export {
  vmCreate, vmDestroy, vmStats,
  vaInsert, vaRemove, vaLink, vaUnlink, vaGet, vaSetFlags,
  findFirst, findFirstBatch, iterate,
  smMapOps, smUnmapOps, prefetchOps, madviseOps, vmboUnmapOps,
  opsRead, opsApply, opsDrop,
  bind, unbind, smMapApply, smUnmapApply, submit,
  txStage, txClear, txRun,
  vmboCreate, vmboGet, vmboPut, vmboInfo, vmboMappings, vmboReap,
  memSetLimit, memStats,
} from "./gpuvm";

export * from "./page_table_api";
export * from "./span_map_api";
