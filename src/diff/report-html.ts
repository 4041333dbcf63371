// Owns the HTML report of `git tensor diff --html <file>`: one self-contained page (inline CSS and SVG,
// no script, no fonts or images fetched) with, per checkpoint, a layer x module heatmap of the relative
// change, a histogram of Δ, and the tensor, module and token tables. Pure: data in, a string out.

import { compared } from './analyze.js';
import { counts, cosineText, percent, sci, shapeText, STATUS_MARK, summaryLine } from './report-text.js';
import { layerCell } from './stats.js';
import type { CheckpointDiff, DeltaHistogram, TensorDiff } from './types.js';

export interface HtmlInput {
  old: string;
  new: string;
  files: CheckpointDiff[];
  /** Unused by the page (every changed tensor is listed); kept for symmetry with the text report. */
  top?: number;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Viridis, sampled at 9 points; linear in between. */
const VIRIDIS: [number, number, number][] = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];

export function colorAt(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const k = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - k;
  const [a, b] = [VIRIDIS[k]!, VIRIDIS[k + 1]!];
  const c = a.map((v, i) => Math.round(v + (b[i]! - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

const CSS = `
body{font-family:"DejaVu Sans",system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 4px;border-bottom:1px solid #d5d9e0;padding-bottom:4px}
h3{font-size:14px;margin:16px 0 6px;color:#3b4252}
code,td.num,td.name{font-family:"DejaVu Sans Mono",ui-monospace,monospace}
.summary{margin:4px 0 12px;color:#3b4252}.muted{color:#6b7280}
.figs{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
figure{margin:0;padding:10px;border:1px solid #e3e6eb;border-radius:6px;background:#fafbfc}
figcaption{font-size:12px;color:#4b5563;margin-bottom:6px}
table{border-collapse:collapse;font-size:12px;margin:6px 0 12px}
th,td{padding:3px 8px;border-bottom:1px solid #eceff3;text-align:left;white-space:nowrap}
th{background:#f3f5f8;font-weight:600}td.num{text-align:right}
tr.added td.st{color:#15803d}tr.removed td.st{color:#b91c1c}tr.changed td.st{color:#b45309}
.kind{display:inline-block;padding:0 6px;border-radius:8px;background:#eef2ff;color:#3730a3}
.kind.dense{background:#fee2e2;color:#991b1b}.kind.low-rank{background:#dcfce7;color:#166534}
.kind.sparse{background:#fef9c3;color:#854d0e}.kind.rescale{background:#e0f2fe;color:#075985}
.kind.sign-flip{background:#fce7f3;color:#9d174d}
ul.tokens{margin:4px 0;padding-left:18px;font-size:13px}
svg text{font-family:"DejaVu Sans",system-ui,sans-serif}
`;

export function renderHtml(input: HtmlInput): string {
  const title = `git tensor diff ${input.old} \u2192 ${input.new}`;
  const body = input.files.length ? input.files.map(fileSection).join('\n') : '<p>No checkpoint changes.</p>';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${CSS}</style></head>
<body><h1>${escapeHtml(title)}</h1>
<p class="muted">${input.files.length} checkpoint(s) changed. Relative change is ||\u0394||/||W|| (Frobenius norms, old version as W).</p>
${body}
</body></html>
`;
}

function fileSection(d: CheckpointDiff): string {
  const parts = [`<section><h2>${escapeHtml(d.path)}</h2><p class="summary">${escapeHtml(summaryLine(d))}</p>`];
  if (d.kind === 'safetensors') {
    const figs = [...heatmaps(d.tensors), histogramFigure(d.histogram)].filter(Boolean);
    if (figs.length) parts.push(`<div class="figs">${figs.join('')}</div>`);
    parts.push(tensorTable(d), moduleTable(d), tokenList(d));
    if (d.metadata.length) {
      parts.push('<h3>Metadata</h3><table><tr><th>key</th><th>old</th><th>new</th></tr>' +
        d.metadata.map(([k, o, n]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(o ?? '(absent)')}</td><td>${escapeHtml(n ?? '(absent)')}</td></tr>`).join('') + '</table>');
    }
    for (const n of d.notes) parts.push(`<p class="muted">note: ${escapeHtml(n)}</p>`);
  }
  parts.push('</section>');
  return parts.join('\n');
}

interface Cell {
  d2: number;
  o2: number;
  status: 'unchanged' | 'changed' | 'structural';
  names: string[];
}

/** One heatmap per group of numbered blocks (e.g. `model.layers`, `encoder.block`). */
function heatmaps(list: TensorDiff[]): string[] {
  const groups = new Map<string, { cells: Map<string, Cell>; layers: Set<number>; columns: string[] }>();
  for (const t of list) {
    const pos = layerCell(t.name);
    if (!pos) continue;
    let g = groups.get(pos.prefix);
    if (!g) groups.set(pos.prefix, (g = { cells: new Map(), layers: new Set(), columns: [] }));
    g.layers.add(pos.layer);
    if (!g.columns.includes(pos.column)) g.columns.push(pos.column);
    const key = `${pos.layer}\u0000${pos.column}`;
    const cell = g.cells.get(key) ?? { d2: 0, o2: 0, status: 'unchanged', names: [] };
    cell.names.push(t.name);
    if (compared(t)) {
      cell.d2 += t.normDelta ** 2;
      cell.o2 += t.normOld ** 2;
      if (cell.status === 'unchanged') cell.status = 'changed';
    } else if (t.status !== 'unchanged') {
      cell.status = 'structural';
    }
    g.cells.set(key, cell);
  }
  return [...groups].filter(([, g]) => g.cells.size > 1).map(([prefix, g]) => heatmapSvg(prefix, g));
}

function heatmapSvg(prefix: string, g: { cells: Map<string, Cell>; layers: Set<number>; columns: string[] }): string {
  const layers = [...g.layers].sort((a, b) => a - b);
  const columns = [...g.columns].sort();
  const rel = (c: Cell) => (c.o2 > 0 ? Math.sqrt(c.d2 / c.o2) : c.d2 > 0 ? Infinity : 0);
  const logs = [...g.cells.values()].filter((c) => c.status === 'changed').map(rel).filter((r) => r > 0 && Number.isFinite(r)).map(Math.log10);
  const lo = logs.length ? Math.min(...logs) : 0, hi = logs.length ? Math.max(...logs) : 0;
  const cw = 54, ch = Math.max(10, Math.min(22, Math.floor(520 / Math.max(1, layers.length))));
  const left = 70, top = 120;
  // Room on the right for the last rotated column label.
  const width = left + columns.length * cw + 110, height = top + layers.length * ch + 60;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="heatmap of relative change">`);
  columns.forEach((c, k) => {
    const x = left + k * cw + cw / 2;
    out.push(`<text x="${x}" y="${top - 6}" font-size="11" transform="rotate(-40 ${x} ${top - 6})" fill="#374151">${escapeHtml(c)}</text>`);
  });
  layers.forEach((layer, r) => {
    const y = top + r * ch;
    if (layers.length <= 40 || r % Math.ceil(layers.length / 40) === 0) {
      out.push(`<text x="${left - 6}" y="${y + ch / 2 + 4}" font-size="11" text-anchor="end" fill="#374151">${layer}</text>`);
    }
    columns.forEach((col, k) => {
      const cell = g.cells.get(`${layer}\u0000${col}`);
      const x = left + k * cw;
      let fill = '#ffffff', label = 'absent';
      if (cell) {
        const v = rel(cell);
        if (cell.status === 'structural') {
          fill = '#f97316';
          label = 'added, removed or reshaped';
        } else if (cell.status === 'unchanged' || v === 0) {
          fill = '#e5e7eb';
          label = 'unchanged';
        } else {
          fill = Number.isFinite(v) ? colorAt(hi > lo ? (Math.log10(v) - lo) / (hi - lo) : 1) : '#b91c1c';
          label = `||\u0394||/||W|| = ${sci(v, 2)}`;
        }
        label = `${cell.names.join(', ')}: ${label}`;
      }
      out.push(`<rect x="${x + 1}" y="${y + 1}" width="${cw - 2}" height="${ch - 2}" fill="${fill}" rx="2"><title>${escapeHtml(label)}</title></rect>`);
    });
  });
  // Legend: the colour scale from the smallest to the largest relative change.
  const ly = top + layers.length * ch + 18, lw = Math.min(220, Math.max(120, columns.length * cw - 40));
  out.push(`<defs><linearGradient id="scale-${escapeHtml(prefix).replace(/[^A-Za-z0-9]/g, '')}">`);
  for (let i = 0; i <= 8; i++) out.push(`<stop offset="${i / 8}" stop-color="${colorAt(i / 8)}"/>`);
  out.push('</linearGradient></defs>');
  out.push(`<rect x="${left}" y="${ly}" width="${lw}" height="10" fill="url(#scale-${escapeHtml(prefix).replace(/[^A-Za-z0-9]/g, '')})"/>`);
  out.push(`<text x="${left}" y="${ly + 24}" font-size="10" fill="#374151">${logs.length ? sci(10 ** lo) : '-'}</text>`);
  out.push(`<text x="${left + lw}" y="${ly + 24}" font-size="10" text-anchor="end" fill="#374151">${logs.length ? sci(10 ** hi) : '-'}</text>`);
  out.push(`<rect x="${left + lw + 14}" y="${ly}" width="10" height="10" fill="#e5e7eb"/><text x="${left + lw + 28}" y="${ly + 9}" font-size="10" fill="#374151">unchanged</text>`);
  out.push(`<text x="4" y="${top - 6}" font-size="11" fill="#6b7280">layer</text>`);
  out.push('</svg>');
  return `<figure><figcaption>${escapeHtml(prefix)}.<i>N</i>.*: ||\u0394||/||W|| per layer and module (log colour scale)</figcaption>${out.join('')}</figure>`;
}

function histogramFigure(h: DeltaHistogram | undefined): string {
  if (!h || h.positive.length === 0) return '';
  const n = h.positive.length;
  const bw = Math.max(4, Math.min(18, Math.floor(480 / n)));
  const left = 50, mid = 130, scale = 100, width = left + n * bw + 20, height = 2 * mid + 30;
  const maxLog = Math.max(1, ...h.positive.map((c) => Math.log10(1 + c)), ...h.negative.map((c) => Math.log10(1 + c)));
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="histogram of delta">`];
  for (let k = 0; k < n; k++) {
    const x = left + k * bw;
    const lo = 2 ** (h.minExp + k / 2), hi = 2 ** (h.minExp + (k + 1) / 2);
    const up = (Math.log10(1 + h.positive[k]!) / maxLog) * scale;
    const down = (Math.log10(1 + h.negative[k]!) / maxLog) * scale;
    if (up > 0) out.push(`<rect x="${x}" y="${mid - up}" width="${bw - 1}" height="${up}" fill="#2563eb"><title>+[${sci(lo, 2)}, ${sci(hi, 2)}): ${h.positive[k]}</title></rect>`);
    if (down > 0) out.push(`<rect x="${x}" y="${mid}" width="${bw - 1}" height="${down}" fill="#dc2626"><title>-[${sci(lo, 2)}, ${sci(hi, 2)}): ${h.negative[k]}</title></rect>`);
  }
  out.push(`<line x1="${left}" y1="${mid}" x2="${left + n * bw}" y2="${mid}" stroke="#6b7280"/>`);
  const every = Math.max(1, Math.ceil(n / 8));
  for (let k = 0; k < n; k += every) {
    out.push(`<text x="${left + k * bw}" y="${2 * mid + 14}" font-size="10" fill="#374151">${sci(2 ** (h.minExp + k / 2))}</text>`);
  }
  out.push(`<text x="4" y="${mid - scale + 8}" font-size="10" fill="#2563eb">\u0394 &gt; 0</text><text x="4" y="${mid + scale}" font-size="10" fill="#dc2626">\u0394 &lt; 0</text>`);
  out.push('</svg>');
  return `<figure><figcaption>Histogram of |\u0394| over changed elements (half-octave bins, log counts; up: \u0394 &gt; 0, down: \u0394 &lt; 0)</figcaption>${out.join('')}</figure>`;
}

function tensorTable(d: CheckpointDiff): string {
  const listed = d.tensors.filter((t) => t.status !== 'unchanged');
  const c = counts(d);
  const head = '<tr><th></th><th>tensor</th><th>dtype</th><th>shape</th><th>changed</th><th>||\u0394||</th><th>||\u0394||/||W||</th><th>cos</th><th>max|\u0394|</th><th>kind</th></tr>';
  const rows = listed.map((t) => {
    const v = t.elements > 0 && t.numeric;
    const kind = t.status === 'added' || t.status === 'removed' ? t.status : t.kind;
    return `<tr class="${t.status}"><td class="st">${STATUS_MARK[t.status]}</td><td class="name">${escapeHtml(t.name)}</td><td>${escapeHtml(t.oldDtype && t.oldDtype !== t.dtype ? `${t.oldDtype} \u2192 ${t.dtype}` : t.dtype)}</td>` +
      `<td>${escapeHtml(t.oldShape && shapeText(t.oldShape) !== shapeText(t.shape) ? `${shapeText(t.oldShape)} \u2192 ${shapeText(t.shape)}` : shapeText(t.shape))}</td>` +
      `<td class="num">${t.elements > 0 ? percent(t.changedFraction) : ''}</td><td class="num">${v ? sci(t.normDelta, 2) : ''}</td><td class="num">${v ? sci(t.relChange, 2) : ''}</td>` +
      `<td class="num">${v ? cosineText(t.cosine) : ''}</td><td class="num">${v ? sci(t.maxAbsDelta, 2) : ''}</td>` +
      `<td><span class="kind ${escapeHtml(t.kind)}">${escapeHtml(kind)}</span> ${escapeHtml(t.detail)}</td></tr>`;
  });
  return `<h3>Tensors (${listed.length} changed, ${c.unchanged} unchanged)</h3><table>${head}${rows.join('')}</table>`;
}

function moduleTable(d: CheckpointDiff): string {
  const mods = d.modules.filter((m) => m.changed > 0);
  if (!mods.length) return '';
  const rows = mods.map((m) => `<tr><td class="name">${escapeHtml(m.name)}</td><td class="num">${m.changed}/${m.tensors}</td><td class="num">${sci(m.normDelta, 2)}</td><td class="num">${sci(m.relChange, 2)}</td><td class="num">${sci(m.maxRelChange, 2)}</td></tr>`);
  return `<h3>Modules</h3><table><tr><th>module</th><th>changed</th><th>||\u0394||</th><th>||\u0394||/||W||</th><th>max tensor</th></tr>${rows.join('')}</table>`;
}

function tokenList(d: CheckpointDiff): string {
  return d.tokens.map((t) => {
    const items = t.top.map((m) => `<li><code>${escapeHtml(JSON.stringify(m.text))}</code> <span class="muted">id ${m.id}</span> ||\u0394 row|| ${sci(m.change, 2)}${m.relChange !== null ? `, relative ${sci(m.relChange, 2)}` : ''}</li>`);
    return `<h3>Tokens whose rows moved most: ${escapeHtml(t.tensor)}</h3><p class="muted">${t.rowsChanged} of ${t.rows} rows changed; vocabulary from ${escapeHtml(t.tokenizer)}</p><ul class="tokens">${items.join('')}</ul>`;
  }).join('');
}
