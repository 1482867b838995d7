// B+tree of disjoint half-open u64 ranges [start, end) with u32 values
// (maple-tree style: wide nodes, keys are range starts). It knows nothing of
// mappings, so GpuVm uses it for VAs and SVM can reuse it for notifiers and
// ranges. Nodes live in a NodePool shared by all trees of the engine.
//
// Leaves hold no ends: the value of an entry names a record of its owner
// (a mapping, a span map's side record) that carries the entry's end, and
// the tree reads it through an EndSource. That keeps a node at 208 bytes.
//
// Shape rules (the WASM twin follows them step for step, so node counts agree):
// - an inner key is always the exact smallest start in that child's subtree
//   (refreshed upward whenever a slot 0 changes);
// - descent: at an inner node take the last child whose key <= x, else child 0;
// - insert into a full leaf under a parent: look for the nearest sibling with
//   room under the same parent (slot - 1, slot + 1, slot - 2, slot + 2, ...);
//   if there is one, the entries between them shift by one towards it (the
//   leaf's lowest entry leftwards, or its highest, the new one included,
//   rightwards), each passing leaf's separator follows its new key[0], and
//   the new entry lands in the leaf; nothing is allocated. Random inserts
//   then fill leaves above 90% instead of about 70%;
// - otherwise (a full root leaf, siblings full, any full inner node): keep
//   entries [0, 8) left, move [8, 16) to a new right sibling, then put the
//   new entry left if its position <= 8, else right at position - 8; the
//   separator is the right node's key[0]; a full root splits and the tree
//   grows one level;
// - remove: an emptied node is unlinked from its parent; a node left with
//   fewer than FANOUT / 4 entries merges into its left sibling (same parent)
//   when both fit in one node, else absorbs its right sibling when both fit;
//   the right one of the pair is freed; this repeats upward; a root inner
//   node with one child collapses.
#pragma once

#include "io.h"
#include "pool.h"

#include <cstring>

namespace gpuvm {

constexpr u32 FANOUT = 16;
constexpr u32 TREE_MAX_DEPTH = 16;
constexpr u32 LOOKUP_GROUP = 16;  // lookups LowestOverlappingMany runs side by side

// 208 bytes, unpadded (a descent reads the keys, then one child handle).
struct RangeNode {
  u64 key[FANOUT];  // leaf: range start; inner: smallest start in child's subtree;
                    // unused slots hold ~0 so scans can run over all FANOUT keys
  u32 val[FANOUT];  // leaf: value (its record holds the end); inner: child node handle
  u32 n;            // entries in use
  u32 leaf;         // 1 for a leaf
  u32 next;         // leaf chain (ascending), 0 at the ends
  u32 prev;
};

using NodePool = Pool<RangeNode>;

// Where an entry's exclusive end lives: the u64 at byte `off` of record
// `val` in its owner's record pool. Pools move when they grow, so this keeps
// the address of the pool's base pointer, never the base itself.
struct EndSource {
  const unsigned char* const* base = nullptr;
  u32 stride = 0;
  u32 off = 0;
  GPUVM_INLINE u64 At(u32 val) const {
    u64 e;
    std::memcpy(&e, *base + static_cast<size_t>(val) * stride + off, sizeof e);
    return e;
  }
  // Records are not line aligned: before reading the end, start loading the
  // record's last line too (its owner reads the rest next).
  GPUVM_INLINE void PrefetchTail(u32 val) const {
    GPUVM_PREFETCH(*base + static_cast<size_t>(val) * stride + stride - 1);
  }
  // Both lines of a record.
  GPUVM_INLINE void PrefetchRecord(u32 val) const {
    GPUVM_PREFETCH(*base + static_cast<size_t>(val) * stride);
    PrefetchTail(val);
  }
};

// A position in a tree: a leaf and a slot in it; leaf 0 means "none".
struct RangeCursor {
  u32 leaf;
  u32 slot;
};

// A split/merge step's edit of a run of consecutive entries (see
// RangeTree::PrepareRun): the first entry stays shortened (keepFirst) or
// goes, the last stays with a later start (keepLast) or goes, those between
// go; then, optionally, a piece cut off the end of a single entry
// (insertNext) and a new entry (insertMid, between the two) are inserted.
struct RangeRun {
  u32 leaf;
  u32 slot;  // slot of the run's first entry
  u32 count;
  u32 keepFirst;
  u32 keepLast;
  u32 insertNext;  // only with count 1 and keepFirst
  u32 insertMid;
  u32 nextInLeaf;  // CommitRun places the next piece itself
  u32 midInLeaf;   // CommitRun places the new entry itself
};

class RangeTree {
 public:
  // New empty tree (an empty root leaf) whose entries end where `ends`
  // says. Needs one node (caller Ensure()s).
  void Init(NodePool& pool, EndSource ends);
  // Frees every node.
  void Destroy(NodePool& pool);

  // Inserts [start, end) -> val (val's record already holds end). Returns 0
  // or -EEXIST when it would overlap an entry. Needs up to height + 2 free
  // nodes (caller Ensure()s or reserved).
  int Insert(NodePool& pool, u64 start, u64 end, u32 val);
  // Removes the entry starting exactly at start. Returns false if none.
  bool Remove(NodePool& pool, u64 start);
  // Exactly Remove(oldStart) then Insert(start, end, val), for a new range
  // inside the old one (a REMAP piece), with the same resulting shape; done
  // in place when the removal would not restructure the tree.
  void Replace(NodePool& pool, u64 oldStart, u64 start, u64 end, u32 val);

  // The tree edit of one split/merge step, as a sequence of calls:
  // Replace(first) or Remove(first), Remove(between...), Replace(last) or
  // Remove(last), then Insert(next piece), Insert(new entry). PrepareRun
  // (given the run's first entry, untouched since it was found) says
  // whether the replaces and removes can be one leaf edit that leaves the
  // tree exactly as the calls would, and which inserts then land in that
  // leaf at a known slot without a split. CommitRun does that edit; the
  // caller makes the remaining Insert calls (next piece first). Nothing may
  // touch the tree between the two.
  bool PrepareRun(const NodePool& pool, RangeCursor first, RangeRun* run) const;
  // The values' records already hold their ends.
  void CommitRun(NodePool& pool, const RangeRun& run, u32 firstVal, u64 lastStart, u32 lastVal,
                 u64 midStart, u32 midVal);

  // The entry starting exactly at start.
  RangeCursor Find(const NodePool& pool, u64 start) const;
  // The entry containing addr.
  RangeCursor Containing(const NodePool& pool, u64 addr) const;
  // The lowest entry overlapping [addr, last] (last inclusive).
  RangeCursor LowestOverlapping(const NodePool& pool, u64 addr, u64 last) const;
  // LowestOverlapping(addr[q], last[q]) for q < n (n <= LOOKUP_GROUP) into
  // out[q]. The n descents advance level by level together, so their cache
  // misses overlap instead of queuing one lookup behind the other.
  void LowestOverlappingMany(const NodePool& pool, const u64* addr, const u64* last, u32 n,
                             RangeCursor* out) const;
  // The first entry (lowest start).
  RangeCursor First(const NodePool& pool) const;
  // Steps to the following entry along the leaf chain; false at the end.
  static bool Next(const NodePool& pool, RangeCursor& c) {
    const RangeNode& l = pool[c.leaf];
    if (c.slot + 1 < l.n) {
      ++c.slot;
      return true;
    }
    for (u32 nx = l.next; nx != 0; nx = pool[nx].next) {
      if (pool[nx].n != 0) {
        c.leaf = nx;
        c.slot = 0;
        return true;
      }
    }
    c.leaf = 0;
    return false;
  }

  u32 Count() const { return count_; }
  // Counts edits (inserts, removes, replaces, runs): a position found in the
  // tree stays valid while this is unchanged.
  u32 Edits() const { return edits_; }
  u32 Height() const { return height_; }
  u32 Nodes() const { return nodes_; }
  // The end of the entry at c.
  u64 EndAt(const NodePool& pool, RangeCursor c) const { return ends_.At(pool[c.leaf].val[c.slot]); }
  // Free nodes an insert may need at most (Ensure/Reserve this many).
  u32 InsertNeed() const { return height_ + 2; }

 private:
  struct PathStep {
    u32 node;
    u32 slot;
  };
  // Descends to the leaf for x. Returns the leaf; *path gets the path
  // (node, slot per inner level), valid until the next descent.
  u32 Descend(const NodePool& pool, u64 x, const PathStep** path) const;
  void FixKeys(NodePool& pool, const PathStep* path, int depth, u64 key);
  // Insert into a full leaf lh at position p by shifting into a sibling
  // with room (see the shape rules). False when there is none.
  bool ShiftInsert(NodePool& pool, u32 lh, u32 p, u64 start, u32 val, const PathStep* path);
  u32 NewNode(NodePool& pool, bool leaf);
  void FreeNode(NodePool& pool, u32 h);
  void FreeSubtree(NodePool& pool, u32 h);

  // The last descent (a finger): consecutive operations of one request
  // touch the same leaf. While no node was allocated or freed (epoch_), the
  // path to a leaf stays the same, and separators are exact subtree minima,
  // so the descent for x ends at the cached leaf L exactly when
  // (L.key[0] <= x or L is the first leaf) and (L is the last leaf or the
  // next leaf's key[0] > x).
  mutable PathStep cache_[TREE_MAX_DEPTH] = {};
  mutable u32 cacheLeaf_ = 0;
  mutable u32 cacheEpoch_ = 0;
  EndSource ends_;
  u32 epoch_ = 1;
  u32 edits_ = 0;
  u32 root_ = 0;
  u32 height_ = 0;  // 0: the root is a leaf
  u32 count_ = 0;   // entries
  u32 nodes_ = 0;   // nodes in use by this tree
};

}  // namespace gpuvm
