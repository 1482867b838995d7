/**
 * A VA snapshot as an SVG picture: one panel per layer the snapshot holds,
 * all on one compressed address axis (layout.ts) so the layers line up.
 *
 * - GpuVm: each mapping a box in its BO's colour, with a dark edge at every
 *   mapping boundary, so the pieces a split left behind stay visible.
 * - Page table: one strip per level (top first), a heat strip of how many
 *   entries of that level each pixel column holds, tinted by kind (leaves,
 *   directory entries, null leaves, zapped).
 * - SVM: VMAs, notifiers and ranges; each range split into its page runs
 *   coloured by residency (none / system / device), and one thin row per
 *   range flag.
 *
 * Pure: the same snapshot (and axis) gives the same text.
 */
import { buildAxis, bytes, hex, occupied, spanX, ticks, type Axis } from './layout.js';
import type { SnapPageTable, SnapSvm, SnapVm, VaSnapshot } from './snapshot.js';

/** Picture width in pixels, and where the plot starts and ends. */
export const WIDTH = 1200;
export const PLOT_X0 = 150;
export const PLOT_X1 = WIDTH - 24;

export const COLOURS = {
  background: '#ffffff',
  row: '#f1f3f6',
  text: '#1f2430',
  muted: '#6b7280',
  edge: '#1f2430',
  gap: '#e5e7eb',
  kernel: '#9ca3af',
  sparse: '#d1d5db',
  vma: '#cbd5e1',
  vmaReadOnly: '#94a3b8',
  notifier: '#64748b',
  flag: '#475569',
} as const;

/** Page residency colours of SVM ranges. */
export const RESIDENCY = { none: '#ffffff', sys: '#2f7ed8', dev: '#e8590c' } as const;

/** Page-table heat: the hue of each kind, from faint (one entry) to full (the busiest column). */
export const PT_KIND = { leaf: '#2b8a3e', dir: '#5f3dc4', null: '#868e96', zapped: '#c92a2a' } as const;

/** Distinct colours for BOs; BO n (a number) takes entry (n - 1) mod the length. */
export const BO_PALETTE = [
  '#4263eb', '#f08c00', '#2f9e44', '#e03131', '#7048e8', '#0c8599',
  '#d6336c', '#5c940d', '#1971c2', '#e8590c', '#862e9c', '#087f5b',
] as const;

/** The fill of a BO's mappings; BO '0' (no BO: a sparse mapping) is light grey. */
export function boColour(name: string): string {
  if (name === '0') return COLOURS.sparse;
  let n: number;
  if (/^[0-9]+$/.test(name)) n = Number(BigInt(name) % BigInt(BO_PALETTE.length)) + BO_PALETTE.length - 1;
  else {
    // a named BO: a stable hash of the name
    n = 0;
    for (let i = 0; i < name.length; i++) n = (n * 31 + name.charCodeAt(i)) >>> 0;
  }
  return BO_PALETTE[n % BO_PALETTE.length];
}

const FLAG_ROWS: [string, string][] = [
  ['migrate_devmem', 'migrate devmem'],
  ['has_devmem_pages', 'devmem pages'],
  ['has_dma_mapping', 'dma mapping'],
  ['unmapped', 'unmapped'],
  ['partial_unmap', 'partial unmap'],
  ['bound', 'bound'],
];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const r1 = (v: number) => Math.round(v * 10) / 10;

const SANS = "DejaVu Sans, Helvetica, Arial, sans-serif";
const MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace";

class Canvas {
  readonly parts: string[] = [];
  /** the rows drawn, [top, height]: breaks are hatched over them last */
  readonly rows: [number, number][] = [];
  rect(x: number, y: number, w: number, h: number, fill: string, extra = ''): void {
    this.parts.push(`<rect x="${r1(x)}" y="${r1(y)}" width="${r1(Math.max(w, 0))}" height="${r1(h)}" fill="${fill}"${extra}/>`);
  }
  line(x1: number, y1: number, x2: number, y2: number, stroke: string, width = 1, extra = ''): void {
    this.parts.push(`<line x1="${r1(x1)}" y1="${r1(y1)}" x2="${r1(x2)}" y2="${r1(y2)}" stroke="${stroke}" stroke-width="${width}"${extra}/>`);
  }
  text(x: number, y: number, s: string, opts: { size?: number; anchor?: string; fill?: string; mono?: boolean; weight?: string } = {}): void {
    const { size = 11, anchor = 'start', fill = COLOURS.text, mono = false, weight } = opts;
    this.parts.push(
      `<text x="${r1(x)}" y="${r1(y)}" font-family="${mono ? MONO : SANS}" font-size="${size}" text-anchor="${anchor}" fill="${fill}"` +
        `${weight ? ` font-weight="${weight}"` : ''}>${esc(s)}</text>`,
    );
  }
  raw(s: string): void {
    this.parts.push(s);
  }
}

/** Rough text width, for deciding whether a label fits. */
const textWidth = (s: string, size = 11) => s.length * size * 0.6;

export interface SvgOptions {
  /** the axis to draw on (frames of one animation share one); default: built from the snapshot */
  axis?: Axis;
  /** the heading (default: the snapshot's label, or "gpuvm VA space") */
  title?: string;
}

/** The axis a snapshot is drawn on by default; also what frames of an animation share. */
export function axisFor(snaps: VaSnapshot[]): Axis {
  const intervals = snaps.flatMap(occupied);
  const vm = snaps.find((s) => s.vm)?.vm;
  const fallback: [bigint, bigint] | null = vm ? [vm.start, vm.start + vm.range] : null;
  return buildAxis(intervals, PLOT_X0, PLOT_X1, fallback);
}

/** A panel's heading line. */
function caption(c: Canvas, y: number, name: string, detail: string): void {
  c.text(16, y, name, { size: 13, weight: 'bold' });
  c.text(16 + textWidth(name, 13) * 1.15 + 12, y, detail, { size: 11, fill: COLOURS.muted });
}

/** A row's background across the plot (with breaks) and its label. */
function row(c: Canvas, axis: Axis, y: number, h: number, label: string, size = 10): void {
  for (const g of axis.segments) c.rect(g.x0, y, g.x1 - g.x0, h, COLOURS.row);
  c.text(PLOT_X0 - 8, y + h / 2 + size * 0.36, label, { anchor: 'end', size, fill: COLOURS.muted });
  c.rows.push([y, h]);
}

function vmPanel(c: Canvas, axis: Axis, vm: SnapVm, y: number): number {
  const bos = new Map<string, number>();
  for (const m of vm.mappings) if (!m.kernel) bos.set(m.bo, (bos.get(m.bo) ?? 0) + 1);
  const count = vm.mappings.filter((m) => !m.kernel).length;
  caption(
    c,
    y + 14,
    'GpuVm',
    `${count} mapping${count === 1 ? '' : 's'}${vm.truncated ? ' (first ones only)' : ''} of ${bos.size} BO${bos.size === 1 ? '' : 's'} ` +
      `in [${hex(vm.start)}, ${hex(vm.start + vm.range)})`,
  );
  const top = y + 24;
  const h = 34;
  row(c, axis, top, h, 'mappings');
  const sorted = [...vm.mappings].sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  for (const m of sorted) {
    const [x0, x1] = spanX(axis, m.addr, m.addr + m.range, 4);
    if (m.kernel) {
      c.rect(x0, top, x1 - x0, h, 'url(#kernel)');
      continue;
    }
    const fill = boColour(m.bo);
    c.rect(x0, top, x1 - x0, h, fill, m.bo === '0' ? ` stroke="${COLOURS.muted}" stroke-dasharray="3 2"` : '');
    const label = m.bo === '0' ? 'sparse' : `bo${m.bo}`;
    if (x1 - x0 > textWidth(label, 10) + 6) {
      c.text((x0 + x1) / 2, top + h / 2 + 4, label, { anchor: 'middle', size: 10, fill: m.bo === '0' ? COLOURS.text : '#ffffff' });
    }
  }
  // the edges between mappings: where a split or a neighbour's bind cut. Only for
  // mappings wide enough to tell apart: dense ones would turn the row into edges.
  for (const m of sorted) {
    const [x0, x1] = spanX(axis, m.addr, m.addr + m.range, 0);
    if (x1 - x0 < 6 || m.kernel) continue;
    for (const x of [x0, x1]) c.line(x, top - 3, x, top + h + 3, COLOURS.edge, 1);
  }
  // legend: BOs by how many mappings they have
  let lx = PLOT_X0;
  const ly = top + h + 16;
  const legend = [...bos.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
  for (const [bo, n] of legend) {
    const label = `${bo === '0' ? 'no BO' : `bo${bo}`} ×${n}`;
    if (lx + textWidth(label, 10) + 18 > PLOT_X1) break;
    c.rect(lx, ly - 9, 10, 10, boColour(bo));
    c.text(lx + 14, ly, label, { size: 10, fill: COLOURS.muted });
    lx += textWidth(label, 10) + 30;
  }
  return ly + 10;
}

/** Heat of one level: per pixel column, how many entries of each kind it holds. */
function levelColumns(axis: Axis, pt: SnapPageTable, level: number) {
  const width = Math.ceil(axis.x1) + 1;
  const kinds = ['leaf', 'dir', 'null', 'zapped'] as const;
  const counts = Object.fromEntries(kinds.map((k) => [k, new Uint32Array(width)])) as Record<(typeof kinds)[number], Uint32Array>;
  let n = 0;
  for (const e of pt.entries) {
    if (e.level !== level) continue;
    n++;
    const kind = e.zapped ? 'zapped' : e.kind;
    const [x0, x1] = spanX(axis, e.va, e.va + e.size, 1);
    const a = Math.max(0, Math.floor(x0));
    const b = Math.min(width - 1, Math.max(a, Math.ceil(x1) - 1));
    for (let x = a; x <= b; x++) counts[kind][x]++;
  }
  return { counts, kinds, n, width };
}

function ptPanel(c: Canvas, axis: Axis, pt: SnapPageTable, y: number): number {
  const leaves = pt.entries.filter((e) => e.kind !== 'dir').length;
  caption(
    c,
    y + 14,
    'Page table',
    `shifts ${pt.shifts.join(' ')} · span ${bytes(pt.span)} · ${pt.tables} table${pt.tables === 1 ? '' : 's'} · ` +
      `${leaves} lea${leaves === 1 ? 'f' : 'ves'}${pt.truncated ? ' (first ones only)' : ''}`,
  );
  let top = y + 24;
  const h = 16;
  for (let level = pt.top; level >= 0; level--) {
    const { counts, kinds, n, width } = levelColumns(axis, pt, level);
    row(c, axis, top, h, `L${level} ${bytes(1n << BigInt(pt.shifts[level]))} · ${n}`);
    let max = 1;
    for (let x = 0; x < width; x++) {
      let total = 0;
      for (const k of kinds) total += counts[k][x];
      if (total > max) max = total;
    }
    // one rect per run of columns with the same kind and heat step
    let runStart = -1;
    let runKey = '';
    const flush = (end: number) => {
      if (runStart < 0) return;
      const [kind, step] = runKey.split(':');
      const opacity = 0.35 + 0.65 * (Number(step) / 8);
      c.rect(runStart, top + 1, end - runStart, h - 2, PT_KIND[kind as keyof typeof PT_KIND], ` fill-opacity="${opacity.toFixed(2)}"`);
      runStart = -1;
    };
    for (let x = 0; x < width; x++) {
      let kind = '';
      let total = 0;
      for (const k of kinds) {
        total += counts[k][x];
        // the most telling kind of a column wins: zapped, then leaves, null leaves, directories
        if (counts[k][x] > 0 && (kind === '' || k === 'zapped' || (k === 'leaf' && kind !== 'zapped'))) kind = k;
      }
      const key = total === 0 ? '' : `${kind}:${Math.round((8 * Math.log2(total + 1)) / Math.log2(max + 1))}`;
      if (key !== runKey) {
        flush(x);
        if (key !== '') runStart = x;
        runKey = key;
      }
    }
    flush(width);
    top += h + 3;
  }
  let lx = PLOT_X0;
  const ly = top + 12;
  for (const [kind, label] of [['leaf', 'leaves'], ['dir', 'directory entries'], ['null', 'null leaves'], ['zapped', 'zapped']] as const) {
    c.rect(lx, ly - 9, 10, 10, PT_KIND[kind]);
    c.text(lx + 14, ly, label, { size: 10, fill: COLOURS.muted });
    lx += textWidth(label, 10) + 30;
  }
  c.text(lx + 10, ly, 'darker: more entries per pixel', { size: 10, fill: COLOURS.muted });
  return ly + 10;
}

function svmPanel(c: Canvas, axis: Axis, svm: SnapSvm, y: number): number {
  const dm = svm.devmem;
  caption(
    c,
    y + 14,
    'SVM',
    `${svm.vmas.length} VMA${svm.vmas.length === 1 ? '' : 's'} · ${svm.notifiers.length} notifier${svm.notifiers.length === 1 ? '' : 's'} · ` +
      `${svm.ranges.length} range${svm.ranges.length === 1 ? '' : 's'}${svm.truncated ? ' (first ones only)' : ''}` +
      (dm ? ` · device memory ${bytes(dm.used)} of ${bytes(dm.size)} in ${dm.allocations} allocation${dm.allocations === 1 ? '' : 's'}` : ''),
  );
  let top = y + 24;
  // VMAs
  row(c, axis, top, 16, 'CPU VMAs');
  for (const v of svm.vmas) {
    const [x0, x1] = spanX(axis, v.start, v.start + v.size, 2);
    c.rect(x0, top + 2, x1 - x0, 12, v.readOnly ? COLOURS.vmaReadOnly : COLOURS.vma, ` stroke="${COLOURS.muted}" stroke-width="0.6"`);
    const label = `${v.kind}${v.readOnly ? ' ro' : ''}`;
    if (x1 - x0 > textWidth(label, 9) + 6) c.text(x0 + 3, top + 12, label, { size: 9, fill: COLOURS.text });
  }
  top += 20;
  // notifiers: brackets over their blocks
  row(c, axis, top, 10, 'notifiers');
  for (const n of svm.notifiers) {
    const [x0, x1] = spanX(axis, n.start, n.start + n.size, 2);
    c.line(x0, top + 5, x1, top + 5, COLOURS.notifier, 2);
    c.line(x0, top + 1, x0, top + 9, COLOURS.notifier, 1.5);
    c.line(x1, top + 1, x1, top + 9, COLOURS.notifier, 1.5);
  }
  top += 14;
  // ranges with page residency
  const h = 28;
  row(c, axis, top, h, 'ranges · pages');
  for (const r of svm.ranges) {
    for (const p of r.pages) {
      const [x0, x1] = spanX(axis, p.start, p.start + p.size, 1);
      c.rect(x0, top, x1 - x0, h, RESIDENCY[p.state]);
    }
    const [x0, x1] = spanX(axis, r.start, r.start + r.size, 2);
    c.rect(x0, top, x1 - x0, h, 'none', ` stroke="${COLOURS.edge}" stroke-width="1"`);
  }
  top += h + 4;
  for (const [flag, label] of FLAG_ROWS) {
    row(c, axis, top, 10, label, 9);
    for (const r of svm.ranges) {
      const on = flag === 'bound' ? r.bound : r.flags.includes(flag);
      if (!on) continue;
      const [x0, x1] = spanX(axis, r.start, r.start + r.size, 2);
      // a pixel short at each end, so neighbouring ranges with the same flag stay apart
      const cut = x1 - x0 > 6 ? 1 : 0;
      c.rect(x0 + cut, top + 2, x1 - x0 - 2 * cut, 6, COLOURS.flag);
    }
    top += 12;
  }
  let lx = PLOT_X0;
  const ly = top + 12;
  for (const [state, label] of [['none', 'not present'], ['sys', 'system memory'], ['dev', 'device memory']] as const) {
    c.rect(lx, ly - 9, 10, 10, RESIDENCY[state], ` stroke="${COLOURS.muted}" stroke-width="0.6"`);
    c.text(lx + 14, ly, label, { size: 10, fill: COLOURS.muted });
    lx += textWidth(label, 10) + 30;
  }
  return ly + 10;
}

/** Breaks over every row, the axis line and the address labels under it. */
function axisLayer(c: Canvas, axis: Axis, rows: [number, number][], bottom: number): number {
  for (const g of axis.gaps) {
    for (const [y, h] of rows) c.rect(g.x0, y - 3, g.x1 - g.x0, h + 6, 'url(#gap)');
    const mid = (g.x0 + g.x1) / 2;
    // a zigzag on the axis line: the scale is broken here, and by how much
    c.raw(
      `<polyline points="${r1(g.x0)},${r1(bottom + 6)} ${r1(mid - 3)},${r1(bottom + 1)} ${r1(mid + 3)},${r1(bottom + 11)} ${r1(g.x1)},${r1(bottom + 6)}" ` +
        `fill="none" stroke="${COLOURS.muted}" stroke-width="1.2"/>`,
    );
  }
  for (const g of axis.segments) c.line(g.x0, bottom + 6, g.x1, bottom + 6, COLOURS.muted, 1.2);
  // labels on up to three lines, each on the first line where it collides with nothing;
  // segment edges first, then gap sizes, then inner ticks where room is left
  const lines: [number, number][][] = [[], [], []];
  const place = (x: number, text: string, anchor: 'start' | 'middle' | 'end', size: number, maxLine: number) => {
    const w = text.length * size * 0.62;
    const a = anchor === 'start' ? x : anchor === 'end' ? x - w : x - w / 2;
    for (let k = 0; k <= maxLine; k++) {
      if (lines[k].every(([p, q]) => a + w + 6 <= p || q + 6 <= a)) {
        lines[k].push([a, a + w]);
        return k;
      }
    }
    return -1;
  };
  const all = ticks(axis);
  for (const t of all) c.line(t.x, bottom + 2, t.x, bottom + 10, COLOURS.muted, t.edge ? 1.2 : 0.8);
  const edges: [number, string, 'start' | 'end'][] = [];
  for (const g of axis.segments) edges.push([g.x0 + g.inset, hex(g.start), 'start'], [g.x1 - g.inset, hex(g.end), 'end']);
  for (const [x, text, anchor] of edges) {
    const k = place(x, text, anchor, 9, 2);
    if (k >= 0) c.text(x, bottom + 22 + k * 12, text, { anchor, size: 9, mono: true });
  }
  for (const g of axis.gaps) {
    const mid = (g.x0 + g.x1) / 2;
    const text = `+${bytes(g.end - g.start)}`;
    const k = place(mid, text, 'middle', 9, 2);
    if (k >= 0) c.text(mid, bottom + 22 + k * 12, text, { anchor: 'middle', size: 9, fill: COLOURS.muted });
  }
  for (const t of all) {
    if (t.edge) continue;
    const k = place(t.x, hex(t.addr), 'middle', 9, 0);
    if (k >= 0) c.text(t.x, bottom + 22, hex(t.addr), { anchor: 'middle', size: 9, mono: true, fill: COLOURS.muted });
  }
  const used = lines.filter((l) => l.length > 0).length;
  return bottom + 22 + Math.max(0, used - 1) * 12 + 12;
}

/** The SVG text of a snapshot. */
export function renderSvg(snap: VaSnapshot, options: SvgOptions = {}): string {
  const axis = options.axis ?? axisFor([snap]);
  const c = new Canvas();
  const title = options.title ?? snap.label ?? 'gpuvm VA space';
  c.text(16, 26, title, { size: 16, weight: 'bold' });
  const scale = axis.gaps.length
    ? `${axis.segments.length} regions shown, ${axis.gaps.length} gap${axis.gaps.length === 1 ? '' : 's'} left out (hatched)`
    : 'linear address axis';
  c.text(PLOT_X1, 26, scale, { anchor: 'end', size: 11, fill: COLOURS.muted });
  let y = 46;
  if (snap.vm) y = vmPanel(c, axis, snap.vm, y) + 14;
  if (snap.pageTable) y = ptPanel(c, axis, snap.pageTable, y) + 14;
  if (snap.svm) y = svmPanel(c, axis, snap.svm, y) + 14;
  if (!snap.vm && !snap.pageTable && !snap.svm) {
    c.text(WIDTH / 2, y + 30, 'nothing to draw: no VM, page table or SVM yet', { anchor: 'middle', size: 12, fill: COLOURS.muted });
    y += 50;
  }
  const body = c.parts;
  const axisCanvas = new Canvas();
  const height = axisLayer(axisCanvas, axis, c.rows, y + 8);
  const defs =
    '<defs>' +
    `<pattern id="gap" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
    `<rect width="6" height="6" fill="${COLOURS.background}"/><line x1="0" y1="0" x2="0" y2="6" stroke="${COLOURS.gap}" stroke-width="3"/></pattern>` +
    `<pattern id="kernel" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)">` +
    `<rect width="6" height="6" fill="${COLOURS.row}"/><line x1="0" y1="0" x2="0" y2="6" stroke="${COLOURS.kernel}" stroke-width="2"/></pattern>` +
    '</defs>';
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${Math.ceil(height)}" viewBox="0 0 ${WIDTH} ${Math.ceil(height)}">` +
    defs +
    `<rect width="100%" height="100%" fill="${COLOURS.background}"/>` +
    body.join('') +
    axisCanvas.parts.join('') +
    '</svg>\n'
  );
}
