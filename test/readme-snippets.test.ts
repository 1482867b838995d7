/**
 * The README and docs snippets run unchanged: every ```ts / ```js block of
 * README.md and docs/*.md that imports from 'gpuvm' is a whole program. Each
 * is run by `node` in a child process, once per engine that loads here, from a
 * directory whose node_modules/gpuvm links to this checkout (so the import goes
 * through package.json's exports to dist/, which vitest's global setup builds).
 *
 * What a snippet says it prints is checked:
 * - `// prints: <line>` after a console.log call (on its line or on comment
 *   lines right below it) is one line that call prints, in order; the
 *   snippet's other output is not compared;
 * - a snippet followed by a "prints" paragraph and a fenced block prints
 *   exactly that block.
 * A `// -> ...` result comment would not be checked, so snippets use
 * `// prints:` instead. test/types.test.ts type-checks the ```ts ones; the
 * examples/*.mjs programs are run by test/install.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends } from './support/engines.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

interface Snippet {
  /** file and ordinal, for the test name */
  name: string;
  lang: 'ts' | 'js';
  code: string;
  /** the lines the marked console.log calls print, in order */
  prints: string[];
  /** the whole output, when a "prints" block follows the snippet */
  output: string | null;
}

// a ```ts or ```js block, optionally followed by a "prints" paragraph and its block
const BLOCK = /^```(ts|js)\n([\s\S]*?)^```\n(?:\nprints\n\n```\n([\s\S]*?)^```\n)?/gm;
const PRINTS = /\/\/ prints: (.*)$/;
// marks a line printed by a call that carries `// prints:` (a control character no snippet prints)
const MARK = '\u0001';

function snippets(): Snippet[] {
  const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const out: Snippet[] = [];
  for (const f of files) {
    let k = 0;
    for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(BLOCK)) {
      if (!/from 'gpuvm'/.test(m[2])) continue; // fragments stay fragments
      out.push({ name: `${f} #${k++}`, lang: m[1] as 'ts' | 'js', ...marked(m[2]), output: m[3] ?? null });
    }
  }
  return out;
}

/**
 * The snippet with each console.log call that carries `// prints:` comments
 * routed through __docPrint, and the lines those comments promise. A
 * `// prints:` comment that follows no console.log call is an error.
 */
function marked(source: string): { code: string; prints: string[] } {
  const lines = source.split('\n');
  const prints: string[] = [];
  let call = -1; // the console.log line the comment lines below it belong to
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].includes('console.log(')) call = i;
    else if (!/^\s*\/\//.test(lines[i])) call = -1;
    const p = PRINTS.exec(lines[i]);
    if (!p) continue;
    if (call < 0) throw new Error(`"${lines[i].trim()}" follows no console.log call`);
    lines[call] = lines[call].replace('console.log(', '__docPrint(');
    prints.push(p[1]);
  }
  return { code: lines.join('\n'), prints };
}

/** The program node runs: the snippet as an ES module, with __docPrint defined. */
function program(s: Snippet): string {
  const js =
    s.lang === 'ts'
      ? ts.transpileModule(s.code, {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        }).outputText
      : s.code;
  return (
    "import { format as __docFormat } from 'node:util';\n" +
    `const __docPrint = (...args) => console.log(__docFormat(...args).replace(/^/gm, '${MARK}'));\n` +
    js
  );
}

const all = snippets();
let dir = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gpuvm-snippets-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'gpuvm'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  all.forEach((s, i) => writeFileSync(join(dir, `snippet-${i}.mjs`), program(s)));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('README and docs snippets', () => {
  it('are found, and state results as checked `// prints:` comments', () => {
    expect(all.length).toBeGreaterThanOrEqual(7);
    for (const s of all) expect(s.code, s.name).not.toMatch(/\/\/ ->/);
  });

  describe.each(backends)('%s engine', (engine) => {
    it.each(all.map((s, i) => [s.name, i] as const))('%s runs and prints what it says', (_name, i) => {
      const s = all[i];
      const r = spawnSync(process.execPath, [join(dir, `snippet-${i}.mjs`)], {
        cwd: dir,
        env: { ...process.env, GPUVM_BACKEND: engine },
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const lines = r.stdout.split('\n').slice(0, -1);
      expect(lines.filter((l) => l.startsWith(MARK)).map((l) => l.slice(MARK.length))).toEqual(s.prints);
      if (s.output !== null) expect(lines.map((l) => l.replace(MARK, '')).join('\n') + '\n').toBe(s.output);
    });
  });
});
