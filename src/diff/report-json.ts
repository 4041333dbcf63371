// Owns the JSON report of `git tensor diff --json` (schema version 1, documented in docs/diff.md).
// Keys are snake_case; numbers that do not exist (no old norm, non-numeric dtype) are null, never NaN.

import { compared } from './analyze.js';
import type { CheckpointDiff, TensorDiff } from './types.js';

export const DIFF_JSON_VERSION = 1;

export interface JsonReportInput {
  /** What the old and new sides are: a revision, `index`, `worktree`, or a file. */
  old: string;
  new: string;
  files: CheckpointDiff[];
}

const num = (x: number | null | undefined): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : x);

export function tensorJson(t: TensorDiff) {
  const values = compared(t) || (t.status === 'changed' && t.numeric);
  return {
    name: t.name,
    status: t.status,
    dtype: t.dtype,
    shape: t.shape,
    ...(t.oldDtype !== undefined ? { old_dtype: t.oldDtype } : {}),
    ...(t.oldShape !== undefined ? { old_shape: t.oldShape } : {}),
    elements: t.elements,
    changed_elements: t.changedElements,
    changed_fraction: t.elements > 0 ? t.changedFraction : null,
    norm_old: values ? num(t.normOld) : null,
    norm_new: values ? num(t.normNew) : null,
    norm_delta: values ? num(t.normDelta) : null,
    rel_change: values ? num(t.relChange) : t.status === 'unchanged' ? 0 : null,
    cosine: values ? num(t.cosine) : null,
    max_abs_delta: values ? num(t.maxAbsDelta) : null,
    sign_flips: values ? t.signFlips : null,
    non_finite: values ? t.nonFinite : null,
    kind: t.kind,
    detail: t.detail,
    rank: t.rank
      ? {
        effective: t.rank.effective, stable: num(t.rank.stable), singular_values: t.rank.singularValues.map((v) => num(v)),
        cap: t.rank.cap, exact: t.rank.exact, sampled_rows: t.rank.sampledRows, sampled_cols: t.rank.sampledCols,
      }
      : null,
    structure: t.structure
      ? { pattern: t.structure.pattern, rows_changed: t.structure.rowsChanged, rows: t.structure.rows, cols_changed: t.structure.colsChanged, cols: t.structure.cols }
      : null,
    rescale: t.rescale ? { factor: num(t.rescale.factor), explained: num(t.rescale.explained) } : null,
  };
}

export function fileJson(d: CheckpointDiff) {
  const by = (s: TensorDiff['status'] | TensorDiff['status'][]) => d.tensors.filter((t) => ([] as string[]).concat(s).includes(t.status)).length;
  const rels = d.tensors.filter(compared).map((t) => t.relChange).filter((r): r is number => r !== null);
  return {
    path: d.path,
    status: d.status,
    format: d.kind,
    old: d.old ? { size: d.old.size, tensors: d.old.tensors, id: d.old.id ?? null } : null,
    new: d.new ? { size: d.new.size, tensors: d.new.tensors, id: d.new.id ?? null } : null,
    summary: {
      tensors: d.tensors.length,
      changed: by('changed'),
      added: by('added'),
      removed: by('removed'),
      reshaped: by(['reshaped', 'retyped']),
      unchanged: by('unchanged'),
      rel_change: num(d.totals.relChange),
      max_rel_change: rels.length ? Math.max(...rels) : null,
    },
    tensors: d.tensors.map(tensorJson),
    modules: d.modules.map((m) => ({
      name: m.name, tensors: m.tensors, changed: m.changed, norm_delta: num(m.normDelta), norm_old: num(m.normOld),
      rel_change: num(m.relChange), max_rel_change: num(m.maxRelChange),
    })),
    tokens: d.tokens.map((t) => ({
      tensor: t.tensor, tokenizer: t.tokenizer, rows: t.rows, vocab_size: t.vocabSize, rows_changed: t.rowsChanged,
      top: t.top.map((m) => ({ id: m.id, token: m.token, text: m.text, change: num(m.change), rel_change: num(m.relChange) })),
    })),
    metadata: d.metadata.map(([key, o, n]) => ({ key, old: o, new: n })),
    notes: d.notes,
    ...(d.adapter ? {
      adapter: {
        r: d.adapter.r, alpha: d.adapter.alpha, scale: d.adapter.scale, base: d.adapter.base, note: d.adapter.note ?? null,
        modules: d.adapter.modules.map((m) => ({ module: m.module, base_tensor: m.baseTensor, rank: m.rank, norm_delta: num(m.normDelta), norm_base: num(m.normBase), rel_change: num(m.relChange) })),
      },
    } : {}),
    ...(d.shards ? {
      shards: {
        index: d.shards.index, old: d.shards.old, new: d.shards.new, focus: d.shards.focus ?? null, moved: d.shards.moved,
        problems: d.shards.problems.map((p) => ({ severity: p.severity, code: p.code, message: p.message, tensor: p.tensor ?? null, shard: p.shard ?? null })),
      },
    } : {}),
  };
}

export function renderJson(input: JsonReportInput) {
  return { version: DIFF_JSON_VERSION, old: input.old, new: input.new, files: input.files.map(fileJson) };
}
