// Owns the per-tensor statistics of a diff that are pure arithmetic on data already in memory: the
// derived metrics of a kernel DiffStats pass, the row/column structure of a change mask, exact per-row
// norms of Δ, the Δ histogram, and how tensor names group into modules and layers. The hot loops that
// touch every element twice (norms, masks) run in the kernels (kernels/index.ts); what is here either
// touches only the mask bits or runs when a report asks for it (token rows, the HTML histogram).
// Sums are accumulated in f64 throughout.

import type { DiffStats } from '../kernels/index.js';
import type { DeltaHistogram, RescaleFit, SparseStructure } from './types.js';

export interface DerivedStats {
  normOld: number;
  normNew: number;
  normDelta: number;
  relChange: number | null;
  cosine: number | null;
  maxAbsDelta: number;
  changedFraction: number;
  rescale: RescaleFit | null;
}

/** The metrics of docs/diff.md from one DiffStats pass over `elements` elements (a = old, b = new). */
export function deriveStats(s: DiffStats, elements: number): DerivedStats {
  const normOld = Math.sqrt(s.sumA2);
  const normNew = Math.sqrt(s.sumB2);
  const normDelta = Math.sqrt(s.sumD2);
  const relChange = normOld > 0 ? normDelta / normOld : s.sumD2 === 0 ? 0 : null;
  const cosine = normOld > 0 && normNew > 0 ? clamp(s.sumAB / (normOld * normNew), -1, 1) : null;
  return {
    normOld, normNew, normDelta, relChange, cosine,
    maxAbsDelta: s.maxAbsDiff,
    changedFraction: elements > 0 ? s.changed / elements : 0,
    rescale: rescaleFit(s),
  };
}

/**
 * Least-squares fit of new ≈ c · old. `explained` is cos²(Δ, old): the share of ||Δ||² that a pure
 * rescaling accounts for (1 for an exact rescale, ≈ 0 for an update unrelated to the weights).
 */
export function rescaleFit(s: DiffStats): RescaleFit | null {
  if (!(s.sumA2 > 0) || !(s.sumD2 > 0)) return null;
  const dotDeltaOld = s.sumAB - s.sumA2; // <new - old, old>
  return { factor: s.sumAB / s.sumA2, explained: clamp((dotDeltaOld * dotDeltaOld) / (s.sumA2 * s.sumD2), 0, 1) };
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/** A tensor seen as a matrix: the first dimension by the product of the others (1-D: one row). */
export function matrixShape(shape: readonly number[]): { rows: number; cols: number } {
  if (shape.length === 0) return { rows: 1, cols: 1 };
  if (shape.length === 1) return { rows: 1, cols: shape[0]! };
  return { rows: shape[0]!, cols: shape.slice(1).reduce((a, b) => a * b, 1) };
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Rows and columns touched by a change mask (element j at byte j >> 3, bit j & 7), and their counts. */
export interface MaskProfile {
  rowCounts: Uint32Array;
  colCounts: Uint32Array;
}

/** `into`, `firstRow`: adds the counts of a mask of rows [firstRow, firstRow + rows) of a larger matrix. */
export function maskProfile(mask: Uint8Array, rows: number, cols: number, into?: MaskProfile, firstRow = 0): MaskProfile {
  const rowCounts = into?.rowCounts ?? new Uint32Array(rows);
  const colCounts = into?.colCounts ?? new Uint32Array(cols);
  const n = rows * cols;
  for (let byte = 0; byte < mask.length; byte++) {
    let bits = mask[byte]!;
    if (bits === 0) continue;
    const base = byte << 3;
    while (bits !== 0) {
      const bit = 31 - Math.clz32(bits & -bits);
      bits &= bits - 1;
      const j = base + bit;
      if (j >= n) break;
      const r = Math.floor(j / cols);
      rowCounts[firstRow + r]!++;
      colCounts[j - r * cols]!++;
    }
  }
  return { rowCounts, colCounts };
}

/** A structure is "whole rows" when the touched rows are at most this share of all rows... */
export const STRUCTURE_MAX_TOUCHED = 0.5;
/** ...and at least this share of their elements changed (bf16 rounding leaves some bits equal). */
export const STRUCTURE_MIN_FILL = 0.5;

export function sparseStructure(profile: MaskProfile, changed: number): SparseStructure {
  const rows = profile.rowCounts.length, cols = profile.colCounts.length;
  const rowsChanged = countNonzero(profile.rowCounts);
  const colsChanged = countNonzero(profile.colCounts);
  const isWhole = (touched: number, total: number, span: number) =>
    total > 1 && touched > 0 && touched <= STRUCTURE_MAX_TOUCHED * total && changed >= STRUCTURE_MIN_FILL * touched * span;
  // Rows first: a token's embedding row is the common case. A change that is both (a block) counts as rows.
  const pattern = isWhole(rowsChanged, rows, cols) ? 'rows' : isWhole(colsChanged, cols, rows) ? 'cols' : 'scattered';
  return { pattern, rowsChanged, rows, colsChanged, cols };
}

function countNonzero(a: Uint32Array): number {
  let k = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) k++;
  return k;
}

/** Indices of the nonzero entries. */
export function nonzeroIndices(a: Uint32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) out.push(i);
  return out;
}

export type FloatValues = Float32Array | Float64Array;

/**
 * Adds, for rows [0, rows) of two row-major blocks, Σ (new - old)² to `deltaOut[rowOffset + r]` and
 * Σ old² to `oldOut[rowOffset + r]`, over finite elements (as the kernels count them).
 */
export function accumulateRowNorms(
  oldV: FloatValues, newV: FloatValues, rows: number, cols: number, rowOffset: number, deltaOut: Float64Array, oldOut: Float64Array,
): void {
  for (let r = 0; r < rows; r++) {
    let sd = 0, so = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) {
      const x = oldV[base + c]!, y = newV[base + c]!;
      const d = y - x;
      // d - d is 0 for finite x and y and NaN otherwise: one test skips NaN and Inf on either side.
      if (d - d === 0) {
        sd += d * d;
        so += x * x;
      }
    }
    deltaOut[rowOffset + r]! += sd;
    oldOut[rowOffset + r]! += so;
  }
}

/** Half-octave buckets from 2^-64 to 2^64 cover every |Δ| that matters in a checkpoint. */
const HIST_MIN_EXP = -64;
const HIST_BUCKETS = 2 * 128;
const scratch = new Float64Array(1);
const scratchWords = new Uint32Array(scratch.buffer);

export function emptyHistogram(): DeltaHistogram {
  return { minExp: HIST_MIN_EXP, positive: new Array<number>(HIST_BUCKETS).fill(0), negative: new Array<number>(HIST_BUCKETS).fill(0) };
}

/**
 * Adds the Δ = new - old of every changed finite element to the histogram. The bucket comes from the
 * f64 exponent and the top mantissa bit (no logarithm per element).
 */
export function accumulateHistogram(h: DeltaHistogram, oldV: FloatValues, newV: FloatValues): void {
  const pos = h.positive, neg = h.negative;
  const n = oldV.length;
  for (let j = 0; j < n; j++) {
    const d = newV[j]! - oldV[j]!;
    if (d === 0 || d - d !== 0) continue;
    scratch[0] = d;
    const hi = scratchWords[1]!;
    const exp = ((hi >>> 20) & 0x7ff) - 1023;
    const half = (hi >>> 19) & 1;
    let k = 2 * (exp - HIST_MIN_EXP) + half;
    if (k < 0) k = 0;
    else if (k >= HIST_BUCKETS) k = HIST_BUCKETS - 1;
    if (d > 0) pos[k]!++;
    else neg[k]!++;
  }
}

/** Drops empty buckets at both ends (keeps minExp consistent). */
export function trimHistogram(h: DeltaHistogram): DeltaHistogram {
  const used = (k: number) => h.positive[k]! + h.negative[k]! > 0;
  let lo = 0, hi = h.positive.length - 1;
  while (lo <= hi && !used(lo)) lo++;
  while (hi >= lo && !used(hi)) hi--;
  if (lo > hi) return { minExp: 0, positive: [], negative: [] };
  return { minExp: h.minExp + lo / 2, positive: h.positive.slice(lo, hi + 1), negative: h.negative.slice(lo, hi + 1) };
}

export function mergeHistogram(into: DeltaHistogram, from: DeltaHistogram): void {
  for (let k = 0; k < from.positive.length; k++) {
    into.positive[k]! += from.positive[k]!;
    into.negative[k]! += from.negative[k]!;
  }
}

// ---- names ---------------------------------------------------------------------------------------

const LAYER = /^(.*?\.(\d+))\.(.+)$/;

/**
 * The module a tensor belongs to, for per-module totals: inside a numbered block, the block plus the
 * next name part (`model.layers.7.self_attn.q_proj.weight` -> `model.layers.7.self_attn`,
 * `model.layers.7.input_layernorm.weight` -> `model.layers.7.input_layernorm`); elsewhere the name
 * without its last part (`model.embed_tokens.weight` -> `model.embed_tokens`).
 */
export function moduleOf(name: string): string {
  const m = LAYER.exec(name);
  if (m) {
    const rest = m[3]!.split('.');
    return rest.length > 1 ? `${m[1]}.${rest[0]}` : m[1]!;
  }
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

/**
 * Position in the layer x module heatmap: the first numbered part is the layer, the rest without the
 * parameter name is the column (`model.layers.7.self_attn.q_proj.weight` -> 7, `self_attn.q_proj`).
 * Null for tensors outside numbered blocks.
 */
export function layerCell(name: string): { prefix: string; layer: number; column: string } | null {
  const m = LAYER.exec(name);
  if (!m) return null;
  const rest = m[3]!.split('.');
  const column = rest.length > 1 ? rest.slice(0, -1).join('.') : rest[0]!;
  return { prefix: m[1]!.slice(0, m[1]!.length - m[2]!.length - 1), layer: Number(m[2]), column };
}
