// GPU VA manager (drm_gpuvm): VMs, mappings (drm_gpuva), VmBos
// (drm_gpuvm_bo), split/merge generation (drm_gpuvm_sm_map / sm_unmap /
// prefetch / madvise / bo_unmap ops_create), op application, fused
// bind/unbind and transactions with exact undo (twin of native/gpuvm.h/.cc).
// The exported functions are the GpuVmEngine contract of
// src/backend/engine.ts: they read their arguments from io and write their
// results to io. Design: docs/engine-internals.md.

import {
  EINVAL, EEXIST, EPERM, EBUSY, ENOMEM,
  io, ioGet, ioSet, ioGet64, ioSet64,
  IO_ARG, IO_OUT, IO_DATA, IO_DATA_WORDS,
  OUT_ZOMBIES, OUT_SERIAL, OUT_CREATED, OUT_FAIL_INDEX, OUT_MADE_VMBO, OUT_INFO, OUT_REAPED, OUT_REAP_MAX, VMBO_MAKE,
  OPS_PER_CHUNK, OP_MAP, OP_REMAP, OP_UNMAP, OP_PREFETCH, OP_KEEP, OP_HAS_PREV, OP_HAS_NEXT,
  VA_WORDS, VAS_PER_CHUNK, VA_ATTR_KERNEL, VA_ATTR_INSERTED,
  TX_WORDS, TX_PER_CHUNK, TX_MAP, TX_UNMAP, TX_PREFETCH, TX_UNMAP_ALL, TX_INJECT_ERROR,
} from "./io";
import { Pool, Vec, initPool } from "./pool";
import { memUsed, memLimit, memSetLimitBytes } from "./budget";
import { RangeTree, RangeRun, cursorNext, nodes, nodeAt, nKey, nVal, nN, nNext, NODE_BYTES, RANGE_TREE_BYTES, LOOKUP_GROUP } from "./range_tree";

// ---------------------------------------------------------------------------
// Records

// Mapping state bits.
export const VA_KERNEL: u32 = 1; // the kernel-reserved node
export const VA_INSERTED: u32 = 2; // in the VM's range tree
export const VA_LIVE: u32 = 4; // slot in use
export const VA_DOOMED: u32 = 8; // scratch mark while opsApply validates
export const VA_KEPT: u32 = 16; // removed by a running transaction, kept for undo
export const VA_LINKED: u32 = 32; // owner is the VmBo (else the BO id)

/** VM handles fit 24 bits: a mapping keeps its VM and state bits in one word. */
const VM_HANDLE_LIMIT: u32 = 1 << 24;

/**
 * A mapping: 48 bytes, unpadded (with millions of them, bytes are what the
 * caches and the TLB run out of). The range tree reads `end` from here.
 */
@unmanaged export class GpuVa {
  // Records are not line aligned: the list links come first, so unlinking a
  // neighbour touches one line.
  vbPrev: u32 = 0; // the VmBo's mapping list, link order
  vbNext: u32 = 0;
  addr: u64 = 0;
  end: u64 = 0; // exclusive
  offset: u64 = 0;
  flags: u32 = 0; // user-visible GpuVa flags
  serial: u32 = 0;
  owner: u32 = 0; // VA_LINKED: the VmBo it is linked to; else its BO (0 none)
  vmState: u32 = 0; // VM handle (low 24 bits), state bits (high 8)

  @inline get vm(): u32 {
    return this.vmState & 0xffffff;
  }
  @inline set vm(v: u32) {
    this.vmState = (this.vmState & 0xff000000) | v;
  }
  @inline get state(): u32 {
    return this.vmState >>> 24;
  }
  @inline set state(v: u32) {
    this.vmState = (this.vmState & 0xffffff) | (v << 24);
  }
  /** The BO (a linked mapping's is its VmBo's). */
  @inline get bo(): u32 {
    return (this.state & VA_LINKED) != 0 ? vmboAt(this.owner).bo : this.owner;
  }
  /** The VmBo it is linked to, 0 if unlinked. */
  @inline get vmbo(): u32 {
    return (this.state & VA_LINKED) != 0 ? this.owner : 0;
  }
}

// VmBo states.
export const VMBO_FREE: u32 = 0;
export const VMBO_LIVE: u32 = 1;
export const VMBO_ZOMBIE: u32 = 2; // refcount reached 0 inside the engine; awaits vmboReap

@unmanaged export class GpuVmBo {
  bo: u32 = 0;
  vm: u32 = 0;
  refs: u32 = 0;
  head: u32 = 0; // first linked mapping
  tail: u32 = 0;
  count: u32 = 0;
  state: u32 = 0;
  vmPrev: u32 = 0; // the VM's VmBo list, creation order
  vmNext: u32 = 0;
}

/** One op record, laid out exactly as the 16-word io record. */
@unmanaged export class GpuVaOp {
  kind: u32 = 0; // OP_* | OP_KEEP | OP_HAS_PREV | OP_HAS_NEXT
  handle: u32 = 0; // MAP: VmBo to link (0 none); others: the existing mapping
  serial: u32 = 0; // MAP: 0; others: the mapping's serial
  bo: u32 = 0;
  addr: u64 = 0;
  range: u64 = 0;
  offset: u64 = 0;
  prevRange: u64 = 0;
  nextAddr: u64 = 0;
  nextOffset: u64 = 0;
}
const OP_BYTES: u32 = 64;

/**
 * A VM. The op list's array, the staged transaction and the zombie list are
 * embedded (their fields are laid out as Vec); the range tree follows the
 * record (RANGE_TREE_BYTES).
 * The op list: `listNext` is the first unapplied op; a list is pending while
 * listNext < ops.len; it is "touched" once listNext > 0.
 */
@unmanaged export class GpuVm {
  start: u64 = 0;
  end: u64 = 0; // exclusive
  kstart: u64 = 0; // kernel node [kstart, kend), empty if kend == kstart
  kend: u64 = 0;
  kernel: u32 = 0; // kernel node mapping handle, 0 if none
  live: u32 = 0;
  mappings: u32 = 0; // inserted mappings, kernel node excluded
  vaCount: u32 = 0; // live mapping records of this VM (inserted or not)
  vmboCount: u32 = 0;
  vmboHead: u32 = 0; // VmBos of this VM, creation order
  vmboTail: u32 = 0;
  // list.ops: Vec of GpuVaOp
  opsData: usize = 0;
  opsCap: u32 = 0;
  opsLen: u32 = 0;
  listNext: u32 = 0;
  listVmbo: u32 = 0; // VmBo a MAP of the list links to; holds a reference
  listResVas: u32 = 0; // reservations held in the mapping pool
  listResNodes: u32 = 0; // and in the node pool
  listZombieSlack: u32 = 0; // zombie-list room promised to the list
  // The ops still hold for the VM as it is: set when the list is made, cleared
  // by anything that changes the VM's mappings other than applying this list
  // in order; opsApply then skips its validation.
  listChecked: u32 = 0;
  // A split/merge list (LIST_REQ_*) remembers its request: applied whole and
  // checked, it is the fused step of that request.
  listReq: u32 = 0;
  listReqBo: u32 = 0;
  // Where the generation found the request's first mapping, and whether the
  // mappings it met share one leaf: while the tree has not been edited since
  // (listTreeEdits), applying the list as a step needs no second walk.
  listFirstLeaf: u32 = 0;
  listFirstSlot: u32 = 0;
  listOneLeaf: u32 = 0;
  listTreeEdits: u32 = 0;
  listReqAddr: u64 = 0;
  listReqRange: u64 = 0;
  listReqOffset: u64 = 0;
  // txStaged: Vec of u32 (TX_WORDS per entry)
  txData: usize = 0;
  txCap: u32 = 0;
  txLen: u32 = 0;
  // zombies: Vec of u32, oldest first
  zData: usize = 0;
  zCap: u32 = 0;
  zLen: u32 = 0;
  zombieCount: u32 = 0;

  @inline get tree(): RangeTree {
    return changetype<RangeTree>(changetype<usize>(this) + offsetof<GpuVm>());
  }
  @inline get ops(): Vec {
    return changetype<Vec>(changetype<usize>(this) + offsetof<GpuVm>("opsData"));
  }
  @inline get txStaged(): Vec {
    return changetype<Vec>(changetype<usize>(this) + offsetof<GpuVm>("txData"));
  }
  @inline get zombies(): Vec {
    return changetype<Vec>(changetype<usize>(this) + offsetof<GpuVm>("zData"));
  }
}

// Undo log of a running transaction: 5 words per entry.
const TX_UNDO_WORDS: u32 = 5; // kind, va, vmbo, vbPrev, vbNext
const TX_UNDO_BYTES: u32 = TX_UNDO_WORDS * 4;
const TX_UNDO_CREATED: u32 = 1; // mapping created, inserted (and linked)
const TX_UNDO_REMOVED: u32 = 2; // mapping removed from the tree, kept
const TX_UNDO_UNLINKED: u32 = 3; // mapping unlinked from vmbo between vbPrev/vbNext

// ---------------------------------------------------------------------------
// Engine state: engine-global pools and scratch (static memory, fixed addresses)

const VM_BYTES: u32 = ((<u32>offsetof<GpuVm>() + RANGE_TREE_BYTES + 7) & ~7); // u64 fields stay aligned
const VA_BYTES: u32 = 48;
const vms = initPool(changetype<Pool>(memory.data(<i32>offsetof<Pool>(), 8)), VM_BYTES, 8);
const vas = initPool(changetype<Pool>(memory.data(<i32>offsetof<Pool>(), 8)), VA_BYTES, 1024, 16);
const vmbos = initPool(changetype<Pool>(memory.data(<i32>offsetof<Pool>(), 8)), <u32>offsetof<GpuVmBo>(), 64);
let serial: u32 = 0; // last serial handed out (engine-global)

// Scratch kept between calls so transactions do not reallocate.
// A list being generated, swapped into the VM once it fits.
const genOps = changetype<Vec>(memory.data(<i32>offsetof<Vec>(), 8));
const txOps = changetype<Vec>(memory.data(<i32>offsetof<Vec>(), 8));
const txLog = changetype<Vec>(memory.data(<i32>offsetof<Vec>(), 8));
// VmBos MAP entries link to, referenced for the whole run.
const txHeld = changetype<Vec>(memory.data(<i32>offsetof<Vec>(), 8));
const doomed = changetype<Vec>(memory.data(<i32>offsetof<Vec>(), 8));
// What the last generation needs to be applied.
let genInserts: u32 = 0;
let genUnlinks: u32 = 0;
// The split walk's first mapping, and whether all it met share its leaf.
let genFirstLeaf: u32 = 0;
let genFirstSlot: u32 = 0;
let genOneLeaf: bool = false;
const fusedRun = changetype<RangeRun>(memory.data(<i32>offsetof<RangeRun>(), 4));
const removeRun = changetype<RangeRun>(memory.data(<i32>offsetof<RangeRun>(), 4));
// What stepScan found, for stepApply (native's StepPlan).
@unmanaged class StepPlan {
  lastEnd: u64 = 0;
  firstLeaf: u32 = 0;
  firstSlot: u32 = 0;
  k: u32 = 0; // mappings unmapped or remapped
  keepFirst: u32 = 0;
  lastNext: u32 = 0;
  insertNext: u32 = 0;
  whole: u32 = 0;
}
const stepPlan = changetype<StepPlan>(memory.data(<i32>offsetof<StepPlan>(), 8));
// fusedStep scratch: starts (u64) and handles (u32) of the mappings a step touches.
const stepStart = changetype<Vec>(memory.data(<i32>offsetof<Vec>(), 8));
const stepVa = changetype<Vec>(memory.data(<i32>offsetof<Vec>(), 8));
// findFirstBatch scratch: a group's queries and lookups' (leaf, slot) pairs.
const batchAddr = memory.data(<i32>(LOOKUP_GROUP * 8), 8);
const batchLast = memory.data(<i32>(LOOKUP_GROUP * 8), 8);
const batchOut = memory.data(<i32>(LOOKUP_GROUP * 8), 8);
/** Loads whose values only reach this sink start cache misses early (WASM has no prefetch). */
let prefetchSink: u32 = 0;

@inline function vmAt(h: u32): GpuVm {
  return changetype<GpuVm>(vms.at(h));
}
@inline function vaAt(h: u32): GpuVa {
  return changetype<GpuVa>(vas.base + <usize>h * 48); // VA_BYTES: a constant stride
}
@inline function vmboAt(h: u32): GpuVmBo {
  return changetype<GpuVmBo>(vmbos.at(h));
}
@inline function opAt(v: Vec, i: u32): GpuVaOp {
  return changetype<GpuVaOp>(v.at(i, OP_BYTES));
}
/** A new op record at the end of out, or null when its growth is refused. */
@inline function pushOp(out: Vec): GpuVaOp | null {
  return changetype<GpuVaOp | null>(out.push(OP_BYTES));
}
@inline function opKind(op: GpuVaOp): u32 {
  return op.kind & 0xff;
}
@inline function ioPtrAt(word: u32): usize {
  return io + (<usize>word << 2);
}

// ---------------------------------------------------------------------------
// Lookups and validation

function getVm(vm: u32): GpuVm | null {
  if (vm == 0 || vm >= vms.limit) return null;
  const v = vmAt(vm);
  return v.live != 0 ? v : null;
}

function getVa(vm: u32, va: u32, serial: u32): GpuVa | null {
  if (va == 0 || va >= vas.limit) return null;
  const m = vaAt(va);
  if ((m.state & VA_LIVE) == 0 || m.vm != vm || m.serial != serial) return null;
  return m;
}

/** Live or zombie. */
function getVmBo(vm: u32, vmbo: u32): GpuVmBo | null {
  if (vmbo == 0 || vmbo >= vmbos.limit) return null;
  const b = vmboAt(vmbo);
  if (b.state == VMBO_FREE || b.vm != vm) return null;
  return b;
}

/**
 * drm_gpuvm_range_valid: non-empty, no u64 overflow (an end of exactly 2^64
 * counts), inside the VM, clear of the kernel node.
 */
function rangeValid(vm: GpuVm, addr: u64, range: u64): bool {
  if (range == 0) return false;
  const end = addr + range;
  if (end <= addr) return false; // wrapped, or exactly 2^64
  if (addr < vm.start || end > vm.end) return false;
  return !(vm.kend != vm.kstart && addr < vm.kend && vm.kstart < end);
}

/**
 * The kernel does not check a prefetch range against the VM: it lists what
 * the range overlaps, nothing for a zero range. Only overflow is refused.
 */
function prefetchRangeValid(vm: GpuVm, addr: u64, range: u64): bool {
  return range == 0 || addr + range > addr;
}

/** The VmBo a map request links to: 0, or a live VmBo of this VM for `bo`. */
function mapVmBoValid(vmh: u32, bo: u32, vmbo: u32): bool {
  if (vmbo == 0) return true;
  if (bo == 0) return false;
  const b = getVmBo(vmh, vmbo);
  return b !== null && b.state == VMBO_LIVE && b.bo == bo;
}

// ---------------------------------------------------------------------------
// Mapping records and VmBo lists

@inline function gpuVaCreate(vmh: u32, vm: GpuVm, addr: u64, end: u64, offset: u64, bo: u32, flags: u32): u32 {
  const h = vas.alloc();
  const m = vaAt(h);
  if (++serial == 0) serial = 1; // 0 never names a mapping
  m.addr = addr;
  m.end = end;
  m.offset = offset;
  m.flags = flags;
  m.serial = serial;
  m.owner = bo;
  m.vmState = vmh | (VA_LIVE << 24);
  m.vbPrev = 0;
  m.vbNext = 0;
  ++vm.vaCount;
  return h;
}

@inline function gpuVaRelease(vm: GpuVm, va: u32): void {
  vaAt(va).state = 0;
  vas.free(va);
  --vm.vaCount;
}

/**
 * The VmBo's mapping list (link order) and the reference each linked mapping
 * holds: put va between prev and next (0 = the list's end)...
 */
@inline function vmBoListInsert(va: u32, vmbo: u32, prev: u32, next: u32): void {
  const m = vaAt(va);
  const b = vmboAt(vmbo);
  m.owner = vmbo; // b.bo is the mapping's BO
  m.state |= VA_LINKED;
  m.vbPrev = prev;
  m.vbNext = next;
  if (prev != 0) {
    vaAt(prev).vbNext = va;
  } else {
    b.head = va;
  }
  if (next != 0) {
    vaAt(next).vbPrev = va;
  } else {
    b.tail = va;
  }
  ++b.count;
  ++b.refs;
}

/** ...and take it out again; returns the VmBo (0 if va was not linked), whose reference the caller drops as it must. */
@inline function vmBoListRemove(va: u32): u32 {
  const m = vaAt(va);
  if ((m.state & VA_LINKED) == 0) return 0;
  const vb = m.owner;
  const b = vmboAt(vb);
  if (m.vbPrev != 0) {
    vaAt(m.vbPrev).vbNext = m.vbNext;
  } else {
    b.head = m.vbNext;
  }
  if (m.vbNext != 0) {
    vaAt(m.vbNext).vbPrev = m.vbPrev;
  } else {
    b.tail = m.vbPrev;
  }
  --b.count;
  m.owner = b.bo;
  m.state &= ~VA_LINKED;
  m.vbPrev = 0;
  m.vbNext = 0;
  return vb;
}

/** drm_gpuva_link: append to the VmBo's list; each linked mapping holds a reference. */
@inline function gpuVaLink(va: u32, vmbo: u32): void {
  vmBoListInsert(va, vmbo, vmboAt(vmbo).tail, 0);
}

/** drm_gpuva_unlink: leave the VmBo's list and drop the reference. */
@inline function gpuVaUnlink(va: u32): void {
  const vb = vmBoListRemove(va);
  if (vb != 0) gpuVmBoPutInternal(vb);
}

/**
 * A reference dropped inside the engine: at 0 the VmBo becomes a zombie that
 * the facade reaps later (drm_gpuvm_bo_put_deferred / deferred_cleanup).
 */
function gpuVmBoPutInternal(vmbo: u32): void {
  const b = vmboAt(vmbo);
  if (--b.refs != 0) return;
  b.state = VMBO_ZOMBIE;
  const vm = vmAt(b.vm);
  // Room was ensured by the caller; should that reasoning ever fail, grow
  // past the limit rather than write out of bounds.
  const z = vm.zombies;
  if (z.len == z.cap) z.reserve(<u64>z.len + 1, 4, true);
  if (z.len < z.cap) z.pushU32(vmbo);
  ++vm.zombieCount;
}

function gpuVmBoRelease(vm: GpuVm, vmbo: u32): void {
  const b = vmboAt(vmbo);
  if (b.vmPrev != 0) {
    vmboAt(b.vmPrev).vmNext = b.vmNext;
  } else {
    vm.vmboHead = b.vmNext;
  }
  if (b.vmNext != 0) {
    vmboAt(b.vmNext).vmPrev = b.vmPrev;
  } else {
    vm.vmboTail = b.vmPrev;
  }
  b.state = VMBO_FREE;
  --vm.vmboCount;
  vmbos.free(vmbo);
}

/**
 * Zombie pushes must not allocate while a list is applied, so the array
 * keeps room for `extra` more plus what the pending list was promised.
 */
function ensureZombieRoom(vm: GpuVm, extra: u32): bool {
  return vm.zombies.reserve(<u64>vm.zLen + <u64>extra + <u64>vm.listZombieSlack, 4);
}

function writeVaRecord(dst: usize, va: u32): void {
  const m = vaAt(va);
  store<u32>(dst, va);
  store<u32>(dst, m.serial, 4);
  store<u32>(dst, m.bo, 8);
  store<u32>(dst, m.flags, 12);
  store<u64>(dst, m.addr, 16);
  store<u64>(dst, m.end - m.addr, 24);
  store<u64>(dst, m.offset, 32);
  store<u32>(dst, m.vmbo, 40);
  store<u32>(
    dst,
    ((m.state & VA_KERNEL) != 0 ? VA_ATTR_KERNEL : 0) | ((m.state & VA_INSERTED) != 0 ? VA_ATTR_INSERTED : 0),
    44,
  );
}

@inline function writeZombies(vm: GpuVm): void {
  ioSet(OUT_ZOMBIES, vm.zombieCount);
}

/** The end of a call that applies ops (bind, unbind, smMapApply, smUnmapApply, opsApply): on success it releases the zombies itself (OUT_REAPED), which saves the facade a vmboReap call. */
function finishApply(vmh: u32, vm: GpuVm, result: i32): void {
  ioSet(OUT_REAPED, result >= 0 && vm.zombieCount != 0 ? releaseZombies(vmh, vm, OUT_REAPED + 1, OUT_REAP_MAX) : 0);
  writeZombies(vm);
}

// ---------------------------------------------------------------------------
// Split/merge generation

/** An UNMAP/REMAP/PREFETCH record naming mapping h = [s, t), kind not set yet. */
@inline function fillExisting(op: GpuVaOp, h: u32, m: GpuVa, s: u64, t: u64): void {
  op.handle = h;
  op.serial = m.serial;
  op.bo = m.bo;
  op.addr = s;
  op.range = t - s;
  op.offset = m.offset;
  op.prevRange = 0;
  op.nextAddr = 0;
  op.nextOffset = 0;
}

@inline function pushExisting(out: Vec, h: u32, m: GpuVa, s: u64, t: u64): GpuVaOp | null {
  const op = pushOp(out);
  if (op === null) return null;
  fillExisting(op, h, m, s, t);
  return op;
}

/**
 * The split walk's record for mapping h = [s, t) (record m) under the
 * request [a, e) with BO bo at offset off. -> pieces it leaves (0 to 2)
 */
@inline function fillSplitOp(op: GpuVaOp, h: u32, m: GpuVa, s: u64, t: u64, a: u64, e: u64, bo: u32, off: u64): u32 {
  fillExisting(op, h, m, s, t);
  let kind = OP_UNMAP;
  let pieces: u32 = 0;
  if (s < a || t > e) {
    kind = OP_REMAP;
    if (s < a) {
      kind |= OP_HAS_PREV;
      op.prevRange = a - s;
      ++pieces;
    }
    if (t > e) {
      kind |= OP_HAS_NEXT;
      op.nextAddr = e;
      op.nextOffset = m.offset + (e - s);
      ++pieces;
    }
  }
  if (m.bo != 0 && m.bo == bo && m.offset - s == off - a) kind |= OP_KEEP;
  op.kind = kind;
  return pieces;
}

@inline function fillMapOp(op: GpuVaOp, vmbo: u32, bo: u32, addr: u64, range: u64, offset: u64): void {
  op.kind = OP_MAP;
  op.handle = vmbo;
  op.serial = 0;
  op.bo = bo;
  op.addr = addr;
  op.range = range;
  op.offset = offset;
  op.prevRange = 0;
  op.nextAddr = 0;
  op.nextOffset = 0;
}

/** false when out's growth is refused. */
@inline function pushMap(out: Vec, vmbo: u32, bo: u32, addr: u64, range: u64, offset: u64): bool {
  const op = pushOp(out);
  if (op === null) return false;
  fillMapOp(op, vmbo, bo, addr, range, offset);
  return true;
}

/**
 * Generators append to `out` and return false when its growth is refused
 * (the VM is untouched either way; genInserts/genUnlinks describe `out`).
 *
 * The walk sm_map and sm_unmap share: per overlapping mapping, ascending,
 * UNMAP or REMAP(prev?, next?), with keep when the mapping has the request's
 * non-null BO at the same address->offset relation (u64 wrapping; the three
 * forms of the kernel's case analysis folded into one). bo 0 never keeps,
 * which is sm_unmap's rule.
 */
function splitWalk(vm: GpuVm, a: u64, e: u64, bo: u32, off: u64, out: Vec): bool {
  let inserts: u32 = 0;
  let unlinks: u32 = 0;
  const c = vm.tree.lowestOverlapping(a, e - 1);
  genFirstLeaf = c.leaf;
  genFirstSlot = c.slot;
  genOneLeaf = true;
  while (c.leaf != 0) {
    const s = c.key();
    if (s >= e) break;
    const t = vaAt(c.val()).end;
    const h = c.val();
    const m = vaAt(h);
    const op = pushOp(out);
    if (op === null) return false;
    inserts += fillSplitOp(op, h, m, s, t, a, e, bo, off);
    ++unlinks;
    if (t >= e) break;
    const leaf = c.leaf;
    if (!cursorNext(c)) break;
    if (c.leaf != leaf && nKey(nodeAt(c.leaf), 0) < e) genOneLeaf = false;
  }
  genInserts = inserts;
  genUnlinks = unlinks;
  return true;
}

/** drm_gpuvm_sm_map_ops_create: the split walk, then one MAP of the request. */
function smMapGenerate(vm: GpuVm, a: u64, r: u64, bo: u32, off: u64, vmbo: u32, out: Vec): bool {
  if (!splitWalk(vm, a, a + r, bo, off, out)) return false;
  if (!pushMap(out, vmbo, bo, a, r, off)) return false;
  ++genInserts;
  return true;
}

/** drm_gpuvm_sm_unmap_ops_create: the split walk without a BO (keep always 0), no MAP. */
function smUnmapGenerate(vm: GpuVm, a: u64, r: u64, out: Vec): bool {
  return splitWalk(vm, a, a + r, 0, 0, out);
}

/** drm_gpuvm_prefetch_ops_create: one PREFETCH per overlapping mapping, the kernel node skipped. */
function prefetchGenerate(vm: GpuVm, a: u64, r: u64, out: Vec): bool {
  genInserts = 0;
  genUnlinks = 0;
  if (r == 0) return true;
  const e = a + r;
  const c = vm.tree.lowestOverlapping(a, e - 1);
  while (c.leaf != 0) {
    const s = c.key();
    if (s >= e) break;
    const h = c.val();
    const m = vaAt(h);
    if ((m.state & VA_KERNEL) == 0) {
      const op = pushExisting(out, h, m, s, vaAt(c.val()).end);
      if (op === null) return false;
      op.kind = OP_PREFETCH;
    }
    if (!cursorNext(c)) break;
  }
  return true;
}

/**
 * drm_gpuvm_madvise_ops_create: the sm_map walk in madvise mode. Mappings
 * with a BO are skipped, no UNMAPs are emitted, BO-less mappings crossing an
 * edge of the request are split. As upstream, the MAPs are bare requests: no
 * BO and offset 0 (the final one is the request itself, whose offset is 0).
 */
function madviseGenerate(vm: GpuVm, a: u64, r: u64, out: Vec): bool {
  const e = a + r;
  let inserts: u32 = 0;
  let unlinks: u32 = 0;
  let finalMap = false;
  const c = vm.tree.lowestOverlapping(a, e - 1);
  while (c.leaf != 0) {
    const s = c.key();
    if (s >= e) break;
    const t = vaAt(c.val()).end;
    const h = c.val();
    const m = vaAt(h);
    if (m.bo != 0) {
      if (!cursorNext(c)) break;
      continue;
    }
    if (s >= a && t <= e) {
      // inside the request: nothing to split
      if (t == e || !cursorNext(c)) break;
      continue;
    }
    // a BO-less mapping crossing an edge: the split walk's REMAP (never keep)
    const op = pushOp(out);
    if (op === null) return false;
    inserts += fillSplitOp(op, h, m, s, t, a, e, 0, 0);
    ++unlinks;
    if (s > a) {
      // Starts inside, ends past the request: map [s, e) and stop.
      if (!pushMap(out, 0, 0, s, e - s, 0)) return false;
      ++inserts;
      break;
    }
    if (t < e) {
      // Starts before, ends inside: map [a, t) at once and go on.
      if (!pushMap(out, 0, 0, a, t - a, 0)) return false;
      ++inserts;
      if (!cursorNext(c)) break;
      continue;
    }
    // One mapping holds the request's start and reaches its end.
    finalMap = true;
    break;
  }
  if (finalMap) {
    if (!pushMap(out, 0, 0, a, r, 0)) return false;
    ++inserts;
  }
  genInserts = inserts;
  genUnlinks = unlinks;
  return true;
}

/**
 * drm_gpuvm_bo_unmap_ops_create: UNMAP(keep=0) per mapping of the VmBo in
 * link order; linked mappings already out of the tree are skipped (they
 * cannot be unmapped).
 */
function vmBoUnmapGenerate(vmbo: u32, out: Vec): bool {
  let unlinks: u32 = 0;
  for (let h = vmboAt(vmbo).head; h != 0; h = vaAt(h).vbNext) {
    const m = vaAt(h);
    if ((m.state & VA_INSERTED) == 0) continue;
    const op = pushExisting(out, h, m, m.addr, m.end);
    if (op === null) return false;
    op.kind = OP_UNMAP;
    ++unlinks;
  }
  genInserts = 0;
  genUnlinks = unlinks;
  return true;
}

// ---------------------------------------------------------------------------
// Pending list

@inline function listPending(vm: GpuVm): bool {
  return vm.listNext < vm.opsLen;
}
@inline function listBusy(vm: GpuVm): bool {
  return vm.listNext > 0 && listPending(vm);
}

/** Returns the list's reservations and its VmBo reference. */
function listRelease(vm: GpuVm): void {
  if ((vm.listResVas | vm.listResNodes | vm.listVmbo | vm.listZombieSlack) == 0) return; // nothing held
  if (vm.listResVas != 0) {
    vas.unreserve(vm.listResVas);
    vm.listResVas = 0;
  }
  if (vm.listResNodes != 0) {
    nodes.unreserve(vm.listResNodes);
    vm.listResNodes = 0;
  }
  if (vm.listVmbo != 0) {
    const b = vm.listVmbo;
    vm.listVmbo = 0;
    gpuVmBoPutInternal(b); // room for this push is part of the slack
  }
  vm.listZombieSlack = 0;
}

/** listRelease, then forget the ops. */
function listReset(vm: GpuVm): void {
  listRelease(vm);
  vm.ops.clear();
  vm.listNext = 0;
  vm.listChecked = 0;
  vm.listReq = 0;
}

const LIST_REQ_MAP: u32 = 1;
const LIST_REQ_UNMAP: u32 = 2;

function listRequest(vm: GpuVm, req: u32, addr: u64, range: u64, bo: u32, offset: u64): void {
  vm.listReq = req;
  vm.listReqAddr = addr;
  vm.listReqRange = range;
  vm.listReqBo = bo;
  vm.listReqOffset = offset;
}

/**
 * Makes genOps (just generated) the VM's pending list in place of the old
 * one: first checks that everything it needs fits (pool reservations, zombie
 * room, opsApply's scratch; -ENOMEM with nothing changed), then takes the
 * VmBo reference `vmbo` for the list, drops the old list and writes the
 * first chunk to io. -> op count
 */
function listPublish(vm: GpuVm, vmbo: u32): i32 {
  const n = genOps.len;
  const resVas = genInserts;
  const resNodes = genInserts * vm.tree.insertNeed();
  const slack = genUnlinks + 1;
  // The old list's reservations are returned before the new ones are taken,
  // and dropping it pushes at most its VmBo as a zombie.
  if (
    !vas.ensure(resVas > vm.listResVas ? resVas - vm.listResVas : 0) ||
    !nodes.ensure(resNodes > vm.listResNodes ? resNodes - vm.listResNodes : 0) ||
    !vm.zombies.reserve(<u64>vm.zLen + (vm.listVmbo != 0 ? 1 : 0) + <u64>slack, 4) ||
    !doomed.reserve(n, 4) ||
    !stepStart.reserve(n, 8) ||
    !stepVa.reserve(n, 4)
  ) {
    genOps.clear();
    return -ENOMEM;
  }
  if (vmbo != 0) ++vmboAt(vmbo).refs; // the list's reference, before the old list lets go
  listReset(vm);
  vm.ops.swap(genOps);
  vm.listNext = 0;
  vm.listVmbo = vmbo;
  vm.listResVas = resVas;
  vm.listResNodes = resNodes;
  // Cannot fail: ensured above.
  vas.reserve(resVas);
  nodes.reserve(resNodes);
  vm.listZombieSlack = slack;
  vm.listChecked = 1; // made from the VM as it is
  vm.listReq = 0; // smMapOps / smUnmapOps name their request after this
  vm.listFirstLeaf = genFirstLeaf;
  vm.listFirstSlot = genFirstSlot;
  vm.listOneLeaf = genOneLeaf ? 1 : 0;
  vm.listTreeEdits = vm.tree.edits;
  const chunk = n < OPS_PER_CHUNK ? n : OPS_PER_CHUNK;
  memory.copy(ioPtrAt(IO_DATA), vm.opsData, <usize>chunk * OP_BYTES);
  if (n == 0) listRelease(vm);
  writeZombies(vm);
  return <i32>n;
}

// ---------------------------------------------------------------------------
// Op application

/**
 * Capacity for applying `ops` freshly generated ops (what genInserts /
 * genUnlinks describe) with an undo log, right now (transactions).
 */
function ensureApply(vm: GpuVm, ops: u32): bool {
  // An op logs at most 4 undo records (REMAP: removed, two pieces, unlinked).
  return (
    vas.ensure(genInserts) &&
    nodes.ensure(genInserts * vm.tree.insertNeed()) &&
    ensureZombieRoom(vm, genUnlinks + 1) &&
    txLog.reserve(<u64>txLog.len + 4 * <u64>ops, TX_UNDO_BYTES)
  );
}

/**
 * Checks that ops [from, to) can all be applied to the VM as it is now, so
 * that opsApply either applies all of them or changes nothing: every
 * UNMAP/REMAP names a live inserted mapping (EINVAL), and everything a MAP
 * overlaps is unmapped by an earlier op of the range (EEXIST).
 */
function validateOps(vmh: u32, vm: GpuVm, from: u32, to: u32): i32 {
  let err: i32 = 0;
  doomed.clear();
  for (let k = from; k < to && err == 0; ++k) {
    const op = opAt(vm.ops, k);
    const kind = opKind(op);
    if (kind == OP_UNMAP || kind == OP_REMAP) {
      const m = getVa(vmh, op.handle, op.serial);
      if (m === null || (m.state & VA_INSERTED) == 0 || (m.state & VA_DOOMED) != 0) {
        err = -EINVAL;
        break;
      }
      m.state |= VA_DOOMED;
      doomed.pushU32(op.handle);
    } else if (kind == OP_MAP) {
      const e = op.addr + op.range;
      const c = vm.tree.lowestOverlapping(op.addr, e - 1);
      while (c.leaf != 0) {
        if (c.key() >= e) break;
        if ((vaAt(c.val()).state & VA_DOOMED) == 0) {
          err = -EEXIST;
          break;
        }
        if (!cursorNext(c)) break;
      }
    }
  }
  for (let i: u32 = 0; i < doomed.len; ++i) vaAt(doomed.u32At(i)).state &= ~VA_DOOMED;
  return err;
}

@inline function logPush(log: Vec, kind: u32, va: u32, vmbo: u32, vbPrev: u32, vbNext: u32): void {
  const p = log.pushReserved(TX_UNDO_BYTES); // ensureApply made room
  store<u32>(p, kind);
  store<u32>(p, va, 4);
  store<u32>(p, vmbo, 8);
  store<u32>(p, vbPrev, 12);
  store<u32>(p, vbNext, 16);
}

/**
 * Applies one op (already validated or freshly generated). With a log
 * (transactions) removed mappings are kept for undo instead of released.
 * REMAP: pieces are created prev first, inherit the old mapping's BO and
 * flags, and are linked to its VmBo before the old mapping is unlinked.
 * `created` (0: not wanted) receives the handles and serials made.
 */
function applyOp(vmh: u32, vm: GpuVm, op: GpuVaOp, log: Vec | null, created: usize): void {
  const kind = opKind(op);
  const tree = vm.tree;
  if (kind == OP_MAP) {
    const end = op.addr + op.range;
    const h = gpuVaCreate(vmh, vm, op.addr, end, op.offset, op.bo, 0);
    tree.insert(op.addr, end, h);
    vaAt(h).state |= VA_INSERTED;
    ++vm.mappings;
    if (op.handle != 0) gpuVaLink(h, op.handle);
    if (log !== null) logPush(log, TX_UNDO_CREATED, h, 0, 0, 0);
    if (created != 0) {
      store<u32>(created, h);
      store<u32>(created, vaAt(h).serial, 4);
    }
    return;
  }
  if (kind != OP_UNMAP && kind != OP_REMAP) return; // PREFETCH changes nothing

  const old = op.handle;
  const o = vaAt(old);
  const oaddr = o.addr;
  const oend = o.end;
  const ooff = o.offset;
  const obo = o.bo;
  const oflags = o.flags;
  const ovmbo = o.vmbo;
  o.state &= ~VA_INSERTED;
  if (log !== null) o.state |= VA_KEPT;
  --vm.mappings;
  if (log !== null) logPush(log, TX_UNDO_REMOVED, old, 0, 0, 0);

  if (kind == OP_UNMAP) {
    tree.remove(oaddr);
  } else {
    // Tree-wise this is remove(old), insert(prev), insert(next); the first
    // piece takes the old entry's place (RangeTree.replace keeps the shape).
    let p: u32 = 0;
    let n: u32 = 0;
    let replaced = false;
    if ((op.kind & OP_HAS_PREV) != 0) {
      p = gpuVaCreate(vmh, vm, oaddr, oaddr + op.prevRange, ooff, obo, oflags);
      tree.replace(oaddr, oaddr, oaddr + op.prevRange, p);
      replaced = true;
      vaAt(p).state |= VA_INSERTED;
      ++vm.mappings;
      if (ovmbo != 0) gpuVaLink(p, ovmbo);
      if (log !== null) logPush(log, TX_UNDO_CREATED, p, 0, 0, 0);
    }
    if ((op.kind & OP_HAS_NEXT) != 0) {
      n = gpuVaCreate(vmh, vm, op.nextAddr, oend, op.nextOffset, obo, oflags);
      if (replaced) {
        tree.insert(op.nextAddr, oend, n);
      } else {
        tree.replace(oaddr, op.nextAddr, oend, n);
        replaced = true;
      }
      vaAt(n).state |= VA_INSERTED;
      ++vm.mappings;
      if (ovmbo != 0) gpuVaLink(n, ovmbo);
      if (log !== null) logPush(log, TX_UNDO_CREATED, n, 0, 0, 0);
    }
    if (!replaced) tree.remove(oaddr); // a REMAP always has a piece
    if (created != 0) {
      store<u32>(created, p);
      store<u32>(created, p != 0 ? vaAt(p).serial : 0, 4);
      store<u32>(created, n, 8);
      store<u32>(created, n != 0 ? vaAt(n).serial : 0, 12);
    }
  }

  if (ovmbo != 0) {
    if (log !== null) {
      const ov = vaAt(old);
      logPush(log, TX_UNDO_UNLINKED, old, ovmbo, ov.vbPrev, ov.vbNext);
    }
    gpuVaUnlink(old);
  }
  if (log === null) gpuVaRelease(vm, old);
}

/**
 * The fused calls. The result is exactly that of generating the list and
 * applying it op by op (same mappings, handles, serials, link order, tree
 * shape), without writing op records: the mapping records and VmBo lists are
 * updated entry by entry in op order (so handles are taken and freed in the
 * same order), then the tree: one leaf edit when the mappings the step
 * touches sit in one leaf and RangeTree.prepareRun allows it, else the
 * calls applyOp would make (replace / remove / insert), removals grouped per
 * leaf where prepareRun allows. No op list is left afterwards. -> op count
 */
/**
 * fusedStep's first half: finds the mappings [a, e) meets (into
 * stepStart/stepVa) and how the tree edit can go (stepPlan, fusedRun),
 * changing nothing. -> false when the scratch could not grow.
 */
@inline function stepScan(vm: GpuVm, a: u64, e: u64, map: bool): bool {
  const tree = vm.tree;
  const c = tree.lowestOverlapping(a, e - 1);
  const p = stepPlan;
  p.firstLeaf = c.leaf;
  p.firstSlot = c.slot;
  stepStart.clear();
  stepVa.clear();
  let k: u32 = 0;
  let lastEnd: u64 = 0;
  let oneLeaf = true;
  while (c.leaf != 0) {
    const l = nodeAt(c.leaf);
    const s = nKey(l, c.slot);
    if (s >= e) break;
    if (k == stepVa.cap && (!stepStart.reserve(2 * <u64>k + 64, 8) || !stepVa.reserve(2 * <u64>k + 64, 4))) {
      stepStart.clear();
      stepVa.clear();
      return false;
    }
    store<u64>(stepStart.pushReserved(8), s);
    stepVa.pushU32(nVal(l, c.slot));
    ++k;
    lastEnd = vaAt(nVal(l, c.slot)).end;
    if (lastEnd >= e) break;
    const leaf = c.leaf;
    if (!cursorNext(c)) break;
    if (c.leaf != leaf && nKey(nodeAt(c.leaf), 0) < e) oneLeaf = false;
  }
  stepPlanFinish(vm, a, e, map, p.firstLeaf, p.firstSlot, k, lastEnd, oneLeaf);
  return true;
}

/** The rest of a plan once the k mappings are in stepStart / stepVa. */
@inline function stepPlanFinish(vm: GpuVm, a: u64, e: u64, map: bool, firstLeaf: u32, firstSlot: u32, k: u32, lastEnd: u64, oneLeaf: bool): void {
  const tree = vm.tree;
  const p = stepPlan;
  p.firstLeaf = firstLeaf;
  p.firstSlot = firstSlot;
  const keepFirst = k > 0 && load<u64>(stepStart.data) < a;
  const lastNext = k > 0 && lastEnd > e;
  // One mapping cut on both sides: its replace keeps the prev piece and the
  // next piece is an insert of its own.
  const insertNext = k == 1 && keepFirst && lastNext;
  p.k = k;
  p.lastEnd = lastEnd;
  p.keepFirst = keepFirst ? 1 : 0;
  p.lastNext = lastNext ? 1 : 0;
  p.insertNext = insertNext ? 1 : 0;
  p.whole = 0;
  if (k > 0 && oneLeaf) {
    const run = fusedRun;
    run.count = k;
    run.keepFirst = keepFirst ? 1 : 0;
    run.insertNext = insertNext ? 1 : 0;
    run.keepLast = lastNext && !insertNext ? 1 : 0;
    run.insertMid = map ? 1 : 0;
    p.whole = tree.prepareRun(p.firstLeaf, p.firstSlot, run) ? 1 : 0;
  }
}

/**
 * fusedStep's second half: makes the change stepScan planned (pool room and
 * zombie room must be there) and writes the handle and serial pairs the last
 * op would report to `created` (4 words).
 */
@inline function stepApply(vmh: u32, vm: GpuVm, a: u64, e: u64, map: bool, bo: u32, off: u64, vmbo: u32, created: usize): void {
  const tree = vm.tree;
  const p = stepPlan;
  const k = p.k;
  const keepFirst = p.keepFirst != 0;
  const lastNext = p.lastNext != 0;
  const insertNext = p.insertNext != 0;
  const lastEnd = p.lastEnd;
  // (Native prefetches the records and their VmBo list neighbours here; WASM
  // has no prefetch, and early loads measured no gain.)
  let prevPiece: u32 = 0;
  let nextPiece: u32 = 0;
  for (let i: u32 = 0; i < k; ++i) {
    const old = stepVa.u32At(i);
    const o = vaAt(old);
    const s = o.addr;
    const t = o.end;
    const ooff = o.offset;
    const obo = o.bo;
    const oflags = o.flags;
    const ovmbo = o.vmbo;
    o.state &= ~VA_INSERTED;
    --vm.mappings;
    if (i == 0 && s < a) {
      // REMAP prev piece
      prevPiece = gpuVaCreate(vmh, vm, s, a, ooff, obo, oflags);
      vaAt(prevPiece).state |= VA_INSERTED;
      ++vm.mappings;
      if (ovmbo != 0) gpuVaLink(prevPiece, ovmbo);
    }
    if (i == k - 1 && t > e) {
      // REMAP next piece
      nextPiece = gpuVaCreate(vmh, vm, e, t, ooff + (e - s), obo, oflags);
      vaAt(nextPiece).state |= VA_INSERTED;
      ++vm.mappings;
      if (ovmbo != 0) gpuVaLink(nextPiece, ovmbo);
    }
    if (ovmbo != 0) gpuVaUnlink(old);
    gpuVaRelease(vm, old);
  }
  let mapped: u32 = 0;
  if (map) {
    mapped = gpuVaCreate(vmh, vm, a, e, off, bo, 0);
    vaAt(mapped).state |= VA_INSERTED;
    ++vm.mappings;
    if (vmbo != 0) gpuVaLink(mapped, vmbo);
  }
  // What the list's last op reports: the MAP, else the last REMAP's pieces.
  if (map) {
    store<u32>(created, mapped);
    store<u32>(created, vaAt(mapped).serial, 4);
  } else if (lastNext) {
    const pv: u32 = k == 1 ? prevPiece : 0;
    store<u32>(created, pv);
    store<u32>(created, pv != 0 ? vaAt(pv).serial : 0, 4);
    store<u32>(created, nextPiece, 8);
    store<u32>(created, vaAt(nextPiece).serial, 12);
  } else if (k == 1 && keepFirst) {
    store<u32>(created, prevPiece);
    store<u32>(created, vaAt(prevPiece).serial, 4);
  }

  if (p.whole != 0) {
    const run = fusedRun;
    tree.commitRun(run, prevPiece, e, nextPiece, a, mapped);
    if (run.insertNext != 0 && run.nextInLeaf == 0) tree.insert(e, lastEnd, nextPiece);
    if (map && run.midInLeaf == 0) tree.insert(a, e, mapped);
  } else {
    // Call by call, removals grouped per leaf.
    let i: u32 = 0;
    let end = k;
    if (keepFirst) {
      const s0 = load<u64>(stepStart.data);
      tree.replace(s0, s0, a, prevPiece);
      i = 1;
    }
    if (lastNext && !insertNext) end = k - 1;
    const rm = removeRun;
    while (i < end) {
      rm.keepFirst = 0;
      rm.keepLast = 0;
      rm.insertNext = 0;
      rm.insertMid = 0;
      const si = load<u64>(stepStart.at(i, 8));
      const at = tree.find(si);
      const atLeaf = at.leaf;
      const atSlot = at.slot;
      const inLeaf = nN(nodeAt(atLeaf)) - atSlot;
      rm.count = end - i < inLeaf ? end - i : inLeaf;
      if (rm.count > 1 && tree.prepareRun(atLeaf, atSlot, rm)) {
        tree.commitRun(rm, 0, 0, 0, 0, 0);
        i += rm.count;
      } else {
        tree.remove(si);
        ++i;
      }
    }
    if (lastNext && !insertNext) tree.replace(load<u64>(stepStart.at(k - 1, 8)), e, lastEnd, nextPiece);
    if (insertNext) tree.insert(e, lastEnd, nextPiece);
    if (map) tree.insert(a, e, mapped);
  }
  stepStart.clear();
  stepVa.clear();
}

function fusedStep(vmh: u32, vm: GpuVm, a: u64, r: u64, map: bool, bo: u32, off: u64, vmbo: u32): i32 {
  const e = a + r;
  if (!stepScan(vm, a, e, map)) return -ENOMEM;
  return fusedFinish(vmh, vm, a, e, map, bo, off, vmbo);
}

/** After stepScan: checks room, replaces the VM's list and applies the step. -> op count or -ENOMEM */
@inline function fusedFinish(vmh: u32, vm: GpuVm, a: u64, e: u64, map: bool, bo: u32, off: u64, vmbo: u32): i32 {
  const k = stepPlan.k;
  // Everything the step may take, checked before anything changes; the
  // pending list it replaces gives its reservations back first, and dropping
  // it pushes at most its VmBo as a zombie.
  const needNodes: u32 = 3 * vm.tree.insertNeed();
  if (
    !vas.ensure(<u32>3 > vm.listResVas ? <u32>3 - vm.listResVas : 0) ||
    !nodes.ensure(needNodes > vm.listResNodes ? needNodes - vm.listResNodes : 0) ||
    !vm.zombies.reserve(<u64>vm.zLen + (vm.listVmbo != 0 ? 1 : 0) + <u64>k + 1, 4)
  ) {
    stepStart.clear();
    stepVa.clear();
    return -ENOMEM;
  }
  if (vmbo != 0) ++vmboAt(vmbo).refs; // held while the step runs
  listReset(vm);
  stepApply(vmh, vm, a, e, map, bo, off, vmbo, createdScratch);
  if (vmbo != 0) gpuVmBoPutInternal(vmbo);
  return <i32>(k + (map ? 1 : 0));
}

/**
 * fusedStep that also writes the records of the list it stands for
 * (smMapApply / smUnmapApply), from the scan, before the step changes the
 * mappings they describe, to DATA. A list longer than DATA holds is made and applied
 * by smMapOps / smUnmapOps and opsApply themselves, and stays readable through
 * opsRead; a shorter one leaves no list behind, as a fused call does.
 * -> op count or -ENOMEM
 */
function listStep(vmh: u32, vm: GpuVm, a: u64, r: u64, map: bool, bo: u32, off: u64, vmbo: u32): i32 {
  const e = a + r;
  if (!stepScan(vm, a, e, map)) return -ENOMEM;
  const k = stepPlan.k;
  const n = k + (map ? 1 : 0);
  if (n > OPS_PER_CHUNK) {
    // the calls themselves, on the request still in ARG
    stepStart.clear();
    stepVa.clear();
    const got = map ? smMapOps(vmh) : smUnmapOps(vmh);
    if (got <= 0) return got;
    const err = applyListRange(vmh, vm, 0, <u32>got); // whole and checked: cannot fail
    return err < 0 ? err : got;
  }
  // (Native writes to the record ring the facade gave it; a module has no
  // such ring, its records always go to DATA.)
  let dst = ioPtrAt(IO_DATA);
  for (let i: u32 = 0; i < k; ++i, dst += OP_BYTES) {
    const h = stepVa.u32At(i);
    const m = vaAt(h);
    fillSplitOp(changetype<GpuVaOp>(dst), h, m, m.addr, m.end, a, e, bo, off);
  }
  if (map) fillMapOp(changetype<GpuVaOp>(dst), vmbo, bo, a, r, off);
  return fusedFinish(vmh, vm, a, e, map, bo, off, vmbo);
}

/**
 * Applies the VM's whole checked split/merge list as the fused step of its
 * request. -> false (nothing changed) when the scratch could not grow.
 */
function applyListAsStep(vmh: u32, vm: GpuVm, created: usize): bool {
  const map = vm.listReq == LIST_REQ_MAP;
  const a = vm.listReqAddr;
  const e = a + vm.listReqRange;
  // opsApply never allocates: the scan must fit the scratch as it is (the
  // list's op count bounds the mappings it meets).
  if (stepVa.cap < vm.opsLen || stepStart.cap < vm.opsLen) return false;
  if (vm.tree.edits == vm.listTreeEdits) {
    // The tree is as the generation saw it: its ops name the mappings the
    // scan would meet, in order, and where the first one sits.
    const k = vm.opsLen - (map ? 1 : 0);
    stepStart.clear();
    stepVa.clear();
    for (let i: u32 = 0; i < k; ++i) {
      const op = opAt(vm.ops, i);
      store<u64>(stepStart.pushReserved(8), op.addr);
      stepVa.pushU32(op.handle);
    }
    const last = opAt(vm.ops, k > 0 ? k - 1 : 0);
    const lastEnd: u64 = k > 0 ? last.addr + last.range : 0;
    stepPlanFinish(vm, a, e, map, vm.listFirstLeaf, vm.listFirstSlot, k, lastEnd, vm.listOneLeaf != 0);
  } else if (!stepScan(vm, a, e, map)) {
    return false;
  }
  // The list's reservations cover the pieces and the MAP (pools, nodes and
  // zombie room), and its VmBo reference holds the MAP's VmBo.
  stepApply(vmh, vm, a, e, map, vm.listReqBo, vm.listReqOffset, vm.listVmbo, created);
  return true;
}

/**
 * Replays a transaction log backwards. Reference counts are restored by the
 * reversed link/unlink steps themselves, so no zombie transitions happen here.
 */
function txUndoAll(vm: GpuVm, log: Vec): void {
  const tree = vm.tree;
  for (let i = <i32>log.len - 1; i >= 0; --i) {
    const u = log.at(<u32>i, TX_UNDO_BYTES);
    const kind = load<u32>(u);
    const va = load<u32>(u, 4);
    const m = vaAt(va);
    if (kind == TX_UNDO_UNLINKED) {
      const vb = load<u32>(u, 8);
      const vbPrev = load<u32>(u, 12);
      const vbNext = load<u32>(u, 16);
      vmBoListInsert(va, vb, vbPrev, vbNext);
    } else if (kind == TX_UNDO_CREATED) {
      const vb = vmBoListRemove(va);
      if (vb != 0) --vmboAt(vb).refs;
      tree.remove(m.addr);
      --vm.mappings;
      gpuVaRelease(vm, va);
    } else {
      // TX_UNDO_REMOVED
      m.state = (m.state & ~VA_KEPT) | VA_INSERTED;
      // The state being restored fit before; the pool never shrinks, so this
      // only grows in a pathological tree shape, and then past the limit.
      nodes.ensure(tree.insertNeed(), true);
      tree.insert(m.addr, m.end, va);
      ++vm.mappings;
    }
  }
}

// ---------------------------------------------------------------------------
// VMs

/** start(A0) range(A2) reserveStart(A4) reserveRange(A6) -> VM handle or -EINVAL */
export function vmCreate(): i32 {
  const start = ioGet64(IO_ARG + 0);
  const range = ioGet64(IO_ARG + 2);
  const rstart = ioGet64(IO_ARG + 4);
  const rrange = ioGet64(IO_ARG + 6);
  if (range == 0) return -EINVAL;
  const end = start + range;
  if (end <= start) return -EINVAL;
  let rend: u64 = 0;
  if (rrange != 0) {
    rend = rstart + rrange;
    if (rend <= rstart || rstart < start || rend > end) return -EINVAL;
  }
  // The VM record, its root leaf and the kernel node's record and insert.
  if (!vms.ensure(1) || !nodes.ensure(rrange != 0 ? 3 : 1) || !vas.ensure(rrange != 0 ? 1 : 0)) return -ENOMEM;
  if (vms.nextHandle() >= VM_HANDLE_LIMIT) return -ENOMEM; // mappings keep 24 bits of it
  const h = vms.alloc();
  const vm = vmAt(h);
  vm.start = start;
  vm.end = end;
  vm.kstart = rrange != 0 ? rstart : 0;
  vm.kend = rrange != 0 ? rend : 0;
  vm.kernel = 0;
  vm.live = 1;
  vm.mappings = 0;
  vm.vaCount = 0;
  vm.vmboCount = 0;
  vm.vmboHead = 0;
  vm.vmboTail = 0;
  vm.ops.clear();
  vm.listNext = 0;
  vm.listVmbo = 0;
  vm.listResVas = 0;
  vm.listResNodes = 0;
  vm.listZombieSlack = 0;
  vm.txStaged.clear();
  vm.zombies.clear();
  vm.zombieCount = 0;
  vm.tree.init(vas, <u32>offsetof<GpuVa>("end"));
  if (rrange != 0) {
    const k = gpuVaCreate(h, vm, rstart, rend, 0, 0, 0);
    vaAt(k).state |= VA_KERNEL | VA_INSERTED;
    vm.tree.insert(rstart, rend, k);
    vm.kernel = k;
  }
  return <i32>h;
}

/**
 * Releases everything of the VM, in this order (handles are reused LIFO, so
 * the order is part of the contract): linked mappings already out of the tree
 * (per VmBo in creation order, link order), then the tree's mappings in
 * address order, then the VmBos in creation order, then the VM. The VM's
 * arrays go back to the budget (records stay: pools never shrink).
 */
export function vmDestroy(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  if (vm.listResVas != 0) vas.unreserve(vm.listResVas);
  if (vm.listResNodes != 0) nodes.unreserve(vm.listResNodes);
  vm.listResVas = 0;
  vm.listResNodes = 0;
  vm.listVmbo = 0;
  vm.listZombieSlack = 0;
  vm.ops.release();
  vm.listNext = 0;
  for (let b = vm.vmboHead; b != 0; b = vmboAt(b).vmNext) {
    for (let h = vmboAt(b).head; h != 0; ) {
      const nx = vaAt(h).vbNext;
      if ((vaAt(h).state & VA_INSERTED) == 0) gpuVaRelease(vm, h);
      h = nx;
    }
  }
  const c = vm.tree.first();
  while (c.leaf != 0) {
    gpuVaRelease(vm, c.val());
    if (!cursorNext(c)) break;
  }
  while (vm.vmboHead != 0) gpuVmBoRelease(vm, vm.vmboHead);
  vm.tree.destroy();
  vm.txStaged.release();
  vm.zombies.release();
  vm.zombieCount = 0;
  vm.live = 0;
  vms.free(vmh);
  return 0;
}

/** -> mappings (kernel node excluded); OUT+0 tree nodes, OUT+1 bytes in use by this VM */
export function vmStats(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const bytes: u64 =
    <u64>VM_BYTES +
    <u64>vm.tree.nodeCount * <u64>NODE_BYTES +
    <u64>vm.vaCount * <u64>VA_BYTES +
    <u64>vm.vmboCount * <u64>offsetof<GpuVmBo>() +
    <u64>vm.opsCap * <u64>OP_BYTES +
    <u64>vm.txCap * 4 +
    <u64>vm.zCap * 4;
  ioSet(OUT_INFO + 0, vm.tree.nodeCount);
  ioSet(OUT_INFO + 1, bytes > 0xffffffff ? 0xffffffff : <u32>bytes);
  return <i32>vm.mappings;
}

// ---------------------------------------------------------------------------
// Mappings

/** addr(A0) range(A2) offset(A4) boId(A6) flags(A7) -> handle (serial in OUT_SERIAL), -EINVAL, -EEXIST */
export function vaInsert(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const addr = ioGet64(IO_ARG + 0);
  const range = ioGet64(IO_ARG + 2);
  const offset = ioGet64(IO_ARG + 4);
  const bo = ioGet(IO_ARG + 6);
  const flags = ioGet(IO_ARG + 7);
  if (!rangeValid(vm, addr, range)) return -EINVAL;
  const end = addr + range;
  if (vm.tree.lowestOverlapping(addr, end - 1).leaf != 0) return -EEXIST;
  if (!vas.ensure(1) || !nodes.ensure(vm.tree.insertNeed())) return -ENOMEM;
  const h = gpuVaCreate(vmh, vm, addr, end, offset, bo, flags);
  vm.tree.insert(addr, end, h);
  vaAt(h).state |= VA_INSERTED;
  ++vm.mappings;
  vm.listChecked = 0;
  ioSet(OUT_SERIAL, vaAt(h).serial);
  writeZombies(vm);
  return <i32>h;
}

export function vaRemove(vmh: u32, va: u32, serial: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const m = getVa(vmh, va, serial);
  if (m === null) return -EINVAL;
  if ((m.state & VA_KERNEL) != 0) return -EPERM;
  if ((m.state & VA_INSERTED) == 0) return -EINVAL;
  m.state &= ~VA_INSERTED;
  vm.tree.remove(m.addr);
  --vm.mappings;
  vm.listChecked = 0;
  if (m.vmbo == 0) gpuVaRelease(vm, va);
  writeZombies(vm);
  return 0;
}

export function vaLink(vmh: u32, va: u32, serial: u32, vmbo: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const m = getVa(vmh, va, serial);
  if (m === null || m.bo == 0 || m.vmbo != 0) return -EINVAL;
  const b = getVmBo(vmh, vmbo);
  if (b === null || b.state != VMBO_LIVE || b.bo != m.bo) return -EINVAL;
  gpuVaLink(va, vmbo);
  writeZombies(vm);
  return 0;
}

export function vaUnlink(vmh: u32, va: u32, serial: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const m = getVa(vmh, va, serial);
  if (m === null) return -EINVAL;
  if (m.vmbo != 0) {
    if (!ensureZombieRoom(vm, 1)) return -ENOMEM;
    gpuVaUnlink(va);
  }
  if ((vaAt(va).state & VA_INSERTED) == 0) gpuVaRelease(vm, va);
  writeZombies(vm);
  return 0;
}

export function vaGet(vmh: u32, va: u32, serial: u32): i32 {
  if (getVm(vmh) === null) return -EINVAL;
  if (getVa(vmh, va, serial) === null) return 0;
  writeVaRecord(ioPtrAt(IO_DATA), va);
  return 1;
}

export function vaSetFlags(vmh: u32, va: u32, serial: u32, flags: u32): i32 {
  if (getVm(vmh) === null) return -EINVAL;
  const m = getVa(vmh, va, serial);
  if (m === null) return -EINVAL;
  m.flags = flags;
  return 0;
}

// ---------------------------------------------------------------------------
// Lookups

/** addr(A0) last(A2): the lowest mapping overlapping [addr, last] -> handle (record at DATA) or 0 */
export function findFirst(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const addr = ioGet64(IO_ARG + 0);
  const last = ioGet64(IO_ARG + 2);
  if (last < addr) return 0;
  const c = vm.tree.lowestOverlapping(addr, last);
  if (c.leaf == 0) return 0;
  const h = c.val();
  writeVaRecord(ioPtrAt(IO_DATA), h);
  return <i32>h;
}

/**
 * n queries (addr, last) at DATA, 4 words each; result i is written in place
 * as (handle, serial) at DATA+2i, (0, 0) when none. -> number found
 */
export function findFirstBatch(vmh: u32, n: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null || n > VAS_PER_CHUNK) return -EINVAL;
  let found: u32 = 0;
  const d = ioPtrAt(IO_DATA);
  const tree = vm.tree;
  // Result i is a whole VA record (words 12i..12i+11), so the caller needs no
  // second crossing for a mapping it has not seen. Answering from the last
  // group of queries down, each group read before any of its results is
  // written, a result only overwrites queries 3i..3i+2, all read by then.
  // The lookups of a group run side by side (lowestOverlappingMany).
  for (let top = n; top > 0; ) {
    const b = top > LOOKUP_GROUP ? top - LOOKUP_GROUP : 0;
    const m = top - b;
    for (let q: u32 = 0; q < m; ++q) {
      const src = d + (<usize>(b + q) << 4);
      store<u64>(batchAddr + (<usize>q << 3), load<u64>(src));
      store<u64>(batchLast + (<usize>q << 3), load<u64>(src, 8));
    }
    tree.lowestOverlappingMany(batchAddr, batchLast, m, batchOut);
    for (let q: u32 = 0; q < m; ++q) {
      const o = batchOut + (<usize>q << 3);
      const leaf = load<u32>(o);
      let h: u32 = 0;
      if (load<u64>(batchLast + (<usize>q << 3)) >= load<u64>(batchAddr + (<usize>q << 3)) && leaf != 0) {
        h = nVal(nodeAt(leaf), load<u32>(o, 4));
        const rec = changetype<usize>(vaAt(h));
        prefetchSink ^= load<u8>(rec) ^ load<u8>(rec + VA_BYTES - 1);
      }
      store<u32>(o, h);
    }
    for (let q = m; q-- > 0; ) {
      const h = load<u32>(batchOut + (<usize>q << 3));
      const r = d + <usize>(b + q) * (<usize>VA_WORDS << 2);
      if (h != 0) {
        writeVaRecord(r, h);
        ++found;
      } else {
        store<u32>(r, 0);
        store<u32>(r, 0, 4);
      }
    }
    top = b;
  }
  return <i32>found;
}

/** addr(A0) last(A2): up to max VA records overlapping [addr, last], ascending, at DATA. -> count */
export function iterate(vmh: u32, max: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const addr = ioGet64(IO_ARG + 0);
  const last = ioGet64(IO_ARG + 2);
  if (max > VAS_PER_CHUNK) max = VAS_PER_CHUNK;
  if (last < addr || max == 0) return 0;
  const c = vm.tree.lowestOverlapping(addr, last);
  let n: u32 = 0;
  while (c.leaf != 0 && n < max) {
    if (c.key() > last) break;
    writeVaRecord(ioPtrAt(IO_DATA + n * VA_WORDS), c.val());
    ++n;
    if (!cursorNext(c)) break;
  }
  return <i32>n;
}

// ---------------------------------------------------------------------------
// Op lists. Order of checks: bad VM, bad arguments (EINVAL), then a partly
// applied list (EBUSY). A failing call leaves an untouched list in place.

/** A map request (addr, range, offset, BO, VmBo) of smMapOps, bind or submit. */
@unmanaged class MapRequest {
  addr: u64 = 0;
  range: u64 = 0;
  offset: u64 = 0;
  bo: u32 = 0;
  vmbo: u32 = 0;
}
const mapReq = changetype<MapRequest>(memory.data(<i32>offsetof<MapRequest>(), 8));

/** The map request in ARG, into mapReq. */
function readMapArgs(): MapRequest {
  const m = mapReq;
  m.addr = ioGet64(IO_ARG + 0);
  m.range = ioGet64(IO_ARG + 2);
  m.offset = ioGet64(IO_ARG + 4);
  m.bo = ioGet(IO_ARG + 6);
  m.vmbo = ioGet(IO_ARG + 7);
  return m;
}

/** The arguments (EINVAL), then the pending list (EBUSY). -> 0 or the error */
function checkMapRequest(vmh: u32, vm: GpuVm, m: MapRequest): i32 {
  if (!rangeValid(vm, m.addr, m.range) || !mapVmBoValid(vmh, m.bo, m.vmbo)) return -EINVAL;
  if (listBusy(vm)) return -EBUSY;
  return 0;
}

/**
 * A map request (bind, smMapOps) whose VmBo word is VMBO_MAKE has the engine
 * make the VmBo of its BO (the caller knows the VM has none): made before the
 * request runs, its creation reference dropped after it, exactly as
 * vmboCreate, the call and vmboPut would do, in one crossing. It stays when
 * the request linked a mapping to it or left a pending list that maps to it,
 * else it goes at once. OUT_MADE_VMBO gets its handle, 0 when it went (or
 * none was asked for).
 */
function makeRequestVmBo(vmh: u32, m: MapRequest): i32 {
  ioSet(OUT_MADE_VMBO, 0);
  if (m.vmbo != VMBO_MAKE) return 0;
  const h = vmboCreate(vmh, m.bo);
  if (h < 0) return h;
  ioSet(OUT_MADE_VMBO, <u32>h);
  m.vmbo = <u32>h;
  return 0;
}

function dropMadeVmBo(vm: GpuVm, vmbo: u32): void {
  const b = vmboAt(vmbo);
  if (--b.refs != 0) return;
  gpuVmBoRelease(vm, vmbo);
  ioSet(OUT_MADE_VMBO, 0);
}

/** bindStep, making the request's VmBo around it when it asks for one. */
function bindMaking(vmh: u32, vm: GpuVm, m: MapRequest): i32 {
  const made = makeRequestVmBo(vmh, m);
  if (made < 0) return made;
  const vmbo = m.vmbo;
  const n = bindStep(vmh, vm, m);
  if (ioGet(OUT_MADE_VMBO) != 0) dropMadeVmBo(vm, vmbo);
  return n;
}

/** addr(A0) range(A2) offset(A4) boId(A6) vmbo(A7, or VMBO_MAKE) -> op count (first chunk at DATA) */
export function smMapOps(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const m = readMapArgs();
  const made = makeRequestVmBo(vmh, m);
  if (made < 0) return made;
  let n = checkMapRequest(vmh, vm, m);
  if (n == 0) {
    genOps.clear();
    if (!smMapGenerate(vm, m.addr, m.range, m.bo, m.offset, m.vmbo, genOps)) {
      n = -ENOMEM;
    } else {
      n = listPublish(vm, m.vmbo);
      if (n > 0) listRequest(vm, LIST_REQ_MAP, m.addr, m.range, m.bo, m.offset);
    }
  }
  if (ioGet(OUT_MADE_VMBO) != 0) dropMadeVmBo(vm, m.vmbo);
  return n;
}

/**
 * The list entry points that take a range share one shape: check the VM, the
 * range (prefetch only refuses overflow, the kernel node is skipped) and the
 * pending list, then replace the list with what `gen` makes of the range.
 */
function rangeListOps(
  vmh: u32,
  valid: (vm: GpuVm, a: u64, r: u64) => bool,
  gen: (vm: GpuVm, a: u64, r: u64, out: Vec) => bool,
  req: u32, // LIST_REQ_UNMAP when the list is sm_unmap's, else 0
): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const addr = ioGet64(IO_ARG + 0);
  const range = ioGet64(IO_ARG + 2);
  if (!valid(vm, addr, range)) return -EINVAL;
  if (listBusy(vm)) return -EBUSY;
  genOps.clear();
  if (!gen(vm, addr, range, genOps)) return -ENOMEM;
  const n = listPublish(vm, 0);
  if (n > 0 && req != 0) listRequest(vm, req, addr, range, 0, 0);
  return n;
}

/** addr(A0) range(A2) -> op count */
export function smUnmapOps(vmh: u32): i32 {
  return rangeListOps(vmh, rangeValid, smUnmapGenerate, LIST_REQ_UNMAP);
}

/** addr(A0) range(A2) -> op count (kernel node excluded; a zero range lists nothing) */
export function prefetchOps(vmh: u32): i32 {
  return rangeListOps(vmh, prefetchRangeValid, prefetchGenerate, 0);
}

/** addr(A0) range(A2) -> op count */
export function madviseOps(vmh: u32): i32 {
  return rangeListOps(vmh, rangeValid, madviseGenerate, 0);
}

export function vmboUnmapOps(vmh: u32, vmbo: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  if (getVmBo(vmh, vmbo) === null) return -EINVAL;
  if (listBusy(vm)) return -EBUSY;
  genOps.clear();
  if (!vmBoUnmapGenerate(vmbo, genOps)) return -ENOMEM;
  return listPublish(vm, 0);
}

export function opsRead(vmh: u32, from: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const n = vm.opsLen;
  if (from >= n) return 0;
  const cnt = n - from < OPS_PER_CHUNK ? n - from : OPS_PER_CHUNK;
  memory.copy(ioPtrAt(IO_DATA), vm.ops.at(from, OP_BYTES), <usize>cnt * OP_BYTES);
  return <i32>cnt;
}

// Scratch for the handles a single op creates.
const createdScratch: usize = memory.data(16, 4);

export function opsApply(vmh: u32, from: u32, to: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const r = applyListRange(vmh, vm, from, to);
  finishApply(vmh, vm, r);
  return r;
}

/** opsApply on a live VM, without finishApply (listStep's long lists end with their own call's). */
function applyListRange(vmh: u32, vm: GpuVm, from: u32, to: u32): i32 {
  const n = vm.opsLen;
  if (!listPending(vm) || from < vm.listNext || to < from || to > n) return -EINVAL;
  const created = createdScratch;
  store<u64>(created, 0);
  store<u64>(created, 0, 8);
  // Applied in order from where it stands, a checked list cannot fail.
  const checked = vm.listChecked != 0 && from == vm.listNext;
  if (!(checked && from == 0 && to == n && vm.listReq != 0 && applyListAsStep(vmh, vm, created))) {
    if (!checked) {
      const err = validateOps(vmh, vm, from, to);
      if (err != 0) return err;
      vm.listChecked = 0; // ops skipped, or the VM changed: check again next time
    }
    for (let k = from; k < to; ++k) {
      store<u64>(created, 0);
      store<u64>(created, 0, 8);
      applyOp(vmh, vm, opAt(vm.ops, k), null, created);
    }
  }
  memory.copy(ioPtrAt(OUT_CREATED), created, 16);
  vm.listNext = to;
  if (to == n) listRelease(vm);
  return 0;
}

export function opsDrop(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  listReset(vm);
  writeZombies(vm);
  return 0;
}

// ---------------------------------------------------------------------------
// Fused calls: generate into the VM's list storage and apply at once; the
// result equals smMapOps/smUnmapOps + opsApply of the whole list.

/** One fused call on a live VM, checks included (bind, unbind, submit). -> op count or -errno */
function bindStep(vmh: u32, vm: GpuVm, m: MapRequest): i32 {
  const err = checkMapRequest(vmh, vm, m);
  if (err != 0) return err;
  return fusedStep(vmh, vm, m.addr, m.range, true, m.bo, m.offset, m.vmbo);
}

function unbindStep(vmh: u32, vm: GpuVm, addr: u64, range: u64): i32 {
  if (!rangeValid(vm, addr, range)) return -EINVAL;
  if (listBusy(vm)) return -EBUSY;
  return fusedStep(vmh, vm, addr, range, false, 0, 0, 0);
}

export function bind(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const n = bindMaking(vmh, vm, readMapArgs());
  finishApply(vmh, vm, n);
  return n;
}

export function unbind(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const n = unbindStep(vmh, vm, ioGet64(IO_ARG + 0), ioGet64(IO_ARG + 2));
  finishApply(vmh, vm, n);
  return n;
}

/** smMapOps and opsApply of the whole list in one call (same args): the list's records at DATA. -> op count or -errno */
export function smMapApply(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const m = readMapArgs();
  let r = checkMapRequest(vmh, vm, m);
  if (r == 0) r = listStep(vmh, vm, m.addr, m.range, true, m.bo, m.offset, m.vmbo);
  finishApply(vmh, vm, r);
  return r;
}

/** smUnmapOps and opsApply of the whole list in one call (same args). -> op count or -errno */
export function smUnmapApply(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const addr = ioGet64(IO_ARG + 0);
  const range = ioGet64(IO_ARG + 2);
  let r = -EINVAL;
  if (rangeValid(vm, addr, range)) r = listBusy(vm) ? -EBUSY : listStep(vmh, vm, addr, range, false, 0, 0, 0);
  finishApply(vmh, vm, r);
  return r;
}

// ---------------------------------------------------------------------------
// Batched submission: many fused calls in one crossing, each on its own (a
// failing request changes nothing and the next one still runs). A bind names
// its VmBo only (the BO is the VmBo's). A bind of a BO the VM has no VmBo for
// is SUBMIT_MAKE (word 1 the BO id): it makes the VmBo as a bind with
// VMBO_MAKE does and leaves its handle in word 1 (0 when it went); the same
// BO's later binds in the chunk name that record with SUBMIT_SAME (word 1
// its index: the bind uses the VmBo in that record's word 1). A bind whose
// VmBo is not live (gone since the caller wrote the record, or a SUBMIT_SAME
// whose record kept none) stops the batch before it: the caller goes on from
// there, exactly where a sequence of bind calls would have made the VmBo
// again. -ENOMEM also stops the batch: what follows was written against a VM
// that could not grow, and the caller decides.

// Request records (src/backend/engine.ts SUBMIT_*): 8 words; word 0 (kind)
// is overwritten with the request's result.
const SUBMIT_WORDS: u32 = 8;
const SUBMIT_PER_CHUNK: u32 = IO_DATA_WORDS / SUBMIT_WORDS;
const SUBMIT_BIND: u32 = 1;
const SUBMIT_UNBIND: u32 = 2;
const SUBMIT_MAKE: u32 = 1 << 9; // bind: word 1 is a BO id; make its VmBo
const SUBMIT_SAME: u32 = 1 << 10; // bind: word 1 is the index of the record whose VmBo to use
/** Set by submitBind when the record's VmBo is not live (nothing ran). */
let submitStop = false;

function submitBind(vmh: u32, vm: GpuVm, q: usize, at: u32): i32 {
  const w0 = load<u32>(q);
  const m = mapReq;
  if ((w0 & SUBMIT_MAKE) != 0) {
    if ((w0 & ~(<u32>0xff | SUBMIT_MAKE)) != 0) return -EINVAL;
    m.vmbo = VMBO_MAKE;
    m.bo = load<u32>(q, 4);
    m.addr = load<u64>(q, 8);
    m.range = load<u64>(q, 16);
    m.offset = load<u64>(q, 24);
    const r = bindMaking(vmh, vm, m);
    store<u32>(q, ioGet(OUT_MADE_VMBO), 4);
    return r;
  }
  m.vmbo = load<u32>(q, 4);
  if ((w0 & SUBMIT_SAME) != 0) {
    // an earlier record of this chunk: its word 1 holds the VmBo (a
    // SUBMIT_MAKE record leaves the one it made there)
    if (m.vmbo >= at) return -EINVAL;
    m.vmbo = ioGet(IO_DATA + m.vmbo * SUBMIT_WORDS + 1);
    if (m.vmbo == 0) {
      submitStop = true;
      return 0;
    }
  }
  const b = getVmBo(vmh, m.vmbo);
  if (m.vmbo != 0 && (b === null || b.state != VMBO_LIVE)) {
    submitStop = true;
    return 0;
  }
  if ((w0 & ~(<u32>0xff | SUBMIT_SAME)) != 0) return -EINVAL;
  m.bo = b !== null ? b.bo : 0;
  m.addr = load<u64>(q, 8);
  m.range = load<u64>(q, 16);
  m.offset = load<u64>(q, 24);
  return bindStep(vmh, vm, m);
}

/** n bind/unbind requests at DATA; stops before a bind whose VmBo is not live and after the first -ENOMEM. -> requests run */
export function submit(vmh: u32, n: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null || n > SUBMIT_PER_CHUNK) return -EINVAL;
  let q = ioPtrAt(IO_DATA);
  let done: u32 = 0;
  for (; done < n; ++done, q += <usize>SUBMIT_WORDS << 2) {
    const w0 = load<u32>(q);
    let r: i32;
    if ((w0 & 0xff) == SUBMIT_BIND) {
      submitStop = false;
      r = submitBind(vmh, vm, q, done);
      if (submitStop) break;
    } else if (w0 == SUBMIT_UNBIND) {
      r = unbindStep(vmh, vm, load<u64>(q, 8), load<u64>(q, 16));
    } else {
      r = -EINVAL;
    }
    store<i32>(q, r);
    if (r == -ENOMEM) {
      ++done;
      break;
    }
  }
  writeZombies(vm);
  return <i32>done;
}

// ---------------------------------------------------------------------------
// Transactions (bindArray)

export function txStage(vmh: u32, n: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null || n > TX_PER_CHUNK) return -EINVAL;
  const d = ioPtrAt(IO_DATA);
  for (let i: u32 = 0; i < n; ++i) {
    const w0 = load<u32>(d + <usize>i * TX_WORDS * 4);
    const kind = w0 & 0xff;
    if (kind < TX_MAP || kind > TX_UNMAP_ALL || (w0 & ~(0xff | TX_INJECT_ERROR)) != 0) return -EINVAL;
  }
  const st = vm.txStaged;
  const words = n * TX_WORDS;
  if (!st.reserve(<u64>st.len + <u64>words, 4)) return -ENOMEM;
  memory.copy(st.at(st.len, 4), d, <usize>words << 2);
  st.len += words;
  return <i32>(st.len / TX_WORDS);
}

export function txClear(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  vm.txStaged.clear();
  return 0;
}

/**
 * Runs the staged entries in order through the same generate + apply code,
 * logging every change; on failure the log is replayed backwards, the serial
 * counter and the zombie list are restored, so handles, serials, VmBo link
 * order and refcounts are exactly as before. Staging is cleared either way.
 */
export function txRun(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  if (listBusy(vm)) {
    vm.txStaged.clear();
    return -EBUSY;
  }
  txOps.clear();
  txLog.clear();
  const serialStart = serial;
  const zombiesStart = vm.zLen;
  const entries = vm.txLen / TX_WORDS;
  let err: i32 = 0;
  let failAt: u32 = 0;
  // Every VmBo a MAP entry links to is referenced for the whole run, so an
  // earlier entry that unmaps its last mapping cannot destroy it first.
  txHeld.clear();
  if (!txHeld.reserve(entries, 4)) {
    vm.txStaged.clear();
    ioSet(OUT_FAIL_INDEX, 0);
    return -ENOMEM;
  }
  for (let i: u32 = 0; i < entries; ++i) {
    const e = vm.txStaged.at(i * TX_WORDS, 4);
    const vb = load<u32>(e, 8);
    if ((load<u32>(e) & 0xff) == TX_MAP && vb != 0 && mapVmBoValid(vmh, load<u32>(e, 4), vb)) {
      ++vmboAt(vb).refs;
      txHeld.pushU32(vb);
    }
  }
  for (let i: u32 = 0; i < entries; ++i) {
    const e = vm.txStaged.at(i * TX_WORDS, 4);
    const w0 = load<u32>(e);
    const kind = w0 & 0xff;
    const addr = load<u64>(e, 16);
    const range = load<u64>(e, 24);
    const offset = load<u64>(e, 32);
    const first = txOps.len;
    if ((w0 & TX_INJECT_ERROR) != 0) {
      err = -ENOMEM;
    } else if (kind == TX_MAP) {
      const bo = load<u32>(e, 4);
      const vmbo = load<u32>(e, 8);
      if (!rangeValid(vm, addr, range) || !mapVmBoValid(vmh, bo, vmbo)) {
        err = -EINVAL;
      } else {
        if (!smMapGenerate(vm, addr, range, bo, offset, vmbo, txOps) || !ensureApply(vm, txOps.len - first)) {
          err = -ENOMEM;
        } else {
          if (vmbo != 0) ++vmboAt(vmbo).refs;
          for (let k = first; k < txOps.len; ++k) applyOp(vmh, vm, opAt(txOps, k), txLog, 0);
          if (vmbo != 0) gpuVmBoPutInternal(vmbo);
        }
      }
    } else if (kind == TX_UNMAP) {
      if (!rangeValid(vm, addr, range)) {
        err = -EINVAL;
      } else {
        if (!smUnmapGenerate(vm, addr, range, txOps) || !ensureApply(vm, txOps.len - first)) {
          err = -ENOMEM;
        } else {
          for (let k = first; k < txOps.len; ++k) applyOp(vmh, vm, opAt(txOps, k), txLog, 0);
        }
      }
    } else if (kind == TX_PREFETCH) {
      if (!prefetchRangeValid(vm, addr, range)) {
        err = -EINVAL;
      } else if (!prefetchGenerate(vm, addr, range, txOps)) {
        err = -ENOMEM;
      }
    } else {
      // TX_UNMAP_ALL: a BO without a VmBo in this VM (vmbo 0) has nothing to unmap
      const vmbo = load<u32>(e, 8);
      if (vmbo != 0 && getVmBo(vmh, vmbo) === null) {
        err = -EINVAL;
      } else if (vmbo != 0) {
        if (!vmBoUnmapGenerate(vmbo, txOps) || !ensureApply(vm, txOps.len - first)) {
          err = -ENOMEM;
        } else {
          for (let k = first; k < txOps.len; ++k) applyOp(vmh, vm, opAt(txOps, k), txLog, 0);
        }
      }
    }
    if (err != 0) {
      failAt = i;
      break;
    }
  }
  vm.txStaged.clear();
  // Committing drops the held references and the replaced list's VmBo: room
  // for the zombies that may make, or the whole run is undone.
  if (err == 0 && !vm.zombies.reserve(<u64>vm.zLen + <u64>txHeld.len + 1 + <u64>vm.listZombieSlack, 4)) {
    err = -ENOMEM;
    failAt = entries == 0 ? 0 : entries - 1;
  }

  if (err != 0) {
    txUndoAll(vm, txLog);
    serial = serialStart;
    // VmBos that turned zombie during the run have their references back.
    for (let i = zombiesStart; i < vm.zLen; ++i) {
      const b = vmboAt(vm.zombies.u32At(i));
      if (b.state == VMBO_ZOMBIE && b.refs > 0) {
        b.state = VMBO_LIVE;
        --vm.zombieCount;
      }
    }
    vm.zLen = zombiesStart;
    for (let i: u32 = 0; i < txHeld.len; ++i) gpuVmBoPutInternal(txHeld.u32At(i));
    txHeld.clear();
    txOps.clear();
    txLog.clear();
    ioSet(OUT_FAIL_INDEX, failAt);
    writeZombies(vm);
    return err;
  }

  // Success: release the kept mappings in the order they were removed, and
  // leave the ops as an applied list.
  for (let i: u32 = 0; i < txLog.len; ++i) {
    const u = txLog.at(i, TX_UNDO_BYTES);
    if (load<u32>(u) == TX_UNDO_REMOVED) {
      const va = load<u32>(u, 4);
      vaAt(va).state &= ~VA_KEPT;
      gpuVaRelease(vm, va);
    }
  }
  txLog.clear();
  for (let i: u32 = 0; i < txHeld.len; ++i) gpuVmBoPutInternal(txHeld.u32At(i));
  txHeld.clear();
  listReset(vm);
  vm.ops.swap(txOps);
  vm.listNext = vm.opsLen;
  txOps.clear();
  writeZombies(vm);
  return <i32>vm.opsLen;
}

// ---------------------------------------------------------------------------
// The storage budget (budget.ts: the instance's linear memory)

/** limit(A0) in bytes, 0 for none but the platform's -> 0 */
export function memSetLimit(): i32 {
  memSetLimitBytes(ioGet64(IO_ARG + 0));
  return 0;
}

/** -> 0; bytes in use at OUT_INFO+0..1, the limit at OUT_INFO+2..3 */
export function memStats(): i32 {
  ioSet64(OUT_INFO + 0, memUsed());
  ioSet64(OUT_INFO + 2, memLimit());
  return 0;
}

// ---------------------------------------------------------------------------
// VmBos

export function vmboCreate(vmh: u32, bo: u32): i32 {
  const vmp = getVm(vmh);
  if (vmp === null || bo == 0) return -EINVAL;
  if (!vmbos.ensure(1)) return -ENOMEM;
  const h = vmbos.alloc();
  const vm = vmAt(vmh);
  const b = vmboAt(h);
  b.bo = bo;
  b.vm = vmh;
  b.refs = 1;
  b.head = 0;
  b.tail = 0;
  b.count = 0;
  b.state = VMBO_LIVE;
  b.vmPrev = vm.vmboTail;
  b.vmNext = 0;
  if (vm.vmboTail != 0) {
    vmboAt(vm.vmboTail).vmNext = h;
  } else {
    vm.vmboHead = h;
  }
  vm.vmboTail = h;
  ++vm.vmboCount;
  return <i32>h;
}

export function vmboGet(vmh: u32, vmbo: u32): i32 {
  if (getVm(vmh) === null) return -EINVAL;
  const b = getVmBo(vmh, vmbo);
  if (b === null || b.state != VMBO_LIVE) return -EINVAL;
  return <i32>++b.refs;
}

export function vmboPut(vmh: u32, vmbo: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const b = getVmBo(vmh, vmbo);
  if (b === null || b.state != VMBO_LIVE) return -EINVAL;
  // The caller may drop only references it holds: each linked mapping holds
  // one, and so does a pending list that maps to this VmBo.
  if (b.refs <= b.count + (vm.listVmbo == vmbo ? 1 : 0)) return -EINVAL;
  const refs = --b.refs;
  if (refs == 0) gpuVmBoRelease(vm, vmbo); // no mappings: each would hold a ref
  writeZombies(vm);
  return <i32>refs;
}

export function vmboInfo(vmh: u32, vmbo: u32): i32 {
  if (getVm(vmh) === null) return -EINVAL;
  const b = getVmBo(vmh, vmbo);
  if (b === null) return -EINVAL;
  ioSet(OUT_INFO + 0, b.refs);
  ioSet(OUT_INFO + 1, b.count);
  ioSet(OUT_INFO + 2, b.bo);
  return <i32>b.refs;
}

export function vmboMappings(vmh: u32, vmbo: u32, after: u32, max: u32): i32 {
  if (getVm(vmh) === null) return -EINVAL;
  const b = getVmBo(vmh, vmbo);
  if (b === null) return -EINVAL;
  let h = b.head;
  if (after != 0) {
    if (after >= vas.limit || (vaAt(after).state & VA_LIVE) == 0 || vaAt(after).vmbo != vmbo) return -EINVAL;
    h = vaAt(after).vbNext;
  }
  if (max > VAS_PER_CHUNK) max = VAS_PER_CHUNK;
  let n: u32 = 0;
  for (; h != 0 && n < max; h = vaAt(h).vbNext) {
    writeVaRecord(ioPtrAt(IO_DATA + n * VA_WORDS), h);
    ++n;
  }
  return <i32>n;
}

/** Releases up to `max` of the VM's zombies, oldest first, their handles to io[at...]; an entry whose VmBo is no longer a zombie is skipped. -> how many */
function releaseZombies(vmh: u32, vm: GpuVm, at: u32, max: u32): u32 {
  let n: u32 = 0;
  let i: u32 = 0;
  const z = vm.zombies;
  for (; i < z.len && n < max; ++i) {
    const h = z.u32At(i);
    const b = vmboAt(h);
    if (b.state != VMBO_ZOMBIE || b.vm != vmh) continue;
    gpuVmBoRelease(vm, h);
    --vm.zombieCount;
    ioSet(at + n, h);
    ++n;
  }
  // erase the processed prefix
  memory.copy(z.data, z.at(i, 4), <usize>(z.len - i) << 2);
  z.len -= i;
  return n;
}

/** Releases the VM's zombies into DATA (as many as fit). -> how many */
export function vmboReap(vmh: u32): i32 {
  const vm = getVm(vmh);
  if (vm === null) return -EINVAL;
  const n = releaseZombies(vmh, vm, IO_DATA, IO_DATA_WORDS);
  writeZombies(vm);
  return <i32>n;
}
