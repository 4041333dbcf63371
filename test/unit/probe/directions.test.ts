// The data-free line: the top singular directions of a change to a token matrix, decoded into tokens.
// ΔW is built as a sum of known rank-1 terms, so the expected tokens and shares are known by construction.

import { describe, expect, it } from 'vitest';
import { renderDirections, topDirections } from '../../../src/diff/directions.js';
import type { Vocabulary } from '../../../src/diff/tokens.js';

const vocab: Vocabulary = { size: 10, tokens: ['a', 'b', 'Ġcat', 'd', 'e', 'Ġdog', 'g', 'Ġcar', 'i', 'j'], style: 'byte-level', source: 't' };

function withDelta(terms: { u: number[]; v: number[] }[], rows: number, cols: number): [Float32Array, Float32Array] {
  const old = new Float32Array(rows * cols).map((_, i) => Math.sin(i));
  const neu = old.slice();
  for (const { u, v } of terms) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) neu[r * cols + c]! += u[r]! * v[c]!;
  return [old, neu];
}

describe('topDirections', () => {
  it('a rank-1 change: the tokens that moved together, with the sign fixed by the largest entry', () => {
    const u = [0, 0, 2, 0, 0, 1, 0, -0.5, 0, 0];
    const [o, n] = withDelta([{ u, v: [1, 0, -1, 0.5] }], 10, 4);
    const [d, second] = topDirections(o, n, 10, 4, vocab);
    expect(d!.towards.map((t) => t.text)).toEqual([' cat', ' dog']);
    expect(d!.awayFrom.map((t) => t.text)).toEqual([' car']);
    expect(d!.share).toBeCloseTo(1, 4);
    expect(second).toBeUndefined();
    expect(renderDirections('lm_head.weight', [d!])[0]).toBe('lm_head.weight direction 1 (100% of the change): moved towards " cat", " dog"; away from " car"');
  });

  it('two orthogonal rank-1 changes come out largest first with their shares of ||Δ||²', () => {
    const [o, n] = withDelta([{ u: [0, 0, 3, 0, 0, 0, 0, 0, 0, 0], v: [1, 0, 0, 0] }, { u: [0, 0, 0, 0, 0, 1, 0, 0, 0, 0], v: [0, 1, 0, 0] }], 10, 4);
    const dirs = topDirections(o, n, 10, 4, vocab);
    expect(dirs.map((d) => d.towards[0]!.text)).toEqual([' cat', ' dog']);
    expect(dirs[0]!.share).toBeCloseTo(0.9, 4); // 9 / (9 + 1)
    expect(dirs[1]!.share).toBeCloseTo(0.1, 4);
  });

  it('no change, no directions', () => {
    const w = new Float32Array(40).fill(1);
    expect(topDirections(w, w, 10, 4, vocab)).toEqual([]);
  });
});
