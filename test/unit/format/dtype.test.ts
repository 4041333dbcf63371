import { describe, expect, it } from 'vitest';
import { DTYPES, dtypeBits, dtypeKind, dtypeRank, elementByteSize, isDType } from '../../../src/format/dtype.js';

describe('dtype table', () => {
  it('is the Rust enum, in its declaration order (the writer sorts by it)', () => {
    // safetensors v0.8 `enum Dtype`, "in increasing alignment order".
    expect([...DTYPES]).toEqual([
      'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ',
      'F8_E5M2FNUZ', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
    ]);
    DTYPES.forEach((d, i) => expect(dtypeRank(d)).toBe(i));
  });

  it('gives widths in bits, sub-byte types included', () => {
    const bits = Object.fromEntries(DTYPES.map((d) => [d, dtypeBits(d)]));
    expect(bits).toEqual({
      BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8,
      F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
    });
  });

  it('has no byte size per element for sub-byte types', () => {
    expect(elementByteSize('F4')).toBeUndefined();
    expect(elementByteSize('F6_E2M3')).toBeUndefined();
    expect(elementByteSize('F6_E3M2')).toBeUndefined();
    expect(elementByteSize('BOOL')).toBe(1);
    expect(elementByteSize('BF16')).toBe(2);
    expect(elementByteSize('C64')).toBe(8);
  });

  it('classifies every dtype for the kernels', () => {
    expect(DTYPES.filter((d) => dtypeKind(d) === 'uint')).toEqual(['U8', 'U16', 'U32', 'U64']);
    expect(DTYPES.filter((d) => dtypeKind(d) === 'int')).toEqual(['I8', 'I16', 'I32', 'I64']);
    expect(DTYPES.filter((d) => dtypeKind(d) === 'bool')).toEqual(['BOOL']);
    expect(DTYPES.filter((d) => dtypeKind(d) === 'complex')).toEqual(['C64']);
    expect(DTYPES.filter((d) => dtypeKind(d) === 'float')).toHaveLength(12);
  });

  it('recognises exactly the header spellings', () => {
    for (const d of DTYPES) expect(isDType(d)).toBe(true);
    for (const s of ['f32', 'F128', 'FLOAT', '', 'constructor', '__proto__', 'toString', 'F8_E4M3FN']) expect(isDType(s)).toBe(false);
    for (const v of [undefined, null, 32, ['F32'], { F32: 1 }]) expect(isDType(v)).toBe(false);
  });
});
