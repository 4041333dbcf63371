// Ground truth: checkpoints edited in known ways are reported as those kinds of change, with the
// evidence (rank, density, rows, factor) the edit implies.

import { describe, expect, it } from 'vitest';
import { analyzeCheckpoint, type CheckpointSource } from '../../../src/diff/analyze.js';
import { parseTokenizer } from '../../../src/diff/tokens.js';
import type { TensorDiff } from '../../../src/diff/types.js';
import { fromF32 } from '../../../src/kernels/index.js';
import {
  addDense, addLowRank, addSparse, edit, f32Tensor, flipSigns, gaussian, gaussianModel, moveRows, rescale, tokenizerJson, valuesOf,
} from '../../helpers/diff-models.js';
import type { TensorInput } from '../../helpers/models.js';

/** An in-memory side; ids are the tensor bytes in hex (equal bytes, equal id) when `ids` is set. */
function source(tensors: TensorInput[], ids = true): CheckpointSource & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    size: tensors.reduce((s, t) => s + t.data.length, 0),
    metadata: null,
    tensors: tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], id: ids ? Buffer.from(t.data).toString('hex') : undefined })),
    read: (e) => {
      reads.push(e.name);
      return tensors.find((t) => t.name === e.name)!.data;
    },
  };
}

async function analyze(a: TensorInput[], b: TensorInput[], opts: Parameters<typeof analyzeCheckpoint>[3] = {}) {
  return analyzeCheckpoint('model.safetensors', source(a), source(b), opts);
}

const byName = (list: TensorDiff[], name: string) => list.find((t) => t.name === name)!;
const Q = 'model.layers.1.self_attn.q_proj.weight';
const UP = 'model.layers.0.mlp.up_proj.weight';

describe('change kinds on fixtures with known ground truth', () => {
  const base = gaussianModel();

  it('a merged rank-4 LoRA update is low-rank with rank 4 (exact spectrum)', async () => {
    const d = await analyze(base, edit(base, Q, (t) => addLowRank(t, 4)));
    const q = byName(d.tensors, Q);
    expect(q).toMatchObject({ status: 'changed', kind: 'low-rank', detail: expect.stringMatching(/^r=4 /) });
    expect(q.rank).toMatchObject({ effective: 4, exact: true });
    expect(q.rank!.stable).toBeLessThanOrEqual(4);
    expect(q.changedFraction).toBe(1);
  });

  it.each([1, 2, 8])('rank %i is reported as that rank', async (r) => {
    const d = await analyze(base, edit(base, UP, (t) => addLowRank(t, r, 0.02, `r${r}`)));
    expect(byName(d.tensors, UP).rank!.effective).toBe(r);
    expect(byName(d.tensors, UP).kind).toBe('low-rank');
  });

  it('a rank-8 update of a matrix larger than the sample is found by the sampled sketch', async () => {
    const big = f32Tensor('big.weight', [600, 700], gaussian('big', 600 * 700, 0.05));
    const d = await analyze([big], [addLowRank(big, 8, 0.01)]);
    const t = d.tensors[0]!;
    expect(t.rank).toMatchObject({ effective: 8, exact: false });
    expect(t.kind).toBe('low-rank');
    // The sketch's singular values are scaled so their energies add up to ||Δ||².
    expect(t.rank!.singularValues.reduce((s, v) => s + v * v, 0)).toBeCloseTo(t.normDelta ** 2, 2);
  });

  it('a 1% sparse update is sparse, at exactly the density of the edit, scattered', async () => {
    const count = Math.round(0.01 * 96 * 48);
    const d = await analyze(base, edit(base, UP, (t) => addSparse(t, count).tensor));
    const up = byName(d.tensors, UP);
    expect(up.changedElements).toBe(count);
    expect(up.changedFraction).toBeCloseTo(0.01, 3);
    expect(up).toMatchObject({ kind: 'sparse', detail: expect.stringContaining('scattered') });
    expect(up.structure!.pattern).toBe('scattered');
  });

  it('a rescaled tensor is a rescale with its factor', async () => {
    const d = await analyze(base, edit(base, Q, (t) => rescale(t, 1.05)));
    const q = byName(d.tensors, Q);
    expect(q.kind).toBe('rescale');
    expect(q.rescale!.factor).toBeCloseTo(1.05, 6);
    expect(q.rescale!.explained).toBeGreaterThan(0.999999);
    expect(q.detail).toContain('x1.0500');
  });

  it('rows of 3 chosen tokens changed: sparse rows, and those tokens listed first, largest first', async () => {
    const vocab = parseTokenizer(tokenizerJson(64, { 17: 'Ġelection', 42: 'Ġballot', 5: 'vote' }), 'tokenizer.json');
    const d = await analyze(base, edit(base, 'model.embed_tokens.weight', (t) => moveRows(t, [17, 42, 5])), { vocabulary: vocab });
    const e = byName(d.tensors, 'model.embed_tokens.weight');
    expect(e).toMatchObject({ kind: 'sparse', structure: { pattern: 'rows', rowsChanged: 3, rows: 64 } });
    expect(e.rank!.effective).toBe(3);
    expect(d.tokens).toHaveLength(1);
    expect(d.tokens[0]!.top.map((m) => [m.id, m.text])).toEqual([[17, ' election'], [42, ' ballot'], [5, 'vote']]);
    expect(d.tokens[0]!.rowsChanged).toBe(3);
  });

  it('unchanged tensors are reported unchanged, never read, and not counted as changed', async () => {
    const a = source(base), b = source(edit(base, Q, (t) => addLowRank(t, 2)));
    const d = await analyzeCheckpoint('m', a, b);
    expect(d.tensors.filter((t) => t.status !== 'unchanged').map((t) => t.name)).toEqual([Q]);
    expect(d.tensors.filter((t) => t.status === 'unchanged')).toHaveLength(base.length - 1);
    expect(a.reads).toEqual([Q]);
    expect(b.reads).toEqual([Q]);
  });

  it('without ids (a working-tree file) equal tensors are still unchanged', async () => {
    const d = await analyzeCheckpoint('m', source(base, false), source(base, false));
    expect(d.tensors.every((t) => t.status === 'unchanged' && t.kind === 'unchanged')).toBe(true);
  });

  it('a dense update is dense with a high effective rank', async () => {
    const d = await analyze(base, edit(base, Q, (t) => addDense(t)));
    const q = byName(d.tensors, Q);
    expect(q.kind).toBe('dense');
    expect(q.rank!.effective).toBeGreaterThan(12);
  });

  it('sign flips with magnitudes kept are sign-flip', async () => {
    const d = await analyze(base, edit(base, Q, (t) => flipSigns(t, 3)));
    const q = byName(d.tensors, Q);
    expect(q.kind).toBe('sign-flip');
    expect(q.signFlips).toBe(q.changedElements);
  });

  it('the sorted report puts the largest relative change first', async () => {
    let m = edit(base, Q, (t) => addLowRank(t, 2, 0.001));
    m = edit(m, UP, (t) => addDense(t, 0.02));
    const d = await analyze(base, m);
    expect(d.tensors.slice(0, 2).map((t) => t.name)).toEqual([UP, Q]);
    expect(d.tensors[0]!.relChange!).toBeGreaterThan(d.tensors[1]!.relChange!);
  });
});

describe('structure and modules', () => {
  const base = gaussianModel();

  it('added, removed, reshaped and retyped tensors are structural', async () => {
    const extra = f32Tensor('extra.bias', [4], [1, 2, 3, 4]);
    const reshaped = f32Tensor(UP, [48, 96], valuesOf(byNameInput(base, UP)));
    let b = base.filter((t) => t.name !== 'model.norm.weight');
    b = [...b.map((t) => (t.name === UP ? reshaped : t)), extra];
    const d = await analyze(base, b);
    expect(byName(d.tensors, 'extra.bias')).toMatchObject({ status: 'added', kind: 'structural' });
    expect(byName(d.tensors, 'model.norm.weight')).toMatchObject({ status: 'removed' });
    expect(byName(d.tensors, UP)).toMatchObject({ status: 'reshaped', oldShape: [96, 48], shape: [48, 96] });
    expect(d.tensors.slice(0, 3).every((t) => t.kind === 'structural')).toBe(true);
  });

  it('an F32 -> BF16 conversion is compared by value', async () => {
    const q = byNameInput(base, Q);
    const bf = { ...q, dtype: 'BF16' as const, data: Buffer.from(await fromF32(valuesOf(q), 'BF16')) };
    const d = await analyze(base, base.map((t) => (t.name === Q ? bf : t)));
    const t = byName(d.tensors, Q);
    expect(t).toMatchObject({ status: 'retyped', oldDtype: 'F32', dtype: 'BF16' });
    expect(t.relChange!).toBeGreaterThan(0);
    expect(t.relChange!).toBeLessThan(4e-3); // bf16 keeps 8 significant bits
  });

  it('module totals add the squared norms of their changed tensors', async () => {
    let m = edit(base, Q, (t) => addDense(t, 0.01, 'q'));
    m = edit(m, 'model.layers.1.self_attn.k_proj.weight', (t) => addDense(t, 0.02, 'k'));
    const d = await analyze(base, m);
    const mod = d.modules.find((x) => x.name === 'model.layers.1.self_attn')!;
    const q = byName(d.tensors, Q), k = byName(d.tensors, 'model.layers.1.self_attn.k_proj.weight');
    expect(mod).toMatchObject({ tensors: 4, changed: 2 });
    expect(mod.relChange!).toBeCloseTo(Math.sqrt((q.normDelta ** 2 + k.normDelta ** 2) / (q.normOld ** 2 + k.normOld ** 2)), 12);
    expect(mod.maxRelChange).toBeCloseTo(Math.max(q.relChange!, k.relChange!), 12);
    expect(d.modules[0]!.name).toBe('model.layers.1.self_attn');
  });

  it('the histogram counts every changed element once, by sign', async () => {
    const count = 40;
    const d = await analyze(base, edit(base, UP, (t) => addSparse(t, count).tensor), { histogram: true });
    const h = d.histogram!;
    expect(h.positive.reduce((s, v) => s + v, 0) + h.negative.reduce((s, v) => s + v, 0)).toBe(count);
  });

  it('added and deleted checkpoints', async () => {
    const added = await analyzeCheckpoint('m', null, source(base));
    expect(added.status).toBe('added');
    expect(added.tensors.every((t) => t.status === 'added')).toBe(true);
    const deleted = await analyzeCheckpoint('m', source(base), null);
    expect(deleted.status).toBe('deleted');
  });
});

function byNameInput(list: TensorInput[], name: string): TensorInput {
  return list.find((t) => t.name === name)!;
}

describe('tensor bytes at any offset', () => {
  it('compares F32 tensors whose bytes sit at an odd offset of a Buffer (slice() there is a view, not a copy)', async () => {
    const values = (scale: number) => Float32Array.from({ length: 64 }, (_, i) => (i % 7) * scale);
    const misaligned = (v: Float32Array): Uint8Array => {
      const b = Buffer.alloc(v.byteLength + 1);
      Buffer.from(v.buffer).copy(b, 1);
      return b.subarray(1);
    };
    const side = (v: Float32Array): CheckpointSource => ({
      size: 0, metadata: null, tensors: [{ name: 'w', dtype: 'F32', shape: [8, 8] }], read: () => misaligned(v),
    });
    const diff = await analyzeCheckpoint('m.safetensors', side(values(1)), side(values(2)));
    const w = diff.tensors.find((t) => t.name === 'w')!;
    expect(w.kind).toBe('rescale');
  });
});
