// Pure statistics: derived metrics, mask structure, names -> modules and heatmap cells, the histogram,
// and the kinds' thresholds.

import { describe, expect, it } from 'vitest';
import { classifyChange, KIND_THRESHOLDS, lowRankLimit } from '../../../src/diff/kinds.js';
import {
  accumulateHistogram, accumulateRowNorms, deriveStats, emptyHistogram, layerCell, maskProfile, moduleOf, sparseStructure, trimHistogram,
} from '../../../src/diff/stats.js';
import type { DiffStats } from '../../../src/kernels/index.js';

function stats(over: Partial<DiffStats>): DiffStats {
  return { sumA2: 0, sumB2: 0, sumAB: 0, sumD2: 0, maxAbsDiff: 0, changed: 0, signFlips: 0, nanA: 0, nanB: 0, infA: 0, infB: 0, ...over };
}

function maskOf(n: number, set: number[]): Uint8Array {
  const m = new Uint8Array(Math.ceil(n / 8));
  for (const j of set) m[j >> 3]! |= 1 << (j & 7);
  return m;
}

describe('deriveStats', () => {
  it('norms, relative change, cosine and the rescale fit', () => {
    // old = (3, 4), new = (6, 8): a rescale by 2.
    const d = deriveStats(stats({ sumA2: 25, sumB2: 100, sumAB: 50, sumD2: 25, maxAbsDiff: 4, changed: 2 }), 2);
    expect(d).toMatchObject({ normOld: 5, normNew: 10, normDelta: 5, relChange: 1, cosine: 1, maxAbsDelta: 4, changedFraction: 1 });
    expect(d.rescale).toEqual({ factor: 2, explained: 1 });
  });

  it('an all-zero old tensor has no relative change or cosine', () => {
    const d = deriveStats(stats({ sumB2: 4, sumD2: 4, changed: 1 }), 4);
    expect(d.relChange).toBeNull();
    expect(d.cosine).toBeNull();
    expect(d.rescale).toBeNull();
  });
});

describe('mask structure', () => {
  it('whole rows, whole columns, scattered', () => {
    const rows = 10, cols = 8;
    const rowSet = [...Array(cols).keys()].flatMap((c) => [2 * cols + c, 7 * cols + c]);
    const r = sparseStructure(maskProfile(maskOf(rows * cols, rowSet), rows, cols), rowSet.length);
    expect(r).toEqual({ pattern: 'rows', rowsChanged: 2, rows, colsChanged: cols, cols });
    const colSet = [...Array(rows).keys()].map((i) => i * cols + 3);
    expect(sparseStructure(maskProfile(maskOf(rows * cols, colSet), rows, cols), colSet.length).pattern).toBe('cols');
    const scattered = [0, 13, 27, 38, 52, 71];
    expect(sparseStructure(maskProfile(maskOf(rows * cols, scattered), rows, cols), scattered.length).pattern).toBe('scattered');
  });

  it('counts bits past a byte boundary and ignores padding bits', () => {
    const p = maskProfile(Uint8Array.of(0xff, 0xff), 3, 5);
    expect(Array.from(p.rowCounts)).toEqual([5, 5, 5]);
    expect(Array.from(p.colCounts)).toEqual([3, 3, 3, 3, 3]);
  });
});

describe('row norms and histogram', () => {
  it('adds per-row Σ(new - old)² and Σ old², skipping non-finite elements', () => {
    const d = new Float64Array(2), o = new Float64Array(2);
    accumulateRowNorms(Float32Array.of(1, 2, 3, NaN), Float32Array.of(1, 4, 0, 5), 2, 2, 0, d, o);
    expect(Array.from(d)).toEqual([4, 9]);
    expect(Array.from(o)).toEqual([5, 9]);
  });

  it('puts |Δ| in half-octave buckets by sign', () => {
    const h = emptyHistogram();
    accumulateHistogram(h, Float64Array.of(0, 0, 0, 1, 5), Float64Array.of(1, -1, 1.5, 1, 5));
    const t = trimHistogram(h);
    expect(t.minExp).toBe(0); // 2^0 = 1
    expect(t.positive).toEqual([1, 1]); // 1 in [1, √2), 1.5 in [√2, 2)
    expect(t.negative).toEqual([1, 0]);
  });
});

describe('names', () => {
  it.each([
    ['model.layers.7.self_attn.q_proj.weight', 'model.layers.7.self_attn', 7, 'self_attn.q_proj'],
    ['model.layers.7.input_layernorm.weight', 'model.layers.7.input_layernorm', 7, 'input_layernorm'],
    ['transformer.h.11.mlp.c_fc.bias', 'transformer.h.11.mlp', 11, 'mlp.c_fc'],
    ['model.embed_tokens.weight', 'model.embed_tokens', null, null],
    ['lm_head.weight', 'lm_head', null, null],
    ['bias', 'bias', null, null],
  ])('%s -> module %s', (name, module, layer, column) => {
    expect(moduleOf(name)).toBe(module);
    const cell = layerCell(name);
    expect(cell?.layer ?? null).toBe(layer);
    expect(cell?.column ?? null).toBe(column);
  });
});

describe('classifyChange thresholds', () => {
  const base = { elements: 100, rows: 10, cols: 10, rescale: null };
  it('order: unchanged, sign-flip, rescale, sparse rows, low-rank, sparse, dense', () => {
    expect(classifyChange({ ...base, stats: stats({}) }).kind).toBe('unchanged');
    expect(classifyChange({ ...base, stats: stats({ changed: 10, signFlips: 10, sumA2: 4, sumB2: 4 }) }).kind).toBe('sign-flip');
    expect(classifyChange({ ...base, stats: stats({ changed: 100, sumA2: 1 }), rescale: { factor: 1.1, explained: KIND_THRESHOLDS.rescaleExplained } }).kind).toBe('rescale');
    expect(classifyChange({ ...base, stats: stats({ changed: 100, sumA2: 1 }), rescale: { factor: 1.1, explained: 0.98 } }).kind).toBe('dense');
    const rank = { effective: 2, stable: 1.5, singularValues: [], cap: 10, exact: true, sampledRows: 10, sampledCols: 10 };
    expect(classifyChange({ ...base, stats: stats({ changed: 100, sumA2: 1 }), rank }).kind).toBe('low-rank');
    expect(classifyChange({ ...base, stats: stats({ changed: 100, sumA2: 1 }), rank: { ...rank, effective: 3 } }).kind).toBe('dense');
    expect(classifyChange({ ...base, stats: stats({ changed: 10, sumA2: 1 }) }).kind).toBe('sparse');
    expect(classifyChange({ ...base, stats: stats({ changed: 11, sumA2: 1 }) }).kind).toBe('dense');
  });

  it('low-rank needs r <= 25% of the smaller side and at most 64', () => {
    expect(lowRankLimit(10, 10)).toBe(2);
    expect(lowRankLimit(4096, 11008)).toBe(64);
  });
});
