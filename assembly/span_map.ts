// Span maps: interval maps [start, end) -> (tag u32, aux u64) over the range
// tree, for the SVM layer's indexes (VMAs, notifiers, ranges, page-state
// extents). Twin of native/span_map.h/.cc, step for step, so trees take the
// same shapes; the functions are the SpanEngine contract of
// src/backend/span-engine.ts, given the io area's address.
//
// Layout: the tree slot of an entry holds the handle of a 24-byte side
// record (aux u64 at 0, end u64 at 8, tag u32 at 16); the shared RangeTree
// reads the end from there. A map record (192 bytes, 64-byte aligned, like native's) is its
// embedded RangeTree, then the live flag. Tree nodes come from the
// engine-global node pool, which the GpuVm half shares.
//
// Every mutation first makes sure the pools can supply whatever it may take
// (records, and tree nodes for its inserts), so that it either fails with
// -ENOMEM untouched or runs to the end.

import { EINVAL, EEXIST, ENOMEM, IO_ARG, IO_OUT, IO_DATA, IO_DATA_WORDS, OUT_INFO } from "./io";
import { Pool, initPool } from "./pool";
import { RangeTree, RANGE_TREE_BYTES, cursorNext, nodes, nodeAt, nKey, nVal, NODE_BYTES } from "./range_tree";

export const SPAN_MERGE: u32 = 1;
export const SPAN_ENTRY_WORDS: u32 = 8;
export const SPANS_PER_CHUNK: u32 = IO_DATA_WORDS / SPAN_ENTRY_WORDS;

// What spanStats reports per map, node and entry (shared with native).
const SPAN_MAP_BYTES: u32 = 192;
const SPAN_RECORD_BYTES: u32 = 24;
const LIVE: usize = RANGE_TREE_BYTES; // u32 after the embedded tree
// Side record layout: 0 aux u64 | 8 end u64 (the tree reads it) | 16 tag | 20 unused.
const REC_END: u32 = 8;

const maps = initPool(changetype<Pool>(memory.data(<i32>offsetof<Pool>(), 8)), SPAN_MAP_BYTES, 4, 64);
const records = initPool(changetype<Pool>(memory.data(<i32>offsetof<Pool>(), 8)), SPAN_RECORD_BYTES, 64, 16);

@inline function treeOf(map: u32): RangeTree {
  return changetype<RangeTree>(maps.at(map));
}
@inline function recAux(r: u32): u64 {
  return load<u64>(records.at(r));
}
@inline function recEnd(r: u32): u64 {
  return load<u64>(records.at(r), REC_END);
}
@inline function recTag(r: u32): u32 {
  return load<u32>(records.at(r), 16);
}
@inline function recSet(r: u32, tag: u32, aux: u64): void {
  const p = records.at(r);
  store<u64>(p, aux);
  store<u32>(p, tag, 16);
  store<u32>(p, 0, 20);
}
/** Cutting or growing an entry's end in place leaves keys, and so the tree's shape, unchanged. */
@inline function recSetEnd(r: u32, v: u64): void {
  store<u64>(records.at(r), v, REC_END);
}

@inline function w32(io: usize, word: u32): u32 {
  return load<u32>(io + (<usize>word << 2));
}
@inline function w64(io: usize, word: u32): u64 {
  return load<u64>(io + (<usize>word << 2));
}
@inline function set32(io: usize, word: u32, v: u32): void {
  store<u32>(io + (<usize>word << 2), v);
}
@inline function set64(io: usize, word: u32, v: u64): void {
  store<u64>(io + (<usize>word << 2), v);
}

/** The live map's tree, or null. */
function getMap(map: u32): RangeTree | null {
  if (map == 0 || map >= maps.limit || load<u32>(maps.at(map) + LIVE) == 0) return null;
  return treeOf(map);
}

/** Entry record words 0..6 at word `at`: start, end, tag, aux. */
function writeEntry(io: usize, at: u32, leaf: u32, slot: u32): void {
  const l = nodeAt(leaf);
  const r = nVal(l, slot);
  set64(io, at, nKey(l, slot));
  set64(io, at + 2, recEnd(r));
  set32(io, at + 4, recTag(r));
  set64(io, at + 5, recAux(r));
}

export function spanCreate(): i32 {
  if (!maps.ensure(1) || !nodes.ensure(1)) return -ENOMEM;
  const h = maps.alloc();
  const p = maps.at(h);
  memory.fill(p, 0, RANGE_TREE_BYTES); // a reused slot must not keep the old tree's finger
  treeOf(h).init(records, REC_END);
  store<u32>(p + LIVE, 1);
  return <i32>h;
}

export function spanDestroy(map: u32): i32 {
  const t = getMap(map);
  if (t === null) return -EINVAL;
  const c = t.first();
  while (c.leaf != 0) {
    records.free(c.val());
    if (!cursorNext(c)) break;
  }
  t.destroy();
  store<u32>(maps.at(map) + LIVE, 0);
  maps.free(map);
  return 0;
}

export function spanInsert(map: u32, io: usize): i32 {
  const t = getMap(map);
  if (t === null) return -EINVAL;
  const start = w64(io, IO_ARG + 0);
  const end = w64(io, IO_ARG + 2);
  const tag = w32(io, IO_ARG + 4);
  const aux = w64(io, IO_ARG + 5);
  if (end <= start) return -EINVAL;
  if (t.lowestOverlapping(start, end - 1).leaf != 0) return -EEXIST;
  if (!records.ensure(1) || !nodes.ensure(t.insertNeed())) return -ENOMEM;
  const r = records.alloc();
  recSet(r, tag, aux);
  recSetEnd(r, end);
  t.insert(start, end, r);
  return 0;
}

export function spanRemove(map: u32, io: usize): i32 {
  const t = getMap(map);
  if (t === null) return -EINVAL;
  const start = w64(io, IO_ARG + 0);
  const c = t.find(start);
  if (c.leaf == 0) return 0;
  const r = c.val();
  t.remove(start);
  records.free(r);
  return 1;
}

export function spanFind(map: u32, io: usize): i32 {
  const t = getMap(map);
  if (t === null) return -EINVAL;
  const c = t.containing(w64(io, IO_ARG + 0));
  if (c.leaf == 0) return 0;
  writeEntry(io, IO_OUT, c.leaf, c.slot);
  return 1;
}

export function spanSeek(map: u32, io: usize): i32 {
  const t = getMap(map);
  if (t === null) return -EINVAL;
  const s = w64(io, IO_ARG + 0);
  const e = w64(io, IO_ARG + 2);
  if (e < s) return -EINVAL;
  if (e == s) return 0;
  const c = t.lowestOverlapping(s, e - 1);
  if (c.leaf == 0) return 0;
  writeEntry(io, IO_OUT, c.leaf, c.slot);
  return 1;
}

export function spanList(map: u32, max: u32, io: usize): i32 {
  const t = getMap(map);
  if (t === null) return -EINVAL;
  const s = w64(io, IO_ARG + 0);
  const e = w64(io, IO_ARG + 2);
  if (e < s) return -EINVAL;
  if (e == s) return 0;
  if (max > SPANS_PER_CHUNK) max = SPANS_PER_CHUNK;
  const c = t.lowestOverlapping(s, e - 1);
  let n: u32 = 0;
  let at = IO_DATA;
  while (c.leaf != 0 && n < max && c.key() < e) {
    writeEntry(io, at, c.leaf, c.slot);
    set32(io, at + 7, 0);
    at += SPAN_ENTRY_WORDS;
    ++n;
    if (!cursorNext(c)) break;
  }
  return <i32>n;
}

export function spanAssign(map: u32, io: usize): i32 {
  const t = getMap(map);
  if (t === null) return -EINVAL;
  const s = w64(io, IO_ARG + 0);
  const e = w64(io, IO_ARG + 2);
  const tag = w32(io, IO_ARG + 4);
  const aux = w64(io, IO_ARG + 5);
  const flags = w32(io, IO_ARG + 7);
  if (e <= s || (flags & ~SPAN_MERGE) != 0) return -EINVAL;

  // The entries cut at s and at e (one entry when it spans both). Lookups
  // share one cursor: copy out what each returns.
  let c = t.containing(s);
  const lLeaf = c.leaf;
  const lSlot = c.slot;
  const cutLeft = lLeaf != 0 && nKey(nodeAt(lLeaf), lSlot) < s;
  c = t.containing(e - 1);
  const cutRight = c.leaf != 0 && t.endAt(c) > e;
  const split = cutLeft && cutRight && c.leaf == lLeaf && c.slot == lSlot;
  // Inserts (a replace counts as one): the piece right of e, the new entry.
  // The tree may grow one level with the first, hence the second's + 1.
  const inserts: u32 = (cutRight ? 1 : 0) + (tag != 0 ? 1 : 0);
  const nodeNeed: u32 = inserts == 0 ? 0 : inserts * t.insertNeed() + inserts - 1;
  const recordNeed: u32 = (split ? 1 : 0) + (tag != 0 ? 1 : 0);
  if (!records.ensure(recordNeed) || !nodes.ensure(nodeNeed)) return -ENOMEM;

  if (cutLeft) {
    const l = nodeAt(lLeaf);
    const oldStart = nKey(l, lSlot);
    const oldRec = nVal(l, lSlot);
    const oldEnd = recEnd(oldRec);
    recSetEnd(oldRec, s);
    if (split) {
      const r = records.alloc();
      recSet(r, recTag(oldRec), recAux(oldRec) + (e - oldStart));
      recSetEnd(r, oldEnd);
      t.insert(e, oldEnd, r);
    }
  }
  // Entries starting inside [s, e): one reaching past e keeps its part
  // right of e (it is the last), the others go.
  for (;;) {
    c = t.lowestOverlapping(s, e - 1);
    if (c.leaf == 0) break;
    const start = c.key();
    const r = c.val();
    const end = recEnd(r);
    if (end > e) {
      recSet(r, recTag(r), recAux(r) + (e - start));
      t.replace(start, e, end, r);
      break;
    }
    t.remove(start);
    records.free(r);
  }
  if (tag == 0) return 0;

  // [s, e) is empty now. Neighbours it continues (same tag, aux linear).
  let leftLeaf: u32 = 0;
  let leftSlot: u32 = 0;
  let rightLeaf: u32 = 0;
  let rightSlot: u32 = 0;
  if ((flags & SPAN_MERGE) != 0) {
    if (s > 0) {
      c = t.containing(s - 1);
      if (c.leaf != 0) {
        const r = c.val();
        if (recEnd(r) == s && recTag(r) == tag && recAux(r) + (s - c.key()) == aux) {
          leftLeaf = c.leaf;
          leftSlot = c.slot;
        }
      }
    }
    c = t.find(e);
    if (c.leaf != 0) {
      const r = c.val();
      if (recTag(r) == tag && aux + (e - s) == recAux(r)) {
        rightLeaf = c.leaf;
        rightSlot = c.slot;
      }
    }
  }
  if (leftLeaf != 0) {
    // The left entry grows over [s, e) (and over the right one, which goes).
    let end = e;
    let gone: u32 = 0;
    if (rightLeaf != 0) {
      gone = nVal(nodeAt(rightLeaf), rightSlot);
      end = recEnd(gone);
    }
    recSetEnd(nVal(nodeAt(leftLeaf), leftSlot), end);
    if (gone != 0) {
      t.remove(e);
      records.free(gone);
    }
    return 0;
  }
  if (rightLeaf != 0) {
    // The right entry grows down to s and takes the new aux.
    const r = nVal(nodeAt(rightLeaf), rightSlot);
    const end = recEnd(r);
    recSet(r, tag, aux);
    t.replace(e, s, end, r);
    return 0;
  }
  const r = records.alloc();
  recSet(r, tag, aux);
  recSetEnd(r, e);
  t.insert(s, e, r);
  return 0;
}

export function spanStats(map: u32, io: usize): i32 {
  const t = getMap(map);
  if (t === null) return -EINVAL;
  const bytes: u64 =
    <u64>SPAN_MAP_BYTES + <u64>t.nodeCount * <u64>NODE_BYTES + <u64>t.count * <u64>SPAN_RECORD_BYTES;
  set32(io, OUT_INFO + 0, t.nodeCount);
  set32(io, OUT_INFO + 1, bytes > 0xffffffff ? 0xffffffff : <u32>bytes);
  return <i32>t.count;
}
