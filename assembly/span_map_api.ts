// Exported span-map engine functions (twin of native/span_map_addon.cc): one
// function per method of src/backend/span-engine.ts, arguments in io.
// index.ts re-exports everything here.
import { io } from "./io";
import {
  spanCreate as create,
  spanDestroy as destroy,
  spanInsert as insert,
  spanRemove as remove,
  spanFind as find,
  spanSeek as seek,
  spanList as list,
  spanAssign as assign,
  spanStats as stats,
} from "./span_map";

export function spanCreate(): i32 {
  return create();
}

export function spanDestroy(map: u32): i32 {
  return destroy(map);
}

/** start(A0) end(A2) tag(A4) aux(A5) */
export function spanInsert(map: u32): i32 {
  return insert(map, io);
}

/** start(A0) */
export function spanRemove(map: u32): i32 {
  return remove(map, io);
}

/** p(A0); the entry at OUT */
export function spanFind(map: u32): i32 {
  return find(map, io);
}

/** s(A0) e(A2); the entry at OUT */
export function spanSeek(map: u32): i32 {
  return seek(map, io);
}

/** s(A0) e(A2); entry records at DATA */
export function spanList(map: u32, max: u32): i32 {
  return list(map, max, io);
}

/** s(A0) e(A2) tag(A4) aux(A5) flags(A7) */
export function spanAssign(map: u32): i32 {
  return assign(map, io);
}

export function spanStats(map: u32): i32 {
  return stats(map, io);
}
