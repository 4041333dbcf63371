// Owns the merge guard's judgement, pure (no model, no git): which probes are protected, how far each may
// drop, whether a candidate version holds them against a reference version (ours), the report that says
// so, how tensors group into modules, and the search for the fewest module groups whose revert restores
// every protected probe. src/commands/guard.ts runs the models; docs/merge.md "Merge guard" is the spec.

import { createHash } from 'node:crypto';
import type { Probe, ProbeSet } from './probes.js';
import type { ProbeResult, VersionResults } from './result.js';
import { valueOf } from './result.js';

/** Allowed drop of a protected probe without `max_drop`, in nats (docs/merge.md). */
export const DEFAULT_MAX_DROP = 1.0;

/** The protected probes alone, as a set with its own cache identity (the file's hash, marked). */
export function protectedSubset(set: ProbeSet): ProbeSet | null {
  const probes = set.probes.filter((p) => p.guard.protect === true);
  if (!probes.length) return null;
  return { source: set.source, hash: createHash('sha256').update(`protected ${set.hash}`).digest('hex'), probes };
}

/**
 * The number the guard compares, higher is better, in nats: a prompt's first target's log-probability
 * (the top token's when it has no target), a choices probe's margin of the true statement over the best
 * other one, a text's mean log-probability per token (minus its loss).
 */
export function guardValue(r: ProbeResult): number | null {
  if (r.kind === 'text') return -r.loss;
  return valueOf(r);
}

export interface GuardRow {
  id: string;
  before: number;
  after: number;
  /** before - after: positive when the probe got worse. */
  drop: number;
  allowed: number;
  regressed: boolean;
}

export interface GuardCheck {
  rows: GuardRow[];
  regressed: GuardRow[];
  /** The largest drop over the protected probes (0 or negative when none got worse). */
  worstDrop: number;
}

/** Compares the protected probes of `after` with `before` (ours). */
export function checkProtected(probes: Probe[], before: VersionResults, after: VersionResults): GuardCheck {
  const b = new Map(before.probes.map((r) => [r.id, r]));
  const a = new Map(after.probes.map((r) => [r.id, r]));
  const rows: GuardRow[] = [];
  for (const p of probes) {
    if (p.guard.protect !== true) continue;
    const rb = b.get(p.id), ra = a.get(p.id);
    const vb = rb ? guardValue(rb) : null, va = ra ? guardValue(ra) : null;
    if (vb === null || va === null) continue;
    const allowed = p.guard.maxDrop ?? DEFAULT_MAX_DROP;
    const drop = vb - va;
    rows.push({ id: p.id, before: vb, after: va, drop, allowed, regressed: drop > allowed });
  }
  const regressed = rows.filter((r) => r.regressed);
  return { rows, regressed, worstDrop: rows.reduce((m, r) => Math.max(m, r.drop), -Infinity) };
}

/** Mean guard value of the probes that are not protected (null when there are none): what auto ranks by. */
export function othersMean(probes: Probe[], results: VersionResults): number | null {
  const unprotected = new Set(probes.filter((p) => p.guard.protect !== true).map((p) => p.id));
  const values = results.probes.filter((r) => unprotected.has(r.id)).map(guardValue).filter((v): v is number => v !== null);
  return values.length ? values.reduce((s, v) => s + v, 0) / values.length : null;
}

const fmt = (x: number) => (x >= 0 ? ' ' : '') + x.toFixed(3);

/** The regressed probes as a table: probe, before (ours), after (merged), drop, allowed. */
export function renderRegressions(check: GuardCheck, labels: { before: string; after: string } = { before: 'ours', after: 'merged' }, indent = '  '): string[] {
  const rows = [['probe', labels.before, labels.after, 'drop', 'allowed'], ...check.regressed.map((r) => [r.id, fmt(r.before), fmt(r.after), fmt(r.drop), r.allowed.toFixed(3)])];
  const widths = rows[0]!.map((_, k) => Math.max(...rows.map((r) => r[k]!.length)));
  return rows.map((r) => indent + r.map((c, k) => (k === 0 ? c.padEnd(widths[k]!) : c.padStart(widths[k]!))).join('  '));
}

/**
 * The module a tensor belongs to: its name without the parameter's own name (`weight`, `bias`, ...), as
 * PyTorch names parameters: `bert.encoder.layer.1.intermediate.dense.weight` ->
 * `bert.encoder.layer.1.intermediate.dense`. A name without a dot is its own module.
 */
export function moduleOf(tensor: string): string {
  const dot = tensor.lastIndexOf('.');
  return dot <= 0 ? tensor : tensor.slice(0, dot);
}

/**
 * A smallest subset of `items` for which `holds` is true, found with QuickXplain (Junker 2004): about
 * k·log2(n/k) calls of `holds` for an answer of k items out of n, assuming that adding items never breaks
 * it (reverting more of the merge never makes a probe worse than reverting less). The caller knows that
 * `holds([])` is false (the regression it explains); returns null when even the whole set does not hold.
 */
export async function minimalSubset<T>(items: T[], holds: (subset: T[]) => Promise<boolean>): Promise<T[] | null> {
  if (!items.length || !(await holds(items))) return null;
  const qx = async (background: T[], added: boolean, candidates: T[]): Promise<T[]> => {
    if (added && (await holds(background))) return [];
    if (candidates.length === 1) return candidates;
    const half = Math.ceil(candidates.length / 2);
    const c1 = candidates.slice(0, half), c2 = candidates.slice(half);
    const s2 = await qx([...background, ...c1], c1.length > 0, c2);
    const s1 = await qx([...background, ...s2], s2.length > 0, c1);
    return [...s1, ...s2];
  };
  return qx([], false, items);
}
