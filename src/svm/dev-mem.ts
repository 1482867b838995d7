/**
 * DevMem: one device's memory (the pagemap of a GPU). Migrations to the
 * device create allocations; an allocation lives while at least one CPU page
 * is a device page of it, and its size returns to the pool the moment its
 * last device page goes. `used` is the sum of the live allocations.
 *
 * Device placement: the pool's pages are handed out lowest first from a map
 * of free extents, so an allocation may be several device extents when the
 * pool is fragmented (as a VRAM buffer may be); placement never fails while
 * `free` covers the request. The driver side can watch what happens through
 * hooks, which are called with page runs, never once per page, after the
 * change they describe is complete.
 */
import { engineFor, type BackendName } from '../backend/loader.js';
import { GpuVmError } from '../errors.js';
import type { U64 } from '../u64.js';
import { describe } from '../u64.js';
import { addrOf, alignedPage, optBool, PAGES_U64 } from './addr.js';
import { SpanMap } from './span-map.js';
import { lockFields } from '../read-only.js';

// Accessors filled in by the classes' static blocks (module-internal, not exported from the package).
let allocStart: (a: DevAllocation<any>) => number;
let allocPages: (a: DevAllocation<any>) => number;
let allocPieces: (a: DevAllocation<any>) => number[];
let allocDrop: (a: DevAllocation<any>, n: number) => boolean;
let devSizePages: (d: DevMem<any>) => number;
let devFreePages: (d: DevMem<any>) => number;
let devBasePage: (d: DevMem<any>) => number;
let devAllocate: (d: DevMem<any>, start: number, pages: number, at: bigint, ts: bigint) => DevAllocation<any> | null;
let devDropPages: (a: DevAllocation<any>, n: number) => boolean;
let devHooks: (d: DevMem<any>) => DevMemHooks;

/** A run of pages moved between system and device memory. */
export interface DevRun<N extends U64 = U64> {
  /** CPU virtual address of the run's first page */
  readonly start: N;
  readonly size: N;
  /** device address of the run's first page (device pages of a run are contiguous) */
  readonly devAddr: N;
}

/** Observers of the device side; each is called after the change it reports. */
export interface DevMemHooks<N extends U64 = U64> {
  /** an allocation was made (before its pages are filled) */
  populate?(allocation: DevAllocation<N>): void;
  /** pages were copied to device memory and are now device pages */
  copyToDevmem?(runs: readonly DevRun<N>[]): void;
  /** device pages were copied back to system memory */
  copyToRam?(runs: readonly DevRun<N>[]): void;
  /** an allocation lost its last device page and returned to the pool */
  release?(allocation: DevAllocation<N>): void;
}

export interface DevMemOptions<N extends U64 = U64> {
  /** bytes of device memory (a multiple of 0x1000; 0 = none) */
  size: U64;
  /** device address of the pool's first byte (default 2^40, or 2^64 - size for a pool too large to start there) */
  base?: U64;
  hooks?: DevMemHooks<N>;
  /** report addresses as bigints */
  bigint?: N extends bigint ? true : boolean;
  backend?: BackendName;
}

const DEFAULT_BASE_PAGE = 2 ** 28; // 1 TiB

/** One allocation of device memory, made by one migration. Read-only view. */
export class DevAllocation<N extends U64 = U64> {
  readonly #dm: DevMem<N>;
  readonly #start: number;
  readonly #pages: number;
  readonly #at: bigint;
  readonly #timeslice: bigint;
  /** device extents: [devPage, pages] pairs, in the order they back the allocation */
  readonly #pieces: number[];
  #live: number;
  #released = false;

  /** @hidden made by the library only */
  constructor(token: symbol, dm: DevMem<N>, start: number, pages: number, at: bigint, ts: bigint, pieces: number[]) {
    if (token !== internal) throw new TypeError('DevAllocation objects are made by migrations');
    this.#dm = dm;
    this.#start = start;
    this.#pages = pages;
    this.#at = at;
    this.#timeslice = ts;
    this.#pieces = pieces;
    this.#live = pages;
  }

  get devmem(): DevMem<N> {
    return this.#dm;
  }
  /** CPU address of the range it was made for */
  get start(): N {
    return addrOf(this.#start, this.#dm.bigint) as N;
  }
  get size(): N {
    return addrOf(this.#pages, this.#dm.bigint) as N;
  }
  /** clock (ms) at migration */
  get migratedAt(): bigint {
    return this.#at;
  }
  /** minimum residency (ms) asked for by the migration */
  get timeslice(): bigint {
    return this.#timeslice;
  }
  /** device pages that still belong to it */
  get pages(): number {
    return this.#live;
  }
  get released(): boolean {
    return this.#released;
  }

  /** Inside its timeslice at clock `now`: its pages may not move back to RAM. */
  inTimeslice(now: bigint): boolean {
    return now - this.#at < this.#timeslice;
  }

  toJSON(): object {
    return { start: hexOf(this.#start), size: hexOf(this.#pages), migratedAt: String(this.#at), timeslice: String(this.#timeslice), pages: this.#live };
  }

  static {
    allocStart = (a) => a.#start;
    allocPages = (a) => a.#pages;
    allocPieces = (a) => a.#pieces;
    allocDrop = (a, n) => {
      a.#live -= n;
      if (a.#live > 0) return false;
      a.#released = true;
      return true;
    };
  }
}

const internal = Symbol('DevAllocation');
const hexOf = (p: number) => '0x' + (BigInt(p) << 12n).toString(16);

export { allocStart, allocPages, allocPieces };

/** Free tag of the pool's free-extent map. */
const FREE = 1;

export class DevMem<N extends U64 = U64> {
  readonly bigint: boolean;
  readonly #sizePages: number;
  readonly #basePage: number;
  readonly #hooks: DevMemHooks<N>;
  readonly #free: SpanMap;
  #usedPages = 0;
  readonly #live = new Set<DevAllocation<N>>();

  constructor(options: DevMemOptions<N>) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`DevMem options must be an object, got ${describe(options)}`);
    }
    const size = options.size;
    const base = options.base;
    const hooks = options.hooks;
    const bigint = optBool(options.bigint, 'bigint');
    const backend = options.backend;
    const sizePages = alignedPage(size, 'size', true);
    // any page-sized pool is valid: one too large for the default base starts lower
    const basePage = base === undefined ? Math.min(DEFAULT_BASE_PAGE, PAGES_U64 - sizePages) : alignedPage(base, 'base', true);
    if (basePage + sizePages > PAGES_U64) throw new GpuVmError('EINVAL', 'base + size is above 2^64');
    if (hooks !== undefined && (hooks === null || typeof hooks !== 'object')) {
      throw new TypeError(`hooks must be an object, got ${describe(hooks)}`);
    }
    const h: DevMemHooks<N> = {};
    if (hooks) {
      for (const k of ['populate', 'copyToDevmem', 'copyToRam', 'release'] as const) {
        const f = hooks[k];
        if (f !== undefined && typeof f !== 'function') throw new TypeError(`hooks.${k} must be a function, got ${describe(f)}`);
        if (f) (h as Record<string, unknown>)[k] = f;
      }
    }
    this.bigint = bigint;
    this.#sizePages = sizePages;
    this.#basePage = basePage;
    this.#hooks = h;
    this.#free = new SpanMap(engineFor(backend));
    if (sizePages > 0) this.#free.insert(0, sizePages, FREE, 0);
    lockFields(this, ['bigint']);
  }

  /** bytes of device memory */
  get size(): N {
    return addrOf(this.#sizePages, this.bigint) as N;
  }
  /** device address of the first byte */
  get base(): N {
    return addrOf(this.#basePage, this.bigint) as N;
  }
  get used(): N {
    return addrOf(this.#usedPages, this.bigint) as N;
  }
  get free(): N {
    return addrOf(this.#sizePages - this.#usedPages, this.bigint) as N;
  }
  /** number of live allocations */
  get allocationCount(): number {
    return this.#live.size;
  }
  /** the live allocations, oldest first */
  allocations(): DevAllocation<N>[] {
    return [...this.#live];
  }

  /** Releases the engine storage. Allocations still alive stay readable. */
  destroy(): void {
    this.#free.destroy();
  }

  get [Symbol.toStringTag](): string {
    return 'DevMem';
  }

  toJSON(): object {
    return { size: hexOf(this.#sizePages), used: hexOf(this.#usedPages), allocations: this.#live.size };
  }

  static {
    devSizePages = (d) => d.#sizePages;
    devFreePages = (d) => d.#sizePages - d.#usedPages;
    devBasePage = (d) => d.#basePage;
    devAllocate = (d, start, pages, at, ts) => {
      if (d.#sizePages - d.#usedPages < pages) return null;
      // lowest free device pages first; every piece is taken only once all are found
      const pieces: number[] = [];
      let need = pages;
      let p = 0;
      while (need > 0 && d.#free.seek(p, d.#sizePages)) {
        const take = Math.min(need, d.#free.end - d.#free.start);
        pieces.push(d.#free.start, take);
        need -= take;
        p = d.#free.end;
      }
      for (let i = 0; i < pieces.length; i += 2) d.#free.assign(pieces[i], pieces[i] + pieces[i + 1], 0, 0, false);
      d.#usedPages += pages;
      const a = new DevAllocation(internal, d, start, pages, at, ts, pieces);
      d.#live.add(a);
      return a;
    };
    devDropPages = (a, n) => {
      if (!allocDrop(a, n)) return false;
      const d = a.devmem;
      const pieces = allocPieces(a);
      for (let i = 0; i < pieces.length; i += 2) d.#free.assign(pieces[i], pieces[i] + pieces[i + 1], FREE, pieces[i], true);
      d.#usedPages -= allocPages(a);
      d.#live.delete(a);
      return true;
    };
    devHooks = (d) => d.#hooks as DevMemHooks;
  }
}

/** Makes an allocation of `pages` for the range at `start`; null when the pool's free space is too small. */
/** `n` device pages of the allocation stopped being device pages; true when that released it. */
export { devSizePages, devFreePages, devBasePage, devAllocate, devDropPages, devHooks };
