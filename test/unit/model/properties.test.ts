// Properties of the engine that follow from the equations rather than from a reference's numbers:
// Mistral's sliding window against RoPE's invariance to shifting every position, RoPE scaling, the
// byte-level tokenizer's round trip, and the tensor-name variants of real checkpoints.

import fc from 'fast-check';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { fileTensorSource, type TensorSource } from '../../../src/model/index.js';
import { ConfigReader } from '../../../src/model/config.js';
import { ropeFrequencies } from '../../../src/model/llama.js';
import { PROJECT_ROOT } from '../../helpers/repo.js';
import { loadModelDir, readJson } from './helpers.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'models');
const MISTRAL = join(FIXTURES, 'mistral-tiny');

function maxRelativeDiff(a: Float32Array, b: Float32Array): number {
  let range = 0, worst = 0, lo = Infinity, hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    lo = Math.min(lo, b[i]!);
    hi = Math.max(hi, b[i]!);
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  range = hi - lo;
  return worst / range;
}

describe('sliding window (MistralForCausalLM)', () => {
  // With one layer, the last token under a window of w sees exactly the last w tokens; RoPE scores depend
  // only on position differences, so that equals running those w tokens alone from position 0.
  const ids = [5, 17, 3, 40, 22, 9, 31, 12, 8, 27];
  const oneLayer = (window: number | null) => ({ ...readJson(MISTRAL, 'config.json'), num_hidden_layers: 1, sliding_window: window });

  it('the last token under a window of 4 sees exactly the last 4 tokens', async () => {
    const windowed = await loadModelDir(MISTRAL, { config: oneLayer(4) });
    const full = await loadModelDir(MISTRAL, { config: oneLayer(null) });
    const [w] = await windowed.logits([{ ids, positions: [ids.length - 1] }]);
    const [tail] = await full.logits([{ ids: ids.slice(-4), positions: [3] }]);
    const [unwindowed] = await full.logits([{ ids, positions: [ids.length - 1] }]);
    expect(maxRelativeDiff(w!, tail!)).toBeLessThanOrEqual(1e-5);
    expect(maxRelativeDiff(w!, unwindowed!)).toBeGreaterThan(1e-3); // the window changed something
  });

  it('a window as long as the sequence changes nothing', async () => {
    const [a] = await (await loadModelDir(MISTRAL, { config: oneLayer(ids.length) })).logits([{ ids, positions: [9, 4] }]);
    const [b] = await (await loadModelDir(MISTRAL, { config: oneLayer(null) })).logits([{ ids, positions: [9, 4] }]);
    expect(a).toEqual(b);
  });
});

describe('tokenizer', () => {
  it('byte-level BPE (gpt2-tiny) decodes what it encodes, for any text', async () => {
    const tok = (await loadModelDir(join(FIXTURES, 'gpt2-tiny'))).tokenizer!;
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }), { numRuns: 200 });
  });
});

describe('rope_scaling', () => {
  const freqs = (rope_scaling: unknown) =>
    ropeFrequencies(new ConfigReader({ rope_theta: 500000, rope_scaling }, 'test', 'LlamaForCausalLM'), 64);

  it('llama3 matches transformers\' _compute_llama3_parameters (Llama 3.2 values)', () => {
    // Made with numpy in float64 from transformers 4.46 modeling_rope_utils._compute_llama3_parameters:
    //   inv = 1 / 500000 ** (arange(0, 64, 2) / 64); wl = 2 pi / inv; r = where(wl > 8192, inv / 32, inv)
    //   sm = (8192 / wl - 1) / 3; med = !(wl < 2048) & !(wl > 8192); where(med, (1 - sm) r / 32 + sm r, r)
    const expected = [1.0, 0.663601238, 0.440366603, 0.292227823, 0.193922745, 0.128687373, 0.0853971003, 0.0566696214,
      0.0376060309, 0.0249554087, 0.0165604401, 0.0109895285, 0.00729266474, 0.00483942135, 0.00321144599, 0.00129054793,
      0.000429556797, 9.7082878e-05, 1.94616382e-05, 1.29147672e-05, 8.57025549e-06, 5.68723215e-06, 3.77405429e-06,
      2.5044671e-06, 1.66196747e-06, 1.10288367e-06, 7.31874968e-07, 4.85673134e-07, 3.22293293e-07, 2.13874228e-07,
      1.41927203e-07, 9.41830673e-08];
    const got = freqs({ rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expected.forEach((e, i) => expect(Math.abs(got[i]! - e) / e, `frequency ${i}`).toBeLessThanOrEqual(1e-6));
  });

  it('linear divides every frequency by the factor; default and none change nothing', () => {
    const none = freqs(null);
    expect(freqs({ type: 'default' })).toEqual(none);
    freqs({ type: 'linear', factor: 4 }).forEach((f, i) => expect(f).toBeCloseTo(none[i]! / 4, 12));
  });

  it('a llama3 scaling without its parameters names the missing one', () => {
    expect(() => freqs({ rope_type: 'llama3', factor: 8 })).toThrow(/low_freq_factor/);
  });
});

/** `dir`'s checkpoint with every tensor name passed through `rename`. */
async function renamed(dir: string, rename: (name: string) => string): Promise<TensorSource> {
  const inner = await fileTensorSource(join(dir, 'model.safetensors'));
  const back = new Map((await inner.list()).map((t) => [rename(t.name), t.name]));
  return {
    list: async () => (await inner.list()).map((t) => ({ ...t, name: rename(t.name) })),
    read: (name) => inner.read(back.get(name) ?? name),
  };
}

describe('tensor names of real checkpoints', () => {
  async function sameLogits(dir: string, tensors: TensorSource): Promise<void> {
    const ids = readJson(dir, 'expected.json').cases[0].ids as number[];
    const positions = ids.map((_, i) => i);
    const [a] = await (await loadModelDir(dir, { tensors })).logits([{ ids, positions }]);
    const [b] = await (await loadModelDir(dir)).logits([{ ids, positions }]);
    expect(a).toEqual(b);
  }

  it('GPT-2 without the transformer. prefix (the original OpenAI upload)', async () => {
    const dir = join(FIXTURES, 'gpt2-tiny');
    const tensors = await renamed(dir, (n) => n.replace(/^transformer\./, ''));
    expect((await tensors.list()).map((t) => t.name)).toContain('wte.weight');
    await sameLogits(dir, tensors);
  });

  it('BERT LayerNorms as gamma/beta (checkpoints converted from TensorFlow)', async () => {
    const dir = join(FIXTURES, 'bert-tiny');
    const tensors = await renamed(dir, (n) => n.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta'));
    expect((await tensors.list()).map((t) => t.name)).toContain('bert.embeddings.LayerNorm.gamma');
    await sameLogits(dir, tensors);
  });
});
