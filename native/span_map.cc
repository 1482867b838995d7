// Span maps over the range tree; see span_map.h. Every mutation first makes
// sure the pools can supply whatever it may take (records, and tree nodes
// for its inserts), so that it either fails with -ENOMEM untouched or runs
// to the end.
#include "span_map.h"

#include <cstddef>

namespace gpuvm {

SpanMaps::SpanMaps(Budget* budget) : maps_(budget, 4), records_(budget, 64), nodes_(budget, 16) {}

SpanMapRecord* SpanMaps::Get(u32 map) {
  if (map == 0 || map >= maps_.Limit() || !maps_[map].live) return nullptr;
  return &maps_[map];
}

// Entry record words 0..6: start, end, tag, aux.
void SpanMaps::WriteEntry(u32* dst, RangeCursor c) const {
  const RangeNode& n = nodes_[c.leaf];
  const SpanRecord& r = records_[n.val[c.slot]];
  Write64(dst, 0, n.key[c.slot]);
  Write64(dst, 2, r.end);
  dst[4] = r.tag;
  Write64(dst, 5, r.aux);
}

i32 SpanMaps::Create() {
  if (!maps_.Ensure(1) || !nodes_.Ensure(1)) return -kENOMEM;
  const u32 h = maps_.Alloc();
  SpanMapRecord& m = maps_[h];
  m.tree = RangeTree();  // a reused slot must not keep the old tree's finger
  m.tree.Init(nodes_, EndSource{records_.BaseRef(), sizeof(SpanRecord), offsetof(SpanRecord, end)});
  m.live = 1;
  return static_cast<i32>(h);
}

i32 SpanMaps::Destroy(u32 map) {
  SpanMapRecord* m = Get(map);
  if (m == nullptr) return -kEINVAL;
  RangeCursor c = m->tree.First(nodes_);
  while (c.leaf != 0) {
    records_.Free(nodes_[c.leaf].val[c.slot]);
    if (!RangeTree::Next(nodes_, c)) break;
  }
  m->tree.Destroy(nodes_);
  m->live = 0;
  maps_.Free(map);
  return 0;
}

i32 SpanMaps::Insert(u32 map, const u32* io) {
  SpanMapRecord* m = Get(map);
  if (m == nullptr) return -kEINVAL;
  const u64 start = Read64(io, IO_ARG + 0);
  const u64 end = Read64(io, IO_ARG + 2);
  const u32 tag = io[IO_ARG + 4];
  const u64 aux = Read64(io, IO_ARG + 5);
  if (end <= start) return -kEINVAL;
  RangeTree& t = m->tree;
  if (t.LowestOverlapping(nodes_, start, end - 1).leaf != 0) return -kEEXIST;
  if (!records_.Ensure(1) || !nodes_.Ensure(t.InsertNeed())) return -kENOMEM;
  const u32 r = records_.Alloc();
  records_[r].tag = tag;
  records_[r].aux = aux;
  records_[r].end = end;
  t.Insert(nodes_, start, end, r);
  return 0;
}

i32 SpanMaps::Remove(u32 map, const u32* io) {
  SpanMapRecord* m = Get(map);
  if (m == nullptr) return -kEINVAL;
  const u64 start = Read64(io, IO_ARG + 0);
  const RangeCursor c = m->tree.Find(nodes_, start);
  if (c.leaf == 0) return 0;
  const u32 r = nodes_[c.leaf].val[c.slot];
  m->tree.Remove(nodes_, start);
  records_.Free(r);
  return 1;
}

i32 SpanMaps::Find(u32 map, u32* io) {
  SpanMapRecord* m = Get(map);
  if (m == nullptr) return -kEINVAL;
  const RangeCursor c = m->tree.Containing(nodes_, Read64(io, IO_ARG + 0));
  if (c.leaf == 0) return 0;
  WriteEntry(io + IO_OUT, c);
  return 1;
}

i32 SpanMaps::Seek(u32 map, u32* io) {
  SpanMapRecord* m = Get(map);
  if (m == nullptr) return -kEINVAL;
  const u64 s = Read64(io, IO_ARG + 0);
  const u64 e = Read64(io, IO_ARG + 2);
  if (e < s) return -kEINVAL;
  if (e == s) return 0;
  const RangeCursor c = m->tree.LowestOverlapping(nodes_, s, e - 1);
  if (c.leaf == 0) return 0;
  WriteEntry(io + IO_OUT, c);
  return 1;
}

i32 SpanMaps::List(u32 map, u32 max, u32* io) {
  SpanMapRecord* m = Get(map);
  if (m == nullptr) return -kEINVAL;
  const u64 s = Read64(io, IO_ARG + 0);
  const u64 e = Read64(io, IO_ARG + 2);
  if (e < s) return -kEINVAL;
  if (e == s) return 0;
  if (max > SPANS_PER_CHUNK) max = SPANS_PER_CHUNK;
  RangeCursor c = m->tree.LowestOverlapping(nodes_, s, e - 1);
  u32 n = 0;
  u32* dst = io + IO_DATA;
  while (c.leaf != 0 && n < max && nodes_[c.leaf].key[c.slot] < e) {
    WriteEntry(dst, c);
    dst[7] = 0;
    dst += SPAN_ENTRY_WORDS;
    ++n;
    if (!RangeTree::Next(nodes_, c)) break;
  }
  return static_cast<i32>(n);
}

i32 SpanMaps::Assign(u32 map, const u32* io) {
  SpanMapRecord* m = Get(map);
  if (m == nullptr) return -kEINVAL;
  const u64 s = Read64(io, IO_ARG + 0);
  const u64 e = Read64(io, IO_ARG + 2);
  const u32 tag = io[IO_ARG + 4];
  const u64 aux = Read64(io, IO_ARG + 5);
  const u32 flags = io[IO_ARG + 7];
  if (e <= s || (flags & ~SPAN_MERGE) != 0) return -kEINVAL;
  RangeTree& t = m->tree;

  // The entries cut at s and at e (one entry when it spans both).
  const RangeCursor lc = t.Containing(nodes_, s);
  const bool cutLeft = lc.leaf != 0 && nodes_[lc.leaf].key[lc.slot] < s;
  const RangeCursor rc = t.Containing(nodes_, e - 1);
  const bool cutRight = rc.leaf != 0 && t.EndAt(nodes_, rc) > e;
  const bool split = cutLeft && cutRight && lc.leaf == rc.leaf && lc.slot == rc.slot;
  // Inserts (a Replace counts as one): the piece right of e, the new entry.
  // The tree may grow one level with the first, hence the second's + 1.
  const u32 inserts = (cutRight ? 1u : 0u) + (tag != 0 ? 1u : 0u);
  const u32 nodeNeed = inserts == 0 ? 0 : inserts * t.InsertNeed() + inserts - 1;
  const u32 recordNeed = (split ? 1u : 0u) + (tag != 0 ? 1u : 0u);
  if (!records_.Ensure(recordNeed) || !nodes_.Ensure(nodeNeed)) return -kENOMEM;

  if (cutLeft) {
    // Only the end changes: the key, and so the tree's shape, stay.
    RangeNode& l = nodes_[lc.leaf];
    const u64 oldStart = l.key[lc.slot];
    const u32 oldRec = l.val[lc.slot];
    const u64 oldEnd = records_[oldRec].end;
    records_[oldRec].end = s;
    if (split) {
      const u32 r = records_.Alloc();
      records_[r].tag = records_[oldRec].tag;
      records_[r].aux = records_[oldRec].aux + (e - oldStart);
      records_[r].end = oldEnd;
      t.Insert(nodes_, e, oldEnd, r);
    }
  }
  // Entries starting inside [s, e): one reaching past e keeps its part
  // right of e (it is the last), the others go.
  for (;;) {
    const RangeCursor c = t.LowestOverlapping(nodes_, s, e - 1);
    if (c.leaf == 0) break;
    const RangeNode& n = nodes_[c.leaf];
    const u64 start = n.key[c.slot];
    const u32 r = n.val[c.slot];
    const u64 end = records_[r].end;
    if (end > e) {
      records_[r].aux += e - start;
      t.Replace(nodes_, start, e, end, r);
      break;
    }
    t.Remove(nodes_, start);
    records_.Free(r);
  }
  if (tag == 0) return 0;

  // [s, e) is empty now. Neighbours it continues (same tag, aux linear).
  RangeCursor left{0, 0};
  RangeCursor right{0, 0};
  if ((flags & SPAN_MERGE) != 0) {
    if (s > 0) {
      const RangeCursor c = t.Containing(nodes_, s - 1);
      if (c.leaf != 0) {
        const RangeNode& n = nodes_[c.leaf];
        const SpanRecord& r = records_[n.val[c.slot]];
        if (r.end == s && r.tag == tag && r.aux + (s - n.key[c.slot]) == aux) left = c;
      }
    }
    const RangeCursor c = t.Find(nodes_, e);
    if (c.leaf != 0) {
      const SpanRecord& r = records_[nodes_[c.leaf].val[c.slot]];
      if (r.tag == tag && aux + (e - s) == r.aux) right = c;
    }
  }
  if (left.leaf != 0) {
    // The left entry grows over [s, e) (and over the right one, which goes).
    u64 end = e;
    u32 gone = 0;
    if (right.leaf != 0) {
      gone = nodes_[right.leaf].val[right.slot];
      end = records_[gone].end;
    }
    records_[nodes_[left.leaf].val[left.slot]].end = end;
    if (gone != 0) {
      t.Remove(nodes_, e);
      records_.Free(gone);
    }
    return 0;
  }
  if (right.leaf != 0) {
    // The right entry grows down to s and takes the new aux.
    const u32 r = nodes_[right.leaf].val[right.slot];
    const u64 end = records_[r].end;
    records_[r].aux = aux;
    t.Replace(nodes_, e, s, end, r);
    return 0;
  }
  const u32 r = records_.Alloc();
  records_[r].tag = tag;
  records_[r].aux = aux;
  records_[r].end = e;
  t.Insert(nodes_, s, e, r);
  return 0;
}

i32 SpanMaps::Stats(u32 map, u32* io) {
  SpanMapRecord* m = Get(map);
  if (m == nullptr) return -kEINVAL;
  const RangeTree& t = m->tree;
  const u64 bytes = SPAN_MAP_BYTES + static_cast<u64>(t.Nodes()) * SPAN_NODE_BYTES +
                    static_cast<u64>(t.Count()) * SPAN_RECORD_BYTES;
  io[IO_OUT_INFO + 0] = t.Nodes();
  io[IO_OUT_INFO + 1] = bytes > 0xffffffffu ? 0xffffffffu : static_cast<u32>(bytes);
  return static_cast<i32>(t.Count());
}

}  // namespace gpuvm
