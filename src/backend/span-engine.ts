/**
 * The span-map part of the engine contract: interval maps held by the engine
 * and indexed by its range tree (native/span_map.*, assembly/span_map.ts,
 * the same algorithms, bit-identical results). The SVM layer keeps
 * everything that grows with the workload in them: VMAs, notifiers, ranges
 * and per-page state extents, in page units.
 *
 * The conventions of engine.ts apply: arguments in io[ARG + i], a u64 is two
 * words (low first), results >= 0 or a negated errno, handles are integers
 * with 0 = none, and an engine changes nothing when it returns an error.
 *
 * The model: a map holds disjoint half-open intervals [start, end) of u64,
 * each with a tag (u32) and an aux value (u64). Storage (maps, entries, tree
 * nodes) belongs to the engine instance and is charged to its memory budget
 * (memSetLimit): a call that would grow it past the limit returns -ENOMEM
 * having changed nothing. Maps of an instance live until spanDestroy or the
 * end of the environment.
 *
 * Entry record (SPAN_ENTRY_WORDS words, at OUT for find/seek, at DATA for list):
 *  0,1 start   2,3 end (exclusive)   4 tag   5,6 aux   7 zero (list only)
 */

/** Words per entry record in DATA (spanList). */
export const SPAN_ENTRY_WORDS = 8;
/** Entry records that fit in DATA at once. */
export const SPANS_PER_CHUNK = 8192; // IO.DATA_WORDS / SPAN_ENTRY_WORDS

/** spanAssign flag: merge the new entry with contiguous neighbours of the same tag and continuing aux. */
export const SPAN_MERGE = 1;

/**
 * Bytes a map accounts for in spanStats: a fixed map record, plus per tree
 * node and per entry (a side record holding tag, aux and end; the tree slot
 * holds its handle). The same constants in both engines.
 */
export const SPAN_MAP_BYTES = 192;
export const SPAN_NODE_BYTES = 208;
export const SPAN_RECORD_BYTES = 24;

export interface SpanEngine {
  /** -> a new, empty map's handle (> 0), or -ENOMEM */
  spanCreate(): number;
  /** Frees the map and all its entries. -> 0, or -EINVAL (bad handle) */
  spanDestroy(map: number): number;
  /**
   * start(A0) end(A2) tag(A4) aux(A5): adds one entry. -> 0, -EINVAL (bad
   * handle, end <= start), -EEXIST (overlaps an entry), -ENOMEM. Any tag,
   * 0 included.
   */
  spanInsert(map: number): number;
  /** start(A0): removes the entry starting exactly there. -> 1 removed, 0 none, -EINVAL (bad handle) */
  spanRemove(map: number): number;
  /** p(A0): -> 1 and the entry containing p at OUT (entry record words 0..6), 0 none, -EINVAL */
  spanFind(map: number): number;
  /**
   * s(A0) e(A2): -> 1 and the lowest entry overlapping [s, e) at OUT, 0
   * none (also for e == s), -EINVAL (bad handle, e < s)
   */
  spanSeek(map: number): number;
  /**
   * s(A0) e(A2): up to min(max, SPANS_PER_CHUNK) entry records of the
   * entries overlapping [s, e), ascending, at DATA. -> count (0 also for
   * e == s), -EINVAL (bad handle, e < s). Continue with s = the last end.
   */
  spanList(map: number, max: number): number;
  /**
   * s(A0) e(A2) tag(A4) aux(A5) flags(A7): afterwards [s, e) holds exactly
   * (tag, aux), or nothing when tag is 0. Entries overlapping [s, e) are cut:
   * a piece left of s keeps its aux, a piece right of e gets aux + (e - its
   * old start) (mod 2^64), pieces inside go. With SPAN_MERGE and tag != 0 the
   * new entry joins a left neighbour ending at s with the same tag whose aux
   * + length equals aux, and a right neighbour starting at e with the same
   * tag and aux equal to aux + (e - s); the joined entry keeps the leftmost
   * start and its aux. -> 0, -EINVAL (bad handle, e <= s, unknown flags),
   * -ENOMEM. The storage check comes before anything changes and counts
   * the pieces and the new entry as if nothing merged, so under a tight
   * limit even an assign that would only merge or shrink entries can be
   * refused; clearing (tag 0) without cutting an entry in two needs nothing.
   */
  spanAssign(map: number): number;
  /** -> entry count; OUT_INFO+0 tree nodes, OUT_INFO+1 bytes this map uses (saturating u32). -EINVAL */
  spanStats(map: number): number;
}
