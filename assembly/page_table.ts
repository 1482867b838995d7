// xe-style multi-level GPU page tables and their walker, built the way the xe
// driver builds them. Twin of native/page_table.h/.cc: same
// functions, same algorithms, bit-identical results; see page_table.h for the
// model. Everything lives in unmanaged memory (the runtime is "stub"): the
// visitors are allocated once and reused, no call allocates managed objects.
//
// Ranges are inclusive [addr, last] so that a span of 2^64 needs no 65-bit
// arithmetic. Bind fills the level-0 entries under a level-1 entry in one loop
// (fillLeaves), exactly what visiting them one by one would do.

export const EINVAL_PT: i32 = 22;
export const ENOMEM_PT: i32 = 12;

export const MAX_SHIFTS: u32 = 64;
export const SHIFT_64K: u32 = 16;
export const IO_DATA_WORDS_PT: u32 = 16 * 4096;

// entry meta byte
export const E_EMPTY: u8 = 0;
export const E_LEAF: u8 = 1;
export const E_NULL: u8 = 2;
export const E_DIR: u8 = 3;
export const E_KIND: u8 = 3;
export const E_ZAPPED: u8 = 4;
export const E_COMPACT_CHILD: u8 = 8;

// create flags
export const CREATE_COMPACT: u32 = 1;

// apply records
export const REC_BIND: u32 = 1;
export const REC_BIND_NULL: u32 = 2;
export const REC_UNBIND: u32 = 3;
export const REC_ZAP: u32 = 4;
export const REC_HEADER: u32 = 6;
export const SEG_WORDS: u32 = 4;
export const APPLY_BEGIN: u32 = 1;
export const APPLY_END: u32 = 2;

// cost words at OUT
export const OUT_LIVE: u32 = 0;
export const OUT_NEW: u32 = 1;
export const OUT_ALLOC: u32 = 2;
export const OUT_FREE: u32 = 3;
export const OUT_RECORDS: u32 = 4;
export const OUT_FAIL_INDEX_PT: u32 = 5;
export const OUT_NEED_PT: u32 = 6; // 2 words: leaves the binds needed, on -ENOMEM

// walk flags
export const WALK_DIRS: u32 = 1;
export const WALK_POST: u32 = 2;
export const WALK_SHARED: u32 = 4;
export const WALK_EMPTY: u32 = 8;
export const WALK_ZAPPED: u32 = 16;
export const WALK_WORDS: u32 = 8;

// info word
export const INFO_MAPPED: u32 = 1;
export const INFO_NULL: u32 = 2;
export const INFO_HINT_64K: u32 = 4;
export const INFO_ZAPPED: u32 = 8;
export const INFO_DIR: u32 = 16;
export const INFO_POST: u32 = 32;
export const INFO_COMPACT: u32 = 64;
export const INFO_LEVEL_SHIFT: u32 = 8;
export const INFO_SIZE_SHIFT: u32 = 16;

// walker actions
const SUBTREE: i32 = 0;
const CONTINUE: i32 = 1;

const NONE: u32 = 0xffffffff;
const SIZE_CLASSES: u32 = 17;
const COMPACT_MIN: u32 = 1 << 20; // entry slots below which storage is never compacted

// ---- growable arrays in unmanaged memory (Array of native/budget.h) ----
// Their storage comes from budget.ts: growth is checked against the limit and
// memory.grow, and answers false instead of trapping.

@unmanaged class GrowArray<T> {
  data: usize = 0;
  len: u32 = 0;
  cap: u32 = 0;
  @inline get(i: u32): T {
    return load<T>(this.data + (<usize>i) * sizeof<T>());
  }
  @inline set(i: u32, v: T): void {
    store<T>(this.data + (<usize>i) * sizeof<T>(), v);
  }
  /** Capacity for n elements; false (nothing changed) when refused. `force` ignores the limit. */
  reserve(n: u64, force: bool = false): bool {
    if (n <= <u64>this.cap) return true;
    if (n > 0xffffffff) return false;
    let c = <u64>this.cap * 2;
    if (c < 64) c = 64;
    if (c < n) c = n;
    if (c > 0xffffffff) c = n;
    const p = memRealloc(this.data, c * sizeof<T>(), force);
    if (p == 0) return false;
    this.data = p;
    this.cap = <u32>c;
    return true;
  }
  /** Lengthens to n, zero-filling; callers reserved the room (or the sizes are tiny: init). */
  resize(n: u32): void {
    if (!this.reserve(n, true)) return;
    if (n > this.len) memory.fill(this.data + <usize>this.len * sizeof<T>(), 0, <usize>(n - this.len) * sizeof<T>());
    this.len = n;
  }
  /** Appends; grows past the limit if it must (logs that only feed reports, reserved room); false drops it. */
  push(v: T): bool {
    if (!this.reserve(<u64>this.len + 1, true)) return false;
    store<T>(this.data + <usize>this.len * sizeof<T>(), v);
    this.len++;
    return true;
  }
  @inline back(): T {
    return this.get(this.len - 1);
  }
  @inline pop(): T {
    this.len--;
    return this.get(this.len);
  }
  @inline clear(): void {
    this.len = 0;
  }
}

import { memRealloc } from "./budget";

@inline function rd64(p: usize): u64 {
  return load<u64>(p);
}
@inline function wr64(p: usize, v: u64): void {
  store<u64>(p, v);
}
@inline function pow2m1(sh: u32): u64 {
  return ((<u64>1) << <u64>sh) - 1;
}

// The module globals below are the native twin's `Space` (all page-table
// state of one engine instance): one WASM instance is one environment, so
// they need no struct around them. Keep them in step with that struct.

// ---- entry storage: blocks of 2^k entries, one LIFO free list per k ----
const eVal = new GrowArray<u64>();
const eMeta = new GrowArray<u8>();
let eTop: u32 = 0;
let eUsed: u32 = 0; // slots in blocks that are in use
const eFree = new GrowArray<u32>();

// ---- table pool (handle 0 unused) ----
const tLevel = new GrowArray<u8>();
const tShift = new GrowArray<u8>();
const tLog2 = new GrowArray<u8>();
const tFlags = new GrowArray<u8>(); // bit 0 alive, bit 1 compact
const tLive = new GrowArray<u32>();
const tBase = new GrowArray<u32>();
const tBorn = new GrowArray<u32>();
const tFree = new GrowArray<u32>();

// ---- page-table records (handle 0 unused; PtRec of the native twin as columns) ----
const pAlive = new GrowArray<u32>();
const pTop = new GrowArray<u32>();
const pLeaf = new GrowArray<u32>();
const pFlags = new GrowArray<u32>();
const pRoot = new GrowArray<u32>();
const pTables = new GrowArray<u32>();
const pEntries = new GrowArray<u32>();
const pSpanBits = new GrowArray<u32>();
const pSpanLast = new GrowArray<u64>();
const pShift = new GrowArray<u8>(); // MAX_SHIFTS per record
const ptFree = new GrowArray<u32>();

// ---- the current call's cost accounting ----
let serial: u32 = 0;
const liveLog = new GrowArray<u64>();
const created = new GrowArray<u32>();
let cAlloc: u32 = 0;
let cFree: u32 = 0;
const cost = new GrowArray<u32>();

// ---- staged apply records ----
const staging = new GrowArray<u32>();

let inited = false;

/** One more table slot in every per-table array (slot 0 is never a table). */
// Appends into room a reservation made. Should a reservation ever fall short,
// push grows past the limit rather than write out of bounds; only a platform
// out of memory then stops the engine (as the native twin aborts).
@inline function pushReserved<T>(a: GrowArray<T>, v: T): void {
  if (!a.push(v)) unreachable();
}

function newTableSlot(): void {
  pushReserved<u8>(tLevel, 0);
  pushReserved<u8>(tShift, 0);
  pushReserved<u8>(tLog2, 0);
  pushReserved<u8>(tFlags, 0);
  pushReserved<u32>(tLive, 0);
  pushReserved<u32>(tBase, 0);
  pushReserved<u32>(tBorn, 0);
}

function init(): void {
  if (inited) return;
  inited = true;
  eFree.resize(SIZE_CLASSES);
  for (let k: u32 = 0; k < SIZE_CLASSES; k++) eFree.set(k, NONE);
  cost.resize(5);
  // Slot 0 of the table pool and of the records: a few bytes.
  reserveTables(1);
  newTableSlot();
  ptReserve(true);
  ptPush();
}

/** Room for one more record in every record column, and for freeing it. */
function ptReserve(force: bool): bool {
  const n = <u64>pAlive.len + 1;
  return (
    pAlive.reserve(n, force) && pTop.reserve(n, force) && pLeaf.reserve(n, force) && pFlags.reserve(n, force) &&
    pRoot.reserve(n, force) && pTables.reserve(n, force) && pEntries.reserve(n, force) &&
    pSpanBits.reserve(n, force) && pSpanLast.reserve(n, force) && pShift.reserve(n * MAX_SHIFTS, force) &&
    ptFree.reserve(n, force)
  );
}

/**
 * Room for `extra` more table slots (and their free-list entries). false
 * (nothing changed but capacity) when the budget says no.
 */
function reserveTables(extra: u64): bool {
  const n = <u64>tLevel.len + extra;
  if (n > 0xffffffff) return false;
  return (
    tLevel.reserve(n) && tShift.reserve(n) && tLog2.reserve(n) && tFlags.reserve(n) &&
    tLive.reserve(n) && tBase.reserve(n) && tBorn.reserve(n) && tFree.reserve(n)
  );
}

/** Room for `slots` more entries above eTop (free blocks are not counted on). */
function reserveEntries(slots: u64): bool {
  const need = <u64>eTop + slots;
  if (need > 0xffffffff) return false;
  if (need <= <u64>eVal.cap) return true;
  let cap = <u64>eVal.cap * 2;
  if (cap < 4096) cap = 4096;
  if (cap < need) cap = need;
  if (cap > 0xffffffff) cap = need;
  return eVal.reserve(cap) && eMeta.reserve(cap);
}

function ptPush(): void {
  pAlive.push(0);
  pTop.push(0);
  pLeaf.push(0);
  pFlags.push(0);
  pRoot.push(0);
  pTables.push(0);
  pEntries.push(0);
  pSpanBits.push(0);
  pSpanLast.push(0);
  pShift.resize(pShift.len + MAX_SHIFTS);
}

@inline function shiftOf(pt: u32, L: u32): u32 {
  return <u32>pShift.get(pt * MAX_SHIFTS + L);
}

function ptValid(pt: u32): bool {
  return pt > 0 && pt < pAlive.len && pAlive.get(pt) != 0;
}

// ---- storage ----

function siftDown(a: usize, root: u32, n: u32): void {
  for (;;) {
    let child: u32 = 2 * root + 1;
    if (child >= n) return;
    if (child + 1 < n && load<u64>(a + (<usize>child << 3)) < load<u64>(a + (<usize>(child + 1) << 3))) child++;
    const x = load<u64>(a + (<usize>root << 3));
    const y = load<u64>(a + (<usize>child << 3));
    if (x >= y) return;
    store<u64>(a + (<usize>root << 3), y);
    store<u64>(a + (<usize>child << 3), x);
    root = child;
  }
}

function sortU64(a: usize, n: u32): void {
  if (n < 2) return;
  for (let s = n / 2; s-- > 0; ) siftDown(a, s, n);
  for (let end = n - 1; end > 0; end--) {
    const x = load<u64>(a);
    store<u64>(a, load<u64>(a + (<usize>end << 3)));
    store<u64>(a + (<usize>end << 3), x);
    siftDown(a, 0, end);
  }
}


export function blockAlloc(log2: u32): u32 {
  const n: u32 = (<u32>1) << log2;
  let b = eFree.get(log2);
  if (b != NONE) {
    eFree.set(log2, <u32>eVal.get(b));
  } else {
    b = eTop;
    eTop += n;
    // reserveEntries made the room (grow past the limit should it ever fall short)
    if (eTop > eVal.len) {
      if (!eVal.reserve(eTop, true) || !eMeta.reserve(eTop, true)) unreachable();
      eVal.resize(eTop);
      eMeta.resize(eTop);
    }
  }
  memory.fill(eMeta.data + <usize>b, 0, <usize>n);
  eUsed += n;
  return b;
}

export function blockFree(b: u32, log2: u32): void {
  eVal.set(b, <u64>eFree.get(log2));
  eFree.set(log2, b);
  eUsed -= (<u32>1) << log2;
}

// When at most a quarter of a large entry storage is in use (after a big
// unbind or destroy), moves the live blocks to the bottom and drops every
// free list. Only tBase changes, so no handle, walk or translation sees the
// move. A WASM memory cannot shrink: the arrays keep their capacity for the
// next binds instead of growing further (the native twin releases it).
const compactOrder = new GrowArray<u64>();
function compactEntries(): void {
  if (eTop < COMPACT_MIN || eUsed > eTop / 4) return;
  const order = compactOrder; // (base << 32) | table, for every live table
  order.clear();
  // Compaction is an optimisation: without memory for its index it waits.
  if (!order.reserve(tLevel.len)) return;
  for (let t: u32 = 1; t < tLevel.len; t++) {
    if ((tFlags.get(t) & 1) != 0) order.push(((<u64>tBase.get(t)) << 32) | <u64>t);
  }
  sortU64(order.data, order.len);
  let top: u32 = 0;
  for (let i: u32 = 0; i < order.len; i++) {
    const t = <u32>order.get(i);
    const from = tBase.get(t);
    const n: u32 = (<u32>1) << tLog2.get(t);
    if (from != top) {
      memory.copy(eVal.data + (<usize>top << 3), eVal.data + (<usize>from << 3), <usize>n << 3);
      memory.copy(eMeta.data + <usize>top, eMeta.data + <usize>from, <usize>n);
      tBase.set(t, top);
    }
    top += n;
  }
  for (let k: u32 = 0; k < SIZE_CLASSES; k++) eFree.set(k, NONE);
  eTop = top;
}

export function tableAlloc(pt: u32, level: u32, compact: bool): u32 {
  let sh: u32;
  let log2: u32;
  if (compact) {
    sh = SHIFT_64K;
    log2 = shiftOf(pt, 1) - SHIFT_64K;
  } else {
    const top = pTop.get(pt);
    sh = shiftOf(pt, level);
    log2 = level == top ? shiftOf(pt, top) - shiftOf(pt, top - 1) : shiftOf(pt, level + 1) - shiftOf(pt, level);
  }
  let t: u32;
  if (tFree.len > 0) {
    t = tFree.pop();
  } else {
    t = tLevel.len;
    newTableSlot();
  }
  tLevel.set(t, <u8>level);
  tShift.set(t, <u8>sh);
  tLog2.set(t, <u8>log2);
  tFlags.set(t, compact ? 3 : 1);
  tLive.set(t, 0);
  tBase.set(t, blockAlloc(log2));
  tBorn.set(t, serial);
  created.push(t);
  cAlloc++;
  pTables.set(pt, pTables.get(pt) + 1);
  return t;
}

// Releases a table and every table below it (hidden children of zapped
// entries included), without writing any entry.
export function releaseTable(pt: u32, t: u32): void {
  if (tLevel.get(t) > 0) {
    const n: u32 = (<u32>1) << tLog2.get(t);
    for (let i: u32 = 0; i < n; i++) {
      const e = tBase.get(t) + i;
      if ((eMeta.get(e) & E_KIND) == E_DIR) releaseTable(pt, <u32>eVal.get(e));
    }
  }
  pEntries.set(pt, pEntries.get(pt) - tLive.get(t));
  pTables.set(pt, pTables.get(pt) - 1);
  cFree++;
  blockFree(tBase.get(t), tLog2.get(t));
  tFlags.set(t, 0);
  tLive.set(t, 0);
  tFree.push(t);
}

// Writes one entry, keeping live counts; a write into a table the current
// call did not create is logged for the cost report.
export function writeEntry(pt: u32, t: u32, idx: u32, meta: u8, val: u64): void {
  const e = tBase.get(t) + idx;
  const was = (eMeta.get(e) & E_KIND) != 0;
  const is = (meta & E_KIND) != 0;
  if (was != is) {
    if (is) {
      tLive.set(t, tLive.get(t) + 1);
      pEntries.set(pt, pEntries.get(pt) + 1);
    } else {
      tLive.set(t, tLive.get(t) - 1);
      pEntries.set(pt, pEntries.get(pt) - 1);
    }
  }
  eMeta.set(e, meta);
  eVal.set(e, val);
  if (tBorn.get(t) != serial) liveLog.push(((<u64>t) << 32) | <u64>idx);
}

// ---- cost accounting ----

function beginCall(): void {
  serial++;
  if (serial == 0) serial = 1;
  liveLog.clear();
  created.clear();
  cAlloc = 0;
  cFree = 0;
}

function endCall(): void {
  const n = liveLog.len;
  let k: u32 = 1;
  while (k < n && liveLog.get(k - 1) <= liveLog.get(k)) k++;
  if (k < n) sortU64(liveLog.data, n); // the log is usually in order already
  let live: u32 = 0;
  let records: u32 = 0;
  let prev: u64 = ~(<u64>0);
  for (let i: u32 = 0; i < n; i++) {
    const k = liveLog.get(i);
    if (k == prev) continue;
    if (prev == ~(<u64>0) || (k >> 32) != (prev >> 32) || <u32>k != <u32>prev + 1) records++;
    live++;
    prev = k;
  }
  let fresh: u32 = 0;
  for (let i: u32 = 0; i < created.len; i++) {
    const t = created.get(i);
    if ((tFlags.get(t) & 1) != 0 && tBorn.get(t) == serial) {
      fresh += tLive.get(t);
      tBorn.set(t, 0);
    }
  }
  cost.set(0, live);
  cost.set(1, fresh);
  cost.set(2, cAlloc);
  cost.set(3, cFree);
  cost.set(4, records);
}

// ---- the generic walker (xe_pt_walk_range / xe_pt_walk_shared) ----
//
// Visits the entries of table t (level L) overlapping [addr, last]. For each
// entry: pre(t, idx, L, a, l) with the entry's part [a, l] of the range; then,
// unless pre returned CONTINUE, descent into the entry's child when it is a
// live (not zapped) directory entry; then post(t, idx, L, a, l). In shared
// mode fully covered entries are skipped and the walk jumps from the first
// entry straight to the last one: only the (at most two) edge entries of each
// table are visited. A visitor stops the walk by setting `abort`.
function walkRange<V>(v: V, t: u32, L: u32, addr: u64, last: u64, shared: bool): bool {
  const sh = <u32>tShift.get(t);
  const esz1 = pow2m1(sh);
  const mask: u32 = ((<u32>1) << tLog2.get(t)) - 1;
  let idx = <u32>(addr >> <u64>sh) & mask;
  for (;;) {
    let elast = addr | esz1;
    if (elast > last) elast = last;
    const covered = (addr & esz1) == 0 && elast - addr == esz1;
    if (!(shared && covered)) {
      const act = v.pre(t, idx, L, addr, elast);
      if (v.abort) return false;
      if (act == SUBTREE && L > 0) {
        const e = tBase.get(t) + idx;
        if ((eMeta.get(e) & (E_KIND | E_ZAPPED)) == E_DIR) {
          if (!walkRange<V>(v, <u32>eVal.get(e), L - 1, addr, elast, shared)) return false;
        }
      }
      v.post(t, idx, L, addr, elast);
      if (v.abort) return false;
    }
    if (elast == last) return true;
    const next = elast + 1;
    if (shared) {
      const lastStart = last & ~esz1;
      if (lastStart > next) {
        addr = lastStart;
        idx = <u32>(addr >> <u64>sh) & mask;
        continue;
      }
    }
    addr = next;
    idx++;
  }
  return true;
}

// ---- helpers shared by bind, unbind and zap ----

// Replaces the leaf entry (t, idx) at level L > 0 by a directory entry whose
// new child holds the same mapping expressed one level down.
export function splitLeaf(pt: u32, t: u32, idx: u32, L: u32): u32 {
  const e = tBase.get(t) + idx;
  const kind = eMeta.get(e) & E_KIND;
  const val = eVal.get(e);
  const c = tableAlloc(pt, L - 1, false);
  const n: u32 = (<u32>1) << tLog2.get(c);
  const csh = <u64>tShift.get(c);
  const cb = tBase.get(c);
  for (let j: u32 = 0; j < n; j++) {
    eMeta.set(cb + j, kind);
    eVal.set(cb + j, kind == E_LEAF ? val + ((<u64>j) << csh) : 0);
  }
  tLive.set(c, n);
  pEntries.set(pt, pEntries.get(pt) + n);
  writeEntry(pt, t, idx, E_DIR, <u64>c);
  return c;
}

// Replaces the compact level-0 child of (t, idx) by a normal one holding the
// same mappings (each 64 KiB entry as 2^(16-s0) entries).
export function decompact(pt: u32, t: u32, idx: u32): u32 {
  const old = <u32>eVal.get(tBase.get(t) + idx);
  const c = tableAlloc(pt, 0, false);
  const s0 = shiftOf(pt, 0);
  const r: u32 = (<u32>1) << (SHIFT_64K - s0);
  const on: u32 = (<u32>1) << tLog2.get(old);
  const ob = tBase.get(old);
  const cb = tBase.get(c);
  let live: u32 = 0;
  for (let j: u32 = 0; j < on; j++) {
    const m = eMeta.get(ob + j);
    if ((m & E_KIND) == E_EMPTY) continue;
    const v = eVal.get(ob + j);
    for (let k: u32 = 0; k < r; k++) {
      eMeta.set(cb + j * r + k, m);
      eVal.set(cb + j * r + k, (m & E_KIND) == E_LEAF ? v + ((<u64>k) << <u64>s0) : 0);
    }
    live += r;
  }
  tLive.set(c, live);
  pEntries.set(pt, pEntries.get(pt) + live);
  releaseTable(pt, old);
  writeEntry(pt, t, idx, E_DIR, <u64>c);
  return c;
}

// The index run [runI0, runI1] of the entries of table t lying wholly inside [addr, last].
let runI0: u32 = 0;
let runI1: u32 = 0;
function fullRun(t: u32, addr: u64, last: u64): bool {
  const sh = <u32>tShift.get(t);
  const esz1 = pow2m1(sh);
  const mask: u32 = ((<u32>1) << tLog2.get(t)) - 1;
  let a = <i64>(<u32>(addr >> <u64>sh) & mask);
  let b = <i64>(<u32>(last >> <u64>sh) & mask);
  if ((addr & esz1) != 0) a++;
  if ((last & esz1) != esz1) b--;
  if (a > b) return false;
  runI0 = <u32>a;
  runI1 = <u32>b;
  return true;
}

// The kill rule: every non-empty entry of table t lies inside [addr, last],
// or is a live directory entry whose child satisfies the rule itself.
export function killable(t: u32, addr: u64, last: u64): bool {
  const live = tLive.get(t);
  const sh = <u32>tShift.get(t);
  const esz1 = pow2m1(sh);
  const mask: u32 = ((<u32>1) << tLog2.get(t)) - 1;
  const i0 = <u32>(addr >> <u64>sh) & mask;
  const i1 = <u32>(last >> <u64>sh) & mask;
  if (i1 - i0 + 1 < live) return false;
  let count: u32 = 0;
  let es = addr & ~esz1;
  for (let i = i0; i <= i1; i++, es += esz1 + 1) {
    const e = tBase.get(t) + i;
    const m = eMeta.get(e);
    if ((m & E_KIND) == E_EMPTY) continue;
    const el = es + esz1;
    if (es >= addr && el <= last) {
      count++;
      continue;
    }
    if ((m & (E_KIND | E_ZAPPED)) == E_DIR && killable(<u32>eVal.get(e), es > addr ? es : addr, el < last ? el : last)) {
      count++;
      continue;
    }
    return false;
  }
  return count == live;
}

// Unbind of the run of table t wholly inside [addr, last]: non-empty entries
// are cleared, their subtrees released.
export function clearRun(pt: u32, t: u32, addr: u64, last: u64): void {
  if (!fullRun(t, addr, last)) return;
  const i1 = runI1;
  for (let i = runI0; i <= i1; i++) {
    const e = tBase.get(t) + i;
    const m = eMeta.get(e);
    if ((m & E_KIND) == E_EMPTY) continue;
    if ((m & E_KIND) == E_DIR) releaseTable(pt, <u32>eVal.get(e));
    writeEntry(pt, t, i, E_EMPTY, 0);
  }
}

// Zap of the run of table t wholly inside [addr, last]: visible entries
// become zapped, nothing is released.
export function zapRun(pt: u32, t: u32, addr: u64, last: u64): void {
  if (!fullRun(t, addr, last)) return;
  const i1 = runI1;
  for (let i = runI0; i <= i1; i++) {
    const e = tBase.get(t) + i;
    const m = eMeta.get(e);
    if ((m & E_KIND) == E_EMPTY || (m & E_ZAPPED) != 0) continue;
    writeEntry(pt, t, i, m | E_ZAPPED, eVal.get(e));
  }
}

@inline function aligned64K(addr: u64, last: u64): bool {
  return (addr & 0xffff) == 0 && (last & 0xffff) == 0xffff;
}

// ---- bind (xe_pt_stage_bind) ----

class BindWalk {
  pt: u32 = 0;
  segs: usize = 0;
  isNull: bool = false;
  seg: u32 = 0; // segment holding the current address
  segVa: u64 = 0; // va where that segment starts
  abort: bool = false;

  @inline segPa(s: u32): u64 {
    return rd64(this.segs + ((<usize>s * <usize>SEG_WORDS) << 2));
  }
  @inline segLen(s: u32): u64 {
    return rd64(this.segs + ((<usize>s * <usize>SEG_WORDS + 2) << 2));
  }

  seek(addr: u64): void {
    while (addr - this.segVa >= this.segLen(this.seg)) {
      this.segVa += this.segLen(this.seg);
      this.seg++;
    }
  }

  // Every 64 KiB block of [addr, last] (64 KiB aligned) lies in one segment
  // at a 64 KiB aligned physical address.
  scan64K(addr: u64, last: u64): bool {
    if (this.isNull) return true;
    let s = this.seg;
    let sv = this.segVa;
    for (let va = addr; ; va += 0x10000) {
      while (va - sv >= this.segLen(s)) {
        sv += this.segLen(s);
        s++;
      }
      if (va + 0xffff - sv >= this.segLen(s)) return false;
      if (((this.segPa(s) + (va - sv)) & 0xffff) != 0) return false;
      if (va + 0xffff == last) return true;
    }
    return false;
  }

  // The level-0 entries of [addr, last] in table c become leaves: what the
  // walker's visit of each level-0 entry does (pre at L = 0), as one loop.
  fillLeaves(c: u32, addr: u64, last: u64): void {
    const sh = <u32>tShift.get(c);
    const idx0 = <u32>(addr >> <u64>sh) & (((<u32>1) << tLog2.get(c)) - 1);
    const n = <u32>((last - addr) >> <u64>sh) + 1;
    const m = eMeta.data + <usize>(tBase.get(c) + idx0);
    const v = eVal.data + (<usize>(tBase.get(c) + idx0) << 3);
    // entries that were empty (all of them in a table with none live), then
    // the kinds in one fill and the values in a loop that does nothing else
    let added: u32 = n;
    if (tLive.get(c) != 0) {
      added = 0;
      for (let i: u32 = 0; i < n; i++) added += (load<u8>(m + <usize>i) & E_KIND) == E_EMPTY ? 1 : 0;
    }
    memory.fill(m, this.isNull ? E_NULL : E_LEAF, <usize>n);
    if (this.isNull) {
      memory.fill(v, 0, <usize>n << 3);
    } else {
      // seek, with the cursor in locals: the entry stores below could alias
      // the walker's fields, which would be reloaded for every segment
      let seg = this.seg;
      let segVa = this.segVa;
      let sp = this.segs + ((<usize>seg * <usize>SEG_WORDS) << 2);
      let len = rd64(sp + 8);
      const esz = (<u64>1) << <u64>sh;
      let i: u32 = 0;
      let va = addr;
      while (i < n) {
        while (va - segVa >= len) {
          segVa += len;
          seg++;
          sp += <usize>SEG_WORDS << 2;
          len = rd64(sp + 8);
        }
        const off = va - segVa;
        const room = (len - off) >> <u64>sh; // whole entries left in the segment
        const k: u32 = room < <u64>(n - i) ? <u32>room : n - i;
        let pa = rd64(sp) + off;
        for (let j: u32 = 0; j < k; j++, i++, pa += esz) store<u64>(v + (<usize>i << 3), pa);
        va += (<u64>k) << <u64>sh;
      }
      this.seg = seg;
      this.segVa = segVa;
    }
    tLive.set(c, tLive.get(c) + added);
    pEntries.set(this.pt, pEntries.get(this.pt) + added);
    if (tBorn.get(c) != serial) {
      for (let i: u32 = 0; i < n; i++) liveLog.push(((<u64>c) << 32) | <u64>(idx0 + i));
    }
  }

  // Descends into the child of (t, idx) at level L: level-0 children are filled at once.
  descend(t: u32, idx: u32, L: u32, addr: u64, last: u64): i32 {
    if (L != 1) return SUBTREE;
    this.fillLeaves(<u32>eVal.get(tBase.get(t) + idx), addr, last);
    return CONTINUE;
  }

  pre(t: u32, idx: u32, L: u32, addr: u64, last: u64): i32 {
    const pt = this.pt;
    const sh = <u32>tShift.get(t);
    const esz1 = pow2m1(sh);
    const e = tBase.get(t) + idx;
    const m = eMeta.get(e);
    const kind = m & E_KIND;
    const covered = (addr & esz1) == 0 && last - addr == esz1;
    if (!this.isNull) this.seek(addr);
    let leaf = L == 0;
    if (!leaf && L <= pLeaf.get(pt) && covered) {
      leaf =
        this.isNull ||
        (last - this.segVa < this.segLen(this.seg) && ((this.segPa(this.seg) + (addr - this.segVa)) & esz1) == 0);
    }
    if (leaf) {
      if (kind == E_DIR) releaseTable(pt, <u32>eVal.get(e));
      if (this.isNull) {
        writeEntry(pt, t, idx, E_NULL, 0);
      } else {
        writeEntry(pt, t, idx, E_LEAF, this.segPa(this.seg) + (addr - this.segVa));
      }
      return CONTINUE;
    }
    if (covered || kind != E_DIR || (m & E_ZAPPED) != 0) {
      if (!covered && (kind == E_LEAF || kind == E_NULL) && (m & E_ZAPPED) == 0) {
        splitLeaf(pt, t, idx, L);
        return this.descend(t, idx, L, addr, last);
      }
      const old = <u32>eVal.get(e);
      const compact = L == 1 && covered && (pFlags.get(pt) & CREATE_COMPACT) != 0 && this.scan64K(addr, last);
      const c = tableAlloc(pt, L - 1, compact);
      if (kind == E_DIR) releaseTable(pt, old);
      writeEntry(pt, t, idx, E_DIR | (compact ? E_COMPACT_CHILD : 0), <u64>c);
      return this.descend(t, idx, L, addr, last);
    }
    if ((m & E_COMPACT_CHILD) != 0 && !(aligned64K(addr, last) && this.scan64K(addr, last))) decompact(pt, t, idx);
    return this.descend(t, idx, L, addr, last);
  }

  post(t: u32, idx: u32, L: u32, addr: u64, last: u64): void {}
}

// ---- unbind (xe_pt_stage_unbind with the kill rule) ----

class UnbindWalk {
  pt: u32 = 0;
  abort: bool = false;

  pre(t: u32, idx: u32, L: u32, addr: u64, last: u64): i32 {
    const pt = this.pt;
    const e = tBase.get(t) + idx;
    const m = eMeta.get(e);
    const kind = m & E_KIND;
    if (kind == E_EMPTY || (m & E_ZAPPED) != 0) return CONTINUE;
    if (kind != E_DIR) {
      if (L == 0) return CONTINUE;
      splitLeaf(pt, t, idx, L);
      return SUBTREE;
    }
    const c = <u32>eVal.get(e);
    if (killable(c, addr, last)) {
      releaseTable(pt, c);
      writeEntry(pt, t, idx, E_EMPTY, 0);
      return CONTINUE;
    }
    if ((m & E_COMPACT_CHILD) != 0 && !aligned64K(addr, last)) decompact(pt, t, idx);
    return SUBTREE;
  }

  post(t: u32, idx: u32, L: u32, addr: u64, last: u64): void {
    const e = tBase.get(t) + idx;
    if ((eMeta.get(e) & (E_KIND | E_ZAPPED)) != E_DIR) return;
    clearRun(this.pt, <u32>eVal.get(e), addr, last);
  }
}

// ---- zap (xe_pt_zap_ptes) ----

class ZapWalk {
  pt: u32 = 0;
  abort: bool = false;

  pre(t: u32, idx: u32, L: u32, addr: u64, last: u64): i32 {
    return (eMeta.get(tBase.get(t) + idx) & (E_KIND | E_ZAPPED)) == E_DIR ? SUBTREE : CONTINUE;
  }

  post(t: u32, idx: u32, L: u32, addr: u64, last: u64): void {
    const e = tBase.get(t) + idx;
    if ((eMeta.get(e) & (E_KIND | E_ZAPPED)) != E_DIR) return;
    zapRun(this.pt, <u32>eVal.get(e), addr, last);
  }
}

const bindWalk = new BindWalk();
const unbindWalk = new UnbindWalk();
const zapWalk = new ZapWalk();

function runBind(pt: u32, va: u64, last: u64, segs: usize, isNull: bool): void {
  const v = bindWalk;
  v.pt = pt;
  v.segs = segs;
  v.isNull = isNull;
  v.seg = 0;
  v.segVa = va;
  v.abort = false;
  walkRange<BindWalk>(v, pRoot.get(pt), pTop.get(pt), va, last, false);
}

function runUnbind(pt: u32, va: u64, last: u64): void {
  const v = unbindWalk;
  v.pt = pt;
  v.abort = false;
  walkRange<UnbindWalk>(v, pRoot.get(pt), pTop.get(pt), va, last, true);
  clearRun(pt, pRoot.get(pt), va, last);
}

function runZap(pt: u32, va: u64, last: u64): void {
  const v = zapWalk;
  v.pt = pt;
  v.abort = false;
  walkRange<ZapWalk>(v, pRoot.get(pt), pTop.get(pt), va, last, true);
  zapRun(pt, pRoot.get(pt), va, last);
}

// ---- queries ----

// PS64: a level-0 leaf of a normal table whose aligned 64 KiB block holds
// 2^(16-s0) visible leaves of one kind, physically contiguous and 64 KiB aligned.
export function hint64K(pt: u32, t: u32, idx: u32): bool {
  if (tLevel.get(t) != 0 || (tFlags.get(t) & 2) != 0) return false;
  const s0 = shiftOf(pt, 0);
  if (!(s0 < SHIFT_64K && shiftOf(pt, 1) > SHIFT_64K)) return false;
  const r: u32 = (<u32>1) << (SHIFT_64K - s0);
  const j0 = idx & ~(r - 1);
  const b = tBase.get(t) + j0;
  const m0 = eMeta.get(b);
  if ((m0 & E_ZAPPED) != 0 || (m0 & E_KIND) == E_EMPTY) return false;
  const v0 = eVal.get(b);
  if ((m0 & E_KIND) == E_LEAF && (v0 & 0xffff) != 0) return false;
  for (let j: u32 = 1; j < r; j++) {
    if (eMeta.get(b + j) != m0) return false;
    if ((m0 & E_KIND) == E_LEAF && eVal.get(b + j) != v0 + ((<u64>j) << <u64>s0)) return false;
  }
  return true;
}

export function entryInfo(pt: u32, t: u32, idx: u32, L: u32): u32 {
  const m = eMeta.get(tBase.get(t) + idx);
  const kind = m & E_KIND;
  let info: u32 = (L << INFO_LEVEL_SHIFT) | ((<u32>tShift.get(t)) << INFO_SIZE_SHIFT);
  if (kind == E_LEAF || kind == E_NULL) info |= INFO_MAPPED;
  if (kind == E_NULL) info |= INFO_NULL;
  if (kind == E_DIR) info |= INFO_DIR;
  if ((m & E_ZAPPED) != 0) info |= INFO_ZAPPED;
  if ((m & E_COMPACT_CHILD) != 0 || (tFlags.get(t) & 2) != 0) info |= INFO_COMPACT;
  if ((kind == E_LEAF || kind == E_NULL) && (m & E_ZAPPED) == 0 && hint64K(pt, t, idx)) info |= INFO_HINT_64K;
  return info;
}

class OutWalk {
  pt: u32 = 0;
  flags: u32 = 0;
  top: u32 = 0;
  hasCursor: bool = false;
  cpos: u64 = 0;
  crank: u32 = 0;
  data: usize = 0;
  max: u32 = 0;
  count: u32 = 0;
  lastPos: u64 = 0;
  lastRank: u32 = 0;
  abort: bool = false;

  @inline after(pos: u64, rank: u32): bool {
    return !this.hasCursor || pos > this.cpos || (pos == this.cpos && rank > this.crank);
  }

  emit(t: u32, idx: u32, L: u32, addr: u64, post: u32, pos: u64, rank: u32): void {
    if (this.count == this.max) {
      this.abort = true;
      return;
    }
    const e = tBase.get(t) + idx;
    const m = eMeta.get(e);
    const kind = m & E_KIND;
    const esz1 = pow2m1(<u32>tShift.get(t));
    const r = this.data + ((<usize>this.count * <usize>WALK_WORDS) << 2);
    wr64(r, addr & ~esz1);
    wr64(r + 8, kind == E_LEAF ? eVal.get(e) : 0);
    store<u32>(r + 16, entryInfo(this.pt, t, idx, L) | post);
    store<u32>(r + 20, kind == E_DIR ? tLive.get(<u32>eVal.get(e)) : 0);
    store<u32>(r + 24, t);
    store<u32>(r + 28, idx);
    this.count++;
    this.lastPos = pos;
    this.lastRank = rank;
  }

  pre(t: u32, idx: u32, L: u32, addr: u64, last: u64): i32 {
    if (this.hasCursor && last < this.cpos) return CONTINUE;
    const m = eMeta.get(tBase.get(t) + idx);
    const kind = m & E_KIND;
    let want: bool;
    if (kind == E_EMPTY) {
      want = (this.flags & WALK_EMPTY) != 0;
    } else if ((m & E_ZAPPED) != 0) {
      want = (this.flags & WALK_ZAPPED) != 0;
    } else if (kind == E_DIR) {
      want = (this.flags & WALK_DIRS) != 0;
    } else {
      want = true;
    }
    if (want && this.after(addr, this.top - L)) this.emit(t, idx, L, addr, 0, addr, this.top - L);
    return SUBTREE;
  }

  post(t: u32, idx: u32, L: u32, addr: u64, last: u64): void {
    if ((this.flags & WALK_POST) == 0) return;
    if ((eMeta.get(tBase.get(t) + idx) & (E_KIND | E_ZAPPED)) != E_DIR) return;
    if (this.after(last, 64 + L)) this.emit(t, idx, L, last, INFO_POST, last, 64 + L);
  }
}

const outWalk = new OutWalk();

// ---- public operations (marshalled by page_table_api.ts) ----

export function geomValid(shifts: usize, n: u32, leaf: u32, flags: u32): i32 {
  if (n < 2 || n > MAX_SHIFTS) return -EINVAL_PT;
  for (let L: u32 = 0; L + 1 < n; L++) {
    const a = load<u32>(shifts + (<usize>L << 2));
    const b = load<u32>(shifts + (<usize>(L + 1) << 2));
    if (b <= a || b - a > 16) return -EINVAL_PT;
  }
  const sTop = load<u32>(shifts + (<usize>(n - 1) << 2));
  const sBelow = load<u32>(shifts + (<usize>(n - 2) << 2));
  const span = <u64>sTop + <u64>(sTop - sBelow);
  if (span > 64) return -EINVAL_PT;
  if (leaf > n - 1) return -EINVAL_PT;
  if ((flags & ~CREATE_COMPACT) != 0) return -EINVAL_PT;
  if ((flags & CREATE_COMPACT) != 0 && !(load<u32>(shifts) < SHIFT_64K && load<u32>(shifts + 4) > SHIFT_64K)) {
    return -EINVAL_PT;
  }
  return 0;
}

export function ptCreate(shifts: usize, n: u32, leaf: u32, flags: u32): i32 {
  init();
  const r = geomValid(shifts, n, leaf, flags);
  if (r < 0) return r;
  // The record (and room to free it again) and the root table, up front.
  const sTop0 = load<u32>(shifts + (<usize>(n - 1) << 2));
  const rootEntries = (<u64>1) << <u64>(sTop0 - load<u32>(shifts + (<usize>(n - 2) << 2)));
  if ((ptFree.len == 0 && !ptReserve(false)) || !reserveTables(1) || !reserveEntries(rootEntries)) return -ENOMEM_PT;
  let pt: u32;
  if (ptFree.len > 0) {
    pt = ptFree.pop();
  } else {
    pt = pAlive.len;
    ptPush();
  }
  pAlive.set(pt, 1);
  pTop.set(pt, n - 1);
  pLeaf.set(pt, leaf);
  pFlags.set(pt, flags);
  for (let L: u32 = 0; L < MAX_SHIFTS; L++) {
    pShift.set(pt * MAX_SHIFTS + L, L < n ? <u8>load<u32>(shifts + (<usize>L << 2)) : 0);
  }
  const sTop = load<u32>(shifts + (<usize>(n - 1) << 2));
  const bits = sTop + (sTop - load<u32>(shifts + (<usize>(n - 2) << 2)));
  pSpanBits.set(pt, bits);
  pSpanLast.set(pt, bits == 64 ? ~(<u64>0) : ((<u64>1) << <u64>bits) - 1);
  pTables.set(pt, 0);
  pEntries.set(pt, 0);
  const root = tableAlloc(pt, n - 1, false);
  tBorn.set(root, 0);
  pRoot.set(pt, root);
  return <i32>pt;
}

export function ptDestroy(pt: u32): i32 {
  init();
  if (!ptValid(pt)) return -EINVAL_PT;
  releaseTable(pt, pRoot.get(pt));
  pAlive.set(pt, 0);
  ptFree.push(pt);
  compactEntries();
  return 0;
}

function rangeOk(pt: u32, va: u64, size: u64): bool {
  const mask = pow2m1(shiftOf(pt, 0));
  const spanLast = pSpanLast.get(pt);
  if (size == 0 || (va & mask) != 0 || (size & mask) != 0) return false;
  if (size - 1 > spanLast) return false;
  return va <= spanLast - (size - 1);
}

// Leaves a bind of [sa, sl] (inclusive, one segment starting at pa, or a
// null binding) writes: at each level L <= leaf, top-down, the entries wholly
// inside [sa, sl] that no higher leaf holds become leaves if the segment is
// physically aligned to their size (always at level 0 and for null ones).
// Independent of what the table holds; compact tables write fewer. Adds the
// leaves of each level to leavesByLevel[L].
function pieceLeaves(pt: u32, sa: u64, sl: u64, pa: u64, isNull: bool): u64 {
  const leaf = pLeaf.get(pt);
  let leaves: u64 = 0;
  let above: u64 = 0; // entries of the current level held by higher leaves
  for (let L = leaf + 1; L-- > 0; ) {
    const sh = shiftOf(pt, L);
    const m = pow2m1(sh);
    if (L < leaf) above <<= <u64>(shiftOf(pt, L + 1) - sh);
    const start = (sa + m) & ~m;
    if (start < sa || start > sl) continue; // no whole entry at this level (or wrapped)
    const d = sl - start;
    const whole = (d >> <u64>sh) + ((d & m) == m ? 1 : 0);
    if (L > 0 && !isNull && ((pa - sa) & m) != 0) continue;
    leaves += whole - above;
    store<u64>(leavesByLevel + (<usize>L << 3), load<u64>(leavesByLevel + (<usize>L << 3)) + (whole - above));
    above = whole;
  }
  return leaves;
}

/** The leaves per level of the call being validated (MAX_SHIFTS u64s). */
const leavesByLevel: usize = memory.data(<i32>(MAX_SHIFTS * 8), 8);
/** reserveFor's prefix sums: below[L] = the call's leaves at levels below L (MAX_SHIFTS + 1 u64s). */
const leavesBelow: usize = memory.data(<i32>((MAX_SHIFTS + 1) * 8), 8);

// Validates every record; -> record count, or -EINVAL with the failing index
// stored at `fail`, or -ENOMEM when the binds would write more than `budget`
// leaves (`fail` the record passing it, `needLeaves` the leaves up to and including it).
// leavesByLevel[L]: the leaves the valid records write at level L.
function validateRecords(pt: u32, w: usize, n: u32, budget: u64, fail: usize, needLeaves: usize): i32 {
  memory.fill(leavesByLevel, 0, <usize>(pTop.get(pt) + 1) << 3);
  const s0 = shiftOf(pt, 0);
  const mask = pow2m1(s0);
  // segments up to this length have leaves at level 0 only (see pieceLeaves)
  const smallMax: u64 = pLeaf.get(pt) == 0 ? ~(<u64>0) : pow2m1(shiftOf(pt, 1));
  let pos: u64 = 0;
  let idx: u32 = 0;
  let leaves: u64 = 0;
  while (pos < <u64>n) {
    store<u32>(fail, idx);
    if (<u64>n - pos < <u64>REC_HEADER) return -EINVAL_PT;
    const p = w + (<usize>pos << 2);
    const kind = load<u32>(p);
    const nseg = load<u32>(p + 4);
    const va = rd64(p + 8);
    const size = rd64(p + 16);
    let need: u64 = <u64>REC_HEADER;
    if (kind == REC_BIND) {
      if (nseg == 0) return -EINVAL_PT;
      need += <u64>nseg * <u64>SEG_WORDS;
      if (need > <u64>n - pos) return -EINVAL_PT;
    } else if (kind == REC_BIND_NULL || kind == REC_UNBIND || kind == REC_ZAP) {
      if (nseg != 0) return -EINVAL_PT;
    } else {
      return -EINVAL_PT;
    }
    if (!rangeOk(pt, va, size)) return -EINVAL_PT;
    if (kind == REC_BIND) {
      // The check pass makes no call, so its loop keeps everything in
      // registers. A segment shorter than a level-1 entry holds no whole
      // entry above level 0: its leaves are its level-0 entries, summed as
      // bytes and shifted once. Longer ones are counted afterwards.
      let sum: u64 = 0;
      let small: u64 = 0;
      let s = p + (<usize>REC_HEADER << 2);
      const end = s + ((<usize>nseg * <usize>SEG_WORDS) << 2);
      for (; s < end; s += <usize>SEG_WORDS << 2) {
        const pa = rd64(s);
        const len = rd64(s + 8);
        if (len == 0 || ((pa | len) & mask) != 0) return -EINVAL_PT;
        if (len - 1 > ~pa) return -EINVAL_PT;
        if (len > size - sum) return -EINVAL_PT;
        if (len <= smallMax) small += len;
        sum += len;
      }
      if (sum != size) return -EINVAL_PT;
      if (small != sum) {
        sum = 0;
        for (s = p + (<usize>REC_HEADER << 2); s < end; s += <usize>SEG_WORDS << 2) {
          const len = rd64(s + 8);
          if (len > smallMax) leaves += pieceLeaves(pt, va + sum, va + sum + (len - 1), rd64(s), false);
          sum += len;
        }
      }
      small >>= <u64>s0;
      leaves += small;
      store<u64>(leavesByLevel, load<u64>(leavesByLevel) + small);
    } else if (kind == REC_BIND_NULL) {
      leaves += pieceLeaves(pt, va, va + (size - 1), 0, true);
    }
    if (leaves > budget) {
      wr64(needLeaves, leaves);
      return -ENOMEM_PT;
    }
    pos += need;
    idx++;
  }
  wr64(needLeaves, leaves);
  return <i32>idx;
}

/**
 * Storage the records may take at most, reserved before the first one runs,
 * so that a call either fits or changes nothing. A bind visits, at each level
 * L >= 1, the entries of its range and gives each at most one new child table
 * (2^(s[L]-s[L-1]) entries); unbind and zap walk only the two edge entries
 * per level (splits, decompaction). A table a bind creates under a level-L
 * entry lies on the way to at least one leaf it writes below level L, so a
 * bind gets no more such tables than the call has leaves below L: that keeps
 * a huge-page bind's reservation near what it uses. Tables freed on the way
 * are not counted on. The per-call logs only feed the cost report and are not
 * reserved. Reads leavesByLevel (validateRecords).
 */
function reserveFor(pt: u32, w: usize, count: u32): bool {
  const top = pTop.get(pt);
  store<u64>(leavesBelow, 0);
  for (let L: u32 = 0; L <= top; L++) {
    store<u64>(leavesBelow + (<usize>(L + 1) << 3), load<u64>(leavesBelow + (<usize>L << 3)) + load<u64>(leavesByLevel + (<usize>L << 3)));
  }
  let tables: u64 = 0;
  let slots: u64 = 0;
  let pos: u32 = 0;
  for (let r: u32 = 0; r < count; r++) {
    const p = w + (<usize>pos << 2);
    const kind = load<u32>(p);
    const nseg = load<u32>(p, 4);
    const va = rd64(p + 8);
    const last = va + (rd64(p + 16) - 1);
    const bind = kind == REC_BIND || kind == REC_BIND_NULL;
    for (let L: u32 = 1; L <= top; L++) {
      const sh = shiftOf(pt, L);
      let visited: u64 = sh >= 64 ? 1 : (last >> <u64>sh) - (va >> <u64>sh) + 1;
      if (!bind && visited > 2) visited = 2;
      const below = load<u64>(leavesBelow + (<usize>L << 3));
      if (bind && visited > below) visited = below;
      const d = sh - shiftOf(pt, L - 1);
      if (visited > ((<u64>0xffffffff) >> <u64>d)) return false; // more than the entry storage can ever address
      tables += visited;
      slots += visited << <u64>d;
    }
    if (tables > 0xffffffff || slots > 0xffffffff) return false;
    pos += REC_HEADER + nseg * SEG_WORDS;
  }
  return reserveTables(tables) && reserveEntries(slots);
}

function runRecords(pt: u32, w: usize, n: u32, budget: u32, out: usize): i32 {
  const need = out + (<usize>OUT_NEED_PT << 2);
  wr64(need, 0);
  const count = validateRecords(pt, w, n, <u64>budget, out + (<usize>OUT_FAIL_INDEX_PT << 2), need);
  if (count < 0) return count;
  if (!reserveFor(pt, w, <u32>count)) {
    wr64(need, 0); // not the leaf budget: storage
    store<u32>(out + (<usize>OUT_FAIL_INDEX_PT << 2), 0);
    return -ENOMEM_PT;
  }
  let t0: u32 = 0;
  let t1: u32 = 0;
  let t2: u32 = 0;
  let t3: u32 = 0;
  let t4: u32 = 0;
  let pos: u32 = 0;
  for (let r: i32 = 0; r < count; r++) {
    const p = w + (<usize>pos << 2);
    const kind = load<u32>(p);
    const nseg = load<u32>(p + 4);
    const va = rd64(p + 8);
    const last = va + (rd64(p + 16) - 1);
    beginCall();
    if (kind == REC_BIND) {
      runBind(pt, va, last, p + (<usize>REC_HEADER << 2), false);
    } else if (kind == REC_BIND_NULL) {
      runBind(pt, va, last, p + (<usize>REC_HEADER << 2), true);
    } else if (kind == REC_UNBIND) {
      runUnbind(pt, va, last);
    } else {
      runZap(pt, va, last);
    }
    endCall();
    t0 += cost.get(0);
    t1 += cost.get(1);
    t2 += cost.get(2);
    t3 += cost.get(3);
    t4 += cost.get(4);
    pos += REC_HEADER + nseg * SEG_WORDS;
  }
  store<u32>(out + (<usize>OUT_LIVE << 2), t0);
  store<u32>(out + (<usize>OUT_NEW << 2), t1);
  store<u32>(out + (<usize>OUT_ALLOC << 2), t2);
  store<u32>(out + (<usize>OUT_FREE << 2), t3);
  store<u32>(out + (<usize>OUT_RECORDS << 2), t4);
  return count;
}

export function ptApply(pt: u32, words: usize, n: u32, flags: u32, budget: u32, out: usize): i32 {
  init();
  if (!ptValid(pt) || n > IO_DATA_WORDS_PT || (flags & ~(APPLY_BEGIN | APPLY_END)) != 0) {
    staging.clear();
    return -EINVAL_PT;
  }
  if ((flags & APPLY_BEGIN) != 0) staging.clear();
  if (flags == (APPLY_BEGIN | APPLY_END)) {
    const r = runRecords(pt, words, n, budget, out);
    if (r > 0) compactEntries();
    return r;
  }
  const at = staging.len;
  if (!staging.reserve(<u64>at + <u64>n)) {
    staging.clear();
    wr64(out + (<usize>OUT_NEED_PT << 2), 0);
    store<u32>(out + (<usize>OUT_FAIL_INDEX_PT << 2), 0);
    return -ENOMEM_PT;
  }
  memory.copy(staging.data + (<usize>at << 2), words, <usize>n << 2);
  staging.len = at + n;
  if ((flags & APPLY_END) == 0) return <i32>staging.len;
  const r = runRecords(pt, staging.data, staging.len, budget, out);
  staging.clear();
  if (r > 0) compactEntries();
  return r;
}

export function ptTranslate(pt: u32, va: u64, out: usize): i32 {
  init();
  store<u32>(out, 0);
  store<u32>(out + 4, 0);
  store<u32>(out + 8, 0);
  if (!ptValid(pt)) return -EINVAL_PT;
  if (va > pSpanLast.get(pt)) return 0;
  let t = pRoot.get(pt);
  let L = pTop.get(pt);
  for (;;) {
    const sh = <u32>tShift.get(t);
    const idx = <u32>(va >> <u64>sh) & (((<u32>1) << tLog2.get(t)) - 1);
    const e = tBase.get(t) + idx;
    const m = eMeta.get(e);
    const kind = m & E_KIND;
    if (kind == E_EMPTY || (m & E_ZAPPED) != 0) return 0;
    if (kind == E_DIR) {
      t = <u32>eVal.get(e);
      L--;
      continue;
    }
    if (kind == E_LEAF) wr64(out, eVal.get(e) + (va & pow2m1(sh)));
    store<u32>(out + 8, entryInfo(pt, t, idx, L));
    return 1;
  }
  return 0;
}

export function ptTranslateBatch(pt: u32, data: usize, n: u32): i32 {
  init();
  if (!ptValid(pt) || n > IO_DATA_WORDS_PT / 4) return -EINVAL_PT;
  let found: i32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const r = data + (<usize>i << 4);
    found += ptTranslate(pt, rd64(r), r);
    store<u32>(r + 12, 0);
  }
  return found;
}

export function ptWalk(
  pt: u32,
  first: u64,
  last: u64,
  cpos: u64,
  crank: u32,
  hasCursor: u32,
  flags: u32,
  max: u32,
  data: usize,
  out: usize,
): i32 {
  init();
  const all = WALK_DIRS | WALK_POST | WALK_SHARED | WALK_EMPTY | WALK_ZAPPED;
  if (!ptValid(pt) || (flags & ~all) != 0 || max > IO_DATA_WORDS_PT / WALK_WORDS) return -EINVAL_PT;
  wr64(out, cpos);
  store<u32>(out + 8, crank);
  const spanLast = pSpanLast.get(pt);
  if (first > spanLast) return 0;
  if (last > spanLast) last = spanLast;
  if (first > last || max == 0) return 0;
  const v = outWalk;
  v.pt = pt;
  v.flags = flags;
  v.top = pTop.get(pt);
  v.hasCursor = hasCursor != 0;
  v.cpos = cpos;
  v.crank = crank;
  v.data = data;
  v.max = max;
  v.count = 0;
  v.lastPos = 0;
  v.lastRank = 0;
  v.abort = false;
  walkRange<OutWalk>(v, pRoot.get(pt), pTop.get(pt), first, last, (flags & WALK_SHARED) != 0);
  if (v.count > 0) {
    wr64(out, v.lastPos);
    store<u32>(out + 8, v.lastRank);
  }
  return <i32>v.count;
}

export function ptStats(pt: u32, out: usize): i32 {
  init();
  if (!ptValid(pt)) return -EINVAL_PT;
  store<u32>(out, pTables.get(pt));
  store<u32>(out + 4, pEntries.get(pt));
  store<u32>(out + 8, tLevel.len - 1 - tFree.len);
  store<u32>(out + 12, eTop);
  return <i32>pTables.get(pt);
}
