// A tensor larger than the whole-read limit is compared block by block from its source's stream (and its
// sampled rows read by range): the report must be exactly the one reading both versions whole gives, for
// every kind of change, whatever sizes the stream's pieces have. `wholeTensorBytes: 0` streams every
// tensor of these small fixtures; the whole-read reports are the ones test/unit/diff/analyze.test.ts
// checks against independent references.

import { describe, expect, it } from 'vitest';
import { analyzeCheckpoint, type AnalyzeOptions, type CheckpointSource } from '../../../src/diff/analyze.js';
import { topDirections, topDirectionsOf } from '../../../src/diff/directions.js';
import { parseTokenizer } from '../../../src/diff/tokens.js';
import { fromF32 } from '../../../src/kernels/index.js';
import {
  addDense, addLowRank, addSparse, edit, f32Tensor, flipSigns, gaussian, gaussianModel, moveRows, rescale, tokenizerJson, valuesOf,
} from '../../helpers/diff-models.js';
import type { TensorInput } from '../../helpers/models.js';

interface Counted {
  whole: number;
  streamed: number;
  ranged: number;
}

/** A side that reads whole (read), and, with `piece`, streams in pieces of that many bytes and reads ranges. */
function source(tensors: TensorInput[], piece?: number, counts?: Counted): CheckpointSource {
  const data = (name: string) => tensors.find((t) => t.name === name)!.data;
  const s: CheckpointSource = {
    size: tensors.reduce((n, t) => n + t.data.length, 0),
    metadata: null,
    tensors: tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], id: Buffer.from(t.data).toString('hex') })),
    read: (e) => {
      if (counts) counts.whole++;
      return data(e.name);
    },
  };
  if (piece === undefined) return s;
  s.stream = async function* (e) {
    if (counts) counts.streamed++;
    const bytes = data(e.name);
    // Copies, as a store's decoded windows are: nothing may rely on a view of the whole tensor.
    for (let at = 0; at < bytes.length; at += piece) yield Uint8Array.from(bytes.subarray(at, at + piece));
  };
  s.readRange = (e, begin, end) => {
    if (counts) counts.ranged++;
    return Uint8Array.from(data(e.name).subarray(begin, end));
  };
  return s;
}

async function both(a: TensorInput[], b: TensorInput[], opts: AnalyzeOptions = {}, piece = 4093) {
  const whole = await analyzeCheckpoint('model.safetensors', source(a), source(b), opts);
  const counts: Counted = { whole: 0, streamed: 0, ranged: 0 };
  const streamed = await analyzeCheckpoint('model.safetensors', source(a, piece, counts), source(b, piece, counts), { ...opts, wholeTensorBytes: 0 });
  return { whole, streamed, counts };
}

const UP = 'model.layers.0.mlp.up_proj.weight';
const EMBED = 'model.embed_tokens.weight';

describe('streamed comparison gives the report of the whole-tensor comparison', () => {
  const base = gaussianModel();
  const big = f32Tensor('big.weight', [600, 700], gaussian('big', 600 * 700, 0.05));

  const cases: [string, () => Promise<TensorInput[]> | TensorInput[], TensorInput[]][] = [
    ['a rank-8 update of a matrix larger than the sample (sampled sketch over 64 blocks)', () => [addLowRank(big, 8, 0.01)], [big]],
    ['whole rows moved in a large matrix (change masks of several blocks)', () => [moveRows(big, [3, 250, 599])], [big]],
    ['a scattered sparse change', () => [addSparse(big, 500).tensor], [big]],
    ['a dense change', () => [addDense(big)], [big]],
    ['a rescale and sign flips in a model', () => edit(edit(base, UP, (t) => rescale(t, 1.01)), 'model.layers.1.self_attn.q_proj.weight', (t) => flipSigns(t, 3)), base],
    ['a conversion F32 -> BF16 with a change (retyped, converted per block)', async () => {
      const changed = addDense(big);
      return [{ ...changed, dtype: 'BF16' as const, data: Buffer.from(await fromF32(valuesOf(changed), 'BF16')) }];
    }, [big]],
  ];
  for (const [what, make, old] of cases) {
    it(what, async () => {
      const { whole, streamed, counts } = await both(old, await make());
      expect(streamed).toEqual(whole);
      expect(counts.streamed).toBeGreaterThan(0);
      expect(counts.whole).toBe(0);
    });
  }

  it('token rows and the histogram (a second streamed pass), with pieces of odd sizes', async () => {
    const vocab = parseTokenizer(tokenizerJson(64, { 17: 'Ġelection', 42: 'Ġballot', 5: 'vote' }), 'tokenizer.json');
    const edited = edit(base, EMBED, (t) => moveRows(t, [5, 17, 42]));
    for (const piece of [1, 7, 1 << 20]) {
      const { whole, streamed } = await both(base, edited, { vocabulary: vocab, histogram: true }, piece);
      expect(streamed).toEqual(whole);
      expect(streamed.tokens[0]!.top.map((t) => t.id).sort((x, y) => x - y)).toEqual([5, 17, 42]);
    }
  });

  it('the rank sketch of a streamed tensor reads only its sampled rows by range', async () => {
    const { whole, streamed, counts } = await both([big], [addLowRank(big, 8, 0.01)]);
    expect(streamed).toEqual(whole);
    // One pass over each side's stream (the statistics); the sampled rows by range, at most 128 per side.
    expect(counts.streamed).toBe(2);
    expect(counts.ranged).toBeGreaterThan(0);
    expect(counts.ranged).toBeLessThanOrEqual(2 * 128);
  });

  it('dtypes compared bit by bit (F8) stream by rows too', async () => {
    const f8 = (seed: string) => ({ name: 'f8.weight', dtype: 'F8_E4M3' as const, shape: [300, 200], data: Buffer.from(gaussian(seed, 60000, 100).map((v) => Math.abs(Math.round(v)) & 0xff)) });
    const a = f8('x'), b = { ...a, data: Buffer.from(a.data) };
    for (let k = 0; k < b.data.length; k += 97) b.data[k] = b.data[k]! ^ 1;
    const { whole, streamed } = await both([a], [b]);
    expect(streamed).toEqual(whole);
    expect(streamed.tensors[0]!.changedElements).toBe(Math.ceil(60000 / 97));
  });

  it('a stream shorter than the tensor is an error naming the tensor, not a wrong report', async () => {
    const short = source([big], 4096);
    const full = short.stream!;
    short.stream = async function* (e) {
      let left = big.data.length - 10;
      for await (const p of full(e)) {
        if (left <= 0) break;
        yield p.subarray(0, Math.min(p.length, left));
        left -= p.length;
      }
    };
    await expect(analyzeCheckpoint('m.safetensors', short, source([addDense(big)], 4096), { wholeTensorBytes: 0 }))
      .rejects.toMatchObject({ code: 'E_DIFF_TENSOR_SIZE', message: expect.stringContaining('big.weight') });
  });

  it('the directions of a token matrix\'s change, streamed, are those of the whole matrices', async () => {
    const vocab = parseTokenizer(tokenizerJson(300, { 17: 'Ġelection', 42: 'Ġballot', 5: 'vote' }), 'tokenizer.json');
    const embed = f32Tensor(EMBED, [300, 40], gaussian('embed', 300 * 40, 0.05));
    const changed = addLowRank(moveRows(embed, [5, 17, 42]), 2, 0.01);
    const whole = topDirections(valuesOf(embed), valuesOf(changed), 300, 40, vocab);
    const a = source([embed], 1001), b = source([changed], 1001);
    const streamed = await topDirectionsOf(a, a.tensors[0]!, b, b.tensors[0]!, vocab);
    expect(whole.length).toBe(2);
    expect(streamed).toEqual(whole);
  });
});
