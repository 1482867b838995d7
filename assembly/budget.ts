// Engine storage and its budget (twin of native/budget.h). The runtime's
// allocator (TLSF) traps when memory.grow fails and caps blocks at 1 GiB, and
// a trap leaves the instance half-updated; so every block the engine keeps
// comes from this allocator instead, which grows linear memory itself,
// checks memory.grow's -1 and the limit, and answers 0 so that callers turn
// running out into -ENOMEM before they change anything.
//
// What the budget measures here is the instance's linear memory
// (memory.size()), the WASM memory in use; the limit refuses growth past it.
//
// The allocator: blocks of 16-byte granules with a 16-byte header (size,
// free flag, next free block); free blocks form one address-ordered list and
// merge with free neighbours. The engine keeps few, mostly large blocks that
// double when they grow, so first fit over that list is cheap; a block that
// ends where memory ends grows in place.

const HDR: usize = 16;
const PAGE_BITS: u32 = 16;
const MAX_PAGES: u64 = 65536; // wasm32: 4 GiB
const CHUNK_PAGES: u64 = 16; // grow at least 1 MiB at a time (fewer grows, fewer JS view rebuilds)

let limit: u64 = 0; // 0: only the platform's own
let freeHead: usize = 0; // first free block (address order)
let arenaEnd64: u64 = 0; // end of the last region this allocator took from memory.grow (2^32 fits)
let started = false;

@inline function bSize(b: usize): usize {
  return load<u32>(b);
}
@inline function bSetSize(b: usize, s: usize): void {
  store<u32>(b, <u32>s);
}
@inline function bNext(b: usize): usize {
  return load<u32>(b, 8);
}
@inline function bSetNext(b: usize, n: usize): void {
  store<u32>(b, <u32>n, 8);
}

/** Bytes of linear memory in use. */
export function memUsed(): u64 {
  return <u64>memory.size() << PAGE_BITS;
}

export function memLimit(): u64 {
  return limit;
}

export function memSetLimitBytes(bytes: u64): void {
  limit = bytes;
}

/** Block bytes (header included) for a request, or 0 when it cannot exist. */
@inline function blockBytes(bytes: u64): u64 {
  return (bytes + <u64>HDR + 15) & ~(<u64>15);
}

/**
 * memory.grow by `pages` if the limit and the platform allow; `force` skips
 * the limit (undo only). Returns the old end of memory in bytes, or -1.
 */
function growPages(pages: u64, force: bool): i64 {
  const before = <u64>memory.size();
  if (before + pages > MAX_PAGES) return -1;
  if (!force && limit != 0 && (before + pages) << PAGE_BITS > limit) return -1;
  if (memory.grow(<i32>pages) < 0) return -1;
  return <i64>(before << PAGE_BITS);
}

/**
 * Adds fresh space at the end of memory for a block of `need` bytes: grows
 * the last free block when it ends where memory ends, else starts a new
 * region there. Returns false when memory cannot grow.
 */
function addSpace(need: u64, force: bool): bool {
  if (!started) {
    // The runtime's allocator claims all memory when it first runs: let it
    // do so now, so that later growth is ours alone.
    heap.free(heap.alloc(16));
    started = true;
  }
  const top = <u64>memory.size() << PAGE_BITS;
  // The last free block, if it reaches the end of memory, is extended.
  let last: usize = 0;
  for (let b = freeHead; b != 0; b = bNext(b)) last = b;
  let have: u64 = 0;
  if (last != 0 && <u64>last + <u64>bSize(last) == top && arenaEnd64 == top) have = bSize(last);
  const missing = need - have;
  const pages = (missing + 0xffff) >> PAGE_BITS;
  let got = pages < CHUNK_PAGES ? CHUNK_PAGES : pages;
  let old = growPages(got, force);
  if (old < 0 && got != pages) {
    got = pages;
    old = growPages(got, force);
  }
  if (old < 0) return false;
  const grown = got << PAGE_BITS;
  if (have != 0) {
    bSetSize(last, <usize>(have + grown));
  } else {
    const b = <usize>old;
    bSetSize(b, <usize>grown);
    store<u32>(b, 1, 4);
    bSetNext(b, 0);
    if (last != 0) bSetNext(last, b);
    else freeHead = b;
  }
  arenaEnd64 = <u64>old + grown;
  return true;
}

/** Takes `need` bytes from the front of free block b (prev: its list predecessor, 0 at the head). */
function takeFree(b: usize, prev: usize, need: usize): void {
  const size = bSize(b);
  let next = bNext(b);
  if (size - need >= 32) {
    const rest = b + need;
    bSetSize(rest, size - need);
    store<u32>(rest, 1, 4);
    bSetNext(rest, next);
    next = rest;
    bSetSize(b, need);
  }
  if (prev != 0) bSetNext(prev, next);
  else freeHead = next;
  store<u32>(b, 0, 4);
}

/** A block of at least `bytes` (16-byte aligned), or 0. */
export function memAlloc(bytes: u64, force: bool = false): usize {
  const need64 = blockBytes(bytes);
  if (need64 >= (MAX_PAGES << PAGE_BITS)) return 0;
  const need = <usize>need64;
  for (let pass = 0; pass < 2; ++pass) {
    let prev: usize = 0;
    for (let b = freeHead; b != 0; b = bNext(b)) {
      if (bSize(b) >= need) {
        takeFree(b, prev, need);
        return b + HDR;
      }
      prev = b;
    }
    if (pass == 0 && !addSpace(need64, force)) return 0;
  }
  return 0;
}

/** Returns a block to the free list, merging it with free neighbours. */
export function memFree(p: usize): void {
  if (p == 0) return;
  const b = p - HDR;
  store<u32>(b, 1, 4);
  let prev: usize = 0;
  let next = freeHead;
  while (next != 0 && next < b) {
    prev = next;
    next = bNext(next);
  }
  bSetNext(b, next);
  if (prev != 0) bSetNext(prev, b);
  else freeHead = b;
  if (next != 0 && <u64>b + <u64>bSize(b) == <u64>next) {
    bSetSize(b, bSize(b) + bSize(next));
    bSetNext(b, bNext(next));
  }
  if (prev != 0 && <u64>prev + <u64>bSize(prev) == <u64>b) {
    bSetSize(prev, bSize(prev) + bSize(b));
    bSetNext(prev, bNext(b));
  }
}

/**
 * Grows block p to at least `bytes`, in place when the space after it is
 * free (or is the end of memory), else by moving it. Returns the block
 * (p or a new one), or 0 with p unchanged. p 0 allocates.
 */
export function memRealloc(p: usize, bytes: u64, force: bool = false): usize {
  if (p == 0) return memAlloc(bytes, force);
  const b = p - HDR;
  const size = bSize(b);
  const need64 = blockBytes(bytes);
  if (need64 <= <u64>size) return p;
  if (need64 >= (MAX_PAGES << PAGE_BITS)) return 0;
  const need = <usize>need64;
  // The free block right after it, if any (u64: a block may end at 2^32).
  const after = <u64>b + <u64>size;
  for (let pass = 0; pass < 2; ++pass) {
    let prev: usize = 0;
    let f = freeHead;
    while (f != 0 && <u64>f < after) {
      prev = f;
      f = bNext(f);
    }
    const adjacent = f != 0 && <u64>f == after;
    if (adjacent && <u64>size + <u64>bSize(f) >= need64) {
      takeFree(f, prev, need - size);
      bSetSize(b, bSize(b) + bSize(f));
      return p;
    }
    // Ends where memory ends: grow memory and take the new space.
    const top = <u64>memory.size() << PAGE_BITS;
    const atTop = after == top && after == arenaEnd64;
    const tailFree = adjacent && after + <u64>bSize(f) == top;
    if (pass == 0 && (atTop || tailFree)) {
      if (!addSpace(need64 - <u64>size, force)) return 0;
      continue;
    }
    break;
  }
  const q = memAlloc(bytes, force);
  if (q == 0) return 0;
  memory.copy(q, p, size - HDR);
  memFree(p);
  return q;
}
