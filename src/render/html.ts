/**
 * Several snapshots as one self-contained HTML page: every frame is an SVG
 * drawn on the same axis (so nothing moves between frames unless the state
 * did), shown one at a time with a slider, previous/next buttons and the
 * arrow keys. With one frame it is just the picture on a page.
 */
import { axisFor, renderSvg } from './svg.js';
import type { VaSnapshot } from './snapshot.js';

export interface HtmlOptions {
  title?: string;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The HTML text of `frames` (at least one). */
export function renderHtml(frames: VaSnapshot[], options: HtmlOptions = {}): string {
  if (frames.length === 0) throw new RangeError('renderHtml needs at least one frame');
  const title = options.title ?? 'gpuvm VA space';
  const axis = axisFor(frames);
  const figures = frames
    .map((f, i) => {
      const label = f.label ?? `frame ${i + 1}`;
      return (
        `<figure class="frame" id="f${i}"${i === frames.length - 1 ? '' : ' hidden'} data-label="${esc(label)}">` +
        renderSvg(f, { axis, title: label }) +
        '</figure>'
      );
    })
    .join('\n');
  const controls =
    frames.length > 1
      ? `<nav><button id="prev" title="previous (←)">◀</button>` +
        `<input id="pick" type="range" min="0" max="${frames.length - 1}" value="${frames.length - 1}">` +
        `<button id="next" title="next (→)">▶</button> <span id="where"></span></nav>`
      : '';
  const script =
    frames.length > 1
      ? `<script>
const frames = [...document.querySelectorAll('.frame')];
const pick = document.getElementById('pick');
const where = document.getElementById('where');
function show(i) {
  i = Math.max(0, Math.min(frames.length - 1, i));
  frames.forEach((f, k) => { f.hidden = k !== i; });
  pick.value = String(i);
  where.textContent = (i + 1) + ' / ' + frames.length + ': ' + frames[i].dataset.label;
}
pick.addEventListener('input', () => show(Number(pick.value)));
document.getElementById('prev').addEventListener('click', () => show(Number(pick.value) - 1));
document.getElementById('next').addEventListener('click', () => show(Number(pick.value) + 1));
document.addEventListener('keydown', (e) => {
  if (e.key === 'ArrowLeft') show(Number(pick.value) - 1);
  if (e.key === 'ArrowRight') show(Number(pick.value) + 1);
});
show(frames.length - 1);
</script>`
      : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 16px; color: #1f2430; background: #fafafa; }
h1 { font-size: 18px; margin: 0 0 8px; }
nav { margin: 8px 0; display: flex; gap: 8px; align-items: center; font-size: 13px; }
nav input { width: 420px; }
figure { margin: 0; }
svg { background: #fff; box-shadow: 0 1px 3px rgba(0,0,0,.15); max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
${controls}
${figures}
${script}
</body>
</html>
`;
}
