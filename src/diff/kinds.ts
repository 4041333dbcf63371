// Owns the change kinds: the thresholds and the order in which a tensor's evidence (kernel statistics,
// change-mask structure, rank sketch) decides what kind of change it is. docs/diff.md documents the same
// table; change both together.

import type { DiffStats } from '../kernels/index.js';
import type { ChangeKind, RankEstimate, RescaleFit, SparseStructure } from './types.js';

export const KIND_THRESHOLDS = {
  /** sign-flip: at least this share of the changed elements changed sign... */
  signFlipShare: 0.5,
  /** ...and ||new||² is within this relative distance of ||old||² (magnitudes kept). */
  signFlipNormTolerance: 0.01,
  /** rescale: new ≈ c·old explains at least this share of ||Δ||² (cos²(Δ, old)). */
  rescaleExplained: 0.99,
  /** sparse (scattered): at most this share of the elements changed. */
  sparseMaxDensity: 0.1,
  /** low-rank: effective rank at most this share of min(rows, cols)... */
  lowRankMaxShare: 0.25,
  /** ...and at most this many directions. */
  lowRankMax: 64,
} as const;

export interface KindEvidence {
  elements: number;
  stats: DiffStats;
  rescale: RescaleFit | null;
  structure?: SparseStructure;
  rank?: RankEstimate;
  /** Matrix view of the tensor (rows x cols), for the low-rank bound. */
  rows: number;
  cols: number;
}

export interface KindDecision {
  kind: ChangeKind;
  detail: string;
}

export function lowRankLimit(rows: number, cols: number): number {
  return Math.min(KIND_THRESHOLDS.lowRankMax, Math.floor(KIND_THRESHOLDS.lowRankMaxShare * Math.min(rows, cols)));
}

/** First match wins: unchanged, sign-flip, rescale, sparse rows/cols, low-rank, sparse, dense. */
export function classifyChange(e: KindEvidence): KindDecision {
  const T = KIND_THRESHOLDS;
  const s = e.stats;
  if (s.changed === 0) return { kind: 'unchanged', detail: 'bits equal' };
  const density = e.elements > 0 ? s.changed / e.elements : 1;

  const flipShare = s.signFlips / s.changed;
  if (flipShare >= T.signFlipShare && s.sumA2 > 0 && Math.abs(s.sumB2 - s.sumA2) <= T.signFlipNormTolerance * s.sumA2) {
    return { kind: 'sign-flip', detail: `${pct(flipShare)} of changed elements flipped sign, ${s.signFlips} in all` };
  }
  if (e.rescale && e.rescale.explained >= T.rescaleExplained) {
    return { kind: 'rescale', detail: `x${fixed(e.rescale.factor)} (fit ${pct(e.rescale.explained)})` };
  }
  const st = e.structure;
  if (st && st.pattern === 'rows') return { kind: 'sparse', detail: `rows ${st.rowsChanged}/${st.rows}, ${pct(density)} of elements` };
  if (st && st.pattern === 'cols') return { kind: 'sparse', detail: `cols ${st.colsChanged}/${st.cols}, ${pct(density)} of elements` };
  const r = e.rank;
  if (r && r.effective > 0 && r.effective < r.cap && r.effective <= lowRankLimit(e.rows, e.cols)) {
    return { kind: 'low-rank', detail: `r${r.exact ? '=' : '≈'}${r.effective} (stable ${r.stable.toFixed(1)})` };
  }
  if (density <= T.sparseMaxDensity) return { kind: 'sparse', detail: `${pct(density)} of elements, scattered` };
  if (r && r.effective > 0) {
    const bound = r.effective >= r.cap ? `r≥${r.cap}` : `r${r.exact ? '=' : '≈'}${r.effective}`;
    return { kind: 'dense', detail: `${bound} (stable ${r.stable.toFixed(1)})` };
  }
  return { kind: 'dense', detail: `${pct(density)} of elements` };
}

function pct(x: number): string {
  const p = 100 * x;
  if (p === 0 || p >= 10) return `${p.toFixed(0)}%`;
  if (p >= 1) return `${p.toFixed(1)}%`;
  return `${p.toPrecision(2)}%`;
}

function fixed(x: number): string {
  return Math.abs(x - 1) < 1e-3 ? x.toFixed(6) : x.toFixed(4);
}
