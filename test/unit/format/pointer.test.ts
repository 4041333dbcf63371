import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PointerError } from '../../../src/errors/index.js';
import { DTYPES } from '../../../src/format/dtype.js';
import {
  hasConflictMarkers,
  isIdString,
  looksLikePointer,
  objectIdsOf,
  parsePointer,
  POINTER_MAGIC,
  serializePointer,
  type Pointer,
} from '../../../src/format/pointer.js';

const FILE = 'model.safetensors';
const ID_A = 'a'.repeat(64);
const ID_B = '0123456789abcdef'.repeat(4);
const ID_C = 'fedcba9876543210'.repeat(4);

/** The example of docs/pointer.md, in the exact bytes a user commits. */
const DOC_EXAMPLE =
  'git-tensor v1 safetensors\n' +
  'size 1442338\n' +
  'header 6d9a53e01250f52ec49e99ef7039adb55fc331745ce50a874eb5394aa0316024 330\n' +
  'metadata 1\n' +
  'meta "format" "pt"\n' +
  'tensor "Xtrain" U8 [6000,196] d266fdad411d3e0e756bfb916e6aeb3595a764eb5b9d176b165c1327e7a9e6cf\n' +
  'tensor "Ytrain" U8 [6000,10] 7fd2a0cdfabcc0bd3c6da0e783fa1ff498959bacada6245c0b7fae367ad5924e\n';

const OPAQUE_EXAMPLE = 'git-tensor v1 opaque\nsize 300000\nobject 6e0051aa644a4f96c653d2a968380cf87953d9cd5ff5a49b35104b914a6d9e44\n';

function thrown(fn: () => unknown): PointerError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PointerError) return e;
    throw new Error(`expected a PointerError, got ${String(e)}`);
  }
  throw new Error('expected a PointerError, nothing was thrown');
}

// ---------------------------------------------------------------------------------------------------
// Generators

const idArb = fc.stringMatching(/^[0-9a-f]{64}$/);

/** Any UTF-16 code unit, lone surrogates included: a JS string is what the serialiser is given. */
const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const trickyChar = fc.constantFrom('"', '\\', '\n', '\r', '\t', '\0', '\u001f', '\u007f', '\u2028', '\u2029', '\uFEFF', 'é', '词', '\u{1F600}', ' ', '/');
const textArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 16 }),
  fc.string({ unit: fc.oneof(anyCodeUnit, trickyChar), maxLength: 16 }),
  fc.constantFrom('', 'model.layers.0.weight', '词嵌入.weight', '__proto__', 'constructor', '"', '\\', '\\"', '\\u0041', 'a\nb', '<<<<<<< HEAD'),
);

const shapeArb = fc.oneof(
  fc.constant<number[]>([]),
  fc.array(fc.oneof(fc.nat({ max: 9 }), fc.nat(), fc.constant(0)), { minLength: 1, maxLength: 5 }),
);

const sizeArb = fc.oneof(fc.nat({ max: 10 }), fc.maxSafeNat());

const safetensorsPointerArb: fc.Arbitrary<Pointer> = fc.record({
  kind: fc.constant('safetensors' as const),
  size: sizeArb,
  header: fc.record({ id: idArb, length: sizeArb }),
  metadata: fc.oneof(
    fc.constant(null),
    fc.constant<[string, string][]>([]),
    fc.array(fc.tuple(textArb, textArb), { minLength: 1, maxLength: 4 }),
  ),
  tensors: fc.array(
    fc.record({ name: textArb, dtype: fc.constantFrom(...DTYPES), shape: shapeArb, id: idArb }),
    { maxLength: 6 },
  ),
});

const opaquePointerArb: fc.Arbitrary<Pointer> = fc.record({ kind: fc.constant('opaque' as const), size: sizeArb, id: idArb });

const pointerArb = fc.oneof(safetensorsPointerArb, opaquePointerArb);

// ---------------------------------------------------------------------------------------------------

describe('round trip (property)', () => {
  it('parse(serialize(p)) deep-equals p, and the text is canonical (serialize(parse(t)) === t)', () => {
    fc.assert(
      fc.property(pointerArb, (p) => {
        const text = serializePointer(p);
        const back = parsePointer(text, FILE);
        expect(back).toEqual(p);
        expect(serializePointer(back)).toBe(text);
      }),
      { seed: 424242, numRuns: 1500 },
    );
  });

  it('covers every dtype of the format', () => {
    const p: Pointer = {
      kind: 'safetensors',
      size: 8,
      header: { id: ID_A, length: 0 },
      metadata: null,
      tensors: DTYPES.map((dtype, i) => ({ name: `t${i}`, dtype, shape: [i, 0, 2], id: ID_B })),
    };
    const text = serializePointer(p);
    expect(parsePointer(text)).toEqual(p);
    expect(text.split('\n').filter((l) => l.startsWith('tensor '))).toHaveLength(DTYPES.length);
  });

  it('reads the examples of docs/pointer.md and writes them back byte for byte', () => {
    const p = parsePointer(DOC_EXAMPLE, FILE);
    expect(p).toEqual({
      kind: 'safetensors',
      size: 1442338,
      header: { id: '6d9a53e01250f52ec49e99ef7039adb55fc331745ce50a874eb5394aa0316024', length: 330 },
      metadata: [['format', 'pt']],
      tensors: [
        { name: 'Xtrain', dtype: 'U8', shape: [6000, 196], id: 'd266fdad411d3e0e756bfb916e6aeb3595a764eb5b9d176b165c1327e7a9e6cf' },
        { name: 'Ytrain', dtype: 'U8', shape: [6000, 10], id: '7fd2a0cdfabcc0bd3c6da0e783fa1ff498959bacada6245c0b7fae367ad5924e' },
      ],
    });
    expect(serializePointer(p)).toBe(DOC_EXAMPLE);
    const o = parsePointer(OPAQUE_EXAMPLE);
    expect(o).toEqual({ kind: 'opaque', size: 300000, id: '6e0051aa644a4f96c653d2a968380cf87953d9cd5ff5a49b35104b914a6d9e44' });
    expect(serializePointer(o)).toBe(OPAQUE_EXAMPLE);
  });

  it('keeps non-ASCII names readable (UTF-8, not \\u escapes) and escapes what would break a line', () => {
    const text = serializePointer({
      kind: 'safetensors', size: 1, header: { id: ID_A, length: 2 }, metadata: [['k"\\', 'line1\nline2']],
      tensors: [{ name: '词嵌入.weight', dtype: 'F16', shape: [], id: ID_B }],
    });
    expect(text).toContain('tensor "词嵌入.weight" F16 [] ');
    expect(text).toContain('meta "k\\"\\\\" "line1\\nline2"\n');
    expect(text.split('\n')).toHaveLength(7); // 6 lines + the empty string after the final LF
  });

  it('distinguishes "no __metadata__" (no line) from an empty one ("metadata 0")', () => {
    const base = { kind: 'safetensors' as const, size: 0, header: { id: ID_A, length: 0 }, tensors: [] };
    const none = serializePointer({ ...base, metadata: null });
    const empty = serializePointer({ ...base, metadata: [] });
    expect(none).not.toContain('metadata');
    expect(empty).toContain('\nmetadata 0\n');
    expect(parsePointer(none)).toMatchObject({ metadata: null });
    expect(parsePointer(empty)).toMatchObject({ metadata: [] });
  });
});

// ---------------------------------------------------------------------------------------------------

const VALID =
  'git-tensor v1 safetensors\n' +
  'size 100\n' +
  `header ${ID_A} 24\n` +
  'metadata 1\n' +
  'meta "format" "pt"\n' +
  `tensor "w" F32 [2,3] ${ID_B}\n` +
  `tensor "b" F32 [3] ${ID_C}\n`;

/** Replaces line `n` (1-based) of VALID. */
function withLine(n: number, line: string | null): string {
  const lines = VALID.slice(0, -1).split('\n');
  if (line === null) lines.splice(n - 1, 1);
  else lines[n - 1] = line;
  return lines.join('\n') + '\n';
}

interface SyntaxCase {
  what: string;
  text: string;
  line: number;
}

const SYNTAX_CASES: SyntaxCase[] = [
  { what: 'missing trailing newline', text: VALID.slice(0, -1), line: 7 },
  { what: 'CRLF line endings', text: VALID.replace(/\n/g, '\r\n'), line: 1 },
  { what: 'empty text', text: '', line: 1 },
  { what: 'only the magic line', text: 'git-tensor v1 safetensors\n', line: 2 },
  { what: 'a blank line at the end', text: VALID + '\n', line: 8 },
  { what: 'a trailing space', text: withLine(2, 'size 100 '), line: 2 },
  { what: 'wrong magic', text: withLine(1, 'git-lfs v1 safetensors'), line: 1 },
  { what: 'size and header swapped', text: `git-tensor v1 safetensors\nheader ${ID_A} 24\nsize 100\n`, line: 2 },
  { what: 'metadata after a tensor line', text: `git-tensor v1 safetensors\nsize 100\nheader ${ID_A} 24\ntensor "w" F32 [2,3] ${ID_B}\nmetadata 0\n`, line: 5 },
  { what: 'an unknown line', text: VALID + 'comment "hello"\n', line: 8 },
  { what: 'one meta line more than counted', text: withLine(4, 'metadata 0'), line: 5 },
  { what: 'one meta line fewer than counted', text: withLine(4, 'metadata 2'), line: 6 },
  { what: 'header id of 63 hex digits', text: withLine(3, `header ${ID_A.slice(1)} 24`), line: 3 },
  { what: 'header id of 65 hex digits', text: withLine(3, `header ${ID_A}a 24`), line: 3 },
  { what: 'uppercase hex in a tensor id', text: withLine(6, `tensor "w" F32 [2,3] ${ID_B.toUpperCase()}`), line: 6 },
  { what: 'uppercase hex in the header id', text: withLine(3, `header ${'A'.repeat(64)} 24`), line: 3 },
  { what: 'leading zero in size', text: withLine(2, 'size 0100'), line: 2 },
  { what: 'leading zero in the header length', text: withLine(3, `header ${ID_A} 024`), line: 3 },
  { what: 'leading zero in the metadata count', text: withLine(4, 'metadata 01'), line: 4 },
  { what: 'leading zero in a shape', text: withLine(6, `tensor "w" F32 [2,03] ${ID_B}`), line: 6 },
  { what: 'negative size', text: withLine(2, 'size -1'), line: 2 },
  { what: 'size beyond 2^53', text: withLine(2, 'size 9007199254740993'), line: 2 },
  { what: 'spaces in a shape', text: withLine(6, `tensor "w" F32 [2, 3] ${ID_B}`), line: 6 },
  { what: 'an empty shape dimension', text: withLine(6, `tensor "w" F32 [2,,3] ${ID_B}`), line: 6 },
  { what: 'a trailing comma in a shape', text: withLine(6, `tensor "w" F32 [2,3,] ${ID_B}`), line: 6 },
  { what: 'a lowercase dtype', text: withLine(6, `tensor "w" f32 [2,3] ${ID_B}`), line: 6 },
  { what: 'a non-canonical \\u0041 escape in a tensor name', text: withLine(6, `tensor "\\u0041" F32 [2,3] ${ID_B}`), line: 6 },
  { what: 'an escaped slash in a meta key', text: withLine(5, 'meta "a\\/b" "pt"'), line: 5 },
  { what: 'a \\u000a escape instead of \\n', text: withLine(5, 'meta "format" "a\\u000ab"'), line: 5 },
  { what: 'an unterminated name', text: withLine(6, `tensor "w F32 [2,3] ${ID_B}`), line: 6 },
  { what: 'a raw tab inside a JSON string', text: withLine(6, `tensor "a\tb" F32 [2,3] ${ID_B}`), line: 6 },
  { what: 'a name that is not a JSON string', text: withLine(6, `tensor w F32 [2,3] ${ID_B}`), line: 6 },
  { what: 'two spaces between meta key and value', text: withLine(5, 'meta "format"  "pt"'), line: 5 },
  { what: 'text after the meta value', text: withLine(5, 'meta "format" "pt" x'), line: 5 },
  { what: 'an opaque pointer with a header line', text: `git-tensor v1 opaque\nsize 3\nheader ${ID_A} 3\n`, line: 3 },
  { what: 'an opaque pointer with an extra line', text: `git-tensor v1 opaque\nsize 3\nobject ${ID_A}\nobject ${ID_A}\n`, line: 4 },
  { what: 'an opaque pointer without its object line', text: 'git-tensor v1 opaque\nsize 3\n', line: 3 },
  { what: 'unknown kind', text: `git-tensor v1 lfs\nsize 3\nobject ${ID_A}\n`, line: 1 },
];

describe('strictness: every malformed form is E_POINTER_SYNTAX naming the line', () => {
  it('the base pointer is valid', () => {
    expect(parsePointer(VALID, FILE).kind).toBe('safetensors');
    expect(serializePointer(parsePointer(VALID))).toBe(VALID);
  });

  it.each(SYNTAX_CASES)('$what -> line $line', ({ text, line }) => {
    const e = thrown(() => parsePointer(text, FILE));
    expect(e.code).toBe('E_POINTER_SYNTAX');
    expect(e.message).toMatch(new RegExp(`^${FILE.replace('.', '\\.')}: line ${line}: `));
    expect(e.data).toMatchObject({ file: FILE, line });
  });

  it('names "pointer" when no file is given', () => {
    expect(thrown(() => parsePointer(VALID.slice(0, -1))).message).toMatch(/^pointer: line 7: /);
  });
});

describe('versions and conflicts', () => {
  it.each(['git-tensor v2 safetensors', 'git-tensor v2 opaque', 'git-tensor v10 opaque', 'git-tensor v2 something-new'])(
    '%s -> E_POINTER_VERSION with an upgrade hint',
    (first) => {
      const e = thrown(() => parsePointer(`${first}\nsize 3\nobject ${ID_A}\n`, FILE));
      expect(e.code).toBe('E_POINTER_VERSION');
      expect(e.message).toContain(FILE);
      expect(e.hint).toMatch(/[Uu]pgrade git-tensor/);
    },
  );

  const conflicted =
    '<<<<<<< HEAD\n' + VALID + '=======\n' + VALID.replace('size 100', 'size 200') + '>>>>>>> feature\n';

  it('conflict markers -> E_POINTER_CONFLICT whose hint names `git tensor resolve <file>`', () => {
    const e = thrown(() => parsePointer(conflicted, FILE));
    expect(e.code).toBe('E_POINTER_CONFLICT');
    expect(e.message).toContain(FILE);
    expect(e.hint).toContain(`git tensor resolve ${FILE}`);
  });

  it('a diff3-style conflict (markers followed by a label, or alone on their line) is also recognised', () => {
    const diff3 = '<<<<<<< ours\n' + VALID + '||||||| base\n' + VALID + '=======\n' + VALID + '>>>>>>>\n';
    expect(thrown(() => parsePointer(diff3)).code).toBe('E_POINTER_CONFLICT');
    expect(hasConflictMarkers(conflicted)).toBe(true);
    expect(hasConflictMarkers(VALID)).toBe(false);
    // Marker-like text inside a JSON string never starts a line, so it is not a conflict.
    const p = serializePointer({ kind: 'safetensors', size: 0, header: { id: ID_A, length: 0 }, metadata: [['note', '\n<<<<<<< x']], tensors: [] });
    expect(hasConflictMarkers(p)).toBe(false);
    expect(parsePointer(p).kind).toBe('safetensors');
  });
});

describe('looksLikePointer', () => {
  const bytes = (s: string) => Buffer.from(s, 'utf8');

  it('accepts any prefix that starts with the magic and a space', () => {
    expect(looksLikePointer(bytes(DOC_EXAMPLE))).toBe(true);
    expect(looksLikePointer(bytes(OPAQUE_EXAMPLE))).toBe(true);
    expect(looksLikePointer(bytes(`${POINTER_MAGIC} `))).toBe(true);
    expect(looksLikePointer(bytes(`${POINTER_MAGIC} garbage`))).toBe(true);
  });

  it('rejects prefixes too short to decide, and other content', () => {
    for (let n = 0; n <= POINTER_MAGIC.length; n++) expect(looksLikePointer(bytes(DOC_EXAMPLE.slice(0, n))), `first ${n} bytes`).toBe(false);
    expect(looksLikePointer(bytes('git-tensor v1\n'))).toBe(false);
    expect(looksLikePointer(bytes('GIT-TENSOR v1 safetensors\n'))).toBe(false);
    expect(looksLikePointer(bytes('version https://git-lfs.github.com/spec/v1\n'))).toBe(false);
    expect(looksLikePointer(Buffer.from([0x50, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d]))).toBe(false); // a safetensors file
  });

  it('reads a view at a non-zero offset of a larger buffer correctly', () => {
    const big = Buffer.concat([bytes('xxxx'), bytes(OPAQUE_EXAMPLE)]);
    expect(looksLikePointer(big.subarray(4))).toBe(true);
    expect(looksLikePointer(big.subarray(3))).toBe(false);
    expect(looksLikePointer(new Uint8Array(big.buffer, big.byteOffset + 4, 20))).toBe(true);
  });
});

describe('isIdString', () => {
  it('is exactly 64 lowercase hex digits', () => {
    expect(isIdString(ID_B)).toBe(true);
    expect(isIdString(ID_B.toUpperCase())).toBe(false);
    expect(isIdString(ID_B.slice(1))).toBe(false);
    expect(isIdString(ID_B + '0')).toBe(false);
    expect(isIdString(` ${ID_B.slice(1)}`)).toBe(false);
    expect(isIdString(`${ID_B}\n`)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('fuzz', () => {
  const samples = [
    DOC_EXAMPLE,
    OPAQUE_EXAMPLE,
    VALID,
    ...fc.sample(pointerArb, { seed: 99, numRuns: 40 }).map(serializePointer),
  ].map((t) => Buffer.from(t, 'utf8'));

  type Mutation =
    | { op: 'set'; pos: number; byte: number }
    | { op: 'flip'; pos: number; bit: number }
    | { op: 'insert'; pos: number; bytes: Uint8Array }
    | { op: 'delete'; pos: number; len: number }
    | { op: 'truncate'; pos: number };

  // Bytes that matter to the grammar: LF, space, quote, backslash, digits, hex letters, brackets, comma.
  const interesting = fc.constantFrom(0x0a, 0x0d, 0x20, 0x22, 0x5c, 0x30, 0x31, 0x39, 0x61, 0x66, 0x41, 0x5b, 0x5d, 0x2c, 0x3c, 0x3d, 0x75, 0x00, 0x80, 0xc3, 0xff);
  const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ op: fc.constant('set' as const), pos: fc.nat(), byte: fc.oneof(interesting, fc.integer({ min: 0, max: 255 })) }),
    fc.record({ op: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ op: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
    fc.record({ op: fc.constant('delete' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ op: fc.constant('truncate' as const), pos: fc.nat() }),
  );

  function mutate(b: Buffer, m: Mutation): Buffer {
    const out = Buffer.from(b);
    const at = (pos: number) => pos % Math.max(out.length, 1);
    switch (m.op) {
      case 'set':
        if (out.length) out[at(m.pos)] = m.byte;
        return out;
      case 'flip':
        if (out.length) out[at(m.pos)] = out[at(m.pos)]! ^ (1 << m.bit);
        return out;
      case 'insert': {
        const p = m.pos % (out.length + 1);
        return Buffer.concat([out.subarray(0, p), m.bytes, out.subarray(p)]);
      }
      case 'delete': {
        const p = at(m.pos);
        return Buffer.concat([out.subarray(0, p), out.subarray(p + m.len)]);
      }
      case 'truncate':
        return out.subarray(0, m.pos % (out.length + 1));
    }
  }

  it('mutated pointers either parse to something that re-serializes to the same text, or throw PointerError', () => {
    const outcomes = new Map<string, number>();
    fc.assert(
      fc.property(fc.nat({ max: samples.length - 1 }), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (which, mutations) => {
        const text = mutations.reduce(mutate, samples[which]!).toString('utf8');
        let parsed: Pointer;
        try {
          parsed = parsePointer(text, 'fuzz');
        } catch (e) {
          if (!(e instanceof PointerError)) throw e;
          outcomes.set(e.code, (outcomes.get(e.code) ?? 0) + 1);
          return;
        }
        outcomes.set('ok', (outcomes.get('ok') ?? 0) + 1);
        expect(serializePointer(parsed)).toBe(text);
      }),
      { seed: 20240612, numRuns: 3000 },
    );
    // The mutations must reach past the first line, and some must keep the pointer valid.
    expect(outcomes.get('ok') ?? 0).toBeGreaterThan(0);
    expect(outcomes.get('E_POINTER_SYNTAX') ?? 0).toBeGreaterThan(100);
  });
});

describe('objectIdsOf', () => {
  it('lists the header object, then each tensor object in pointer order (what a checkout must have)', () => {
    expect(objectIdsOf(parsePointer(DOC_EXAMPLE))).toEqual([
      '6d9a53e01250f52ec49e99ef7039adb55fc331745ce50a874eb5394aa0316024',
      'd266fdad411d3e0e756bfb916e6aeb3595a764eb5b9d176b165c1327e7a9e6cf',
      '7fd2a0cdfabcc0bd3c6da0e783fa1ff498959bacada6245c0b7fae367ad5924e',
    ]);
  });

  it('lists the one object of an opaque pointer', () => {
    expect(objectIdsOf(parsePointer(OPAQUE_EXAMPLE))).toEqual(['6e0051aa644a4f96c653d2a968380cf87953d9cd5ff5a49b35104b914a6d9e44']);
  });
});
