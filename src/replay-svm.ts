/**
 * The SVM commands of the replay language: a CPU address space, a device
 * memory pool and a GPU SVM driven by the reference driver, with races
 * injected at the driver's arrival points.
 *
 *   svm <mm_start> <mm_range> <notifier_size> <chunk>[,<chunk>...] [threshold=] [devmem=] [retries=] [timeslice=]
 *   mmap <addr> <len> [ro] [file|hugetlb]     munmap <addr> <len>
 *   mprotect <addr> <len> ro|rw               madvise <addr> <len> dontneed
 *   cpu <addr> <len> [write]                  tick <ms>
 *   gpufault <addr> [<gpu_start> <gpu_end>] [ro] [devmem] [atomic]
 *   svmprefetch <addr> <len> [devmem]         evict <addr>     gc
 *   inject <point> [nth=<k>] [count=<n>|all] <cpu command>
 *   svmdump                                    devdump
 *
 * Every command prints what the layer reports (one line per event) and then
 * `ok` or `err <CODE>`; a successful `svm` prints nothing and the dumps print
 * only themselves. Until the first successful `svm` every other command is
 * `err EINVAL`. Everything runs in bigint mode so every u64 is exact.
 */
import type { BackendName } from './backend/loader.js';
import { GpuVmError } from './errors.js';
import { Malformed, parseU64, refusal } from './replay-words.js';
import { CpuMm, type VmaKind } from './svm/cpu-mm.js';
import { DevMem } from './svm/dev-mem.js';
import { SvmDriver, type ArrivalPoint, type SvmHooks } from './svm/driver.js';
import { formatSvmEvent, rangeEnd, rangeFirst, svmPagesKind, type GpuSvm } from './svm/gpu-svm.js';

export const SVM_COMMANDS = new Set([
  'svm', 'mmap', 'munmap', 'mprotect', 'madvise', 'cpu', 'tick', 'gpufault',
  'svmprefetch', 'inject', 'gc', 'evict', 'svmdump', 'devdump',
]);

const POINTS: Record<string, ArrivalPoint> = {
  'after-gc': 'afterGc',
  'after-find': 'afterFind',
  'after-migrate': 'afterMigrate',
  'in-hmm': 'inHmm',
  'before-map': 'beforeMap',
  'before-bind': 'beforeBind',
  'after-bind': 'afterBind',
};

const TWO64 = 1n << 64n;
const h = (v: bigint) => '0x' + v.toString(16);

/** The interval rule: page multiples, len > 0, addr + len <= 2^64. */
function checkInterval(addr: bigint, len: bigint): void {
  if ((addr & 0xfffn) !== 0n || (len & 0xfffn) !== 0n) throw new Malformed('not a multiple of 0x1000');
  if (len === 0n) throw new Malformed('len must not be 0');
  if (addr + len > TWO64) throw new Malformed('addr + len is above 2^64');
}

/** Keywords from a fixed set, each at most once. */
function keywords(words: string[], allowed: readonly string[]): Set<string> {
  const seen = new Set<string>();
  for (const w of words) {
    if (!allowed.includes(w) || seen.has(w)) throw new Malformed(`unexpected word ${w}`);
    seen.add(w);
  }
  return seen;
}

interface Injection {
  point: string;
  nth: bigint;
  count: bigint | null; // null: all
  run: () => void;
  fired: boolean;
}

interface World {
  mm: CpuMm<bigint>;
  devmem: DevMem<bigint>;
  driver: SvmDriver<bigint>;
}

export interface SvmReplay {
  /** The output lines of one SVM command, or null for a command of another set. */
  lines(cmd: string, args: string[]): Generator<string, void, undefined> | null;
  /** why the last `err` line was printed: the error's message (null before any) */
  readonly lastReason: string | null;
  /** the current setup for reading (null before the first successful `svm`) */
  svmState(): { mm: CpuMm<bigint>; devmem: DevMem<bigint> | null; driver: SvmDriver<bigint> } | null;
  close(): void;
}

export function createSvmReplay(backend: BackendName | undefined): SvmReplay {
  let world: World | null = null;
  let out: string[] = [];
  let queue: Injection[] = [];
  let lastReason: string | null = null;

  /** The status line of a refusal, remembering why. */
  const refuse = (err: unknown): string => {
    const r = refusal(err)!;
    lastReason = r.reason;
    return `err ${r.code}`;
  };

  const trace = (e: Parameters<typeof formatSvmEvent>[0]) => {
    out.push(formatSvmEvent(e));
  };

  /** Parses a CPU command now; returns what runs it (throws GpuVmError when it fails). */
  function parseCpu(cmd: string, args: string[]): () => void {
    const need = (min: number, max = min) => {
      if (args.length < min || args.length > max) throw new Malformed(`${cmd} takes ${min}..${max} arguments`);
    };
    const span = (): [bigint, bigint] => {
      const a = parseU64(args[0]);
      const l = parseU64(args[1]);
      checkInterval(a, l);
      return [a, l];
    };
    switch (cmd) {
      case 'mmap': {
        need(2, 4);
        const [a, l] = span();
        const k = keywords(args.slice(2), ['ro', 'file', 'hugetlb']);
        if (k.has('file') && k.has('hugetlb')) throw new Malformed('file and hugetlb together');
        const kind: VmaKind = k.has('file') ? 'file' : k.has('hugetlb') ? 'hugetlb' : 'anon';
        const readOnly = k.has('ro');
        return () => world!.mm.mmap(a, l, { readOnly, kind });
      }
      case 'munmap': {
        need(2);
        const [a, l] = span();
        return () => world!.mm.munmap(a, l);
      }
      case 'mprotect': {
        need(3);
        const [a, l] = span();
        const mode = args[2];
        if (mode !== 'ro' && mode !== 'rw') throw new Malformed('mprotect mode must be ro or rw');
        return () => world!.mm.mprotect(a, l, mode);
      }
      case 'madvise': {
        need(3);
        const [a, l] = span();
        if (args[2] !== 'dontneed') throw new Malformed('madvise advice must be dontneed');
        return () => world!.mm.madvise(a, l, 'dontneed');
      }
      case 'cpu': {
        need(2, 3);
        const [a, l] = span();
        const write = keywords(args.slice(2), ['write']).has('write');
        return () => world!.mm.access(a, l, { write });
      }
      default:
        throw new Malformed(`not a CPU command: ${cmd}`);
    }
  }

  /** Runs `f`, then the status line; semantic failures keep what they printed. */
  function status(f: () => void): void {
    try {
      f();
      out.push('ok');
    } catch (err) {
      if (err instanceof GpuVmError) out.push(refuse(err));
      else throw err;
    }
  }

  /** Hooks that fire the queued injections of one fault or prefetch. */
  function injectionHooks(taken: Injection[]): SvmHooks {
    const hooks: { [P in ArrivalPoint]?: (k: number) => void } = {};
    for (const inj of taken) {
      const point = POINTS[inj.point];
      if (hooks[point] !== undefined) continue;
      hooks[point] = (k: number) => {
        const kk = BigInt(k);
        for (const j of taken) {
          if (j.point !== inj.point) continue;
          if (kk < j.nth || (j.count !== null && kk >= j.nth + j.count)) continue;
          j.fired = true;
          out.push(`inject ${j.point} ${k}`);
          try {
            j.run();
            out.push('inject-done ok');
          } catch (err) {
            if (err instanceof GpuVmError) out.push(`inject-done err ${err.code}`);
            else throw err;
          }
        }
      };
    }
    return hooks;
  }

  /** Runs a fault or prefetch with the queued injections, then reports the unused ones and the status. */
  function withInjections(f: (hooks: SvmHooks) => void): void {
    const taken = queue;
    queue = [];
    let failure: GpuVmError | null = null;
    try {
      f(injectionHooks(taken));
    } catch (err) {
      if (err instanceof GpuVmError) failure = err;
      else throw err;
    }
    for (const j of taken) if (!j.fired) out.push(`inject-unused ${j.point}`);
    out.push(failure === null ? 'ok' : refuse(failure));
  }

  function setup(args: string[]): void {
    if (args.length < 4) throw new Malformed('svm takes at least 4 arguments');
    const [start, range, notifierSize] = args.slice(0, 3).map(parseU64);
    const chunks = args[3].split(',').map(parseU64);
    const opts = new Map<string, bigint>();
    for (const w of args.slice(4)) {
      const eq = w.indexOf('=');
      if (eq < 0) throw new Malformed(`option without =: ${w}`);
      const key = w.slice(0, eq);
      if (!['threshold', 'devmem', 'retries', 'timeslice'].includes(key) || opts.has(key)) throw new Malformed(`bad option ${w}`);
      opts.set(key, parseU64(w.slice(eq + 1)));
    }
    if (range === 0n || start + range > TWO64) throw new Malformed('bad window');
    const mm = new CpuMm<bigint>({ bigint: true, backend });
    let devmem: DevMem<bigint> | null = null;
    try {
      devmem = new DevMem<bigint>({ size: opts.get('devmem') ?? 0n, bigint: true, backend });
      const driver = new SvmDriver<bigint>({
        mm,
        devmem: devmem.size > 0n ? devmem : null,
        start,
        range,
        notifierSize,
        chunks,
        threshold: opts.get('threshold'),
        retries: opts.get('retries'),
        timeslice: opts.get('timeslice'),
        trace,
      });
      close();
      world = { mm, devmem, driver };
      queue = [];
    } catch (err) {
      devmem?.destroy();
      mm.destroy();
      throw err;
    }
  }

  function dump(svm: GpuSvm<bigint>): void {
    for (const n of svm.notifiers()) {
      out.push(`notifier ${h(n.start)} ${h(n.size)} ranges=${n.rangeCount}`);
      for (const r of n.ranges()) {
        const flags = r.flagNames;
        const kind = svmPagesKind(svm, rangeFirst(r), rangeEnd(r));
        out.push(
          `range ${h(r.start)} ${h(r.size)} flags=${flags.length ? flags.join(',') : '-'} pages=${kind} ` +
            `valid=${r.valid ? 1 : 0} bound=${r.bound ? 1 : 0}`,
        );
      }
    }
  }

  function run(cmd: string, args: string[]): void {
    if (cmd === 'svm') {
      setup(args);
      return;
    }
    const w = world;
    if (w === null) throw new Malformed('no SVM set up yet: an svm line must come first');
    switch (cmd) {
      case 'mmap':
      case 'munmap':
      case 'mprotect':
      case 'madvise':
      case 'cpu':
        status(parseCpu(cmd, args));
        return;
      case 'tick': {
        if (args.length !== 1) throw new Malformed('tick takes 1 argument');
        const ms = parseU64(args[0]);
        status(() => w.mm.tick(ms));
        return;
      }
      case 'gpufault': {
        if (args.length < 1) throw new Malformed('gpufault needs an address');
        const addr = parseU64(args[0]);
        let rest = args.slice(1);
        let window: [bigint, bigint] | null = null;
        if (rest.length > 0 && /^[0-9]/.test(rest[0])) {
          window = [parseU64(rest[0]), parseU64(rest[1])];
          rest = rest.slice(2);
          if (window[0] >= window[1]) throw new Malformed('gpu_start must be below gpu_end');
        }
        const k = keywords(rest, ['ro', 'devmem', 'atomic']);
        withInjections((hooks) => {
          w.driver.fault(addr, {
            gpuStart: window?.[0],
            gpuEnd: window?.[1],
            ro: k.has('ro'),
            devmem: k.has('devmem'),
            atomic: k.has('atomic'),
            hooks,
          });
        });
        return;
      }
      case 'svmprefetch': {
        if (args.length < 2 || args.length > 3) throw new Malformed('svmprefetch takes 2..3 arguments');
        const a = parseU64(args[0]);
        const l = parseU64(args[1]);
        checkInterval(a, l);
        const devmem = keywords(args.slice(2), ['devmem']).has('devmem');
        withInjections((hooks) => {
          w.driver.prefetch(a, l, { devmem, hooks });
        });
        return;
      }
      case 'inject': {
        if (args.length < 2) throw new Malformed('inject needs a point and a command');
        const point = args[0];
        if (!(point in POINTS)) throw new Malformed(`unknown point ${point}`);
        let i = 1;
        let nth: bigint | undefined;
        let count: bigint | null | undefined;
        for (; i < args.length; i++) {
          const word = args[i];
          if (word.startsWith('nth=')) {
            if (nth !== undefined) throw new Malformed('nth given twice');
            nth = parseU64(word.slice(4));
            if (nth < 1n) throw new Malformed('nth must be >= 1');
          } else if (word.startsWith('count=')) {
            if (count !== undefined) throw new Malformed('count given twice');
            const v = word.slice(6);
            count = v === 'all' ? null : parseU64(v);
            if (count !== null && count < 1n) throw new Malformed('count must be >= 1');
          } else break;
        }
        if (i >= args.length) throw new Malformed('inject needs a CPU command');
        const runCpu = parseCpu(args[i], args.slice(i + 1));
        queue.push({ point, nth: nth ?? 1n, count: count === undefined ? 1n : count, run: runCpu, fired: false });
        out.push('ok');
        return;
      }
      case 'gc':
        if (args.length !== 0) throw new Malformed('gc takes no arguments');
        status(() => w.driver.gc());
        return;
      case 'evict': {
        if (args.length !== 1) throw new Malformed('evict takes 1 argument');
        const addr = parseU64(args[0]);
        status(() => w.driver.evict(addr));
        return;
      }
      case 'svmdump':
        if (args.length !== 0) throw new Malformed('svmdump takes no arguments');
        dump(w.driver.svm);
        return;
      case 'devdump': {
        if (args.length !== 0) throw new Malformed('devdump takes no arguments');
        const d = w.devmem;
        out.push(`devmem used=${h(d.used)} free=${h(d.free)} allocations=${d.allocationCount}`);
        return;
      }
    }
  }

  function close(): void {
    if (world === null) return;
    world.driver.fini();
    world.devmem.destroy();
    world.mm.destroy();
    world = null;
  }

  return {
    lines(cmd, args) {
      if (!SVM_COMMANDS.has(cmd)) return null;
      return (function* () {
        out = [];
        try {
          run(cmd, args);
        } catch (err) {
          if (refusal(err) === null) throw err;
          out.push(refuse(err));
        }
        const lines = out;
        out = [];
        yield* lines;
      })();
    },
    get lastReason() {
      return lastReason;
    },
    svmState() {
      return world === null ? null : { mm: world.mm, devmem: world.devmem, driver: world.driver };
    },
    close,
  };
}
