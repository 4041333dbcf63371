// The rank sketch: the eigenvalue solver against a Jacobi oracle, exact spectra of small matrices, and
// the sampled path on matrices too large to analyse whole.

import { describe, expect, it } from 'vitest';
import {
  planRowSample, RANK_ENERGY, rankOfSample, SAMPLE_COLS, SAMPLE_ROWS, singularValues, summarizeSpectrum, symmetricEigenvalues,
} from '../../../src/diff/rank.js';
import { gaussian } from '../../helpers/diff-models.js';

/** Cyclic Jacobi: slow, simple, the oracle for the tridiagonal QL solver. */
function jacobiEigenvalues(input: Float64Array, n: number): number[] {
  const a = Float64Array.from(input);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!, akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!, aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => a[i * n + i]!);
}

function randomSymmetric(n: number, seed: string): Float64Array {
  const g = gaussian(seed, n * n);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = g[i * n + j]!;
  return a;
}

/** rows x cols matrix B·A of rank r (Gaussian factors). */
function lowRank(rows: number, cols: number, r: number, seed: string): Float64Array {
  const b = gaussian(`${seed}/b`, rows * r), a = gaussian(`${seed}/a`, r * cols);
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let k = 0; k < r; k++) for (let j = 0; j < cols; j++) out[i * cols + j]! += b[i * r + k]! * a[k * cols + j]!;
  return out;
}

const sorted = (v: number[]) => [...v].sort((x, y) => y - x);

describe('symmetricEigenvalues', () => {
  it.each([1, 2, 3, 7, 32, 65])('matches the Jacobi oracle on a random %i x %i matrix', (n) => {
    const a = randomSymmetric(n, `sym${n}`);
    const got = sorted(symmetricEigenvalues(Float64Array.from(a), n));
    const want = sorted(jacobiEigenvalues(a, n));
    const scale = Math.max(...want.map(Math.abs));
    got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-10 * scale));
  });

  it('returns the diagonal of a diagonal matrix and handles zeros', () => {
    const a = new Float64Array(16);
    [4, 0, -2, 1].forEach((v, i) => (a[i * 4 + i] = v));
    expect(sorted(symmetricEigenvalues(a, 4))).toEqual([4, 1, 0, -2]);
    expect(symmetricEigenvalues(new Float64Array(9), 3)).toEqual([0, 0, 0]);
  });
});

describe('singularValues', () => {
  it('finds exactly r nonzero singular values of a rank-r matrix (either orientation)', async () => {
    for (const [rows, cols] of [[40, 30], [30, 40]] as const) {
      const s = await singularValues(lowRank(rows, cols, 3, `lr${rows}`), rows, cols);
      expect(s.length).toBe(Math.min(rows, cols));
      expect(s[2]!).toBeGreaterThan(1e-3 * s[0]!);
      // Through the Gram matrix, values below about sqrt(eps) * s[0] are rounding noise.
      expect(s[3]!).toBeLessThan(1e-7 * s[0]!);
    }
  });

  it('gives the singular values of a known matrix: diag(3, 2) padded', async () => {
    const a = new Float64Array(3 * 4);
    a[0] = 3;
    a[1 * 4 + 1] = -2;
    const s = await singularValues(a, 3, 4);
    expect(s[0]).toBeCloseTo(3, 12);
    expect(s[1]).toBeCloseTo(2, 12);
    expect(s[2]).toBeCloseTo(0, 12);
  });
});

describe('summarizeSpectrum', () => {
  it('counts directions up to RANK_ENERGY of the energy; stable rank is energy / top²', () => {
    const r = summarizeSpectrum([3, 2, 1, 0.01], { exact: true, sampledRows: 10, sampledCols: 10 });
    expect(RANK_ENERGY).toBe(0.99);
    expect(r.effective).toBe(3);
    expect(r.stable).toBeCloseTo((9 + 4 + 1 + 1e-4) / 9, 12);
    expect(summarizeSpectrum([], { exact: true, sampledRows: 0, sampledCols: 0 }).effective).toBe(0);
  });
});

describe('planRowSample', () => {
  it('takes every row, unscaled, when the matrix or the set of changed rows is small', () => {
    expect(planRowSample({ rows: 5, seed: 's' })).toEqual({ rows: [0, 1, 2, 3, 4], weights: [1, 1, 1, 1, 1], exact: true });
    const p = planRowSample({ rows: 10_000, changedRows: [3, 99, 5000], seed: 's' });
    expect(p).toEqual({ rows: [3, 99, 5000], weights: [1, 1, 1], exact: true });
  });

  it('draws SAMPLE_ROWS rows only from blocks that hold energy, the same way every time', () => {
    const energy = new Float64Array(10);
    energy[7] = 2;
    energy[2] = 1;
    const a = planRowSample({ rows: 1000, blockEnergy: energy, blockRows: 100, seed: 'x' });
    expect(a.rows.length).toBe(SAMPLE_ROWS);
    expect(a.exact).toBe(false);
    for (const r of a.rows) expect(Math.floor(r / 100) === 7 || Math.floor(r / 100) === 2).toBe(true);
    expect(planRowSample({ rows: 1000, blockEnergy: energy, blockRows: 100, seed: 'x' })).toEqual(a);
  });
});

describe('rankOfSample (sampled path)', () => {
  it('reports rank 4 for a rank-4 matrix larger than the sample, and a wide spectrum for noise', async () => {
    const rows = SAMPLE_ROWS, cols = 3 * SAMPLE_COLS;
    const low = await rankOfSample(lowRank(rows, cols, 4, 'wide'), rows, cols, { exactRows: true, seed: 'w' });
    expect(low.exact).toBe(false); // columns were sampled
    expect(low.effective).toBe(4);
    const noise = await rankOfSample(gaussian('noise', rows * cols), rows, cols, { exactRows: true, seed: 'w' });
    expect(noise.effective).toBeGreaterThan(SAMPLE_ROWS / 2);
  });

  it('uses only the nonzero columns without sampling when they are few', async () => {
    const rows = 8, cols = 2 * SAMPLE_COLS;
    const a = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) a[r * cols + 17] = r + 1;
    const est = await rankOfSample(a, rows, cols, { exactRows: true, seed: 'c' });
    expect(est).toMatchObject({ effective: 1, exact: true, sampledCols: 1 });
    expect(est.singularValues[0]).toBeCloseTo(Math.sqrt([1, 2, 3, 4, 5, 6, 7, 8].reduce((s, v) => s + v * v, 0)), 10);
  });
});
