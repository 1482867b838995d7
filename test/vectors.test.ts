/**
 * Every replay vector (copied from the project's shared vectors) through the
 * API and through the CLI, on every engine, byte for byte.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { replay } from '../src/replay.js';
import { backends } from './support/engines.js';

const here = dirname(fileURLToPath(import.meta.url));
const dir = join(here, 'vectors');
const root = join(here, '..');
const vectors = readdirSync(dir)
  .filter((f) => f.endsWith('.replay'))
  .map((f) => f.replace(/\.replay$/, ''));

describe.each(backends)('replay vectors on %s', (backend) => {
  it.each(vectors)('%s through the API', (name) => {
    const text = readFileSync(join(dir, `${name}.replay`), 'utf8');
    const expected = readFileSync(join(dir, `${name}.expected`), 'utf8');
    expect(replay(text, { backend })).toBe(expected);
  });

  it.each(vectors)('%s through `gpuvm replay`', (name) => {
    const expected = readFileSync(join(dir, `${name}.expected`), 'utf8');
    const out = execFileSync(process.execPath, [join(root, 'bin', 'gpuvm.js'), 'replay', join(dir, `${name}.replay`)], {
      env: { ...process.env, GPUVM_BACKEND: backend },
      encoding: 'utf8',
    });
    expect(out).toBe(expected);
  });

  it('reads stdin with -', () => {
    const text = 'init 0x0 0x100000\nmap 0x1000 0x2000 7 0x0\ndump\n';
    const out = execFileSync(process.execPath, [join(root, 'bin', 'gpuvm.js'), 'replay', '-'], {
      env: { ...process.env, GPUVM_BACKEND: backend },
      input: text,
      encoding: 'utf8',
    });
    expect(out).toBe(replay(text, { backend }));
    expect(out).toContain('va 0x1000 0x2000 bo=7 off=0x0');
  });

  it('handles u64 values beyond 2^53 exactly and malformed lines as EINVAL', () => {
    const out = replay(
      [
        'init 0xffff000000000000 0xfff000000000',
        'map 0xffff000000001000 0x1000 3 0xfffffffffffff000',
        'map 0xffff000000000000 0x3000 3 0xffffffffffffe000', // offsets contiguous: keep=1
        'dump',
        'map 0x1 0x2',            // too few arguments
        'map 0x1 0x2 0x3 0x10000000000000000', // above u64
        'frobnicate 1',
        'map 0xzz 0x1000 1 0',
      ].join('\n'),
      { backend },
    );
    expect(out.split('\n')).toEqual([
      'map 0xffff000000001000 0x1000 bo=3 off=0xfffffffffffff000',
      'ok',
      'unmap 0xffff000000001000 0x1000 bo=3 off=0xfffffffffffff000 keep=1',
      'map 0xffff000000000000 0x3000 bo=3 off=0xffffffffffffe000',
      'ok',
      'va 0xffff000000000000 0x3000 bo=3 off=0xffffffffffffe000',
      'err EINVAL',
      'err EINVAL',
      'err EINVAL',
      'err EINVAL',
      '',
    ]);
  });
});

describe('gpuvm --version', () => {
  it.each(backends)('names the version and the %s engine', (backend) => {
    const out = execFileSync(process.execPath, [join(root, 'bin', 'gpuvm.js'), '--version'], {
      env: { ...process.env, GPUVM_BACKEND: backend },
      encoding: 'utf8',
    });
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(out.trim()).toBe(`gpuvm ${pkg.version} engine=${backend}`);
  });
});
