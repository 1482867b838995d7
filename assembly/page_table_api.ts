// Exported page-table engine functions (twin of native/page_table_addon.cc):
// io in, io out, one function per method of src/backend/page-table-engine.ts.
// index.ts re-exports everything here.
import { io, IO_ARG, IO_DATA, IO_OUT } from './io';
import {
  MAX_SHIFTS,
  EINVAL_PT,
  ptCreate as create,
  ptDestroy as destroy,
  ptApply as apply,
  ptTranslate as translate,
  ptTranslateBatch as translateBatch,
  ptWalk as walk,
  ptStats as stats,
} from './page_table';

// The one place that knows where the transfer area is.
@inline function ioWord(i: u32): usize {
  return io + (<usize>i << 2);
}
@inline function arg32(i: u32): u32 {
  return load<u32>(ioWord(IO_ARG + i));
}
@inline function arg64(i: u32): u64 {
  return load<u64>(ioWord(IO_ARG + i));
}

/** ptCreate(n, leaf, flags): shifts at DATA[0..n) */
export function ptCreate(n: u32, leaf: u32, flags: u32): i32 {
  if (n > MAX_SHIFTS) return -EINVAL_PT;
  return create(ioWord(IO_DATA), n, leaf, flags);
}

export function ptDestroy(pt: u32): i32 {
  return destroy(pt);
}

/** ptApply(pt, words, flags): records at DATA[0..words), leaf budget at ARG0 (read with END) */
export function ptApply(pt: u32, words: u32, flags: u32): i32 {
  return apply(pt, ioWord(IO_DATA), words, flags, arg32(0), ioWord(IO_OUT));
}

/** ptTranslate(pt): va at ARG0 */
export function ptTranslate(pt: u32): i32 {
  return translate(pt, arg64(0), ioWord(IO_OUT));
}

export function ptTranslateBatch(pt: u32, n: u32): i32 {
  return translateBatch(pt, ioWord(IO_DATA), n);
}

/** ptWalk(pt, flags, max): first ARG0, last ARG2, cursor pos ARG4, rank ARG6, has cursor ARG7 */
export function ptWalk(pt: u32, flags: u32, max: u32): i32 {
  return walk(pt, arg64(0), arg64(2), arg64(4), arg32(6), arg32(7), flags, max, ioWord(IO_DATA), ioWord(IO_OUT));
}

export function ptStats(pt: u32): i32 {
  return stats(pt, ioWord(IO_OUT));
}
