// Types shared by the kernel API (index.ts), the TypeScript reference kernels (reference.ts) and the
// native addon loader (addon.ts).

/** safetensors dtype names that the kernels understand. Tensor bytes are little-endian. */
export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

export type FloatDType = 'F64' | 'F32' | 'F16' | 'BF16';

export function isDType(name: string): name is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, name);
}

/** The merge, conversion and matvec kernels work on these; the bitwise kernels on every dtype. */
export function isFloatDType(dtype: string): dtype is FloatDType {
  return dtype === 'F64' || dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

/**
 * A weight matrix (or embedding table) as the inference engine holds it: f32 values, or the F16/BF16
 * bits a checkpoint stores, which matmul and widenWeights widen to f32 as they read them. Holding a
 * half-precision checkpoint's matrices as stored halves the engine's memory; the results are bit for
 * bit those of the same kernels on the widened matrix, since widening F16/BF16 to f32 is exact.
 */
export type Weights = { dtype: 'F32'; data: Float32Array } | { dtype: 'F16' | 'BF16'; data: Uint16Array };

/** Any view of tensor bytes: Buffer, Uint8Array, Float32Array, DataView... at any byte offset. */
export type TensorData = ArrayBufferView;

/**
 * One pass over two tensors. The sums and the max run over the elements where both a and b are
 * finite, accumulated in f64; `changed` compares bit patterns; `signFlips` counts a > 0 > b or a < 0 < b.
 */
export interface DiffStats {
  sumA2: number;
  sumB2: number;
  sumAB: number;
  sumD2: number;
  maxAbsDiff: number;
  changed: number;
  signFlips: number;
  nanA: number;
  nanB: number;
  infA: number;
  infB: number;
}

/** Element counts of a three-way classification; see Classify3Masks for the definitions. */
export interface Classify3Counts {
  changedA: number;
  changedB: number;
  same: number;
  conflict: number;
  signConflict: number;
}

/** Packed bitmaps, element j at byte j >> 3, bit j & 7. */
export interface Classify3Masks {
  /** a != o (bitwise). */
  changedA: Uint8Array;
  /** b != o (bitwise). */
  changedB: Uint8Array;
  /** a != o and a == b: both sides made the same change. */
  same: Uint8Array;
  /** a != o, b != o and a != b. */
  conflict: Uint8Array;
  /** conflict, and a - o and b - o have opposite signs in value order (NaN never counts). */
  signConflict: Uint8Array;
}

export const CLASSIFY3_KEYS = ['changedA', 'changedB', 'same', 'conflict', 'signConflict'] as const;

export type CombineMode = 'linear' | 'task' | 'dare';
