/**
 * The SVM layer under seeded random streams, on every engine.
 *
 * 1. Streams of svm setups, mmap/munmap/mprotect/madvise/cpu/tick, GPU
 *    faults (ro, devmem, atomic, explicit windows), prefetches, injections
 *    at every arrival point, gc and evict, with addresses drawn from small
 *    windows so everything collides. They run through the object API
 *    (CpuMm + DevMem + SvmDriver with a PageTable) and the invariants are
 *    checked after every command; the transcript must equal what `replay()`
 *    prints for the same text; after teardown the engine holds nothing more.
 * 2. Native vs WASM: the same streams give identical replay output,
 *    identical per-command transcripts and identical final snapshots.
 * 3. Bad input to every public call leaves the state unchanged; a hook
 *    that throws propagates and leaves a consistent state.
 *
 * GPUVM_SEED=<n> replaces the seeds; a failure names its seed and command.
 */
import { describe, expect, it } from 'vitest';
import {
  DevMem,
  GpuSvm,
  GpuVmError,
  MmuNotifier,
  SvmDriver,
  SvmRange,
  engineMemory,
  ARRIVAL_POINTS,
  type ArrivalPoint,
} from '../src/index.js';
import type { ErrnoName } from '../src/backend/engine.js';
import type { BackendName } from '../src/backend/loader.js';
import { replay } from '../src/replay.js';
import { backends } from './support/engines.js';
import { cmdText, makeSvmStream, streamText, type Cmd, type Universe } from './support/svm-stream.js';
import { SvmWorld } from './support/svm-world.js';

const TWO64 = 1n << 64n;
const SEED = process.env.GPUVM_SEED ? Number(process.env.GPUVM_SEED) : null;

const UNIVERSES: (Universe & { seeds: number[]; commands: number })[] = [
  { name: '8 MiB low (number mode)', base: 0x10000000n, size: 0x800000n, bigint: false, maxLog: 21, seeds: [0x5f01, 0x5f02, 0x5f03, 0x5f04], commands: 2500 },
  { name: '256 KiB (number mode, small chunks)', base: 0x7000000n, size: 0x40000n, bigint: false, maxLog: 16, seeds: [0x5f11, 0x5f12, 0x5f13], commands: 2500 },
  { name: '8 MiB at the top of u64 (bigint)', base: TWO64 - 0x800000n, size: 0x800000n, bigint: true, maxLog: 21, seeds: [0x5f21, 0x5f22], commands: 2000 },
];

interface RunResult {
  /** lines of each command */
  perCmd: string[][];
  replayOut: string;
  finalSnap: unknown;
}

/** Results of part 1, reused by the differential part. */
const results = new Map<string, RunResult>();

/** Runs a stream through the object API, checking the invariants after every command. */
function runObject(backend: BackendName, u: Universe, seed: number, cmds: readonly Cmd[]): { perCmd: string[][]; finalSnap: unknown } {
  const w = new SvmWorld(backend, u);
  const perCmd: string[][] = [];
  let i = 0;
  try {
    for (; i < cmds.length; i++) {
      perCmd.push(w.run(cmds[i]));
      w.check(i);
    }
    return { perCmd, finalSnap: w.snapshot() };
  } catch (err) {
    const e = err as Error;
    const recent = cmds.slice(Math.max(0, i - 8), i + 1).map((c, k) => `  #${Math.max(0, i - 8) + k} ${cmdText(c)}`);
    e.message = `${u.name}, seed ${seed}, command #${i} on ${backend}: ${cmdText(cmds[i])}\n` +
      `printed: ${JSON.stringify(perCmd[i] ?? null)}\nlast commands:\n${recent.join('\n')}\n${e.message}`;
    throw e;
  } finally {
    w.close();
  }
}

/** The first command whose lines differ between a per-command transcript and a replay output. */
function firstDifference(cmds: readonly Cmd[], perCmd: string[][], out: string): string | null {
  const lines = out.split('\n');
  let at = 0;
  for (let i = 0; i < cmds.length; i++) {
    const mine = perCmd[i];
    const theirs = lines.slice(at, at + mine.length);
    if (mine.some((l, k) => l !== theirs[k])) {
      return `command #${i} ${cmdText(cmds[i])}\n  object API: ${JSON.stringify(mine)}\n  replay:     ${JSON.stringify(lines.slice(at, at + mine.length + 3))}`;
    }
    at += mine.length;
  }
  return at === lines.length - 1 ? null : `replay printed ${lines.length - 1 - at} more lines`;
}

const cases = UNIVERSES.flatMap((u) => (SEED === null ? u.seeds : [SEED]).map((seed) => [u.name, seed, u] as const));

describe.each(backends)('random SVM streams on %s', (backend) => {
  it.each(cases)('%s, seed %d: invariants after every command, the replay prints the same', (_n, seed, u) => {
    const cmds = makeSvmStream(seed, u.commands, u);
    const { perCmd, finalSnap } = runObject(backend, u, seed, cmds);
    const replayOut = replay(streamText(cmds), { backend });
    const diff = firstDifference(cmds, perCmd, replayOut);
    expect(diff, `${u.name}, seed ${seed}`).toBeNull();
    results.set(`${backend}/${u.name}/${seed}`, { perCmd, replayOut, finalSnap });
  });

  it('after the streams are torn down the engine holds no more than after the first time', () => {
    const u = UNIVERSES[0];
    const cmds = makeSvmStream(0x1eaf, 1200, u);
    const used: number[] = [];
    for (let k = 0; k < 3; k++) {
      runObject(backend, u, 0x1eaf, cmds);
      used.push(engineMemory(backend).used);
    }
    // the first run may grow the engine's pools; repeating it must not grow them again
    expect(used[2]).toBe(used[1]);
  });
});

describe('native and WASM run the same SVM streams identically', () => {
  const both = backends.includes('native') && backends.includes('wasm');
  it.skipIf(!both).each(cases)('%s, seed %d: replay output, transcripts and final state', (_n, seed, u) => {
    const get = (backend: BackendName): RunResult => {
      const hit = results.get(`${backend}/${u.name}/${seed}`);
      if (hit) return hit;
      const cmds = makeSvmStream(seed, u.commands, u);
      const { perCmd, finalSnap } = runObject(backend, u, seed, cmds);
      return { perCmd, finalSnap, replayOut: replay(streamText(cmds), { backend }) };
    };
    const n = get('native');
    const w = get('wasm');
    const cmds = makeSvmStream(seed, u.commands, u);
    const diff = firstDifference(cmds, n.perCmd, w.replayOut);
    expect(diff, 'native object API vs WASM replay').toBeNull();
    expect(n.replayOut).toBe(w.replayOut);
    expect(n.perCmd).toEqual(w.perCmd);
    expect(n.finalSnap).toEqual(w.finalSnap);
  });
});

// ---------------------------------------------------------------------------
// 3. Bad input

const FIX_U: Universe = { name: 'fixture', base: 0x10000000n, size: 0x800000n, bigint: false, maxLog: 21 };

/**
 * A world with a bit of everything: a device range and system ranges bound,
 * a range on a read-only VMA, a file range queued for the collector, a
 * removed range (kept to pass back), a ticked clock.
 */
function fixture(backend: BackendName, bigint = false) {
  const u = { ...FIX_U, bigint };
  const w = new SvmWorld(backend, u);
  const P = (s: string) => BigInt(s);
  const run = (c: Cmd) => {
    const out = w.run(c);
    w.check(0);
    return out;
  };
  run({ t: 'svm', start: u.base, range: u.size, notifierSize: 0x200000n, chunks: [0x200000n, 0x10000n, 0x1000n], devmem: 0x400000n });
  run({ t: 'mmap', addr: P('0x10000000'), len: P('0x400000'), ro: false, kind: 'anon' });
  run({ t: 'gpufault', addr: P('0x10000000'), window: null, ro: false, devmem: true, atomic: false });
  run({ t: 'gpufault', addr: P('0x10200000'), window: null, ro: false, devmem: false, atomic: false });
  const live = w.live!;
  const svm = live.driver.svm;
  const removed = svm.findRange(w.num(0x10200000n))!;
  run({ t: 'munmap', addr: P('0x10300000'), len: P('0x1000') });
  run({ t: 'gc' });
  run({ t: 'gpufault', addr: P('0x10200000'), window: null, ro: false, devmem: false, atomic: false });
  run({ t: 'mmap', addr: P('0x10600000'), len: P('0x10000'), ro: true, kind: 'anon' });
  run({ t: 'gpufault', addr: P('0x10600000'), window: null, ro: true, devmem: false, atomic: false });
  run({ t: 'mmap', addr: P('0x10500000'), len: P('0x100000'), ro: false, kind: 'file' });
  run({ t: 'gpufault', addr: P('0x10500000'), window: null, ro: false, devmem: false, atomic: false });
  run({ t: 'munmap', addr: P('0x10508000'), len: P('0x1000') });
  run({ t: 'tick', ms: 5n });
  const range = svm.findRange(w.num(0x10000000n))!;
  expect(removed.removed && range.bound && range.hasDevmemPages && live.driver.queued.length === 1).toBe(true);
  return { w, ...live, svm, range, removed };
}

type Expect = 'TypeError' | 'RangeError' | ErrnoName | Error;

/** The call fails as expected (naming `name` when given) and the state is exactly what it was. */
function refuses(w: SvmWorld, label: string, f: () => unknown, want: Expect, name?: RegExp): void {
  const before = w.snapshot();
  let err: unknown = null;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `${label}: no error`).not.toBeNull();
  if (want instanceof Error) expect(err, label).toBe(want);
  else if (want === 'TypeError') expect(err, `${label}: ${String(err)}`).toBeInstanceOf(TypeError);
  else if (want === 'RangeError') expect(err, `${label}: ${String(err)}`).toBeInstanceOf(RangeError);
  else {
    expect(err, `${label}: ${String(err)}`).toBeInstanceOf(GpuVmError);
    expect((err as GpuVmError).code, `${label}: ${String(err)}`).toBe(want);
  }
  if (name) expect((err as Error).message, label).toMatch(name);
  expect(w.snapshot(), `${label}: state changed`).toEqual(before);
  w.check(1);
}

describe.each(backends)('bad input to the SVM API on %s', (backend) => {
  it('CpuMm and MmuNotifier: wrong types, NaN, negatives, fractions, unaligned, overflow, > 2^53, hostile getters', () => {
    const { w, mm, svm } = fixture(backend);
    const a = 0x10000000;
    const cases: [string, () => unknown, Expect, RegExp?][] = [
      ['mmap string addr', () => mm.mmap('0x1000' as never, 0x1000), 'TypeError', /addr/],
      ['mmap NaN', () => mm.mmap(NaN, 0x1000), 'RangeError', /addr/],
      ['mmap negative', () => mm.mmap(-0x1000, 0x1000), 'RangeError', /addr/],
      ['mmap fraction', () => mm.mmap(a + 0.5, 0x1000), 'RangeError', /addr/],
      ['mmap Infinity len', () => mm.mmap(a, Infinity), 'RangeError', /len/],
      ['mmap unaligned addr', () => mm.mmap(a + 1, 0x1000), 'EINVAL', /addr/],
      ['mmap unaligned len', () => mm.mmap(a, 0x1001), 'EINVAL', /len/],
      ['mmap len 0', () => mm.mmap(a, 0), 'EINVAL', /len/],
      ['mmap above 2^53 (number mode)', () => mm.mmap(2 ** 53, 0x1000), 'RangeError', /addr/],
      ['mmap bigint above 2^53 (number mode)', () => mm.mmap(1n << 60n, 0x1000n), 'RangeError', /addr/],
      ['mmap end above 2^53 (number mode)', () => mm.mmap(2 ** 53 - 0x1000, 0x2000), 'RangeError', /2\^53/],
      ['mmap bigint >= 2^64', () => mm.mmap(1n << 64n, 0x1000n), 'RangeError', /addr/],
      ['mmap bad kind', () => mm.mmap(a, 0x1000, { kind: 'shm' as never }), 'TypeError', /kind/],
      ['mmap bad readOnly', () => mm.mmap(a, 0x1000, { readOnly: 1 as never }), 'TypeError', /readOnly/],
      ['mmap null options', () => mm.mmap(a, 0x1000, null as never), 'TypeError', /options/],
      ['munmap unaligned', () => mm.munmap(a, 0x800), 'EINVAL', /len/],
      ['munmap symbol', () => mm.munmap(Symbol('x') as never, 0x1000), 'TypeError', /addr/],
      ['mprotect bad mode', () => mm.mprotect(a, 0x1000, 'rx' as never), 'TypeError', /mode/],
      ['mprotect NaN len', () => mm.mprotect(a, NaN, 'ro'), 'RangeError', /len/],
      ['mprotect no VMA', () => mm.mprotect(0x30000000, 0x1000, 'ro'), 'ENOMEM'],
      ['madvise bad advice', () => mm.madvise(a, 0x1000, 'free' as never), 'TypeError', /advice/],
      ['madvise no VMA', () => mm.madvise(0x30000000, 0x1000, 'dontneed'), 'ENOMEM'],
      ['access bad write', () => mm.access(a, 0x1000, { write: 'yes' as never }), 'TypeError', /write/],
      ['access fraction len', () => mm.access(a, 4096.5), 'RangeError', /len/],
      ['access no VMA', () => mm.access(0x30000000, 0x1000), 'EFAULT'],
      ['tick negative', () => mm.tick(-1), 'RangeError', /ms/],
      ['tick fraction', () => mm.tick(1.5), 'RangeError', /ms/],
      ['tick string', () => mm.tick('1' as never), 'TypeError', /ms/],
      ['tick >= 2^64', () => mm.tick(1n << 64n), 'RangeError', /ms/],
      ['tick overflow', () => mm.tick((1n << 64n) - 3n), 'EINVAL'],
      ['findVma bad addr', () => mm.findVma({} as never), 'TypeError', /addr/],
      ['vmas without len', () => mm.vmas(a), 'TypeError', /len/],
      ['pages unaligned', () => mm.pages(a + 0x10, 0x1000), 'EINVAL', /addr/],
      ['insertNotifier bad callback', () => mm.insertNotifier(a, 0x1000, 'cb' as never), 'TypeError', /callback/],
      ['insertNotifier unaligned', () => mm.insertNotifier(a + 1, 0x1000, () => {}), 'EINVAL', /addr/],
      ['new MmuNotifier', () => new (MmuNotifier as any)(Symbol('x')), 'TypeError'],
      [
        'mmap options getter that throws',
        () =>
          mm.mmap(a, 0x1000, {
            get readOnly(): boolean {
              throw boom;
            },
          }),
        boom,
      ],
      [
        'mmap options getter that reads the library, then a bad kind',
        () =>
          mm.mmap(a, 0x1000, {
            get kind() {
              mm.vmas();
              svm.ranges();
              return 'bogus' as never;
            },
          }),
        'TypeError',
        /kind/,
      ],
      [
        'access options getter that throws',
        () =>
          mm.access(a, 0x1000, {
            get write(): boolean {
              throw boom;
            },
          }),
        boom,
      ],
    ];
    for (const [label, f, want, name] of cases) refuses(w, label, f, want, name);
    w.close();
  });

  it('DevMem, GpuSvm and SvmDriver constructors: bad options change nothing', () => {
    const { w, mm, devmem } = fixture(backend);
    const ok = { mm, devmem, start: 0x10000000, range: 0x800000, notifierSize: 0x200000, chunks: [0x200000, 0x1000] };
    const svmCases: [string, object | null, Expect, RegExp?][] = [
      ['null options', null, 'TypeError', /options/],
      ['mm not a CpuMm', { ...ok, mm: {} }, 'TypeError', /mm/],
      ['devmem not a DevMem', { ...ok, devmem: 5 }, 'TypeError', /devmem/],
      ['start unaligned', { ...ok, start: 0x10000010 }, 'EINVAL', /start/],
      ['start NaN', { ...ok, start: NaN }, 'RangeError', /start/],
      ['range 0', { ...ok, range: 0 }, 'EINVAL', /range/],
      ['range negative', { ...ok, range: -0x1000 }, 'RangeError', /range/],
      ['window above 2^53 (number mode)', { ...ok, start: 2 ** 53 }, 'RangeError', /start/],
      ['notifierSize not a power of two', { ...ok, notifierSize: 0x3000 }, 'EINVAL', /notifierSize/],
      ['notifierSize below a page', { ...ok, notifierSize: 0x800 }, 'EINVAL', /notifierSize/],
      ['notifierSize string', { ...ok, notifierSize: '4096' }, 'TypeError', /notifierSize/],
      ['chunks not an array', { ...ok, chunks: 0x1000 }, 'TypeError', /chunks/],
      ['chunks empty', { ...ok, chunks: [] }, 'EINVAL', /chunks/],
      ['chunks ascending', { ...ok, chunks: [0x1000, 0x10000] }, 'EINVAL', /chunks/],
      ['chunks repeated', { ...ok, chunks: [0x10000, 0x10000, 0x1000] }, 'EINVAL', /chunks/],
      ['chunk not a power of two', { ...ok, chunks: [0x3000, 0x1000] }, 'EINVAL', /chunks/],
      ['chunks not ending with 0x1000', { ...ok, chunks: [0x10000, 0x2000] }, 'EINVAL', /chunks/],
      ['chunk NaN', { ...ok, chunks: [NaN, 0x1000] }, 'RangeError', /chunks\[0\]/],
      ['threshold negative', { ...ok, threshold: -1 }, 'RangeError', /threshold/],
      ['retries fraction', { ...ok, retries: 1.5 }, 'RangeError', /retries/],
      ['timeslice string', { ...ok, timeslice: '1' }, 'TypeError', /timeslice/],
      ['timeslice >= 2^64', { ...ok, timeslice: 1n << 64n }, 'RangeError', /timeslice/],
      ['trace not a function', { ...ok, trace: 5 }, 'TypeError', /trace/],
      ['pageTable not a PageTable', { ...ok, pageTable: {} }, 'TypeError', /pageTable/],
      [
        'mm getter that throws',
        {
          ...ok,
          get mm() {
            throw boom;
          },
        },
        boom,
      ],
      [
        'chunks with an element getter that calls into the library, then throws',
        {
          ...ok,
          chunks: Object.defineProperty([0, 0x1000], 0, {
            get() {
              mm.vmas();
              throw boom;
            },
          }),
        },
        boom,
      ],
    ];
    for (const [label, o, want, name] of svmCases) {
      refuses(w, `SvmDriver: ${label}`, () => new SvmDriver(o as never), want, name);
      if (label !== 'pageTable not a PageTable') refuses(w, `GpuSvm: ${label}`, () => new GpuSvm(o as never), want, name);
    }
    const devCases: [string, unknown, Expect, RegExp?][] = [
      ['null', null, 'TypeError', /options/],
      ['size unaligned', { size: 0x1001 }, 'EINVAL', /size/],
      ['size negative', { size: -0x1000 }, 'RangeError', /size/],
      ['size string', { size: '4096' }, 'TypeError', /size/],
      ['size >= 2^64', { size: 1n << 64n }, 'RangeError', /size/],
      ['base + size above 2^64', { size: 0x2000n, base: (1n << 64n) - 0x1000n }, 'EINVAL', /base/],
      ['hooks not an object', { size: 0x1000, hooks: 5 }, 'TypeError', /hooks/],
      ['hook not a function', { size: 0x1000, hooks: { release: 1 } }, 'TypeError', /release/],
      ['bigint not a boolean', { size: 0x1000, bigint: 'yes' }, 'TypeError', /bigint/],
      ['backend unknown', { size: 0x1000, backend: 'NATIVE' }, 'TypeError'],
      [
        'size getter that throws',
        {
          get size() {
            throw boom;
          },
        },
        boom,
      ],
    ];
    for (const [label, o, want, name] of devCases) refuses(w, `DevMem: ${label}`, () => new DevMem(o as never), want, name);
    w.close();
  });

  it('GpuSvm, SvmRange and SvmDriver calls: bad arguments, foreign and removed ranges', () => {
    const { w, svm, driver, range, removed } = fixture(backend);
    const other = fixture(backend);
    const foreign = other.range;
    const a = 0x10000000;
    const cases: [string, () => unknown, Expect, RegExp?][] = [
      ['ranges without len', () => svm.ranges(a), 'TypeError', /len/],
      ['ranges unaligned', () => svm.ranges(a + 1, 0x1000), 'EINVAL', /addr/],
      ['findRange string', () => svm.findRange('x' as never), 'TypeError', /addr/],
      ['findRange negative', () => svm.findRange(-1), 'RangeError', /addr/],
      ['findRange above 2^53', () => svm.findRange(2 ** 60), 'RangeError', /addr/],
      ['scanMm not a range', () => svm.scanMm({} as never), 'TypeError', /range/],
      ['scanMm foreign range', () => svm.scanMm(foreign), 'TypeError', /range/],
      ['scanMm removed range', () => svm.scanMm(removed), 'EINVAL', /removed/],
      ['findVmaStart len 0', () => svm.findVmaStart(a, 0), 'EINVAL', /len/],
      ['hasMapping NaN', () => svm.hasMapping(NaN, 0x1000), 'RangeError', /addr/],
      ['pagesValid null', () => svm.pagesValid(null as never), 'TypeError', /range/],
      ['findOrInsert negative', () => svm.findOrInsert(-1), 'RangeError', /addr/],
      ['findOrInsert half a window', () => svm.findOrInsert(a, { gpuStart: a }), 'TypeError', /gpuEnd/],
      ['findOrInsert empty window', () => svm.findOrInsert(a, { gpuStart: a + 0x2000, gpuEnd: a }), 'EINVAL', /gpuStart/],
      ['findOrInsert bad readOnly', () => svm.findOrInsert(a, { readOnly: 1 as never }), 'TypeError', /readOnly/],
      ['findOrInsert bad threshold', () => svm.findOrInsert(a, { threshold: -1 }), 'RangeError', /threshold/],
      ['findOrInsert outside the window', () => svm.findOrInsert(0x30000000), 'EINVAL'],
      ['findOrInsert without a VMA', () => svm.findOrInsert(0x10700000), 'ENOENT'],
      ['getPages removed', () => svm.getPages(removed), 'EINVAL', /removed/],
      ['getPages foreign', () => svm.getPages(foreign), 'TypeError', /range/],
      ['getPages hooks not an object', () => svm.getPages(range, { hooks: 5 as never }), 'TypeError', /hooks/],
      ['getPages hook not a function', () => svm.getPages(range, { hooks: { inHmm: 3 as never } }), 'TypeError', /inHmm/],
      ['getPages bad write', () => svm.getPages(range, { write: 'yes' as never }), 'TypeError', /write/],
      ['unmapPages removed', () => svm.unmapPages(removed), 'EINVAL', /removed/],
      ['setUnmapped unaligned', () => svm.setUnmapped(range, a + 1, 0x1000), 'EINVAL', /addr/],
      ['setUnmapped foreign', () => svm.setUnmapped(foreign, a, 0x1000), 'TypeError', /range/],
      ['rangeRemove removed', () => svm.rangeRemove(removed), 'EINVAL', /removed/],
      ['rangeRemove foreign', () => svm.rangeRemove(foreign), 'TypeError', /range/],
      ['rangeEvict not a range', () => svm.rangeEvict(5 as never), 'TypeError', /range/],
      ['allocVram bad timeslice', () => svm.allocVram(range, { timeslice: -1 }), 'RangeError', /timeslice/],
      ['allocVram removed', () => svm.allocVram(removed), 'EINVAL', /removed/],
      ['trace setter', () => ((svm as { trace: unknown }).trace = 5), 'TypeError', /trace/],
      ['removed range get', () => removed.get(), 'EINVAL'],
      ['removed range put', () => removed.put(), 'EINVAL'],
      ['new SvmRange', () => new (SvmRange as any)(Symbol('x')), 'TypeError'],
      ['fault string', () => driver.fault('x' as never), 'TypeError', /addr/],
      ['fault negative', () => driver.fault(-1), 'RangeError', /addr/],
      ['fault fraction', () => driver.fault(a + 0.5), 'RangeError', /addr/],
      ['fault bigint above 2^53 (number mode)', () => driver.fault(1n << 60n), 'RangeError', /addr/],
      ['fault null options', () => driver.fault(a, null as never), 'TypeError', /options/],
      ['fault bad ro', () => driver.fault(a, { ro: 'x' as never }), 'TypeError', /ro/],
      ['fault bad hooks', () => driver.fault(a, { hooks: 5 as never }), 'TypeError', /hooks/],
      ['fault bad hook', () => driver.fault(a, { hooks: { afterGc: 'x' as never } }), 'TypeError', /afterGc/],
      ['fault half a window', () => driver.fault(a, { gpuStart: a }), 'TypeError', /gpuEnd/],
      ['fault empty window', () => driver.fault(a, { gpuStart: a + 0x1000, gpuEnd: a + 0x1000 }), 'EINVAL', /gpuStart/],
      [
        'fault options getter that throws',
        () =>
          driver.fault(a, {
            get atomic(): boolean {
              throw boom;
            },
          }),
        boom,
      ],
      [
        'fault hooks getter that throws',
        () =>
          driver.fault(a, {
            hooks: {
              get afterBind(): () => void {
                throw boom;
              },
            },
          }),
        boom,
      ],
      ['prefetch unaligned', () => driver.prefetch(a + 1, 0x1000), 'EINVAL', /addr/],
      ['prefetch len 0', () => driver.prefetch(a, 0), 'EINVAL', /len/],
      ['prefetch above 2^53', () => driver.prefetch(2 ** 53 - 0x1000, 0x2000), 'RangeError', /2\^53/],
      ['prefetch bad devmem', () => driver.prefetch(a, 0x1000, { devmem: 1 as never }), 'TypeError', /devmem/],
      [
        'prefetch options getter that throws',
        () =>
          driver.prefetch(a, 0x1000, {
            get devmem(): boolean {
              throw boom;
            },
          }),
        boom,
      ],
      ['evict string', () => driver.evict('x' as never), 'TypeError', /addr/],
      ['evict negative', () => driver.evict(-1), 'RangeError', /addr/],
      ['evict without a range', () => driver.evict(0x10700000), 'ENOENT'],
    ];
    for (const [label, f, want, name] of cases) refuses(w, label, f, want, name);
    other.w.close();
    w.close();
  });

  it('bigint mode: intervals past 2^64 and values >= 2^64 are refused', () => {
    const { w, mm, driver, svm } = fixture(backend, true);
    const top = 1n << 64n;
    const cases: [string, () => unknown, Expect, RegExp?][] = [
      ['mmap past 2^64', () => mm.mmap(top - 0x1000n, 0x2000n), 'EINVAL', /2\^64/],
      ['munmap past 2^64', () => mm.munmap(top - 0x1000n, 0x2000n), 'EINVAL', /2\^64/],
      ['mprotect past 2^64', () => mm.mprotect(top - 0x1000n, 0x2000n, 'ro'), 'EINVAL', /2\^64/],
      ['madvise past 2^64', () => mm.madvise(top - 0x1000n, 0x2000n, 'dontneed'), 'EINVAL', /2\^64/],
      ['access past 2^64', () => mm.access(top - 0x1000n, 0x2000n), 'EINVAL', /2\^64/],
      ['mmap at 2^64', () => mm.mmap(top, 0x1000n), 'RangeError', /addr/],
      ['prefetch past 2^64', () => driver.prefetch(top - 0x1000n, 0x2000n), 'EINVAL', /2\^64/],
      ['fault at 2^64', () => driver.fault(top), 'RangeError', /addr/],
      ['fault window end 2^64', () => driver.fault(0x10000000n, { gpuStart: 0n, gpuEnd: top }), 'RangeError', /gpuEnd/],
      ['ranges past 2^64', () => svm.ranges(top - 0x1000n, 0x2000n), 'EINVAL', /2\^64/],
      ['negative bigint', () => svm.findRange(-1n), 'RangeError', /addr/],
    ];
    for (const [label, f, want, name] of cases) refuses(w, label, f, want, name);
    w.close();
  });

  it('calls after fini and destroy are EINVAL', () => {
    const { w, mm, devmem, pt, svm, driver, range } = fixture(backend);
    w.live = null;
    driver.fini();
    const vmas = mm.vmas();
    for (const [label, f] of [
      ['notifiers', () => svm.notifiers()],
      ['ranges', () => svm.ranges()],
      ['findRange', () => svm.findRange(0x10000000)],
      ['scanMm', () => svm.scanMm(range)],
      ['findOrInsert', () => svm.findOrInsert(0x10000000)],
      ['getPages', () => svm.getPages(range)],
      ['stats', () => svm.stats()],
      ['fault', () => driver.fault(0x10000000)],
      ['prefetch', () => driver.prefetch(0x10000000, 0x1000)],
      ['evict', () => driver.evict(0x10000000)],
      ['gc', () => driver.gc()],
    ] as const) {
      expect(f, label).toThrow(GpuVmError);
      try {
        f();
      } catch (e) {
        expect((e as GpuVmError).code, label).toBe('EINVAL');
      }
    }
    expect(range.removed).toBe(true);
    expect(mm.stats().notifiers).toBe(0);
    expect(mm.vmas()).toEqual(vmas);
    mm.destroy();
    for (const f of [() => mm.mmap(0x1000, 0x1000), () => mm.vmas(), () => mm.tick(1), () => mm.access(0x10000000, 0x1000), () => mm.insertNotifier(0, 0x1000, () => {})]) {
      expect(f).toThrow(/destroyed/);
    }
    expect(() => new SvmDriver({ mm, start: 0, range: 0x1000, notifierSize: 0x1000, chunks: [0x1000] })).toThrow(GpuVmError);
    devmem.destroy();
    pt.destroy();
  });

  it.each(ARRIVAL_POINTS.map((p) => [p]))('a hook at %s that changes the CPU side and throws: the error propagates, the state stays consistent', (point) => {
    for (const flow of ['fault', 'prefetch'] as const) {
      const { w, mm, driver } = fixture(backend);
      w.check(0);
      const err = new Error(`hook ${point}`);
      let fired = 0;
      const hooks = {
        [point]: () => {
          fired++;
          mm.munmap(0x10008000, 0x1000);
          mm.access(0x10400000 - 0x1000, 0x1000, { write: true });
          throw err;
        },
      } as Partial<Record<ArrivalPoint, () => void>>;
      // a new range in a fresh VMA so that every point is reached
      mm.mmap(0x10700000, 0x80000);
      let got: unknown = null;
      try {
        if (flow === 'fault') driver.fault(0x10700000, { devmem: true, hooks });
        else driver.prefetch(0x10700000, 0x80000, { devmem: true, hooks });
      } catch (e) {
        got = e;
      }
      if (flow === 'prefetch' && point === 'afterGc') expect(fired).toBe(0);
      else {
        expect(fired, `${flow} ${point}`).toBe(1);
        expect(got, `${flow} ${point}`).toBe(err);
      }
      w.check(2);
      // and the driver goes on
      try {
        driver.fault(0x10700000, { devmem: true });
      } catch (e) {
        expect(e).toBeInstanceOf(GpuVmError);
      }
      driver.gc();
      w.check(3);
      w.close();
    }
  });
});

const boom = new Error('hostile getter');
