/**
 * The engine contract: what the facade may ask of an engine (native C++ or
 * AssemblyScript WASM). Both engines implement exactly this, with the same
 * algorithms, and must give bit-identical results.
 *
 * Why it looks like this (crossing the boundary is the expensive part):
 * - every public call is one engine call; arguments go through a transfer
 *   area of u32 words (`io`) shared once at start-up, so a call passes at most
 *   a handle and a few small integers;
 * - u64 values travel as two u32 words, low word first, so number-mode
 *   callers never pay for BigInt;
 * - engine objects (VMs, mappings, VmBos) are integer handles; 0 means none;
 * - results that are lists (op lists, lookups, iteration) are written into
 *   the DATA part of io; longer lists are fetched in chunks.
 *
 * Return values: a number >= 0 is a result; a negative number is a Linux
 * errno, negated (see Errno). Engines validate everything they are given and
 * change nothing when they return an error.
 *
 * io layout (u32 word indices):
 *   ARG   [0, 32)    call arguments
 *   OUT   [32, 64)   small results
 *   DATA  [64, 64 + DATA_WORDS)   records in and out
 */

/** Linux errno values the engines return (negated). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  E2BIG: 7,
  EIO: 5,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ENODATA: 61,
  EOPNOTSUPP: 95,
} as const;
export type ErrnoName = keyof typeof Errno;

export const IO = {
  ARG: 0,
  OUT: 32,
  DATA: 64,
  /** words in DATA */
  DATA_WORDS: 16 * 4096,
  /** total words */
  WORDS: 64 + 16 * 4096,
  /** OUT word: zombie VmBo count of the VM a mutating call worked on */
  OUT_ZOMBIES: 32,
  /** OUT word: serial of a mapping created by vaInsert */
  OUT_SERIAL: 33,
  /** OUT words 34..37: handles/serials created by a single-op apply (map: h,s; remap: prevH,prevS,nextH,nextS) */
  OUT_CREATED: 34,
  /** OUT word: index of the failing entry of a failed txRun */
  OUT_FAIL_INDEX: 38,
  /** OUT word: the VmBo a bind / smMapOps with VMBO_MAKE made and kept, else 0 */
  OUT_MADE_VMBO: 39,
  /** OUT words: vmboInfo results (refcount, mapping count, boId), vmStats results (tree nodes, bytes), memStats results (u64 used, u64 limit) */
  OUT_INFO: 40,
  /**
   * OUT word: how many VmBos a successful bind, unbind, smMapApply,
   * smUnmapApply or opsApply released itself (zombies), their handles in the
   * words after it (at most OUT_REAP_MAX); 0 after a failure. Zombies beyond
   * those stay, counted at OUT_ZOMBIES, for vmboReap.
   */
  OUT_REAPED: 48,
} as const;
/** Most handles a call that applies ops reports at OUT_REAPED + 1... */
export const OUT_REAP_MAX = 15;

/**
 * A map request's VmBo word (A7 of bind / smMapOps) asking the engine to make
 * the VmBo of the request's BO (the VM has none): made before the request
 * runs, its creation reference dropped after it, as vmboCreate, the call and
 * vmboPut would do. It stays (handle at OUT_MADE_VMBO) when the request linked
 * a mapping to it or left a pending list mapping to it; else it is gone.
 */
export const VMBO_MAKE = 0xffff_ffff;

/** Op record: 16 words. */
export const OP_WORDS = 16;
/** Ops that fit in DATA at once. */
export const OPS_PER_CHUNK = IO.DATA_WORDS / OP_WORDS; // 4096
/**
 * Op record layout (words):
 *  0 kind | (keep << 8) | (hasPrev << 9) | (hasNext << 10)
 *  1 map: VmBo handle linked on apply (0 none); others: existing mapping handle
 *  2 map: 0; others: that mapping's serial
 *  3 BO id (map: the request's; others: the mapping's), 0 = no BO
 *  4,5 addr   (map: request; others: the existing mapping)
 *  6,7 range  (same)
 *  8,9 offset (same)
 *  10,11 remap: range of prev (prev starts at addr with offset); else 0
 *  12,13 remap: addr of next (next ends where the mapping ends); else 0
 *  14,15 remap: offset of next; else 0
 */
export const OpKind = { MAP: 1, REMAP: 2, UNMAP: 3, PREFETCH: 4 } as const;
export const OP_KEEP = 1 << 8;
export const OP_HAS_PREV = 1 << 9;
export const OP_HAS_NEXT = 1 << 10;

/** Mapping (VA) record: 12 words. */
export const VA_WORDS = 12;
export const VAS_PER_CHUNK = Math.floor(IO.DATA_WORDS / VA_WORDS);
/**
 * VA record layout (words):
 *  0 handle, 1 serial, 2 BO id (0 none), 3 flags (GpuVa flags, user-visible)
 *  4,5 addr, 6,7 range, 8,9 offset
 *  10 VmBo handle it is linked to (0 none)
 *  11 attributes: bit 0 kernel-reserved node, bit 1 in the tree
 */
export const VA_ATTR_KERNEL = 1;
export const VA_ATTR_INSERTED = 2;

/** bindArray (transaction) entry: 12 words. */
export const TX_WORDS = 12;
export const TX_PER_CHUNK = Math.floor(IO.DATA_WORDS / TX_WORDS);
/**
 * Transaction entry layout (words):
 *  0 kind | (injectError << 8)      kinds: TxKind
 *  1 BO id (map), 2 VmBo handle (map: linked on apply; unmapAll: whose mappings go)
 *  3 reserved (0)
 *  4,5 addr, 6,7 range, 8,9 offset, 10,11 reserved (0)
 */
export const TxKind = { MAP: 1, UNMAP: 2, PREFETCH: 3, UNMAP_ALL: 4 } as const;
export const TX_INJECT_ERROR = 1 << 8;

/** Batched submission request record: 8 words. */
export const SUBMIT_WORDS = 8;
/** Requests that fit in DATA at once. */
export const SUBMIT_PER_CHUNK = IO.DATA_WORDS / SUBMIT_WORDS; // 8192
/**
 * Submission request layout (words):
 *  0 kind (SubmitKind) | flags (bind: SUBMIT_MAKE, SUBMIT_SAME); the engine overwrites it
 *    with the request's result as an i32: op count, or -errno
 *  1 bind: VmBo handle linked to (0 = no BO; the BO is the VmBo's); unbind: ignored
 *  2,3 addr, 4,5 range, 6,7 offset (unbind: ignored)
 */
export const SubmitKind = { BIND: 1, UNBIND: 2 } as const;
/**
 * Bind flag: word 1 is a BO id the VM has no VmBo for; the engine makes the
 * VmBo as a bind with VMBO_MAKE does and writes its handle to word 1 (0 when
 * it did not stay).
 */
export const SUBMIT_MAKE = 1 << 9;
/**
 * Bind flag: word 1 is the index (in this chunk) of an earlier record; the
 * bind uses the VmBo handle in that record's word 1 (where SUBMIT_MAKE left
 * the VmBo it made), and stops the batch like a VmBo that is not live when
 * that word is 0.
 */
export const SUBMIT_SAME = 1 << 10;

/**
 * The GpuVm part of the engine. Arguments named `A<i>` are io[ARG + i].
 * "addr(A0)" means a u64 in io[A0] (low), io[A0+1] (high).
 *
 * Pending op list: each VM has at most one. Generating a list (smMapOps,
 * smUnmapOps, prefetchOps, madviseOps, vmboUnmapOps) or running a fused call
 * (bind, unbind, txRun) replaces an untouched pending list, but fails with
 * EBUSY while a list is partly applied. Generation reserves everything its
 * application needs (mapping records, tree nodes), so applying it cannot fail
 * for lack of memory.
 *
 * Every call that changes mappings or VmBo refcounts writes the VM's zombie
 * VmBo count to io[OUT_ZOMBIES]: VmBos whose refcount reached 0 while
 * mappings were unlinked inside the engine. Their handles stay reserved until
 * vmboReap hands them to the facade (like drm_gpuvm_bo_deferred_cleanup).
 * The calls that apply ops (bind, unbind, smMapApply, smUnmapApply,
 * opsApply) release the zombies themselves when they succeed and report
 * them at OUT_REAPED: the facade reaps right after every call anyway, and
 * this saves that crossing.
 */
export interface GpuVmEngine {
  /** 'native' or 'wasm' */
  readonly name: 'native' | 'wasm';
  /** The transfer area, fetched again (a grown WASM memory detaches the last view). */
  io(): Uint32Array;
  /**
   * The transfer area as ioOf last fetched it (read it with ioOf, which
   * keeps it current). A property load costs less than a call, and stays
   * cheap in a process that runs both engines, where the facade's `io()`
   * call sites would see two functions.
   */
  ioView: Uint32Array;

  /** start(A0) range(A2) reserveStart(A4) reserveRange(A6) -> VM handle, or -EINVAL (zero range, overflow, reserve not inside) */
  vmCreate(): number;
  /** Releases the VM and everything in it. -> 0, or -EINVAL (bad handle) */
  vmDestroy(vm: number): number;
  /** -> number of mappings, kernel node excluded. Writes OUT_INFO+0 = tree nodes in use, OUT_INFO+1 = bytes in use by this VM. */
  vmStats(vm: number): number;

  /** addr(A0) range(A2) offset(A4) boId(A6) flags(A7): insert a new, unlinked mapping. -> handle, serial in OUT_SERIAL; -EINVAL, -EEXIST */
  vaInsert(vm: number): number;
  /** Remove from the tree. An unlinked mapping is released. -> 0, -EINVAL (stale or not inserted), -EPERM (kernel node) */
  vaRemove(vm: number, va: number, serial: number): number;
  /** Link to a VmBo (takes a VmBo reference). -> 0, -EINVAL (stale, no BO, BO mismatch, already linked, bad VmBo) */
  vaLink(vm: number, va: number, serial: number, vmbo: number): number;
  /** Unlink (drops the VmBo reference; may make it a zombie). A mapping not in the tree is released. -> 0 (also when not linked), -EINVAL (stale) */
  vaUnlink(vm: number, va: number, serial: number): number;
  /** -> 1 and the VA record at DATA if live, 0 if the handle/serial no longer names a mapping */
  vaGet(vm: number, va: number, serial: number): number;
  /** Set the user-visible flags word. -> 0, -EINVAL (stale) */
  vaSetFlags(vm: number, va: number, serial: number, flags: number): number;

  /** addr(A0) last(A2, inclusive): the lowest mapping overlapping [addr, last]. -> handle (record at DATA) or 0 */
  findFirst(vm: number): number;
  /**
   * n <= VAS_PER_CHUNK queries at DATA, 4 words each (addr, last); result i is
   * a whole VA record at DATA + VA_WORDS*i (handle 0 when none), written in
   * place from the last query down. -> number found
   */
  findFirstBatch(vm: number, n: number): number;
  /** addr(A0) last(A2): up to `max` VA records of mappings overlapping [addr, last], ascending, at DATA. -> count */
  iterate(vm: number, max: number): number;

  /** addr(A0) range(A2) offset(A4) boId(A6) vmbo(A7, or VMBO_MAKE) -> op count (first chunk at DATA), or -EINVAL/-EBUSY */
  smMapOps(vm: number): number;
  /** addr(A0) range(A2) -> op count, or -EINVAL/-EBUSY */
  smUnmapOps(vm: number): number;
  /** addr(A0) range(A2) -> op count (kernel node excluded), or -EINVAL/-EBUSY */
  prefetchOps(vm: number): number;
  /** addr(A0) range(A2): split BO-less mappings at the request edges (drm_gpuvm_madvise_ops_create). -> op count */
  madviseOps(vm: number): number;
  /** UNMAP(keep=0) for every mapping linked to the VmBo, in link order. -> op count, or -EINVAL/-EBUSY */
  vmboUnmapOps(vm: number, vmbo: number): number;
  /** Copy up to OPS_PER_CHUNK ops of the pending list starting at `from` into DATA. -> count copied */
  opsRead(vm: number, from: number): number;
  /**
   * Apply pending ops [from, to). `from` must be >= the next unapplied index;
   * ops skipped over are dropped. Applying the last op clears the list.
   * A single-op apply writes created handles to OUT_CREATED.
   * -> 0, or -EINVAL (no list / out of order), -EEXIST (the VM was changed behind the list's back)
   */
  opsApply(vm: number, from: number, to: number): number;
  /** Drop the pending list without applying the rest. -> 0 */
  opsDrop(vm: number): number;

  /** Fused smMapOps + apply, no op output. Same args; releases its zombies (OUT_REAPED). -> op count or -errno */
  bind(vm: number): number;
  /** Fused smUnmapOps + apply. Same args; releases its zombies (OUT_REAPED). -> op count or -errno */
  unbind(vm: number): number;
  /**
   * smMapOps, then opsApply of the whole list, in one call (same args and
   * errors; ring(A8) room(A9)). The list's records go to the record ring
   * (setRing) at word `ring` when they fit in its `room` words there (ring
   * a multiple of OP_WORDS, ring + room within the ring; else room counts
   * as 0), otherwise the first OPS_PER_CHUNK to DATA; a list longer than
   * that stays readable through opsRead (as an applied list), a shorter one
   * leaves none. Releases its zombies (OUT_REAPED). -> op count or -errno
   */
  smMapApply(vm: number): number;
  /** addr(A0) range(A2) ring(A8) room(A9): smUnmapOps, then opsApply of the whole list, as smMapApply. -> op count or -errno */
  smUnmapApply(vm: number): number;
  /**
   * Native only (a WASM module cannot write outside its memory): makes
   * `buffer` (a multiple of OP_WORDS words) the record ring smMapApply /
   * smUnmapApply write to, in place of the last one, which the engine then
   * lets go. -> 0, or -EINVAL (not an ArrayBuffer, or a bad size)
   */
  setRing?(buffer: ArrayBuffer): number;
  /**
   * n <= SUBMIT_PER_CHUNK request records at DATA, run in order, each exactly
   * as bind/unbind runs the same arguments (same checks, same step, nothing
   * changed when it fails); a bad kind or flag is -EINVAL. Each result
   * replaces its record's word 0. Stops after the first request that fails
   * with -ENOMEM, and before a bind whose VmBo handle is not a live VmBo of
   * the VM (not run, word 0 untouched): the caller creates the VmBo (or
   * finds it was reaped) and submits again from there, so VmBos come and go
   * where a sequence of bind calls would make and reap them.
   * -> requests run (including an -ENOMEM one), or -EINVAL (bad VM, n too large)
   */
  submit(vm: number, n: number): number;

  /** Append n transaction entries from DATA to the VM's staged transaction. -> staged count or -EINVAL */
  txStage(vm: number, n: number): number;
  /** Drop the staged transaction. -> 0 */
  txClear(vm: number): number;
  /**
   * Run the staged transaction atomically: every entry is generated and
   * applied in order; on any failure (or an entry with TX_INJECT_ERROR, which
   * fails with -ENOMEM) everything done so far is undone exactly (mappings,
   * handles, serials, VmBo link order and refcounts) and io[OUT_FAIL_INDEX] is
   * the failing entry. On success the applied ops are left as an already
   * applied list, readable with opsRead until the next list. Staging is cleared.
   * -> total op count, or -errno
   */
  txRun(vm: number): number;

  /** New VmBo for boId (not discoverable until the facade registers it), refcount 1. -> handle or -EINVAL */
  vmboCreate(vm: number, boId: number): number;
  /** refcount + 1. -> new refcount, or -EINVAL */
  vmboGet(vm: number, vmbo: number): number;
  /** refcount - 1; at 0 it is released at once. -> new refcount, or -EINVAL (bad handle / already 0) */
  vmboPut(vm: number, vmbo: number): number;
  /** -> refcount; OUT_INFO+0 refcount, +1 mapping count, +2 boId; -EINVAL */
  vmboInfo(vm: number, vmbo: number): number;
  /** VA records of the VmBo's mappings in link order, starting after mapping `after` (0 = from the head), up to max. -> count */
  vmboMappings(vm: number, vmbo: number, after: number, max: number): number;
  /** Release up to DATA_WORDS zombie VmBos, writing their handles at DATA. -> count */
  vmboReap(vm: number): number;

  /**
   * Memory budget of this engine instance (one per environment: the native
   * addon instance of a thread, a WASM instance). limit(A0, u64 bytes; 0 = no
   * limit beyond the platform's own). A limit below what is in use is allowed:
   * it only refuses further growth. Every call that would grow engine storage
   * past it (or that the platform refuses) fails with -ENOMEM and changes
   * nothing. -> 0, or -EINVAL
   */
  memSetLimit(): number;
  /**
   * -> 0. OUT_INFO+0..1: bytes of engine storage in use (native: what the
   * engine allocated; WASM: the instance's linear memory), OUT_INFO+2..3: the
   * limit (0 = none).
   */
  memStats(): number;
}

/** The page-table part of the engine (see page-table-engine.ts) and its span maps (span-engine.ts). */
import type { PageTableEngine } from './page-table-engine.js';
import type { SpanEngine } from './span-engine.js';
export type Engine = GpuVmEngine & PageTableEngine & SpanEngine;

/**
 * The engine's transfer area: `E.ioView`, or a fresh one when a grown WASM
 * memory detached that view (its length is then 0). Fetch it again after
 * any engine call: the call may have grown the memory.
 */
export function ioOf(E: GpuVmEngine): Uint32Array {
  const v = E.ioView;
  return v.length !== 0 ? v : (E.ioView = E.io());
}
