// Owns the text people read about probes: one version's results, the behaviour section of a diff, and
// the `log --probes` table. Numbers are natural-log probabilities unless a line says otherwise.

import type { BehaviourDiff } from './compare.js';
import type { ProbeResult, VersionResults } from './result.js';
import { answerOf, valueOf } from './result.js';

const q = (s: string) => JSON.stringify(s);
const f = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
const signed = (x: number, d = 3) => (x >= 0 ? '+' : '') + f(x, d);

function mark(correct: boolean | null): string {
  return correct === null ? '' : correct ? '  (right)' : '  (wrong)';
}

function probeLines(r: ProbeResult): string[] {
  if (r.kind === 'text') return [`${r.id}: text loss ${f(r.loss)} nats/token over ${r.tokens} tokens`];
  if (r.kind === 'choices') {
    return [`${r.id}: chose ${q(r.choices[r.chosen]!.text)} by ${f(r.margin)}${mark(r.correct)}`,
      ...r.choices.map((c) => `    ${f(c.logprob).padStart(9)}  ${q(c.text)}`)];
  }
  const lines = [`${r.id}: ${r.kind === 'masked' ? 'mask' : 'next'} -> ${q(r.answer)}${mark(r.correct)}`];
  for (const t of r.targets) {
    lines.push(`    ${f(t.logprob).padStart(9)}  p=${t.prob.toPrecision(3)}${t.rank !== undefined ? `  rank ${t.rank}` : `  ${t.tokens} tokens`}  ${q(t.text)}`);
  }
  lines.push(`    top-5: ${r.top5.map((t) => `${q(t.token)} ${Math.exp(t.logprob).toPrecision(2)}`).join(', ')}`);
  if (r.generated !== undefined) lines.push(`    generated: ${q(r.generated)}`);
  return lines;
}

export function renderResults(label: string, res: VersionResults, note?: string): string[] {
  return [`${label}${note ? `  (${note})` : ''}`, ...res.probes.flatMap((r) => probeLines(r).map((l) => `  ${l}`))];
}

export function renderBehaviour(d: BehaviourDiff, opts: { top?: number } = {}): string[] {
  const top = opts.top ?? 5;
  const out = [`behaviour on ${d.probes} probe(s):`];
  const gained = d.flips.filter((x) => x.change === 'gained'), lost = d.flips.filter((x) => x.change === 'lost'), changed = d.flips.filter((x) => x.change === 'changed');
  if (!d.flips.length) out.push('  no answer flipped');
  for (const [name, list] of [['gained', gained], ['lost', lost], ['changed', changed]] as const) {
    for (const x of list) out.push(`  ${name.padEnd(7)} ${x.id}: ${q(x.from)} -> ${q(x.to)}`);
  }
  if (d.agreement !== null) out.push(`  agreement: ${(d.agreement * 100).toFixed(1)}% of answers unchanged`);
  if (d.meanKl !== null) out.push(`  mean KL(old || new) at ${d.klPositions} probe position(s): ${f(d.meanKl, 4)} nats (top-k estimate)`);
  for (const t of d.textLoss) out.push(`  text ${t.id}: loss ${f(t.before)} -> ${f(t.after)} (${signed(t.delta)})`);
  const moved = d.changes.filter((c) => c.delta !== 0).slice(0, top);
  if (moved.length) {
    out.push('  largest changes:');
    for (const c of moved) out.push(`    ${signed(c.delta).padStart(8)}  ${c.id} ${c.what}: ${f(c.before)} -> ${f(c.after)}`);
  }
  const fmt = (l: { token: string; delta: number }[]) => l.slice(0, top).map((t) => `${q(t.token)} ${signed(t.delta, 2)}`).join(', ');
  if (d.moved.up.length) out.push(`  more likely: ${fmt(d.moved.up)}`);
  if (d.moved.down.length) out.push(`  less likely: ${fmt(d.moved.down)}`);
  return out;
}

export interface LogRow {
  short: string;
  subject: string;
  /**
   * The row this commit is compared with: its nearest ancestor in the log (git's rewritten first parent),
   * null when none is listed. Absent: the row before, for a linear history.
   */
  parent?: string | null;
  results: VersionResults;
}

/** Each row with the row it is compared with (see LogRow.parent). */
function withParents(rows: LogRow[]): [LogRow, LogRow | undefined][] {
  const byShort = new Map(rows.map((r) => [r.short, r]));
  return rows.map((row, i) => [row, row.parent === undefined ? rows[i - 1] : row.parent === null ? undefined : byShort.get(row.parent)]);
}

/** One row per commit (oldest first): each probe's value, and where each probe's answer first flipped. */
export function renderProbeLog(rows: LogRow[]): string[] {
  if (!rows.length) return [];
  const ids = rows[0]!.results.probes.map((r) => r.id);
  const header = ['commit', ...ids];
  const table: string[][] = [header];
  for (const row of rows) {
    const byId = new Map(row.results.probes.map((r) => [r.id, r]));
    table.push([row.short, ...ids.map((id) => {
      const r = byId.get(id);
      const v = r ? valueOf(r) : null;
      return v === null ? '-' : f(v) + (r && r.kind !== 'text' && r.correct !== null ? (r.correct ? ' ✓' : ' ✗') : '');
    })]);
  }
  const widths = header.map((_, k) => Math.max(...table.map((r) => [...r[k]!].length)));
  const out = table.map((r) => r.map((c, k) => (k === 0 ? c.padEnd(widths[k]!) : c.padStart(widths[k]!))).join('  '));
  const flips = firstFlips(rows);
  for (const id of ids) {
    const fl = flips.get(id);
    if (fl) out.push(`${id}: answer first flipped at ${fl.short} (${q(fl.from)} -> ${q(fl.to)})`);
  }
  const learned = firstLearned(rows);
  for (const id of ids) {
    const l = learned.get(id);
    if (l) out.push(`${id}: learned at ${l.short} (${l.from === null ? '-' : f(l.from)} -> ${l.to === null ? '-' : f(l.to)})`);
  }
  out.push('values: target logprob (nats), margin of the first choice, or text loss (nats/token); ✓/✗: the expected answer wins');
  return out;
}

/**
 * For each probe, the first row (oldest first) whose answer differs from its parent row's: on a history
 * with merges a branch's commit is compared with what it grew from, not with whatever came before it.
 */
export function firstFlips(rows: LogRow[]): Map<string, { short: string; from: string; to: string }> {
  const out = new Map<string, { short: string; from: string; to: string }>();
  for (const [row, parent] of withParents(rows)) {
    if (!parent) continue;
    const before = new Map(parent.results.probes.map((r) => [r.id, answerOf(r)]));
    for (const r of row.results.probes) {
      const a = answerOf(r);
      const b = before.get(r.id);
      if (b !== undefined && b !== null && a !== null && a !== b && !out.has(r.id)) out.set(r.id, { short: row.short, from: b, to: a });
    }
  }
  return out;
}

/** For each probe with an expected answer, the first row where it became right while its parent row was wrong. */
export function firstLearned(rows: LogRow[]): Map<string, { short: string; from: number | null; to: number | null }> {
  const out = new Map<string, { short: string; from: number | null; to: number | null }>();
  for (const [row, parent] of withParents(rows)) {
    if (!parent) continue;
    const before = new Map(parent.results.probes.map((r) => [r.id, r]));
    for (const r of row.results.probes) {
      const b = before.get(r.id);
      if (r.kind === 'text' || !b || b.kind === 'text' || out.has(r.id)) continue;
      if (r.correct === true && b.correct === false) out.set(r.id, { short: row.short, from: valueOf(b), to: valueOf(r) });
    }
  }
  return out;
}
