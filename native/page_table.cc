// xe-style multi-level GPU page tables and their walker. See page_table.h for
// the model; twin of assembly/page_table.ts (same functions, same order).
#include "page_table.h"

#include <cstdlib>
#include <cstring>

namespace gpuvm {
namespace pt {

namespace {

constexpr uint32_t kNone = 0xffffffffu;

inline uint64_t rd64(const uint32_t* w) { return (uint64_t)w[0] | ((uint64_t)w[1] << 32); }
inline void wr64(uint32_t* w, uint64_t v) {
  w[0] = (uint32_t)v;
  w[1] = (uint32_t)(v >> 32);
}

void siftDown(uint64_t* a, uint32_t root, uint32_t n) {
  for (;;) {
    uint32_t child = 2 * root + 1;
    if (child >= n) return;
    if (child + 1 < n && a[child] < a[child + 1]) child++;
    if (a[root] >= a[child]) return;
    const uint64_t x = a[root];
    a[root] = a[child];
    a[child] = x;
    root = child;
  }
}

void sortU64(uint64_t* a, uint32_t n) {
  if (n < 2) return;
  for (uint32_t s = n / 2; s-- > 0;) siftDown(a, s, n);
  for (uint32_t end = n - 1; end > 0; end--) {
    const uint64_t x = a[0];
    a[0] = a[end];
    a[end] = x;
    siftDown(a, 0, end);
  }
}

}  // namespace

Space::Space() {
  for (uint32_t k = 0; k < kSizeClasses; k++) eFree[k] = kNone;
  // Slot 0 of the table pool and of the records; without them nothing works,
  // and they are a few bytes.
  reserveTables(1);
  newTableSlot();
  pts.Reserve(*budget, 1, true);
  ptFree.Reserve(*budget, 1, true);
  pts.PushReserved(PtRec{});
}

// The storage goes with the environment; the shared budget may already be
// gone then (its engine is torn down separately), so it is not charged.
Space::~Space() {
  Budget gone;
  Array<uint8_t>* b8[] = {&eMeta, &tLevel, &tShift, &tLog2, &tFlags};
  for (Array<uint8_t>* a : b8) a->Release(gone);
  Array<uint32_t>* b32[] = {&tLive, &tBase, &tBorn, &tFree, &ptFree, &created, &staging};
  for (Array<uint32_t>* a : b32) a->Release(gone);
  eVal.Release(gone);
  liveLog.Release(gone);
  pts.Release(gone);
}

void Space::useBudget(Budget* b) {
  b->used += own.used;
  own.used = 0;
  budget = b;
}

// Appends into room a reservation made. Should a reservation ever fall short,
// the array grows past the limit (as the WASM twin's push does) rather than
// write out of bounds; only a platform out of memory then stops the process.
template <typename T>
inline void pushReserved(Array<T>& a, Budget& b, const T& v) {
  if (!a.PushSoft(b, v)) std::abort();
}

// One more table slot in every per-table array (slot 0 is never a table);
// reserveTables made the room.
void Space::newTableSlot() {
  Budget& b = *budget;
  pushReserved<uint8_t>(tLevel, b, 0);
  pushReserved<uint8_t>(tShift, b, 0);
  pushReserved<uint8_t>(tLog2, b, 0);
  pushReserved<uint8_t>(tFlags, b, 0);
  pushReserved<uint32_t>(tLive, b, 0);
  pushReserved<uint32_t>(tBase, b, 0);
  pushReserved<uint32_t>(tBorn, b, 0);
}

// Room for `extra` more table slots (and their free-list entries). false
// (nothing changed but capacity) when the budget says no.
bool Space::reserveTables(uint64_t extra) {
  const uint64_t n = (uint64_t)tLevel.size() + extra;
  if (n > 0xffffffffu) return false;
  Budget& b = *budget;
  return tLevel.Reserve(b, n) && tShift.Reserve(b, n) && tLog2.Reserve(b, n) && tFlags.Reserve(b, n) &&
         tLive.Reserve(b, n) && tBase.Reserve(b, n) && tBorn.Reserve(b, n) && tFree.Reserve(b, n);
}

// Room for `slots` more entries above eTop (free blocks are not counted on).
bool Space::reserveEntries(uint64_t slots) {
  const uint64_t need = (uint64_t)eTop + slots;
  if (need > 0xffffffffu) return false;
  if (need <= eVal.capacity()) return true;
  uint64_t cap = (uint64_t)eVal.capacity() * 2;
  if (cap < 4096) cap = 4096;
  if (cap < need) cap = need;
  if (cap > 0xffffffffu) cap = need;
  return eVal.Reserve(*budget, cap) && eMeta.Reserve(*budget, cap);
}

bool Space::ptValid(uint32_t pt) const { return pt > 0 && pt < pts.size() && pts[pt].alive != 0; }

// ---- storage -----------------------------------------------------------------------

uint32_t Space::blockAlloc(uint32_t log2) {
  const uint32_t n = 1u << log2;
  uint32_t b = eFree[log2];
  if (b != kNone) {
    eFree[log2] = (uint32_t)eVal[b];
  } else {
    b = eTop;
    eTop += n;
    // reserveEntries made the room (grow past the limit should it ever fall short)
    if (eTop > eVal.size()) {
      if (!eVal.Reserve(*budget, eTop, true) || !eMeta.Reserve(*budget, eTop, true)) std::abort();
      eVal.GrowZeroed(eTop);
      eMeta.GrowZeroed(eTop);
    }
  }
  std::memset(&eMeta[b], 0, n);
  eUsed += n;
  return b;
}

void Space::blockFree(uint32_t b, uint32_t log2) {
  eVal[b] = eFree[log2];
  eFree[log2] = b;
  eUsed -= 1u << log2;
}

// When at most a quarter of a large entry storage is in use (after a big
// unbind or destroy), moves the live blocks to the bottom, drops every free
// list and gives the rest back: memory follows the tables, not their peak.
// Only tBase changes, so no handle, walk or translation sees the move.
void Space::compactEntries() {
  if (eTop < kCompactMin || eUsed > eTop / 4) return;
  Array<uint64_t> order;  // (base << 32) | table, for every live table
  // Compaction is an optimisation: without memory for its index it waits.
  if (!order.Reserve(*budget, tLevel.size())) return;
  for (uint32_t t = 1; t < tLevel.size(); t++) {
    if ((tFlags[t] & 1) != 0) order.PushReserved(((uint64_t)tBase[t] << 32) | t);
  }
  sortU64(order.data(), (uint32_t)order.size());
  uint32_t top = 0;
  for (uint32_t i = 0; i < order.size(); i++) {
    const uint32_t t = (uint32_t)order[i];
    const uint32_t from = tBase[t];
    const uint32_t n = 1u << tLog2[t];
    if (from != top) {
      std::memmove(&eVal[top], &eVal[from], (size_t)n * sizeof(uint64_t));
      std::memmove(&eMeta[top], &eMeta[from], n);
      tBase[t] = top;
    }
    top += n;
  }
  order.Release(*budget);
  for (uint32_t k = 0; k < kSizeClasses; k++) eFree[k] = kNone;
  eTop = top;
  const uint32_t cap = top < 4096 ? 4096 : top;
  if (eVal.size() > cap) {
    eVal.Truncate(cap);
    eMeta.Truncate(cap);
  }
  eVal.ShrinkTo(*budget, cap);
  eMeta.ShrinkTo(*budget, cap);
}

uint32_t Space::tableAlloc(uint32_t pt, uint32_t level, bool compact) {
  PtRec& p = pts[pt];
  uint32_t sh;
  uint32_t log2;
  if (compact) {
    sh = kShift64K;
    log2 = p.shift[1] - kShift64K;
  } else {
    sh = p.shift[level];
    log2 = level == p.top ? p.shift[p.top] - p.shift[p.top - 1] : p.shift[level + 1] - p.shift[level];
  }
  uint32_t t;
  if (!tFree.empty()) {
    t = tFree.Pop();
  } else {
    t = (uint32_t)tLevel.size();
    newTableSlot();
  }
  tLevel[t] = (uint8_t)level;
  tShift[t] = (uint8_t)sh;
  tLog2[t] = (uint8_t)log2;
  tFlags[t] = compact ? 3 : 1;
  tLive[t] = 0;
  tBase[t] = blockAlloc(log2);
  tBorn[t] = serial;
  created.PushSoft(*budget, t);  // cost report only
  cAlloc++;
  p.tables++;
  return t;
}

// Releases a table and every table below it (hidden children of zapped
// entries included), without writing any entry.
void Space::releaseTable(uint32_t pt, uint32_t t) {
  if (tLevel[t] > 0) {
    const uint32_t n = 1u << tLog2[t];
    for (uint32_t i = 0; i < n; i++) {
      const uint32_t e = tBase[t] + i;
      if ((eMeta[e] & kKindMask) == kDir) releaseTable(pt, (uint32_t)eVal[e]);
    }
  }
  PtRec& p = pts[pt];
  p.entries -= tLive[t];
  p.tables--;
  cFree++;
  blockFree(tBase[t], tLog2[t]);
  tFlags[t] = 0;
  tLive[t] = 0;
  tFree.PushReserved(t);
}

// Writes one entry, keeping live counts; a write into a table the current
// call did not create is logged for the cost report.
void Space::writeEntry(uint32_t pt, uint32_t t, uint32_t idx, uint8_t meta, uint64_t val) {
  const uint32_t e = tBase[t] + idx;
  const bool was = (eMeta[e] & kKindMask) != 0;
  const bool is = (meta & kKindMask) != 0;
  if (was != is) {
    if (is) {
      tLive[t]++;
      pts[pt].entries++;
    } else {
      tLive[t]--;
      pts[pt].entries--;
    }
  }
  eMeta[e] = meta;
  eVal[e] = val;
  if (tBorn[t] != serial) liveLog.PushSoft(*budget, ((uint64_t)t << 32) | idx);  // cost report only
}

// ---- cost accounting -----------------------------------------------------------------

void Space::beginCall() {
  serial++;
  if (serial == 0) serial = 1;
  liveLog.Clear();
  created.Clear();
  cAlloc = 0;
  cFree = 0;
}

void Space::endCall() {
  const uint32_t n = (uint32_t)liveLog.size();
  uint32_t k = 1;
  while (k < n && liveLog[k - 1] <= liveLog[k]) k++;
  if (k < n) sortU64(liveLog.data(), n);  // the log is usually in order already
  uint32_t live = 0;
  uint32_t records = 0;
  uint64_t prev = ~(uint64_t)0;
  for (uint32_t i = 0; i < n; i++) {
    const uint64_t k = liveLog[i];
    if (k == prev) continue;
    if (prev == ~(uint64_t)0 || (k >> 32) != (prev >> 32) || (uint32_t)k != (uint32_t)prev + 1) records++;
    live++;
    prev = k;
  }
  uint32_t fresh = 0;
  for (uint32_t i = 0; i < created.size(); i++) {
    const uint32_t t = created[i];
    if ((tFlags[t] & 1) != 0 && tBorn[t] == serial) {
      fresh += tLive[t];
      tBorn[t] = 0;
    }
  }
  // a huge call's logs are not kept at their peak
  if (liveLog.capacity() > kLogKeep) liveLog.Release(*budget);
  if (created.capacity() > kLogKeep) created.Release(*budget);
  cost[0] = live;
  cost[1] = fresh;
  cost[2] = cAlloc;
  cost[3] = cFree;
  cost[4] = records;
}

// ---- the generic walker (xe_pt_walk_range / xe_pt_walk_shared) ------------------------
//
// Visits the entries of table t (level L) overlapping [addr, last]. For each
// entry: pre(t, idx, L, a, l) with the entry's part [a, l] of the range; then,
// unless pre returned kContinue, descent into the entry's child when it is a
// live (not zapped) directory entry; then post(t, idx, L, a, l). In shared
// mode fully covered entries are skipped and the walk jumps from the first
// entry straight to the last one: only the (at most two) edge entries of each
// table are visited. A visitor stops the walk by setting `abort`.
template <class V>
bool Space::walkRange(V& v, uint32_t t, uint32_t L, uint64_t addr, uint64_t last, bool shared) {
  const uint32_t sh = tShift[t];
  const uint64_t esz1 = ((uint64_t)1 << sh) - 1;
  const uint32_t mask = (1u << tLog2[t]) - 1;
  uint32_t idx = (uint32_t)(addr >> sh) & mask;
  for (;;) {
    uint64_t elast = addr | esz1;
    if (elast > last) elast = last;
    const bool covered = (addr & esz1) == 0 && elast - addr == esz1;
    if (!(shared && covered)) {
      const int act = v.pre(t, idx, L, addr, elast);
      if (v.abort) return false;
      if (act == kSubtree && L > 0) {
        const uint32_t e = tBase[t] + idx;
        if ((eMeta[e] & (kKindMask | kZapped)) == kDir) {
          if (!walkRange(v, (uint32_t)eVal[e], L - 1, addr, elast, shared)) return false;
        }
      }
      v.post(t, idx, L, addr, elast);
      if (v.abort) return false;
    }
    if (elast == last) return true;
    const uint64_t next = elast + 1;
    if (shared) {
      const uint64_t lastStart = last & ~esz1;
      if (lastStart > next) {
        addr = lastStart;
        idx = (uint32_t)(addr >> sh) & mask;
        continue;
      }
    }
    addr = next;
    idx++;
  }
}

// ---- helpers shared by bind, unbind and zap ---------------------------------------------

// Replaces the leaf entry (t, idx) at level L > 0 by a directory entry whose
// new child holds the same mapping expressed one level down.
uint32_t Space::splitLeaf(uint32_t pt, uint32_t t, uint32_t idx, uint32_t L) {
  const uint32_t e = tBase[t] + idx;
  const uint8_t kind = eMeta[e] & kKindMask;
  const uint64_t val = eVal[e];
  const uint32_t c = tableAlloc(pt, L - 1, false);
  const uint32_t n = 1u << tLog2[c];
  const uint64_t csz = (uint64_t)1 << tShift[c];
  const uint32_t cb = tBase[c];
  for (uint32_t j = 0; j < n; j++) {
    eMeta[cb + j] = kind;
    eVal[cb + j] = kind == kLeaf ? val + (uint64_t)j * csz : 0;
  }
  tLive[c] = n;
  pts[pt].entries += n;
  writeEntry(pt, t, idx, kDir, c);
  return c;
}

// Replaces the compact level-0 child of (t, idx) by a normal one holding the
// same mappings (each 64 KiB entry as 2^(16-s0) entries).
uint32_t Space::decompact(uint32_t pt, uint32_t t, uint32_t idx) {
  const uint32_t old = (uint32_t)eVal[tBase[t] + idx];
  const uint32_t c = tableAlloc(pt, 0, false);
  const PtRec& p = pts[pt];
  const uint32_t s0 = p.shift[0];
  const uint32_t r = 1u << (kShift64K - s0);
  const uint32_t on = 1u << tLog2[old];
  const uint32_t ob = tBase[old];
  const uint32_t cb = tBase[c];
  uint32_t live = 0;
  for (uint32_t j = 0; j < on; j++) {
    const uint8_t m = eMeta[ob + j];
    if ((m & kKindMask) == kEmpty) continue;
    const uint64_t v = eVal[ob + j];
    for (uint32_t k = 0; k < r; k++) {
      eMeta[cb + j * r + k] = m;
      eVal[cb + j * r + k] = (m & kKindMask) == kLeaf ? v + ((uint64_t)k << s0) : 0;
    }
    live += r;
  }
  tLive[c] = live;
  pts[pt].entries += live;
  releaseTable(pt, old);
  writeEntry(pt, t, idx, kDir, c);
  return c;
}

// The index run [*i0, *i1] of the entries of table t lying wholly inside [addr, last].
bool Space::fullRun(uint32_t t, uint64_t addr, uint64_t last, uint32_t* i0, uint32_t* i1) {
  const uint32_t sh = tShift[t];
  const uint64_t esz1 = ((uint64_t)1 << sh) - 1;
  const uint32_t mask = (1u << tLog2[t]) - 1;
  int64_t a = (int64_t)((addr >> sh) & mask);
  int64_t b = (int64_t)((last >> sh) & mask);
  if ((addr & esz1) != 0) a++;
  if ((last & esz1) != esz1) b--;
  if (a > b) return false;
  *i0 = (uint32_t)a;
  *i1 = (uint32_t)b;
  return true;
}

// The kill rule: every non-empty entry of table t lies inside [addr, last],
// or is a live directory entry whose child satisfies the rule itself.
bool Space::killable(uint32_t t, uint64_t addr, uint64_t last) {
  const uint32_t live = tLive[t];
  const uint32_t sh = tShift[t];
  const uint64_t esz1 = ((uint64_t)1 << sh) - 1;
  const uint32_t mask = (1u << tLog2[t]) - 1;
  const uint32_t i0 = (uint32_t)(addr >> sh) & mask;
  const uint32_t i1 = (uint32_t)(last >> sh) & mask;
  if (i1 - i0 + 1 < live) return false;
  uint32_t count = 0;
  uint64_t es = addr & ~esz1;
  for (uint32_t i = i0; i <= i1; i++, es += esz1 + 1) {
    const uint32_t e = tBase[t] + i;
    const uint8_t m = eMeta[e];
    if ((m & kKindMask) == kEmpty) continue;
    const uint64_t el = es + esz1;
    if (es >= addr && el <= last) {
      count++;
      continue;
    }
    if ((m & (kKindMask | kZapped)) == kDir &&
        killable((uint32_t)eVal[e], es > addr ? es : addr, el < last ? el : last)) {
      count++;
      continue;
    }
    return false;
  }
  return count == live;
}

// Unbind of the run of table t wholly inside [addr, last]: non-empty entries
// are cleared, their subtrees released.
void Space::clearRun(uint32_t pt, uint32_t t, uint64_t addr, uint64_t last) {
  uint32_t i0, i1;
  if (!fullRun(t, addr, last, &i0, &i1)) return;
  for (uint32_t i = i0; i <= i1; i++) {
    const uint32_t e = tBase[t] + i;
    const uint8_t m = eMeta[e];
    if ((m & kKindMask) == kEmpty) continue;
    if ((m & kKindMask) == kDir) releaseTable(pt, (uint32_t)eVal[e]);
    writeEntry(pt, t, i, kEmpty, 0);
  }
}

// Zap of the run of table t wholly inside [addr, last]: visible entries
// become zapped, nothing is released.
void Space::zapRun(uint32_t pt, uint32_t t, uint64_t addr, uint64_t last) {
  uint32_t i0, i1;
  if (!fullRun(t, addr, last, &i0, &i1)) return;
  for (uint32_t i = i0; i <= i1; i++) {
    const uint32_t e = tBase[t] + i;
    const uint8_t m = eMeta[e];
    if ((m & kKindMask) == kEmpty || (m & kZapped) != 0) continue;
    writeEntry(pt, t, i, (uint8_t)(m | kZapped), eVal[e]);
  }
}

inline bool aligned64K(uint64_t addr, uint64_t last) {
  return (addr & 0xffff) == 0 && (last & 0xffff) == 0xffff;
}

// ---- bind (xe_pt_stage_bind) ------------------------------------------------------------

struct BindWalk {
  Space& s;
  uint32_t pt;
  const uint32_t* segs;
  bool isNull;
  uint32_t seg;    // segment holding the current address
  uint64_t segVa;  // va where that segment starts
  bool abort;

  uint64_t segPa(uint32_t s) const { return rd64(segs + s * kSegWords); }
  uint64_t segLen(uint32_t s) const { return rd64(segs + s * kSegWords + 2); }

  void seek(uint64_t addr) {
    while (addr - segVa >= segLen(seg)) {
      segVa += segLen(seg);
      seg++;
    }
  }

  // Every 64 KiB block of [addr, last] (64 KiB aligned) lies in one segment
  // at a 64 KiB aligned physical address.
  bool scan64K(uint64_t addr, uint64_t last) const {
    if (isNull) return true;
    uint32_t s = seg;
    uint64_t sv = segVa;
    for (uint64_t va = addr;; va += 0x10000) {
      while (va - sv >= segLen(s)) {
        sv += segLen(s);
        s++;
      }
      if (va + 0xffff - sv >= segLen(s)) return false;
      if (((segPa(s) + (va - sv)) & 0xffff) != 0) return false;
      if (va + 0xffff == last) return true;
    }
  }

  // The level-0 entries of [addr, last] in table c become leaves: what the
  // walker's visit of each level-0 entry does (pre at L = 0), as one loop.
  void fillLeaves(uint32_t c, uint64_t addr, uint64_t last) {
    const uint32_t sh = s.tShift[c];
    const uint32_t idx0 = (uint32_t)(addr >> sh) & ((1u << s.tLog2[c]) - 1);
    const uint32_t n = (uint32_t)((last - addr) >> sh) + 1;
    uint8_t* m = s.eMeta.data() + s.tBase[c] + idx0;
    uint64_t* v = s.eVal.data() + s.tBase[c] + idx0;
    // entries that were empty (all of them in a table with none live), then
    // the kinds in one fill and the values in a loop that does nothing else
    uint32_t added = n;
    if (s.tLive[c] != 0) {
      added = 0;
      for (uint32_t i = 0; i < n; i++) added += (m[i] & kKindMask) == kEmpty ? 1 : 0;
    }
    std::memset(m, isNull ? kNull : kLeaf, n);
    if (isNull) {
      std::memset(v, 0, (size_t)n * sizeof(uint64_t));
    } else {
      // seek, with the cursor in locals: the entry stores below could alias
      // the walker's fields, which would be reloaded for every segment
      uint32_t sg = seg;
      uint64_t sgVa = segVa;
      const uint32_t* sp = segs + (size_t)sg * kSegWords;
      uint64_t len = rd64(sp + 2);
      const uint64_t esz = (uint64_t)1 << sh;
      uint32_t i = 0;
      uint64_t va = addr;
      while (i < n) {
        while (va - sgVa >= len) {
          sgVa += len;
          sg++;
          sp += kSegWords;
          len = rd64(sp + 2);
        }
        const uint64_t off = va - sgVa;
        const uint64_t room = (len - off) >> sh;  // whole entries left in the segment
        const uint32_t k = room < (uint64_t)(n - i) ? (uint32_t)room : n - i;
        uint64_t pa = rd64(sp) + off;
        for (uint32_t j = 0; j < k; j++, i++, pa += esz) v[i] = pa;
        va += (uint64_t)k << sh;
      }
      seg = sg;
      segVa = sgVa;
    }
    s.tLive[c] += added;
    s.pts[pt].entries += added;
    if (s.tBorn[c] != s.serial) {
      for (uint32_t i = 0; i < n; i++) s.liveLog.PushSoft(*s.budget, ((uint64_t)c << 32) | (idx0 + i));
    }
  }

  // Descends into the child of (t, idx) at level L: level-0 children are filled at once.
  int descend(uint32_t t, uint32_t idx, uint32_t L, uint64_t addr, uint64_t last) {
    if (L != 1) return kSubtree;
    fillLeaves((uint32_t)s.eVal[s.tBase[t] + idx], addr, last);
    return kContinue;
  }

  int pre(uint32_t t, uint32_t idx, uint32_t L, uint64_t addr, uint64_t last) {
    const PtRec& p = s.pts[pt];
    const uint32_t sh = s.tShift[t];
    const uint64_t esz1 = ((uint64_t)1 << sh) - 1;
    const uint32_t e = s.tBase[t] + idx;
    const uint8_t m = s.eMeta[e];
    const uint8_t kind = m & kKindMask;
    const bool covered = (addr & esz1) == 0 && last - addr == esz1;
    if (!isNull) seek(addr);
    bool leaf = L == 0;
    if (!leaf && L <= p.leaf && covered) {
      leaf = isNull || (last - segVa < segLen(seg) && ((segPa(seg) + (addr - segVa)) & esz1) == 0);
    }
    if (leaf) {
      if (kind == kDir) s.releaseTable(pt, (uint32_t)s.eVal[e]);
      if (isNull) {
        s.writeEntry(pt, t, idx, kNull, 0);
      } else {
        s.writeEntry(pt, t, idx, kLeaf, segPa(seg) + (addr - segVa));
      }
      return kContinue;
    }
    if (covered || kind != kDir || (m & kZapped) != 0) {
      if (!covered && (kind == kLeaf || kind == kNull) && (m & kZapped) == 0) {
        s.splitLeaf(pt, t, idx, L);
        return descend(t, idx, L, addr, last);
      }
      const uint32_t old = (uint32_t)s.eVal[e];
      const bool compact = L == 1 && covered && (p.flags & kCreateCompact) != 0 && scan64K(addr, last);
      const uint32_t c = s.tableAlloc(pt, L - 1, compact);
      if (kind == kDir) s.releaseTable(pt, old);
      s.writeEntry(pt, t, idx, (uint8_t)(kDir | (compact ? kCompactChild : 0)), c);
      return descend(t, idx, L, addr, last);
    }
    if ((m & kCompactChild) != 0 && !(aligned64K(addr, last) && scan64K(addr, last))) s.decompact(pt, t, idx);
    return descend(t, idx, L, addr, last);
  }

  void post(uint32_t, uint32_t, uint32_t, uint64_t, uint64_t) {}
};

// ---- unbind (xe_pt_stage_unbind with the kill rule) ---------------------------------------

struct UnbindWalk {
  Space& s;
  uint32_t pt;
  bool abort;

  int pre(uint32_t t, uint32_t idx, uint32_t L, uint64_t addr, uint64_t last) {
    const uint32_t e = s.tBase[t] + idx;
    const uint8_t m = s.eMeta[e];
    const uint8_t kind = m & kKindMask;
    if (kind == kEmpty || (m & kZapped) != 0) return kContinue;
    if (kind != kDir) {
      if (L == 0) return kContinue;
      s.splitLeaf(pt, t, idx, L);
      return kSubtree;
    }
    const uint32_t c = (uint32_t)s.eVal[e];
    if (s.killable(c, addr, last)) {
      s.releaseTable(pt, c);
      s.writeEntry(pt, t, idx, kEmpty, 0);
      return kContinue;
    }
    if ((m & kCompactChild) != 0 && !aligned64K(addr, last)) s.decompact(pt, t, idx);
    return kSubtree;
  }

  void post(uint32_t t, uint32_t idx, uint32_t, uint64_t addr, uint64_t last) {
    const uint32_t e = s.tBase[t] + idx;
    if ((s.eMeta[e] & (kKindMask | kZapped)) != kDir) return;
    s.clearRun(pt, (uint32_t)s.eVal[e], addr, last);
  }
};

// ---- zap (xe_pt_zap_ptes) ----------------------------------------------------------------

struct ZapWalk {
  Space& s;
  uint32_t pt;
  bool abort;

  int pre(uint32_t t, uint32_t idx, uint32_t, uint64_t, uint64_t) {
    return (s.eMeta[s.tBase[t] + idx] & (kKindMask | kZapped)) == kDir ? kSubtree : kContinue;
  }

  void post(uint32_t t, uint32_t idx, uint32_t, uint64_t addr, uint64_t last) {
    const uint32_t e = s.tBase[t] + idx;
    if ((s.eMeta[e] & (kKindMask | kZapped)) != kDir) return;
    s.zapRun(pt, (uint32_t)s.eVal[e], addr, last);
  }
};

void Space::runBind(uint32_t pt, uint64_t va, uint64_t last, const uint32_t* segs, bool isNull) {
  BindWalk v{*this, pt, segs, isNull, 0, va, false};
  walkRange(v, pts[pt].root, pts[pt].top, va, last, false);
}

void Space::runUnbind(uint32_t pt, uint64_t va, uint64_t last) {
  UnbindWalk v{*this, pt, false};
  walkRange(v, pts[pt].root, pts[pt].top, va, last, true);
  clearRun(pt, pts[pt].root, va, last);
}

void Space::runZap(uint32_t pt, uint64_t va, uint64_t last) {
  ZapWalk v{*this, pt, false};
  walkRange(v, pts[pt].root, pts[pt].top, va, last, true);
  zapRun(pt, pts[pt].root, va, last);
}

// ---- queries ---------------------------------------------------------------------------------

// PS64: a level-0 leaf of a normal table whose aligned 64 KiB block holds
// 2^(16-s0) visible leaves of one kind, physically contiguous and 64 KiB aligned.
bool Space::hint64K(uint32_t pt, uint32_t t, uint32_t idx) {
  const PtRec& p = pts[pt];
  if (tLevel[t] != 0 || (tFlags[t] & 2) != 0) return false;
  if (!(p.shift[0] < kShift64K && p.shift[1] > kShift64K)) return false;
  const uint32_t r = 1u << (kShift64K - p.shift[0]);
  const uint32_t j0 = idx & ~(r - 1);
  const uint32_t b = tBase[t] + j0;
  const uint8_t m0 = eMeta[b];
  if ((m0 & kZapped) != 0 || (m0 & kKindMask) == kEmpty) return false;
  const uint64_t v0 = eVal[b];
  if ((m0 & kKindMask) == kLeaf && (v0 & 0xffff) != 0) return false;
  for (uint32_t j = 1; j < r; j++) {
    if (eMeta[b + j] != m0) return false;
    if ((m0 & kKindMask) == kLeaf && eVal[b + j] != v0 + ((uint64_t)j << p.shift[0])) return false;
  }
  return true;
}

uint32_t Space::entryInfo(uint32_t pt, uint32_t t, uint32_t idx, uint32_t L) {
  const uint8_t m = eMeta[tBase[t] + idx];
  const uint8_t kind = m & kKindMask;
  uint32_t info = (L << kInfoLevelShift) | ((uint32_t)tShift[t] << kInfoSizeShift);
  if (kind == kLeaf || kind == kNull) info |= kInfoMapped;
  if (kind == kNull) info |= kInfoNull;
  if (kind == kDir) info |= kInfoDir;
  if ((m & kZapped) != 0) info |= kInfoZapped;
  if ((m & kCompactChild) != 0 || (tFlags[t] & 2) != 0) info |= kInfoCompact;
  if ((kind == kLeaf || kind == kNull) && (m & kZapped) == 0 && hint64K(pt, t, idx)) info |= kInfoHint64K;
  return info;
}

struct OutWalk {
  Space& s;
  uint32_t pt;
  uint32_t flags;
  uint32_t top;
  bool hasCursor;
  uint64_t cpos;
  uint32_t crank;
  uint32_t* data;
  uint32_t max;
  uint32_t count;
  uint64_t lastPos;
  uint32_t lastRank;
  bool abort;

  bool after(uint64_t pos, uint32_t rank) const {
    return !hasCursor || pos > cpos || (pos == cpos && rank > crank);
  }

  void emit(uint32_t t, uint32_t idx, uint32_t L, uint64_t addr, uint32_t post, uint64_t pos, uint32_t rank) {
    if (count == max) {
      abort = true;
      return;
    }
    const uint32_t e = s.tBase[t] + idx;
    const uint8_t m = s.eMeta[e];
    const uint8_t kind = m & kKindMask;
    const uint64_t esz1 = ((uint64_t)1 << s.tShift[t]) - 1;
    uint32_t* r = data + count * kWalkWords;
    wr64(r, addr & ~esz1);
    wr64(r + 2, kind == kLeaf ? s.eVal[e] : 0);
    r[4] = s.entryInfo(pt, t, idx, L) | post;
    r[5] = kind == kDir ? s.tLive[(uint32_t)s.eVal[e]] : 0;
    r[6] = t;
    r[7] = idx;
    count++;
    lastPos = pos;
    lastRank = rank;
  }

  int pre(uint32_t t, uint32_t idx, uint32_t L, uint64_t addr, uint64_t last) {
    if (hasCursor && last < cpos) return kContinue;
    const uint8_t m = s.eMeta[s.tBase[t] + idx];
    const uint8_t kind = m & kKindMask;
    bool want;
    if (kind == kEmpty) {
      want = (flags & kWalkEmpty) != 0;
    } else if ((m & kZapped) != 0) {
      want = (flags & kWalkZapped) != 0;
    } else if (kind == kDir) {
      want = (flags & kWalkDirs) != 0;
    } else {
      want = true;
    }
    if (want && after(addr, top - L)) emit(t, idx, L, addr, 0, addr, top - L);
    return kSubtree;
  }

  void post(uint32_t t, uint32_t idx, uint32_t L, uint64_t, uint64_t last) {
    if ((flags & kWalkPost) == 0) return;
    if ((s.eMeta[s.tBase[t] + idx] & (kKindMask | kZapped)) != kDir) return;
    if (after(last, 64 + L)) emit(t, idx, L, last, kInfoPost, last, 64 + L);
  }
};

// ---- public operations -------------------------------------------------------------------------

int32_t geomValid(const uint32_t* shifts, uint32_t n, uint32_t leaf, uint32_t flags) {
  if (n < 2 || n > kMaxShifts) return -kEinval;
  for (uint32_t L = 0; L + 1 < n; L++) {
    if (shifts[L + 1] <= shifts[L] || shifts[L + 1] - shifts[L] > 16) return -kEinval;
  }
  const uint64_t span = (uint64_t)shifts[n - 1] + (shifts[n - 1] - shifts[n - 2]);
  if (span > 64) return -kEinval;
  if (leaf > n - 1) return -kEinval;
  if ((flags & ~kCreateCompact) != 0) return -kEinval;
  if ((flags & kCreateCompact) != 0 && !(shifts[0] < kShift64K && shifts[1] > kShift64K)) return -kEinval;
  return 0;
}

int32_t Space::ptCreate(const uint32_t* shifts, uint32_t n, uint32_t leaf, uint32_t flags) {
  const int32_t r = geomValid(shifts, n, leaf, flags);
  if (r < 0) return r;
  // The record (and room to free it again) and the root table, up front.
  const uint64_t rootEntries = (uint64_t)1 << (shifts[n - 1] - shifts[n - 2]);
  if ((ptFree.empty() && (!pts.Reserve(*budget, (uint64_t)pts.size() + 1) ||
                          !ptFree.Reserve(*budget, (uint64_t)pts.size() + 1))) ||
      !reserveTables(1) || !reserveEntries(rootEntries)) {
    return -kEnomem;
  }
  uint32_t pt;
  if (!ptFree.empty()) {
    pt = ptFree.Pop();
  } else {
    pt = (uint32_t)pts.size();
    pts.PushReserved(PtRec{});
  }
  PtRec& p = pts[pt];
  p = PtRec{};
  p.alive = 1;
  p.top = n - 1;
  p.leaf = leaf;
  p.flags = flags;
  for (uint32_t L = 0; L < n; L++) p.shift[L] = (uint8_t)shifts[L];
  p.spanBits = shifts[n - 1] + (shifts[n - 1] - shifts[n - 2]);
  p.spanLast = p.spanBits == 64 ? ~(uint64_t)0 : ((uint64_t)1 << p.spanBits) - 1;
  p.tables = 0;
  p.entries = 0;
  const uint32_t root = tableAlloc(pt, p.top, false);
  tBorn[root] = 0;
  pts[pt].root = root;
  return (int32_t)pt;
}

int32_t Space::ptDestroy(uint32_t pt) {
  if (!ptValid(pt)) return -kEinval;
  releaseTable(pt, pts[pt].root);
  pts[pt].alive = 0;
  ptFree.PushReserved(pt);
  compactEntries();
  return 0;
}

namespace {

bool rangeOk(const PtRec& p, uint64_t va, uint64_t size) {
  const uint64_t mask = ((uint64_t)1 << p.shift[0]) - 1;
  if (size == 0 || (va & mask) != 0 || (size & mask) != 0) return false;
  if (size - 1 > p.spanLast) return false;
  return va <= p.spanLast - (size - 1);
}

// Leaves a bind of [sa, sl] (inclusive, one segment starting at pa, or a
// null binding) writes: at each level L <= leaf, top-down, the entries wholly
// inside [sa, sl] that no higher leaf holds become leaves if the segment is
// physically aligned to their size (always at level 0 and for null ones).
// Independent of what the table holds; compact tables write fewer. Adds the
// leaves of each level to byLevel[L].
uint64_t pieceLeaves(const PtRec& p, uint64_t sa, uint64_t sl, uint64_t pa, bool isNull, uint64_t* byLevel) {
  uint64_t leaves = 0;
  uint64_t above = 0;  // entries of the current level held by higher leaves
  for (uint32_t L = p.leaf + 1; L-- > 0;) {
    const uint32_t sh = p.shift[L];
    const uint64_t m = ((uint64_t)1 << sh) - 1;
    if (L < p.leaf) above <<= p.shift[L + 1] - sh;
    const uint64_t start = (sa + m) & ~m;
    if (start < sa || start > sl) continue;  // no whole entry at this level (or wrapped)
    const uint64_t d = sl - start;
    const uint64_t whole = (d >> sh) + ((d & m) == m ? 1 : 0);
    if (L > 0 && !isNull && ((pa - sa) & m) != 0) continue;
    leaves += whole - above;
    byLevel[L] += whole - above;
    above = whole;
  }
  return leaves;
}

// Validates every record; -> record count, or -EINVAL with the failing index
// in *fail, or -ENOMEM when the binds would write more than `budget` leaves
// (*fail the record passing it, *needLeaves the leaves up to and including it).
// byLevel[L]: the leaves the valid records write at level L.
int32_t validateRecords(const PtRec& p, const uint32_t* w, uint32_t n, uint64_t budget, uint32_t* fail,
                        uint64_t* needLeaves, uint64_t* byLevel) {
  for (uint32_t L = 0; L <= p.top; L++) byLevel[L] = 0;
  const uint64_t mask = ((uint64_t)1 << p.shift[0]) - 1;
  // segments up to this length have leaves at level 0 only (see pieceLeaves)
  const uint64_t smallMax = p.leaf == 0 ? ~(uint64_t)0 : ((uint64_t)1 << p.shift[1]) - 1;
  uint64_t pos = 0;
  uint32_t idx = 0;
  uint64_t leaves = 0;
  while (pos < n) {
    *fail = idx;
    if (n - pos < kRecHeader) return -kEinval;
    const uint32_t kind = w[pos];
    const uint32_t nseg = w[pos + 1];
    const uint64_t va = rd64(w + pos + 2);
    const uint64_t size = rd64(w + pos + 4);
    uint64_t need = kRecHeader;
    if (kind == kRecBind) {
      if (nseg == 0) return -kEinval;
      need += (uint64_t)nseg * kSegWords;
      if (need > n - pos) return -kEinval;
    } else if (kind == kRecBindNull || kind == kRecUnbind || kind == kRecZap) {
      if (nseg != 0) return -kEinval;
    } else {
      return -kEinval;
    }
    if (!rangeOk(p, va, size)) return -kEinval;
    if (kind == kRecBind) {
      // The check pass makes no call, so its loop keeps everything in
      // registers. A segment shorter than a level-1 entry holds no whole
      // entry above level 0: its leaves are its level-0 entries, summed as
      // bytes and shifted once. Longer ones are counted afterwards.
      uint64_t sum = 0;
      uint64_t small = 0;
      const uint32_t* s = w + pos + kRecHeader;
      const uint32_t* const end = s + (size_t)nseg * kSegWords;
      for (; s < end; s += kSegWords) {
        const uint64_t pa = rd64(s);
        const uint64_t len = rd64(s + 2);
        if (len == 0 || ((pa | len) & mask) != 0) return -kEinval;
        if (len - 1 > ~pa) return -kEinval;
        if (len > size - sum) return -kEinval;
        if (len <= smallMax) small += len;
        sum += len;
      }
      if (sum != size) return -kEinval;
      if (small != sum) {
        sum = 0;
        for (s = w + pos + kRecHeader; s < end; s += kSegWords) {
          const uint64_t len = rd64(s + 2);
          if (len > smallMax) leaves += pieceLeaves(p, va + sum, va + sum + (len - 1), rd64(s), false, byLevel);
          sum += len;
        }
      }
      small >>= p.shift[0];
      leaves += small;
      byLevel[0] += small;
    } else if (kind == kRecBindNull) {
      leaves += pieceLeaves(p, va, va + (size - 1), 0, true, byLevel);
    }
    if (leaves > budget) {
      *needLeaves = leaves;
      return -kEnomem;
    }
    pos += need;
    idx++;
  }
  *needLeaves = leaves;
  return (int32_t)idx;
}

}  // namespace

// Storage the records may take at most, reserved before the first one runs,
// so that a call either fits or changes nothing. A bind visits, at each level
// L >= 1, the entries of its range and gives each at most one new child table
// (2^(s[L]-s[L-1]) entries); unbind and zap walk only the two edge entries
// per level (splits, decompaction). A table a bind creates under a level-L
// entry lies on the way to at least one leaf it writes below level L, so a
// bind gets no more such tables than the call has leaves below L: that keeps
// a huge-page bind's reservation near what it uses. Tables freed on the way
// are not counted on. The per-call logs only feed the cost report and are not
// reserved. byLevel: the call's leaves per level (validateRecords).
bool Space::reserveFor(const PtRec& p, const uint32_t* w, uint32_t count, const uint64_t* byLevel) {
  uint64_t below[kMaxShifts + 1];
  below[0] = 0;
  for (uint32_t L = 0; L <= p.top; L++) below[L + 1] = below[L] + byLevel[L];
  uint64_t tables = 0;
  uint64_t slots = 0;
  uint32_t pos = 0;
  for (uint32_t r = 0; r < count; r++) {
    const uint32_t kind = w[pos];
    const uint32_t nseg = w[pos + 1];
    const uint64_t va = rd64(w + pos + 2);
    const uint64_t last = va + (rd64(w + pos + 4) - 1);
    const bool bind = kind == kRecBind || kind == kRecBindNull;
    for (uint32_t L = 1; L <= p.top; L++) {
      const uint32_t sh = p.shift[L];
      uint64_t visited = sh >= 64 ? 1 : (last >> sh) - (va >> sh) + 1;
      if (!bind && visited > 2) visited = 2;
      if (bind && visited > below[L]) visited = below[L];
      const uint32_t d = p.shift[L] - p.shift[L - 1];
      if (visited > (0xffffffffull >> d)) return false;  // more than the entry storage can ever address
      tables += visited;
      slots += visited << d;
    }
    if (tables > 0xffffffffu || slots > 0xffffffffu) return false;
    pos += kRecHeader + nseg * kSegWords;
  }
  return reserveTables(tables) && reserveEntries(slots);
}

int32_t Space::runRecords(uint32_t pt, const uint32_t* w, uint32_t n, uint32_t budget, uint32_t* out) {
  uint64_t need = 0;
  const int32_t count = validateRecords(pts[pt], w, n, budget, out + kOutFailIndex, &need, leavesByLevel);
  wr64(out + kOutNeed, need);
  if (count < 0) return count;
  if (!reserveFor(pts[pt], w, (uint32_t)count, leavesByLevel)) {
    wr64(out + kOutNeed, 0);  // not the leaf budget: storage
    out[kOutFailIndex] = 0;
    return -kEnomem;
  }
  uint32_t total[5] = {0, 0, 0, 0, 0};
  uint32_t pos = 0;
  for (int32_t r = 0; r < count; r++) {
    const uint32_t kind = w[pos];
    const uint32_t nseg = w[pos + 1];
    const uint64_t va = rd64(w + pos + 2);
    const uint64_t last = va + (rd64(w + pos + 4) - 1);
    beginCall();
    if (kind == kRecBind) {
      runBind(pt, va, last, w + pos + kRecHeader, false);
    } else if (kind == kRecBindNull) {
      runBind(pt, va, last, w + pos + kRecHeader, true);
    } else if (kind == kRecUnbind) {
      runUnbind(pt, va, last);
    } else {
      runZap(pt, va, last);
    }
    endCall();
    for (uint32_t k = 0; k < 5; k++) total[k] += cost[k];
    pos += kRecHeader + nseg * kSegWords;
  }
  for (uint32_t k = 0; k < 5; k++) out[k] = total[k];
  return count;
}

int32_t Space::ptApply(uint32_t pt, const uint32_t* words, uint32_t n, uint32_t flags, uint32_t budget,
                       uint32_t* out) {
  if (!ptValid(pt) || n > kIoDataWords || (flags & ~(kApplyBegin | kApplyEnd)) != 0) {
    staging.Clear();
    return -kEinval;
  }
  if ((flags & kApplyBegin) != 0) staging.Clear();
  if (flags == (kApplyBegin | kApplyEnd)) {
    const int32_t r = runRecords(pt, words, n, budget, out);
    if (r > 0) compactEntries();
    return r;
  }
  if (!staging.Append(*this->budget, words, n)) {
    staging.Release(*this->budget);
    wr64(out + kOutNeed, 0);
    out[kOutFailIndex] = 0;
    return -kEnomem;
  }
  if ((flags & kApplyEnd) == 0) return (int32_t)staging.size();
  const int32_t r = runRecords(pt, staging.data(), (uint32_t)staging.size(), budget, out);
  staging.Release(*this->budget);  // staged calls are big ones: do not keep their peak
  if (r > 0) compactEntries();
  return r;
}

int32_t Space::ptTranslate(uint32_t pt, uint64_t va, uint32_t* out) {
  out[0] = 0;
  out[1] = 0;
  out[2] = 0;
  if (!ptValid(pt)) return -kEinval;
  const PtRec& p = pts[pt];
  if (va > p.spanLast) return 0;
  uint32_t t = p.root;
  uint32_t L = p.top;
  for (;;) {
    const uint32_t sh = tShift[t];
    const uint32_t idx = (uint32_t)(va >> sh) & ((1u << tLog2[t]) - 1);
    const uint32_t e = tBase[t] + idx;
    const uint8_t m = eMeta[e];
    const uint8_t kind = m & kKindMask;
    if (kind == kEmpty || (m & kZapped) != 0) return 0;
    if (kind == kDir) {
      t = (uint32_t)eVal[e];
      L--;
      continue;
    }
    if (kind == kLeaf) wr64(out, eVal[e] + (va & (((uint64_t)1 << sh) - 1)));
    out[2] = entryInfo(pt, t, idx, L);
    return 1;
  }
}

int32_t Space::ptTranslateBatch(uint32_t pt, uint32_t* data, uint32_t n) {
  if (!ptValid(pt) || n > kIoDataWords / 4) return -kEinval;
  int32_t found = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t* r = data + i * 4;
    uint32_t res[3];
    found += ptTranslate(pt, rd64(r), res);
    r[0] = res[0];
    r[1] = res[1];
    r[2] = res[2];
    r[3] = 0;
  }
  return found;
}

int32_t Space::ptWalk(uint32_t pt, uint64_t first, uint64_t last, uint64_t cpos, uint32_t crank, uint32_t hasCursor,
               uint32_t flags, uint32_t max, uint32_t* data, uint32_t* out) {
  const uint32_t all = kWalkDirs | kWalkPost | kWalkShared | kWalkEmpty | kWalkZapped;
  if (!ptValid(pt) || (flags & ~all) != 0 || max > kIoDataWords / kWalkWords) return -kEinval;
  wr64(out, cpos);
  out[2] = crank;
  const PtRec& p = pts[pt];
  if (first > p.spanLast) return 0;
  if (last > p.spanLast) last = p.spanLast;
  if (first > last || max == 0) return 0;
  OutWalk v{*this, pt, flags, p.top, hasCursor != 0, cpos, crank, data, max, 0, 0, 0, false};
  walkRange(v, p.root, p.top, first, last, (flags & kWalkShared) != 0);
  if (v.count > 0) {
    wr64(out, v.lastPos);
    out[2] = v.lastRank;
  }
  return (int32_t)v.count;
}

int32_t Space::ptStats(uint32_t pt, uint32_t* out) {
  if (!ptValid(pt)) return -kEinval;
  out[0] = pts[pt].tables;
  out[1] = pts[pt].entries;
  out[2] = (uint32_t)(tLevel.size() - 1 - tFree.size());
  out[3] = eTop;
  return (int32_t)pts[pt].tables;
}

}  // namespace pt
}  // namespace gpuvm
