/**
 * Page-table replays through createPageTableReplay on every engine: the
 * vector in test/vectors byte for byte, the default table, geometry errors and malformed lines.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { replay } from '../src/replay.js';
import { createPageTableReplay } from '../src/replay-page-table.js';
import { backends } from './support/engines.js';

const here = dirname(fileURLToPath(import.meta.url));

function run(backend: string, text: string): string {
  const r = createPageTableReplay(backend as 'native' | 'wasm');
  const out: string[] = [];
  try {
    for (const raw of text.split(/\r?\n/)) {
      const hash = raw.indexOf('#');
      const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
      if (line === '') continue;
      const [cmd, ...args] = line.split(/\s+/);
      if (!r.handle(cmd, args, out)) out.push(`unknown ${cmd}`);
    }
  } finally {
    r.close();
  }
  return out.length === 0 ? '' : out.join('\n') + '\n';
}

describe.each(backends)('page-table replay on %s', (backend) => {
  it('reproduces page-table-basics byte for byte', () => {
    const text = readFileSync(join(here, 'vectors', 'page-table-basics.replay'), 'utf8');
    const expected = readFileSync(join(here, 'vectors', 'page-table-basics.expected'), 'utf8');
    expect(run(backend, text)).toBe(expected);
  });

  it('uses the default table before any pt line', () => {
    expect(run(backend, 'ptbind 0x200000 0x200000 0x400000+0x200000\ntranslate 0x200010\n')).toBe(
      'pt live=1 new=2 alloc=2 free=0 records=1\nok\npa 0x400010 size=0x200000 level=1\n',
    );
  });

  it('refuses bad geometries and keeps the previous table', () => {
    const out = run(
      backend,
      [
        'pt 12 21 leaf=1',
        'ptbind 0x0 0x200000 0x200000+0x200000',
        'pt 12', // one shift
        'pt 12 12 20', // not increasing
        'pt 12 29', // a 17-bit level
        'pt 12 40 56', // span 72 bits
        'pt 12 21 30 leaf=3', // leaf above top
        'pt 12 21 leaf=1 leaf=1',
        'pt 0x10000000000 0x10000000001',
        'translate 0x1000',
        'pt 0 16 32 48', // span exactly 2^64
        'ptbind 0xffffffffffff0000 0x10000 0xffffffffffff0000+0x10000',
        'translate 0xffffffffffffffff',
        'ptunbind 0x0 0x10000000000000000', // size above u64: malformed
        'ptunbind 0xffffffffffff0000 0x10000',
        'translate 0xffffffffffffffff',
      ].join('\n'),
    );
    expect(out).toBe(
      [
        'pt live=1 new=0 alloc=0 free=0 records=1',
        'ok',
        'err EINVAL',
        'err EINVAL',
        'err EINVAL',
        'err EINVAL',
        'err EINVAL',
        'err EINVAL',
        'err EINVAL',
        'pa 0x201000 size=0x200000 level=1',
        'pt live=1 new=2 alloc=2 free=0 records=1',
        'ok',
        'pa 0xffffffffffffffff size=0x10000 level=1',
        'err EINVAL',
        'pt live=1 new=0 alloc=0 free=2 records=1',
        'ok',
        'none',
        '',
      ].join('\n'),
    );
  });

  it('prints err EINVAL for malformed arguments and bad binds', () => {
    const out = run(
      backend,
      [
        'ptbind 0x0 0x1000',
        'ptbind 0x0 0x1000 0x0+0x1000 extra',
        'ptbind 0x0 0x1000 0x0-0x1000',
        'ptbind 0x0 0x1000 0x0+0x800,0x1000+0x800',
        'ptbind 0x0 0x0 null',
        'ptbind 0x0 0x1000 0x0+0x0,0x0+0x1000',
        'ptbind 0x0 0x1000 0xfffffffffffff000+0x2000',
        'ptbind 0xfffffffff000 0x2000 null',
        'ptunbind 0x0',
        'ptzap 0x1 0x1000',
        'translate',
        'translate zz',
        'ptdump extra',
        'translate 0x1000000000000',
        'ptunbind 0x0 0x1000',
        'ptzap 0x0 0x1000000000000',
        'ptbind 0x0 0x2000 0xfffffffffffff000+0x1000,0x0+0x1000', // pa + len = 2^64 is fine
        'translate 0xfff',
        'translate 0x1000',
      ].join('\n'),
    );
    expect(out).toBe(
      [
        ...Array(13).fill('err EINVAL'),
        'none',
        'pt live=0 new=0 alloc=0 free=0 records=0',
        'ok',
        'pt live=0 new=0 alloc=0 free=0 records=0',
        'ok',
        'pt live=1 new=4 alloc=3 free=0 records=1',
        'ok',
        'pa 0xffffffffffffffff size=0x1000 level=0',
        'pa 0x0 size=0x1000 level=0',
        '',
      ].join('\n'),
    );
  });
});

describe.each(backends)('page-table commands mixed with GpuVm commands on %s', (backend) => {
  const text = [
    'ptbind 0x0 0x1000 0x5000+0x1000 # default table, before any init',
    'init 0x0 0x100000000',
    'map 0x200000 0x200000 1 0x0',
    'translate 0x123',
    'pt 12 21 30 leaf=1',
    'ptbind 0x200000 0x200000 0x40000000+0x200000',
    'dump',
    'translate 0x3fffff',
    'ptzap 0x200000 0x200000',
    'unmap 0x200000 0x1000',
    'ptunbind 0x200000 0x200000',
    'ptdump',
    'dump',
    '',
  ].join('\n');
  const expected = [
    'pt live=1 new=3 alloc=3 free=0 records=1',
    'ok',
    'map 0x200000 0x200000 bo=1 off=0x0',
    'ok',
    'pa 0x5123 size=0x1000 level=0',
    'pt live=1 new=1 alloc=1 free=0 records=1',
    'ok',
    'va 0x200000 0x200000 bo=1 off=0x0',
    'pa 0x401fffff size=0x200000 level=1',
    'pt live=1 new=0 alloc=0 free=0 records=1',
    'ok',
    'remap unmap=0x200000,0x200000,bo=1,off=0x0,keep=0 prev=- next=0x201000,0x1ff000,0x1000',
    'ok',
    'pt live=1 new=0 alloc=0 free=1 records=1', // the level-1 table held only the zapped leaf: killed
    'ok',
    'va 0x201000 0x1ff000 bo=1 off=0x1000',
    '',
  ].join('\n');

  it('through replay()', () => {
    expect(replay(text, { backend })).toBe(expected);
  });

  it('through `gpuvm replay -`', () => {
    const out = execFileSync(process.execPath, [join(here, '..', 'bin', 'gpuvm.js'), 'replay', '-'], {
      env: { ...process.env, GPUVM_BACKEND: backend },
      input: text,
      encoding: 'utf8',
    });
    expect(out).toBe(expected);
  });
});
