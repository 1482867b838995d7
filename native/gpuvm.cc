// GPU VA manager (drm_gpuvm): VMs, mappings, VmBos, split/merge generation
// (drm_gpuvm_sm_map / sm_unmap / prefetch / madvise / bo_unmap ops_create),
// op application, fused bind/unbind, transactions with exact undo.
// Design: docs/engine-internals.md; the WASM twin is assembly/gpuvm.ts.
#include "gpuvm.h"

#include <cstddef>
#include <cstring>

namespace gpuvm {

namespace {

inline u32 OpKind(const GpuVaOp& op) { return op.kind & 0xff; }

// Op records go to io as 16 words with u64 fields low word first, which on
// a little-endian host is GpuVaOp's own layout.
void CopyOpsOut(u32* dst, const GpuVaOp* ops, u32 n) {
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  for (u32 i = 0; i < n; ++i, dst += OP_WORDS) {
    const GpuVaOp& op = ops[i];
    dst[0] = op.kind;
    dst[1] = op.handle;
    dst[2] = op.serial;
    dst[3] = op.bo;
    Write64(dst, 4, op.addr);
    Write64(dst, 6, op.range);
    Write64(dst, 8, op.offset);
    Write64(dst, 10, op.prevRange);
    Write64(dst, 12, op.nextAddr);
    Write64(dst, 14, op.nextOffset);
  }
#else
  // An empty list may have no storage at all (a null pointer).
  if (n != 0) std::memcpy(dst, ops, static_cast<size_t>(n) * sizeof(GpuVaOp));
#endif
}

}  // namespace

Engine::Engine() : vms_(&budget_, 8), vas_(&budget_, 1024), vmbos_(&budget_, 64), nodes_(&budget_, 256) {}

Engine::~Engine() {
  for (u32 h = 1; h < vms_.Limit(); ++h) {
    GpuVm& vm = vms_[h];
    vm.list.ops.Release(budget_);
    vm.txStaged.Release(budget_);
    vm.zombies.Release(budget_);
  }
  genOps_.Release(budget_);
  txOps_.Release(budget_);
  txLog_.Release(budget_);
  txHeld_.Release(budget_);
  doomed_.Release(budget_);
  stepStart_.Release(budget_);
  stepVa_.Release(budget_);
}

// ---------------------------------------------------------------------------
// Lookups and validation

GpuVm* Engine::GetVm(u32 vm) {
  if (vm == 0 || vm >= vms_.Limit()) return nullptr;
  GpuVm& v = vms_[vm];
  return v.live ? &v : nullptr;
}

GpuVa* Engine::GetVa(u32 vm, u32 va, u32 serial) {
  if (va == 0 || va >= vas_.Limit()) return nullptr;
  GpuVa& m = vas_[va];
  if (!(m.state & VA_LIVE) || m.vm != vm || m.serial != serial) return nullptr;
  return &m;
}

GpuVmBo* Engine::GetVmBo(u32 vm, u32 vmbo) {
  if (vmbo == 0 || vmbo >= vmbos_.Limit()) return nullptr;
  GpuVmBo& b = vmbos_[vmbo];
  if (b.state == VMBO_FREE || b.vm != vm) return nullptr;
  return &b;
}

bool Engine::RangeValid(const GpuVm& vm, u64 addr, u64 range) {
  if (range == 0) return false;
  const u64 end = addr + range;
  if (end <= addr) return false;  // wrapped, or exactly 2^64
  if (addr < vm.start || end > vm.end) return false;
  return !(vm.kend != vm.kstart && addr < vm.kend && vm.kstart < end);
}

// The kernel does not check a prefetch range against the VM: it lists what
// the range overlaps, nothing for a zero range. Only overflow is refused.
bool Engine::PrefetchRangeValid(const GpuVm&, u64 addr, u64 range) {
  return range == 0 || addr + range > addr;
}

bool Engine::MapVmBoValid(u32 vmh, u32 bo, u32 vmbo) {
  if (vmbo == 0) return true;
  if (bo == 0) return false;
  const GpuVmBo* b = GetVmBo(vmh, vmbo);
  return b != nullptr && b->state == VMBO_LIVE && b->bo == bo;
}

// ---------------------------------------------------------------------------
// Mapping records and VmBo lists

GPUVM_INLINE u32 Engine::GpuVaCreate(u32 vmh, GpuVm& vm, u64 addr, u64 end, u64 offset, u32 bo, u32 flags) {
  const u32 h = vas_.Alloc();
  GpuVa& m = vas_[h];
  if (++serial_ == 0) serial_ = 1;  // 0 never names a mapping
  m.addr = addr;
  m.end = end;
  m.offset = offset;
  m.flags = flags;
  m.serial = serial_;
  m.owner = bo;
  m.vm = vmh;
  m.vbPrev = 0;
  m.vbNext = 0;
  m.state = VA_LIVE;
  ++vm.vaCount;
  return h;
}

GPUVM_INLINE void Engine::GpuVaRelease(GpuVm& vm, u32 va) {
  vas_[va].state = 0;
  vas_.Free(va);
  --vm.vaCount;
}

// The VmBo's mapping list (link order) and the reference each linked mapping
// holds: put va between prev and next (0 = the list's end)...
GPUVM_INLINE void Engine::VmBoListInsert(u32 va, u32 vmbo, u32 prev, u32 next) {
  GpuVa& m = vas_[va];
  GpuVmBo& b = vmbos_[vmbo];
  m.owner = vmbo;  // b.bo is the mapping's BO
  m.state |= VA_LINKED;
  m.vbPrev = prev;
  m.vbNext = next;
  if (prev != 0) {
    vas_[prev].vbNext = va;
  } else {
    b.head = va;
  }
  if (next != 0) {
    vas_[next].vbPrev = va;
  } else {
    b.tail = va;
  }
  ++b.count;
  ++b.refs;
}

// ...and take it out again; returns the VmBo (0 if va was not linked), whose
// reference the caller drops as it must.
GPUVM_INLINE u32 Engine::VmBoListRemove(u32 va) {
  GpuVa& m = vas_[va];
  if (!(m.state & VA_LINKED)) return 0;
  const u32 vb = m.owner;
  GpuVmBo& b = vmbos_[vb];
  if (m.vbPrev != 0) {
    vas_[m.vbPrev].vbNext = m.vbNext;
  } else {
    b.head = m.vbNext;
  }
  if (m.vbNext != 0) {
    vas_[m.vbNext].vbPrev = m.vbPrev;
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

// drm_gpuva_link: append to the VmBo's list; each linked mapping holds a ref.
GPUVM_INLINE void Engine::GpuVaLink(u32 va, u32 vmbo) {
  VmBoListInsert(va, vmbo, vmbos_[vmbo].tail, 0);
}

// drm_gpuva_unlink: leave the VmBo's list and drop the reference.
GPUVM_INLINE void Engine::GpuVaUnlink(u32 va) {
  const u32 vb = VmBoListRemove(va);
  if (vb != 0) GpuVmBoPutInternal(vb);
}

// A reference dropped inside the engine: at 0 the VmBo becomes a zombie that
// the facade reaps later (drm_gpuvm_bo_put_deferred / deferred_cleanup).
void Engine::GpuVmBoPutInternal(u32 vmbo) {
  GpuVmBo& b = vmbos_[vmbo];
  if (--b.refs != 0) return;
  b.state = VMBO_ZOMBIE;
  GpuVm& vm = vms_[b.vm];
  // Room was ensured by the caller; should that reasoning ever fail, grow
  // past the limit rather than write out of bounds.
  if (vm.zombies.size() == vm.zombies.capacity()) vm.zombies.Reserve(budget_, vm.zombies.size() + 1, true);
  if (vm.zombies.size() < vm.zombies.capacity()) vm.zombies.PushReserved(vmbo);
  ++vm.zombieCount;
}

void Engine::GpuVmBoRelease(GpuVm& vm, u32 vmbo) {
  GpuVmBo& b = vmbos_[vmbo];
  if (b.vmPrev != 0) {
    vmbos_[b.vmPrev].vmNext = b.vmNext;
  } else {
    vm.vmboHead = b.vmNext;
  }
  if (b.vmNext != 0) {
    vmbos_[b.vmNext].vmPrev = b.vmPrev;
  } else {
    vm.vmboTail = b.vmPrev;
  }
  b.state = VMBO_FREE;
  --vm.vmboCount;
  vmbos_.Free(vmbo);
}

// Zombie pushes must not allocate while a list is applied, so the array
// keeps room for `extra` more plus what the pending list was promised.
bool Engine::EnsureZombieRoom(GpuVm& vm, u32 extra) {
  return vm.zombies.Reserve(budget_, static_cast<u64>(vm.zombies.size()) + extra + vm.list.zombieSlack);
}

void Engine::WriteVaRecord(u32* dst, u32 va) const {
  const GpuVa& m = vas_[va];
  dst[0] = va;
  dst[1] = m.serial;
  dst[2] = VaBo(m);
  dst[3] = m.flags;
  Write64(dst, 4, m.addr);
  Write64(dst, 6, m.end - m.addr);
  Write64(dst, 8, m.offset);
  dst[10] = VaVmBo(m);
  dst[11] = ((m.state & VA_KERNEL) ? VA_ATTR_KERNEL : 0) |
            ((m.state & VA_INSERTED) ? VA_ATTR_INSERTED : 0);
}

// ---------------------------------------------------------------------------
// Split/merge generation

// The walk sm_map and sm_unmap share: per overlapping mapping, ascending,
// UNMAP or REMAP(prev?, next?), with keep when the mapping has the request's
// non-null BO at the same address->offset relation (u64 wrapping; the three
// forms of the kernel's case analysis folded into one). bo 0 never keeps,
// which is sm_unmap's rule. Returns the mapping records the ops create.
GPUVM_INLINE u32 Engine::FillSplitOp(GpuVaOp& op, u32 h, const GpuVa& m, u64 s, u64 t, u64 a, u64 e, u32 bo,
                                     u64 off) const {
  op.handle = h;
  op.serial = m.serial;
  op.bo = VaBo(m);
  op.addr = s;
  op.range = t - s;
  op.offset = m.offset;
  op.prevRange = 0;
  op.nextAddr = 0;
  op.nextOffset = 0;
  u32 kind = OP_UNMAP;
  u32 pieces = 0;
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
  if (op.bo != 0 && op.bo == bo && m.offset - s == off - a) kind |= OP_KEEP;
  op.kind = kind;
  return pieces;
}

GPUVM_INLINE void Engine::FillMapOp(GpuVaOp& op, u32 vmbo, u32 bo, u64 addr, u64 range, u64 offset) {
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

bool Engine::SplitWalk(GpuVm& vm, u64 a, u64 e, u32 bo, u64 off, OpArray& out) {
  u32 inserts = 0;
  u32 unlinks = 0;
  RangeCursor c = vm.tree.LowestOverlapping(nodes_, a, e - 1);
  genFirst_ = c;
  genOneLeaf_ = true;
  while (c.leaf != 0) {
    const RangeNode& l = nodes_[c.leaf];
    const u64 s = l.key[c.slot];
    if (s >= e) break;
    const u64 t = vas_[l.val[c.slot]].end;
    const u32 h = l.val[c.slot];
    const GpuVa& m = vas_[h];
    // Applying the op unlinks m: start loading its list neighbours now.
    GPUVM_PREFETCH(&vas_[m.vbPrev]);
    GPUVM_PREFETCH(&vas_[m.vbNext]);
    GpuVaOp* slot = out.Append(budget_);
    if (slot == nullptr) return false;
    inserts += FillSplitOp(*slot, h, m, s, t, a, e, bo, off);
    ++unlinks;
    if (t >= e) break;
    const u32 leaf = c.leaf;
    if (!RangeTree::Next(nodes_, c)) break;
    if (c.leaf != leaf && nodes_[c.leaf].key[0] < e) genOneLeaf_ = false;
  }
  genInserts_ = inserts;
  genUnlinks_ = unlinks;
  return true;
}

// drm_gpuvm_sm_map_ops_create: the split walk, then one MAP of the request.
bool Engine::SmMapGenerate(GpuVm& vm, u64 a, u64 r, u32 bo, u64 off, u32 vmbo, OpArray& out) {
  if (!SplitWalk(vm, a, a + r, bo, off, out)) return false;
  GpuVaOp* slot = out.Append(budget_);
  if (slot == nullptr) return false;
  FillMapOp(*slot, vmbo, bo, a, r, off);
  ++genInserts_;
  return true;
}

// drm_gpuvm_sm_unmap_ops_create: the split walk without a BO (keep always 0), no MAP.
bool Engine::SmUnmapGenerate(GpuVm& vm, u64 a, u64 r, OpArray& out) {
  return SplitWalk(vm, a, a + r, 0, 0, out);
}

// drm_gpuvm_prefetch_ops_create: one PREFETCH per overlapping mapping, the
// kernel node skipped.
bool Engine::PrefetchGenerate(GpuVm& vm, u64 a, u64 r, OpArray& out) {
  genInserts_ = 0;
  genUnlinks_ = 0;
  if (r == 0) return true;
  const u64 e = a + r;
  RangeCursor c = vm.tree.LowestOverlapping(nodes_, a, e - 1);
  while (c.leaf != 0) {
    const RangeNode& l = nodes_[c.leaf];
    const u64 s = l.key[c.slot];
    if (s >= e) break;
    const u32 h = l.val[c.slot];
    const GpuVa& m = vas_[h];
    if (!(m.state & VA_KERNEL)) {
      GpuVaOp op;
      op.kind = OP_PREFETCH;
      op.handle = h;
      op.serial = m.serial;
      op.bo = VaBo(m);
      op.addr = s;
      op.range = vas_[l.val[c.slot]].end - s;
      op.offset = m.offset;
      op.prevRange = 0;
      op.nextAddr = 0;
      op.nextOffset = 0;
      if (!out.Push(budget_, op)) return false;
    }
    if (!RangeTree::Next(nodes_, c)) break;
  }
  return true;
}

// drm_gpuvm_madvise_ops_create: the sm_map walk in madvise mode. Mappings
// with a BO are skipped, no UNMAPs are emitted, BO-less mappings crossing an
// edge of the request are split; the MAPs are bare requests as upstream builds
// them (a map_req with only the VA set): no BO, offset 0.
bool Engine::MadviseGenerate(GpuVm& vm, u64 a, u64 r, OpArray& out) {
  const u64 e = a + r;
  u32 inserts = 0;
  u32 unlinks = 0;
  bool finalMap = false;
  bool ok = true;
  auto pushMap = [&](u64 addr, u64 range, u64 offset) {
    GpuVaOp map;
    FillMapOp(map, 0, 0, addr, range, offset);
    ok = ok && out.Push(budget_, map);
    ++inserts;
  };
  RangeCursor c = vm.tree.LowestOverlapping(nodes_, a, e - 1);
  while (c.leaf != 0) {
    const RangeNode& l = nodes_[c.leaf];
    const u64 s = l.key[c.slot];
    if (s >= e) break;
    const u64 t = vas_[l.val[c.slot]].end;
    const u32 h = l.val[c.slot];
    const GpuVa& m = vas_[h];
    if (VaBo(m) != 0) {
      if (!RangeTree::Next(nodes_, c)) break;
      continue;
    }
    if (s >= a && t <= e) {  // inside the request: nothing to split
      if (t == e || !RangeTree::Next(nodes_, c)) break;
      continue;
    }
    // a BO-less mapping crossing an edge: the split walk's REMAP (never keep)
    GpuVaOp op;
    inserts += FillSplitOp(op, h, m, s, t, a, e, 0, 0);
    if (!out.Push(budget_, op)) return false;
    ++unlinks;
    if (s > a) {
      // Starts inside, ends past the request: map [s, e) and stop.
      pushMap(s, e - s, 0);
      break;
    }
    if (t < e) {
      // Starts before, ends inside: map [a, t) at once and go on.
      pushMap(a, t - a, 0);
      if (!RangeTree::Next(nodes_, c)) break;
      continue;
    }
    // One mapping holds the request's start and reaches its end.
    finalMap = true;
    break;
  }
  if (finalMap) pushMap(a, r, 0);
  genInserts_ = inserts;
  genUnlinks_ = unlinks;
  return ok;
}

// drm_gpuvm_bo_unmap_ops_create: UNMAP(keep=0) per mapping of the VmBo in
// link order; linked mappings already out of the tree are skipped (they
// cannot be unmapped).
bool Engine::VmBoUnmapGenerate(u32 vmbo, OpArray& out) {
  u32 unlinks = 0;
  for (u32 h = vmbos_[vmbo].head; h != 0; h = vas_[h].vbNext) {
    const GpuVa& m = vas_[h];
    if (!(m.state & VA_INSERTED)) continue;
    GpuVaOp op;
    op.kind = OP_UNMAP;
    op.handle = h;
    op.serial = m.serial;
    op.bo = VaBo(m);
    op.addr = m.addr;
    op.range = m.end - m.addr;
    op.offset = m.offset;
    op.prevRange = 0;
    op.nextAddr = 0;
    op.nextOffset = 0;
    if (!out.Push(budget_, op)) return false;
    ++unlinks;
  }
  genInserts_ = 0;
  genUnlinks_ = unlinks;
  return true;
}

// ---------------------------------------------------------------------------
// Pending list

void Engine::ListRelease(GpuVm& vm) {
  GpuVaOps& l = vm.list;
  if ((l.resVas | l.resNodes | l.vmbo | l.zombieSlack) == 0) return;  // nothing held
  if (l.resVas != 0) {
    vas_.Unreserve(l.resVas);
    l.resVas = 0;
  }
  if (l.resNodes != 0) {
    nodes_.Unreserve(l.resNodes);
    l.resNodes = 0;
  }
  if (l.vmbo != 0) {
    const u32 b = l.vmbo;
    l.vmbo = 0;
    GpuVmBoPutInternal(b);  // room for this push is part of the slack
  }
  l.zombieSlack = 0;
}

void Engine::ListReset(GpuVm& vm) {
  ListRelease(vm);
  vm.list.ops.Clear();
  vm.list.next = 0;
  vm.list.checked = 0;
  vm.list.req = 0;
}

i32 Engine::ListPublish(GpuVm& vm, u32 vmbo) {
  GpuVaOps& l = vm.list;
  const u32 n = genOps_.size();
  const u32 resVas = genInserts_;
  const u32 resNodes = genInserts_ * vm.tree.InsertNeed();
  const u32 slack = genUnlinks_ + 1;
  // The old list's reservations are returned before the new ones are taken,
  // and dropping it pushes at most its VmBo as a zombie.
  if (!vas_.Ensure(resVas > l.resVas ? resVas - l.resVas : 0) ||
      !nodes_.Ensure(resNodes > l.resNodes ? resNodes - l.resNodes : 0) ||
      !vm.zombies.Reserve(budget_, static_cast<u64>(vm.zombies.size()) + (l.vmbo != 0 ? 1 : 0) + slack) ||
      !doomed_.Reserve(budget_, n) || !stepStart_.Reserve(budget_, n) || !stepVa_.Reserve(budget_, n)) {
    genOps_.Clear();
    return -kENOMEM;
  }
  if (vmbo != 0) ++vmbos_[vmbo].refs;  // the list's reference, before the old list lets go
  ListReset(vm);
  l.ops.Swap(genOps_);
  l.next = 0;
  l.vmbo = vmbo;
  l.resVas = resVas;
  l.resNodes = resNodes;
  // Cannot fail: ensured above.
  vas_.Reserve(resVas);
  nodes_.Reserve(resNodes);
  l.zombieSlack = slack;
  l.checked = 1;  // made from the VM as it is
  l.req = 0;      // SmMapOps / SmUnmapOps name their request after this
  l.first = genFirst_;
  l.oneLeaf = genOneLeaf_ ? 1 : 0;
  l.treeEdits = vm.tree.Edits();
  const u32 chunk = n < OPS_PER_CHUNK ? n : OPS_PER_CHUNK;
  CopyOpsOut(io + IO_DATA, l.ops.data(), chunk);
  if (n == 0) ListRelease(vm);
  WriteZombies(vm);
  return static_cast<i32>(n);
}

// ---------------------------------------------------------------------------
// Op application

bool Engine::EnsureApply(GpuVm& vm, u32 ops) {
  // An op logs at most 4 undo records (REMAP: removed, two pieces, unlinked).
  return vas_.Ensure(genInserts_) && nodes_.Ensure(genInserts_ * vm.tree.InsertNeed()) &&
         EnsureZombieRoom(vm, genUnlinks_ + 1) &&
         txLog_.Reserve(budget_, static_cast<u64>(txLog_.size()) + 4 * static_cast<u64>(ops));
}

// Checks that ops [from, to) can all be applied to the VM as it is now, so
// that opsApply either applies all of them or changes nothing: every
// UNMAP/REMAP names a live inserted mapping (EINVAL), and everything a MAP
// overlaps is unmapped by an earlier op of the range (EEXIST).
i32 Engine::ValidateOps(u32 vmh, GpuVm& vm, u32 from, u32 to) {
  i32 err = 0;
  doomed_.Clear();
  for (u32 k = from; k < to && err == 0; ++k) {
    const GpuVaOp& op = vm.list.ops[k];
    const u32 kind = OpKind(op);
    if (kind == OP_UNMAP || kind == OP_REMAP) {
      GpuVa* m = GetVa(vmh, op.handle, op.serial);
      if (m == nullptr || !(m->state & VA_INSERTED) || (m->state & VA_DOOMED)) {
        err = -kEINVAL;
        break;
      }
      m->state |= VA_DOOMED;
      doomed_.PushReserved(op.handle);  // ListPublish reserved one per op
    } else if (kind == OP_MAP) {
      const u64 e = op.addr + op.range;
      RangeCursor c = vm.tree.LowestOverlapping(nodes_, op.addr, e - 1);
      while (c.leaf != 0) {
        const RangeNode& l = nodes_[c.leaf];
        if (l.key[c.slot] >= e) break;
        if (!(vas_[l.val[c.slot]].state & VA_DOOMED)) {
          err = -kEEXIST;
          break;
        }
        if (!RangeTree::Next(nodes_, c)) break;
      }
    }
  }
  for (u32 h : doomed_) vas_[h].state &= ~VA_DOOMED;
  return err;
}

// Applies one op (already validated or freshly generated). With a log
// (transactions) removed mappings are kept for undo instead of released.
// REMAP: pieces are created prev first, inherit the old mapping's BO and
// flags, and are linked to its VmBo before the old mapping is unlinked.
void Engine::ApplyOp(u32 vmh, GpuVm& vm, const GpuVaOp& op, Array<TxUndo>* log, u32* created) {
  const u32 kind = OpKind(op);
  if (kind == OP_MAP) {
    const u64 end = op.addr + op.range;
    const u32 h = GpuVaCreate(vmh, vm, op.addr, end, op.offset, op.bo, 0);
    vm.tree.Insert(nodes_, op.addr, end, h);
    vas_[h].state |= VA_INSERTED;
    ++vm.mappings;
    if (op.handle != 0) GpuVaLink(h, op.handle);
    if (log) log->PushReserved({TX_UNDO_CREATED, h, 0, 0, 0});
    if (created) {
      created[0] = h;
      created[1] = vas_[h].serial;
    }
    return;
  }
  if (kind != OP_UNMAP && kind != OP_REMAP) return;  // PREFETCH changes nothing

  const u32 old = op.handle;
  u64 oaddr, oend, ooff;
  u32 obo, oflags, ovmbo;
  {
    GpuVa& o = vas_[old];
    oaddr = o.addr;
    oend = o.end;
    ooff = o.offset;
    obo = VaBo(o);
    oflags = o.flags;
    ovmbo = VaVmBo(o);
    o.state &= ~VA_INSERTED;
    if (log) o.state |= VA_KEPT;
  }
  --vm.mappings;
  if (log) log->PushReserved({TX_UNDO_REMOVED, old, 0, 0, 0});

  if (kind == OP_UNMAP) {
    vm.tree.Remove(nodes_, oaddr);
  } else {
    // Tree-wise this is Remove(old), Insert(prev), Insert(next); the first
    // piece takes the old entry's place (RangeTree::Replace keeps the shape).
    u32 piece[2] = {0, 0};
    bool replaced = false;
    if (op.kind & OP_HAS_PREV) {
      const u32 p = GpuVaCreate(vmh, vm, oaddr, oaddr + op.prevRange, ooff, obo, oflags);
      vm.tree.Replace(nodes_, oaddr, oaddr, oaddr + op.prevRange, p);
      replaced = true;
      vas_[p].state |= VA_INSERTED;
      ++vm.mappings;
      if (ovmbo != 0) GpuVaLink(p, ovmbo);
      if (log) log->PushReserved({TX_UNDO_CREATED, p, 0, 0, 0});
      piece[0] = p;
    }
    if (op.kind & OP_HAS_NEXT) {
      const u32 n = GpuVaCreate(vmh, vm, op.nextAddr, oend, op.nextOffset, obo, oflags);
      if (replaced) {
        vm.tree.Insert(nodes_, op.nextAddr, oend, n);
      } else {
        vm.tree.Replace(nodes_, oaddr, op.nextAddr, oend, n);
        replaced = true;
      }
      vas_[n].state |= VA_INSERTED;
      ++vm.mappings;
      if (ovmbo != 0) GpuVaLink(n, ovmbo);
      if (log) log->PushReserved({TX_UNDO_CREATED, n, 0, 0, 0});
      piece[1] = n;
    }
    if (!replaced) vm.tree.Remove(nodes_, oaddr);  // a REMAP always has a piece
    if (created) {
      created[0] = piece[0];
      created[1] = piece[0] ? vas_[piece[0]].serial : 0;
      created[2] = piece[1];
      created[3] = piece[1] ? vas_[piece[1]].serial : 0;
    }
  }

  if (ovmbo != 0) {
    if (log) {
      const GpuVa& o = vas_[old];
      log->PushReserved({TX_UNDO_UNLINKED, old, ovmbo, o.vbPrev, o.vbNext});
    }
    GpuVaUnlink(old);
  }
  if (!log) GpuVaRelease(vm, old);
}

// The fused calls. The result is exactly that of generating the list and
// applying it with ApplyOp (same mappings, handles, serials, link order and
// tree shape) without writing op records. The mappings a split/merge step
// touches are consecutive tree entries; their records and VmBo lists are
// updated entry by entry in op order (so handles are taken and freed in the
// same order), and the tree sees the same sequence of calls as ApplyOp would
// make (Replace/Remove per entry, then Insert next piece, Insert map), except
// that RangeTree::PrepareRun/CommitRun merge calls into one leaf edit where
// that leaves the same tree: the whole step when it stays in one leaf,
// otherwise each group of consecutive removals within one leaf.
GPUVM_INLINE bool Engine::StepScan(GpuVm& vm, u64 a, u64 e, bool map, StepPlan* p) {
  const RangeCursor c = vm.tree.LowestOverlapping(nodes_, a, e - 1);
  u32 k = 0;
  u64 lastEnd = 0;
  bool oneLeaf = true;
  for (RangeCursor w = c; w.leaf != 0;) {
    const RangeNode& l = nodes_[w.leaf];
    if (l.key[w.slot] >= e) break;
    if (k == stepVa_.capacity() &&
        (!stepStart_.Reserve(budget_, 2 * static_cast<u64>(k) + 64) ||
         !stepVa_.Reserve(budget_, 2 * static_cast<u64>(k) + 64))) {
      return false;
    }
    stepStart_[k] = l.key[w.slot];
    stepVa_[k] = l.val[w.slot];
    GPUVM_PREFETCH(&vas_[l.val[w.slot]]);
    ++k;
    lastEnd = vas_[l.val[w.slot]].end;
    if (lastEnd >= e) break;
    const u32 leaf = w.leaf;
    if (!RangeTree::Next(nodes_, w)) break;
    if (w.leaf != leaf && nodes_[w.leaf].key[0] < e) oneLeaf = false;
  }
  StepPlanFinish(vm, a, e, map, c, k, lastEnd, oneLeaf, p);
  return true;
}

GPUVM_INLINE void Engine::StepPlanFinish(GpuVm& vm, u64 a, u64 e, bool map, RangeCursor first, u32 k, u64 lastEnd,
                                         bool oneLeaf, StepPlan* p) {
  const RangeCursor c = first;
  p->first = c;
  p->k = k;
  p->lastEnd = lastEnd;
  p->keepFirst = k > 0 && stepStart_[0] < a;
  p->lastNext = k > 0 && lastEnd > e;
  // One mapping cut on both sides: its Replace keeps the prev piece and the
  // next piece is an Insert of its own.
  p->insertNext = k == 1 && p->keepFirst && p->lastNext;
  p->whole = false;
  if (k > 0 && oneLeaf) {
    RangeRun& run = p->run;
    run.count = k;
    run.keepFirst = p->keepFirst ? 1 : 0;
    run.insertNext = p->insertNext ? 1 : 0;
    run.keepLast = (p->lastNext && !p->insertNext) ? 1 : 0;
    run.insertMid = map ? 1 : 0;
    p->whole = vm.tree.PrepareRun(nodes_, c, &run);
  }
}

GPUVM_INLINE void Engine::StepApply(u32 vmh, GpuVm& vm, const StepPlan& p, u64 a, u64 e, bool map, u32 bo, u64 off,
                       u32 vmbo, u32* created) {
  const u32 k = p.k;
  // Unlinking touches each mapping's VmBo list neighbours: start loading them.
  for (u32 i = 0; i < k; ++i) {
    const GpuVa& o = vas_[stepVa_[i]];
    GPUVM_PREFETCH(&vas_[o.vbPrev]);
    GPUVM_PREFETCH(&vas_[o.vbNext]);
  }
  u32 prevPiece = 0, nextPiece = 0;
  for (u32 i = 0; i < k; ++i) {
    const u32 old = stepVa_[i];
    GpuVa& o = vas_[old];
    const u64 s = o.addr, t = o.end, ooff = o.offset;
    const u32 obo = VaBo(o), oflags = o.flags, ovmbo = VaVmBo(o);
    o.state &= ~VA_INSERTED;
    --vm.mappings;
    if (i == 0 && s < a) {  // REMAP prev piece
      prevPiece = GpuVaCreate(vmh, vm, s, a, ooff, obo, oflags);
      vas_[prevPiece].state |= VA_INSERTED;
      ++vm.mappings;
      if (ovmbo != 0) GpuVaLink(prevPiece, ovmbo);
    }
    if (i == k - 1 && t > e) {  // REMAP next piece
      nextPiece = GpuVaCreate(vmh, vm, e, t, ooff + (e - s), obo, oflags);
      vas_[nextPiece].state |= VA_INSERTED;
      ++vm.mappings;
      if (ovmbo != 0) GpuVaLink(nextPiece, ovmbo);
    }
    if (ovmbo != 0) GpuVaUnlink(old);
    GpuVaRelease(vm, old);
  }
  u32 mapped = 0;
  if (map) {
    mapped = GpuVaCreate(vmh, vm, a, e, off, bo, 0);
    vas_[mapped].state |= VA_INSERTED;
    ++vm.mappings;
    if (vmbo != 0) GpuVaLink(mapped, vmbo);
  }
  // What the list's last op reports: the MAP, else the last REMAP's pieces.
  if (map) {
    created[0] = mapped;
    created[1] = vas_[mapped].serial;
  } else if (p.lastNext) {
    const u32 pv = k == 1 ? prevPiece : 0;
    created[0] = pv;
    created[1] = pv != 0 ? vas_[pv].serial : 0;
    created[2] = nextPiece;
    created[3] = vas_[nextPiece].serial;
  } else if (k == 1 && p.keepFirst) {
    created[0] = prevPiece;
    created[1] = vas_[prevPiece].serial;
  }

  const u64 lastEnd = p.lastEnd;
  if (p.whole) {
    const RangeRun& run = p.run;
    vm.tree.CommitRun(nodes_, run, prevPiece, e, nextPiece, a, mapped);
    if (run.insertNext && !run.nextInLeaf) vm.tree.Insert(nodes_, e, lastEnd, nextPiece);
    if (map && !run.midInLeaf) vm.tree.Insert(nodes_, a, e, mapped);
    return;
  }
  // Call by call, removals grouped per leaf.
  u32 i = 0, end = k;
  if (p.keepFirst) {
    vm.tree.Replace(nodes_, stepStart_[0], stepStart_[0], a, prevPiece);
    i = 1;
  }
  if (p.lastNext && !p.insertNext) end = k - 1;
  while (i < end) {
    RangeRun rm;
    rm.count = 0;
    rm.keepFirst = rm.keepLast = rm.insertNext = rm.insertMid = 0;
    const RangeCursor at = vm.tree.Find(nodes_, stepStart_[i]);
    const u32 inLeaf = nodes_[at.leaf].n - at.slot;
    rm.count = end - i < inLeaf ? end - i : inLeaf;
    if (rm.count > 1 && vm.tree.PrepareRun(nodes_, at, &rm)) {
      vm.tree.CommitRun(nodes_, rm, 0, 0, 0, 0, 0);
      i += rm.count;
    } else {
      vm.tree.Remove(nodes_, stepStart_[i]);
      ++i;
    }
  }
  if (p.lastNext && !p.insertNext) vm.tree.Replace(nodes_, stepStart_[k - 1], e, lastEnd, nextPiece);
  if (p.insertNext) vm.tree.Insert(nodes_, e, lastEnd, nextPiece);
  if (map) vm.tree.Insert(nodes_, a, e, mapped);
}

i32 Engine::FusedStep(u32 vmh, GpuVm& vm, u64 a, u64 r, bool map, u32 bo, u64 off, u32 vmbo) {
  const u64 e = a + r;
  StepPlan p;
  if (!StepScan(vm, a, e, map, &p)) return -kENOMEM;
  return FusedFinish(vmh, vm, p, a, e, map, bo, off, vmbo);
}

GPUVM_INLINE i32 Engine::FusedFinish(u32 vmh, GpuVm& vm, const StepPlan& p, u64 a, u64 e, bool map, u32 bo,
                                     u64 off, u32 vmbo) {
  // Everything the step may take, checked before anything changes; the
  // pending list it replaces gives its reservations back first, and dropping
  // it pushes at most its VmBo as a zombie.
  {
    const GpuVaOps& l = vm.list;
    const u32 needNodes = 3 * vm.tree.InsertNeed();
    if (!vas_.Ensure(3 > l.resVas ? 3 - l.resVas : 0) ||
        !nodes_.Ensure(needNodes > l.resNodes ? needNodes - l.resNodes : 0) ||
        !vm.zombies.Reserve(budget_, static_cast<u64>(vm.zombies.size()) + (l.vmbo != 0 ? 1 : 0) + p.k + 1)) {
      return -kENOMEM;
    }
  }
  if (vmbo != 0) ++vmbos_[vmbo].refs;  // held while the step runs
  ListReset(vm);
  u32 created[4] = {0, 0, 0, 0};
  StepApply(vmh, vm, p, a, e, map, bo, off, vmbo, created);
  if (vmbo != 0) GpuVmBoPutInternal(vmbo);
  return static_cast<i32>(p.k + (map ? 1 : 0));
}

// The records are written from the scan, before the step changes the
// mappings they describe, to the record ring at the word ARG names if they
// fit there, else to DATA. A list longer than DATA holds is made and applied
// by SmMapOps / SmUnmapOps and OpsApply themselves, and stays readable through
// OpsRead; a shorter one leaves no list behind, as a fused call does.
i32 Engine::ListStep(u32 vmh, GpuVm& vm, u64 a, u64 r, bool map, u32 bo, u64 off, u32 vmbo) {
  const u64 e = a + r;
  StepPlan p;
  if (!StepScan(vm, a, e, map, &p)) return -kENOMEM;
  const u32 n = p.k + (map ? 1 : 0);
  if (n > OPS_PER_CHUNK) {
    // the calls themselves, on the request still in ARG
    const i32 got = map ? SmMapOps(vmh) : SmUnmapOps(vmh);
    if (got <= 0) return got;
    const i32 err = ApplyListRange(vmh, vm, 0, static_cast<u32>(got));  // whole and checked: cannot fail
    return err < 0 ? err : got;
  }
  // The ring place the caller named, if the records fit there (checked: it
  // is caller data), else DATA.
  const u32 at = io[IO_ARG + 8];
  const u32 room = (ring_ != nullptr && at % OP_WORDS == 0 && at <= ringWords_ && io[IO_ARG + 9] <= ringWords_ - at)
                       ? io[IO_ARG + 9]
                       : 0;
  u32* const base = static_cast<u64>(n) * OP_WORDS <= room ? ring_ + at : io + IO_DATA;
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  GpuVaOp op;
  u32* dst = base;
  for (u32 i = 0; i < p.k; ++i, dst += OP_WORDS) {
    const u32 h = stepVa_[i];
    FillSplitOp(op, h, vas_[h], vas_[h].addr, vas_[h].end, a, e, bo, off);
    CopyOpsOut(dst, &op, 1);
  }
  if (map) {
    FillMapOp(op, vmbo, bo, a, r, off);
    CopyOpsOut(dst, &op, 1);
  }
#else
  // DATA holds records in GpuVaOp's own layout here: fill them in place (a
  // record built on the stack and copied stalls on every store it reloads).
  GpuVaOp* out = reinterpret_cast<GpuVaOp*>(base);
  for (u32 i = 0; i < p.k; ++i) {
    const u32 h = stepVa_[i];
    const GpuVa& m = vas_[h];
    FillSplitOp(out[i], h, m, m.addr, m.end, a, e, bo, off);
  }
  if (map) FillMapOp(out[p.k], vmbo, bo, a, r, off);
#endif
  return FusedFinish(vmh, vm, p, a, e, map, bo, off, vmbo);
}

bool Engine::ApplyListAsStep(u32 vmh, GpuVm& vm, u32* created) {
  const GpuVaOps& l = vm.list;
  const bool map = l.req == LIST_REQ_MAP;
  const u64 a = l.reqAddr, e = l.reqAddr + l.reqRange;
  // opsApply never allocates: the scan must fit the scratch as it is (the
  // list's op count bounds the mappings it meets).
  if (stepVa_.capacity() < l.ops.size() || stepStart_.capacity() < l.ops.size()) return false;
  StepPlan p;
  if (vm.tree.Edits() == l.treeEdits) {
    // The tree is as the generation saw it: its ops name the mappings the
    // scan would meet, in order, and where the first one sits.
    const u32 k = l.ops.size() - (map ? 1 : 0);
    for (u32 i = 0; i < k; ++i) {
      stepStart_[i] = l.ops[i].addr;
      stepVa_[i] = l.ops[i].handle;
    }
    const u64 lastEnd = k > 0 ? l.ops[k - 1].addr + l.ops[k - 1].range : 0;
    StepPlanFinish(vm, a, e, map, l.first, k, lastEnd, l.oneLeaf != 0, &p);
  } else if (!StepScan(vm, a, e, map, &p)) {
    return false;
  }
  // The list's reservations cover the pieces and the MAP (pools, nodes and
  // zombie room), and its VmBo reference holds the MAP's VmBo.
  StepApply(vmh, vm, p, a, e, map, l.reqBo, l.reqOffset, l.vmbo, created);
  return true;
}

// Replays a transaction log backwards. Reference counts are restored by the
// reversed link/unlink steps themselves, so no zombie transitions happen here.
void Engine::TxUndoAll(GpuVm& vm, const Array<TxUndo>& log) {
  for (u32 i = log.size(); i-- > 0;) {
    const TxUndo& u = log[i];
    GpuVa& m = vas_[u.va];
    if (u.kind == TX_UNDO_UNLINKED) {
      VmBoListInsert(u.va, u.vmbo, u.vbPrev, u.vbNext);
    } else if (u.kind == TX_UNDO_CREATED) {
      const u32 vb = VmBoListRemove(u.va);
      if (vb != 0) --vmbos_[vb].refs;
      const u64 addr = m.addr;
      vm.tree.Remove(nodes_, addr);
      --vm.mappings;
      GpuVaRelease(vm, u.va);
    } else {  // TX_UNDO_REMOVED
      const u64 addr = m.addr, end = m.end;
      m.state = (m.state & ~VA_KEPT) | VA_INSERTED;
      // The state being restored fit before; the pool never shrinks, so this
      // only grows in a pathological tree shape, and then past the limit.
      nodes_.Ensure(vm.tree.InsertNeed(), true);
      vm.tree.Insert(nodes_, addr, end, u.va);
      ++vm.mappings;
    }
  }
}

// ---------------------------------------------------------------------------
// VMs

i32 Engine::VmCreate() {
  const u64 start = Read64(io, IO_ARG + 0);
  const u64 range = Read64(io, IO_ARG + 2);
  const u64 rstart = Read64(io, IO_ARG + 4);
  const u64 rrange = Read64(io, IO_ARG + 6);
  if (range == 0) return -kEINVAL;
  const u64 end = start + range;
  if (end <= start) return -kEINVAL;
  u64 rend = 0;
  if (rrange != 0) {
    rend = rstart + rrange;
    if (rend <= rstart || rstart < start || rend > end) return -kEINVAL;
  }
  // The VM record, its root leaf and the kernel node's record and insert.
  if (!vms_.Ensure(1) || !nodes_.Ensure(rrange != 0 ? 3 : 1) || !vas_.Ensure(rrange != 0 ? 1 : 0)) {
    return -kENOMEM;
  }
  if (vms_.NextHandle() >= VM_HANDLE_LIMIT) return -kENOMEM;  // mappings keep 24 bits of it
  const u32 h = vms_.Alloc();
  GpuVm& vm = vms_[h];
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
  vm.list.ops.Clear();
  vm.list.next = 0;
  vm.list.vmbo = 0;
  vm.list.resVas = 0;
  vm.list.resNodes = 0;
  vm.list.zombieSlack = 0;
  vm.txStaged.Clear();
  vm.zombies.Clear();
  vm.zombieCount = 0;
  vm.tree.Init(nodes_, EndSource{vas_.BaseRef(), sizeof(GpuVa), offsetof(GpuVa, end)});
  if (rrange != 0) {
    const u32 k = GpuVaCreate(h, vm, rstart, rend, 0, 0, 0);
    vas_[k].state |= VA_KERNEL | VA_INSERTED;
    vm.tree.Insert(nodes_, rstart, rend, k);
    vm.kernel = k;
  }
  return static_cast<i32>(h);
}

// Releases everything of the VM, in this order (handles are reused LIFO, so
// the order is part of the contract): linked mappings already out of the tree
// (per VmBo in creation order, link order), then the tree's mappings in
// address order, then the VmBos in creation order, then the VM.
i32 Engine::VmDestroy(u32 vmh) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  GpuVm& vm = *vmp;
  if (vm.list.resVas != 0) vas_.Unreserve(vm.list.resVas);
  if (vm.list.resNodes != 0) nodes_.Unreserve(vm.list.resNodes);
  vm.list.resVas = vm.list.resNodes = 0;
  vm.list.vmbo = 0;
  vm.list.zombieSlack = 0;
  vm.list.ops.Release(budget_);
  vm.list.next = 0;
  for (u32 b = vm.vmboHead; b != 0; b = vmbos_[b].vmNext) {
    for (u32 h = vmbos_[b].head; h != 0;) {
      const u32 nx = vas_[h].vbNext;
      if (!(vas_[h].state & VA_INSERTED)) GpuVaRelease(vm, h);
      h = nx;
    }
  }
  RangeCursor c = vm.tree.First(nodes_);
  while (c.leaf != 0) {
    GpuVaRelease(vm, nodes_[c.leaf].val[c.slot]);
    if (!RangeTree::Next(nodes_, c)) break;
  }
  while (vm.vmboHead != 0) GpuVmBoRelease(vm, vm.vmboHead);
  vm.tree.Destroy(nodes_);
  // The arrays go back to the budget (records stay: pools never shrink).
  vm.txStaged.Release(budget_);
  vm.zombies.Release(budget_);
  vm.zombieCount = 0;
  vm.live = 0;
  vms_.Free(vmh);
  return 0;
}

i32 Engine::VmStats(u32 vmh) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  const u64 bytes = sizeof(GpuVm) + static_cast<u64>(vm->tree.Nodes()) * sizeof(RangeNode) +
                    static_cast<u64>(vm->vaCount) * sizeof(GpuVa) +
                    static_cast<u64>(vm->vmboCount) * sizeof(GpuVmBo) +
                    vm->list.ops.capacity() * sizeof(GpuVaOp) + vm->txStaged.capacity() * 4 +
                    vm->zombies.capacity() * 4;
  io[IO_OUT_INFO + 0] = vm->tree.Nodes();
  io[IO_OUT_INFO + 1] = bytes > 0xffffffffu ? 0xffffffffu : static_cast<u32>(bytes);
  return static_cast<i32>(vm->mappings);
}

// ---------------------------------------------------------------------------
// Mappings

i32 Engine::VaInsert(u32 vmh) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  GpuVm& vm = *vmp;
  const u64 addr = Read64(io, IO_ARG + 0);
  const u64 range = Read64(io, IO_ARG + 2);
  const u64 offset = Read64(io, IO_ARG + 4);
  const u32 bo = io[IO_ARG + 6];
  const u32 flags = io[IO_ARG + 7];
  if (!RangeValid(vm, addr, range)) return -kEINVAL;
  const u64 end = addr + range;
  if (vm.tree.LowestOverlapping(nodes_, addr, end - 1).leaf != 0) return -kEEXIST;
  if (!vas_.Ensure(1) || !nodes_.Ensure(vm.tree.InsertNeed())) return -kENOMEM;
  const u32 h = GpuVaCreate(vmh, vm, addr, end, offset, bo, flags);
  vm.tree.Insert(nodes_, addr, end, h);
  vas_[h].state |= VA_INSERTED;
  ++vm.mappings;
  vm.list.checked = 0;
  io[IO_OUT_SERIAL] = vas_[h].serial;
  WriteZombies(vm);
  return static_cast<i32>(h);
}

i32 Engine::VaRemove(u32 vmh, u32 va, u32 serial) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  GpuVm& vm = *vmp;
  GpuVa* m = GetVa(vmh, va, serial);
  if (m == nullptr) return -kEINVAL;
  if (m->state & VA_KERNEL) return -kEPERM;
  if (!(m->state & VA_INSERTED)) return -kEINVAL;
  m->state &= ~VA_INSERTED;
  vm.tree.Remove(nodes_, m->addr);
  --vm.mappings;
  vm.list.checked = 0;
  if (!(m->state & VA_LINKED)) GpuVaRelease(vm, va);
  WriteZombies(vm);
  return 0;
}

i32 Engine::VaLink(u32 vmh, u32 va, u32 serial, u32 vmbo) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  GpuVa* m = GetVa(vmh, va, serial);
  if (m == nullptr || m->owner == 0 || (m->state & VA_LINKED)) return -kEINVAL;
  GpuVmBo* b = GetVmBo(vmh, vmbo);
  if (b == nullptr || b->state != VMBO_LIVE || b->bo != m->owner) return -kEINVAL;
  GpuVaLink(va, vmbo);
  WriteZombies(*vmp);
  return 0;
}

i32 Engine::VaUnlink(u32 vmh, u32 va, u32 serial) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  GpuVm& vm = *vmp;
  GpuVa* m = GetVa(vmh, va, serial);
  if (m == nullptr) return -kEINVAL;
  if (m->state & VA_LINKED) {
    if (!EnsureZombieRoom(vm, 1)) return -kENOMEM;
    GpuVaUnlink(va);
  }
  if (!(vas_[va].state & VA_INSERTED)) GpuVaRelease(vm, va);
  WriteZombies(vm);
  return 0;
}

i32 Engine::VaGet(u32 vmh, u32 va, u32 serial) {
  if (GetVm(vmh) == nullptr) return -kEINVAL;
  if (GetVa(vmh, va, serial) == nullptr) return 0;
  WriteVaRecord(io + IO_DATA, va);
  return 1;
}

i32 Engine::VaSetFlags(u32 vmh, u32 va, u32 serial, u32 flags) {
  if (GetVm(vmh) == nullptr) return -kEINVAL;
  GpuVa* m = GetVa(vmh, va, serial);
  if (m == nullptr) return -kEINVAL;
  m->flags = flags;
  return 0;
}

// ---------------------------------------------------------------------------
// Lookups

i32 Engine::FindFirst(u32 vmh) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  const u64 addr = Read64(io, IO_ARG + 0);
  const u64 last = Read64(io, IO_ARG + 2);
  if (last < addr) return 0;
  const RangeCursor c = vm->tree.LowestOverlapping(nodes_, addr, last);
  if (c.leaf == 0) return 0;
  const u32 h = nodes_[c.leaf].val[c.slot];
  WriteVaRecord(io + IO_DATA, h);
  return static_cast<i32>(h);
}

i32 Engine::FindFirstBatch(u32 vmh, u32 n) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr || n > VAS_PER_CHUNK) return -kEINVAL;
  u32 found = 0;
  u32* d = io + IO_DATA;
  // Result i is a whole VA record (words 12i..12i+11), so the caller needs no
  // second crossing for a mapping it has not seen. Answering from the last
  // group of queries down, each group read before any of its results is
  // written, a result only overwrites queries 3i..3i+2, all read by then.
  // The lookups of a group run side by side (LowestOverlappingMany).
  u64 addr[LOOKUP_GROUP];
  u64 last[LOOKUP_GROUP];
  RangeCursor c[LOOKUP_GROUP];
  u32 h[LOOKUP_GROUP];
  for (u32 top = n; top > 0;) {
    const u32 b = top > LOOKUP_GROUP ? top - LOOKUP_GROUP : 0;
    const u32 m = top - b;
    for (u32 q = 0; q < m; ++q) {
      addr[q] = Read64(d, 4 * (b + q));
      last[q] = Read64(d, 4 * (b + q) + 2);
    }
    vm->tree.LowestOverlappingMany(nodes_, addr, last, m, c);
    for (u32 q = 0; q < m; ++q) {
      h[q] = last[q] >= addr[q] && c[q].leaf != 0 ? nodes_[c[q].leaf].val[c[q].slot] : 0;
      GPUVM_PREFETCH(&vas_[h[q]]);
      GPUVM_PREFETCH(reinterpret_cast<const char*>(&vas_[h[q]]) + sizeof(GpuVa) - 1);
    }
    for (u32 q = m; q-- > 0;) {
      const u32 i = b + q;
      if (h[q] != 0) {
        WriteVaRecord(d + VA_WORDS * i, h[q]);
        ++found;
      } else {
        d[VA_WORDS * i] = 0;
        d[VA_WORDS * i + 1] = 0;
      }
    }
    top = b;
  }
  return static_cast<i32>(found);
}

i32 Engine::Iterate(u32 vmh, u32 max) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  const u64 addr = Read64(io, IO_ARG + 0);
  const u64 last = Read64(io, IO_ARG + 2);
  if (max > VAS_PER_CHUNK) max = VAS_PER_CHUNK;
  if (last < addr || max == 0) return 0;
  RangeCursor c = vm->tree.LowestOverlapping(nodes_, addr, last);
  u32 n = 0;
  while (c.leaf != 0 && n < max) {
    const RangeNode& l = nodes_[c.leaf];
    if (l.key[c.slot] > last) break;
    WriteVaRecord(io + IO_DATA + n * VA_WORDS, l.val[c.slot]);
    ++n;
    if (!RangeTree::Next(nodes_, c)) break;
  }
  return static_cast<i32>(n);
}

// ---------------------------------------------------------------------------
// Op lists. Order of checks: bad VM, bad arguments (EINVAL), then a partly
// applied list (EBUSY). A failing call leaves an untouched list in place.

// A map request in ARG (addr, range, offset, BO, VmBo) for smMapOps and bind.
Engine::MapRequest Engine::ReadMapArgs() const {
  MapRequest m;
  m.addr = Read64(io, IO_ARG + 0);
  m.range = Read64(io, IO_ARG + 2);
  m.offset = Read64(io, IO_ARG + 4);
  m.bo = io[IO_ARG + 6];
  m.vmbo = io[IO_ARG + 7];
  return m;
}

i32 Engine::CheckMapRequest(u32 vmh, const GpuVm& vm, const MapRequest& m) {
  if (!RangeValid(vm, m.addr, m.range) || !MapVmBoValid(vmh, m.bo, m.vmbo)) return -kEINVAL;
  if (ListBusy(vm)) return -kEBUSY;
  return 0;
}

// A map request (bind, smMapOps) whose VmBo word is VMBO_MAKE has the engine
// make the VmBo of its BO (the caller knows the VM has none): made before the
// request runs, its creation reference dropped after it, exactly as
// vmboCreate, the call and vmboPut would do, in one crossing. It stays when
// the request linked a mapping to it or left a pending list that maps to it,
// else it goes at once. OUT_MADE_VMBO gets its handle, 0 when it went (or
// none was asked for).
i32 Engine::MakeRequestVmBo(u32 vmh, MapRequest* m) {
  io[IO_OUT_MADE_VMBO] = 0;
  if (m->vmbo != VMBO_MAKE) return 0;
  const i32 h = VmBoCreate(vmh, m->bo);
  if (h < 0) return h;
  io[IO_OUT_MADE_VMBO] = static_cast<u32>(h);
  m->vmbo = static_cast<u32>(h);
  return 0;
}

void Engine::DropMadeVmBo(GpuVm& vm, u32 vmbo) {
  if (--vmbos_[vmbo].refs != 0) return;
  GpuVmBoRelease(vm, vmbo);
  io[IO_OUT_MADE_VMBO] = 0;
}

// BindStep, making the request's VmBo around it when it asks for one.
i32 Engine::BindMaking(u32 vmh, GpuVm& vm, MapRequest m) {
  const i32 made = MakeRequestVmBo(vmh, &m);
  if (made < 0) return made;
  const i32 n = BindStep(vmh, vm, m);
  if (io[IO_OUT_MADE_VMBO] != 0) DropMadeVmBo(vm, m.vmbo);
  return n;
}

i32 Engine::SmMapOps(u32 vmh) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  MapRequest m = ReadMapArgs();
  const i32 made = MakeRequestVmBo(vmh, &m);
  if (made < 0) return made;
  i32 n = CheckMapRequest(vmh, *vm, m);
  if (n == 0) {
    genOps_.Clear();
    if (!SmMapGenerate(*vm, m.addr, m.range, m.bo, m.offset, m.vmbo, genOps_)) {
      n = -kENOMEM;
    } else {
      n = ListPublish(*vm, m.vmbo);
      if (n > 0) ListRequest(vm->list, LIST_REQ_MAP, m.addr, m.range, m.bo, m.offset);
    }
  }
  if (io[IO_OUT_MADE_VMBO] != 0) DropMadeVmBo(*vm, m.vmbo);
  return n;
}

// The list entry points that take a range share one shape: check the VM, the
// range (prefetch only refuses overflow, the kernel node is skipped) and the
// pending list, then replace the list with what `gen` makes of the range.
i32 Engine::RangeListOps(u32 vmh, RangeCheck valid, RangeGenerator gen, u32 req) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  GpuVm& vm = *vmp;
  const u64 addr = Read64(io, IO_ARG + 0);
  const u64 range = Read64(io, IO_ARG + 2);
  if (!valid(vm, addr, range)) return -kEINVAL;
  if (ListBusy(vm)) return -kEBUSY;
  genOps_.Clear();
  if (!(this->*gen)(vm, addr, range, genOps_)) return -kENOMEM;
  const i32 n = ListPublish(vm, 0);
  if (n > 0 && req != 0) ListRequest(vm.list, req, addr, range, 0, 0);
  return n;
}

i32 Engine::SmUnmapOps(u32 vmh) {
  return RangeListOps(vmh, &RangeValid, &Engine::SmUnmapGenerate, LIST_REQ_UNMAP);
}
i32 Engine::PrefetchOps(u32 vmh) { return RangeListOps(vmh, &PrefetchRangeValid, &Engine::PrefetchGenerate, 0); }
i32 Engine::MadviseOps(u32 vmh) { return RangeListOps(vmh, &RangeValid, &Engine::MadviseGenerate, 0); }

i32 Engine::VmBoUnmapOps(u32 vmh, u32 vmbo) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  GpuVm& vm = *vmp;
  if (GetVmBo(vmh, vmbo) == nullptr) return -kEINVAL;
  if (ListBusy(vm)) return -kEBUSY;
  genOps_.Clear();
  if (!VmBoUnmapGenerate(vmbo, genOps_)) return -kENOMEM;
  return ListPublish(vm, 0);
}

i32 Engine::OpsRead(u32 vmh, u32 from) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  const u32 n = static_cast<u32>(vm->list.ops.size());
  if (from >= n) return 0;
  const u32 cnt = n - from < OPS_PER_CHUNK ? n - from : OPS_PER_CHUNK;
  CopyOpsOut(io + IO_DATA, vm->list.ops.data() + from, cnt);
  return static_cast<i32>(cnt);
}

i32 Engine::OpsApply(u32 vmh, u32 from, u32 to) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  const i32 r = ApplyListRange(vmh, *vmp, from, to);
  FinishApply(vmh, *vmp, r);
  return r;
}

i32 Engine::ApplyListRange(u32 vmh, GpuVm& vm, u32 from, u32 to) {
  const u32 n = static_cast<u32>(vm.list.ops.size());
  if (!ListPending(vm) || from < vm.list.next || to < from || to > n) return -kEINVAL;
  u32 created[4] = {0, 0, 0, 0};
  // Applied in order from where it stands, a checked list cannot fail.
  const bool checked = vm.list.checked && from == vm.list.next;
  if (!(checked && from == 0 && to == n && vm.list.req != 0 && ApplyListAsStep(vmh, vm, created))) {
    if (!checked) {
      const i32 err = ValidateOps(vmh, vm, from, to);
      if (err != 0) return err;
      vm.list.checked = 0;  // ops skipped, or the VM changed: check again next time
    }
    for (u32 k = from; k < to; ++k) {
      created[0] = created[1] = created[2] = created[3] = 0;
      ApplyOp(vmh, vm, vm.list.ops[k], nullptr, created);
    }
  }
  io[IO_OUT_CREATED + 0] = created[0];
  io[IO_OUT_CREATED + 1] = created[1];
  io[IO_OUT_CREATED + 2] = created[2];
  io[IO_OUT_CREATED + 3] = created[3];
  vm.list.next = to;
  if (to == n) ListRelease(vm);
  return 0;
}

i32 Engine::OpsDrop(u32 vmh) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  ListReset(*vm);
  WriteZombies(*vm);
  return 0;
}

// ---------------------------------------------------------------------------
// Fused calls: generate into the VM's list storage and apply at once; the
// result equals smMapOps/smUnmapOps + opsApply of the whole list.

i32 Engine::BindStep(u32 vmh, GpuVm& vm, const MapRequest& m) {
  const i32 err = CheckMapRequest(vmh, vm, m);
  if (err != 0) return err;
  return FusedStep(vmh, vm, m.addr, m.range, true, m.bo, m.offset, m.vmbo);
}

i32 Engine::UnbindStep(u32 vmh, GpuVm& vm, u64 addr, u64 range) {
  if (!RangeValid(vm, addr, range)) return -kEINVAL;
  if (ListBusy(vm)) return -kEBUSY;
  return FusedStep(vmh, vm, addr, range, false, 0, 0, 0);
}

i32 Engine::Bind(u32 vmh) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  const i32 n = BindMaking(vmh, *vm, ReadMapArgs());
  FinishApply(vmh, *vm, n);
  return n;
}

i32 Engine::Unbind(u32 vmh) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  const i32 n = UnbindStep(vmh, *vm, Read64(io, IO_ARG + 0), Read64(io, IO_ARG + 2));
  FinishApply(vmh, *vm, n);
  return n;
}

i32 Engine::SmMapApply(u32 vmh) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  const MapRequest m = ReadMapArgs();
  i32 r = CheckMapRequest(vmh, *vm, m);
  if (r == 0) r = ListStep(vmh, *vm, m.addr, m.range, true, m.bo, m.offset, m.vmbo);
  FinishApply(vmh, *vm, r);
  return r;
}

i32 Engine::SmUnmapApply(u32 vmh) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  const u64 addr = Read64(io, IO_ARG + 0);
  const u64 range = Read64(io, IO_ARG + 2);
  i32 r = -kEINVAL;
  if (RangeValid(*vm, addr, range)) r = ListBusy(*vm) ? -kEBUSY : ListStep(vmh, *vm, addr, range, false, 0, 0, 0);
  FinishApply(vmh, *vm, r);
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

i32 Engine::SubmitBind(u32 vmh, GpuVm& vm, u32* q, u32 at, bool* stop) {
  const u32 w0 = q[0];
  if ((w0 & SUBMIT_MAKE) != 0) {
    if ((w0 & ~(0xffu | SUBMIT_MAKE)) != 0) return -kEINVAL;
    MapRequest m;
    m.vmbo = VMBO_MAKE;
    m.bo = q[1];
    m.addr = Read64(q, 2);
    m.range = Read64(q, 4);
    m.offset = Read64(q, 6);
    const i32 r = BindMaking(vmh, vm, m);
    q[1] = io[IO_OUT_MADE_VMBO];
    return r;
  }
  MapRequest m;
  m.vmbo = q[1];
  if ((w0 & SUBMIT_SAME) != 0) {
    // an earlier record of this chunk: its word 1 holds the VmBo (a
    // SUBMIT_MAKE record leaves the one it made there)
    if (m.vmbo >= at) return -kEINVAL;
    m.vmbo = io[IO_DATA + m.vmbo * SUBMIT_WORDS + 1];
    if (m.vmbo == 0) {
      *stop = true;
      return 0;
    }
  }
  GpuVmBo* b = GetVmBo(vmh, m.vmbo);
  if (m.vmbo != 0 && (b == nullptr || b->state != VMBO_LIVE)) {
    *stop = true;
    return 0;
  }
  if ((w0 & ~(0xffu | SUBMIT_SAME)) != 0) return -kEINVAL;
  m.bo = b != nullptr ? b->bo : 0;
  m.addr = Read64(q, 2);
  m.range = Read64(q, 4);
  m.offset = Read64(q, 6);
  return BindStep(vmh, vm, m);
}

i32 Engine::Submit(u32 vmh, u32 n) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr || n > SUBMIT_PER_CHUNK) return -kEINVAL;
  GpuVm& vm = *vmp;
  u32* q = io + IO_DATA;
  u32 done = 0;
  for (; done < n; ++done, q += SUBMIT_WORDS) {
    i32 r;
    if ((q[0] & 0xff) == SUBMIT_BIND) {
      bool stop = false;
      r = SubmitBind(vmh, vm, q, done, &stop);
      if (stop) break;
    } else if (q[0] == SUBMIT_UNBIND) {
      r = UnbindStep(vmh, vm, Read64(q, 2), Read64(q, 4));
    } else {
      r = -kEINVAL;
    }
    q[0] = static_cast<u32>(r);
    if (r == -kENOMEM) {
      ++done;
      break;
    }
  }
  WriteZombies(vm);
  return static_cast<i32>(done);
}

// ---------------------------------------------------------------------------
// Transactions (bindArray)

i32 Engine::TxStage(u32 vmh, u32 n) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr || n > TX_PER_CHUNK) return -kEINVAL;
  const u32* d = io + IO_DATA;
  for (u32 i = 0; i < n; ++i) {
    const u32 w0 = d[i * TX_WORDS];
    const u32 kind = w0 & 0xff;
    if (kind < TX_MAP || kind > TX_UNMAP_ALL || (w0 & ~(0xffu | TX_INJECT_ERROR)) != 0) {
      return -kEINVAL;
    }
  }
  if (!vm->txStaged.Append(budget_, d, n * TX_WORDS)) return -kENOMEM;
  return static_cast<i32>(vm->txStaged.size() / TX_WORDS);
}

i32 Engine::TxClear(u32 vmh) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  vm->txStaged.Clear();
  return 0;
}

// Runs the staged entries in order through the same generate + apply code,
// logging every change; on failure the log is replayed backwards, the serial
// counter and the zombie list are restored, so handles, serials, VmBo link
// order and refcounts are exactly as before. Staging is cleared either way.
i32 Engine::TxRun(u32 vmh) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  GpuVm& vm = *vmp;
  if (ListBusy(vm)) {
    vm.txStaged.Clear();
    return -kEBUSY;
  }
  txOps_.Clear();
  txLog_.Clear();
  const u32 serialStart = serial_;
  const u32 zombiesStart = vm.zombies.size();
  const u32 entries = static_cast<u32>(vm.txStaged.size() / TX_WORDS);
  i32 err = 0;
  u32 failAt = 0;
  // Every VmBo a MAP entry links to is referenced for the whole run, so an
  // earlier entry that unmaps its last mapping cannot destroy it first.
  txHeld_.Clear();
  if (!txHeld_.Reserve(budget_, entries)) {
    vm.txStaged.Clear();
    io[IO_OUT_FAIL_INDEX] = 0;
    return -kENOMEM;
  }
  for (u32 i = 0; i < entries; ++i) {
    const u32* e = vm.txStaged.data() + static_cast<size_t>(i) * TX_WORDS;
    if ((e[0] & 0xff) == TX_MAP && e[2] != 0 && MapVmBoValid(vmh, e[1], e[2])) {
      ++vmbos_[e[2]].refs;
      txHeld_.PushReserved(e[2]);
    }
  }
  for (u32 i = 0; i < entries; ++i) {
    const u32* e = vm.txStaged.data() + static_cast<size_t>(i) * TX_WORDS;
    const u32 kind = e[0] & 0xff;
    const u64 addr = Read64(e, 4);
    const u64 range = Read64(e, 6);
    const u64 offset = Read64(e, 8);
    const u32 first = txOps_.size();
    if (e[0] & TX_INJECT_ERROR) {
      err = -kENOMEM;
    } else if (kind == TX_MAP) {
      const u32 bo = e[1];
      const u32 vmbo = e[2];
      if (!RangeValid(vm, addr, range) || !MapVmBoValid(vmh, bo, vmbo)) {
        err = -kEINVAL;
      } else {
        if (!SmMapGenerate(vm, addr, range, bo, offset, vmbo, txOps_) ||
            !EnsureApply(vm, txOps_.size() - first)) {
          err = -kENOMEM;
        } else {
          if (vmbo != 0) ++vmbos_[vmbo].refs;
          for (u32 k = first; k < txOps_.size(); ++k) ApplyOp(vmh, vm, txOps_[k], &txLog_, nullptr);
          if (vmbo != 0) GpuVmBoPutInternal(vmbo);
        }
      }
    } else if (kind == TX_UNMAP) {
      if (!RangeValid(vm, addr, range)) {
        err = -kEINVAL;
      } else {
        if (!SmUnmapGenerate(vm, addr, range, txOps_) || !EnsureApply(vm, txOps_.size() - first)) {
          err = -kENOMEM;
        } else {
          for (u32 k = first; k < txOps_.size(); ++k) ApplyOp(vmh, vm, txOps_[k], &txLog_, nullptr);
        }
      }
    } else if (kind == TX_PREFETCH) {
      if (!PrefetchRangeValid(vm, addr, range)) {
        err = -kEINVAL;
      } else if (!PrefetchGenerate(vm, addr, range, txOps_)) {
        err = -kENOMEM;
      }
    } else {  // TX_UNMAP_ALL
      const u32 vmbo = e[2];
      if (vmbo == 0) {
        // The BO has no VmBo in this VM: nothing is mapped, nothing to do.
      } else if (GetVmBo(vmh, vmbo) == nullptr) {
        err = -kEINVAL;
      } else {
        if (!VmBoUnmapGenerate(vmbo, txOps_) || !EnsureApply(vm, txOps_.size() - first)) {
          err = -kENOMEM;
        } else {
          for (u32 k = first; k < txOps_.size(); ++k) ApplyOp(vmh, vm, txOps_[k], &txLog_, nullptr);
        }
      }
    }
    if (err != 0) {
      failAt = i;
      break;
    }
  }
  vm.txStaged.Clear();
  // Committing drops the held references and the replaced list's VmBo: room
  // for the zombies that may make, or the whole run is undone.
  if (err == 0 && !vm.zombies.Reserve(budget_, static_cast<u64>(vm.zombies.size()) + txHeld_.size() + 1 +
                                                  vm.list.zombieSlack)) {
    err = -kENOMEM;
    failAt = entries == 0 ? 0 : entries - 1;
  }

  if (err != 0) {
    TxUndoAll(vm, txLog_);
    serial_ = serialStart;
    // VmBos that turned zombie during the run have their references back.
    for (u32 i = zombiesStart; i < vm.zombies.size(); ++i) {
      GpuVmBo& b = vmbos_[vm.zombies[i]];
      if (b.state == VMBO_ZOMBIE && b.refs > 0) {
        b.state = VMBO_LIVE;
        --vm.zombieCount;
      }
    }
    vm.zombies.Truncate(zombiesStart);
    for (u32 vb : txHeld_) GpuVmBoPutInternal(vb);
    txHeld_.Clear();
    txOps_.Clear();
    txLog_.Clear();
    io[IO_OUT_FAIL_INDEX] = failAt;
    WriteZombies(vm);
    return err;
  }

  // Success: release the kept mappings in the order they were removed, and
  // leave the ops as an applied list.
  for (const TxUndo& u : txLog_) {
    if (u.kind == TX_UNDO_REMOVED) {
      vas_[u.va].state &= ~VA_KEPT;
      GpuVaRelease(vm, u.va);
    }
  }
  txLog_.Clear();
  for (u32 vb : txHeld_) GpuVmBoPutInternal(vb);
  txHeld_.Clear();
  ListReset(vm);
  vm.list.ops.Swap(txOps_);
  vm.list.next = vm.list.ops.size();
  txOps_.Clear();
  WriteZombies(vm);
  return static_cast<i32>(vm.list.ops.size());
}

// ---------------------------------------------------------------------------
// The storage budget

i32 Engine::MemSetLimit() {
  budget_.limit = Read64(io, IO_ARG + 0);
  return 0;
}

i32 Engine::MemStats() {
  Write64(io, IO_OUT_INFO + 0, budget_.used);
  Write64(io, IO_OUT_INFO + 2, budget_.limit);
  return 0;
}

// ---------------------------------------------------------------------------
// VmBos

i32 Engine::VmBoCreate(u32 vmh, u32 bo) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr || bo == 0) return -kEINVAL;
  if (!vmbos_.Ensure(1)) return -kENOMEM;
  const u32 h = vmbos_.Alloc();
  GpuVm& vm = vms_[vmh];
  GpuVmBo& b = vmbos_[h];
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
    vmbos_[vm.vmboTail].vmNext = h;
  } else {
    vm.vmboHead = h;
  }
  vm.vmboTail = h;
  ++vm.vmboCount;
  return static_cast<i32>(h);
}

i32 Engine::VmBoGet(u32 vmh, u32 vmbo) {
  if (GetVm(vmh) == nullptr) return -kEINVAL;
  GpuVmBo* b = GetVmBo(vmh, vmbo);
  if (b == nullptr || b->state != VMBO_LIVE) return -kEINVAL;
  return static_cast<i32>(++b->refs);
}

i32 Engine::VmBoPut(u32 vmh, u32 vmbo) {
  GpuVm* vm = GetVm(vmh);
  if (vm == nullptr) return -kEINVAL;
  GpuVmBo* b = GetVmBo(vmh, vmbo);
  if (b == nullptr || b->state != VMBO_LIVE) return -kEINVAL;
  // The caller may drop only references it holds: each linked mapping holds
  // one, and so does a pending list that maps to this VmBo.
  if (b->refs <= b->count + (vm->list.vmbo == vmbo ? 1u : 0u)) return -kEINVAL;
  const u32 refs = --b->refs;
  if (refs == 0) GpuVmBoRelease(*vm, vmbo);  // no mappings: each would hold a ref
  WriteZombies(*vm);
  return static_cast<i32>(refs);
}

i32 Engine::VmBoInfo(u32 vmh, u32 vmbo) {
  if (GetVm(vmh) == nullptr) return -kEINVAL;
  GpuVmBo* b = GetVmBo(vmh, vmbo);
  if (b == nullptr) return -kEINVAL;
  io[IO_OUT_INFO + 0] = b->refs;
  io[IO_OUT_INFO + 1] = b->count;
  io[IO_OUT_INFO + 2] = b->bo;
  return static_cast<i32>(b->refs);
}

i32 Engine::VmBoMappings(u32 vmh, u32 vmbo, u32 after, u32 max) {
  if (GetVm(vmh) == nullptr) return -kEINVAL;
  GpuVmBo* b = GetVmBo(vmh, vmbo);
  if (b == nullptr) return -kEINVAL;
  u32 h = b->head;
  if (after != 0) {
    if (after >= vas_.Limit() || !(vas_[after].state & VA_LIVE) || VaVmBo(vas_[after]) != vmbo) {
      return -kEINVAL;
    }
    h = vas_[after].vbNext;
  }
  if (max > VAS_PER_CHUNK) max = VAS_PER_CHUNK;
  u32 n = 0;
  for (; h != 0 && n < max; h = vas_[h].vbNext) {
    WriteVaRecord(io + IO_DATA + n * VA_WORDS, h);
    ++n;
  }
  return static_cast<i32>(n);
}

// Releases zombies oldest first; an entry whose VmBo is no longer a zombie is
// skipped.
u32 Engine::ReleaseZombies(u32 vmh, GpuVm& vm, u32 at, u32 max) {
  u32 n = 0;
  u32 i = 0;
  for (; i < vm.zombies.size() && n < max; ++i) {
    const u32 h = vm.zombies[i];
    GpuVmBo& b = vmbos_[h];
    if (b.state != VMBO_ZOMBIE || b.vm != vmh) continue;
    GpuVmBoRelease(vm, h);
    --vm.zombieCount;
    io[at + n] = h;
    ++n;
  }
  vm.zombies.EraseFront(i);
  return n;
}

i32 Engine::VmBoReap(u32 vmh) {
  GpuVm* vmp = GetVm(vmh);
  if (vmp == nullptr) return -kEINVAL;
  GpuVm& vm = *vmp;
  const u32 n = ReleaseZombies(vmh, vm, IO_DATA, IO_DATA_WORDS);
  WriteZombies(vm);
  return static_cast<i32>(n);
}

void Engine::FinishApply(u32 vmh, GpuVm& vm, i32 result) {
  io[IO_OUT_REAPED] = result >= 0 && vm.zombieCount != 0 ? ReleaseZombies(vmh, vm, IO_OUT_REAPED + 1, IO_OUT_REAP_MAX) : 0;
  WriteZombies(vm);
}

}  // namespace gpuvm
