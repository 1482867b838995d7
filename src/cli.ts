/**
 * The `gpuvm` command:
 *
 *   gpuvm replay FILE|- [--strict]          run a replay; reasons for `err` lines on stderr
 *   gpuvm demo [-o FILE.svg|FILE.html]      a VM_BIND + SVM session, told and drawn
 *   gpuvm render FILE -o OUT.svg|OUT.html   the VA space after a replay (--steps: frames)
 *   gpuvm bench [--suite kernel-stream]     the shipped workload on every engine
 *   gpuvm --version
 *
 * stdout carries only what a command produces (the replay output, byte for
 * byte); diagnostics and progress go to stderr.
 */
import { createReadStream, statSync, writeFileSync, readFileSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { availableBackends, backendInfo, packageVersion, type BackendName } from './backend/loader.js';
import { runDemo } from './demo.js';
import { renderHtml } from './render/html.js';
import { renderSvg } from './render/svg.js';
import type { VaSnapshot } from './render/snapshot.js';
import { ReplayRun } from './replay.js';
import { replayStream, type StreamError } from './replay-stream.js';
import { runKernelStream, formatBenchLine } from './workload.js';

function versionLine(): string {
  const info = backendInfo();
  const why = info.reason ? ` (native skipped: ${info.reason})` : '';
  return `gpuvm ${packageVersion()} engine=${info.name}${why}`;
}

let version: string;
try {
  version = versionLine();
} catch (err) {
  // GPUVM_BACKEND asked for an engine that cannot load: say why, no stack
  process.stderr.write(`gpuvm: ${(err as Error).message}\n`);
  process.exit(1);
}

/** A reader that stops early (`| head`) ends the run quietly, like other filters. */
function quietOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
}

/** Inputs above this size get a progress bar (when stderr is a terminal). */
const PROGRESS_MIN_BYTES = 1 << 20;
const PROGRESS_EVERY_MS = 100;

/** A one-line progress bar on stderr, redrawn at most every PROGRESS_EVERY_MS, erased by done(). */
class ProgressBar {
  private last = 0;
  private shown = false;

  constructor(private readonly total: number) {}

  update(lines: number, bytes: number): void {
    const now = Date.now();
    if (now - this.last < PROGRESS_EVERY_MS) return;
    this.last = now;
    const cols = process.stderr.columns || 80;
    const frac = Math.min(1, bytes / this.total);
    const text = ` ${(frac * 100).toFixed(0).padStart(3)}%  ${lines.toLocaleString('en-US')} lines  ${mb(bytes)}/${mb(this.total)} MB`;
    const width = Math.max(10, Math.min(40, cols - text.length - 4));
    const done = Math.round(frac * width);
    process.stderr.write(`\r[${'#'.repeat(done)}${'.'.repeat(width - done)}]${text}\x1b[K`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
  }
}

const mb = (n: number) => (n / 1e6).toFixed(1);

/** The picture format an output name asks for. */
function formatOf(file: string): 'svg' | 'html' {
  const ext = extname(file).toLowerCase();
  if (ext === '.svg') return 'svg';
  if (ext === '.html' || ext === '.htm') return 'html';
  throw new InvalidArgumentError(`${file}: the picture must be .svg or .html`);
}

function positiveInt(name: string) {
  return (value: string): number => {
    if (!/^[0-9]+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got ${value}`);
    }
    return Number(value);
  };
}

quietOnClosedStdout();
const program = new Command();
program
  .name('gpuvm')
  .description("Linux's GPU virtual-memory machinery: replay VM_BIND streams, page-table commands and GPU shared-virtual-memory sessions")
  .version(version, '-v, --version', 'print the version and the active engine');

program
  .command('replay')
  .description('run a replay file, each command as its line arrives; - reads stdin. Why each `err` line was printed goes to stderr as FILE:LINE: reason')
  .argument('<file>', 'replay file, or - for stdin')
  .option('--strict', 'stop at the first refused command, with exit status 1')
  .action(async (file: string, opts: { strict?: boolean }) => {
    const name = file === '-' ? '<stdin>' : file;
    const input = file === '-' ? process.stdin : createReadStream(file);
    let bar: ProgressBar | null = null;
    if (file !== '-' && process.stderr.isTTY) {
      try {
        const size = statSync(file).size;
        if (size > PROGRESS_MIN_BYTES) bar = new ProgressBar(size);
      } catch {
        // the read reports a missing file itself
      }
    }
    const onError = (e: StreamError) => {
      bar?.done();
      process.stderr.write(`${name}:${e.line}: ${e.reason}\n`);
    };
    try {
      const result = await replayStream(input, process.stdout, {
        strict: opts.strict === true,
        onError,
        onProgress: bar ? (lines, bytes) => bar!.update(lines, bytes) : undefined,
      });
      if (result.stopped) process.exitCode = 1;
    } finally {
      bar?.done();
    }
  });

program
  .command('demo')
  .description('run a short VM_BIND session (binds, splits, a failing atomic bind array, page-table commits, SVM faults and migrations), say what happened and draw it')
  .option('-o, --output <file>', 'picture to write: .svg (final state) or .html (a frame per act)', 'gpuvm-demo.svg')
  .action((opts: { output: string }) => {
    const format = formatOf(opts.output);
    const { lines, frames } = runDemo();
    for (const line of lines) process.stdout.write(line + '\n');
    const title = 'gpuvm demo: one GPU context, its page table and shared virtual memory';
    const text =
      format === 'svg' ? renderSvg(frames[frames.length - 1], { title: `${title} (${frames[frames.length - 1].label})` }) : renderHtml(frames, { title });
    writeFileSync(opts.output, text);
    process.stdout.write(`picture: ${resolve(opts.output)}\n`);
  });

/** Commands that end a frame of `render --steps` by themselves (a dump is where a replay author looks). */
const DUMPS = new Set(['dump', 'ptdump', 'svmdump', 'devdump']);

program
  .command('render')
  .description('draw the VA space after a replay: GpuVm mappings per BO, page-table occupancy per level, SVM ranges with page residency')
  .argument('<file>', 'replay file, or - for stdin')
  .requiredOption('-o, --output <file>', 'picture to write: .svg or .html')
  .option('--steps', 'an HTML page with a frame per N commands and at every dump (needs .html)')
  .addOption(new Option('--every <n>', 'with --steps: a frame every N commands (default: at dumps, else about 40 frames)').argParser(positiveInt('--every')))
  .action(async (file: string, opts: { output: string; steps?: boolean; every?: number }) => {
    const format = formatOf(opts.output);
    if (opts.steps && format !== 'html') throw new InvalidArgumentError('--steps draws several frames: the output must be .html');
    const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
    const name = file === '-' ? '<stdin>' : basename(file);
    const lines = text.split(/\r\n|\r|\n/);
    const commands = lines.filter((l) => l.replace(/#.*/, '').trim() !== '').length;
    const hasDumps = lines.some((l) => DUMPS.has(l.replace(/#.*/, '').trim().split(/\s+/)[0]));
    const every = opts.every ?? (hasDumps ? 0 : Math.max(1, Math.ceil(commands / 40)));
    const run = new ReplayRun();
    const frames: VaSnapshot[] = [];
    let errors = 0;
    let done = 0;
    try {
      lines.forEach((raw, i) => {
        const seen = run.errors;
        for (const _ of run.lines(raw + '\n')) {
          // the output is not wanted here, only the state it leaves
        }
        if (run.errors !== seen) {
          errors++;
          process.stderr.write(`${name}:${i + 1}: ${run.lastError!.reason}\n`);
        }
        const cmd = raw.replace(/#.*/, '').trim().split(/\s+/)[0];
        if (cmd === '') return;
        done++;
        if (opts.steps && (DUMPS.has(cmd) || (every > 0 && done % every === 0))) {
          frames.push({ ...run.snapshot(), label: `line ${i + 1}: ${raw.trim()}` });
        }
      });
      const last = { ...run.snapshot(), label: `${name}: after ${done} command${done === 1 ? '' : 's'}${errors ? `, ${errors} refused` : ''}` };
      if (opts.steps) frames.push(last);
      const out = opts.steps ? renderHtml(frames, { title: `gpuvm render ${name}` }) : format === 'html' ? renderHtml([last], { title: `gpuvm render ${name}` }) : renderSvg(last);
      writeFileSync(opts.output, out);
    } finally {
      run.close();
    }
  });

program
  .command('bench')
  .description('run a shipped workload on every engine this install has, and verify its checksum')
  .addOption(new Option('--suite <name>', 'workload suite').choices(['kernel-stream']).default('kernel-stream'))
  .option('--requests <n>', 'requests in the stream', positiveInt('--requests'), 100000)
  .option('--seed <s>', 'generator seed (a u64)', (v: string) => {
    if (!/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(v) || BigInt(v) >= 1n << 64n) throw new InvalidArgumentError(`--seed must be a u64, got ${v}`);
    return BigInt(v);
  }, 1n)
  .option('--rounds <n>', 'timed runs per engine and mode (the median is reported)', positiveInt('--rounds'), 5)
  .option('--json', 'one JSON object per line')
  .action((opts: { suite: string; requests: number; seed: bigint; rounds: number; json?: boolean }) => {
    const engines: BackendName[] = availableBackends();
    for (const r of runKernelStream({ requests: opts.requests, seed: opts.seed, rounds: opts.rounds, backends: engines })) {
      process.stdout.write((opts.json ? JSON.stringify(r) : formatBenchLine(r)) + '\n');
      if (r.verified === false) process.exitCode = 1;
    }
  });

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`gpuvm: ${err.message}\n`);
  process.exitCode = 1;
});
