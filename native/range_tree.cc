// B+tree of disjoint u64 ranges: insert, remove, lookups. See range_tree.h
// for the shape rules that both engines share.
#include "range_tree.h"

namespace gpuvm {

namespace {

constexpr u64 kNoKey = ~static_cast<u64>(0);

// Ranges end at most at 2^64 - 1 (exclusive), so no entry starts at ~0:
// probing with min(x, ~0 - 1) finds the same entries and never counts the
// kNoKey slots, so scans do not need the entry count.
inline u64 Probe(u64 x) { return x == kNoKey ? kNoKey - 1 : x; }

// Number of keys in k[from, FANOUT) that are <= x (x a Probe()): keys are
// sorted, so this is an index. Fixed width, in four groups of four: compilers
// turn the 16 compares into one add-with-carry chain 16 cycles deep, which
// every descent waits on before it can load the child; kept apart, the groups
// run side by side (measured: 7.2 -> 5.3 ns per count in a dependent chain).
inline u32 CountLE(const u64* k, u32 from, u64 x) {
  static_assert(FANOUT == 16, "CountLE counts four groups of four keys");
  u32 g[4];
  for (u32 j = 0; j < 4; ++j) {
    u32 c = 0;
    for (u32 i = 4 * j; i < 4 * j + 4; ++i) c += k[i] <= x;
    GPUVM_OPAQUE(c);
    g[j] = c;
  }
  const u32 all = (g[0] + g[1]) + (g[2] + g[3]);
  return from != 0 ? all - (k[0] <= x ? 1 : 0) : all;
}

// A descent scans a node's keys, then reads one value (a child or an
// entry's record) that the scan picks: loading the value lines together with
// the keys saves a serial cache miss per node out of cache. Nodes are 16-byte
// aligned and 208 bytes, so these four lines cover one.
GPUVM_INLINE void PrefetchNode(const RangeNode& nd) {
  const char* p = reinterpret_cast<const char*>(&nd);
  GPUVM_PREFETCH(p + 64);
  GPUVM_PREFETCH(p + 128);
  GPUVM_PREFETCH(p + 192);
}

// Opens slot p of a node with room (entries from p on move up one) and puts
// (key, val) there. Leaves and inner nodes hold the same (key, val) pairs.
inline void PutAt(RangeNode& nd, u32 p, u64 key, u32 val) {
  for (u32 i = nd.n; i > p; --i) {
    nd.key[i] = nd.key[i - 1];
    nd.val[i] = nd.val[i - 1];
  }
  nd.key[p] = key;
  nd.val[p] = val;
  ++nd.n;
}

inline void ClearKeys(RangeNode& nd, u32 from) {
  for (u32 i = from; i < FANOUT; ++i) nd.key[i] = kNoKey;
}

}  // namespace

u32 RangeTree::NewNode(NodePool& pool, bool leaf) {
  const u32 h = pool.Alloc();
  RangeNode& nd = pool[h];
  nd.n = 0;
  nd.leaf = leaf ? 1 : 0;
  nd.next = 0;
  nd.prev = 0;
  ClearKeys(nd, 0);
  ++nodes_;
  ++epoch_;
  return h;
}

void RangeTree::FreeNode(NodePool& pool, u32 h) {
  pool.Free(h);
  --nodes_;
  ++epoch_;
}

void RangeTree::Init(NodePool& pool, EndSource ends) {
  ends_ = ends;
  nodes_ = 0;
  root_ = NewNode(pool, true);
  height_ = 0;
  count_ = 0;
}

void RangeTree::FreeSubtree(NodePool& pool, u32 h) {
  if (!pool[h].leaf) {
    for (u32 i = 0; i < pool[h].n; ++i) FreeSubtree(pool, pool[h].val[i]);
  }
  FreeNode(pool, h);
}

void RangeTree::Destroy(NodePool& pool) {
  if (root_ != 0) FreeSubtree(pool, root_);
  root_ = 0;
  height_ = 0;
  count_ = 0;
}

u32 RangeTree::Descend(const NodePool& pool, u64 x, const PathStep** path) const {
  *path = cache_;
  if (cacheEpoch_ == epoch_) {
    const u32 lh = cacheLeaf_;
    const RangeNode& l = pool[lh];
    const bool aboveStart = l.key[0] <= x || l.prev == 0;
    const bool belowNext = l.next == 0 || pool[l.next].key[0] > x;
    if (aboveStart && belowNext) return lh;
    // A neighbour leaf under the same parent: the same path, last slot +- 1.
    if (height_ > 0) {
      PathStep& last = cache_[height_ - 1];
      const RangeNode& par = pool[last.node];
      if (!belowNext && last.slot + 1 < par.n && par.val[last.slot + 1] == l.next) {
        const RangeNode& nx = pool[l.next];
        if (nx.next == 0 || pool[nx.next].key[0] > x) {
          ++last.slot;
          cacheLeaf_ = l.next;
          return cacheLeaf_;
        }
      } else if (!aboveStart && last.slot > 0 && par.val[last.slot - 1] == l.prev) {
        const RangeNode& pv = pool[l.prev];
        if (pv.key[0] <= x || pv.prev == 0) {
          --last.slot;
          cacheLeaf_ = l.prev;
          return cacheLeaf_;
        }
      }
    }
  }
  u32 h = root_;
  for (u32 d = 0; d < height_; ++d) {
    const RangeNode& nd = pool[h];
    const u32 i = CountLE(nd.key, 1, x);
    cache_[d].node = h;
    cache_[d].slot = i;
    h = nd.val[i];
    PrefetchNode(pool[h]);
  }
  cacheLeaf_ = h;
  cacheEpoch_ = epoch_;
  return h;
}

// The node at path depth `depth` + 1 got a new smallest key: refresh the
// separators above it for as long as it is the first child.
void RangeTree::FixKeys(NodePool& pool, const PathStep* path, int depth, u64 key) {
  for (int d = depth; d >= 0; --d) {
    pool[path[d].node].key[path[d].slot] = key;
    if (path[d].slot != 0) break;
  }
}

bool RangeTree::ShiftInsert(NodePool& pool, u32 lh, u32 p, u64 start, u32 val, const PathStep* path) {
  const u32 ph = path[height_ - 1].node;
  const u32 s = path[height_ - 1].slot;
  RangeNode& par = pool[ph];
  // The nearest sibling with room under the parent, left first at equal distance.
  u32 j = s;
  for (u32 d = 1; d < FANOUT && j == s; ++d) {
    if (s >= d && pool[par.val[s - d]].n < FANOUT) {
      j = s - d;
    } else if (s + d < par.n && pool[par.val[s + d]].n < FANOUT) {
      j = s + d;
    }
  }
  if (j == s) return false;
  RangeNode& l = pool[lh];
  if (j < s) {
    // Each leaf from j + 1 to s hands its lowest entry to its left
    // neighbour. The leaf is not the first one (it has a left sibling), so
    // the new entry sorts after its lowest: p >= 1.
    for (u32 t = j + 1; t <= s; ++t) {
      RangeNode& a = pool[par.val[t - 1]];
      RangeNode& b = pool[par.val[t]];
      a.key[a.n] = b.key[0];
      a.val[a.n] = b.val[0];
      ++a.n;
      for (u32 i = 1; i < b.n; ++i) {
        b.key[i - 1] = b.key[i];
        b.val[i - 1] = b.val[i];
      }
      --b.n;
      b.key[b.n] = kNoKey;
      if (t != s) par.key[t] = b.key[0];
    }
    PutAt(l, p - 1, start, val);
    par.key[s] = l.key[0];
    return true;
  }
  // Each leaf from j - 1 down to s hands its highest entry to its right
  // neighbour; for the leaf, the highest of its entries and the new one.
  for (u32 t = j; t > s; --t) {
    RangeNode& a = pool[par.val[t - 1]];
    RangeNode& b = pool[par.val[t]];
    if (t - 1 == s && p == FANOUT) {
      PutAt(b, 0, start, val);
    } else {
      --a.n;
      PutAt(b, 0, a.key[a.n], a.val[a.n]);
      a.key[a.n] = kNoKey;
    }
    par.key[t] = b.key[0];
  }
  if (p < FANOUT) {
    PutAt(l, p, start, val);
    if (p == 0) FixKeys(pool, path, static_cast<int>(height_) - 1, start);
  }
  return true;
}

int RangeTree::Insert(NodePool& pool, u64 start, u64 end, u32 val) {
  ++edits_;
  const PathStep* path;
  const u32 lh = Descend(pool, start, &path);
  RangeNode* l = &pool[lh];
  const u32 le = CountLE(l->key, 0, start);  // entries starting <= start
  // Overlap with the predecessor (greatest start <= start) or the successor.
  if (le > 0) {
    if (ends_.At(l->val[le - 1]) > start) return -kEEXIST;
  } else if (l->prev != 0) {
    const RangeNode& pv = pool[l->prev];
    if (pv.n != 0 && ends_.At(pv.val[pv.n - 1]) > start) return -kEEXIST;
  }
  if (le < l->n) {
    if (l->key[le] < end) return -kEEXIST;
  } else if (l->next != 0) {
    const RangeNode& nx = pool[l->next];
    if (nx.n != 0 && nx.key[0] < end) return -kEEXIST;
  }
  const u32 p = le;
  ++count_;

  if (l->n < FANOUT) {
    PutAt(*l, p, start, val);
    if (p == 0 && height_ > 0) FixKeys(pool, path, static_cast<int>(height_) - 1, start);
    return 0;
  }
  if (height_ > 0 && ShiftInsert(pool, lh, p, start, val, path)) return 0;

  // Split the full leaf: [0, 8) stays, [8, 16) moves right, then the entry.
  const u32 half = FANOUT / 2;
  const u32 rh = NewNode(pool, true);
  l = &pool[lh];
  RangeNode* r = &pool[rh];
  for (u32 i = half; i < FANOUT; ++i) {
    r->key[i - half] = l->key[i];
    r->val[i - half] = l->val[i];
  }
  r->n = FANOUT - half;
  l->n = half;
  ClearKeys(*l, half);
  RangeNode* t = p <= half ? l : r;
  const u32 tp = p <= half ? p : p - half;
  PutAt(*t, tp, start, val);
  r->next = l->next;
  r->prev = lh;
  if (l->next != 0) pool[l->next].prev = rh;
  l->next = rh;
  if (p == 0 && height_ > 0) FixKeys(pool, path, static_cast<int>(height_) - 1, start);

  // Push the separator up, splitting full inner nodes on the way.
  u64 sepKey = pool[rh].key[0];
  u32 sepChild = rh;
  for (int d = static_cast<int>(height_) - 1; d >= 0; --d) {
    const u32 ih = path[d].node;
    const u32 pos = path[d].slot + 1;
    RangeNode* in = &pool[ih];
    if (in->n < FANOUT) {
      PutAt(*in, pos, sepKey, sepChild);
      return 0;
    }
    const u32 nh = NewNode(pool, false);
    in = &pool[ih];
    RangeNode* nr = &pool[nh];
    for (u32 i = half; i < FANOUT; ++i) {
      nr->key[i - half] = in->key[i];
      nr->val[i - half] = in->val[i];
    }
    nr->n = FANOUT - half;
    in->n = half;
    ClearKeys(*in, half);
    RangeNode* ti = pos <= half ? in : nr;
    const u32 tpos = pos <= half ? pos : pos - half;
    PutAt(*ti, tpos, sepKey, sepChild);
    sepKey = nr->key[0];
    sepChild = nh;
  }

  // The root split: a new root above the old one.
  const u32 oldRoot = root_;
  const u32 nr = NewNode(pool, false);
  RangeNode& rt = pool[nr];
  rt.key[0] = pool[oldRoot].key[0];
  rt.val[0] = oldRoot;
  rt.key[1] = sepKey;
  rt.val[1] = sepChild;
  rt.n = 2;
  root_ = nr;
  ++height_;
  return 0;
}

bool RangeTree::Remove(NodePool& pool, u64 start) {
  ++edits_;
  const PathStep* path;
  u32 h = Descend(pool, start, &path);
  RangeNode* l = &pool[h];
  const u32 le = CountLE(l->key, 0, start);
  if (le == 0 || l->key[le - 1] != start) return false;
  const u32 j = le - 1;
  for (u32 i = j + 1; i < l->n; ++i) {
    l->key[i - 1] = l->key[i];
    l->val[i - 1] = l->val[i];
  }
  --l->n;
  l->key[l->n] = kNoKey;
  --count_;

  // Walk up from the leaf: unlink empty nodes, refresh separators, merge
  // small nodes with a sibling.
  bool minChanged = j == 0;
  int d = static_cast<int>(height_);  // depth of h; its parent is path[d - 1]
  while (d > 0) {
    RangeNode& nd = pool[h];
    const u32 ph = path[d - 1].node;
    const u32 ps = path[d - 1].slot;
    RangeNode& par = pool[ph];
    if (nd.n == 0) {
      if (nd.leaf) {
        if (nd.prev != 0) pool[nd.prev].next = nd.next;
        if (nd.next != 0) pool[nd.next].prev = nd.prev;
      }
      FreeNode(pool, h);
      for (u32 i = ps + 1; i < par.n; ++i) {
        par.key[i - 1] = par.key[i];
        par.val[i - 1] = par.val[i];
      }
      --par.n;
      par.key[par.n] = kNoKey;
      minChanged = ps == 0;
      h = ph;
      --d;
      continue;
    }
    if (minChanged) {
      FixKeys(pool, path, d - 1, nd.key[0]);
      minChanged = false;
    }
    if (nd.n >= FANOUT / 4) break;
    // Merge: the pair (left, right) becomes `left`; `right` is freed.
    u32 lh2 = 0, rh2 = 0, rslot = 0;
    if (ps > 0 && pool[par.val[ps - 1]].n + nd.n <= FANOUT) {
      lh2 = par.val[ps - 1];
      rh2 = h;
      rslot = ps;
    } else if (ps + 1 < par.n && nd.n + pool[par.val[ps + 1]].n <= FANOUT) {
      lh2 = h;
      rh2 = par.val[ps + 1];
      rslot = ps + 1;
    } else {
      break;
    }
    RangeNode& a = pool[lh2];
    RangeNode& b = pool[rh2];
    for (u32 i = 0; i < b.n; ++i) {
      a.key[a.n + i] = b.key[i];
      a.val[a.n + i] = b.val[i];
    }
    a.n += b.n;
    if (a.leaf) {
      a.next = b.next;
      if (b.next != 0) pool[b.next].prev = lh2;
    }
    FreeNode(pool, rh2);
    for (u32 i = rslot + 1; i < par.n; ++i) {
      par.key[i - 1] = par.key[i];
      par.val[i - 1] = par.val[i];
    }
    --par.n;
    par.key[par.n] = kNoKey;
    h = ph;
    --d;
  }
  // A root inner node with a single child gives way to that child.
  while (height_ > 0 && pool[root_].n == 1) {
    const u32 c = pool[root_].val[0];
    FreeNode(pool, root_);
    root_ = c;
    --height_;
  }
  return true;
}

void RangeTree::Replace(NodePool& pool, u64 oldStart, u64 start, u64 end, u32 val) {
  ++edits_;
  const PathStep* path;
  const u32 lh = Descend(pool, oldStart, &path);
  RangeNode& l = pool[lh];
  const u32 le = CountLE(l.key, 0, oldStart);
  // Remove + Insert only restructure when the leaf would fall below
  // FANOUT / 4 (a merge), or when slot 0 of a leaf that has a predecessor
  // leaf goes away (the re-insert then descends into that predecessor).
  if (le > 0 && l.key[le - 1] == oldStart &&
      (height_ == 0 || (l.n > FANOUT / 4 && (le > 1 || l.prev == 0)))) {
    const u32 j = le - 1;
    l.key[j] = start;
    l.val[j] = val;
    if (j == 0 && start != oldStart && height_ > 0) {
      FixKeys(pool, path, static_cast<int>(height_) - 1, start);
    }
    return;
  }
  Remove(pool, oldStart);
  Insert(pool, start, end, val);
}

bool RangeTree::PrepareRun(const NodePool& pool, RangeCursor first, RangeRun* run) const {
  const RangeNode& l = pool[first.leaf];
  const u32 j = first.slot;
  const u32 count = run->count;
  run->leaf = first.leaf;
  run->slot = j;
  run->nextInLeaf = 0;
  run->midInLeaf = 0;
  if (count == 0 || j + count > l.n) return false;  // the run goes on in the next leaf
  if (run->insertNext && (count != 1 || !run->keepFirst || run->keepLast)) return false;
  const u32 removed = count - run->keepFirst - run->keepLast;
  const u32 n0 = l.n;
  if (height_ > 0) {
    // A Remove restructures when the leaf falls below FANOUT / 4; a Replace
    // is in place only under its own condition (see Replace), evaluated
    // with the leaf as it is at that step.
    if (n0 - removed < FANOUT / 4) return false;
    if (run->keepFirst && !(n0 > FANOUT / 4 && (j > 0 || l.prev == 0))) return false;
    if (run->keepLast &&
        !(n0 - removed > FANOUT / 4 && (j + run->keepFirst > 0 || l.prev == 0))) {
      return false;
    }
  }
  // The inserts descend into this leaf (its smallest key stays below them,
  // or it is the first leaf) and go right after the kept first entry.
  const bool lands = height_ == 0 || j > 0 || run->keepFirst || l.prev == 0;
  u32 n = n0 - removed;
  if (run->insertNext) {
    if (n + 1 > FANOUT) return true;  // Insert splits: both inserts stay calls
    run->nextInLeaf = 1;
    ++n;
  }
  if (run->insertMid && lands && n + 1 <= FANOUT) run->midInLeaf = 1;
  return true;
}

void RangeTree::CommitRun(NodePool& pool, const RangeRun& run, u32 firstVal, u64 lastStart,
                          u32 lastVal, u64 midStart, u32 midVal) {
  ++edits_;
  RangeNode& l = pool[run.leaf];
  const u32 j = run.slot;
  const u32 n0 = l.n;
  const u64 oldMin = l.key[0];
  const u32 from = j + run.count;  // first entry after the run
  const u32 placed = run.keepFirst + run.midInLeaf + (run.keepLast | run.nextInLeaf);
  const u32 n = n0 - run.count + placed;
  // Move the tail into place first (it may move either way).
  const u32 to = j + placed;
  if (to < from) {
    for (u32 i = from; i < n0; ++i) {
      l.key[i - from + to] = l.key[i];
      l.val[i - from + to] = l.val[i];
    }
    for (u32 i = n; i < n0; ++i) l.key[i] = kNoKey;
  } else if (to > from) {
    for (u32 i = n0; i-- > from;) {
      l.key[i - from + to] = l.key[i];
      l.val[i - from + to] = l.val[i];
    }
  }
  u32 w = j;
  if (run.keepFirst) {
    l.val[w] = firstVal;
    ++w;
  }
  if (run.midInLeaf) {
    l.key[w] = midStart;
    l.val[w] = midVal;
    ++w;
  }
  if (run.keepLast || run.nextInLeaf) {
    l.key[w] = lastStart;
    l.val[w] = lastVal;
  }
  l.n = n;
  count_ = count_ - n0 + n;
  // Each Remove/Replace/Insert at slot 0 refreshed the separators; the last
  // one leaves them at the leaf's final smallest key.
  if (j == 0 && height_ > 0 && l.key[0] != oldMin) {
    const PathStep* path;
    Descend(pool, l.key[0], &path);
    FixKeys(pool, path, static_cast<int>(height_) - 1, l.key[0]);
  }
}

RangeCursor RangeTree::Find(const NodePool& pool, u64 start) const {
  const PathStep* path;
  const u32 lh = Descend(pool, start, &path);
  const RangeNode& l = pool[lh];
  const u32 le = CountLE(l.key, 0, start);
  if (le > 0 && l.key[le - 1] == start) return {lh, le - 1};
  return {0, 0};
}

RangeCursor RangeTree::Containing(const NodePool& pool, u64 addr) const {
  const PathStep* path;
  const u64 x = Probe(addr);
  const u32 lh = Descend(pool, x, &path);
  const RangeNode& l = pool[lh];
  const u32 le = CountLE(l.key, 0, x);
  if (le > 0) ends_.PrefetchTail(l.val[le - 1]);
  if (le > 0 && ends_.At(l.val[le - 1]) > addr) return {lh, le - 1};
  return {0, 0};
}

RangeCursor RangeTree::LowestOverlapping(const NodePool& pool, u64 addr, u64 last) const {
  const PathStep* path;
  const u64 x = Probe(addr);
  const u32 lh = Descend(pool, x, &path);
  const RangeNode& l = pool[lh];
  const u32 le = CountLE(l.key, 0, x);
  RangeCursor c{lh, 0};
  if (le > 0) {
    ends_.PrefetchTail(l.val[le - 1]);
    if (ends_.At(l.val[le - 1]) > addr) return {lh, le - 1};
    c.slot = le - 1;
    if (!Next(pool, c)) return {0, 0};
  } else if (l.n == 0) {
    return {0, 0};  // empty tree
  }
  if (pool[c.leaf].key[c.slot] <= last) return c;
  return {0, 0};
}

void RangeTree::LowestOverlappingMany(const NodePool& pool, const u64* addr, const u64* last, u32 n,
                                      RangeCursor* out) const {
  u32 h[LOOKUP_GROUP];
  u64 x[LOOKUP_GROUP];
  u32 le[LOOKUP_GROUP];
  for (u32 q = 0; q < n; ++q) {
    h[q] = root_;
    x[q] = Probe(addr[q]);
  }
  // The descent of Descend without its finger (random lookups rarely hit it).
  for (u32 d = 0; d < height_; ++d) {
    for (u32 q = 0; q < n; ++q) {
      const RangeNode& nd = pool[h[q]];
      h[q] = nd.val[CountLE(nd.key, 1, x[q])];
      PrefetchNode(pool[h[q]]);
    }
  }
  for (u32 q = 0; q < n; ++q) {
    const RangeNode& l = pool[h[q]];
    le[q] = CountLE(l.key, 0, x[q]);
    if (le[q] > 0) ends_.PrefetchRecord(l.val[le[q] - 1]);
  }
  // Then each answer as LowestOverlapping gives it.
  for (u32 q = 0; q < n; ++q) {
    const RangeNode& l = pool[h[q]];
    RangeCursor c{h[q], 0};
    out[q] = {0, 0};
    if (le[q] > 0) {
      if (ends_.At(l.val[le[q] - 1]) > addr[q]) {
        out[q] = {h[q], le[q] - 1};
        continue;
      }
      c.slot = le[q] - 1;
      if (!Next(pool, c)) continue;
    } else if (l.n == 0) {
      continue;
    }
    if (pool[c.leaf].key[c.slot] <= last[q]) out[q] = c;
  }
}

RangeCursor RangeTree::First(const NodePool& pool) const {
  u32 h = root_;
  for (u32 d = 0; d < height_; ++d) h = pool[h].val[0];
  if (pool[h].n == 0) return {0, 0};
  return {h, 0};
}

}  // namespace gpuvm
