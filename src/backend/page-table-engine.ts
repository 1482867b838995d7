/**
 * The page-table part of the engine contract (xe-style multi-level tables).
 * Both engines implement it with the same
 * algorithms (native/page_table.*, assembly/page_table.ts) and give
 * bit-identical results. The conventions of engine.ts apply: arguments and
 * results go through the io transfer area of u32 words, u64 values are two
 * words (low first), negative results are negated errnos, handles are
 * integers with 0 = none, and an engine changes nothing when it returns an
 * error.
 *
 * The model: a page table is a tree of tables (root at level `top`, leaves
 * allowed at levels 0..leaf), entries are empty, leaves (a physical address),
 * null leaves (sparse), or directory entries (a child table); any non-empty
 * entry can be zapped (translates to nothing, still live, keeps its hidden
 * subtree). Tables and entries live in pools of the engine instance (one per
 * environment: thread, package copy); the walker runs inside the engine, and
 * walks come out in chunks through io.
 *
 * Inside the engine ranges are inclusive [first, last], so a 2^64 span needs
 * no 65-bit arithmetic; the facade passes `va` and `size` for mutations.
 */

/** ptCreate flag: compact 64 KiB level-0 tables (Xe2+), needs s[0] < 16 < s[1]. */
export const PT_CREATE_COMPACT = 1;

/** Apply record kinds (word 0 of a record). */
export const PtRec = { BIND: 1, BIND_NULL: 2, UNBIND: 3, ZAP: 4 } as const;
/**
 * Apply record layout (words):
 *  0 kind, 1 segment count (BIND: >= 1; others: 0)
 *  2,3 va, 4,5 size
 *  then per segment (BIND only): pa (2 words), len (2 words)
 */
export const PT_REC_HEADER = 6;
export const PT_SEG_WORDS = 4;
/** ptApply flags: BEGIN drops anything staged; END validates and runs everything staged. */
export const PT_APPLY_BEGIN = 1;
export const PT_APPLY_END = 2;

/** OUT words written by ptApply (totals over the records applied). */
export const PtOut = {
  LIVE: 32,
  NEW: 33,
  ALLOC: 34,
  FREE: 35,
  RECORDS: 36,
  /** on -EINVAL: index of the first invalid record; on -ENOMEM: of the record passing the budget */
  FAIL_INDEX: 37,
  /** 2 words: on -ENOMEM, the leaf entries the binds up to FAIL_INDEX would write; else 0 */
  NEED: 38,
} as const;

/** ptWalk flags. Without flags a walk yields the visible leaves (null leaves included). */
export const PtWalk = {
  /** also directory entries (pre-descent) */
  DIRS: 1,
  /** also a post-descent record for every directory entry descended into */
  POST: 2,
  /** shared mode: only the partially covered edge entries of each table */
  SHARED: 4,
  /** also empty entries */
  EMPTY: 8,
  /** also zapped entries (not descended) */
  ZAPPED: 16,
} as const;
/**
 * Walk record layout (8 words), in walk order (pre-order, address ascending,
 * a directory entry before its children, its post record after them):
 *  0,1 va of the entry's first byte
 *  2,3 pa of a (maybe zapped) leaf, else 0
 *  4 info word (PtInfo bits, level in bits 8-15, log2 of the entry size in bits 16-23)
 *  5 directory entry: the child's non-empty entry count; else 0
 *  6 table handle, 7 index in the table
 */
export const PT_WALK_WORDS = 8;

/** Info word bits (translate results and walk records). */
export const PtInfo = {
  /** a leaf (maybe a null leaf) */
  MAPPED: 1,
  NULL: 2,
  /** PS64: a level-0 leaf whose aligned 64 KiB block is 16 uniform, contiguous, aligned leaves */
  HINT_64K: 4,
  ZAPPED: 8,
  DIR: 16,
  /** a post-descent walk record */
  POST: 32,
  /** a directory entry pointing to a compact table, or an entry of one */
  COMPACT: 64,
  LEVEL_SHIFT: 8,
  SIZE_SHIFT: 16,
} as const;

/** Words per translate-batch slot: in va (2); out pa (2), info, 0. */
export const PT_TRANSLATE_WORDS = 4;

export interface PageTableEngine {
  /**
   * New page table. Level shifts bottom-up at DATA[0..n), leaves allowed at
   * levels 0..leaf, flags PT_CREATE_COMPACT. -> handle, or -EINVAL for a bad
   * geometry (n < 2, shifts not strictly increasing, a level wider than 16
   * bits or narrower than 1, span above 2^64, leaf > top, compact without
   * s[0] < 16 < s[1], unknown flags).
   */
  ptCreate(n: number, leaf: number, flags: number): number;
  /** Releases the table tree. -> 0 or -EINVAL (bad handle) */
  ptDestroy(pt: number): number;
  /**
   * Stages `words` words of apply records from DATA (BEGIN drops what was
   * staged before); with END, validates every staged record (alignment to
   * 2^s[0], size > 0, inside the span, segments non-empty, not overflowing,
   * summing to the size) and then runs them in order, each as one call for
   * cost purposes (bind, unbind with the kill rule, zap). Costs,
   * summed over the records, go to PtOut. With END, ARG0 is the leaf budget:
   * the most leaf entries the binds may write together (counted from the
   * ranges and segments alone, as if no table were compact). -> without END:
   * words staged so far; with END: records applied, or -EINVAL (nothing
   * changed, FAIL_INDEX = the first bad record), or -ENOMEM (over the budget,
   * nothing changed, NEED = the leaves needed). A call that leaves at most a
   * quarter of a large entry storage in use compacts it (the native engine
   * also gives the rest back to the system).
   */
  ptApply(pt: number, words: number, flags: number): number;
  /**
   * va(A0) -> 1 when it maps (OUT+0,1 pa, or 0 for a null leaf; OUT+2 info
   * word), 0 when it does not (unmapped, zapped, beyond the span), -EINVAL.
   */
  ptTranslate(pt: number): number;
  /** n slots of PT_TRANSLATE_WORDS at DATA: va in, pa + info out (info 0 = none). -> mapped count */
  ptTranslateBatch(pt: number, n: number): number;
  /**
   * Range walk over [first(A0), last(A2)] (inclusive, clipped to the span),
   * resuming after the cursor (A4,A5 position, A6 rank) when A7 = 1. Writes
   * up to `max` records at DATA and the cursor of the last one to OUT+0,1
   * (position) and OUT+2 (rank). -> records written (fewer than max: the
   * walk is complete), or -EINVAL. The cursor stays valid when the table is
   * changed between chunks: the walk goes on after the last record delivered.
   */
  ptWalk(pt: number, flags: number, max: number): number;
  /** -> tables in this page table (root included); OUT+0 tables, +1 non-empty entries (hidden ones included), +2 tables in use engine-wide, +3 entry slots ever allocated */
  ptStats(pt: number): number;
}
