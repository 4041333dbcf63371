// The element-level merge of one tensor both sides changed (DESIGN.md "Merge semantics"), checked against
// an independent oracle (test/helpers/merge-models.ts): float64 loops written from the papers, rounded
// once to the dtype. Elements changed on one side must come out bit for bit; only conflicting elements
// (changed on both sides to different bits) may carry a strategy's arithmetic.

import { describe, expect, it } from 'vitest';
import type { DType } from '../../../src/format/dtype.js';
import { mergeElements } from '../../../src/merge/elementwise.js';
import { makeStrategy, type StrategyParams } from '../../../src/merge/strategy.js';
import {
  dareCheck, decode, disjointIndices, encode, editValues, expectedMerge, floatTensor, mergeMismatches, roundTo, ulp, ARITHMETIC_ULPS,
  type FloatDType, type OracleStrategy,
} from '../../helpers/merge-models.js';
import { makeTensor, type TensorInput } from '../../helpers/models.js';

const FLOAT_DTYPES: FloatDType[] = ['F32', 'F16', 'BF16', 'F64'];
/** Odd on purpose: masks end in a partial byte. */
const N = 999;

interface Sides {
  dtype: FloatDType;
  o: Buffer;
  a: Buffer;
  b: Buffer;
}

const bytes = (t: TensorInput) => Buffer.from(t.data);

/**
 * Two fine-tunes of one base: each side changes its own elements, both make the same change to some,
 * and (unless `disjoint`) both change another set differently: the conflicting elements.
 */
function fineTunes(dtype: FloatDType, opts: { disjoint?: boolean; n?: number } = {}): Sides {
  const n = opts.n ?? N;
  const base = floatTensor('w', dtype, [n], `elementwise/${dtype}`);
  const [onlyA, onlyB, same, both] = disjointIndices(n, Math.floor(n / 6), 4, `masks/${dtype}/${n}`);
  const shared = editValues(base, 'same', { indices: same });
  const ours = editValues(editValues(shared, 'ours', { indices: onlyA }), 'ours-both', { indices: opts.disjoint ? [] : both });
  const theirs = editValues(editValues(shared, 'theirs', { indices: onlyB }), 'theirs-both', { indices: opts.disjoint ? [] : both });
  return { dtype, o: bytes(base), a: bytes(ours), b: bytes(theirs) };
}

/** Three unrelated tensors: every element conflicts, and ours and theirs are far from parallel. */
function unrelated(dtype: FloatDType): Sides {
  const t = (seed: string) => bytes(floatTensor('w', dtype, [N], seed));
  return { dtype, o: t('o'), a: t('a'), b: t('b') };
}

async function merge(s: Sides, params: StrategyParams) {
  return mergeElements(s.o, s.a, s.b, s.dtype as DType, makeStrategy(params, 'test'));
}

async function expectOracle(s: Sides, params: StrategyParams, oracle: OracleStrategy, ulps = ARITHMETIC_ULPS) {
  const r = await merge(s, params);
  const want = expectedMerge(s.dtype, s.o, s.a, s.b, oracle);
  expect(want.conflicts, 'the scenario has conflicting elements').toBeGreaterThan(0);
  expect(r.unresolved).toBeUndefined();
  expect(r.data).not.toBeNull();
  expect(mergeMismatches(r.data!, want, ulps)).toEqual([]);
  return r;
}

describe.each(FLOAT_DTYPES)('mergeElements on %s', (dtype) => {
  it('disjoint changes merge to the exact union, bit for bit, with the default strategy (fail)', async () => {
    const s = fineTunes(dtype, { disjoint: true });
    const want = expectedMerge(dtype, s.o, s.a, s.b, { name: 'base' });
    expect(want.conflicts).toBe(0);
    const r = await merge(s, {});
    expect(r.data).not.toBeNull();
    expect(Buffer.from(r.data!).equals(want.data)).toBe(true);
    expect(r.counts).toMatchObject({ elements: N, changedA: want.changedOurs, changedB: want.changedTheirs, same: Math.floor(N / 6), conflict: 0 });
  });

  it.each([['ours'], ['theirs'], ['base'], ['average'], ['task-arithmetic'], ['ties'], ['dare'], ['dare-ties'], ['slerp']] as const)('merging into theirs\' own buffer, with the base\'s as scratch, gives the same bytes (%s)', async (name) => {
    const s = fineTunes(dtype);
    const apart = await merge(s, { name });
    const theirs = Uint8Array.from(s.b);
    const base = Uint8Array.from(s.o);
    const inPlace = await mergeElements(base, s.a, theirs, dtype as DType, makeStrategy({ name }, 'test'), { out: theirs });
    expect(inPlace.data).toBe(theirs);
    expect(Buffer.from(inPlace.data!).equals(Buffer.from(apart.data!))).toBe(true);
  });

  it.each([['ours'], ['theirs'], ['base'], ['average'], ['task-arithmetic'], ['ties'], ['dare'], ['dare-ties'], ['slerp'], ['fail']] as const)('a tensor merged in blocks smaller than itself gives the same bytes and counts as in one block (%s)', async (name) => {
    // Blocks of 100 elements (masks end mid-byte) and of 8: TIES' thresholds and majority, SLERP's angle
    // and DARE's draws are the whole tensor's in every block. The one-block merge is checked against
    // the oracle above; this one must not differ from it by a bit.
    const s = fineTunes(dtype, { n: 2 * N + 1 });
    const strategy = makeStrategy({ name, density: 0.3, seed: 11 }, 'test');
    const whole = await mergeElements(s.o, s.a, s.b, dtype as DType, strategy);
    for (const elements of [100, 8]) {
      const blocks = await mergeElements(s.o, s.a, s.b, dtype as DType, strategy, { blockBytes: elements * s.o.length / (2 * N + 1) });
      expect(blocks.counts).toEqual(whole.counts);
      if (name === 'fail') expect(blocks.data).toBeNull();
      else expect(Buffer.from(blocks.data!).equals(Buffer.from(whole.data!)), `${elements}-element blocks`).toBe(true);
    }
  });

  it('conflicting elements under fail: no data, counts say how many', async () => {
    const s = fineTunes(dtype);
    const want = expectedMerge(dtype, s.o, s.a, s.b, { name: 'base' });
    const r = await merge(s, { name: 'fail' });
    expect(r.data).toBeNull();
    expect(r.counts.conflict).toBe(want.conflicts);
    expect(r.counts.changedA).toBe(want.changedOurs);
    expect(r.counts.changedB).toBe(want.changedTheirs);
    expect(r.counts.signConflict).toBeGreaterThan(0);
    expect(r.counts.signConflict).toBeLessThan(r.counts.conflict);
  });

  it.each<[string, StrategyParams, OracleStrategy]>([
    ['ours', { name: 'ours' }, { name: 'ours' }],
    ['theirs', { name: 'theirs' }, { name: 'theirs' }],
    ['base', { name: 'base' }, { name: 'base' }],
  ])('%s: conflicting elements from that side, exactly; one-sided changes still merged', async (_, params, oracle) => {
    await expectOracle(fineTunes(dtype), params, oracle, 0);
  });

  it.each<[string, StrategyParams, OracleStrategy]>([
    ['average', { name: 'average' }, { name: 'average' }],
    ['average 0.7,0.3', { name: 'average', weights: [0.7, 0.3] }, { name: 'average', weights: [0.7, 0.3] }],
    ['task-arithmetic', { name: 'task-arithmetic' }, { name: 'task-arithmetic' }],
    ['task-arithmetic lambda=0.5', { name: 'task-arithmetic', lambda: 0.5 }, { name: 'task-arithmetic', lambda: 0.5 }],
    ['ties', { name: 'ties' }, { name: 'ties', density: 0.2 }],
    ['ties density=0.5 lambda=0.8', { name: 'ties', density: 0.5, lambda: 0.8 }, { name: 'ties', density: 0.5, lambda: 0.8 }],
    ['ties density=1', { name: 'ties', density: 1 }, { name: 'ties', density: 1 }],
    ['slerp t=0.3 (fine-tunes are nearly parallel: linear)', { name: 'slerp', t: 0.3 }, { name: 'slerp', t: 0.3 }],
  ])('%s at conflicting elements matches the float64 formula', async (_, params, oracle) => {
    await expectOracle(fineTunes(dtype), params, oracle);
  });

  it('slerp between tensors far from parallel follows the spherical formula', async () => {
    await expectOracle(unrelated(dtype), { name: 'slerp', t: 0.3 }, { name: 'slerp', t: 0.3 });
    await expectOracle(unrelated(dtype), { name: 'slerp', t: 0.5 }, { name: 'slerp', t: 0.5 });
  });

  it('slerp t=0 gives ours and t=1 gives theirs, exactly', async () => {
    for (const s of [fineTunes(dtype), unrelated(dtype)]) {
      await expectOracle(s, { name: 'slerp', t: 0 }, { name: 'ours' }, 0);
      await expectOracle(s, { name: 'slerp', t: 1 }, { name: 'theirs' }, 0);
    }
  });

  it('dare is deterministic for a seed, changes with the seed, and with density=1 is task arithmetic', async () => {
    const s = fineTunes(dtype);
    const first = await merge(s, { name: 'dare', density: 0.5, seed: 7 });
    const again = await merge(s, { name: 'dare', density: 0.5, seed: 7 });
    const other = await merge(s, { name: 'dare', density: 0.5, seed: 8 });
    expect(Buffer.from(again.data!).equals(Buffer.from(first.data!))).toBe(true);
    expect(Buffer.from(other.data!).equals(Buffer.from(first.data!))).toBe(false);
    const full = await merge(s, { name: 'dare', density: 1, seed: 7 });
    const task = await merge(s, { name: 'task-arithmetic' });
    expect(Buffer.from(full.data!).equals(Buffer.from(task.data!))).toBe(true);
    // Outside conflicts the dare merge is the exact union, like every strategy.
    expect(mergeMismatches(first.data!, expectedMerge(dtype, s.o, s.a, s.b, { name: 'ours' }), Infinity)).toEqual([]);
  });

  it('dare keeps each delta with probability density, rescaled by 1/density (Yu et al. 2023)', async () => {
    const density = 0.3;
    const s = fineTunes(dtype, { n: 6000 });
    const r = await merge(s, { name: 'dare', density, seed: 1, lambda: 0.9 });
    const check = dareCheck(dtype, s.o, s.a, s.b, r.data!, density, 0.9);
    expect(check.mismatches).toEqual([]);
    // 1000 conflicting elements: the kept fraction is within 5 standard deviations of density.
    const sd = Math.sqrt((density * (1 - density)) / check.conflicts);
    expect(Math.abs(check.keptOurs / check.conflicts - density)).toBeLessThan(5 * sd);
    expect(Math.abs(check.keptTheirs / check.conflicts - density)).toBeLessThan(5 * sd);
  });

  it('dare-ties: each conflicting element is TIES of the DARE-kept deltas (no further trim)', async () => {
    const density = 0.5;
    const s = fineTunes(dtype);
    const r1 = await merge(s, { name: 'dare-ties', density, seed: 3 });
    const r2 = await merge(s, { name: 'dare-ties', density, seed: 3 });
    expect(Buffer.from(r1.data!).equals(Buffer.from(r2.data!))).toBe(true);
    const [o, a, b, got] = [decode(dtype, s.o), decode(dtype, s.a), decode(dtype, s.b), decode(dtype, r1.data!)];
    const want = expectedMerge(dtype, s.o, s.a, s.b, { name: 'base' });
    const bad: string[] = [];
    for (let j = 0; j < got.length; j++) {
      if (!want.conflict[j]) continue;
      // Each kept delta is rescaled and rounded to the dtype (DARE writes a model) before TIES reads it.
      const dA = roundTo(dtype, o[j]! + (a[j]! - o[j]!) / density) - o[j]!;
      const dB = roundTo(dtype, o[j]! + (b[j]! - o[j]!) / density) - o[j]!;
      const ties = (ds: number[]) => {
        if (!ds.length) return o[j]!;
        const sign = Math.sign(ds.reduce((x, y) => x + y, 0));
        const agree = ds.filter((d) => Math.sign(d) === sign);
        return o[j]! + agree.reduce((x, y) => x + y, 0) / agree.length;
      };
      const options = [ties([]), ties([dA]), ties([dB]), ties([dA, dB])].map((v) => roundTo(dtype, v));
      if (!options.some((v) => Math.abs(got[j]! - v) <= ARITHMETIC_ULPS * ulp(dtype, v))) bad.push(`element ${j}: ${got[j]} not in ${options.join(', ')}`);
    }
    expect(bad.slice(0, 3)).toEqual([]);
  });
});

describe('TIES worked by hand (Yadav et al. 2023: trim, elect sign, disjoint mean)', () => {
  // Ten elements, all changed by both sides; density 0.4 keeps each side's 4 largest |delta|.
  const o = new Array(10).fill(0.5);
  const dA = [0.4, -0.3, 0.2, 0.01, 0.02, 0.03, -0.04, 0.05, 0.06, -0.07]; // keeps 0, 1, 2, 9
  const dB = [-0.1, -0.5, 0.3, 0.25, 0.015, 0.025, 0.035, 0.045, -0.055, 0.065]; // keeps 1, 3, 2, 0
  const expected = [
    0.9, // +0.4 and -0.1 kept: the sum elects +, only +0.4 agrees
    0.1, // -0.3 and -0.5 agree: mean -0.4
    0.75, // +0.2 and +0.3: mean +0.25
    0.75, // only theirs' +0.25 survived the trim
    0.5, 0.5, 0.5, 0.5, 0.5, // nothing kept: base
    0.43, // only ours' -0.07 survived
  ];

  it.each(['F32', 'F64'] as const)('%s', async (dtype) => {
    const enc = (v: number[]) => encode(dtype, v.map((x) => roundTo(dtype, x)));
    const [bo, ba, bb] = [enc(o), enc(o.map((x, j) => x + dA[j]!)), enc(o.map((x, j) => x + dB[j]!))];
    const r = await mergeElements(bo, ba, bb, dtype, makeStrategy({ name: 'ties', density: 0.4 }, 'test'));
    const got = Array.from(decode(dtype, r.data!));
    got.forEach((v, j) => expect(v, `element ${j}`).toBeCloseTo(expected[j]!, 6));
    // The oracle agrees with the hand computation.
    const oracle = Array.from(decode(dtype, expectedMerge(dtype, bo, ba, bb, { name: 'ties', density: 0.4 }).data));
    oracle.forEach((v, j) => expect(v, `oracle element ${j}`).toBeCloseTo(expected[j]!, 6));
  });
});

describe('mergeElements on tensors that are not F64/F32/F16/BF16', () => {
  function intSides(dtype: 'I32' | 'U8' | 'I64', disjoint: boolean): { o: Buffer; a: Buffer; b: Buffer; w: number } {
    const o = bytes(makeTensor('ids', dtype, [40], `int/${dtype}`));
    const w = o.length / 40;
    const a = Buffer.from(o), b = Buffer.from(o);
    a[0 * w]! ^= 1; // ours changes element 0
    b[5 * w]! ^= 1; // theirs changes element 5
    if (!disjoint) {
      a[9 * w]! ^= 2; // both change element 9, differently
      b[9 * w]! ^= 4;
    }
    return { o, a, b, w };
  }

  it.each(['I32', 'U8', 'I64'] as const)('%s: disjoint changes are the exact union, whatever the strategy', async (dtype) => {
    const { o, a, b, w } = intSides(dtype, true);
    const union = Buffer.from(o);
    a.copy(union, 0, 0, w);
    b.copy(union, 5 * w, 5 * w, 6 * w);
    for (const name of ['fail', 'average', 'ties'] as const) {
      const r = await mergeElements(o, a, b, dtype, makeStrategy({ name }, 'test'));
      expect(Buffer.from(r.data!).equals(union), name).toBe(true);
    }
  });

  it.each(['I32', 'U8', 'I64'] as const)('%s: numeric strategies leave conflicts unresolved and say why; ours/theirs resolve', async (dtype) => {
    const { o, a, b, w } = intSides(dtype, false);
    for (const name of ['average', 'task-arithmetic', 'ties', 'dare', 'dare-ties', 'slerp'] as const) {
      const r = await mergeElements(o, a, b, dtype, makeStrategy({ name }, 'test'));
      expect(r.data, name).toBeNull();
      expect(r.counts.conflict).toBe(1);
      expect(r.unresolved).toBe(`strategy ${name} needs a float tensor (F64, F32, F16, BF16), not ${dtype}`);
    }
    const theirs = await mergeElements(o, a, b, dtype, makeStrategy({ name: 'theirs' }, 'test'));
    expect(Buffer.from(theirs.data!).subarray(9 * w, 10 * w).equals(b.subarray(9 * w, 10 * w))).toBe(true);
    expect(Buffer.from(theirs.data!).subarray(0, w).equals(a.subarray(0, w))).toBe(true);
  });

  it('F8_E4M3 (a byte per element): exact union of disjoint changes; numeric strategies unresolved', async () => {
    const o = bytes(makeTensor('q', 'F8_E4M3', [64], 'f8'));
    const a = Buffer.from(o), b = Buffer.from(o);
    a[1]! ^= 1;
    b[2]! ^= 1;
    const union = Buffer.from(o);
    union[1] = a[1]!;
    union[2] = b[2]!;
    expect(Buffer.from((await mergeElements(o, a, b, 'F8_E4M3', makeStrategy({}, 'test'))).data!).equals(union)).toBe(true);
    b[1]! ^= 2;
    const r = await mergeElements(o, a, b, 'F8_E4M3', makeStrategy({ name: 'average' }, 'test'));
    expect(r.data).toBeNull();
    expect(r.unresolved).toMatch(/needs a float tensor .* not F8_E4M3/);
  });

  it('F4 (two elements per byte): a side can be chosen, arithmetic cannot', async () => {
    const o = bytes(makeTensor('q4', 'F4', [8, 8], 'f4'));
    const a = Buffer.from(o), b = Buffer.from(o);
    a[0]! ^= 0x01;
    b[0]! ^= 0x02;
    const ours = await mergeElements(o, a, b, 'F4', makeStrategy({ name: 'ours' }, 'test'));
    expect(Buffer.from(ours.data!).equals(a)).toBe(true);
    const avg = await mergeElements(o, a, b, 'F4', makeStrategy({ name: 'average' }, 'test'));
    expect(avg.data).toBeNull();
    expect(avg.unresolved).toMatch(/F4 packs several elements per byte/);
  });

  it('F4: changes to different elements (here: different bytes) still merge exactly, as DESIGN.md promises', async () => {
    const o = bytes(makeTensor('q4', 'F4', [8, 8], 'f4'));
    const a = Buffer.from(o), b = Buffer.from(o);
    a[0]! ^= 0x01; // ours changes element 0
    b[7]! ^= 0x10; // theirs changes element 15
    const union = Buffer.from(o);
    union[0] = a[0]!;
    union[7] = b[7]!;
    const r = await mergeElements(o, a, b, 'F4', makeStrategy({}, 'test'));
    expect(r.data && Buffer.from(r.data).equals(union)).toBe(true);
  });
});
