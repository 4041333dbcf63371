// Owns the inference engine's small ops that are not native kernels: rotary position embedding, residual
// adds, embedding lookups, and the table mapping transformers' activation names onto the kernels'
// activation. Each is a separate named function on Float32Arrays of row-major [rows x dim] activations so
// a native kernel can replace one behind the same call (matmul, attention, norms and GELU/SiLU already
// live in src/kernels). Accumulations are in float64 (JS numbers), stored as f32. Embedding tables may
// be held as F16/BF16 Weights: a looked-up row is widened exactly, as matmul widens rows of W.

import { activation, asWeights, widenWeights, type Weights } from '../kernels/index.js';

// ---- activations (in place) ----------------------------------------------------------------------

export type Activation = (x: Float32Array) => Promise<Float32Array>;

function relu(x: Float32Array): Promise<Float32Array> {
  for (let i = 0; i < x.length; i++) if (x[i]! < 0) x[i] = 0;
  return Promise.resolve(x);
}

const silu: Activation = (x) => activation({ x, fn: 'silu' });
const gelu: Activation = (x) => activation({ x, fn: 'gelu' });
const geluTanh: Activation = (x) => activation({ x, fn: 'gelu_tanh' });

/** Activations by their transformers ACT2FN names; an architecture rejects any other name at load. */
export const ACTIVATIONS = {
  silu,
  swish: silu,
  gelu,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  relu,
} as const satisfies Record<string, Activation>;
export type ActivationName = keyof typeof ACTIVATIONS;

/** gate = act(gate) * up, elementwise (the gated MLP of Llama: SwiGLU with act = silu). */
export async function gatedActivation(gate: Float32Array, up: Float32Array, act: Activation): Promise<Float32Array> {
  await act(gate);
  for (let i = 0; i < gate.length; i++) gate[i] = gate[i]! * up[i]!;
  return gate;
}

/** x += y, elementwise (residual connections). */
export function addInPlace(x: Float32Array, y: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + y[i]!;
  return x;
}

/** out[r] = table[ids[r]] for a [n x dim] table (embedding lookup; also picks rows of activations). */
export function gatherRows(table: Float32Array | Weights, dim: number, ids: ArrayLike<number>, out: Float32Array = new Float32Array(ids.length * dim)): Float32Array {
  const t = asWeights(table);
  for (let r = 0; r < ids.length; r++) widenWeights(t, ids[r]! * dim, out.subarray(r * dim, (r + 1) * dim));
  return out;
}

/** x[r] += table[ids[r]] (learned position and token-type embeddings). */
export function addRows(x: Float32Array, table: Float32Array | Weights, dim: number, ids: ArrayLike<number>): Float32Array {
  const t = asWeights(table);
  const row = t.dtype === 'F32' ? null : new Float32Array(dim);
  for (let r = 0; r < ids.length; r++) {
    const start = ids[r]! * dim, o = r * dim;
    const values = row ? widenWeights(t, start, row) : t.data.subarray(start, start + dim);
    for (let i = 0; i < dim; i++) x[o + i] = x[o + i]! + values[i]!;
  }
  return x;
}

// ---- rotary position embedding -------------------------------------------------------------------

/** inv_freq[i] = theta^(-2i/dim) for i < dim/2, held in f32 as transformers holds it. */
export function ropeInverseFrequencies(dim: number, theta: number): Float32Array {
  const inv = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inv[i] = 1 / theta ** ((2 * i) / dim);
  return inv;
}

/**
 * Rotates each head of each row by its token's position, in transformers' "rotate_half" layout: the
 * pair (x[i], x[i + half]) turns by angle position * inv_freq[i]. x is [rows x heads*headDim], in place.
 */
export function rope(x: Float32Array, rows: number, heads: number, headDim: number, positions: ArrayLike<number>, invFreq: Float32Array): Float32Array {
  const half = headDim / 2;
  const cos = new Float64Array(half), sin = new Float64Array(half);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(positions[r]! * invFreq[i]!); // transformers forms the angle in f32
      cos[i] = Math.cos(angle);
      sin[i] = Math.sin(angle);
    }
    for (let h = 0; h < heads; h++) {
      const o = (r * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = x[o + i]!, b = x[o + i + half]!;
        x[o + i] = a * cos[i]! - b * sin[i]!;
        x[o + i + half] = b * cos[i]! + a * sin[i]!;
      }
    }
  }
  return x;
}
