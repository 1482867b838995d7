/**
 * `gpuvm replay` as a stream processor, on every engine: output arrives while
 * input is still open, a dump far larger than the heap streams through with
 * bounded memory, every line ending (LF, CRLF, lone CR, mixed, split across
 * chunks) reads the same, and the CLI prints what replay(text) returns.
 * Also the replay's BO-0 edge: `unmapbo 0` is refused and changes nothing.
 */
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { BackendName } from '../src/backend/loader.js';
import { LineSplitter, replay } from '../src/replay.js';
import { replayStream } from '../src/replay-stream.js';
import { backends } from './support/engines.js';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', 'bin', 'gpuvm.js');
const vectorDir = join(here, 'vectors');
const vectors = readdirSync(vectorDir)
  .filter((f) => f.endsWith('.replay'))
  .map((f) => f.replace(/\.replay$/, ''));
const scratch = mkdtempSync(join(tmpdir(), 'gpuvm-replay-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function runCli(backend: string, args: string[], input?: string): string {
  return execFileSync(process.execPath, [cli, 'replay', ...args], {
    env: { ...process.env, GPUVM_BACKEND: backend },
    input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** The same text with every line end rewritten by `end(i)` for line i. */
function withEnds(text: string, end: (i: number) => string): string {
  return text
    .split('\n')
    .map((line, i, all) => (i < all.length - 1 ? line + end(i) : line))
    .join('');
}

const endings: [string, (i: number) => string][] = [
  ['CRLF', () => '\r\n'],
  ['lone CR', () => '\r'],
  ['mixed LF, CRLF and CR', (i) => ['\n', '\r\n', '\r'][i % 3]],
];

/** Collects what replayStream writes, as a Writable that takes its time. */
function slowSink(): { sink: Writable; text: () => string; maxQueued: () => number } {
  const parts: string[] = [];
  let maxQueued = 0;
  const sink = new Writable({
    highWaterMark: 1024,
    decodeStrings: false,
    write(chunk: string, _enc, done) {
      parts.push(chunk);
      maxQueued = Math.max(maxQueued, sink.writableLength);
      setImmediate(done);
    },
  });
  return { sink, text: () => parts.join(''), maxQueued: () => maxQueued };
}

/** replayStream into `sink`, then everything it queued written out. */
async function streamInto(input: Iterable<string | Uint8Array>, sink: Writable, backend: BackendName): Promise<void> {
  await replayStream(Readable.from(input), sink, { backend });
  await new Promise<void>((r) => sink.end(r));
}

describe.each(backends)('gpuvm replay streams on %s', (backend) => {
  it('answers each stdin line while the input is still open', async () => {
    const child = spawn(process.execPath, [cli, 'replay', '-'], {
      env: { ...process.env, GPUVM_BACKEND: backend },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    try {
      let seen = '';
      const waiters: (() => void)[] = [];
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => {
        seen += d;
        for (const w of waiters.splice(0)) w();
      });
      // resolves when the output holds `want` complete lines, fails after a while
      const lines = async (want: number): Promise<string[]> => {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const got = seen.split('\n').slice(0, -1);
          if (got.length >= want) return got;
          if (Date.now() > deadline) throw new Error(`only ${got.length} of ${want} lines: ${JSON.stringify(seen)}`);
          await new Promise<void>((r) => {
            waiters.push(r);
            setTimeout(r, 200);
          });
        }
      };
      child.stdin.write('init 0x0 0x100000\n');
      child.stdin.write('map 0x1000 0x1000 1 0x0\n');
      expect(await lines(2)).toEqual(['map 0x1000 0x1000 bo=1 off=0x0', 'ok']);
      // the same command again and again, as from `yes`: each answer comes before the next line is sent
      for (let round = 1; round <= 4; round++) {
        child.stdin.write('map 0x1000 0x1000 1 0x0\n');
        const got = await lines(2 + 3 * round);
        expect(got.slice(-3)).toEqual([
          'unmap 0x1000 0x1000 bo=1 off=0x0 keep=1',
          'map 0x1000 0x1000 bo=1 off=0x0',
          'ok',
        ]);
      }
      // a line split across writes runs once it is complete
      child.stdin.write('du');
      await new Promise((r) => setTimeout(r, 100));
      expect(seen.split('\n').length - 1).toBe(14);
      child.stdin.write('mp\r');
      expect((await lines(15)).at(-1)).toBe('va 0x1000 0x1000 bo=1 off=0x0');
      expect(child.exitCode).toBe(null);
    } finally {
      child.kill();
    }
  });

  it('streams a 2^32-byte ptbind of 4 KiB pages and its ptdump through a 32 MiB heap', async () => {
    const file = join(scratch, `big-${backend}.replay`);
    // pa 0x1000 is never 2 MiB aligned: every page is a level-0 leaf
    writeFileSync(file, 'ptbind 0x0 0x100000000 0x1000+0x100000000\nptdump\n');
    const child = spawn(process.execPath, ['--max-old-space-size=32', cli, 'replay', file], {
      env: { ...process.env, GPUVM_BACKEND: backend },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // count lines as they stream; keep only the head and the last line
    let count = 0;
    let head = '';
    let tail = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (head.length < 200) head += d.slice(0, 200);
      for (let i = d.indexOf('\n'); i >= 0; i = d.indexOf('\n', i + 1)) count++;
      tail = (tail + d).slice(-200);
    });
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const pages = 2 ** 20;
    expect(count).toBe(2 + pages);
    // one level-2 table with 4 entries, 4 level-1 tables of 512, 2048 leaf tables
    expect(head.split('\n').slice(0, 3)).toEqual([
      `pt live=1 new=${pages + 2048 + 4} alloc=${1 + 4 + 2048} free=0 records=1`,
      'ok',
      'pte 0x0 0x1000 pa=0x1000 level=0',
    ]);
    expect(tail.endsWith('pte 0xfffff000 0x1000 pa=0x100000000 level=0\n')).toBe(true);
  });

  it('hands output to a slow writer in bounded pieces, byte for byte as replay(text)', async () => {
    const text = 'pt leaf=0\nptbind 0x0 0x10000000 0x0+0x10000000\nptdump\nptunbind 0x0 0x10000000\nptdump\n';
    const { sink, text: written, maxQueued } = slowSink();
    await streamInto([text], sink, backend);
    const expected = replay(text, { backend });
    // two cost lines, two oks, one pte per 4 KiB page
    expect(expected.split('\n').length - 1).toBe(2 ** 16 + 4);
    expect(written()).toBe(expected);
    // never more than one piece (64 KiB) waiting at the writer, out of a 3.6 MB dump
    expect(maxQueued()).toBeLessThanOrEqual(64 * 1024 + 100);
  });

  it('reads any split of the input, CRLFs and UTF-8 comments cut in half included', async () => {
    const text = withEnds(
      '# caf\u00e9 \u2014 a comment\ninit 0x0 0x100000\nmap 0x1000 0x2000 5 0x0 # \u00fc\nunmap 0x2000 0x1000\ndump\nunmapbo 5\ndump',
      (i) => (i % 2 ? '\r\n' : '\r'),
    );
    const expected = replay(text, { backend });
    expect(expected).toContain('va 0x1000 0x1000 bo=5 off=0x0\n');
    const bytes = Buffer.from(text, 'utf8');
    for (let cut = 1; cut < bytes.length; cut++) {
      const { sink, text: written } = slowSink();
      await streamInto([bytes.subarray(0, cut), bytes.subarray(cut)], sink, backend);
      expect(written(), `cut at byte ${cut}`).toBe(expected);
    }
    // one byte at a time
    const { sink, text: written } = slowSink();
    await streamInto([...bytes].map((b) => Buffer.from([b])), sink, backend);
    expect(written()).toBe(expected);
  });

  it.each(vectors)('%s: the CLI prints what replay(text) returns, for every line ending', (name) => {
    const path = join(vectorDir, `${name}.replay`);
    const text = readFileSync(path, 'utf8');
    const expected = readFileSync(join(vectorDir, `${name}.expected`), 'utf8');
    expect(replay(text, { backend })).toBe(expected);
    expect(runCli(backend, [path])).toBe(expected);
    for (const [label, end] of endings) {
      const variant = withEnds(text, end);
      expect(variant).not.toBe(text);
      expect(replay(variant, { backend }), label).toBe(expected);
      const file = join(scratch, `${name}-${label.replace(/\W+/g, '-')}-${backend}.replay`);
      writeFileSync(file, variant);
      expect(runCli(backend, [file]), `${label} from a file`).toBe(expected);
      expect(runCli(backend, ['-'], variant), `${label} from stdin`).toBe(expected);
    }
  });

  it('says why it cannot read a file, on stderr with status 1', () => {
    let failure = null as { status: number; stderr: string; stdout: string } | null;
    try {
      execFileSync(process.execPath, [cli, 'replay', join(scratch, 'absent.replay')], {
        env: { ...process.env, GPUVM_BACKEND: backend },
        encoding: 'utf8',
        stdio: 'pipe',
      });
    } catch (err) {
      failure = err as typeof failure;
    }
    expect(failure?.status).toBe(1);
    expect(failure?.stdout).toBe('');
    expect(failure?.stderr).toMatch(/^gpuvm: ENOENT.*absent\.replay/);
  });
});

describe.each(backends)('replay BO 0 edge on %s', (backend) => {
  it('unmapbo 0 is err EINVAL and changes nothing; map with bo 0 stays a sparse mapping', () => {
    const text = [
      'unmapbo 0', // no VM yet
      'init 0x0 0x100000',
      'map 0x1000 0x1000 0 0x0',
      'map 0x2000 0x1000 7 0x0',
      'dump',
      'unmapbo 0',
      'dump',
      'unmapbo 9', // a BO with no mapping in this VM
      'unmapbo 7',
      'dump',
    ].join('\n');
    const dump = ['va 0x1000 0x1000 bo=0 off=0x0', 'va 0x2000 0x1000 bo=7 off=0x0'];
    const expected = [
      'err EINVAL',
      'map 0x1000 0x1000 bo=0 off=0x0',
      'ok',
      'map 0x2000 0x1000 bo=7 off=0x0',
      'ok',
      ...dump,
      'err EINVAL',
      ...dump,
      'ok',
      'unmap 0x2000 0x1000 bo=7 off=0x0 keep=0',
      'ok',
      dump[0],
      '',
    ].join('\n');
    expect(replay(text, { backend })).toBe(expected);
    expect(runCli(backend, ['-'], text)).toBe(expected);
  });
});

describe('LineSplitter', () => {
  it('ends lines at LF, CRLF and lone CR, across chunk boundaries', () => {
    const s = new LineSplitter();
    const lines = [
      ...s.push('a\r'),
      ...s.push('\nb\rc'),
      ...s.push(''),
      ...s.push('\r'),
      ...s.push(''),
      ...s.push('\r\n\nd\n\r'),
      ...s.push('e'),
      ...s.end(),
    ];
    expect(lines).toEqual(['a', 'b', 'c', '', '', 'd', '', 'e']);
    expect(s.end()).toEqual([]);
  });
});
