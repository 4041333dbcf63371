// Owns the HTML timeline of `git tensor log --probes --html <file>`: one self-contained page (inline CSS
// and SVG, no script, nothing fetched) with, per probe, its value along the commits as a line plot, the
// commits where its answer flipped marked in red, and the table of values. Pure: data in, a string out.

import { escapeHtml } from './report-html.js';

export interface TimelineInput {
  title: string;
  commits: { short: string; subject: string }[];
  series: {
    id: string;
    /** What the value is (y axis), e.g. `logprob " Paris"`. */
    label: string;
    /** One per commit; null where the probe has no value. */
    values: (number | null)[];
    /** Indexes of commits whose answer differs from the commit before. */
    flips: number[];
  }[];
}

const CSS = `
body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:24px;color:#1d2330}
h1{font-size:20px;margin:0 0 12px}h2{font-size:15px;margin:22px 0 4px}
.fig{display:inline-block;margin:0 18px 12px 0;vertical-align:top}.cap{font-size:12px;color:#4c566a}
table{border-collapse:collapse;font-size:12px;margin-top:16px}td,th{padding:2px 8px;border-bottom:1px solid #e5e9f0;text-align:right}
td:first-child,th:first-child{text-align:left;font-family:"DejaVu Sans Mono",monospace}
`;

const W = 420, H = 170, L = 52, R = 12, T = 10, B = 34;

function fmt(x: number): string {
  return Math.abs(x) >= 100 || (x !== 0 && Math.abs(x) < 0.01) ? x.toExponential(1) : x.toFixed(2);
}

function plot(s: TimelineInput['series'][number], commits: TimelineInput['commits']): string {
  const known = s.values.filter((v): v is number => v !== null);
  if (!known.length) return '';
  let lo = Math.min(...known), hi = Math.max(...known);
  if (hi === lo) { lo -= 1; hi += 1; }
  const n = s.values.length;
  const x = (i: number) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (v: number) => T + ((hi - v) * (H - T - B)) / (hi - lo);
  const pts = s.values.map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean).join(' ');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(s.id)}">`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#aab"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#aab"/>`,
    `<text x="${L - 4}" y="${T + 8}" font-size="10" text-anchor="end">${fmt(hi)}</text>`,
    `<text x="${L - 4}" y="${H - B}" font-size="10" text-anchor="end">${fmt(lo)}</text>`,
    `<polyline fill="none" stroke="#3b6ea5" stroke-width="1.6" points="${pts}"/>`,
  ];
  s.values.forEach((v, i) => {
    if (v === null) return;
    const flip = s.flips.includes(i);
    parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="${flip ? 4.5 : 2.5}" fill="${flip ? '#c0392b' : '#3b6ea5'}"><title>${escapeHtml(`${commits[i]!.short} ${commits[i]!.subject}: ${fmt(v)}${flip ? ' (answer flipped)' : ''}`)}</title></circle>`);
  });
  const step = Math.max(1, Math.ceil(n / 8));
  for (let i = 0; i < n; i += step) parts.push(`<text x="${x(i).toFixed(1)}" y="${H - B + 14}" font-size="9" text-anchor="middle" font-family="monospace">${escapeHtml(commits[i]!.short)}</text>`);
  parts.push('</svg>');
  return `<div class="fig">${parts.join('')}<div class="cap"><b>${escapeHtml(s.id)}</b>: ${escapeHtml(s.label)}; red: answer flipped</div></div>`;
}

export function renderTimelineHtml(input: TimelineInput): string {
  const head = `<tr><th>commit</th>${input.series.map((s) => `<th>${escapeHtml(s.id)}</th>`).join('')}<th style="text-align:left">subject</th></tr>`;
  const rows = input.commits.map((c, i) => `<tr><td>${escapeHtml(c.short)}</td>${input.series.map((s) => {
    const v = s.values[i];
    return `<td${s.flips.includes(i) ? ' style="color:#c0392b;font-weight:bold"' : ''}>${v === null || v === undefined ? '-' : fmt(v)}</td>`;
  }).join('')}<td style="text-align:left">${escapeHtml(c.subject)}</td></tr>`);
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title><style>${CSS}</style></head><body>` +
    `<h1>${escapeHtml(input.title)}</h1>${input.series.map((s) => plot(s, input.commits)).join('')}` +
    `<table>${head}${rows.join('')}</table></body></html>\n`;
}
