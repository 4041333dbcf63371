// Owns the rank analysis of a weight update Δ = new - old: how many directions the change really uses.
//
// A full SVD, or a randomized range finder over the whole matrix, costs several passes over Δ per
// vector (each kernel matvec reads the whole matrix), which would make `git diff` many times slower
// than reading the checkpoint. Instead Δ is sketched by length-squared sampling (Frieze, Kannan and
// Vempala 2004; Drineas, Kannan and Mahoney 2006):
//   1. rows: every row when there are at most SAMPLE_ROWS nonzero rows (exact); otherwise SAMPLE_ROWS
//      rows drawn with probability proportional to their energy ||Δ_i||² (known per block of rows
//      from the kernel statistics pass), each scaled by 1/sqrt(s p_i), so that SᵀS estimates ΔᵀΔ;
//   2. columns of that s x n sample: all of them when n <= SAMPLE_COLS, otherwise SAMPLE_COLS drawn
//      the same way by column energy;
//   3. the Gram matrix of the small sample (by the kernels' f64 matvec, one product per sampled row)
//      and its eigenvalues (Householder tridiagonalisation + implicit QL): σ_k² of the sample.
// Any set of rows and columns of a rank-r matrix has rank <= r, and generic ones have rank exactly r,
// so a merged rank-r LoRA update shows r nonzero singular values here; a dense update shows a spread
// spectrum that needs most of the sample to hold its energy. The singular values of a sampled sketch
// are estimates (scaled to Δ's), exact when nothing was sampled (`exact`).

import { matvec } from '../kernels/index.js';
import type { RankEstimate } from './types.js';

/** The effective rank is the smallest k whose top-k singular values hold this share of ||Δ||². */
export const RANK_ENERGY = 0.99;
export const SAMPLE_ROWS = 128;
export const SAMPLE_COLS = 256;
/** Singular values kept in a RankEstimate (for reports). */
export const REPORTED_SINGULAR_VALUES = 8;

/** Deterministic PRNG (mulberry32) seeded from a string: the same tensor gets the same sample everywhere. */
export function seededRandom(seed: string): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
  let a = h;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RowSample {
  /** Row indices (may repeat when drawn). */
  rows: number[];
  /** Scale applied to each drawn row. */
  weights: number[];
  /** True when the sample is exactly the nonzero rows, unscaled. */
  exact: boolean;
}

export interface RowSampleOptions {
  rows: number;
  /** Rows known to hold every change (from the change mask), when known. */
  changedRows?: number[];
  /** ||Δ||² of consecutive blocks of `blockRows` rows (the last block may be shorter). */
  blockEnergy?: Float64Array;
  blockRows?: number;
  seed: string;
  size?: number;
}

export function planRowSample(o: RowSampleOptions): RowSample {
  const size = o.size ?? SAMPLE_ROWS;
  const all = (rows: number[]) => ({ rows, weights: rows.map(() => 1), exact: true });
  if (o.changedRows && o.changedRows.length <= size) return all(o.changedRows);
  if (o.rows <= size) return all(Array.from({ length: o.rows }, (_, i) => i));
  const blockRows = o.blockRows ?? o.rows;
  const energy = o.blockEnergy ?? Float64Array.of(1);
  const total = energy.reduce((s, e) => s + e, 0);
  if (!(total > 0)) return { rows: [], weights: [], exact: false };
  const cumulative = new Float64Array(energy.length);
  let run = 0;
  energy.forEach((e, b) => (cumulative[b] = run += e));
  const random = seededRandom(o.seed);
  const rows: number[] = [], weights: number[] = [];
  for (let k = 0; k < size; k++) {
    const u = random() * total;
    let lo = 0, hi = energy.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    const first = lo * blockRows;
    const inBlock = Math.min(blockRows, o.rows - first);
    rows.push(first + Math.min(inBlock - 1, Math.floor(random() * inBlock)));
    const p = energy[lo]! / total / inBlock;
    weights.push(1 / Math.sqrt(size * p));
  }
  return { rows, weights, exact: false };
}

/**
 * The spectrum of an s x n row sample of Δ (row-major f64, rows already scaled). `exactRows` says
 * whether the rows are all of Δ's nonzero rows; columns are sampled here when n > SAMPLE_COLS.
 */
export async function rankOfSample(
  sample: Float64Array, s: number, n: number, opts: { exactRows: boolean; seed: string; totalEnergy?: number; colEnergy?: Float64Array },
): Promise<RankEstimate> {
  let m = sample, cols = n, exact = opts.exactRows;
  if (n > SAMPLE_COLS) {
    const energy = opts.colEnergy ?? columnEnergy(sample, s, n);
    const nonzero: number[] = [];
    for (let c = 0; c < n; c++) if (energy[c]! > 0) nonzero.push(c);
    if (nonzero.length > SAMPLE_COLS) {
      m = sampleColumns(sample, s, n, SAMPLE_COLS, energy, opts.seed + '/cols');
      cols = SAMPLE_COLS;
      exact = false;
    } else {
      m = pickColumns(sample, s, n, nonzero);
      cols = nonzero.length;
    }
  }
  let values = await singularValues(m, s, cols);
  // A sketch's singular values are scaled so that their energies add up to ||Δ||² (when known).
  const sketchEnergy = values.reduce((t, v) => t + v * v, 0);
  if (!exact && opts.totalEnergy !== undefined && sketchEnergy > 0) {
    const k = Math.sqrt(opts.totalEnergy / sketchEnergy);
    values = values.map((v) => v * k);
  }
  return summarizeSpectrum(values, { exact, sampledRows: s, sampledCols: cols });
}

/** Σ_i a_ij² per column j of a rows x cols row-major matrix. */
export function columnEnergy(a: Float64Array, rows: number, cols: number): Float64Array {
  const energy = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let j = 0; j < cols; j++) energy[j] = energy[j]! + a[base + j]! * a[base + j]!;
  }
  return energy;
}

function pickColumns(a: Float64Array, s: number, n: number, cols: number[]): Float64Array {
  const out = new Float64Array(s * cols.length);
  for (let r = 0; r < s; r++) cols.forEach((c, k) => (out[r * cols.length + k] = a[r * n + c]!));
  return out;
}

/** Length-squared column sampling with replacement, columns scaled by 1/sqrt(c p_j). */
function sampleColumns(a: Float64Array, s: number, n: number, c: number, energy: Float64Array, seed: string): Float64Array {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let j = 0; j < n; j++) cumulative[j] = total += energy[j]!;
  const out = new Float64Array(s * c);
  if (!(total > 0)) return out;
  const random = seededRandom(seed);
  for (let k = 0; k < c; k++) {
    const u = random() * total;
    let lo = 0, hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    const scale = 1 / Math.sqrt((c * energy[lo]!) / total);
    for (let r = 0; r < s; r++) out[r * c + k] = a[r * n + lo]! * scale;
  }
  return out;
}

/** Singular values (descending) of a rows x cols row-major f64 matrix, via its smaller Gram matrix. */
export async function singularValues(a: Float64Array, rows: number, cols: number): Promise<number[]> {
  if (rows === 0 || cols === 0) return [];
  // M is d x len with d = min(rows, cols): the Gram matrix M Mᵀ is the small one.
  const d = Math.min(rows, cols), len = Math.max(rows, cols);
  const m = rows <= cols ? a : transpose(a, rows, cols);
  const gram = new Float64Array(d * d);
  const bytes = new Uint8Array(m.buffer, m.byteOffset, m.byteLength);
  // Small products: one thread avoids the pool's start-up cost per call.
  const threads = d * len > 1 << 16 ? undefined : 1;
  for (let j = 0; j < d; j++) {
    const col = await matvec({ matrix: bytes, rows: d, cols: len, dtype: 'F64', x: m.subarray(j * len, (j + 1) * len) }, { threads });
    for (let i = 0; i < d; i++) gram[i * d + j] = col[i]!;
  }
  // Symmetrise: the two triangles come from different products and may differ in the last bit.
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) gram[i * d + j] = gram[j * d + i] = (gram[i * d + j]! + gram[j * d + i]!) / 2;
  return symmetricEigenvalues(gram, d).map((l) => Math.sqrt(Math.max(0, l))).sort((x, y) => y - x);
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

export function summarizeSpectrum(values: number[], info: { exact: boolean; sampledRows: number; sampledCols: number }): RankEstimate {
  const energy = values.reduce((s, v) => s + v * v, 0);
  const cap = Math.min(info.sampledRows, info.sampledCols);
  let effective = 0;
  if (energy > 0) {
    let run = 0;
    for (const v of values) {
      run += v * v;
      effective++;
      if (run >= RANK_ENERGY * energy) break;
    }
  }
  const top = values[0] ?? 0;
  return {
    effective,
    stable: top > 0 ? energy / (top * top) : 0,
    singularValues: values.slice(0, REPORTED_SINGULAR_VALUES),
    cap,
    exact: info.exact,
    sampledRows: info.sampledRows,
    sampledCols: info.sampledCols,
  };
}

/**
 * Eigenvalues of a symmetric n x n matrix (row-major; overwritten): Householder reduction to
 * tridiagonal form, then the implicit QL algorithm (tred2 / tqli in Numerical Recipes, 2nd ed., §11.2-3,
 * eigenvalues only). Unsorted.
 */
export function symmetricEigenvalues(a: Float64Array, n: number): number[] {
  if (n === 0) return [];
  const d = new Float64Array(n), e = new Float64Array(n);
  // Only the lower triangle is read and updated; row i starts at a[i * n].
  for (let i = n - 1; i > 0; i--) {
    const l = i - 1;
    const ri = i * n;
    let h = 0;
    if (l > 0) {
      let scale = 0;
      for (let k = 0; k <= l; k++) scale += Math.abs(a[ri + k]!);
      if (scale === 0) {
        e[i] = a[ri + l]!;
      } else {
        for (let k = 0; k <= l; k++) {
          const v = a[ri + k]! / scale;
          a[ri + k] = v;
          h += v * v;
        }
        let f = a[ri + l]!;
        let g = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
        e[i] = scale * g;
        h -= f * g;
        a[ri + l] = f - g;
        f = 0;
        for (let j = 0; j <= l; j++) {
          const rj = j * n;
          g = 0;
          for (let k = 0; k <= j; k++) g += a[rj + k]! * a[ri + k]!;
          for (let k = j + 1; k <= l; k++) g += a[k * n + j]! * a[ri + k]!;
          const ej = g / h;
          e[j] = ej;
          f += ej * a[ri + j]!;
        }
        const hh = f / (h + h);
        for (let j = 0; j <= l; j++) {
          f = a[ri + j]!;
          g = e[j]! - hh * f;
          e[j] = g;
          const rj = j * n;
          for (let k = 0; k <= j; k++) a[rj + k] = a[rj + k]! - (f * e[k]! + g * a[ri + k]!);
        }
      }
    } else {
      e[i] = a[ri + l]!;
    }
    d[i] = h;
  }
  for (let i = 0; i < n; i++) d[i] = a[i * n + i]!;
  // Implicit QL on the tridiagonal (d, e).
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    let m: number;
    do {
      for (m = l; m < n - 1; m++) {
        const dd = Math.abs(d[m]!) + Math.abs(d[m + 1]!);
        if (Math.abs(e[m]!) <= Number.EPSILON * dd) break;
      }
      if (m !== l) {
        if (iter++ === 100) break; // does not happen for symmetric input; keep what converged
        let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
        let r = Math.hypot(g, 1);
        g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? Math.abs(r) : -Math.abs(r)));
        let s = 1, c = 1, p = 0;
        let i: number;
        let underflow = false;
        for (i = m - 1; i >= l; i--) {
          const f = s * e[i]!;
          const b = c * e[i]!;
          e[i + 1] = r = Math.hypot(f, g);
          if (r === 0) {
            d[i + 1]! -= p;
            e[m] = 0;
            underflow = true;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1]! - p;
          r = (d[i]! - g) * s + 2 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
        }
        if (underflow) continue;
        d[l]! -= p;
        e[l] = g;
        e[m] = 0;
      }
    } while (m !== l);
  }
  return Array.from(d);
}
