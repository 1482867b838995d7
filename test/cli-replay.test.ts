/**
 * `gpuvm replay` diagnostics, on every engine: each `err` line of the output
 * gets `file:line: reason` on stderr with the input line it came from (blank
 * lines, comments and CRLF counted like any line), stdout stays byte for byte
 * what replay(text) returns, the exit status stays 0, and --strict stops at
 * the first refusal with status 1.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { replay } from '../src/replay.js';
import { backends } from './support/engines.js';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', 'bin', 'gpuvm.js');
const scratch = mkdtempSync(join(tmpdir(), 'gpuvm-cli-replay-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function run(backend: string, args: string[], input?: string) {
  const r = spawnSync(process.execPath, [cli, 'replay', ...args], {
    env: { ...process.env, GPUVM_BACKEND: backend },
    input,
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// refusals of every command set, between lines that succeed, with blank and comment lines
const lines = [
  'init 0x0 0x100000', // 1
  '', // 2
  '# a comment', // 3
  'map 0x1000 0x0 1 0x0', // 4: GpuVm refusal
  'map 0x1000 0x1000 1 0x0', // 5
  'bogus 1', // 6: unknown command
  'ptbind 0x1001 0x1000 0x0+0x1000', // 7: page-table refusal
  'ptbind 0x0 0x1000 0x0+0x1000', // 8
  'mmap 0x0 0x1000', // 9: SVM command before `svm`
  'dump', // 10
  'map 0x1000 zz 1 0 # trailing comment', // 11: malformed number
  'unmap 0x200000 0x1000', // 12: outside the VM
];
const text = lines.join('\n') + '\n';
const errLines = [4, 6, 7, 9, 11, 12];

describe.each(backends)('gpuvm replay reasons on %s', (backend) => {
  const file = join(scratch, `errors-${backend}.replay`);
  writeFileSync(file, text);
  const expected = replay(text, { backend });

  it('prints file:line: reason on stderr for every err line; stdout is replay(text), status 0', () => {
    expect(expected.split('\n').filter((l) => l.startsWith('err ')).length).toBe(errLines.length);
    const r = run(backend, [file]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(expected);
    const diag = r.stderr.trimEnd().split('\n');
    expect(diag.map((d) => Number(d.slice(file.length + 1).split(':')[0]))).toEqual(errLines);
    for (const d of diag) expect(d.startsWith(`${file}:`)).toBe(true);
    const reason = (n: number) => diag[errLines.indexOf(n)].slice(`${file}:${n}: `.length);
    expect(reason(4)).toMatch(/^EINVAL: smMapOps: range must not be zero/);
    expect(reason(6)).toBe('EINVAL: unknown command bogus');
    expect(reason(7)).toMatch(/^EINVAL: bind\(/);
    // the SVM command set names its errno (and its message once it reports one)
    expect(reason(9)).toMatch(/^EINVAL/);
    expect(reason(11)).toBe('EINVAL: not a number: zz');
    expect(reason(12)).toMatch(/^EINVAL: smUnmapOps: .*not inside the VM/);
  });

  it('names stdin <stdin> and counts CRLF and lone-CR lines like LF lines', () => {
    const crlf = lines.map((l, i) => l + (i % 2 ? '\r\n' : '\r')).join('');
    const r = run(backend, ['-'], crlf);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(expected);
    expect(r.stderr.trimEnd().split('\n').map((d) => d.split(':').slice(0, 2).join(':'))).toEqual(errLines.map((n) => `<stdin>:${n}`));
  });

  it('--strict stops at the first err line (written), status 1, one reason', () => {
    const r = run(backend, ['--strict', file]);
    expect(r.status).toBe(1);
    const out = expected.split('\n');
    const first = out.findIndex((l) => l.startsWith('err '));
    expect(r.stdout).toBe(out.slice(0, first + 1).join('\n') + '\n');
    expect(r.stderr).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: EINVAL: smMapOps: [^\\n]*\\n$`));
  });

  it('--strict on a clean input runs it all with status 0 and nothing on stderr', () => {
    const clean = 'init 0x0 0x100000\nmap 0x1000 0x1000 1 0x0\ndump\nptbind 0x0 0x1000 0x0+0x1000\nptdump\n';
    const r = run(backend, ['--strict', '-'], clean);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(replay(clean, { backend }));
  });

  it('a refusal in the middle of a long input reports its own line number', () => {
    const many = Array.from({ length: 5000 }, (_, i) => (i === 4321 ? 'unmap 0x200000 0x1000' : 'dump'));
    const r = run(backend, ['-'], 'init 0x0 0x100000\n' + many.join('\n'));
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^<stdin>:4323: EINVAL: /);
    expect(r.stderr.trimEnd().split('\n').length).toBe(1);
  });
});
