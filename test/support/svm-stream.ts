/**
 * Seeded random command streams for the SVM layer: replay commands as data
 * (so the same stream runs through the object API and through `replay()`),
 * with addresses drawn from a small universe so that VMAs, ranges, notifier
 * blocks and allocations keep colliding.
 */
import { Prng } from './prng.js';

export const PAGE = 0x1000n;
const TWO64 = 1n << 64n;
/**
 * The highest interval end the streams use. SvmDriver's invalidation callback
 * rejects an invalidation ending at 2^64 (RangeError half-way through the
 * CPU operation), so the streams stop one page short of the top until that
 * is fixed.
 */
export const TOP = TWO64 - PAGE;

/** Where a stream lives: every mmap falls inside [base, base + size). */
export interface Universe {
  name: string;
  base: bigint;
  size: bigint;
  /** the object API runs in bigint mode (needed above 2^53) */
  bigint: boolean;
  /** largest chunk / notifier size as log2 */
  maxLog: number;
}

export type Point = 'after-gc' | 'after-find' | 'after-migrate' | 'in-hmm' | 'before-map' | 'before-bind' | 'after-bind';
export const POINTS: readonly Point[] = ['after-gc', 'after-find', 'after-migrate', 'in-hmm', 'before-map', 'before-bind', 'after-bind'];

export type CpuCmd =
  | { t: 'mmap'; addr: bigint; len: bigint; ro: boolean; kind: 'anon' | 'file' | 'hugetlb' }
  | { t: 'munmap'; addr: bigint; len: bigint }
  | { t: 'mprotect'; addr: bigint; len: bigint; mode: 'ro' | 'rw' }
  | { t: 'madvise'; addr: bigint; len: bigint }
  | { t: 'cpu'; addr: bigint; len: bigint; write: boolean };

export interface SvmSetup {
  t: 'svm';
  start: bigint;
  range: bigint;
  notifierSize: bigint;
  chunks: bigint[];
  threshold?: bigint;
  devmem?: bigint;
  retries?: bigint;
  timeslice?: bigint;
}

export type Cmd =
  | SvmSetup
  | CpuCmd
  | { t: 'tick'; ms: bigint }
  | { t: 'gpufault'; addr: bigint; window: [bigint, bigint] | null; ro: boolean; devmem: boolean; atomic: boolean }
  | { t: 'svmprefetch'; addr: bigint; len: bigint; devmem: boolean }
  | { t: 'inject'; point: Point; nth: bigint | null; count: bigint | 'all' | null; cmd: CpuCmd }
  | { t: 'gc' }
  | { t: 'evict'; addr: bigint }
  | { t: 'svmdump' }
  | { t: 'devdump' };

const hx = (v: bigint) => '0x' + v.toString(16);

function cpuText(c: CpuCmd): string {
  switch (c.t) {
    case 'mmap':
      return `mmap ${hx(c.addr)} ${hx(c.len)}${c.ro ? ' ro' : ''}${c.kind === 'anon' ? '' : ' ' + c.kind}`;
    case 'munmap':
      return `munmap ${hx(c.addr)} ${hx(c.len)}`;
    case 'mprotect':
      return `mprotect ${hx(c.addr)} ${hx(c.len)} ${c.mode}`;
    case 'madvise':
      return `madvise ${hx(c.addr)} ${hx(c.len)} dontneed`;
    case 'cpu':
      return `cpu ${hx(c.addr)} ${hx(c.len)}${c.write ? ' write' : ''}`;
  }
}

/** The replay line of a command. */
export function cmdText(c: Cmd): string {
  switch (c.t) {
    case 'svm': {
      let s = `svm ${hx(c.start)} ${hx(c.range)} ${hx(c.notifierSize)} ${c.chunks.map(hx).join(',')}`;
      if (c.threshold !== undefined) s += ` threshold=${hx(c.threshold)}`;
      if (c.devmem !== undefined) s += ` devmem=${hx(c.devmem)}`;
      if (c.retries !== undefined) s += ` retries=${c.retries}`;
      if (c.timeslice !== undefined) s += ` timeslice=${c.timeslice}`;
      return s;
    }
    case 'tick':
      return `tick ${c.ms}`;
    case 'gpufault':
      return (
        `gpufault ${hx(c.addr)}` +
        (c.window ? ` ${hx(c.window[0])} ${hx(c.window[1])}` : '') +
        (c.ro ? ' ro' : '') +
        (c.devmem ? ' devmem' : '') +
        (c.atomic ? ' atomic' : '')
      );
    case 'svmprefetch':
      return `svmprefetch ${hx(c.addr)} ${hx(c.len)}${c.devmem ? ' devmem' : ''}`;
    case 'inject':
      return (
        `inject ${c.point}` + (c.nth !== null ? ` nth=${c.nth}` : '') + (c.count !== null ? ` count=${c.count}` : '') + ' ' + cpuText(c.cmd)
      );
    case 'gc':
    case 'svmdump':
    case 'devdump':
      return c.t;
    case 'evict':
      return `evict ${hx(c.addr)}`;
    default:
      return cpuText(c);
  }
}

export const streamText = (cmds: readonly Cmd[]): string => cmds.map((c) => cmdText(c) + '\n').join('');

/** Draws the commands of one stream; addresses collide on purpose. */
class StreamGen {
  /** page addresses used recently (edges of VMAs, faults, ranges) */
  private recent: bigint[] = [];
  private win: [bigint, bigint] = [0n, 0n];
  private chunks: bigint[] = [PAGE];

  constructor(
    private readonly rng: Prng,
    private readonly u: Universe,
  ) {}

  private remember(a: bigint): void {
    this.recent.push(a);
    if (this.recent.length > 24) this.recent.shift();
  }

  private pow2(lo: number, hi: number): bigint {
    return 1n << BigInt(this.rng.between(lo, hi));
  }

  /** A page address, mostly inside the universe, often near something used before. */
  page(): bigint {
    const r = this.rng;
    const u = this.u;
    const pages = u.size / PAGE;
    let a: bigint;
    const k = r.int(100);
    if (k < 40 && this.recent.length > 0) {
      a = r.pick(this.recent) + BigInt(r.between(-3, 3)) * (r.chance(0.5) ? PAGE : r.pick(this.chunks));
    } else if (k < 70) {
      const al = this.pow2(12, u.maxLog);
      a = u.base + ((BigInt(r.int(Number(pages))) * PAGE) / al) * al;
    } else if (k < 96) {
      a = u.base + BigInt(r.int(Number(pages))) * PAGE;
    } else {
      // just outside the universe or the window
      a = r.pick([u.base - PAGE * BigInt(r.between(1, 4)), this.win[0] - PAGE, this.win[1], u.base + u.size]);
    }
    // keep near the universe (offsets from remembered addresses must not drift away)
    const lo = u.bigint ? u.base - u.size : 0n;
    if (a < lo || a > u.base + u.size) a = u.base + BigInt(r.int(Number(pages))) * PAGE;
    if (a > TOP - PAGE) a = TOP - PAGE;
    return a;
  }

  /** A length in pages' bytes for an interval at `a` (addr + len <= 2^64). */
  len(a: bigint): bigint {
    const r = this.rng;
    let n: bigint;
    const k = r.int(100);
    if (k < 25) n = PAGE;
    else if (k < 60) n = this.pow2(12, this.u.maxLog + 1);
    else if (k < 85) n = BigInt(r.between(1, 48)) * PAGE;
    else n = BigInt(r.between(1, Number(this.u.size / PAGE / 2n))) * PAGE;
    // nothing may end at 2^64 yet: an invalidation ending there fails (reported; see TOP below)
    if (a + n > TOP) n = TOP - a;
    return n;
  }

  span(): [bigint, bigint] {
    const a = this.page();
    const l = this.len(a);
    this.remember(a);
    if (a + l < TWO64) this.remember(a + l);
    return [a, l];
  }

  setup(): SvmSetup {
    const r = this.rng;
    const u = this.u;
    const maxLog = u.maxLog;
    // chunk list: a descending subset of powers of two ending with 0x1000
    const logs = new Set<number>([12]);
    const n = r.between(0, 3);
    for (let i = 0; i < n; i++) logs.add(r.between(13, maxLog + (r.chance(0.1) ? 2 : 0)));
    const chunks = [...logs].sort((a, b) => b - a).map((l) => 1n << BigInt(l));
    const notifierSize = this.pow2(12, maxLog + 1);
    // window: most of the universe, sometimes a part of it, sometimes all of the space below it
    let start: bigint;
    let end: bigint;
    const k = r.int(10);
    if (k < 5) {
      start = u.base;
      end = u.base + u.size;
      if (end > TOP) end = TOP;
    } else if (k < 8) {
      start = u.base + BigInt(r.int(Number(u.size / PAGE / 4n))) * PAGE;
      end = u.base + u.size - BigInt(r.int(Number(u.size / PAGE / 4n))) * PAGE;
    } else {
      start = u.bigint ? u.base - u.size : 0n;
      end = u.base + u.size;
      if (end > TOP) end = TOP;
    }
    const s: SvmSetup = { t: 'svm', start, range: end - start, notifierSize, chunks };
    if (r.chance(0.3)) s.threshold = r.pick([0n, PAGE, PAGE, 0x4000n, 0x10000n, 0x200000n, TWO64 - 1n]);
    if (r.chance(0.85)) s.devmem = r.pick([0n, PAGE, 0x2000n, 0x8000n, 0x10000n, 0x40000n, 0x200000n, 0x400000n, 0x1000000n]);
    if (r.chance(0.7)) s.retries = BigInt(r.between(0, 4));
    if (r.chance(0.5)) s.timeslice = r.pick([0n, 1n, 5n, 20n, 100n, 1n << 63n, TWO64 - 1n]);
    this.win = [start, end];
    this.chunks = chunks;
    return s;
  }

  cpu(): CpuCmd {
    const r = this.rng;
    const [addr, len] = this.span();
    switch (r.weighted([40, 15, 20, 8, 25])) {
      case 0: {
        const kind = r.pick(['anon', 'anon', 'anon', 'anon', 'file', 'hugetlb'] as const);
        return { t: 'mmap', addr, len, ro: r.chance(0.2), kind };
      }
      case 1:
        return { t: 'munmap', addr, len };
      case 2:
        return { t: 'mprotect', addr, len, mode: r.chance(0.5) ? 'ro' : 'rw' };
      case 3:
        return { t: 'madvise', addr, len };
      default:
        return { t: 'cpu', addr, len, write: r.chance(0.5) };
    }
  }

  gpufault(): Cmd {
    const r = this.rng;
    let addr = this.page();
    if (r.chance(0.3)) addr += BigInt(r.int(0x1000));
    if (r.chance(0.03)) addr = this.win[1];
    if (r.chance(0.02)) addr = this.win[1] - 1n;
    if (addr > TWO64 - 1n) addr = TWO64 - 1n;
    this.remember(addr & ~0xfffn);
    let window: [bigint, bigint] | null = null;
    if (r.chance(0.15)) {
      const below = BigInt(r.int(0x40000));
      const above = BigInt(r.int(0x40000));
      let gs = addr > below ? addr - below : 0n;
      let ge = addr + above;
      if (ge > TOP) ge = TOP;
      if (r.chance(0.05)) [gs, ge] = [ge, gs];
      window = [gs, ge];
    }
    const devmem = r.chance(0.45);
    const atomic = r.chance(0.15);
    return { t: 'gpufault', addr, window, ro: r.chance(0.2), devmem, atomic };
  }

  inject(): Cmd {
    const r = this.rng;
    const nth = r.chance(0.5) ? BigInt(r.between(1, 3)) : null;
    const count = r.chance(0.5) ? (r.chance(0.25) ? 'all' : BigInt(r.between(1, 3))) : null;
    return { t: 'inject', point: r.pick(POINTS), nth, count, cmd: this.cpu() };
  }

  next(): Cmd[] {
    const r = this.rng;
    switch (r.weighted([14, 6, 7, 5, 10, 3, 30, 8, 8, 3, 4, 1, 1, 0.4])) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
        return [this.cpu()];
      case 5:
        return [{ t: 'tick', ms: r.chance(0.02) ? r.pick([1n << 63n, TWO64 - 1n]) : BigInt(r.int(40)) }];
      case 6:
        return [this.gpufault()];
      case 7: {
        const [addr, len] = this.span();
        return [{ t: 'svmprefetch', addr, len, devmem: r.chance(0.6) }];
      }
      case 8: {
        // a few injections, then (usually) the fault or prefetch they belong to
        const out: Cmd[] = [];
        const n = r.between(1, 3);
        for (let i = 0; i < n; i++) out.push(this.inject());
        if (r.chance(0.85)) {
          if (r.chance(0.75)) out.push(this.gpufault());
          else {
            const [addr, len] = this.span();
            out.push({ t: 'svmprefetch', addr, len, devmem: r.chance(0.6) });
          }
        }
        return out;
      }
      case 9:
        return [{ t: 'gc' }];
      case 10: {
        let addr = this.page();
        if (r.chance(0.3)) addr += BigInt(r.int(0x1000));
        return [{ t: 'evict', addr }];
      }
      case 11:
        return [{ t: 'svmdump' }];
      case 12:
        return [{ t: 'devdump' }];
      default:
        return this.fresh();
    }
  }

  /** A new setup and a few mappings to start from. */
  fresh(): Cmd[] {
    const out: Cmd[] = [this.setup()];
    const n = this.rng.between(2, 6);
    for (let i = 0; i < n; i++) {
      const addr = this.page();
      const len = this.len(addr) * (this.rng.chance(0.5) ? 1n : 4n);
      this.remember(addr);
      out.push({ t: 'mmap', addr, len, ro: this.rng.chance(0.1), kind: this.rng.chance(0.85) ? 'anon' : 'file' });
    }
    return out;
  }
}

/** `n` commands (a little more: groups are not cut), starting with a setup. */
export function makeSvmStream(seed: number, n: number, u: Universe): Cmd[] {
  const g = new StreamGen(new Prng(seed), u);
  const out = g.fresh();
  while (out.length < n) out.push(...g.next());
  out.push({ t: 'svmdump' }, { t: 'devdump' });
  return out;
}
