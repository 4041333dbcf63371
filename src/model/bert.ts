// Owns the BERT family of masked LMs: BertForMaskedLM, RobertaForMaskedLM and DistilBertForMaskedLM share
// one post-LN encoder and differ only in data (tensor names, config names, RoBERTa's position offset,
// token types or not, the head's activation), so one forward pass serves them all:
//
//   x = layernorm(word[ids] + position[pos] + tokenType[0])
//   for each layer:  x = layernorm(x + attention(x Wq, x Wk, x Wv; bidirectional per sequence) Wo)
//                    x = layernorm(x + act(x W1) W2)
//   logits = layernorm(act(x Wdense)) Wdecoder + bias     (Wdecoder = word embeddings when tied)
//
// Each sequence of a batch attends to all of its own tokens and none of another's, so no padding is needed.
// transformers: models/bert/modeling_bert.py, models/roberta, models/distilbert.

import { attention, layernorm } from '../kernels/index.js';
import type { ConfigReader } from './config.js';
import type { Network, PackedBatch } from './network.js';
import { ACTIVATIONS, addInPlace, addRows, gatherRows, type ActivationName } from './ops.js';
import { linear, type Linear, type Norm, type WeightBinder } from './weights.js';

export const ENCODER_ARCHITECTURES = ['BertForMaskedLM', 'RobertaForMaskedLM', 'DistilBertForMaskedLM'] as const;
type EncoderArchitecture = (typeof ENCODER_ARCHITECTURES)[number];

const ACT_NAMES: ActivationName[] = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu', 'swish'];

interface EncoderLayer {
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  attnNorm: Norm;
  fc: Linear;
  out: Linear;
  outNorm: Norm;
}

/** Where one variant keeps its tensors and how it names its config. */
interface Variant {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  vocab: number;
  positions: number;
  eps: number;
  headEps: number;
  act: ActivationName;
  headAct: ActivationName;
  /** RoBERTa numbers positions from pad_token_id + 1 and gives pad tokens position pad_token_id. */
  paddingIdx: number | null;
  embeddings: string;
  hasTokenTypes: boolean;
  layer: (i: number) => { q: string; k: string; v: string; o: string; attnNorm: string; fc: string; out: string; outNorm: string };
  head: { dense: string; norm: string; decoder: string; bias: string[] };
}

function variant(c: ConfigReader, arch: EncoderArchitecture): Variant {
  if (arch === 'DistilBertForMaskedLM') {
    const act = c.oneOf('activation', ACT_NAMES, 'gelu');
    const p = 'distilbert.transformer.layer';
    return {
      hidden: c.size('dim'), layers: c.size('n_layers'), heads: c.size('n_heads'), intermediate: c.size('hidden_dim'),
      vocab: c.size('vocab_size'), positions: c.size('max_position_embeddings'),
      eps: 1e-12, headEps: 1e-12, // fixed in modeling_distilbert.py, not in the config
      act, headAct: act, paddingIdx: null, embeddings: 'distilbert.embeddings', hasTokenTypes: false,
      layer: (i) => ({
        q: `${p}.${i}.attention.q_lin`, k: `${p}.${i}.attention.k_lin`, v: `${p}.${i}.attention.v_lin`, o: `${p}.${i}.attention.out_lin`,
        attnNorm: `${p}.${i}.sa_layer_norm`, fc: `${p}.${i}.ffn.lin1`, out: `${p}.${i}.ffn.lin2`, outNorm: `${p}.${i}.output_layer_norm`,
      }),
      head: { dense: 'vocab_transform', norm: 'vocab_layer_norm', decoder: 'vocab_projector', bias: ['vocab_projector.bias'] },
    };
  }
  const roberta = arch === 'RobertaForMaskedLM';
  const positionType = c.value('position_embedding_type') ?? 'absolute';
  if (positionType !== 'absolute') throw c.unsupported('position_embedding_type', positionType, 'only absolute position embeddings are implemented');
  if (c.value('is_decoder') === true) throw c.unsupported('is_decoder', true, 'only the bidirectional encoder is implemented');
  const act = c.oneOf('hidden_act', ACT_NAMES, 'gelu');
  const root = roberta ? 'roberta' : 'bert';
  const p = `${root}.encoder.layer`;
  const eps = c.num('layer_norm_eps', 1e-12);
  const paddingIdx = roberta ? c.int('pad_token_id', 1) : null;
  return {
    hidden: c.size('hidden_size'), layers: c.size('num_hidden_layers'), heads: c.size('num_attention_heads'),
    intermediate: c.size('intermediate_size'), vocab: c.size('vocab_size'),
    positions: c.size('max_position_embeddings', 512),
    eps, headEps: eps,
    act, headAct: roberta ? 'gelu' : act, // RobertaLMHead applies gelu whatever hidden_act says
    paddingIdx, embeddings: `${root}.embeddings`, hasTokenTypes: c.int('type_vocab_size', 2) > 0,
    layer: (i) => ({
      q: `${p}.${i}.attention.self.query`, k: `${p}.${i}.attention.self.key`, v: `${p}.${i}.attention.self.value`,
      o: `${p}.${i}.attention.output.dense`, attnNorm: `${p}.${i}.attention.output.LayerNorm`,
      fc: `${p}.${i}.intermediate.dense`, out: `${p}.${i}.output.dense`, outNorm: `${p}.${i}.output.LayerNorm`,
    }),
    head: roberta
      ? { dense: 'lm_head.dense', norm: 'lm_head.layer_norm', decoder: 'lm_head.decoder', bias: ['lm_head.bias', 'lm_head.decoder.bias'] }
      : { dense: 'cls.predictions.transform.dense', norm: 'cls.predictions.transform.LayerNorm', decoder: 'cls.predictions.decoder', bias: ['cls.predictions.bias', 'cls.predictions.decoder.bias'] },
  };
}

/** A LayerNorm stored as weight/bias, or as gamma/beta in checkpoints converted from TensorFlow. */
async function layerNorm(w: WeightBinder, base: string, dim: number): Promise<Norm> {
  const weight = w.pick([`${base}.weight`, `${base}.gamma`]);
  return w.norm(weight, dim, weight.endsWith('.gamma') ? `${base}.beta` : `${base}.bias`);
}

export async function loadEncoder(c: ConfigReader, w: WeightBinder): Promise<Network> {
  const v = variant(c, c.architecture as EncoderArchitecture);
  const { hidden: E, heads, intermediate: F, vocab: V } = v;
  if (E % heads !== 0) throw c.unsupported('num_attention_heads', heads, `must divide the hidden size ${E}`);
  const D = E / heads;
  const word = await w.weights(`${v.embeddings}.word_embeddings.weight`, [V, E]);
  const position = await w.weights(`${v.embeddings}.position_embeddings.weight`, [v.positions, E]);
  const tokenType = v.hasTokenTypes
    ? (await w.tensor(`${v.embeddings}.token_type_embeddings.weight`, [c.size('type_vocab_size', 2), E])).subarray(0, E)
    : null;
  const embNorm = await layerNorm(w, `${v.embeddings}.LayerNorm`, E);
  const layers: EncoderLayer[] = [];
  for (let i = 0; i < v.layers; i++) {
    const n = v.layer(i);
    layers.push({
      q: await w.linear(n.q, E, E, true), k: await w.linear(n.k, E, E, true), v: await w.linear(n.v, E, E, true),
      o: await w.linear(n.o, E, E, true), attnNorm: await layerNorm(w, n.attnNorm, E),
      fc: await w.linear(n.fc, F, E, true), out: await w.linear(n.out, E, F, true), outNorm: await layerNorm(w, n.outNorm, E),
    });
  }
  const dense = await w.linear(v.head.dense, E, E, true);
  const headNorm = await layerNorm(w, v.head.norm, E);
  const decoder: Linear = {
    w: c.bool('tie_word_embeddings', true) ? word : await w.weights(`${v.head.decoder}.weight`, [V, E]),
    b: await w.tensor(w.pick(v.head.bias), [V]),
    inDim: E,
    outDim: V,
  };
  const act = ACTIVATIONS[v.act], headAct = ACTIVATIONS[v.headAct];
  const offset = v.paddingIdx === null ? 0 : v.paddingIdx + 1;


  /** Position-table rows: the token's index, or RoBERTa's count of non-pad tokens so far plus padding_idx. */
  function positionRows(b: PackedBatch): Int32Array {
    if (v.paddingIdx === null) return b.positions;
    const rows = new Int32Array(b.ids.length);
    for (const s of b.seqs) {
      let seen = 0;
      for (let i = s.start; i < s.start + s.length; i++) rows[i] = b.ids[i] === v.paddingIdx ? v.paddingIdx : v.paddingIdx + ++seen;
    }
    return rows;
  }

  async function forward(b: PackedBatch): Promise<Float32Array> {
    const T = b.ids.length;
    const x = addRows(gatherRows(word, E, b.ids), position, E, positionRows(b));
    if (tokenType) addRows(x, tokenType, E, new Int32Array(T)); // token_type_ids are all 0
    await layernorm({ x, rows: T, dim: E, weight: embNorm.weight, bias: embNorm.bias, eps: v.eps, out: x });
    const attn = new Float32Array(T * E);
    for (const L of layers) {
      const q = await linear(x, T, L.q), k = await linear(x, T, L.k), val = await linear(x, T, L.v);
      await attention({ q, k, v: val, seqs: b.seqs, heads, kvHeads: heads, headDim: D, scale: 1 / Math.sqrt(D), causal: false, window: null, out: attn });
      addInPlace(x, await linear(attn, T, L.o));
      await layernorm({ x, rows: T, dim: E, weight: L.attnNorm.weight, bias: L.attnNorm.bias, eps: v.eps, out: x });
      addInPlace(x, await linear(await act(await linear(x, T, L.fc)), T, L.out));
      await layernorm({ x, rows: T, dim: E, weight: L.outNorm.weight, bias: L.outNorm.bias, eps: v.eps, out: x });
    }
    const h = await headAct(await linear(gatherRows(x, E, b.outRows), b.outRows.length, dense));
    await layernorm({ x: h, rows: b.outRows.length, dim: E, weight: headNorm.weight, bias: headNorm.bias, eps: v.headEps, out: h });
    return linear(h, b.outRows.length, decoder);
  }

  return { kind: 'masked', vocabSize: V, maxPositions: v.positions - offset, forward };
}
