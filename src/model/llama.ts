// Owns the LlamaForCausalLM family: Llama, Mistral and Qwen2 differ only in data (attention biases, the
// sliding window, defaults), so one forward pass serves them all:
//
//   x = embed[ids]
//   for each layer:  h = rmsnorm(x);  q, k, v = h Wq, h Wk, h Wv  (+ biases where the config has them)
//                    q, k = rope(q), rope(k);  x += attention(q, k, v; causal, GQA) Wo
//                    h = rmsnorm(x);  x += (silu(h Wgate) * h Wup) Wdown
//   logits = rmsnorm(x) Whead                (Whead = embed when the embeddings are tied)
//
// transformers: models/llama/modeling_llama.py, models/mistral, models/qwen2.

import { attention, rmsnorm } from '../kernels/index.js';
import { ConfigReader } from './config.js';
import type { Network, PackedBatch } from './network.js';
import { ACTIVATIONS, addInPlace, gatedActivation, type Activation, gatherRows, rope, ropeInverseFrequencies } from './ops.js';
import { linear, type Linear, type WeightBinder } from './weights.js';

export const LLAMA_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM'] as const;
type LlamaArchitecture = (typeof LLAMA_ARCHITECTURES)[number];

/** The transformers config classes' defaults. */
const MAX_POSITIONS_DEFAULT: Record<LlamaArchitecture, number> = { LlamaForCausalLM: 2048, MistralForCausalLM: 4096 * 32, Qwen2ForCausalLM: 32768 };

interface LlamaConfig {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  eps: number;
  invFreq: Float32Array;
  act: Activation;
  qkvBias: boolean;
  outBias: boolean;
  mlpBias: boolean;
  tied: boolean;
  window: number | null;
  maxPositions: number;
}

interface LlamaLayer {
  inputNorm: Float32Array;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  postNorm: Float32Array;
  gate: Linear;
  up: Linear;
  down: Linear;
}

function readConfig(c: ConfigReader, arch: LlamaArchitecture): LlamaConfig {
  const hidden = c.size('hidden_size');
  const heads = c.size('num_attention_heads');
  const kvHeads = c.size('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) throw c.unsupported('num_key_value_heads', kvHeads, `must divide num_attention_heads = ${heads}`);
  const headDim = c.size('head_dim', Math.floor(hidden / heads));
  if (headDim % 2 !== 0) throw c.unsupported('head_dim', headDim, 'RoPE needs an even head dimension');
  if ((c.value('partial_rotary_factor') ?? 1) !== 1) throw c.unsupported('partial_rotary_factor', c.value('partial_rotary_factor'), 'only full rotary embedding is implemented');
  const act = c.oneOf('hidden_act', ['silu', 'swish', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu'], 'silu');
  let window: number | null = null;
  // MistralConfig defaults sliding_window to 4096; an explicit null turns the window off.
  if (arch === 'MistralForCausalLM') window = c.isNull('sliding_window') ? null : c.size('sliding_window', 4096);
  if (arch === 'Qwen2ForCausalLM' && c.bool('use_sliding_window', false)) throw c.unsupported('use_sliding_window', true, 'Qwen2 sliding-window layers are not implemented');
  const attentionBias = arch === 'LlamaForCausalLM' ? c.bool('attention_bias', false) : false;
  return {
    hidden,
    intermediate: c.size('intermediate_size'),
    layers: c.size('num_hidden_layers'),
    heads,
    kvHeads,
    headDim,
    vocab: c.size('vocab_size'),
    eps: c.num('rms_norm_eps', 1e-6),
    invFreq: ropeFrequencies(c, headDim),
    act: ACTIVATIONS[act],
    qkvBias: arch === 'Qwen2ForCausalLM' || attentionBias,
    outBias: attentionBias,
    mlpBias: arch === 'LlamaForCausalLM' ? c.bool('mlp_bias', false) : false,
    tied: c.bool('tie_word_embeddings', false),
    window,
    maxPositions: c.size('max_position_embeddings', MAX_POSITIONS_DEFAULT[arch]),
  };
}

/**
 * RoPE's inverse frequencies, with `rope_scaling` applied as transformers' modeling_rope_utils does:
 * none/`default`; `linear` (every frequency / factor); `llama3` (Llama 3.1+: long wavelengths / factor,
 * short ones kept, the band between interpolated). Other types change attention with sequence length
 * (dynamic, YaRN, LongRoPE) and are refused.
 */
export function ropeFrequencies(c: ConfigReader, headDim: number): Float32Array {
  const inv = ropeInverseFrequencies(headDim, c.num('rope_theta', 10000));
  const scaling = c.value('rope_scaling');
  if (scaling === undefined) return inv;
  if (typeof scaling !== 'object' || Array.isArray(scaling)) throw c.unsupported('rope_scaling', scaling, 'expected an object');
  const s = new ConfigReader(scaling, c.label, `${c.architecture} rope_scaling`);
  const type = s.value('rope_type') ?? s.value('type') ?? 'default';
  if (type === 'default') return inv;
  if (type === 'linear') return inv.map((f) => f / s.num('factor'));
  if (type === 'llama3') {
    const factor = s.num('factor'), low = s.num('low_freq_factor'), high = s.num('high_freq_factor');
    const old = s.num('original_max_position_embeddings');
    const lowWavelen = old / low, highWavelen = old / high;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) return f;
      if (wavelen > lowWavelen) return f / factor;
      const smooth = (old / wavelen - low) / (high - low);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  throw c.unsupported('rope_scaling', scaling, 'implemented: none, default, linear, llama3');
}

export async function loadLlama(c: ConfigReader, w: WeightBinder): Promise<Network> {
  const cfg = readConfig(c, c.architecture as LlamaArchitecture);
  const { hidden: E, intermediate: F, heads, kvHeads, headDim: D, vocab: V } = cfg;
  const embed = await w.weights('model.embed_tokens.weight', [V, E]);
  const layers: LlamaLayer[] = [];
  for (let i = 0; i < cfg.layers; i++) {
    const p = `model.layers.${i}`;
    layers.push({
      inputNorm: await w.tensor(`${p}.input_layernorm.weight`, [E]),
      q: await w.linear(`${p}.self_attn.q_proj`, heads * D, E, cfg.qkvBias),
      k: await w.linear(`${p}.self_attn.k_proj`, kvHeads * D, E, cfg.qkvBias),
      v: await w.linear(`${p}.self_attn.v_proj`, kvHeads * D, E, cfg.qkvBias),
      o: await w.linear(`${p}.self_attn.o_proj`, E, heads * D, cfg.outBias),
      postNorm: await w.tensor(`${p}.post_attention_layernorm.weight`, [E]),
      gate: await w.linear(`${p}.mlp.gate_proj`, F, E, cfg.mlpBias),
      up: await w.linear(`${p}.mlp.up_proj`, F, E, cfg.mlpBias),
      down: await w.linear(`${p}.mlp.down_proj`, E, F, cfg.mlpBias),
    });
  }
  const finalNorm = await w.tensor('model.norm.weight', [E]);
  const head: Linear = cfg.tied ? { w: embed, b: null, inDim: E, outDim: V } : await w.linear('lm_head', V, E, false);


  async function forward(b: PackedBatch): Promise<Float32Array> {
    const T = b.ids.length;
    const x = gatherRows(embed, E, b.ids);
    const h = new Float32Array(T * E);
    const attn = new Float32Array(T * heads * D);
    for (const L of layers) {
      await rmsnorm({ x, rows: T, dim: E, weight: L.inputNorm, eps: cfg.eps, out: h });
      const q = await linear(h, T, L.q), k = await linear(h, T, L.k), v = await linear(h, T, L.v);
      rope(q, T, heads, D, b.positions, cfg.invFreq);
      rope(k, T, kvHeads, D, b.positions, cfg.invFreq);
      await attention({ q, k, v, seqs: b.seqs, heads, kvHeads, headDim: D, scale: 1 / Math.sqrt(D), causal: true, window: cfg.window, out: attn });
      addInPlace(x, await linear(attn, T, L.o));
      await rmsnorm({ x, rows: T, dim: E, weight: L.postNorm, eps: cfg.eps, out: h });
      const gate = await gatedActivation(await linear(h, T, L.gate), await linear(h, T, L.up), cfg.act);
      addInPlace(x, await linear(gate, T, L.down));
    }
    const last = gatherRows(x, E, b.outRows);
    await rmsnorm({ x: last, rows: b.outRows.length, dim: E, weight: finalNorm, eps: cfg.eps, out: last });
    return linear(last, b.outRows.length, head);
  }

  return { kind: 'causal', vocabSize: V, maxPositions: cfg.maxPositions, forward };
}
