/**
 * The built package as users load it: ESM import, CJS require and the type
 * declarations, on every engine (test/global-setup.ts builds dist/ first).
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backends } from './support/engines.js';
import { GpuVm } from '../src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

describe.each(backends)('the package on %s', (backend) => {
  const exercise = (m: typeof import('../src/index.js')) => {
    const vm = new m.GpuVm({ start: 0, range: 0x100000, backend });
    const bo = new m.Bo();
    vm.bind(0x1000, 0x3000, bo, 0);
    vm.unbind(0x2000, 0x1000);
    const got = [...vm.mappings()].map((v) => [v.addr, v.range, v.offset]);
    vm.destroy();
    return got;
  };

  it('works through require() (CJS)', () => {
    const req = createRequire(import.meta.url);
    const m = req(join(root, pkg.exports['.'].require.default));
    expect(exercise(m)).toEqual([[0x1000, 0x1000, 0], [0x3000, 0x1000, 0x2000]]);
    expect(() => new m.GpuVm({ start: 0, range: 0, backend })).toThrow(m.GpuVmError);
  });

  it('the CJS build and this copy of the facade share one process safely', () => {
    const req = createRequire(import.meta.url);
    const cjs = req(join(root, pkg.exports['.'].require.default));
    const mine = new GpuVm({ start: 0, range: 0x100000, backend });
    const theirs = new cjs.GpuVm({ start: 0, range: 0x100000, backend });
    for (let i = 0; i < 64; i++) {
      mine.bind(i * 0x1000, 0x1000, null, i);
      theirs.bind(i * 0x2000, 0x2000, null, i);
    }
    expect(mine.count).toBe(64);
    expect(theirs.count).toBe(64);
    expect(theirs.findFirst(0x7f000, 1).addr).toBe(0x7e000);
    expect(mine.findFirst(0x5000, 1)!.offset).toBe(5);
    expect(theirs.findFirst(0x5000, 1).offset).toBe(2);
    mine.destroy();
    theirs.destroy();
  });

  it('works through import (ESM)', async () => {
    const m = await import(pathToFileURL(join(root, pkg.exports['.'].import.default)).href);
    expect(exercise(m)).toEqual([[0x1000, 0x1000, 0], [0x3000, 0x1000, 0x2000]]);
  });

  it('import and require give one implementation: objects and errors cross between them', async () => {
    const esm = await import(pathToFileURL(join(root, pkg.exports['.'].import.default)).href);
    const cjs = createRequire(import.meta.url)(join(root, pkg.exports['.'].require.default));
    for (const name of Object.keys(cjs)) expect(esm[name], name).toBe(cjs[name]);
    const vm = new esm.GpuVm({ start: 0, range: 0x100000, backend });
    const bo = new cjs.Bo();
    vm.bind(0x1000, 0x1000, bo, 0);
    expect(vm.findBo(bo)).toBeInstanceOf(cjs.VmBo);
    expect(() => new cjs.GpuVm({ start: 0, range: 0, backend })).toThrow(esm.GpuVmError);
    vm.destroy();
  });
});

describe('package metadata', () => {
  it('ships types for both formats and a bin', () => {
    for (const cond of ['module', 'import', 'require']) {
      expect(existsSync(join(root, pkg.exports['.'][cond].types))).toBe(true);
      expect(existsSync(join(root, pkg.exports['.'][cond].default))).toBe(true);
    }
    expect(pkg.bin.gpuvm).toBe('./bin/gpuvm.js');
    expect(readFileSync(join(root, pkg.exports['.'].import.types), 'utf8')).toMatch(/declare class GpuVm/);
  });

  it('says what it is, where it lives, and that importing it does nothing', () => {
    expect(pkg.license).toBe('MIT');
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License[\s\S]*gpuvm contributors/);
    expect(readFileSync(join(root, 'CHANGELOG.md'), 'utf8')).toMatch(/## \[0\.1\.0\]/);
    expect(pkg.repository.url).toBeTruthy();
    expect(pkg.bugs.url).toBeTruthy();
    expect(pkg.homepage).toBeTruthy();
    expect(pkg.keywords.length).toBeGreaterThan(0);
    expect(pkg.sideEffects).toBe(false);
    expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'bin', 'prebuilds', 'examples', 'CHANGELOG.md']));
    expect(pkg.dependencies['node-gyp-build']).toBeTruthy(); // the install step's prebuild check
  });
});
