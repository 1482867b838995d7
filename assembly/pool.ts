// Fixed-size record pools with free lists, and the growable arrays the engine
// keeps per VM (twin of native/pool.h; Vec stands in for std::vector).
//
// Handle rules (both engines agree, handles are visible to JS):
// - handle 0 is never used, so 0 means "none";
// - alloc() takes the most recently freed slot (LIFO free list), else the
//   lowest slot never used; capacity growth never changes that order;
// - pools never shrink, so create/destroy loops reach a steady state.
//
// Reservation (the dma-fence rule): a pending op list reserve()s what its
// application may need; any other allocation first calls ensure(need), which
// grows the pool so that `available >= reserved + need`. Applying a list then
// only calls alloc() and never grows the storage. Growth goes through the
// engine's budget (budget.ts): ensure, reserve and Vec.reserve return false
// (nothing changed) when it is refused; alloc() requires a prior ensure or
// reserve.
//
// Everything lives in unmanaged memory from budget.ts: no GC, no traps.

import { memRealloc, memFree } from "./budget";

@unmanaged export class Pool {
  base: usize = 0;
  /** the block base lives in (base rounded up to `align`) */
  raw: usize = 0;
  /** record alignment (16 or a larger power of two, e.g. 64 for one cache line per record) */
  align: u32 = 16;
  /** bytes per record */
  stride: u32 = 0;
  /** slots allocated, slot 0 included */
  cap: u32 = 0;
  /** next never-used slot: valid handles are [1, limit) */
  limit: u32 = 1;
  /** free list head; a free slot keeps the next free handle in its first word */
  freeHead: u32 = 0;
  freeCount: u32 = 0;
  reserved: u32 = 0;

  @inline at(h: u32): usize {
    return this.base + <usize>h * <usize>this.stride;
  }

  @inline available(): u32 {
    return this.freeCount + this.cap - this.limit;
  }

  @inline inUse(): u32 {
    return this.limit - 1 - this.freeCount;
  }

  /** Grow so that `need` slots can be taken without touching reservations; `force` ignores the limit (undo only). */
  @inline ensure(need: u32, force: bool = false): bool {
    const want = <u64>this.reserved + <u64>need;
    if (<u64>this.available() >= want) return true;
    return this.growFor(want, force);
  }

  growFor(want: u64, force: bool): bool {
    let cap = <u64>this.cap;
    while (<u64>this.freeCount + cap - <u64>this.limit < want) cap *= 2;
    if (cap > 0xffffffff) return false; // handles are u32
    return this.grow(<u32>cap, force);
  }

  reserve(n: u32): bool {
    if (!this.ensure(n)) return false;
    this.reserved += n;
    return true;
  }

  @inline unreserve(n: u32): void {
    this.reserved -= n;
  }

  /** The handle the next alloc() returns. */
  @inline nextHandle(): u32 {
    return this.freeHead != 0 ? this.freeHead : this.limit;
  }

  alloc(): u32 {
    const h = this.freeHead;
    if (h != 0) {
      this.freeHead = load<u32>(this.at(h));
      --this.freeCount;
      return h;
    }
    return this.limit++;
  }

  @inline free(h: u32): void {
    store<u32>(this.at(h), this.freeHead);
    this.freeHead = h;
    ++this.freeCount;
  }

  /** New capacity, in place when the block can grow, else moved; false (nothing changed) when refused. */
  grow(cap: u32, force: bool = false): bool {
    const bytes64 = <u64>cap * <u64>this.stride;
    if (bytes64 + <u64>this.align >= 0xffffffff) return false;
    const bytes = <usize>bytes64;
    const old = <usize>this.cap * <usize>this.stride;
    const a = <usize>this.align;
    const shift = this.base - this.raw; // where the records start in the block
    const raw = memRealloc(this.raw, <u64>(bytes + a), force);
    if (raw == 0) return false;
    const nb = (raw + a - 1) & ~(a - 1);
    // A moved block keeps the records at their old offset: realign them.
    if (this.base != 0 && nb != raw + shift) memory.copy(nb, raw + shift, old);
    memory.fill(nb + old, 0, bytes - old);
    this.raw = raw;
    this.base = nb;
    this.cap = cap;
    return true;
  }
}

/** Pools live in static memory (memory.data at the declaration) so their addresses are constants. */
export function initPool(p: Pool, stride: u32, initial: u32 = 64, align: u32 = 16): Pool {
  p.base = 0;
  p.raw = 0;
  p.align = align;
  p.stride = stride;
  p.cap = 0;
  p.limit = 1;
  p.freeHead = 0;
  p.freeCount = 0;
  p.reserved = 0;
  p.grow(initial < 2 ? 2 : initial, true);
  return p;
}

/**
 * Growable array of fixed-size elements (element size passed by the caller,
 * always the same for one array). Grows by doubling; clear() keeps capacity.
 */
@unmanaged export class Vec {
  data: usize = 0;
  /** elements */
  cap: u32 = 0;
  len: u32 = 0;

  /** Capacity for n elements; false (nothing changed) when refused. */
  reserve(n: u64, stride: u32, force: bool = false): bool {
    if (n <= <u64>this.cap) return true;
    if (n > 0x7fffffff) return false;
    let c: u64 = this.cap < 16 ? 16 : <u64>this.cap * 2;
    while (c < n) c *= 2;
    if (c > 0x7fffffff) c = 0x7fffffff;
    const p = memRealloc(this.data, c * <u64>stride, force);
    if (p == 0) return false;
    this.data = p;
    this.cap = <u32>c;
    return true;
  }

  /** Appends one element and returns its address (contents undefined), or 0 when refused. */
  @inline push(stride: u32): usize {
    const i = this.len;
    if (i == this.cap && !this.reserve(<u64>i + 1, stride)) return 0;
    this.len = i + 1;
    return this.data + <usize>i * <usize>stride;
  }

  /** Appends into room the caller reserved. */
  @inline pushReserved(stride: u32): usize {
    const i = this.len;
    this.len = i + 1;
    return this.data + <usize>i * <usize>stride;
  }

  @inline at(i: u32, stride: u32): usize {
    return this.data + <usize>i * <usize>stride;
  }

  @inline clear(): void {
    this.len = 0;
  }

  /** Frees the storage. */
  release(): void {
    memFree(this.data);
    this.data = 0;
    this.cap = 0;
    this.len = 0;
  }

  swap(o: Vec): void {
    const d = this.data;
    const c = this.cap;
    const l = this.len;
    this.data = o.data;
    this.cap = o.cap;
    this.len = o.len;
    o.data = d;
    o.cap = c;
    o.len = l;
  }

  // u32 element helpers
  /** Appends into room the caller reserved. */
  @inline pushU32(v: u32): void {
    store<u32>(this.pushReserved(4), v);
  }
  @inline u32At(i: u32): u32 {
    return load<u32>(this.data + (<usize>i << 2));
  }
}
