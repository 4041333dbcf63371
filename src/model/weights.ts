// Owns binding a checkpoint's tensors to an architecture: each is looked up by name once, at load, its
// shape checked against the config, and handed to the architecture's typed per-layer structs. The
// forward pass never sees a tensor name. Matrices (Linear weights, embedding tables, the head) stay in
// the checkpoint's dtype when it is F16 or BF16: the kernels widen them to f32 piece by piece as they
// read them, so a half-precision checkpoint takes its own size in memory rather than twice that, with
// bit for bit the logits of widening at load. Small tensors (norms, biases) are widened to F32 here, as
// is any F64 tensor. A name requested twice returns the same array, which is how tied embeddings share
// one copy.

import { isFloatDType, matmul, toF32, type Weights } from '../kernels/index.js';
import { ModelError } from './errors.js';
import type { TensorInfo, TensorSource } from './types.js';

/** y = x W^T + b with W as outDim x inDim (nn.Linear layout). */
export interface Linear {
  w: Weights;
  b: Float32Array | null;
  inDim: number;
  outDim: number;
}

/** x W^T + b for `rows` rows of x, through the kernels' matmul. */
export function linear(x: Float32Array, rows: number, l: Linear): Promise<Float32Array> {
  return matmul({ x, w: l.w, rows, inDim: l.inDim, outDim: l.outDim, bias: l.b ?? undefined });
}

export interface Norm {
  weight: Float32Array;
  bias: Float32Array | null;
}

/** src [rows x cols] transposed into dst [cols x rows]. */
function transpose<T extends Float32Array | Uint16Array>(src: T, rows: number, cols: number, dst: T): T {
  for (let i = 0; i < rows; i++) {
    for (let o = 0; o < cols; o++) dst[o * rows + i] = src[i * cols + o]!;
  }
  return dst;
}

/**
 * The bytes as an array of `Ctor`'s elements: in place when the array owns its whole buffer; a copy when
 * it is a view into a larger buffer (a source that read several tensors at once), so that the weights
 * never pin memory they do not use.
 */
function ownArray<T extends Float32Array | Uint16Array>(bytes: Uint8Array, Ctor: { new (b: ArrayBufferLike, o: number, n: number): T; new (n: number): T; BYTES_PER_ELEMENT: number }): T {
  const n = bytes.byteLength / Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return new Ctor(bytes.buffer, 0, n);
  const copy = new Ctor(n);
  new Uint8Array(copy.buffer).set(bytes);
  return copy;
}

export class WeightBinder {
  private readonly loaded = new Map<string, Weights>();

  private constructor(private readonly source: TensorSource, private readonly infos: Map<string, TensorInfo>, readonly label: string) {}

  static async open(source: TensorSource, label: string): Promise<WeightBinder> {
    const infos = new Map((await source.list()).map((t) => [t.name, t] as const));
    return new WeightBinder(source, infos, label);
  }

  has(name: string): boolean {
    return this.infos.has(name);
  }

  /** The first of `names` the checkpoint holds (checkpoints of one architecture differ in prefixes and old names). */
  pick(names: string[]): string {
    const found = names.find((n) => this.infos.has(n));
    if (found === undefined) throw this.missing(names[0]!, names.slice(1));
    return found;
  }

  /** The tensor `name` as F32, checked to have exactly `shape`: for the small tensors (norms, biases). */
  async tensor(name: string, shape: number[]): Promise<Float32Array> {
    const w = await this.weights(name, shape);
    if (w.dtype === 'F32') return w.data;
    const f32 = await toF32(w.data, w.dtype);
    this.loaded.set(name, { dtype: 'F32', data: f32 });
    return f32;
  }

  /**
   * The matrix `name` (a Linear weight, an embedding table), checked to have exactly `shape`, in its
   * stored dtype when that is F32, F16 or BF16 (F64 is converted to F32). F32 and F16/BF16 tensors that
   * own their buffer are used without a copy.
   */
  async weights(name: string, shape: number[]): Promise<Weights> {
    const info = this.infos.get(name);
    if (!info) throw this.missing(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new ModelError('E_MODEL_TENSOR', this.label, `tensor ${name} has shape [${info.shape.join(', ')}], the config implies [${shape.join(', ')}]`,
        { data: { tensor: name }, hint: 'config.json and the checkpoint disagree; check that both come from the same model version.' });
    }
    const cached = this.loaded.get(name);
    if (cached) return cached;
    if (!isFloatDType(info.dtype)) {
      throw new ModelError('E_MODEL_UNSUPPORTED', this.label, `tensor ${name} is ${info.dtype}; the inference engine reads F32, F16, BF16 and F64 weights`, { data: { tensor: name } });
    }
    const bytes = await this.source.read(name);
    const dtype = info.dtype;
    const w: Weights = dtype === 'F32' ? { dtype, data: ownArray(bytes, Float32Array) }
      : dtype === 'F16' || dtype === 'BF16' ? { dtype, data: ownArray(bytes, Uint16Array) }
      : { dtype: 'F32', data: await toF32(bytes, dtype) };
    this.loaded.set(name, w);
    return w;
  }

  async optional(name: string, shape: number[]): Promise<Float32Array | null> {
    return this.has(name) ? this.tensor(name, shape) : null;
  }

  /** An nn.Linear `prefix`.weight [outDim, inDim] and, when `bias` says so, `prefix`.bias [outDim]. */
  async linear(prefix: string, outDim: number, inDim: number, bias: boolean): Promise<Linear> {
    return {
      w: await this.weights(`${prefix}.weight`, [outDim, inDim]),
      b: bias ? await this.tensor(`${prefix}.bias`, [outDim]) : null,
      inDim,
      outDim,
    };
  }

  /**
   * A GPT-2 Conv1D `prefix`.weight stored [inDim, outDim] (x W + b), transposed once here, in its own
   * dtype, to the nn.Linear layout the matmul kernel takes.
   */
  async conv1d(prefix: string, inDim: number, outDim: number): Promise<Linear> {
    const name = `${prefix}.weight`;
    const stored = await this.weights(name, [inDim, outDim]);
    const w: Weights = stored.dtype === 'F32'
      ? { dtype: 'F32', data: transpose(stored.data, inDim, outDim, new Float32Array(outDim * inDim)) }
      : { dtype: stored.dtype, data: transpose(stored.data, inDim, outDim, new Uint16Array(outDim * inDim)) };
    this.loaded.delete(name); // only the transposed copy is kept
    return { w, b: await this.tensor(`${prefix}.bias`, [outDim]), inDim, outDim };
  }

  /** A LayerNorm/RMSNorm: `weightName` [dim] and, when given, `biasName` [dim]. */
  async norm(weightName: string, dim: number, biasName?: string): Promise<Norm> {
    return { weight: await this.tensor(weightName, [dim]), bias: biasName ? await this.tensor(biasName, [dim]) : null };
  }

  private missing(name: string, aliases: string[] = []): ModelError {
    const also = aliases.length ? ` (nor ${aliases.join(', ')})` : '';
    return new ModelError('E_MODEL_TENSOR', this.label, `the checkpoint has no tensor ${name}${also}`,
      { data: { tensor: name }, hint: 'The checkpoint does not match its config.json architecture, or it was saved incompletely.' });
  }
}
