// B+tree of disjoint half-open u64 ranges [start, end) with u32 values (twin
// of native/range_tree.h/.cc; maple-tree style: wide nodes, keys are range
// starts). It knows nothing of mappings, so gpuvm uses it for VAs and SVM can
// reuse it for notifiers and ranges. Nodes live in one engine-global pool.
//
// Leaves hold no ends: the value of an entry names a record of its owner
// (a mapping, a span map's side record) that carries the entry's end, read
// through the owner's pool and a byte offset the tree is given at init.
//
// Shape rules (shared with native so node counts agree):
// - descent: at an inner node take the last child whose key <= x, else child 0;
// - insert into a full leaf under a parent: look for the nearest sibling with
//   room under the same parent (slot - 1, slot + 1, slot - 2, slot + 2, ...);
//   if there is one, the entries between them shift by one towards it (the
//   leaf's lowest entry leftwards, or its highest, the new one included,
//   rightwards), each passing leaf's separator follows its new key[0], and
//   the new entry lands in the leaf; nothing is allocated (random inserts
//   then fill leaves above 90% instead of about 70%);
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
//
// Node layout (bytes; native's RangeNode, 208 bytes, unpadded):
//   0 key[16] u64 (leaf: range start; inner: smallest start in child's
//     subtree; unused slots hold ~0 so scans can run over all 16 keys)
//   128 val[16] u32 (leaf: value, whose record holds the end; inner: child)
//   192 n | 196 leaf | 200 next | 204 prev (leaf chain, 0 at the ends)

import { Pool, initPool } from "./pool";
import { EEXIST } from "./io";

export const FANOUT: u32 = 16;
export const TREE_MAX_DEPTH: u32 = 16;
/** Lookups lowestOverlappingMany runs side by side. */
export const LOOKUP_GROUP: u32 = 16;
export const NODE_BYTES: u32 = 208;

const KEY: usize = 0;
const VAL: usize = 128;
const N: usize = 192;
const LEAF: usize = 196;
const NEXT: usize = 200;
const PREV: usize = 204;

const NO_KEY: u64 = 0xffffffffffffffff;
const SIGN: u64 = 0x8000000000000000;

/** Engine-global node pool, shared by every tree. */
export const nodes = initPool(changetype<Pool>(memory.data(<i32>offsetof<Pool>(), 8)), NODE_BYTES, 256, 64);

// ---- raw node access (hot: kept inline) ----
@inline export function nodeAt(h: u32): usize {
  return nodes.base + <usize>h * <usize>NODE_BYTES;
}
@inline export function nKey(p: usize, i: u32): u64 {
  return load<u64>(p + KEY + (<usize>i << 3));
}
@inline function setKey(p: usize, i: u32, v: u64): void {
  store<u64>(p + KEY + (<usize>i << 3), v);
}
@inline export function nVal(p: usize, i: u32): u32 {
  return load<u32>(p + VAL + (<usize>i << 2));
}
@inline function setVal(p: usize, i: u32, v: u32): void {
  store<u32>(p + VAL + (<usize>i << 2), v);
}
@inline export function nN(p: usize): u32 {
  return load<u32>(p + N);
}
@inline function setN(p: usize, v: u32): void {
  store<u32>(p + N, v);
}
@inline function nLeaf(p: usize): u32 {
  return load<u32>(p + LEAF);
}
@inline export function nNext(p: usize): u32 {
  return load<u32>(p + NEXT);
}
@inline function setNext(p: usize, v: u32): void {
  store<u32>(p + NEXT, v);
}
@inline function nPrev(p: usize): u32 {
  return load<u32>(p + PREV);
}
@inline function setPrev(p: usize, v: u32): void {
  store<u32>(p + PREV, v);
}

/**
 * Ranges end at most at 2^64 - 1 (exclusive), so no entry starts at ~0:
 * probing with min(x, ~0 - 1) finds the same entries and never counts the
 * NO_KEY slots, so scans do not need the entry count.
 */
@inline function probe(x: u64): u64 {
  return x == NO_KEY ? NO_KEY - 1 : x;
}

/** Lanes (keys i, i+1) of node p that are <= x (x sign-flipped): -1 each. */
@inline function le2(p: usize, i: u32, xs: v128, sign: v128): v128 {
  return i64x2.le_s(v128.xor(v128.load(p + KEY + (<usize>i << 3)), sign), xs);
}

/**
 * Number of keys in key[from, FANOUT) that are <= x (x a probe()); keys are
 * sorted, so this is an index. Fixed width like native's CountLE, two keys per
 * SIMD compare (unsigned order via the sign-flip trick). from is 0 or 1.
 */
@inline function countLE(p: usize, from: u32, x: u64): u32 {
  const sign = i64x2.splat(<i64>SIGN);
  const xs = i64x2.splat(<i64>(x ^ SIGN));
  // summed as a tree, so the adds wait on each other three deep, not eight
  const a = i64x2.add(le2(p, 0, xs, sign), le2(p, 2, xs, sign));
  const b = i64x2.add(le2(p, 4, xs, sign), le2(p, 6, xs, sign));
  const c2 = i64x2.add(le2(p, 8, xs, sign), le2(p, 10, xs, sign));
  const d = i64x2.add(le2(p, 12, xs, sign), le2(p, 14, xs, sign));
  const acc = i64x2.add(i64x2.add(a, b), i64x2.add(c2, d));
  let c = <u32>(-(i64x2.extract_lane(acc, 0) + i64x2.extract_lane(acc, 1)));
  if (from != 0) c -= <u32>(nKey(p, 0) <= x);
  return c;
}

/**
 * WASM has no prefetch: loads whose values only reach this sink start the
 * cache misses early without holding up the code that follows.
 */
let prefetchSink: u32 = 0;

/**
 * A descent scans a node's keys, then reads one value (a child or an entry's
 * record) that the scan picks: loading the value lines together with the
 * keys saves a serial cache miss per node out of cache (native's
 * PrefetchNode). Nodes are 16-byte aligned and 208 bytes: four lines.
 */
@inline function prefetchNode(p: usize): void {
  prefetchSink ^= load<u8>(p + 64) ^ load<u8>(p + 128) ^ load<u8>(p + 192);
}

@inline function clearKeys(p: usize, from: u32): void {
  for (let i = from; i < FANOUT; ++i) setKey(p, i, NO_KEY);
}

/** Entry (key, val) i of node s to slot j of node d. */
@inline function copyEntry(d: usize, j: u32, s: usize, i: u32): void {
  setKey(d, j, nKey(s, i));
  setVal(d, j, nVal(s, i));
}

/**
 * Opens slot p of node d with room (entries from p on move up one) and puts
 * (key, val) there. Leaves and inner nodes hold the same (key, val) pairs.
 */
@inline function putAt(d: usize, p: u32, key: u64, val: u32): void {
  const n = nN(d);
  for (let i = n; i > p; --i) copyEntry(d, i, d, i - 1);
  setKey(d, p, key);
  setVal(d, p, val);
  setN(d, n + 1);
}

/**
 * A position in a tree: a leaf and a slot in it; leaf 0 means "none".
 * Lookups return the engine's one cursor (lookups never nest).
 */
@unmanaged export class RangeCursor {
  leaf: u32 = 0;
  slot: u32 = 0;

  @inline key(): u64 {
    return nKey(nodeAt(this.leaf), this.slot);
  }
  @inline val(): u32 {
    return nVal(nodeAt(this.leaf), this.slot);
  }
  @inline set(leaf: u32, slot: u32): RangeCursor {
    this.leaf = leaf;
    this.slot = slot;
    return this;
  }
}

export const cursor = changetype<RangeCursor>(memory.data(<i32>offsetof<RangeCursor>(), 4));

// lowestOverlappingMany scratch: per lookup the node it is at (u32), its
// probe (u64) and its leaf's count of keys <= probe (u32).
const manyNode = memory.data(<i32>(LOOKUP_GROUP * 4), 4);
const manyProbe = memory.data(<i32>(LOOKUP_GROUP * 8), 8);
const manyLe = memory.data(<i32>(LOOKUP_GROUP * 4), 4);

/** Steps to the following entry along the leaf chain; false (and leaf 0) at the end. */
export function cursorNext(c: RangeCursor): bool {
  const l = nodeAt(c.leaf);
  if (c.slot + 1 < nN(l)) {
    ++c.slot;
    return true;
  }
  for (let nx = nNext(l); nx != 0; nx = nNext(nodeAt(nx))) {
    if (nN(nodeAt(nx)) != 0) {
      c.leaf = nx;
      c.slot = 0;
      return true;
    }
  }
  c.leaf = 0;
  return false;
}

/**
 * A split/merge step's edit of a run of consecutive entries (see
 * RangeTree.prepareRun): the first entry stays shortened (keepFirst) or
 * goes, the last stays with a later start (keepLast) or goes, those between
 * go; then, optionally, a piece cut off the end of a single entry
 * (insertNext) and a new entry (insertMid, between the two) are inserted.
 */
@unmanaged export class RangeRun {
  leaf: u32 = 0;
  slot: u32 = 0; // slot of the run's first entry
  count: u32 = 0;
  keepFirst: u32 = 0;
  keepLast: u32 = 0;
  insertNext: u32 = 0; // only with count 1 and keepFirst
  insertMid: u32 = 0;
  nextInLeaf: u32 = 0; // commitRun places the next piece itself
  midInLeaf: u32 = 0; // commitRun places the new entry itself
}

/** Bytes a RangeTree takes where it is embedded: its fields, then the path cache. */
export const RANGE_TREE_BYTES: u32 = 40 + TREE_MAX_DEPTH * 8;
const CACHE: usize = 40;

/**
 * The tree. It lives embedded in its owner's record (RANGE_TREE_BYTES): the
 * fields below, then the path cache of the last descent, TREE_MAX_DEPTH
 * (node, slot) pairs.
 */
@unmanaged export class RangeTree {
  root: u32 = 0;
  /** 0: the root is a leaf */
  height: u32 = 0;
  /** entries */
  count: u32 = 0;
  /** nodes in use by this tree */
  nodeCount: u32 = 0;
  // The last descent (a finger): consecutive operations of one request
  // touch the same leaf. While no node was allocated or freed (epoch), the
  // path to a leaf stays the same, and separators are exact subtree minima,
  // so the descent for x ends at the cached leaf L exactly when
  // (L.key[0] <= x or L is the first leaf) and (L is the last leaf or the
  // next leaf's key[0] > x).
  cacheLeaf: u32 = 0;
  cacheEpoch: u32 = 0;
  epoch: u32 = 0;
  /** where entries end: the u64 at byte endOff of record val in the Pool at endPool */
  endPool: usize = 0;
  endOff: u32 = 0;
  /** counts edits (inserts, removes, replaces, runs): a position found in the tree stays valid while this is unchanged */
  edits: u32 = 0;

  /** The end of the entry whose value is val (the pool's base is read each time: pools move as they grow). */
  @inline endOf(val: u32): u64 {
    const pool = changetype<Pool>(this.endPool);
    return load<u64>(pool.base + <usize>val * <usize>pool.stride + <usize>this.endOff);
  }
  /** Both lines of a record. */
  @inline private prefetchRecord(val: u32): void {
    const pool = changetype<Pool>(this.endPool);
    const r = pool.base + <usize>val * <usize>pool.stride;
    prefetchSink ^= load<u8>(r) ^ load<u8>(r + <usize>pool.stride - 1);
  }
  /** Records are not line aligned: before reading the end, start loading the record's last line too (its owner reads the rest next). */
  @inline private prefetchTail(val: u32): void {
    const pool = changetype<Pool>(this.endPool);
    prefetchSink ^= load<u8>(pool.base + <usize>val * <usize>pool.stride + <usize>pool.stride - 1);
  }
  /** The end of the entry at c. */
  @inline endAt(c: RangeCursor): u64 {
    return this.endOf(nVal(nodeAt(c.leaf), c.slot));
  }

  @inline private pathNode(d: u32): u32 {
    return load<u32>(changetype<usize>(this) + CACHE + (<usize>d << 3));
  }
  @inline private pathSlot(d: u32): u32 {
    return load<u32>(changetype<usize>(this) + CACHE + (<usize>d << 3), 4);
  }

  private newNode(leaf: bool): u32 {
    const h = nodes.alloc();
    const p = nodeAt(h);
    setN(p, 0);
    store<u32>(p + LEAF, leaf ? 1 : 0);
    setNext(p, 0);
    setPrev(p, 0);
    clearKeys(p, 0);
    ++this.nodeCount;
    ++this.epoch;
    return h;
  }

  @inline private freeNode(h: u32): void {
    nodes.free(h);
    --this.nodeCount;
    ++this.epoch;
  }

  /** New empty tree (an empty root leaf) whose entries end at byte endOff of their records in `ends`. Needs one node (caller ensures). */
  init(ends: Pool, endOff: u32): void {
    this.endPool = changetype<usize>(ends);
    this.endOff = endOff;
    this.nodeCount = 0;
    this.root = this.newNode(true);
    this.height = 0;
    this.count = 0;
  }

  private freeSubtree(h: u32): void {
    if (nLeaf(nodeAt(h)) == 0) {
      for (let i: u32 = 0; i < nN(nodeAt(h)); ++i) this.freeSubtree(nVal(nodeAt(h), i));
    }
    this.freeNode(h);
  }

  /** Frees every node. */
  destroy(): void {
    if (this.root != 0) this.freeSubtree(this.root);
    this.root = 0;
    this.height = 0;
    this.count = 0;
  }

  /** Free nodes an insert may need at most (ensure/reserve this many). */
  @inline insertNeed(): u32 {
    return this.height + 2;
  }

  /** Descends to the leaf for x; the path (node, slot per inner level) is in the cache. */
  private descend(x: u64): u32 {
    const cache = changetype<usize>(this) + CACHE;
    if (this.cacheEpoch == this.epoch) {
      const lh = this.cacheLeaf;
      const l = nodeAt(lh);
      const aboveStart = nKey(l, 0) <= x || nPrev(l) == 0;
      const belowNext = nNext(l) == 0 || nKey(nodeAt(nNext(l)), 0) > x;
      if (aboveStart && belowNext) return lh;
      // A neighbour leaf under the same parent: the same path, last slot +- 1.
      if (this.height > 0) {
        const last = cache + (<usize>(this.height - 1) << 3);
        const lastSlot = load<u32>(last, 4);
        const par = nodeAt(load<u32>(last));
        if (!belowNext && lastSlot + 1 < nN(par) && nVal(par, lastSlot + 1) == nNext(l)) {
          const nx = nodeAt(nNext(l));
          if (nNext(nx) == 0 || nKey(nodeAt(nNext(nx)), 0) > x) {
            store<u32>(last, lastSlot + 1, 4);
            this.cacheLeaf = nNext(l);
            return this.cacheLeaf;
          }
        } else if (!aboveStart && lastSlot > 0 && nVal(par, lastSlot - 1) == nPrev(l)) {
          const pv = nodeAt(nPrev(l));
          if (nKey(pv, 0) <= x || nPrev(pv) == 0) {
            store<u32>(last, lastSlot - 1, 4);
            this.cacheLeaf = nPrev(l);
            return this.cacheLeaf;
          }
        }
      }
    }
    let h = this.root;
    for (let d: u32 = 0; d < this.height; ++d) {
      const p = nodeAt(h);
      const i = countLE(p, 1, x);
      store<u32>(cache + (<usize>d << 3), h);
      store<u32>(cache + (<usize>d << 3), i, 4);
      h = nVal(p, i);
      prefetchNode(nodeAt(h));
    }
    this.cacheLeaf = h;
    this.cacheEpoch = this.epoch;
    return h;
  }

  /** The node at path depth `depth` + 1 got a new smallest key: refresh separators while it is a first child. */
  private fixKeys(depth: i32, key: u64): void {
    for (let d = depth; d >= 0; --d) {
      const s = this.pathSlot(<u32>d);
      setKey(nodeAt(this.pathNode(<u32>d)), s, key);
      if (s != 0) break;
    }
  }

  /**
   * Insert into the full leaf lh at position p by shifting into a sibling
   * with room (see the shape rules). False when there is none.
   */
  private shiftInsert(lh: u32, p: u32, start: u64, val: u32): bool {
    const d0 = this.height - 1;
    const par = nodeAt(this.pathNode(d0));
    const s = this.pathSlot(d0);
    const pn = nN(par);
    // The nearest sibling with room under the parent, left first at equal distance.
    let j = s;
    for (let d: u32 = 1; d < FANOUT && j == s; ++d) {
      if (s >= d && nN(nodeAt(nVal(par, s - d))) < FANOUT) {
        j = s - d;
      } else if (s + d < pn && nN(nodeAt(nVal(par, s + d))) < FANOUT) {
        j = s + d;
      }
    }
    if (j == s) return false;
    const l = nodeAt(lh);
    if (j < s) {
      // Each leaf from j + 1 to s hands its lowest entry to its left
      // neighbour. The leaf is not the first one (it has a left sibling),
      // so the new entry sorts after its lowest: p >= 1.
      for (let t = j + 1; t <= s; ++t) {
        const a = nodeAt(nVal(par, t - 1));
        const b = nodeAt(nVal(par, t));
        const an = nN(a);
        const bn = nN(b);
        copyEntry(a, an, b, 0);
        setN(a, an + 1);
        for (let i: u32 = 1; i < bn; ++i) copyEntry(b, i - 1, b, i);
        setN(b, bn - 1);
        setKey(b, bn - 1, NO_KEY);
        if (t != s) setKey(par, t, nKey(b, 0));
      }
      putAt(l, p - 1, start, val);
      setKey(par, s, nKey(l, 0));
      return true;
    }
    // Each leaf from j - 1 down to s hands its highest entry to its right
    // neighbour; for the leaf, the highest of its entries and the new one.
    for (let t = j; t > s; --t) {
      const a = nodeAt(nVal(par, t - 1));
      const b = nodeAt(nVal(par, t));
      if (t - 1 == s && p == FANOUT) {
        putAt(b, 0, start, val);
      } else {
        const an = nN(a) - 1;
        setN(a, an);
        putAt(b, 0, nKey(a, an), nVal(a, an));
        setKey(a, an, NO_KEY);
      }
      setKey(par, t, nKey(b, 0));
    }
    if (p < FANOUT) {
      putAt(l, p, start, val);
      if (p == 0) this.fixKeys(<i32>this.height - 1, start);
    }
    return true;
  }

  /**
   * Inserts [start, end) -> val (val's record already holds end). -> 0, or
   * -EEXIST when it would overlap an entry. Needs up to insertNeed() free
   * nodes (caller ensures or reserved).
   */
  insert(start: u64, end: u64, val: u32): i32 {
    ++this.edits;
    const lh = this.descend(start);
    let l = nodeAt(lh);
    const ln = nN(l);
    const le = countLE(l, 0, start); // entries starting <= start
    // Overlap with the predecessor (greatest start <= start) or the successor.
    if (le > 0) {
      if (this.endOf(nVal(l, le - 1)) > start) return -EEXIST;
    } else if (nPrev(l) != 0) {
      const pv = nodeAt(nPrev(l));
      const pn = nN(pv);
      if (pn != 0 && this.endOf(nVal(pv, pn - 1)) > start) return -EEXIST;
    }
    if (le < ln) {
      if (nKey(l, le) < end) return -EEXIST;
    } else if (nNext(l) != 0) {
      const nx = nodeAt(nNext(l));
      if (nN(nx) != 0 && nKey(nx, 0) < end) return -EEXIST;
    }
    const p = le;
    ++this.count;

    if (ln < FANOUT) {
      putAt(l, p, start, val);
      if (p == 0 && this.height > 0) this.fixKeys(<i32>this.height - 1, start);
      return 0;
    }
    if (this.height > 0 && this.shiftInsert(lh, p, start, val)) return 0;

    // Split the full leaf: [0, 8) stays, [8, 16) moves right, then the entry.
    const half = FANOUT / 2;
    const rh = this.newNode(true);
    l = nodeAt(lh);
    const r = nodeAt(rh);
    for (let i = half; i < FANOUT; ++i) copyEntry(r, i - half, l, i);
    setN(r, FANOUT - half);
    setN(l, half);
    clearKeys(l, half);
    const t = p <= half ? l : r;
    const tp = p <= half ? p : p - half;
    putAt(t, tp, start, val);
    const lnx = nNext(l);
    setNext(r, lnx);
    setPrev(r, lh);
    if (lnx != 0) setPrev(nodeAt(lnx), rh);
    setNext(l, rh);
    if (p == 0 && this.height > 0) this.fixKeys(<i32>this.height - 1, start);

    // Push the separator up, splitting full inner nodes on the way.
    let sepKey = nKey(nodeAt(rh), 0);
    let sepChild = rh;
    for (let d = <i32>this.height - 1; d >= 0; --d) {
      const ih = this.pathNode(<u32>d);
      const pos = this.pathSlot(<u32>d) + 1;
      let inn = nodeAt(ih);
      const inN = nN(inn);
      if (inN < FANOUT) {
        putAt(inn, pos, sepKey, sepChild);
        return 0;
      }
      const nh = this.newNode(false);
      inn = nodeAt(ih);
      const nr = nodeAt(nh);
      for (let i = half; i < FANOUT; ++i) copyEntry(nr, i - half, inn, i);
      setN(nr, FANOUT - half);
      setN(inn, half);
      clearKeys(inn, half);
      const ti = pos <= half ? inn : nr;
      const tpos = pos <= half ? pos : pos - half;
      putAt(ti, tpos, sepKey, sepChild);
      sepKey = nKey(nr, 0);
      sepChild = nh;
    }

    // The root split: a new root above the old one.
    const oldRoot = this.root;
    const nrh = this.newNode(false);
    const rt = nodeAt(nrh);
    setKey(rt, 0, nKey(nodeAt(oldRoot), 0));
    setVal(rt, 0, oldRoot);
    setKey(rt, 1, sepKey);
    setVal(rt, 1, sepChild);
    setN(rt, 2);
    this.root = nrh;
    ++this.height;
    return 0;
  }

  /** Removes the entry starting exactly at start. -> false if none. Never allocates. */
  remove(start: u64): bool {
    ++this.edits;
    let h = this.descend(start);
    const l = nodeAt(h);
    const ln = nN(l);
    const le = countLE(l, 0, start);
    if (le == 0 || nKey(l, le - 1) != start) return false;
    const j = le - 1;
    for (let i = j + 1; i < ln; ++i) copyEntry(l, i - 1, l, i);
    setN(l, ln - 1);
    setKey(l, ln - 1, NO_KEY);
    --this.count;

    // Walk up from the leaf: unlink empty nodes, refresh separators, merge
    // small nodes with a sibling.
    let minChanged = j == 0;
    let d = <i32>this.height; // depth of h; its parent is path[d - 1]
    while (d > 0) {
      const nd = nodeAt(h);
      const ph = this.pathNode(<u32>(d - 1));
      const ps = this.pathSlot(<u32>(d - 1));
      const par = nodeAt(ph);
      const parN = nN(par);
      if (nN(nd) == 0) {
        if (nLeaf(nd) != 0) {
          const pv = nPrev(nd);
          const nx = nNext(nd);
          if (pv != 0) setNext(nodeAt(pv), nx);
          if (nx != 0) setPrev(nodeAt(nx), pv);
        }
        this.freeNode(h);
        for (let i = ps + 1; i < parN; ++i) copyEntry(par, i - 1, par, i);
        setN(par, parN - 1);
        setKey(par, parN - 1, NO_KEY);
        minChanged = ps == 0;
        h = ph;
        --d;
        continue;
      }
      if (minChanged) {
        this.fixKeys(d - 1, nKey(nd, 0));
        minChanged = false;
      }
      const n = nN(nd);
      if (n >= FANOUT / 4) break;
      // Merge: the pair (left, right) becomes `left`; `right` is freed.
      let lh2: u32 = 0;
      let rh2: u32 = 0;
      let rslot: u32 = 0;
      if (ps > 0 && nN(nodeAt(nVal(par, ps - 1))) + n <= FANOUT) {
        lh2 = nVal(par, ps - 1);
        rh2 = h;
        rslot = ps;
      } else if (ps + 1 < parN && n + nN(nodeAt(nVal(par, ps + 1))) <= FANOUT) {
        lh2 = h;
        rh2 = nVal(par, ps + 1);
        rslot = ps + 1;
      } else {
        break;
      }
      const a = nodeAt(lh2);
      const b = nodeAt(rh2);
      const an = nN(a);
      const bn = nN(b);
      for (let i: u32 = 0; i < bn; ++i) copyEntry(a, an + i, b, i);
      setN(a, an + bn);
      if (nLeaf(a) != 0) {
        const bnx = nNext(b);
        setNext(a, bnx);
        if (bnx != 0) setPrev(nodeAt(bnx), lh2);
      }
      this.freeNode(rh2);
      for (let i = rslot + 1; i < parN; ++i) copyEntry(par, i - 1, par, i);
      setN(par, parN - 1);
      setKey(par, parN - 1, NO_KEY);
      h = ph;
      --d;
    }
    // A root inner node with a single child gives way to that child.
    while (this.height > 0 && nN(nodeAt(this.root)) == 1) {
      const c = nVal(nodeAt(this.root), 0);
      this.freeNode(this.root);
      this.root = c;
      --this.height;
    }
    return true;
  }

  /**
   * Exactly remove(oldStart) then insert(start, end, val), for a new range
   * inside the old one (a REMAP piece), with the same resulting shape; done
   * in place when the removal would not restructure the tree.
   */
  replace(oldStart: u64, start: u64, end: u64, val: u32): void {
    ++this.edits;
    const lh = this.descend(oldStart);
    const l = nodeAt(lh);
    const le = countLE(l, 0, oldStart);
    // Remove + insert only restructure when the leaf would fall below
    // FANOUT / 4 (a merge), or when slot 0 of a leaf that has a predecessor
    // leaf goes away (the re-insert then descends into that predecessor).
    if (
      le > 0 &&
      nKey(l, le - 1) == oldStart &&
      (this.height == 0 || (nN(l) > FANOUT / 4 && (le > 1 || nPrev(l) == 0)))
    ) {
      const j = le - 1;
      setKey(l, j, start);
      setVal(l, j, val);
      if (j == 0 && start != oldStart && this.height > 0) this.fixKeys(<i32>this.height - 1, start);
      return;
    }
    this.remove(oldStart);
    this.insert(start, end, val);
  }

  /**
   * The tree edit of one split/merge step, as a sequence of calls:
   * replace(first) or remove(first), remove(between...), replace(last) or
   * remove(last), then insert(next piece), insert(new entry). prepareRun
   * (given the run's first entry, untouched since it was found) says
   * whether the replaces and removes can be one leaf edit that leaves the
   * tree exactly as the calls would, and which inserts then land in that
   * leaf at a known slot without a split. commitRun does that edit; the
   * caller makes the remaining insert calls (next piece first). Nothing may
   * touch the tree between the two.
   */
  prepareRun(firstLeaf: u32, firstSlot: u32, run: RangeRun): bool {
    const l = nodeAt(firstLeaf);
    const j = firstSlot;
    const count = run.count;
    run.leaf = firstLeaf;
    run.slot = j;
    run.nextInLeaf = 0;
    run.midInLeaf = 0;
    const n0 = nN(l);
    if (count == 0 || j + count > n0) return false; // the run goes on in the next leaf
    if (run.insertNext != 0 && (count != 1 || run.keepFirst == 0 || run.keepLast != 0)) return false;
    const removed = count - run.keepFirst - run.keepLast;
    if (this.height > 0) {
      // A remove restructures when the leaf falls below FANOUT / 4; a replace
      // is in place only under its own condition (see replace), evaluated
      // with the leaf as it is at that step.
      if (n0 - removed < FANOUT / 4) return false;
      if (run.keepFirst != 0 && !(n0 > FANOUT / 4 && (j > 0 || nPrev(l) == 0))) return false;
      if (run.keepLast != 0 && !(n0 - removed > FANOUT / 4 && (j + run.keepFirst > 0 || nPrev(l) == 0))) {
        return false;
      }
    }
    // The inserts descend into this leaf (its smallest key stays below them,
    // or it is the first leaf) and go right after the kept first entry.
    const lands = this.height == 0 || j > 0 || run.keepFirst != 0 || nPrev(l) == 0;
    let n = n0 - removed;
    if (run.insertNext != 0) {
      if (n + 1 > FANOUT) return true; // insert splits: both inserts stay calls
      run.nextInLeaf = 1;
      ++n;
    }
    if (run.insertMid != 0 && lands && n + 1 <= FANOUT) run.midInLeaf = 1;
    return true;
  }

  /** The values' records already hold their ends. */
  commitRun(run: RangeRun, firstVal: u32, lastStart: u64, lastVal: u32, midStart: u64, midVal: u32): void {
    ++this.edits;
    const l = nodeAt(run.leaf);
    const j = run.slot;
    const n0 = nN(l);
    const oldMin = nKey(l, 0);
    const from = j + run.count; // first entry after the run
    const placed = run.keepFirst + run.midInLeaf + (run.keepLast | run.nextInLeaf);
    const n = n0 - run.count + placed;
    // Move the tail into place first (it may move either way).
    const to = j + placed;
    if (to < from) {
      for (let i = from; i < n0; ++i) copyEntry(l, i - from + to, l, i);
      for (let i = n; i < n0; ++i) setKey(l, i, NO_KEY);
    } else if (to > from) {
      for (let i = n0; i-- > from; ) copyEntry(l, i - from + to, l, i);
    }
    let w = j;
    if (run.keepFirst != 0) {
      setVal(l, w, firstVal);
      ++w;
    }
    if (run.midInLeaf != 0) {
      setKey(l, w, midStart);
      setVal(l, w, midVal);
      ++w;
    }
    if ((run.keepLast | run.nextInLeaf) != 0) {
      setKey(l, w, lastStart);
      setVal(l, w, lastVal);
    }
    setN(l, n);
    this.count = this.count - n0 + n;
    // Each remove/replace/insert at slot 0 refreshed the separators; the last
    // one leaves them at the leaf's final smallest key.
    if (j == 0 && this.height > 0 && nKey(l, 0) != oldMin) {
      this.descend(nKey(l, 0));
      this.fixKeys(<i32>this.height - 1, nKey(l, 0));
    }
  }

  /** The entry starting exactly at start (cursor leaf 0 if none). */
  find(start: u64): RangeCursor {
    const lh = this.descend(start);
    const l = nodeAt(lh);
    const le = countLE(l, 0, start);
    if (le > 0 && nKey(l, le - 1) == start) return cursor.set(lh, le - 1);
    return cursor.set(0, 0);
  }

  /** The entry containing addr. */
  containing(addr: u64): RangeCursor {
    const x = probe(addr);
    const lh = this.descend(x);
    const l = nodeAt(lh);
    const le = countLE(l, 0, x);
    if (le > 0) this.prefetchTail(nVal(l, le - 1));
    if (le > 0 && this.endOf(nVal(l, le - 1)) > addr) return cursor.set(lh, le - 1);
    return cursor.set(0, 0);
  }

  /** The lowest entry overlapping [addr, last] (last inclusive). */
  lowestOverlapping(addr: u64, last: u64): RangeCursor {
    const x = probe(addr);
    const lh = this.descend(x);
    const l = nodeAt(lh);
    const le = countLE(l, 0, x);
    const c = cursor.set(lh, 0);
    if (le > 0) {
      this.prefetchTail(nVal(l, le - 1));
      if (this.endOf(nVal(l, le - 1)) > addr) return c.set(lh, le - 1);
      c.slot = le - 1;
      if (!cursorNext(c)) return c.set(0, 0);
    } else if (nN(l) == 0) {
      return c.set(0, 0); // empty tree
    }
    if (c.key() <= last) return c;
    return c.set(0, 0);
  }

  /**
   * lowestOverlapping(addr[q], last[q]) for q < n (n <= LOOKUP_GROUP; u64
   * arrays at addr and last) into out: (leaf, slot) u32 pairs, leaf 0 for
   * none. The n descents advance level by level together, so their cache
   * misses overlap instead of queuing one lookup behind the other.
   */
  lowestOverlappingMany(addr: usize, last: usize, n: u32, out: usize): void {
    for (let q: u32 = 0; q < n; ++q) {
      store<u32>(manyNode + (<usize>q << 2), this.root);
      store<u64>(manyProbe + (<usize>q << 3), probe(load<u64>(addr + (<usize>q << 3))));
    }
    // The descent of descend() without its finger (random lookups rarely hit it).
    for (let d: u32 = 0; d < this.height; ++d) {
      for (let q: u32 = 0; q < n; ++q) {
        const p = nodeAt(load<u32>(manyNode + (<usize>q << 2)));
        const h = nVal(p, countLE(p, 1, load<u64>(manyProbe + (<usize>q << 3))));
        store<u32>(manyNode + (<usize>q << 2), h);
        prefetchNode(nodeAt(h));
      }
    }
    for (let q: u32 = 0; q < n; ++q) {
      const l = nodeAt(load<u32>(manyNode + (<usize>q << 2)));
      const le = countLE(l, 0, load<u64>(manyProbe + (<usize>q << 3)));
      store<u32>(manyLe + (<usize>q << 2), le);
      if (le > 0) this.prefetchRecord(nVal(l, le - 1));
    }
    // Then each answer as lowestOverlapping gives it.
    const c = cursor;
    for (let q: u32 = 0; q < n; ++q) {
      const lh = load<u32>(manyNode + (<usize>q << 2));
      const l = nodeAt(lh);
      const le = load<u32>(manyLe + (<usize>q << 2));
      const a = load<u64>(addr + (<usize>q << 3));
      const o = out + (<usize>q << 3);
      store<u32>(o, 0);
      store<u32>(o, 0, 4);
      c.set(lh, 0);
      if (le > 0) {
        if (this.endOf(nVal(l, le - 1)) > a) {
          store<u32>(o, lh);
          store<u32>(o, le - 1, 4);
          continue;
        }
        c.slot = le - 1;
        if (!cursorNext(c)) continue;
      } else if (nN(l) == 0) {
        continue;
      }
      if (c.key() <= load<u64>(last + (<usize>q << 3))) {
        store<u32>(o, c.leaf);
        store<u32>(o, c.slot, 4);
      }
    }
  }

  /** The first entry (lowest start). */
  first(): RangeCursor {
    let h = this.root;
    for (let d: u32 = 0; d < this.height; ++d) h = nVal(nodeAt(h), 0);
    if (nN(nodeAt(h)) == 0) return cursor.set(0, 0);
    return cursor.set(h, 0);
  }
}
