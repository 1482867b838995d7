/**
 * The replay language: one command per line, output byte for byte as the
 * language defines it. VMs are created in bigint mode so every u64 is exact.
 * Page-table commands are handed to replay-page-table.ts.
 *
 * A session turns one input line into its output lines through a generator,
 * so a driver can run each command as its line arrives and write a large
 * output (a dump) piece by piece: replay() below collects everything for a
 * string, replay-stream.ts feeds the CLI's streams through the same session.
 */
import { engineFor, type BackendName } from './backend/loader.js';
import { GpuVmError } from './errors.js';
import { GpuVm } from './gpuvm.js';
import type { Op, OpList, OpMapping } from './ops.js';
import { createPageTableReplay } from './replay-page-table.js';
import { createSvmReplay } from './replay-svm.js';
import { U64_MAX } from './u64.js';
import { Malformed, parseU64, refusal } from './replay-words.js';
import { Bo } from './vm-bo.js';
import { takeSnapshot, type SnapshotOptions, type SvmWorld, type VaSnapshot } from './render/snapshot.js';

export interface ReplayOptions {
  /** engine to run on (default: GPUVM_BACKEND / auto) */
  backend?: BackendName;
}

const h = (v: bigint | number): string => '0x' + v.toString(16);

/**
 * A command set of the language (page tables, SVM), as the session drives it:
 * lines() is null for a command of another set; a refused command ends with
 * the status line `err <CODE>`, and the set's lastReason then says why (the
 * error's message) without changing the output. A set without lastReason is
 * reported by its errno name alone.
 */
interface CommandSet {
  lines(cmd: string, args: string[]): Generator<string, void, undefined> | null;
  readonly lastReason?: string | null;
}

/** A refused command: its errno name and why (the error's message). */
export interface ReplayError {
  code: string;
  reason: string;
}

class ReplaySession {
  /** the last refusal, and how many there were */
  lastError: ReplayError | null = null;
  errors = 0;
  private vm: GpuVm<bigint> | null = null;
  private readonly bos = new Map<bigint, Bo>();
  private readonly ids = new Map<Bo, bigint>();
  private readonly pt;
  private readonly svm;

  constructor(private readonly backend: BackendName | undefined) {
    this.pt = createPageTableReplay(engineFor(backend));
    this.svm = createSvmReplay(backend);
  }

  private bo(id: bigint): Bo | null {
    if (id === 0n) return null;
    let bo = this.bos.get(id);
    if (bo === undefined) {
      bo = new Bo({ name: `bo${id}` });
      this.bos.set(id, bo);
      this.ids.set(bo, id);
    }
    return bo;
  }

  private id(bo: Bo | null): string {
    return bo === null ? '0' : String(this.ids.get(bo) ?? '?');
  }

  private needVm(): GpuVm<bigint> {
    if (this.vm === null) throw new GpuVmError('EINVAL', 'no VM: init first');
    return this.vm;
  }

  private opLine(op: Op<bigint>): string {
    switch (op.kind) {
      case 'map':
        return `map ${h(op.addr)} ${h(op.range)} bo=${this.id(op.bo)} off=${h(op.offset)}`;
      case 'unmap': {
        const v = op.va;
        return `unmap ${h(v.addr)} ${h(v.range)} bo=${this.id(v.bo)} off=${h(v.offset)} keep=${op.keep ? 1 : 0}`;
      }
      case 'remap': {
        const v = op.unmap.va;
        const piece = (p: OpMapping<bigint> | null) => (p ? `${h(p.addr)},${h(p.range)},${h(p.offset)}` : '-');
        return (
          `remap unmap=${h(v.addr)},${h(v.range)},bo=${this.id(v.bo)},off=${h(v.offset)},keep=${op.unmap.keep ? 1 : 0}` +
          ` prev=${piece(op.prev)} next=${piece(op.next)}`
        );
      }
      case 'prefetch': {
        const v = op.va;
        return `prefetch ${h(v.addr)} ${h(v.range)} bo=${this.id(v.bo)}`;
      }
    }
  }

  /** The output lines of one GpuVm command; throws for a refused or malformed one. */
  private *run(cmd: string, args: string[]): Generator<string, void, undefined> {
    const arity = (min: number, max = min) => {
      if (args.length < min || args.length > max) throw new Malformed(`${cmd} takes ${min}..${max} arguments`);
    };
    switch (cmd) {
      case 'init': {
        arity(2, 4);
        if (args.length === 3) throw new Malformed('init takes 2 or 4 arguments');
        const [start, range, rs, rr] = args.map(parseU64);
        const vm = new GpuVm<bigint>({
          start,
          range,
          reserve: rs === undefined ? undefined : { start: rs, range: rr! },
          bigint: true,
          backend: this.backend,
        });
        this.vm?.destroy();
        this.vm = vm;
        return;
      }
      case 'map': {
        arity(4);
        const [addr, range, bo, offset] = args.map(parseU64);
        const ops = this.needVm().smMapOps({ addr, range, bo: this.bo(bo), offset });
        for (const op of ops) yield this.opLine(op);
        ops.apply();
        yield 'ok';
        return;
      }
      case 'unmap': {
        arity(2);
        const [addr, range] = args.map(parseU64);
        const ops = this.needVm().smUnmapOps(addr, range);
        for (const op of ops) yield this.opLine(op);
        ops.apply();
        yield 'ok';
        return;
      }
      case 'prefetch': {
        arity(2);
        const [addr, range] = args.map(parseU64);
        const ops = this.needVm().prefetchOps(addr, range);
        for (const op of ops) yield this.opLine(op);
        ops.drop();
        yield 'ok';
        return;
      }
      case 'unmapbo': {
        arity(1);
        const id = parseU64(args[0]);
        const vm = this.needVm();
        // BO 0 is the "no BO" of a sparse mapping: no object, so nothing to name
        if (id === 0n) throw new GpuVmError('EINVAL', 'unmapbo: bo 0 names no BO');
        const vb = vm.findBo(this.bo(id)!);
        if (vb !== null) {
          try {
            const ops = vb.unmapOps();
            // the kernel lists them in link order; the replay format wants address order
            const sorted = ops.toArray().sort((x, y) => {
              const a = (x as { va: { addr: bigint } }).va.addr;
              const b = (y as { va: { addr: bigint } }).va.addr;
              return a < b ? -1 : a > b ? 1 : 0;
            });
            for (const op of sorted) yield this.opLine(op);
            ops.apply();
          } finally {
            if (vb.live) vb.put();
          }
        }
        yield 'ok';
        return;
      }
      case 'dump': {
        arity(0);
        for (const va of this.needVm().mappings()) {
          if (va.isKernelNode) continue;
          yield `va ${h(va.addr)} ${h(va.range)} bo=${this.id(va.bo)} off=${h(va.offset)}`;
        }
        return;
      }
      default:
        throw new Malformed(`unknown command ${cmd}`);
    }
  }

  /**
   * The output lines of one input line (without line ends), produced while
   * the command runs. Iterate it to the end before the next line: a refusal
   * shows up as its last line, `err <CODE>`, and is recorded in lastError.
   */
  *line(raw: string): Generator<string, void, undefined> {
    const hash = raw.indexOf('#');
    const text = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (text === '') return;
    const [cmd, ...args] = text.split(/\s+/);
    const svm = this.svm.lines(cmd, args);
    const pt = svm === null ? this.pt.lines(cmd, args) : null;
    const set: CommandSet | null = svm !== null ? this.svm : pt !== null ? this.pt : null;
    if (set !== null) {
      // another command set runs the command and reports its own refusals
      for (const out of (svm ?? pt)!) {
        if (out.startsWith('err ')) this.refused(out.slice(4), set.lastReason);
        yield out;
      }
      return;
    }
    try {
      yield* this.run(cmd, args);
    } catch (err) {
      const r = refusal(err);
      if (r === null) throw err;
      this.refused(r.code, r.reason);
      yield `err ${r.code}`;
    }
  }

  private refused(code: string, reason: string | null | undefined): void {
    // a set that gives no reason still names its errno
    this.lastError = { code, reason: typeof reason === 'string' && reason !== '' ? reason : code };
    this.errors++;
  }

  snapshot(options?: SnapshotOptions): VaSnapshot {
    // the SVM set may offer its world for reading; without it the picture has no SVM layer
    const svmState = (this.svm as { svmState?: () => SvmWorld | null }).svmState;
    return takeSnapshot(
      {
        vm: this.vm,
        boName: (bo) => this.id(bo),
        pageTable: this.pt.table(),
        svm: typeof svmState === 'function' ? svmState.call(this.svm) : null,
      },
      options,
    );
  }

  close(): void {
    this.vm?.destroy();
    this.vm = null;
    this.pt.close();
    this.svm.close();
  }
}

/**
 * Splits text into lines as it arrives: a line ends at \n, \r\n or a lone \r,
 * also when a chunk boundary falls between the \r and the \n of a CRLF.
 */
export class LineSplitter {
  private partial = '';
  private afterCr = false;

  /** The lines that `chunk` completes, in order. */
  push(chunk: string): string[] {
    let from = 0;
    if (this.afterCr && chunk.length > 0) {
      // the \n of a CRLF whose \r ended the previous chunk
      if (chunk.charCodeAt(0) === 10) from = 1;
      this.afterCr = false;
    }
    const lines: string[] = [];
    const end = /\r\n?|\n/g;
    end.lastIndex = from;
    for (let m = end.exec(chunk); m !== null; m = end.exec(chunk)) {
      lines.push(this.partial + chunk.slice(from, m.index));
      this.partial = '';
      from = end.lastIndex;
    }
    if (from === chunk.length && chunk.length > 0 && chunk.charCodeAt(from - 1) === 13) this.afterCr = true;
    this.partial += chunk.slice(from);
    return lines;
  }

  /** The last line if the input did not end with a line end. */
  end(): string[] {
    const rest = this.partial;
    this.partial = '';
    this.afterCr = false;
    return rest === '' ? [] : [rest];
  }
}

/**
 * A replay session: open(), then lines(text) for each piece of input as it
 * arrives (any split, even inside a line or a CRLF), end() after the last
 * one, close() always. Each call returns the output lines as a generator
 * that runs the commands while it is iterated. While it is iterated,
 * lineNumber is the input line running, and each `err` line it yields has
 * been recorded in lastError first (errors counts them), so a driver can
 * say why without changing the output.
 */
export class ReplayRun {
  private readonly session: ReplaySession;
  private readonly splitter = new LineSplitter();
  private line = 0;

  constructor(options: ReplayOptions = {}) {
    this.session = new ReplaySession(options.backend);
  }

  /** The 1-based number of the input line running (or last run). */
  get lineNumber(): number {
    return this.line;
  }

  /** The last refused command: its errno name and the reason, or null. */
  get lastError(): ReplayError | null {
    return this.session.lastError;
  }

  /** How many commands were refused so far. */
  get errors(): number {
    return this.session.errors;
  }

  /** Runs the lines `chunk` completes; yields their output lines. */
  *lines(chunk: string): Generator<string, void, undefined> {
    for (const raw of this.splitter.push(chunk)) {
      this.line++;
      yield* this.session.line(raw);
    }
  }

  /** Runs a last line without a line end; yields its output lines. */
  *end(): Generator<string, void, undefined> {
    for (const raw of this.splitter.end()) {
      this.line++;
      yield* this.session.line(raw);
    }
  }

  /**
   * What the session holds now, as plain data (for pictures): the VM's
   * mappings, the page table's entries and the SVM world when there is one.
   * Reads only; runs nothing.
   */
  snapshot(options?: SnapshotOptions): VaSnapshot {
    return this.session.snapshot(options);
  }

  /** Releases the VM and the page table. */
  close(): void {
    this.session.close();
  }
}

/** Runs a whole replay text; returns its output (each line ending in a newline). */
export function replay(text: string, options: ReplayOptions = {}): string {
  const run = new ReplayRun(options);
  let out = '';
  try {
    for (const line of run.lines(text)) out += line + '\n';
    for (const line of run.end()) out += line + '\n';
  } finally {
    run.close();
  }
  return out;
}
