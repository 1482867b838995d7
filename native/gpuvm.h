// GPU VA manager (drm_gpuvm): VMs, mappings (drm_gpuva), VmBos
// (drm_gpuvm_bo), split/merge op generation, op application, fused
// bind/unbind and atomic transactions. One Engine per JS environment; its
// public methods are the GpuVmEngine contract of src/backend/engine.ts, read
// their arguments from io and write their results to io.
#pragma once

#include "budget.h"
#include "io.h"
#include "pool.h"
#include "range_tree.h"

namespace gpuvm {

// Batched submission (src/backend/engine.ts SUBMIT_*): 8-word request
// records at DATA; word 0 (kind) is overwritten with the request's result.
constexpr u32 SUBMIT_WORDS = 8;
constexpr u32 SUBMIT_PER_CHUNK = IO_DATA_WORDS / SUBMIT_WORDS;
constexpr u32 SUBMIT_BIND = 1;
constexpr u32 SUBMIT_UNBIND = 2;
constexpr u32 SUBMIT_MAKE = 1u << 9;  // bind: word 1 is a BO id; make its VmBo (see Submit)
constexpr u32 SUBMIT_SAME = 1u << 10;  // bind: word 1 is the index of the SUBMIT_MAKE record whose VmBo to use

// Mapping state bits.
constexpr u32 VA_KERNEL = 1;    // the kernel-reserved node
constexpr u32 VA_INSERTED = 2;  // in the VM's range tree
constexpr u32 VA_LIVE = 4;      // slot in use
constexpr u32 VA_DOOMED = 8;    // scratch mark while opsApply validates
constexpr u32 VA_KEPT = 16;     // removed by a running transaction, kept for undo
constexpr u32 VA_LINKED = 32;   // owner is the VmBo (else the BO id)

// VM handles fit 24 bits: a mapping keeps its VM and state bits in one word.
constexpr u32 VM_HANDLE_LIMIT = 1u << 24;

// 48 bytes per mapping, unpadded: with millions of them, bytes are what the
// caches and the TLB run out of. The range tree reads `end` from here.
// Records are not line aligned: the list links come first, so unlinking a
// neighbour touches (and a prefetch of the record's address loads) one line.
struct GpuVa {
  u32 vbPrev;  // the VmBo's mapping list, link order
  u32 vbNext;
  u64 addr;
  u64 end;  // exclusive
  u64 offset;
  u32 flags;  // user-visible GpuVa flags
  u32 serial;
  u32 owner;  // VA_LINKED: the VmBo it is linked to; else its BO (0 none)
  u32 vm : 24;
  u32 state : 8;
};
static_assert(sizeof(GpuVa) == 48, "mapping record size is part of vmStats");

// VmBo states.
constexpr u32 VMBO_FREE = 0;
constexpr u32 VMBO_LIVE = 1;
constexpr u32 VMBO_ZOMBIE = 2;  // refcount reached 0 inside the engine; awaits vmboReap

struct GpuVmBo {
  u32 bo;
  u32 vm;
  u32 refs;
  u32 head;  // first linked mapping
  u32 tail;
  u32 count;
  u32 state;
  u32 vmPrev;  // the VM's VmBo list, creation order
  u32 vmNext;
};

// One op record, laid out as the 16-word io record (on a little-endian host).
struct GpuVaOp {
  u32 kind;  // OP_* | OP_KEEP | OP_HAS_PREV | OP_HAS_NEXT
  u32 handle;  // MAP: VmBo to link (0 none); others: the existing mapping
  u32 serial;  // MAP: 0; others: the mapping's serial
  u32 bo;
  u64 addr;
  u64 range;
  u64 offset;
  u64 prevRange;
  u64 nextAddr;
  u64 nextOffset;
};
static_assert(sizeof(GpuVaOp) == OP_WORDS * 4, "op record must be 16 words");

// The VM's op list: at most one is pending. `next` is the first unapplied
// op; a list is pending while next < ops.size(); it is "touched" once next > 0.
// A fully applied list stays readable (opsRead) until the next list, a drop
// or a fused call; bind/unbind leave no list.
struct GpuVaOps {
  Array<GpuVaOp> ops;
  u32 next = 0;
  u32 vmbo = 0;       // VmBo a MAP of the list links to; holds a reference
  u32 resVas = 0;     // reservations held in the mapping pool
  u32 resNodes = 0;   // and in the node pool
  u32 zombieSlack = 0;  // zombie-list room promised to the list
  // The ops still hold for the VM as it is: set when the list is made, cleared
  // by anything that changes the VM's mappings other than applying this list
  // in order; opsApply then skips its validation.
  u32 checked = 0;
  // A split/merge list (LIST_REQ_*) remembers its request: applied whole and
  // checked, it is the fused step of that request.
  u32 req = 0;
  u32 reqBo = 0;
  // Where the generation found the request's first mapping, and whether the
  // mappings it met share one leaf: while the tree has not been edited since
  // (treeEdits), applying the list as a step needs no second walk.
  RangeCursor first = {0, 0};
  u32 oneLeaf = 0;
  u32 treeEdits = 0;
  u64 reqAddr = 0;
  u64 reqRange = 0;
  u64 reqOffset = 0;
};
constexpr u32 LIST_REQ_MAP = 1;
constexpr u32 LIST_REQ_UNMAP = 2;

struct GpuVm {
  u64 start = 0;
  u64 end = 0;  // exclusive
  u64 kstart = 0;  // kernel node [kstart, kend), empty if kend == kstart
  u64 kend = 0;
  u32 kernel = 0;  // kernel node mapping handle, 0 if none
  u32 live = 0;
  u32 mappings = 0;  // inserted mappings, kernel node excluded
  u32 vaCount = 0;   // live mapping records of this VM (inserted or not)
  u32 vmboCount = 0;
  u32 vmboHead = 0;  // VmBos of this VM, creation order
  u32 vmboTail = 0;
  RangeTree tree;
  GpuVaOps list;
  Array<u32> txStaged;   // staged transaction entries, TX_WORDS each
  Array<u32> zombies;    // VmBos that became zombies, oldest first
  u32 zombieCount = 0;
};

// Undo log of a running transaction.
struct TxUndo {
  u32 kind;  // TX_UNDO_*
  u32 va;
  u32 vmbo;  // UNLINKED: the VmBo, and the mapping's neighbours in it
  u32 vbPrev;
  u32 vbNext;
};
constexpr u32 TX_UNDO_CREATED = 1;   // mapping created, inserted (and linked)
constexpr u32 TX_UNDO_REMOVED = 2;   // mapping removed from the tree, kept
constexpr u32 TX_UNDO_UNLINKED = 3;  // mapping unlinked from vmbo between vbPrev/vbNext

class Engine {
 public:
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  u32* io = nullptr;  // the transfer area (set up once by addon.cc)

  // ---- the GpuVmEngine contract (src/backend/engine.ts) ----
  i32 VmCreate();
  i32 VmDestroy(u32 vm);
  i32 VmStats(u32 vm);

  i32 VaInsert(u32 vm);
  i32 VaRemove(u32 vm, u32 va, u32 serial);
  i32 VaLink(u32 vm, u32 va, u32 serial, u32 vmbo);
  i32 VaUnlink(u32 vm, u32 va, u32 serial);
  i32 VaGet(u32 vm, u32 va, u32 serial);
  i32 VaSetFlags(u32 vm, u32 va, u32 serial, u32 flags);

  i32 FindFirst(u32 vm);
  i32 FindFirstBatch(u32 vm, u32 n);
  i32 Iterate(u32 vm, u32 max);

  i32 SmMapOps(u32 vm);
  i32 SmUnmapOps(u32 vm);
  i32 PrefetchOps(u32 vm);
  i32 MadviseOps(u32 vm);
  i32 VmBoUnmapOps(u32 vm, u32 vmbo);
  i32 OpsRead(u32 vm, u32 from);
  i32 OpsApply(u32 vm, u32 from, u32 to);
  i32 OpsDrop(u32 vm);

  i32 Bind(u32 vm);
  i32 Unbind(u32 vm);
  // SmMapOps / SmUnmapOps and OpsApply of the whole list in one call, the
  // list's records at DATA: the facade's op lists applied unread.
  i32 SmMapApply(u32 vm);
  i32 SmUnmapApply(u32 vm);
  // Where SmMapApply / SmUnmapApply may write records (a buffer the facade
  // owns and keeps alive while it is set; the addon holds a reference).
  void SetRing(u32* words, u32 n) {
    ring_ = words;
    ringWords_ = n;
  }
  // n bind/unbind requests from DATA, each as its fused call; stops before
  // a bind whose VmBo is not live and after the first -ENOMEM.
  // -> requests run, results in place of their kinds
  i32 Submit(u32 vm, u32 n);

  i32 TxStage(u32 vm, u32 n);
  i32 TxClear(u32 vm);
  i32 TxRun(u32 vm);

  i32 VmBoCreate(u32 vm, u32 bo);
  i32 VmBoGet(u32 vm, u32 vmbo);
  i32 VmBoPut(u32 vm, u32 vmbo);
  i32 VmBoInfo(u32 vm, u32 vmbo);
  i32 VmBoMappings(u32 vm, u32 vmbo, u32 after, u32 max);
  i32 VmBoReap(u32 vm);

  // The storage budget: limit(A0) -> 0; stats -> 0, bytes in use at
  // OUT_INFO+0..1, the limit at OUT_INFO+2..3.
  i32 MemSetLimit();
  i32 MemStats();
  Budget& budget() { return budget_; }

 private:
  // ---- lookups and validation ----
  GpuVm* GetVm(u32 vm);
  GpuVa* GetVa(u32 vm, u32 va, u32 serial);
  GpuVmBo* GetVmBo(u32 vm, u32 vmbo);  // live or zombie
  // drm_gpuvm_range_valid: non-empty, no u64 overflow (an end of 2^64
  // counts), inside the VM, clear of the kernel node.
  static bool RangeValid(const GpuVm& vm, u64 addr, u64 range);
  // prefetch: only addr + range must not overflow (a zero range lists nothing).
  static bool PrefetchRangeValid(const GpuVm& vm, u64 addr, u64 range);
  // The VmBo a map request links to: 0, or a live VmBo of this VM for `bo`.
  bool MapVmBoValid(u32 vmh, u32 bo, u32 vmbo);
  struct MapRequest {
    u64 addr, range, offset;
    u32 bo, vmbo;
  };
  MapRequest ReadMapArgs() const;  // from ARG
  // The arguments (EINVAL), then the pending list (EBUSY). -> 0 or the error
  i32 CheckMapRequest(u32 vmh, const GpuVm& vm, const MapRequest& m);
  // One fused call on a live VM, checks included (bind, unbind, submit).
  // -> op count or -errno
  i32 BindStep(u32 vmh, GpuVm& vm, const MapRequest& m);
  i32 UnbindStep(u32 vmh, GpuVm& vm, u64 addr, u64 range);
  // One bind record of submit; sets *stop (and runs nothing) when its VmBo
  // is not live.
  i32 SubmitBind(u32 vmh, GpuVm& vm, u32* q, u32 at, bool* stop);
  i32 MakeRequestVmBo(u32 vmh, MapRequest* m);
  void DropMadeVmBo(GpuVm& vm, u32 vmbo);
  i32 BindMaking(u32 vmh, GpuVm& vm, MapRequest m);

  // ---- mapping records and VmBo lists ----
  GPUVM_INLINE u32 GpuVaCreate(u32 vmh, GpuVm& vm, u64 addr, u64 end, u64 offset, u32 bo, u32 flags);
  GPUVM_INLINE void GpuVaRelease(GpuVm& vm, u32 va);
  GPUVM_INLINE void GpuVaLink(u32 va, u32 vmbo);
  GPUVM_INLINE void VmBoListInsert(u32 va, u32 vmbo, u32 prev, u32 next);
  GPUVM_INLINE u32 VmBoListRemove(u32 va);
  GPUVM_INLINE void GpuVaUnlink(u32 va);  // drops the VmBo reference; may make a zombie
  void GpuVmBoPutInternal(u32 vmbo);  // refs - 1; at 0 the VmBo becomes a zombie
  void GpuVmBoRelease(GpuVm& vm, u32 vmbo);
  bool EnsureZombieRoom(GpuVm& vm, u32 extra);
  // The mapping's BO (a linked mapping's is its VmBo's) and VmBo (0 none).
  GPUVM_INLINE u32 VaBo(const GpuVa& m) const { return (m.state & VA_LINKED) ? vmbos_[m.owner].bo : m.owner; }
  static GPUVM_INLINE u32 VaVmBo(const GpuVa& m) { return (m.state & VA_LINKED) ? m.owner : 0; }
  void WriteVaRecord(u32* dst, u32 va) const;

  // ---- op list generation (split/merge) into `out` ----
  // Generators append to `out` and return false when its growth is refused
  // (the VM is untouched either way; genInserts_/genUnlinks_ describe `out`).
  using OpArray = Array<GpuVaOp>;
  bool SmMapGenerate(GpuVm& vm, u64 addr, u64 range, u32 bo, u64 offset, u32 vmbo, OpArray& out);
  bool SmUnmapGenerate(GpuVm& vm, u64 addr, u64 range, OpArray& out);
  bool SplitWalk(GpuVm& vm, u64 addr, u64 end, u32 bo, u64 offset, OpArray& out);
  // The split walk's record for mapping h = [s, t) (record m) under the
  // request [a, e) with BO bo at offset off. -> pieces it leaves (0 to 2)
  GPUVM_INLINE u32 FillSplitOp(GpuVaOp& op, u32 h, const GpuVa& m, u64 s, u64 t, u64 a, u64 e, u32 bo,
                               u64 off) const;
  static GPUVM_INLINE void FillMapOp(GpuVaOp& op, u32 vmbo, u32 bo, u64 addr, u64 range, u64 offset);
  using RangeGenerator = bool (Engine::*)(GpuVm&, u64, u64, OpArray&);
  using RangeCheck = bool (*)(const GpuVm&, u64, u64);
  // req: LIST_REQ_UNMAP when the list is sm_unmap's (see GpuVaOps::req), else 0.
  i32 RangeListOps(u32 vmh, RangeCheck valid, RangeGenerator gen, u32 req);
  static void ListRequest(GpuVaOps& l, u32 req, u64 addr, u64 range, u32 bo, u64 offset) {
    l.req = req;
    l.reqAddr = addr;
    l.reqRange = range;
    l.reqBo = bo;
    l.reqOffset = offset;
  }
  bool PrefetchGenerate(GpuVm& vm, u64 addr, u64 range, OpArray& out);
  bool MadviseGenerate(GpuVm& vm, u64 addr, u64 range, OpArray& out);
  bool VmBoUnmapGenerate(u32 vmbo, OpArray& out);

  // ---- pending list ----
  static bool ListPending(const GpuVm& vm) { return vm.list.next < vm.list.ops.size(); }
  static bool ListBusy(const GpuVm& vm) { return vm.list.next > 0 && ListPending(vm); }
  // Returns the list's reservations and drops its VmBo reference; the ops
  // stay readable (an applied list).
  void ListRelease(GpuVm& vm);
  // ListRelease, then forget the ops.
  void ListReset(GpuVm& vm);
  // Makes genOps_ (just generated) the VM's pending list in place of the old
  // one: first checks that everything it needs fits (pool reservations,
  // zombie room, opsApply's scratch; -ENOMEM with nothing changed), then takes
  // the VmBo reference `vmbo` for the list, drops the old list and writes
  // the first chunk to io. -> op count
  i32 ListPublish(GpuVm& vm, u32 vmbo);

  // ---- op application ----
  i32 ValidateOps(u32 vmh, GpuVm& vm, u32 from, u32 to);
  void ApplyOp(u32 vmh, GpuVm& vm, const GpuVaOp& op, Array<TxUndo>* log, u32* created);
  // Makes room for applying `ops` freshly generated ops (what genInserts_ /
  // genUnlinks_ describe) with an undo log, right now (transactions).
  bool EnsureApply(GpuVm& vm, u32 ops);
  // bind / unbind: one split/merge step generated and applied at once, with
  // the result of generation + ApplyOp; replaces the VM's untouched list.
  // -> op count, or -ENOMEM with nothing changed
  i32 FusedStep(u32 vmh, GpuVm& vm, u64 addr, u64 range, bool map, u32 bo, u64 offset, u32 vmbo);
  // FusedStep that also writes the records of the list it stands for to
  // DATA (SmMapApply / SmUnmapApply). -> op count or -ENOMEM
  i32 ListStep(u32 vmh, GpuVm& vm, u64 addr, u64 range, bool map, u32 bo, u64 offset, u32 vmbo);
  // FusedStep's halves. StepScan finds the mappings [a, e) meets (into
  // stepStart_/stepVa_) and how the tree edit can go, changing nothing;
  // false when the scratch could not grow. StepApply makes the change
  // (pool room and zombie room must be there) and writes the handle and
  // serial pairs the last op would report to created[0..3].
  struct StepPlan {
    RangeCursor first;
    RangeRun run;
    u64 lastEnd;
    u32 k;  // mappings unmapped or remapped
    bool keepFirst, lastNext, insertNext, whole;
  };
  GPUVM_INLINE bool StepScan(GpuVm& vm, u64 a, u64 e, bool map, StepPlan* p);
  // The rest of a plan once the k mappings are in stepStart_ / stepVa_.
  GPUVM_INLINE void StepPlanFinish(GpuVm& vm, u64 a, u64 e, bool map, RangeCursor first, u32 k, u64 lastEnd,
                                   bool oneLeaf, StepPlan* p);
  GPUVM_INLINE void StepApply(u32 vmh, GpuVm& vm, const StepPlan& p, u64 a, u64 e, bool map, u32 bo, u64 off, u32 vmbo,
                 u32* created);
  // After StepScan: checks room, replaces the VM's list and applies the step.
  GPUVM_INLINE i32 FusedFinish(u32 vmh, GpuVm& vm, const StepPlan& p, u64 a, u64 e, bool map, u32 bo, u64 off,
                               u32 vmbo);
  // Applies the VM's whole checked split/merge list as the fused step of its
  // request. -> false (nothing changed) when the scratch could not grow.
  bool ApplyListAsStep(u32 vmh, GpuVm& vm, u32* created);
  void TxUndoAll(GpuVm& vm, const Array<TxUndo>& log);

  void WriteZombies(const GpuVm& vm) { io[IO_OUT_ZOMBIES] = vm.zombieCount; }
  // Releases up to `max` of the VM's zombies, oldest first, their handles to
  // io[at...]; -> how many.
  u32 ReleaseZombies(u32 vmh, GpuVm& vm, u32 at, u32 max);
  // The end of a call that applies ops (bind, unbind, smMapApply,
  // smUnmapApply, opsApply): on success it releases the zombies itself
  // (IO_OUT_REAPED), which saves the facade a vmboReap crossing.
  void FinishApply(u32 vmh, GpuVm& vm, i32 result);
  // opsApply on a live VM, without FinishApply (ListStep's long lists end
  // with their own call's).
  i32 ApplyListRange(u32 vmh, GpuVm& vm, u32 from, u32 to);

  u32* ring_ = nullptr;
  u32 ringWords_ = 0;
  Budget budget_;  // before the pools: they charge it until they are gone
  Pool<GpuVm> vms_;
  Pool<GpuVa> vas_;
  Pool<GpuVmBo> vmbos_;
  NodePool nodes_;
  u32 serial_ = 0;  // last serial handed out (engine-global)
  // What the last generation call produced: new mappings it inserts and
  // existing mappings it unlinks.
  u32 genInserts_ = 0;
  u32 genUnlinks_ = 0;
  RangeCursor genFirst_ = {0, 0};  // the split walk's first mapping
  bool genOneLeaf_ = false;        // and whether all it met share its leaf

  // Scratch kept between calls so transactions do not reallocate.
  OpArray genOps_;  // a list being generated, swapped into the VM once it fits
  OpArray txOps_;
  Array<TxUndo> txLog_;
  Array<u32> txHeld_;  // VmBos MAP entries link to, referenced for the whole run
  Array<u32> doomed_;
  // FusedStep scratch: starts and handles of the mappings a step touches
  // (sized by doubling, never shrunk).
  Array<u64> stepStart_;
  Array<u32> stepVa_;
};

}  // namespace gpuvm
