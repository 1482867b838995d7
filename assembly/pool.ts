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
// only calls alloc() and never grows the storage.
//
// Everything lives in unmanaged memory (heap.alloc/realloc/free): no GC.

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

  /** Grow so that `need` slots can be taken without touching reservations. */
  ensure(need: u32): void {
    const want = <u64>this.reserved + <u64>need;
    if (<u64>this.available() >= want) return;
    let cap = <u64>this.cap;
    while (<u64>this.freeCount + cap - <u64>this.limit < want) cap *= 2;
    this.grow(<u32>cap);
  }

  reserve(n: u32): void {
    this.ensure(n);
    this.reserved += n;
  }

  @inline unreserve(n: u32): void {
    this.reserved -= n;
  }

  alloc(): u32 {
    const h = this.freeHead;
    if (h != 0) {
      this.freeHead = load<u32>(this.at(h));
      --this.freeCount;
      return h;
    }
    // Only reached without a prior ensure(); keeps the pool usable anyway.
    if (this.limit == this.cap) this.grow(this.cap * 2);
    return this.limit++;
  }

  @inline free(h: u32): void {
    store<u32>(this.at(h), this.freeHead);
    this.freeHead = h;
    ++this.freeCount;
  }

  grow(cap: u32): void {
    const bytes = <usize>cap * <usize>this.stride;
    const old = <usize>this.cap * <usize>this.stride;
    const a = <usize>this.align;
    const raw = heap.alloc(bytes + a);
    const nb = (raw + a - 1) & ~(a - 1);
    if (this.base != 0) {
      memory.copy(nb, this.base, old);
      heap.free(this.raw);
    }
    memory.fill(nb + old, 0, bytes - old);
    this.raw = raw;
    this.base = nb;
    this.cap = cap;
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
  p.grow(initial < 2 ? 2 : initial);
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

  reserve(n: u32, stride: u32): void {
    if (n <= this.cap) return;
    let c: u32 = this.cap < 16 ? 16 : this.cap * 2;
    while (c < n) c *= 2;
    const bytes = <usize>c * <usize>stride;
    this.data = this.data == 0 ? heap.alloc(bytes) : heap.realloc(this.data, bytes);
    this.cap = c;
  }

  /** Appends one element and returns its address (contents undefined). */
  @inline push(stride: u32): usize {
    const i = this.len;
    if (i == this.cap) this.reserve(i + 1, stride);
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
    if (this.data != 0) heap.free(this.data);
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
  @inline pushU32(v: u32): void {
    store<u32>(this.push(4), v);
  }
  @inline u32At(i: u32): u32 {
    return load<u32>(this.data + (<usize>i << 2));
  }
}
