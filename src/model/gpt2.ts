// Owns GPT2LMHeadModel:
//
//   x = wte[ids] + wpe[positions]
//   for each layer:  h = layernorm(x);  q, k, v = split(h Wattn + b)     (Conv1D, transposed at load)
//                    x += attention(q, k, v; causal) Wproj + b
//                    h = layernorm(x);  x += act(h Wfc + b) Wproj2 + b
//   logits = layernorm(x) wte                 (the head is always tied to wte in GPT-2)
//
// transformers: models/gpt2/modeling_gpt2.py. Checkpoints name tensors with or without the `transformer.`
// prefix (the original OpenAI upload has none) and may hold the causal-mask buffers `attn.bias`, unused here.

import { attention, layernorm } from '../kernels/index.js';
import type { ConfigReader } from './config.js';
import type { Network, PackedBatch } from './network.js';
import { ACTIVATIONS, addInPlace, addRows, gatherRows } from './ops.js';
import { linear, type Linear, type Norm, type WeightBinder } from './weights.js';

interface Gpt2Layer {
  ln1: Norm;
  attn: Linear;
  proj: Linear;
  ln2: Norm;
  fc: Linear;
  mlpProj: Linear;
}

export async function loadGpt2(c: ConfigReader, w: WeightBinder): Promise<Network> {
  const E = c.size('n_embd'), heads = c.size('n_head'), V = c.size('vocab_size'), P = c.size('n_positions');
  const F = c.size('n_inner', 4 * E);
  if (E % heads !== 0) throw c.unsupported('n_head', heads, `must divide n_embd = ${E}`);
  const D = E / heads;
  const eps = c.num('layer_norm_epsilon', 1e-5);
  const act = ACTIVATIONS[c.oneOf('activation_function', ['gelu_new', 'gelu', 'gelu_pytorch_tanh', 'relu', 'silu', 'swish'], 'gelu_new')];
  const scaleWeights = c.bool('scale_attn_weights', true);
  const scaleByLayer = c.bool('scale_attn_by_inverse_layer_idx', false);
  if (c.value('add_cross_attention') === true) throw c.unsupported('add_cross_attention', true, 'encoder-decoder GPT-2 is not implemented');

  const p = w.has('transformer.wte.weight') ? 'transformer.' : '';
  const wte = await w.weights(`${p}wte.weight`, [V, E]);
  const wpe = await w.weights(`${p}wpe.weight`, [P, E]);
  const layers: Gpt2Layer[] = [];
  for (let i = 0; i < c.size('n_layer'); i++) {
    const l = `${p}h.${i}`;
    layers.push({
      ln1: await w.norm(`${l}.ln_1.weight`, E, `${l}.ln_1.bias`),
      attn: await w.conv1d(`${l}.attn.c_attn`, E, 3 * E),
      proj: await w.conv1d(`${l}.attn.c_proj`, E, E),
      ln2: await w.norm(`${l}.ln_2.weight`, E, `${l}.ln_2.bias`),
      fc: await w.conv1d(`${l}.mlp.c_fc`, E, F),
      mlpProj: await w.conv1d(`${l}.mlp.c_proj`, F, E),
    });
  }
  const lnF = await w.norm(`${p}ln_f.weight`, E, `${p}ln_f.bias`);
  const head: Linear = c.bool('tie_word_embeddings', true) ? { w: wte, b: null, inDim: E, outDim: V } : await w.linear('lm_head', V, E, false);


  async function forward(b: PackedBatch): Promise<Float32Array> {
    const T = b.ids.length;
    const x = addRows(gatherRows(wte, E, b.ids), wpe, E, b.positions);
    const h = new Float32Array(T * E);
    const q = new Float32Array(T * E), k = new Float32Array(T * E), v = new Float32Array(T * E);
    const attn = new Float32Array(T * E);
    for (let i = 0; i < layers.length; i++) {
      const L = layers[i]!;
      await layernorm({ x, rows: T, dim: E, weight: L.ln1.weight, bias: L.ln1.bias, eps, out: h });
      const qkv = await linear(h, T, L.attn);
      for (let r = 0; r < T; r++) {
        q.set(qkv.subarray(r * 3 * E, r * 3 * E + E), r * E);
        k.set(qkv.subarray(r * 3 * E + E, r * 3 * E + 2 * E), r * E);
        v.set(qkv.subarray(r * 3 * E + 2 * E, r * 3 * E + 3 * E), r * E);
      }
      const scale = (scaleWeights ? 1 / Math.sqrt(D) : 1) / (scaleByLayer ? i + 1 : 1);
      await attention({ q, k, v, seqs: b.seqs, heads, kvHeads: heads, headDim: D, scale, causal: true, window: null, out: attn });
      addInPlace(x, await linear(attn, T, L.proj));
      await layernorm({ x, rows: T, dim: E, weight: L.ln2.weight, bias: L.ln2.bias, eps, out: h });
      addInPlace(x, await linear(await act(await linear(h, T, L.fc)), T, L.mlpProj));
    }
    const last = gatherRows(x, E, b.outRows);
    await layernorm({ x: last, rows: b.outRows.length, dim: E, weight: lnF.weight, bias: lnF.bias, eps, out: last });
    return linear(last, b.outRows.length, head);
  }

  return { kind: 'causal', vocabSize: V, maxPositions: P, forward };
}
