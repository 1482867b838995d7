/**
 * The engines' memory budget. Each engine instance (one per thread and
 * package copy: the native addon instance or the WASM instance) keeps all its
 * records (mappings, tree nodes, VmBos, op lists, page tables) in storage it
 * accounts for. A limit makes every call that would grow that storage past it
 * fail with ENOMEM and change nothing, instead of the process dying or the
 * WASM engine trapping; raising the limit lets the same VMs go on.
 */
import { IO, ioOf } from './backend/engine.js';
import { engineFor, type BackendName } from './backend/loader.js';
import { GpuVmError } from './errors.js';
import { describe, getNum, putU64 } from './u64.js';
import { noteEngineLimit, settleDeferred } from './vm-context.js';

export interface EngineMemory {
  /** the engine measured */
  readonly backend: BackendName;
  /** bytes of engine storage in use (WASM: the instance's linear memory) */
  readonly used: number;
  /** the limit in bytes, or null when only the platform limits it */
  readonly limit: number | null;
}

/** What the engine (the default one, or the one named) holds, and its limit. */
export function engineMemory(backend?: BackendName): EngineMemory {
  const E = engineFor(backend);
  settleDeferred(); // what a deferred list holds counts
  E.memStats();
  const io = ioOf(E);
  const limit = getNum(io, IO.OUT_INFO + 2, 'limit');
  return { backend: E.name, used: getNum(io, IO.OUT_INFO, 'used'), limit: limit === 0 ? null : limit };
}

/**
 * Caps the engine's storage at `bytes` (null: no cap but the platform's).
 * A cap below what is in use only refuses further growth; nothing is freed.
 */
export function setEngineMemoryLimit(bytes: number | bigint | null, backend?: BackendName): void {
  if (backend !== undefined) engineFor(backend); // checks the name before anything else
  if (bytes !== null) {
    if (typeof bytes !== 'number' && typeof bytes !== 'bigint') {
      throw new TypeError(`bytes must be a number, a bigint or null, got ${describe(bytes)}`);
    }
    if (bytes <= 0) throw new RangeError(`bytes must be positive (null removes the limit), got ${describe(bytes)}`);
    putU64(new Uint32Array(2), 0, bytes, 'bytes', true);
  }
  const E = engineFor(backend);
  settleDeferred(); // made as it was asked for, before the limit applies
  const io = ioOf(E);
  putU64(io, IO.ARG, bytes ?? 0, 'bytes', true);
  const r = E.memSetLimit();
  if (r < 0) throw new GpuVmError('EINVAL', `setEngineMemoryLimit: the ${E.name} engine refused ${describe(bytes)}`);
  // with a limit, making a list may fail: lists are then made when asked for
  noteEngineLimit(E, bytes !== null);
}
