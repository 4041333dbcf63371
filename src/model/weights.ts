// Owns binding a checkpoint's tensors to an architecture: each is looked up by name once, at load, its
// shape checked against the config, converted to F32 (F16/BF16/F64 through the kernels' toF32) and handed
// to the architecture's typed per-layer structs. The forward pass never sees a tensor name.
// A name requested twice returns the same array, which is how tied embeddings share one copy.

import { isFloatDType, matmul, toF32 } from '../kernels/index.js';
import { ModelError } from './errors.js';
import type { TensorInfo, TensorSource } from './types.js';

/** y = x W^T + b with W as outDim x inDim (nn.Linear layout). */
export interface Linear {
  w: Float32Array;
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

export class WeightBinder {
  private readonly loaded = new Map<string, Float32Array>();

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

  /** The tensor `name` as F32, checked to have exactly `shape`. */
  async tensor(name: string, shape: number[]): Promise<Float32Array> {
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
    // An F32 tensor that owns its whole buffer is used in place; a view into a larger buffer (a source
    // that read several tensors at once) is copied, so the weights never pin memory they do not use.
    const f32 = info.dtype === 'F32' && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? new Float32Array(bytes.buffer, 0, bytes.byteLength / 4)
      : await toF32(bytes, info.dtype);
    this.loaded.set(name, f32);
    return f32;
  }

  async optional(name: string, shape: number[]): Promise<Float32Array | null> {
    return this.has(name) ? this.tensor(name, shape) : null;
  }

  /** An nn.Linear `prefix`.weight [outDim, inDim] and, when `bias` says so, `prefix`.bias [outDim]. */
  async linear(prefix: string, outDim: number, inDim: number, bias: boolean): Promise<Linear> {
    return {
      w: await this.tensor(`${prefix}.weight`, [outDim, inDim]),
      b: bias ? await this.tensor(`${prefix}.bias`, [outDim]) : null,
      inDim,
      outDim,
    };
  }

  /**
   * A GPT-2 Conv1D `prefix`.weight stored [inDim, outDim] (x W + b), transposed once here to the nn.Linear
   * layout the matmul kernel takes.
   */
  async conv1d(prefix: string, inDim: number, outDim: number): Promise<Linear> {
    const name = `${prefix}.weight`;
    const stored = await this.tensor(name, [inDim, outDim]);
    const w = new Float32Array(outDim * inDim);
    for (let i = 0; i < inDim; i++) {
      for (let o = 0; o < outDim; o++) w[o * inDim + i] = stored[i * outDim + o]!;
    }
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
