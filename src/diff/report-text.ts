// Owns the text report of a checkpoint diff: the compact table that `git diff` (through the diff
// driver), `git show`/`git log -p` (through textconv) and `git tensor diff` print. Pure: data in, lines out.

import type { CheckpointDiff, ShardSummary, TensorDiff } from './types.js';
import { formatBytes } from '../format/units.js';

export interface TextOptions {
  /** Tensor rows listed (the rest are counted); 0 = all. */
  top: number;
  /** Prefix of every line after the first (indentation inside git's output). */
  indent?: string;
}

export const STATUS_MARK: Record<TensorDiff['status'], string> = {
  added: '+', removed: '-', changed: '!', reshaped: '~', retyped: '~', unchanged: ' ',
};

/** `1.2e-3`, `4.0e+1`; `0` for zero; `-` for n/a. */
export function sci(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return x.toExponential(digits);
}

export function percent(x: number): string {
  if (x === 0) return '0%';
  if (x >= 1) return '100%';
  const p = 100 * x;
  return p >= 10 ? `${p.toFixed(1)}%` : p >= 0.1 ? `${p.toFixed(2)}%` : `${p.toPrecision(2)}%`;
}

export function cosineText(c: number | null): string {
  return c === null ? '-' : c.toFixed(6);
}

export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** The one-line summary of a checkpoint change (also used by `git tensor log`). */
export function summaryLine(d: CheckpointDiff): string {
  if (d.shards) return shardedSummaryLine(d, d.shards);
  if (d.kind === 'opaque') return `${d.path}: opaque file ${d.status}${d.old && d.new ? `, ${formatBytes(d.old.size)} -> ${formatBytes(d.new.size)}` : ''}`;
  const c = counts(d);
  const total = d.new?.tensors ?? d.old?.tensors ?? 0;
  if (d.status === 'added') return `${d.path}: new checkpoint, ${total} tensors, ${formatBytes(d.new!.size)}`;
  if (d.status === 'deleted') return `${d.path}: deleted checkpoint (${d.old!.tensors} tensors, ${formatBytes(d.old!.size)})`;
  const changedText = `${c.changed + c.structural}/${total} tensors changed`;
  const extra = [c.added && `${c.added} added`, c.removed && `${c.removed} removed`, c.reshaped && `${c.reshaped} reshaped/retyped`].filter(Boolean);
  const rel = d.totals.relChange !== null && c.changed > 0 ? `, ||Δ||/||W|| ${sci(d.totals.relChange)}` : '';
  const meta = d.metadata.length ? `, ${d.metadata.length} metadata key(s) changed` : '';
  return `${d.path}: ${changedText}${extra.length ? ` (${extra.join(', ')})` : ''}${rel}${meta}`;
}

/** `<index> (3 shards): ...` for a whole model; `<shard> (shard of <index>): ...` for one shard of it. */
function shardedSummaryLine(d: CheckpointDiff, s: ShardSummary): string {
  const shards = (n: number | null) => `${n} shard${n === 1 ? '' : 's'}`;
  const name = s.focus ? `${d.path} (shard of ${s.index})` : `${d.path} (${s.old !== null && s.new !== null && s.old !== s.new ? `${shards(s.old)} -> ${shards(s.new)}` : shards(s.new ?? s.old)})`;
  const c = counts(d);
  const total = d.new?.tensors ?? d.old?.tensors ?? 0;
  if (!s.focus && d.status === 'added') return `${name}: new checkpoint, ${total} tensors, ${formatBytes(d.new!.size)}`;
  if (!s.focus && d.status === 'deleted') return `${name}: deleted checkpoint (${d.old!.tensors} tensors, ${formatBytes(d.old!.size)})`;
  const place = s.focus && d.status === 'added' ? 'new shard, ' : s.focus && d.status === 'deleted' ? 'shard removed, ' : '';
  const extra = [c.added && `${c.added} added`, c.removed && `${c.removed} removed`, c.reshaped && `${c.reshaped} reshaped/retyped`].filter(Boolean);
  const rel = d.totals.relChange !== null && c.changed > 0 ? `, ||Δ||/||W|| ${sci(d.totals.relChange)}` : '';
  const meta = d.metadata.length ? `, ${d.metadata.length} metadata key(s) changed` : '';
  return `${name}: ${place}${c.changed + c.structural}/${total} tensors changed${extra.length ? ` (${extra.join(', ')})` : ''}${rel}${meta}`;
}

/** The moves between shards (a move alone is not a change) and the index's problems, with their hint. */
export function shardLines(s: ShardSummary, unchanged: ReadonlySet<string>, ind: string): string[] {
  const out: string[] = [];
  // Grouped by (from, to): a resharding moves whole runs of tensors between the same two files.
  const groups = new Map<string, ShardSummary['moved']>();
  for (const m of s.moved) groups.set(`${m.from}\0${m.to}`, [...(groups.get(`${m.from}\0${m.to}`) ?? []), m]);
  for (const list of groups.values()) {
    const same = list.filter((m) => unchanged.has(m.tensor)).length;
    const names = list.slice(0, 3).map((m) => m.tensor).join(', ') + (list.length > 3 ? `, ... ${list.length - 3} more` : '');
    out.push(`${ind}moved from ${list[0]!.from} to ${list[0]!.to}: ${list.length} tensor(s), ${same === list.length ? 'all' : same} with the same values (${names})`);
  }
  for (const p of s.problems) out.push(`${ind}${p.severity}: ${p.message}`);
  if (s.hint) out.push(`${ind}hint: ${s.hint}`);
  return out;
}

export function counts(d: CheckpointDiff) {
  const by = (s: TensorDiff['status']) => d.tensors.filter((t) => t.status === s).length;
  const added = by('added'), removed = by('removed'), reshaped = by('reshaped') + by('retyped');
  return { changed: by('changed'), added, removed, reshaped, structural: added + removed + reshaped, unchanged: by('unchanged') };
}

/** The tensor rows: status, name, shape, changed fraction, norms, cosine, max |Δ| and kind. */
export function tensorRows(list: TensorDiff[]): string[][] {
  const head = ['st', 'tensor', 'shape', 'changed', '||Δ||', '||Δ||/||W||', 'cos', 'max|Δ|', 'kind'];
  const rows = list.map((t) => {
    const numbers = t.elements > 0 && t.numeric;
    const numeric = t.elements > 0;
    const kind = t.status === 'added' || t.status === 'removed' ? t.status : t.status === 'reshaped' || (t.status === 'retyped' && !numbers) ? 'shape/dtype' : t.kind;
    return [
      STATUS_MARK[t.status],
      t.name,
      shapeText(t.shape),
      numeric ? percent(t.changedFraction) : '',
      numbers ? sci(t.normDelta) : '',
      numbers ? sci(t.relChange) : '',
      numbers ? cosineText(t.cosine) : '',
      numbers ? sci(t.maxAbsDelta) : '',
      `${kind}${t.detail ? ' ' + t.detail : ''}`,
    ];
  });
  return [head, ...rows];
}

/** Aligns columns (right-aligns the numeric ones). */
export function alignColumns(rows: string[][], right: number[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, k) => (widths[k] = Math.max(widths[k] ?? 0, [...c].length)));
  return rows.map((r) => r.map((c, k) => {
    const pad = widths[k]! - [...c].length;
    if (k === r.length - 1) return c;
    return right.includes(k) ? ' '.repeat(pad) + c : c + ' '.repeat(pad);
  }).join('  ').trimEnd());
}

export function renderText(d: CheckpointDiff, opts: TextOptions): string[] {
  const ind = opts.indent ?? '  ';
  const out = [summaryLine(d)];
  if (d.kind === 'opaque') return out;
  const listed = d.tensors.filter((t) => t.status !== 'unchanged');
  const shown = opts.top > 0 ? listed.slice(0, opts.top) : listed;
  if (shown.length) out.push(...alignColumns(tensorRows(shown), [3, 4, 5, 6, 7]).map((l) => ind + l));
  if (shown.length < listed.length) out.push(`${ind}... ${listed.length - shown.length} more changed tensor(s); \`git tensor diff --top 0\` lists all`);
  const c = counts(d);
  if (c.unchanged && d.status === 'modified') out.push(`${ind}${c.unchanged} tensor(s) unchanged`);

  const modules = d.modules.filter((m) => m.changed > 0);
  if (modules.length > 1 || (modules.length === 1 && modules[0]!.tensors > 1)) {
    const limit = opts.top > 0 ? Math.min(opts.top, 10) : modules.length;
    out.push(`${ind}modules by ||Δ||/||W|| (over changed tensors):`);
    const rows = modules.slice(0, limit).map((m) => [m.name, `${m.changed}/${m.tensors} changed`, sci(m.relChange), `max ${sci(m.maxRelChange)}`]);
    out.push(...alignColumns(rows, [2]).map((l) => ind + '  ' + l));
    if (limit < modules.length) out.push(`${ind}  ... ${modules.length - limit} more module(s)`);
  }
  for (const t of d.tokens) {
    const names = t.top.map((m) => `${JSON.stringify(m.text)} ${sci(m.change)}`).join(', ');
    out.push(`${ind}tokens: ${t.tensor} rows moved most: ${names || '(none)'}` + (t.rowsChanged > t.top.length ? ` (${t.rowsChanged} rows changed)` : ''));
  }
  for (const [k, o, n] of d.metadata) out.push(`${ind}metadata ${JSON.stringify(k)}: ${o === null ? '(absent)' : JSON.stringify(o)} -> ${n === null ? '(absent)' : JSON.stringify(n)}`);
  if (d.adapter) out.push(...adapterLines(d.adapter, ind));
  if (d.shards) out.push(...shardLines(d.shards, new Set(d.tensors.filter((t) => t.status === 'unchanged').map((t) => t.name)), ind));
  for (const note of d.notes) out.push(`${ind}note: ${note}`);
  return out;
}

/** The adapter section: ΔW = B·A·alpha/r per module, largest ‖ΔW‖/‖W‖ (or ‖ΔW‖) first. */
export function adapterLines(a: NonNullable<CheckpointDiff['adapter']>, ind: string): string[] {
  const out = [`${ind}LoRA adapter: ΔW = B·A·${a.scale === a.alpha / a.r ? 'alpha/r' : 'alpha/√r'} (r ${a.r}, alpha ${a.alpha}, scale ${+a.scale.toPrecision(4)}), ${a.modules.length} module(s)` +
    (a.base ? `, against base ${a.base}` : ', base not found (set `[adapter] base = <path>` in .gittensor)')];
  const rows = [['module', 'rank', '||ΔW||', '||ΔW||/||W||'], ...a.modules.map((m) => [m.module, String(m.rank), sci(m.normDelta), m.relChange === null ? '-' : sci(m.relChange)])];
  out.push(...alignColumns(rows, [1, 2, 3]).map((l) => `${ind}  ${l}`));
  if (a.note) out.push(`${ind}  note: ${a.note}`);
  return out;
}
