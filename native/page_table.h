// xe-style multi-level GPU page tables and their walker, built the way the xe
// driver builds them. Twin: assembly/page_table.ts, same
// function names, same algorithms, bit-identical results.
//
// Model
// - A page table (handle `pt`) has a geometry: level shifts bottom-up s[0..top],
//   the highest level that may hold a leaf, and optionally compact 64 KiB
//   level-0 tables. A table at level L < top has 2^(s[L+1]-s[L]) entries, the
//   root as many as the level below it.
// - Tables live in a pool of the Space (handle 0 = none). Their entries live
//   in two arrays of the Space (value u64, meta u8), allocated in blocks of
//   2^k entries with one free list per k. An entry is empty, a leaf (value =
//   physical address of its first byte), a null leaf (sparse), or a directory
//   entry (value = child table). Any non-empty entry may be zapped: it then
//   translates to nothing but still counts as live, and a zapped directory
//   keeps its (hidden) child until a bind or unbind clears the entry.
// - Every mutating record (bind, unbind, zap) is one "call" for cost
//   accounting: writes into tables that existed before the call are logged and
//   counted as distinct entries and contiguous runs ("records"); tables created
//   by the call count their non-empty entries at the end ("new").
// - The generic walker (walkRange) visits the entries of [addr, last] in a
//   table with a pre-descent and a post-descent visitor; in shared mode it
//   visits only the partially covered edge entries (xe_pt_walk_shared). Bind is
//   a full walk, unbind and zap are shared walks whose post visitor handles the
//   fully covered run of the child table, as in xe. Bind fills the level-0
//   entries under a level-1 entry in one loop (fillLeaves), which is exactly
//   what visiting them one by one would do.
// - Ranges are inclusive [addr, last] inside the engine so that a span of
//   2^64 needs no 65-bit arithmetic.
#pragma once
#include <cstddef>
#include <cstdint>

#include "budget.h"

namespace gpuvm {
namespace pt {

// io layout, word indices (must match src/backend/engine.ts IO)
constexpr uint32_t kIoArg = 0;
constexpr uint32_t kIoOut = 32;
constexpr uint32_t kIoData = 64;
constexpr uint32_t kIoDataWords = 16 * 4096;

constexpr int32_t kEinval = 22;
constexpr int32_t kEnomem = 12;

constexpr uint32_t kMaxShifts = 64;
constexpr uint32_t kShift64K = 16;

// entry meta byte
constexpr uint8_t kEmpty = 0;
constexpr uint8_t kLeaf = 1;
constexpr uint8_t kNull = 2;
constexpr uint8_t kDir = 3;
constexpr uint8_t kKindMask = 3;
constexpr uint8_t kZapped = 4;
constexpr uint8_t kCompactChild = 8;

// create flags
constexpr uint32_t kCreateCompact = 1;

// apply records: header words kind, nseg, va lo, va hi, size lo, size hi,
// then nseg segments of (pa lo, pa hi, len lo, len hi)
constexpr uint32_t kRecBind = 1;
constexpr uint32_t kRecBindNull = 2;
constexpr uint32_t kRecUnbind = 3;
constexpr uint32_t kRecZap = 4;
constexpr uint32_t kRecHeader = 6;
constexpr uint32_t kSegWords = 4;
// apply flags
constexpr uint32_t kApplyBegin = 1;
constexpr uint32_t kApplyEnd = 2;

// cost words at OUT
constexpr uint32_t kOutLive = 0;
constexpr uint32_t kOutNew = 1;
constexpr uint32_t kOutAlloc = 2;
constexpr uint32_t kOutFree = 3;
constexpr uint32_t kOutRecords = 4;
constexpr uint32_t kOutFailIndex = 5;
constexpr uint32_t kOutNeed = 6;  // 2 words: leaves the binds needed, on -ENOMEM

// walk flags
constexpr uint32_t kWalkDirs = 1;
constexpr uint32_t kWalkPost = 2;
constexpr uint32_t kWalkShared = 4;
constexpr uint32_t kWalkEmpty = 8;
constexpr uint32_t kWalkZapped = 16;
constexpr uint32_t kWalkWords = 8;

// info word (translate, walk records)
constexpr uint32_t kInfoMapped = 1;    // a leaf (maybe null)
constexpr uint32_t kInfoNull = 2;      // null leaf
constexpr uint32_t kInfoHint64K = 4;   // level-0 leaf whose 64 KiB block is uniform (PS64)
constexpr uint32_t kInfoZapped = 8;
constexpr uint32_t kInfoDir = 16;
constexpr uint32_t kInfoPost = 32;     // post-descent event of a walk
constexpr uint32_t kInfoCompact = 64;  // directory entry with a compact child / entry of a compact table
constexpr uint32_t kInfoLevelShift = 8;
constexpr uint32_t kInfoSizeShift = 16;

// walker actions
constexpr int kSubtree = 0;
constexpr int kContinue = 1;

struct PtRec {
  uint32_t alive;
  uint32_t top;
  uint32_t leaf;
  uint32_t flags;
  uint32_t root;
  uint32_t tables;
  uint32_t entries;
  uint32_t spanBits;
  uint64_t spanLast;
  uint8_t shift[kMaxShifts];
};

// All page-table state of one engine instance. The addon makes one per
// environment (main thread, each worker, each package copy loading the
// addon), so page tables never share storage, handles or cost accounting
// across environments. The WASM twin needs none: one module instance is one
// environment, its globals are its Space.
struct Space {
  static constexpr uint32_t kSizeClasses = 17;  // blocks of 2^0 .. 2^16 entries
  static constexpr uint32_t kCompactMin = 1u << 20;  // entry slots below which storage is never compacted
  static constexpr size_t kLogKeep = 1u << 16;       // log capacity kept between calls

  // Storage growth is charged to `budget` and checked before a call changes
  // anything (reserveFor): a call that would not fit is -ENOMEM, unchanged.
  Budget own;              // used until useBudget() names the instance's budget
  Budget* budget = &own;

  // entry storage: blocks of 2^k entries, one LIFO free list per k
  Array<uint64_t> eVal;
  Array<uint8_t> eMeta;
  uint32_t eTop = 0;
  uint32_t eUsed = 0;  // slots in blocks that are in use
  uint32_t eFree[kSizeClasses];

  // table pool (handle 0 unused)
  Array<uint8_t> tLevel;
  Array<uint8_t> tShift;  // entry shift (16 for compact level-0 tables)
  Array<uint8_t> tLog2;   // log2 of the entry count
  Array<uint8_t> tFlags;  // bit 0 alive, bit 1 compact
  Array<uint32_t> tLive;  // non-empty entries (zapped ones included)
  Array<uint32_t> tBase;  // first entry in eVal / eMeta
  Array<uint32_t> tBorn;  // serial of the call that created it (0 outside calls)
  Array<uint32_t> tFree;  // room for every table slot, so releasing never grows it

  // page-table records (handle 0 unused)
  Array<PtRec> pts;
  Array<uint32_t> ptFree;  // room for every record

  // the current call's cost accounting
  uint32_t serial = 0;
  Array<uint64_t> liveLog;  // (table << 32) | index of writes into pre-existing tables
  Array<uint32_t> created;  // tables created by the call
  uint32_t cAlloc = 0;
  uint32_t cFree = 0;
  uint32_t cost[5] = {0, 0, 0, 0, 0};

  // staged apply records
  Array<uint32_t> staging;

  Space();
  ~Space();
  Space(const Space&) = delete;
  Space& operator=(const Space&) = delete;
  // Charges this space's storage to `b` from now on (the addon instance's
  // engine budget, shared with the GpuVm half), with what it holds already.
  void useBudget(Budget* b);

  // ---- public operations (marshalled by page_table_addon.cc) ----
  int32_t ptCreate(const uint32_t* shifts, uint32_t n, uint32_t leaf, uint32_t flags);
  int32_t ptDestroy(uint32_t pt);
  // `budget`: the most leaves the binds of the applied records may write in total
  int32_t ptApply(uint32_t pt, const uint32_t* words, uint32_t n, uint32_t flags, uint32_t budget, uint32_t* out);
  int32_t ptTranslate(uint32_t pt, uint64_t va, uint32_t* out);
  int32_t ptTranslateBatch(uint32_t pt, uint32_t* data, uint32_t n);
  int32_t ptWalk(uint32_t pt, uint64_t first, uint64_t last, uint64_t cpos, uint32_t crank, uint32_t hasCursor,
                 uint32_t flags, uint32_t max, uint32_t* data, uint32_t* out);
  int32_t ptStats(uint32_t pt, uint32_t* out);

  // ---- storage and algorithms (page_table.cc) ----
  void newTableSlot();
  bool reserveTables(uint64_t extra);
  bool reserveEntries(uint64_t slots);
  bool reserveFor(const PtRec& p, const uint32_t* w, uint32_t count, const uint64_t* byLevel);
  uint64_t leavesByLevel[kMaxShifts];  // of the call being validated
  bool ptValid(uint32_t pt) const;
  uint32_t blockAlloc(uint32_t log2);
  void blockFree(uint32_t b, uint32_t log2);
  void compactEntries();
  uint32_t tableAlloc(uint32_t pt, uint32_t level, bool compact);
  void releaseTable(uint32_t pt, uint32_t t);
  void writeEntry(uint32_t pt, uint32_t t, uint32_t idx, uint8_t meta, uint64_t val);
  void beginCall();
  void endCall();
  template <class V>
  bool walkRange(V& v, uint32_t t, uint32_t L, uint64_t addr, uint64_t last, bool shared);
  uint32_t splitLeaf(uint32_t pt, uint32_t t, uint32_t idx, uint32_t L);
  uint32_t decompact(uint32_t pt, uint32_t t, uint32_t idx);
  bool fullRun(uint32_t t, uint64_t addr, uint64_t last, uint32_t* i0, uint32_t* i1);
  bool killable(uint32_t t, uint64_t addr, uint64_t last);
  void clearRun(uint32_t pt, uint32_t t, uint64_t addr, uint64_t last);
  void zapRun(uint32_t pt, uint32_t t, uint64_t addr, uint64_t last);
  void runBind(uint32_t pt, uint64_t va, uint64_t last, const uint32_t* segs, bool isNull);
  void runUnbind(uint32_t pt, uint64_t va, uint64_t last);
  void runZap(uint32_t pt, uint64_t va, uint64_t last);
  bool hint64K(uint32_t pt, uint32_t t, uint32_t idx);
  uint32_t entryInfo(uint32_t pt, uint32_t t, uint32_t idx, uint32_t L);
  int32_t runRecords(uint32_t pt, const uint32_t* w, uint32_t n, uint32_t budget, uint32_t* out);
};

int32_t geomValid(const uint32_t* shifts, uint32_t n, uint32_t leaf, uint32_t flags);

}  // namespace pt
}  // namespace gpuvm
