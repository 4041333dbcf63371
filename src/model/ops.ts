// Owns the inference engine's elementwise and per-row ops, as plain TypeScript reference code: norms,
// activations, rotary position embedding, softmax and attention. Each is a separate named function on
// Float32Arrays of row-major [rows x dim] activations so a native kernel can replace a hot one behind the
// same call (the matmul already lives in src/kernels). Accumulations are in float64 (JS numbers) and
// stored as f32, which is at least as accurate as PyTorch's f32 kernels.

/** out = x / sqrt(mean(x^2) + eps) * weight, per row (Llama's RMSNorm). `out` may be `x`. */
export function rmsnorm(x: Float32Array, rows: number, dim: number, weight: Float32Array, eps: number, out: Float32Array): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i]! * x[o + i]!;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[o + i] = x[o + i]! * inv * weight[i]!;
  }
  return out;
}

/** out = (x - mean) / sqrt(var + eps) * weight + bias, per row, biased variance (nn.LayerNorm). `out` may be `x`. */
export function layernorm(
  x: Float32Array, rows: number, dim: number, weight: Float32Array, bias: Float32Array | null, eps: number, out: Float32Array,
): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[o + i]!;
    mean /= dim;
    let variance = 0;
    for (let i = 0; i < dim; i++) variance += (x[o + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(variance / dim + eps);
    for (let i = 0; i < dim; i++) out[o + i] = (x[o + i]! - mean) * inv * weight[i]! + (bias ? bias[i]! : 0);
  }
  return out;
}

// ---- activations (in place) ----------------------------------------------------------------------

export function silu(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! / (1 + Math.exp(-x[i]!));
  return x;
}

/** erf by Abramowitz & Stegun 7.1.26: absolute error < 1.5e-7, about one f32 ulp of GELU's (1 + erf) factor. */
export function erf(v: number): number {
  const s = v < 0 ? -1 : 1;
  const a = Math.abs(v);
  if (a > 6) return s;
  const t = 1 / (1 + 0.3275911 * a);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return s * (1 - poly * Math.exp(-a * a));
}

/** The exact GELU: x * Phi(x) (`gelu` in transformers' ACT2FN). */
export function gelu(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = 0.5 * x[i]! * (1 + erf(x[i]! / Math.SQRT2));
  return x;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`). */
export function geluTanh(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    x[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
  }
  return x;
}

export function relu(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) if (x[i]! < 0) x[i] = 0;
  return x;
}

/** Activations by their transformers ACT2FN names; an architecture rejects any other name at load. */
export const ACTIVATIONS = {
  silu,
  swish: silu,
  gelu,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  relu,
} as const satisfies Record<string, (x: Float32Array) => Float32Array>;
export type ActivationName = keyof typeof ACTIVATIONS;
export const ACTIVATION_NAMES = Object.keys(ACTIVATIONS) as ActivationName[];

/** gate = act(gate) * up, elementwise (the gated MLP of Llama: SwiGLU with act = silu). */
export function gatedActivation(gate: Float32Array, up: Float32Array, act: (x: Float32Array) => Float32Array): Float32Array {
  act(gate);
  for (let i = 0; i < gate.length; i++) gate[i] = gate[i]! * up[i]!;
  return gate;
}

/** x += y, elementwise (residual connections). */
export function addInPlace(x: Float32Array, y: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + y[i]!;
  return x;
}

/** out[r] = table[ids[r]] for a [n x dim] table (embedding lookup). */
export function gatherRows(table: Float32Array, dim: number, ids: ArrayLike<number>, out: Float32Array = new Float32Array(ids.length * dim)): Float32Array {
  for (let r = 0; r < ids.length; r++) out.set(table.subarray(ids[r]! * dim, (ids[r]! + 1) * dim), r * dim);
  return out;
}

/** x[r] += table[ids[r]] (learned position and token-type embeddings). */
export function addRows(x: Float32Array, table: Float32Array, dim: number, ids: ArrayLike<number>): Float32Array {
  for (let r = 0; r < ids.length; r++) {
    const t = ids[r]! * dim, o = r * dim;
    for (let i = 0; i < dim; i++) x[o + i] = x[o + i]! + table[t + i]!;
  }
  return x;
}

// ---- rotary position embedding -------------------------------------------------------------------

/** inv_freq[i] = theta^(-2i/dim) for i < dim/2, rounded to f32 as transformers computes it. */
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

// ---- attention -----------------------------------------------------------------------------------

/** Softmax of x[offset, offset + n) in place, max-subtracted. */
export function softmax(x: Float32Array | Float64Array, offset: number, n: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, x[offset + i]!);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[offset + i]! - max);
    x[offset + i] = e;
    sum += e;
  }
  for (let i = 0; i < n; i++) x[offset + i] = x[offset + i]! / sum;
}

export interface AttentionArgs {
  /** [rows x heads*headDim] */
  q: Float32Array;
  /** [rows x kvHeads*headDim]; query head h reads key/value head floor(h / (heads / kvHeads)) (GQA). */
  k: Float32Array;
  v: Float32Array;
  /** The packed sequences: attention never crosses from one to another. */
  seqs: readonly { start: number; length: number }[];
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Scores are q.k * scale. */
  scale: number;
  /** Token i sees tokens j <= i only. */
  causal: boolean;
  /** With causal: token i sees only j > i - window (Mistral's sliding window); null for no window. */
  window: number | null;
  /** [rows x heads*headDim] */
  out: Float32Array;
}

/** Scaled dot-product attention, per sequence and head: out_i = sum_j softmax_j(scale q_i.k_j) v_j. */
export function attention(a: AttentionArgs): Float32Array {
  const { q, k, v, heads, kvHeads, headDim, scale, out } = a;
  const group = heads / kvHeads;
  const qStride = heads * headDim, kvStride = kvHeads * headDim;
  let scores = new Float64Array(0);
  for (const seq of a.seqs) {
    if (scores.length < seq.length) scores = new Float64Array(seq.length);
    for (let h = 0; h < heads; h++) {
      const kvOff = Math.floor(h / group) * headDim;
      for (let i = 0; i < seq.length; i++) {
        const hi = a.causal ? i + 1 : seq.length;
        const lo = a.causal && a.window !== null ? Math.max(0, i - a.window + 1) : 0;
        const qo = (seq.start + i) * qStride + h * headDim;
        for (let j = lo; j < hi; j++) {
          const ko = (seq.start + j) * kvStride + kvOff;
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[qo + d]! * k[ko + d]!;
          scores[j - lo] = dot * scale;
        }
        softmax(scores, 0, hi - lo);
        const oo = (seq.start + i) * qStride + h * headDim;
        for (let d = 0; d < headDim; d++) {
          let acc = 0;
          for (let j = lo; j < hi; j++) acc += scores[j - lo]! * v[(seq.start + j) * kvStride + kvOff + d]!;
          out[oo + d] = acc;
        }
      }
    }
  }
  return out;
}
