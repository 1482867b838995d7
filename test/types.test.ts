/**
 * The public types, checked by the TypeScript compiler against the built
 * dist/index.d.ts (vitest's global setup builds it): bigint mode follows the
 * options, internals are not reachable, and every ```ts snippet of README.md
 * and docs/*.md that imports from 'gpuvm' compiles as it stands (each is a
 * whole program; test/readme-snippets.test.ts runs them). And the repository
 * itself type-checks, its tests included.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const TYPE_CHECKS = `
import { GpuVm, PageTable, Bo, type U64 } from 'gpuvm';

const bigVm = new GpuVm({ start: 0n, range: 2n ** 48n, bigint: true });
const b: bigint = bigVm.start;
const e: bigint = bigVm.end + 0x1000n;
// @ts-expect-error a bigint VM reports bigints
const n: number = bigVm.start;

const vm = new GpuVm({ start: 0, range: 2 ** 40 });
const m: number = vm.end + 0x1000;
// @ts-expect-error a number VM reports numbers
const m2: bigint = vm.end;

const explicit = new GpuVm<bigint>({ start: 0, range: 1, bigint: true });
const x: bigint = explicit.range;
// @ts-expect-error the type argument and the option disagree
new GpuVm<bigint>({ start: 0, range: 1 });

declare const flag: boolean;
const either = new GpuVm({ start: 0, range: 1, bigint: flag });
const y: U64 = either.start;
// @ts-expect-error the mode is known only at run time
const y2: number = either.start;

const ptBig = new PageTable({ bigint: true });
const s: bigint = ptBig.span;
const pt = new PageTable();
const s2: number = pt.span;
// @ts-expect-error a number table reports numbers
const s3: bigint = pt.span;

const bo = new Bo();
vm.bind(0x1000, 0x1000, bo, 0);
const va = vm.findFirst(0, 0x2000)!;
const a: number = va.addr;
vm.attachPageTable(pt, (_bo, off, len) => [[off, len]]);

// internals are not part of the types
// @ts-expect-error
vm._h;
// @ts-expect-error
vm._E;
// @ts-expect-error
va._vaRead;
// @ts-expect-error
pt.engine;
// @ts-expect-error GpuVas come from a VM
new (va.constructor as typeof import('gpuvm').GpuVa)();
export { b, e, n, m, m2, x, y, y2, s, s2, s3, a };
`;

function snippets(): { name: string; code: string }[] {
  const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
  const out: { name: string; code: string }[] = [];
  for (const f of files) {
    const text = readFileSync(join(ROOT, f), 'utf8');
    let k = 0;
    for (const m of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
      const code = m[1];
      if (!/from 'gpuvm'/.test(code)) continue;
      out.push({ name: `${f.replace(/[/.]/g, '_')}_${k++}.ts`, code: `${code}\nexport {};\n` });
    }
  }
  return out;
}

function tsc(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'gpuvm-types-'));
  try {
    for (const [name, code] of Object.entries(files)) writeFileSync(join(dir, name), code);
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: 'ESNext',
          moduleResolution: 'Bundler',
          lib: ['ES2022', 'ESNext.Disposable'],
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          noUnusedLocals: false,
          paths: { gpuvm: [join(ROOT, 'dist', 'index.d.ts')] },
        },
        files: Object.keys(files),
      }),
    );
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { stdio: 'pipe' });
      return '';
    } catch (err) {
      return String((err as { stdout?: Buffer }).stdout ?? err);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('public types', () => {
  it('bigint mode follows the options; internals are not reachable', () => {
    expect(tsc({ 'checks.ts': TYPE_CHECKS })).toBe('');
  });

  it('the built types hold no internal members', () => {
    const dts = readFileSync(join(ROOT, 'dist', 'index.d.ts'), 'utf8');
    expect(dts).not.toMatch(/@internal/);
    expect(dts).not.toMatch(/^\s+(readonly\s+)?_\w+[?(:]/m);
    expect(dts).not.toMatch(/VmContext|GpuVmEngine/);
  });

  it('the README and docs snippets compile', () => {
    const all = snippets();
    expect(all.length).toBeGreaterThanOrEqual(4);
    const files = Object.fromEntries(all.map((s) => [s.name, s.code]));
    expect(tsc(files)).toBe('');
  });

  it('the repository type-checks: sources, tests and benchmarks', () => {
    // vitest strips types without checking them; a test that asks an
    // iterator for .length passes that way with a branch that never runs
    let out = '';
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '-p', ROOT], { stdio: 'pipe' });
    } catch (err) {
      out = String((err as { stdout?: Buffer }).stdout ?? err);
    }
    expect(out).toBe('');
  });
});
