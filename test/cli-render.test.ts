/**
 * Pictures, checked by their pixels: `gpuvm render`, `gpuvm demo` and the
 * renderers are rasterized with resvg and read back. A mapping must appear in
 * its BO's colour where the compressed axis puts it (a 4 KiB mapping in a
 * 2^48 space included) and nowhere else; a split leaves background between
 * the pieces; SVM device pages have the device colour; the demo draws every
 * panel. Also `gpuvm bench --json` prints parseable lines that agree across
 * engines. Engine-dependent parts run on every engine.
 */
import { Resvg } from '@resvg/resvg-js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { takeSnapshot } from '../src/render/snapshot.js';
import { BO_PALETTE, COLOURS, PLOT_X0, PLOT_X1, PT_KIND, RESIDENCY, boColour, renderSvg } from '../src/render/svg.js';
import { CpuMm } from '../src/svm/cpu-mm.js';
import { DevMem } from '../src/svm/dev-mem.js';
import { SvmDriver } from '../src/svm/driver.js';
import { backends } from './support/engines.js';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', 'bin', 'gpuvm.js');
const scratch = mkdtempSync(join(tmpdir(), 'gpuvm-cli-render-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function gpuvm(backend: string, args: string[], cwd = scratch) {
  const r = spawnSync(process.execPath, [cli, ...args], { env: { ...process.env, GPUVM_BACKEND: backend }, cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gpuvm ${args.join(' ')}: status ${r.status}: ${r.stderr}`);
  return r;
}

interface Image {
  width: number;
  height: number;
  /** '#rrggbb' at (x, y) */
  at(x: number, y: number): string;
  /** every pixel of a colour, as [x, y] */
  find(colour: string): [number, number][];
}

function raster(svg: string): Image {
  const png = new Resvg(svg, { font: { loadSystemFonts: true } }).render();
  const { width, height, pixels } = png;
  const at = (x: number, y: number) => {
    const i = (y * width + x) * 4;
    return '#' + [pixels[i], pixels[i + 1], pixels[i + 2]].map((v) => v.toString(16).padStart(2, '0')).join('');
  };
  return {
    width,
    height,
    at,
    find(colour) {
      const out: [number, number][] = [];
      for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if (at(x, y) === colour) out.push([x, y]);
      return out;
    },
  };
}

const xs = (px: [number, number][]) => [...new Set(px.map(([x]) => x))].sort((a, b) => a - b);
const ys = (px: [number, number][]) => [...new Set(px.map(([, y]) => y))].sort((a, b) => a - b);

/** Runs of consecutive values. */
function runs(values: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const v of values) {
    const last = out[out.length - 1];
    if (last && v === last[1] + 1) last[1] = v;
    else out.push([v, v]);
  }
  return out;
}

function renderReplay(backend: string, name: string, text: string, extra: string[] = []): string {
  const input = join(scratch, `${name}-${backend}.replay`);
  const output = join(scratch, `${name}-${backend}.${extra.includes('--steps') ? 'html' : 'svg'}`);
  writeFileSync(input, text);
  gpuvm(backend, ['render', input, '-o', output, ...extra]);
  return readFileSync(output, 'utf8');
}

describe.each(backends)('gpuvm render on %s', (backend) => {
  it('draws one mapping of BO 1 in its colour across the plot, and nothing of it elsewhere', () => {
    const svg = renderReplay(backend, 'one', 'init 0x0 0x1000000000000\nmap 0x100000000 0x200000 1 0x0\n');
    const img = raster(svg);
    const blue = img.find(boColour('1'));
    expect(blue.length).toBeGreaterThan(1000);
    // alone on the axis, it fills the plot but for the small inset at each end
    const [lo, hi] = [xs(blue)[0], xs(blue).at(-1)!];
    expect(lo).toBeGreaterThanOrEqual(PLOT_X0);
    expect(lo).toBeLessThanOrEqual(PLOT_X0 + 8);
    expect(hi).toBeGreaterThanOrEqual(PLOT_X1 - 8);
    expect(hi).toBeLessThanOrEqual(PLOT_X1);
    // one band (the legend swatch aside), and in it, left of the mapping, the row's background
    const band = runs(ys(blue)).sort((a, b) => b[1] - b[0] - (a[1] - a[0]))[0];
    expect(band[1] - band[0]).toBeGreaterThanOrEqual(30);
    const mid = Math.round((band[0] + band[1]) / 2);
    expect(img.at(PLOT_X0 + 1, mid)).toBe(COLOURS.row);
    expect(img.at(Math.round((PLOT_X0 + PLOT_X1) / 2), mid)).toBe(boColour('1'));
    expect(img.at(40, mid)).toBe(COLOURS.background);
    // no other BO colour anywhere
    for (const c of BO_PALETTE) if (c !== boColour('1')) expect(img.find(c)).toEqual([]);
  });

  it('keeps a 4 KiB mapping 127 TiB away visible on the compressed axis, with a break between', () => {
    const svg = renderReplay(
      backend,
      'far',
      'init 0x0 0x1000000000000\nmap 0x100000000 0x200000 1 0x0\nmap 0x7f0000000000 0x1000 2 0x0\n',
    );
    const img = raster(svg);
    const one = xs(img.find(boColour('1')).filter(([, y]) => y > 60 && y < 110));
    const two = xs(img.find(boColour('2')).filter(([, y]) => y > 60 && y < 110));
    expect(two.length).toBeGreaterThanOrEqual(3);
    expect(one.at(-1)!).toBeLessThan(two[0]);
    // between them a break: neither colour, and the hatch of the gap
    const row = Math.round((ys(img.find(boColour('2'))).filter((y) => y > 60 && y < 110)[5]));
    const between = [];
    for (let x = one.at(-1)! + 2; x < two[0] - 1; x++) between.push(img.at(x, row));
    expect(between).not.toContain(boColour('1'));
    expect(between).not.toContain(boColour('2'));
    expect(between.some((c) => c !== COLOURS.row)).toBe(true);
    expect(svg).toContain('+127T');
  });

  it('shows a split: two pieces of BO 3 with the background between them', () => {
    const svg = renderReplay(backend, 'split', 'init 0x0 0x100000000\nmap 0x10000000 0x30000 3 0x0\nunmap 0x10010000 0x10000\n');
    const img = raster(svg);
    const px = img.find(boColour('3'));
    // near the top of the row, above the label text
    const y = ys(px).filter((yy) => yy > 60 && yy < 110)[2];
    const line = xs(px.filter(([, yy]) => yy === y));
    const pieces = runs(line);
    expect(pieces.length).toBe(2);
    // the pieces are 64 KiB each, with 64 KiB between: about a third of the drawn width each
    const total = pieces[1][1] - pieces[0][0];
    for (const [a, b] of pieces) expect((b - a) / total).toBeGreaterThan(0.28);
    expect(img.at(Math.round((pieces[0][1] + pieces[1][0]) / 2), y)).toBe(COLOURS.row);
  });

  it('draws page-table leaves per level (a 2 MiB leaf at L1, 4 KiB leaves at L0)', () => {
    const svg = renderReplay(backend, 'pt', 'ptbind 0x200000 0x200000 0x40000000+0x200000\nptbind 0x400000 0x10000 0x1000+0x10000\n');
    // L1: the 2 MiB leaf and the directory entry above the 4 KiB leaves
    expect(svg).toMatch(/L1 2M · 2/);
    expect(svg).toMatch(/L0 4K · 16/);
    const img = raster(svg);
    // leaves and directory entries in their hues (any opacity), as many rows as levels with entries
    const tinted = (hex: string) => {
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
      let n = 0;
      for (let y = 0; y < img.height; y++)
        for (let x = PLOT_X0; x < PLOT_X1; x++) {
          const c = img.at(x, y);
          const [cr, cg, cb] = [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
          // a blend of the hue over the white or grey background keeps the hue's ordering of channels
          if (Math.sign(cg - cr) === Math.sign(g - r) && Math.sign(cg - cb) === Math.sign(g - b) && Math.abs(cg - cr) > 20) n++;
        }
      return n;
    };
    expect(tinted(PT_KIND.leaf)).toBeGreaterThan(500);
  });

  it('--steps writes one frame per dump plus the final state, all on one axis', () => {
    const html = renderReplay(
      backend,
      'steps',
      'init 0x0 0x100000000\nmap 0x10000000 0x10000 1 0x0\ndump\nmap 0x20000000 0x10000 2 0x0\ndump\nunmap 0x10000000 0x10000\n',
      ['--steps'],
    );
    const frames = html.match(/<figure /g) ?? [];
    expect(frames.length).toBe(3);
    expect(html).toContain('line 3: dump');
    expect(html).toContain('line 5: dump');
    // the same axis in every frame: the first edge label repeats
    const first = html.match(/>0x[0-9a-f]+</g)!;
    expect(html.split(first[0]).length - 1).toBeGreaterThanOrEqual(3);
  });

  it('draws SVM device pages in the device colour, system pages in the system colour', () => {
    const mm = new CpuMm({ backend });
    const devmem = new DevMem({ size: 0x1000000, backend });
    const driver = new SvmDriver({
      mm,
      devmem,
      start: 0,
      range: 2 ** 40,
      notifierSize: 0x20000000,
      chunks: [0x200000, 0x10000, 0x1000],
    });
    try {
      mm.mmap(0x10000000, 0x400000);
      driver.fault(0x10000000, { devmem: true }); // first 2 MiB to the device
      driver.fault(0x10200000); // next 2 MiB in system memory
      const snap = takeSnapshot({ svm: { mm, devmem, driver } });
      expect(snap.svm!.ranges.map((r) => r.pages.map((p) => p.state))).toEqual([['dev'], ['sys']]);
      const img = raster(renderSvg(snap));
      // the ranges row: lines with many pixels of both colours (the legend swatches have 10)
      const devAll = img.find(RESIDENCY.dev);
      const sysAll = img.find(RESIDENCY.sys);
      const wide = (px: [number, number][], y: number) => px.filter(([, yy]) => yy === y).length > 100;
      const both = new Set(ys(devAll).filter((y) => wide(devAll, y) && wide(sysAll, y)));
      expect(both.size).toBeGreaterThan(20);
      const dev = devAll.filter(([, y]) => both.has(y));
      const sys = sysAll.filter(([, y]) => both.has(y));
      expect(dev.length).toBeGreaterThan(500);
      expect(sys.length).toBeGreaterThan(500);
      // one segment over the 4 MiB VMA: device pages in its left half, system pages in its right
      const mid = (PLOT_X0 + PLOT_X1) / 2;
      expect(xs(dev)[0]).toBeLessThanOrEqual(PLOT_X0 + 8);
      expect(Math.abs(xs(dev).at(-1)! - mid)).toBeLessThanOrEqual(3);
      expect(Math.abs(xs(sys)[0] - mid)).toBeLessThanOrEqual(3);
      expect(xs(sys).at(-1)!).toBeGreaterThanOrEqual(PLOT_X1 - 8);
    } finally {
      driver.fini();
      devmem.destroy();
      mm.destroy();
    }
  });

  it('gpuvm demo from a fresh directory writes gpuvm-demo.svg with every panel drawn', () => {
    const dir = mkdtempSync(join(scratch, 'demo-'));
    const r = gpuvm(backend, ['demo'], dir);
    expect(r.stdout).toMatch(/atomic bindArray .* unwound, still 7 mappings \(was 7\)/);
    expect(r.stdout).toMatch(/CPU writes/);
    expect(r.stdout).toMatch(/gc: 1 range removed/);
    const file = join(dir, 'gpuvm-demo.svg');
    expect(existsSync(file)).toBe(true);
    const img = raster(readFileSync(file, 'utf8'));
    const inPlot = (px: [number, number][]) => px.filter(([x]) => x >= PLOT_X0);
    const bos = inPlot(['1', '2', '3', '4'].flatMap((b) => img.find(boColour(b))));
    const dev = inPlot(img.find(RESIDENCY.dev));
    const sys = inPlot(img.find(RESIDENCY.sys));
    expect(bos.length).toBeGreaterThan(1000);
    expect(dev.length).toBeGreaterThan(300);
    expect(sys.length).toBeGreaterThan(300);
    // the page-table panel lies between: non-background, non-row pixels there
    const vmBottom = ys(bos).at(-1)!;
    const svmTop = Math.min(ys(dev)[0], ys(sys)[0]);
    let ptInk = 0;
    for (let y = vmBottom + 20; y < svmTop - 60; y++)
      for (let x = PLOT_X0; x < PLOT_X1; x += 2) {
        const c = img.at(x, y);
        if (c !== COLOURS.background && c !== COLOURS.row) ptInk++;
      }
    expect(ptInk).toBeGreaterThan(2000);
    // the HTML picture has a frame per act
    gpuvm(backend, ['demo', '-o', join(dir, 'demo.html')], dir);
    expect((readFileSync(join(dir, 'demo.html'), 'utf8').match(/<figure /g) ?? []).length).toBe(4);
  });
});

describe('gpuvm bench', () => {
  it('--json --requests 2000 prints one parseable line per engine and mode, all agreeing', () => {
    const r = gpuvm(backends[0], ['bench', '--json', '--requests', '2000', '--rounds', '1']);
    const rows = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(rows.length).toBe(2 * backends.length);
    expect(new Set(rows.map((x) => `${x.engine}/${x.mode}`)).size).toBe(rows.length);
    for (const x of rows) {
      expect(x).toMatchObject({ suite: 'kernel-stream', requests: 2000, seed: '1', verified: null });
      expect(x.nsPerRequest).toBeGreaterThan(0);
    }
    expect(new Set(rows.map((x) => `${x.mappings} ${x.checksum}`)).size).toBe(1);
  });

  it('verifies the reference results at 100000 requests', () => {
    const r = gpuvm(backends[0], ['bench', '--json', '--rounds', '1']);
    const rows = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    for (const x of rows) expect(x).toMatchObject({ verified: true, mappings: 2949, checksum: '0x78e3464ca32dbf16' });
  });
});
