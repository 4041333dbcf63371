// Owns checkpoints with known changes for the diff tests: float tensors with Gaussian-like seeded values
// and edits whose ground truth is known by construction (a merged rank-r LoRA update, a 1% sparse
// update, a rescaling, changed token rows, sign flips), plus a matching tokenizer.json.

import { Prng, type TensorInput } from './models.js';

/** Approximately standard normal values (sum of 4 uniforms, rescaled), seeded. */
export function gaussian(seed: string, n: number, scale = 1): Float64Array {
  const prng = new Prng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += prng.nextU32() / 4294967296;
    out[i] = (s - 2) * Math.sqrt(3) * scale;
  }
  return out;
}

export function f32Tensor(name: string, shape: readonly number[], values: ArrayLike<number>): TensorInput {
  const data = Buffer.from(Float32Array.from(values).buffer);
  return { name, dtype: 'F32', shape: [...shape], data };
}

export function valuesOf(t: TensorInput): Float32Array {
  return new Float32Array(Uint8Array.from(t.data).buffer);
}

export function withValues(t: TensorInput, values: ArrayLike<number>): TensorInput {
  return f32Tensor(t.name, t.shape, values);
}

/** A small transformer-shaped F32 model with Gaussian weights (scale 0.05, norms 1). */
export function gaussianModel(opts: { seed?: string; layers?: number; hidden?: number; vocab?: number } = {}): TensorInput[] {
  const { seed = 'g', layers = 2, hidden = 48, vocab = 64 } = opts;
  const t = (name: string, shape: number[], scale = 0.05) => f32Tensor(name, shape, gaussian(`${seed}/${name}`, shape.reduce((a, b) => a * b, 1), scale));
  const out: TensorInput[] = [t('model.embed_tokens.weight', [vocab, hidden])];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    for (const proj of ['q', 'k', 'v', 'o']) out.push(t(`${p}.self_attn.${proj}_proj.weight`, [hidden, hidden]));
    out.push(t(`${p}.mlp.up_proj.weight`, [2 * hidden, hidden]));
    out.push(t(`${p}.mlp.down_proj.weight`, [hidden, 2 * hidden]));
    out.push(f32Tensor(`${p}.input_layernorm.weight`, [hidden], new Float64Array(hidden).fill(1)));
  }
  out.push(f32Tensor('model.norm.weight', [hidden], new Float64Array(hidden).fill(1)), t('lm_head.weight', [vocab, hidden]));
  return out;
}

export function edit(model: TensorInput[], name: string, change: (t: TensorInput) => TensorInput): TensorInput[] {
  let found = false;
  const out = model.map((t) => {
    if (t.name !== name) return t;
    found = true;
    return change(t);
  });
  if (!found) throw new Error(`no tensor ${name}`);
  return out;
}

/** W + B·A with B (rows x r) and A (r x cols) Gaussian: an exactly rank-r update of size `scale`. */
export function addLowRank(t: TensorInput, r: number, scale = 0.01, seed = 'lora'): TensorInput {
  const [rows, cols] = [t.shape[0]!, t.shape[1]!];
  const b = gaussian(`${seed}/${t.name}/B`, rows * r);
  const a = gaussian(`${seed}/${t.name}/A`, r * cols);
  const w = valuesOf(t);
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += b[i * r + k]! * a[k * cols + j]!;
      out[i * cols + j] = w[i * cols + j]! + (scale * s) / Math.sqrt(r);
    }
  }
  return withValues(t, out);
}

/** Changes exactly `count` elements (chosen without repetition), each by a random amount. */
export function addSparse(t: TensorInput, count: number, seed = 'sparse'): { tensor: TensorInput; indices: number[] } {
  const w = Float64Array.from(valuesOf(t));
  const prng = new Prng(`${seed}/${t.name}`);
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(prng.below(w.length));
  const noise = gaussian(`${seed}/${t.name}/v`, count, 0.02);
  [...chosen].forEach((j, k) => (w[j] = w[j]! + noise[k]! + (noise[k]! >= 0 ? 1e-3 : -1e-3)));
  return { tensor: withValues(t, w), indices: [...chosen].sort((a, b) => a - b) };
}

export function rescale(t: TensorInput, factor: number): TensorInput {
  return withValues(t, Array.from(valuesOf(t), (v) => v * factor));
}

/** Adds a random vector to each listed row, larger for earlier rows (so their order is known). */
export function moveRows(t: TensorInput, rows: number[], seed = 'rows'): TensorInput {
  const cols = t.shape[1]!;
  const w = Float64Array.from(valuesOf(t));
  rows.forEach((r, k) => {
    const v = gaussian(`${seed}/${t.name}/${r}`, cols, 0.05 * (rows.length - k));
    for (let c = 0; c < cols; c++) w[r * cols + c] = w[r * cols + c]! + v[c]!;
  });
  return withValues(t, w);
}

/** Negates a share of the elements (every k-th). */
export function flipSigns(t: TensorInput, every: number): TensorInput {
  return withValues(t, Array.from(valuesOf(t), (v, i) => (i % every === 0 ? -v : v)));
}

/** A dense random update. */
export function addDense(t: TensorInput, scale = 0.01, seed = 'dense'): TensorInput {
  const n = gaussian(`${seed}/${t.name}`, t.data.length / 4, scale);
  return withValues(t, Array.from(valuesOf(t), (v, i) => v + n[i]!));
}

/** A tokenizer.json (byte-level BPE, as GPT-2 / Llama 3 write it) whose vocabulary has `size` entries. */
export function tokenizerJson(size: number, named: Record<number, string> = {}): string {
  const vocab: Record<string, number> = {};
  for (let id = 0; id < size; id++) vocab[named[id] ?? `tok${id}`] = id;
  return JSON.stringify({
    version: '1.0',
    added_tokens: [{ id: 0, content: '<|endoftext|>', special: true }],
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false },
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab, merges: [] },
  });
}
