// Owns the closed set of safetensors element types: their names as the header spells them, their width
// in bits, their kind (for the merge/diff kernels) and their rank in the reference writer's layout order.
//
// Source of truth: `enum Dtype` in huggingface/safetensors `safetensors/src/tensor.rs` (v0.8). The Rust
// enum is declared "in increasing alignment order" and its derived `Ord` is what `serialize` sorts by,
// so DTYPES keeps exactly that order: the index of a dtype is its layout rank.
// Widths are in bits because the format has sub-byte types (F4 is 4 bits, F6_* are 6 bits); a tensor's
// byte span is elements * bits / 8 and must come out whole (see safetensors.ts).

export const DTYPES = [
  'BOOL',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'C64',
  'F64',
  'I64',
  'U64',
] as const;

export type DType = (typeof DTYPES)[number];

/** How a kernel must read the bits: merges compare bits, but averaging and statistics need the kind. */
export type DTypeKind = 'float' | 'int' | 'uint' | 'bool' | 'complex';

interface DTypeFacts {
  readonly bits: number;
  readonly kind: DTypeKind;
}

const FACTS: Readonly<Record<DType, DTypeFacts>> = {
  BOOL: { bits: 8, kind: 'bool' }, // one byte per element, as in Rust
  F4: { bits: 4, kind: 'float' },
  F6_E2M3: { bits: 6, kind: 'float' },
  F6_E3M2: { bits: 6, kind: 'float' },
  U8: { bits: 8, kind: 'uint' },
  I8: { bits: 8, kind: 'int' },
  F8_E5M2: { bits: 8, kind: 'float' },
  F8_E4M3: { bits: 8, kind: 'float' },
  F8_E8M0: { bits: 8, kind: 'float' },
  F8_E4M3FNUZ: { bits: 8, kind: 'float' },
  F8_E5M2FNUZ: { bits: 8, kind: 'float' },
  I16: { bits: 16, kind: 'int' },
  U16: { bits: 16, kind: 'uint' },
  F16: { bits: 16, kind: 'float' },
  BF16: { bits: 16, kind: 'float' },
  I32: { bits: 32, kind: 'int' },
  U32: { bits: 32, kind: 'uint' },
  F32: { bits: 32, kind: 'float' },
  C64: { bits: 64, kind: 'complex' }, // two F32 parts
  F64: { bits: 64, kind: 'float' },
  I64: { bits: 64, kind: 'int' },
  U64: { bits: 64, kind: 'uint' },
};

// A Map, not `s in FACTS`: header text is untrusted and "constructor" or "__proto__" must not pass.
const RANK = new Map<string, number>(DTYPES.map((d, i) => [d, i]));

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && RANK.has(s);
}

export function dtypeBits(d: DType): number {
  return FACTS[d].bits;
}

export function dtypeKind(d: DType): DTypeKind {
  return FACTS[d].kind;
}

/** Bytes per element, or undefined for sub-byte types (F4, F6_*), whose elements share bytes. */
export function elementByteSize(d: DType): number | undefined {
  const bits = FACTS[d].bits;
  return bits % 8 === 0 ? bits / 8 : undefined;
}

/** Position in the Rust enum; the reference writer lays tensors out by descending rank, then name. */
export function dtypeRank(d: DType): number {
  return RANK.get(d)!;
}
