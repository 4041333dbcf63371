// Owns the data model of a checkpoint diff: what the analysis (analyze.ts) produces and every report
// (text, JSON, HTML) reads. Plain data, no behaviour; the JSON schema in docs/diff.md mirrors it.

import type { IndexProblem } from '../format/shard-index.js';

/** How a tensor differs between the two versions. */
export type TensorStatus = 'added' | 'removed' | 'changed' | 'unchanged' | 'reshaped' | 'retyped';

/** The change kinds of docs/diff.md, decided in kinds.ts from the evidence below. */
export type ChangeKind = 'unchanged' | 'sparse' | 'low-rank' | 'rescale' | 'sign-flip' | 'dense' | 'structural';

export interface RankEstimate {
  /** Smallest k whose top-k singular values hold RANK_ENERGY of the delta's energy (capped at `cap`). */
  effective: number;
  /** ||Δ||_F² / σ₁²: a smooth lower bound on the rank, never more than it. */
  stable: number;
  /** Largest singular values found, descending (scaled estimates when `exact` is false). */
  singularValues: number[];
  /** The largest rank this estimate can resolve (rows/columns analysed). */
  cap: number;
  /** True when every nonzero row and column took part (no sampling): the spectrum is exact. */
  exact: boolean;
  /** Rows and columns of Δ that the spectrum was computed from. */
  sampledRows: number;
  sampledCols: number;
}

export interface SparseStructure {
  /** 'rows': the change sits in whole rows; 'cols': in whole columns; 'scattered': neither. */
  pattern: 'rows' | 'cols' | 'scattered';
  /** Rows (first dimension) with at least one changed element, of `rows`. */
  rowsChanged: number;
  rows: number;
  /** Columns (product of the other dimensions) with at least one changed element, of `cols`. */
  colsChanged: number;
  cols: number;
}

export interface RescaleFit {
  /** c in new ≈ c · old (least squares). */
  factor: number;
  /** Share of ||Δ||² explained by the fit Δ ≈ (c - 1) · old, in [0, 1]. */
  explained: number;
}

export interface TensorDiff {
  name: string;
  status: TensorStatus;
  /** dtype/shape of the new version (of the old one when removed). */
  dtype: string;
  shape: number[];
  oldDtype?: string;
  oldShape?: number[];
  /** Elements compared (0 when the versions cannot be compared element by element). */
  elements: number;
  changedElements: number;
  changedFraction: number;
  normOld: number;
  normNew: number;
  normDelta: number;
  /** ||Δ|| / ||old||; null when old is all zeros (or the values are not comparable). */
  relChange: number | null;
  /** cos(old, new); null when either is all zeros. */
  cosine: number | null;
  maxAbsDelta: number;
  signFlips: number;
  /** Elements that are NaN or ±Inf in old / new (excluded from the norms). */
  nonFinite: { old: number; new: number };
  kind: ChangeKind;
  /** One-line human evidence for `kind`, e.g. "r=4, stable 3.2" or "rows 3/64". */
  detail: string;
  rank?: RankEstimate;
  structure?: SparseStructure;
  rescale?: RescaleFit;
  /** False for dtypes without numeric values (F8, F4, ...): only bit changes are counted. */
  numeric: boolean;
}

export interface ModuleTotal {
  /** e.g. `model.layers.7.self_attn`. */
  name: string;
  tensors: number;
  changed: number;
  normDelta: number;
  normOld: number;
  /** ||Δ|| / ||old|| over the module's compared tensors; null when old is all zeros. */
  relChange: number | null;
  maxRelChange: number | null;
}

export interface TokenMove {
  id: number;
  /** The vocabulary entry as tokenizer.json spells it (e.g. "Ġballot"). */
  token: string;
  /** The text the token stands for (byte-level and ▁ markers decoded). */
  text: string;
  /** ||Δ row||. */
  change: number;
  /** ||Δ row|| / ||old row||; null for an all-zero old row. */
  relChange: number | null;
}

export interface TokenView {
  tensor: string;
  /** Where the vocabulary came from (a path, `<rev>:<path>` or the --tokenizer file). */
  tokenizer: string;
  rows: number;
  vocabSize: number;
  rowsChanged: number;
  top: TokenMove[];
}

/** Log2-magnitude histogram of the changed elements' Δ, split by sign. */
export interface DeltaHistogram {
  /** Bucket k holds |Δ| in [2^(minExp + k/2), 2^(minExp + (k+1)/2)): half-octave buckets. */
  minExp: number;
  positive: number[];
  negative: number[];
}

export interface SideInfo {
  size: number;
  tensors: number;
  /** Short content id of the version (pointer blob or header), for display. */
  id?: string;
}

export interface CheckpointDiff {
  path: string;
  /** 'modified' unless one side is absent. */
  status: 'modified' | 'added' | 'deleted';
  kind: 'safetensors' | 'opaque';
  old: SideInfo | null;
  new: SideInfo | null;
  /** Every tensor of either side, in the report order (structural first, then by relative change). */
  tensors: TensorDiff[];
  modules: ModuleTotal[];
  tokens: TokenView[];
  /** Σ||Δ||² and Σ||old||² over compared tensors. */
  totals: { normDelta: number; normOld: number; relChange: number | null };
  histogram?: DeltaHistogram;
  /** Metadata keys that differ: [key, old, new] (null = absent). */
  metadata: [string, string | null, string | null][];
  /** Notes for the reader (tokenizer not found, objects missing, ...). */
  notes: string[];
  /** A PEFT LoRA adapter file explained against its base (docs/adapters.md). */
  adapter?: AdapterExplanation;
  /** A sharded checkpoint reported as one model (`path` is its index), or one shard of it (git's diff driver). */
  shards?: ShardSummary;
}

/** How a sharded model's shards changed, and what is wrong with its index (docs/diff.md, "Sharded checkpoints"). */
export interface ShardSummary {
  /** Repository-relative path of the model's `*.safetensors.index.json`. */
  index: string;
  /** Shards on each side (1 for the single-file form); null where the model is absent or its index unreadable. */
  old: number | null;
  new: number | null;
  /** The shard file this report covers (git's diff driver runs once per file); absent for the whole model. */
  focus?: string;
  /** Tensors held by another shard than before (with the same or changed values: the table says which). */
  moved: { tensor: string; from: string; to: string }[];
  /** Checks of the new side's index against its shards. */
  problems: IndexProblem[];
  /** The next step when there are problems. */
  hint?: string;
}

/** ΔW = B·A·scale per adapted module of a LoRA adapter, with ‖W‖ from its base when the base was found. */
export interface AdapterExplanation {
  r: number;
  alpha: number;
  scale: number;
  /** The base checkpoint the norms are relative to (a path, `<rev>:<path>`), null when not found. */
  base: string | null;
  modules: { module: string; baseTensor: string | null; rank: number; normDelta: number; normBase: number | null; relChange: number | null }[];
  /** Why the base is missing, or what could not be explained. */
  note?: string;
}
