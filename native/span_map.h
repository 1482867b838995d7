// Span maps: interval maps [start, end) -> (tag u32, aux u64) over the range
// tree, for the SVM layer's indexes (VMAs, notifiers, ranges, page-state
// extents). The public methods are the SpanEngine contract of
// src/backend/span-engine.ts: arguments from io, results to io. Twin of
// assembly/span_map.ts, step for step, so trees take the same shapes.
//
// Layout: the tree slot of an entry holds the handle of a 24-byte side
// record (aux, end, tag); the shared RangeTree reads the end from there.
#pragma once

#include "budget.h"
#include "io.h"
#include "pool.h"
#include "range_tree.h"

namespace gpuvm {

constexpr u32 SPAN_MERGE = 1;
constexpr u32 SPAN_ENTRY_WORDS = 8;
constexpr u32 SPANS_PER_CHUNK = IO_DATA_WORDS / SPAN_ENTRY_WORDS;

struct SpanRecord {
  u64 aux;
  u64 end;  // exclusive
  u32 tag;
  u32 unused;
};

struct alignas(64) SpanMapRecord {
  RangeTree tree;
  u32 live;
};

// What spanStats reports per map, node and entry: the record sizes, which
// both engines share (the WASM twin lays its records out the same way).
constexpr u64 SPAN_MAP_BYTES = 192;
constexpr u64 SPAN_NODE_BYTES = 208;
constexpr u64 SPAN_RECORD_BYTES = 24;
static_assert(sizeof(SpanMapRecord) == SPAN_MAP_BYTES, "span map record size is part of spanStats");
static_assert(sizeof(RangeNode) == SPAN_NODE_BYTES, "tree node size is part of spanStats");
static_assert(sizeof(SpanRecord) == SPAN_RECORD_BYTES, "entry record size is part of spanStats");

// The span maps of one engine instance; every pool charges its budget.
class SpanMaps {
 public:
  explicit SpanMaps(Budget* budget);
  SpanMaps(const SpanMaps&) = delete;
  SpanMaps& operator=(const SpanMaps&) = delete;

  i32 Create();
  i32 Destroy(u32 map);
  i32 Insert(u32 map, const u32* io);
  i32 Remove(u32 map, const u32* io);
  i32 Find(u32 map, u32* io);
  i32 Seek(u32 map, u32* io);
  i32 List(u32 map, u32 max, u32* io);
  i32 Assign(u32 map, const u32* io);
  i32 Stats(u32 map, u32* io);

 private:
  SpanMapRecord* Get(u32 map);
  void WriteEntry(u32* dst, RangeCursor c) const;

  Pool<SpanMapRecord> maps_;
  Pool<SpanRecord> records_;
  NodePool nodes_;  // the span maps' own: the GpuVm half keeps its pool private
};

}  // namespace gpuvm
