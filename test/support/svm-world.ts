/**
 * Runs SVM command streams (svm-stream.ts) through the object API: CpuMm,
 * DevMem and the reference SvmDriver with a PageTable, printing what the
 * replay would print, so a stream's transcript can be compared with
 * `replay()` of the same text. Also: the invariants that must hold after
 * every command, and a plain-data snapshot of the whole state.
 */
import type { BackendName } from '../../src/backend/loader.js';
import {
  CpuMm,
  DevMem,
  DevAllocation,
  GpuVmError,
  PageTable,
  SvmDriver,
  formatSvmEvent,
  type ArrivalPoint,
  type SvmHooks,
  type SvmRange,
  type Vma,
} from '../../src/index.js';
import { PAGE, type Cmd, type CpuCmd, type Point, type SvmSetup, type Universe } from './svm-stream.js';

type N = number | bigint;
const TWO64 = 1n << 64n;
const hx = (v: N) => '0x' + v.toString(16);
const B = (v: N) => BigInt(v);

const POINT_HOOK: Record<Point, ArrivalPoint> = {
  'after-gc': 'afterGc',
  'after-find': 'afterFind',
  'after-migrate': 'afterMigrate',
  'in-hmm': 'inHmm',
  'before-map': 'beforeMap',
  'before-bind': 'beforeBind',
  'after-bind': 'afterBind',
};

interface Injection {
  point: Point;
  nth: bigint;
  count: bigint | null;
  cmd: CpuCmd;
  fired: boolean;
}

export interface Live {
  mm: CpuMm<any>;
  devmem: DevMem<any>;
  driver: SvmDriver<any>;
  pt: PageTable<bigint>;
  setup: SvmSetup;
}

/** Page-table geometry that spans the universe (the top of u64 needs a 2^64 span). */
export function ptShifts(u: Universe): number[] | undefined {
  return u.base + u.size > 1n << 48n ? [12, 21, 30, 39, 48, 56] : undefined;
}

export class SvmWorld {
  live: Live | null = null;
  /** the clock the commands should have produced */
  clock = 0n;
  private queue: Injection[] = [];
  private out: string[] = [];

  constructor(
    readonly backend: BackendName,
    readonly u: Universe,
  ) {}

  /** An address argument in the API's mode. */
  num(v: bigint): N {
    return this.u.bigint ? v : Number(v);
  }

  /** The scanned area: everything a stream may map lies inside it. */
  get scan(): [bigint, bigint] {
    // windows may start at 0 (number mode) or one universe below it (bigint mode)
    const s = this.u.bigint ? this.u.base - 2n * this.u.size : 0n;
    let e = this.u.base + 4n * this.u.size;
    if (e > TWO64) e = TWO64;
    return [s, e];
  }

  /** Runs one command; returns the lines the replay prints for it. */
  run(c: Cmd): string[] {
    this.out = [];
    try {
      this.dispatch(c);
    } catch (err) {
      // only a setup may be refused for its arguments; the other commands are well formed
      if (c.t !== 'svm' || !(err instanceof RangeError || err instanceof TypeError || err instanceof GpuVmError)) throw err;
      this.out.push('err EINVAL');
    }
    return this.out;
  }

  private status(f: () => void): void {
    try {
      f();
      this.out.push('ok');
    } catch (err) {
      this.out.push(errLine(err));
    }
  }

  private cpu(c: CpuCmd): () => void {
    const mm = this.live!.mm;
    const a = this.num(c.addr);
    const l = this.num(c.len);
    switch (c.t) {
      case 'mmap':
        return () => mm.mmap(a, l, { readOnly: c.ro, kind: c.kind });
      case 'munmap':
        return () => mm.munmap(a, l);
      case 'mprotect':
        return () => mm.mprotect(a, l, c.mode);
      case 'madvise':
        return () => mm.madvise(a, l, 'dontneed');
      case 'cpu':
        return () => mm.access(a, l, { write: c.write });
    }
  }

  private hooks(taken: Injection[]): SvmHooks {
    const hooks: { [P in ArrivalPoint]?: (k: number) => void } = {};
    for (const inj of taken) {
      const p = POINT_HOOK[inj.point];
      if (hooks[p] !== undefined) continue;
      hooks[p] = (k: number) => {
        const kk = BigInt(k);
        for (const j of taken) {
          if (j.point !== inj.point || kk < j.nth || (j.count !== null && kk >= j.nth + j.count)) continue;
          j.fired = true;
          this.out.push(`inject ${j.point} ${k}`);
          try {
            this.cpu(j.cmd)();
            this.out.push('inject-done ok');
          } catch (err) {
            if (!(err instanceof GpuVmError)) throw err;
            this.out.push(`inject-done err ${err.code}`);
          }
        }
      };
    }
    return hooks;
  }

  private withInjections(f: (hooks: SvmHooks) => void): void {
    const taken = this.queue;
    this.queue = [];
    let failure: string | null = null;
    try {
      f(this.hooks(taken));
    } catch (err) {
      if (!(err instanceof GpuVmError)) throw err;
      failure = `err ${err.code}`;
    }
    for (const j of taken) if (!j.fired) this.out.push(`inject-unused ${j.point}`);
    this.out.push(failure ?? 'ok');
  }

  private dispatch(c: Cmd): void {
    if (c.t === 'svm') {
      this.setup(c);
      return;
    }
    const w = this.live;
    if (w === null) {
      this.out.push('err EINVAL');
      return;
    }
    switch (c.t) {
      case 'mmap':
      case 'munmap':
      case 'mprotect':
      case 'madvise':
      case 'cpu':
        this.status(this.cpu(c));
        return;
      case 'tick':
        this.status(() => {
          w.mm.tick(c.ms);
          this.clock += c.ms;
        });
        return;
      case 'gpufault': {
        const opts = {
          gpuStart: c.window ? c.window[0] : undefined,
          gpuEnd: c.window ? c.window[1] : undefined,
          ro: c.ro,
          devmem: c.devmem,
          atomic: c.atomic,
        };
        if (c.window && c.window[0] >= c.window[1]) {
          // a malformed fault leaves the injection queue alone
          this.status(() => w.driver.fault(this.num(c.addr), opts));
          return;
        }
        this.withInjections((hooks) => w.driver.fault(this.num(c.addr), { ...opts, hooks }));
        return;
      }
      case 'svmprefetch':
        this.withInjections((hooks) => w.driver.prefetch(this.num(c.addr), this.num(c.len), { devmem: c.devmem, hooks }));
        return;
      case 'inject':
        this.queue.push({
          point: c.point,
          nth: c.nth ?? 1n,
          count: c.count === 'all' ? null : (c.count ?? 1n),
          cmd: c.cmd,
          fired: false,
        });
        this.out.push('ok');
        return;
      case 'gc':
        this.status(() => w.driver.gc());
        return;
      case 'evict':
        this.status(() => w.driver.evict(this.num(c.addr)));
        return;
      case 'svmdump': {
        const svm = w.driver.svm;
        for (const n of svm.notifiers()) {
          this.out.push(`notifier ${hx(n.start)} ${hx(n.size)} ranges=${n.rangeCount}`);
          for (const r of n.ranges()) {
            const f = r.flagNames;
            this.out.push(
              `range ${hx(r.start)} ${hx(r.size)} flags=${f.length ? f.join(',') : '-'} pages=${svm.scanMm(r)} ` +
                `valid=${r.valid ? 1 : 0} bound=${r.bound ? 1 : 0}`,
            );
          }
        }
        return;
      }
      case 'devdump': {
        const d = w.devmem;
        this.out.push(`devmem used=${hx(d.used)} free=${hx(d.free)} allocations=${d.allocationCount}`);
        return;
      }
    }
  }

  private setup(c: SvmSetup): void {
    const { bigint } = this.u;
    const backend = this.backend;
    const mm = new CpuMm({ bigint, backend });
    let devmem: DevMem<any> | null = null;
    let pt: PageTable<bigint> | null = null;
    try {
      devmem = new DevMem({ size: c.devmem ?? 0n, bigint, backend });
      pt = new PageTable<bigint>({ shifts: ptShifts(this.u), bigint: true, backend });
      const driver = new SvmDriver<any>({
        mm,
        devmem,
        start: this.num(c.start),
        range: this.num(c.range),
        notifierSize: c.notifierSize,
        chunks: c.chunks,
        threshold: c.threshold,
        retries: c.retries,
        timeslice: c.timeslice,
        trace: (e) => this.out.push(formatSvmEvent(e)),
        pageTable: pt,
      });
      this.close();
      this.live = { mm, devmem, driver, pt, setup: c };
      this.queue = [];
      this.clock = 0n;
    } catch (err) {
      pt?.destroy();
      devmem?.destroy();
      mm.destroy();
      throw err;
    }
  }

  /** Tears the world down: fini first (its notifiers leave the CpuMm), then the rest. */
  close(): void {
    const w = this.live;
    if (w === null) return;
    w.driver.fini();
    if (w.mm.stats().notifiers !== 0) throw new Error('fini left MMU notifiers registered in the CpuMm');
    w.devmem.destroy();
    w.mm.destroy();
    w.pt.destroy();
    this.live = null;
  }

  // ---- state ---------------------------------------------------------------

  /** The whole state as plain data (bigints), comparable across engines and before/after a call. */
  snapshot(): unknown {
    const w = this.live;
    if (w === null) return null;
    const [s, e] = this.scan;
    const allocs = w.devmem.allocations() as DevAllocation[];
    const allocIndex = new Map<DevAllocation, number>(allocs.map((a, i) => [a, i]));
    return {
      clock: w.mm.clock,
      vmas: w.mm.vmas().map((v: Vma) => [B(v.start), B(v.size), v.readOnly, v.kind, v.anonVma, v.accounted, v.origin]),
      pages: w.mm
        .pages(this.num(s), this.num(e - s))
        .filter((r) => r.state !== 'none')
        .map((r) => [B(r.start), B(r.size), r.state, B(r.pa), r.allocation ? allocIndex.get(r.allocation as DevAllocation) : -1]),
      devmem: [B(w.devmem.used), B(w.devmem.free), w.devmem.allocationCount],
      allocations: allocs.map((a) => [B(a.start), B(a.size), a.migratedAt, a.timeslice, a.pages, a.released]),
      notifiers: w.driver.svm.notifiers().map((n) => [B(n.start), B(n.size), n.rangeCount, n.mmuNotifier.seq]),
      ranges: w.driver.svm
        .ranges()
        .map((r) => [B(r.start), B(r.size), r.flagNames.join(','), r.bound, r.queued, r.refcount, r.removed]),
      queued: w.driver.queued.map((r) => B(r.start)),
      pt: w.pt
        .dump()
        .filter((x) => x.kind === 'leaf' || x.kind === 'null')
        .map((x) => [x.va, x.size, x.pa, x.level]),
      ptStats: w.pt.stats,
    };
  }

  /** Throws an Error saying which invariant broke. `salt` varies the sampled translations. */
  check(salt: number): void {
    const w = this.live;
    if (w === null) return;
    const fail = (msg: string): never => {
      throw new Error(`invariant: ${msg}`);
    };
    const { mm, devmem, driver, pt } = w;
    const svm = driver.svm;
    const [scanS, scanE] = this.scan;
    if (mm.clock !== this.clock) fail(`clock ${mm.clock} != ${this.clock}`);

    // VMAs: disjoint, ascending, normalized
    const vmas = mm.vmas().map((v: Vma) => ({ ...v, s: B(v.start), e: B(v.start) + B(v.size) }));
    for (let i = 0; i < vmas.length; i++) {
      const v = vmas[i];
      if (v.s >= v.e) fail(`empty VMA at ${hx(v.s)}`);
      if (v.s < scanS || v.e > scanE) fail(`VMA ${hx(v.s)} outside the area the stream maps`);
      if (v.kind !== 'anon' && (v.anonVma !== 0 || v.accounted)) fail(`${v.kind} VMA ${hx(v.s)} has an anon_vma or is accounted`);
      if (i > 0) {
        const p = vmas[i - 1];
        if (p.e > v.s) fail(`VMAs ${hx(p.s)} and ${hx(v.s)} overlap`);
        if (p.e === v.s && mergeable(p, v)) fail(`VMAs ${hx(p.s)} and ${hx(v.s)} should have been merged`);
      }
    }

    // pages: inside VMAs; anonymous VMAs with pages have an anon_vma; frames and device pages never shared
    const runs = mm.pages(this.num(scanS), this.num(scanE - scanS)).filter((r) => r.state !== 'none');
    const devCount = new Map<DevAllocation, bigint>();
    const frames: [bigint, bigint][] = [];
    const devAddrs: [bigint, bigint][] = [];
    let vi = 0;
    const dBase = B(devmem.base);
    const dEnd = dBase + B(devmem.size);
    for (const r of runs) {
      const rs = B(r.start);
      const re = rs + B(r.size);
      let p = rs;
      while (p < re) {
        while (vi < vmas.length && vmas[vi].e <= p) vi++;
        if (vi >= vmas.length || vmas[vi].s > p) fail(`${r.state} page ${hx(p)} outside every VMA`);
        const v = vmas[vi];
        if (v.kind === 'anon' && v.anonVma === 0) fail(`anonymous VMA ${hx(v.s)} holds pages but has no anon_vma`);
        p = v.e < re ? v.e : re;
      }
      if (r.state === 'dev') {
        const a = r.allocation as DevAllocation;
        if (a === null || a.devmem !== devmem) fail(`dev page ${hx(rs)} without an allocation of the pool`);
        devCount.set(a, (devCount.get(a) ?? 0n) + B(r.size) / PAGE);
        if (B(r.pa) < dBase || B(r.pa) + B(r.size) > dEnd) fail(`dev page ${hx(rs)} at device address ${hx(r.pa)} outside the pool`);
        devAddrs.push([B(r.pa), B(r.pa) + B(r.size)]);
      } else {
        if (r.allocation !== null) fail(`sys page ${hx(rs)} with an allocation`);
        frames.push([B(r.pa), B(r.pa) + B(r.size)]);
      }
    }
    disjoint(frames, 'system frames', fail);
    disjoint(devAddrs, 'device addresses', fail);

    // device memory accounting
    const allocs = devmem.allocations() as DevAllocation[];
    if (devmem.allocationCount !== allocs.length) fail('allocationCount differs from allocations()');
    let used = 0n;
    for (const a of allocs) {
      used += B(a.size);
      const n = devCount.get(a) ?? 0n;
      if (a.released) fail(`released allocation ${hx(a.start)} still listed`);
      if (n === 0n) fail(`allocation ${hx(a.start)} has no device page left`);
      if (B(a.pages) !== n) fail(`allocation ${hx(a.start)} counts ${a.pages} pages, CpuMm shows ${n}`);
      devCount.delete(a);
    }
    if (devCount.size > 0) fail('dev pages of an allocation the pool does not list');
    if (B(devmem.used) !== used) fail(`used ${hx(devmem.used)} != sum of allocations ${hx(used)}`);
    if (B(devmem.used) + B(devmem.free) !== B(devmem.size)) fail('used + free != size');

    // notifiers and ranges
    const ns = B(svm.notifierSize);
    const chunks = svm.chunks.map(B);
    const winS = B(svm.start);
    const winE = winS + B(svm.range);
    const notifiers = svm.notifiers();
    let total = 0;
    let queuedCount = 0;
    const bound: SvmRange<any>[] = [];
    let prevEnd = -1n;
    for (const n of notifiers) {
      const s = B(n.start);
      if (s % ns !== 0n || B(n.size) !== ns) fail(`notifier ${hx(s)} is not one aligned block`);
      if (s < prevEnd) fail(`notifiers overlap at ${hx(s)}`);
      prevEnd = s + ns;
      if (n.mmuNotifier.removed) fail(`notifier ${hx(s)} lost its MMU notifier`);
      const rs = n.ranges();
      if (rs.length === 0) fail(`notifier ${hx(s)} survives with no range`);
      if (rs.length !== n.rangeCount) fail(`notifier ${hx(s)} rangeCount ${n.rangeCount} != ${rs.length}`);
      total += rs.length;
      let pe = s;
      for (const r of rs) {
        const a = B(r.start);
        const size = B(r.size);
        const e = a + size;
        if (r.notifier !== n) fail(`range ${hx(a)} lists another notifier`);
        if (a < pe) fail(`ranges overlap at ${hx(a)}`);
        if (e > s + ns) fail(`range ${hx(a)} leaves its notifier block`);
        // a fault's explicit GPU window is not clipped to the SVM window, so a
        // range may reach past it; the faulting address was inside it
        if (e <= winS || a >= winE) fail(`range ${hx(a)} outside the SVM window`);
        if (!chunks.includes(size) || a % size !== 0n) fail(`range ${hx(a)} size ${hx(size)} is not an aligned chunk`);
        if (r.removed || r.refcount !== 1) fail(`live range ${hx(a)} removed=${r.removed} refcount=${r.refcount}`);
        pe = e;
        if (r.migrateDevmem && !svm.hasDevmem) fail(`range ${hx(a)} may migrate without device memory`);
        if (r.partialUnmap && !r.unmapped) fail(`range ${hx(a)} partial_unmap without unmapped`);
        if (r.unmapped !== r.queued) fail(`range ${hx(a)} unmapped=${r.unmapped} queued=${r.queued}`);
        if (r.queued) queuedCount++;
        if (r.unmapped && (r.valid || r.bound)) fail(`unmapped range ${hx(a)} is valid or bound`);
        if (r.bound && !r.valid) fail(`bound range ${hx(a)} is not valid`);
        if (r.hasDevmemPages && !r.hasDmaMapping) fail(`range ${hx(a)} has_devmem_pages without has_dma_mapping`);
        if (r.valid) {
          const pr = mm.pages(r.start, r.size);
          const kind = pr[0].state;
          if (kind === 'none') fail(`valid range ${hx(a)} has an absent page`);
          for (const x of pr) {
            if (x.state !== kind) fail(`valid range ${hx(a)} mixes ${kind} and ${x.state} pages`);
            if (x.allocation !== pr[0].allocation) fail(`valid range ${hx(a)} has pages of two allocations`);
          }
          if (r.hasDevmemPages !== (kind === 'dev')) fail(`range ${hx(a)} has_devmem_pages=${r.hasDevmemPages} with ${kind} pages`);
        }
        if (r.bound) bound.push(r);
      }
    }
    if (svm.ranges().length !== total) fail(`ranges() has ${svm.ranges().length}, the notifiers ${total}`);
    const st = svm.stats();
    if (st.ranges !== total || st.notifiers !== notifiers.length) fail(`stats ${JSON.stringify(st)} != ${total} ranges, ${notifiers.length} notifiers`);
    if (mm.stats().notifiers !== notifiers.length) fail(`CpuMm holds ${mm.stats().notifiers} MMU notifiers for ${notifiers.length}`);
    const q = driver.queued;
    if (q.length !== queuedCount || q.some((r) => r.removed || !r.queued)) fail('the collector queue and the queued flags disagree');

    // page table: exactly the bound ranges, at their frames / device addresses
    const want: [bigint, bigint, bigint][] = [];
    for (const r of bound) {
      for (const x of mm.pages(r.start, r.size)) want.push([B(x.start), B(x.pa), B(x.size)]);
    }
    const got: [bigint, bigint, bigint][] = [];
    for (const x of pt.dump()) {
      if (x.kind === 'null') fail(`null leaf at ${hx(x.va)}`);
      if (x.kind === 'leaf' && !x.zapped) got.push([x.va, x.pa!, x.size]);
    }
    const a1 = coalesce(want);
    const a2 = coalesce(got);
    if (a1.length !== a2.length || a1.some((x, i) => x[0] !== a2[i][0] || x[1] !== a2[i][1] || x[2] !== a2[i][2])) {
      fail(`page table ${fmtRuns(a2)} != bound pages ${fmtRuns(a1)}`);
    }
    // and translate() agrees at a few pages of the window
    const winPages = (winE - winS) / PAGE;
    for (let i = 0; i < 3; i++) {
      const p = winS + (BigInt((salt * 2654435761 + i * 40503) >>> 0) % winPages) * PAGE;
      const t = pt.translate(p);
      let expect: bigint | null = null;
      for (const [va, pa, len] of a1) if (p >= va && p < va + len) expect = pa + (p - va);
      if ((t === null ? null : t.pa) !== expect) fail(`translate(${hx(p)}) = ${t === null ? 'none' : hx(t.pa!)}, want ${expect === null ? 'none' : hx(expect)}`);
    }
  }
}

/** The status line of a semantic failure; anything but a GpuVmError is a failure of the test. */
function errLine(err: unknown): string {
  if (err instanceof GpuVmError) return `err ${err.code}`;
  throw err;
}

/** Linux's merge rule for two adjacent VMAs (first ends where second starts). */
function mergeable(a: Vma, b: Vma): boolean {
  if (a.readOnly !== b.readOnly || a.kind !== b.kind || a.accounted !== b.accounted) return false;
  if (a.kind === 'anon') return a.anonVma === 0 || b.anonVma === 0 || a.anonVma === b.anonVma;
  if (a.kind === 'file') return a.origin === b.origin;
  return false;
}

function disjoint(xs: [bigint, bigint][], what: string, fail: (m: string) => never): void {
  xs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 1; i < xs.length; i++) if (xs[i][0] < xs[i - 1][1]) fail(`${what} used twice at ${hx(xs[i][0])}`);
}

/** [va, pa, len] runs merged where both va and pa continue. */
function coalesce(xs: [bigint, bigint, bigint][]): [bigint, bigint, bigint][] {
  xs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint, bigint][] = [];
  for (const x of xs) {
    const l = out[out.length - 1];
    if (l && l[0] + l[2] === x[0] && l[1] + l[2] === x[1]) l[2] += x[2];
    else out.push([x[0], x[1], x[2]]);
  }
  return out;
}

function fmtRuns(xs: [bigint, bigint, bigint][]): string {
  const s = xs.slice(0, 6).map(([va, pa, l]) => `${hx(va)}+${hx(l)}@${hx(pa)}`);
  return `[${s.join(' ')}${xs.length > 6 ? ` …${xs.length}` : ''}]`;
}
