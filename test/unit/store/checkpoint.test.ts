import { createCipheriv, createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type GitTensorError, PointerError, SafetensorsError } from '../../../src/errors/index.js';
import { DTYPES, dtypeBits, type DType } from '../../../src/format/dtype.js';
import { parsePointer, serializePointer, type Pointer } from '../../../src/format/pointer.js';
import { parseSafetensors, serializeSafetensors, type TensorInput } from '../../../src/format/safetensors.js';
import { Ingest, planRestore, restore, validatePointer } from '../../../src/store/checkpoint.js';
import { storeTensor } from '../../../src/store/tensor-sink.js';
import { storeCodec } from '../../../src/store/codec.js';
import { chunkBatches } from '../../../src/kernels/chunks.js';
import { CDC_MAX, CDC_MIN, tensorChunkBytes } from '../../../src/store/chunking.js';
import { Encoding } from '../../../src/store/pack.js';
import { ObjectStore, type ObjectWriter } from '../../../src/store/store.js';


/** Deterministic pseudo-random bytes (AES-CTR keystream of the seed). */
function noise(seed: string | number, n: number): Buffer {
  const key = createHash('sha256').update(String(seed)).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let root: string;
let store: ObjectStore;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'gt-ckpt-'));
  store = ObjectStore.open(root);
});

afterEach(() => {
  store.close();
  rmSync(root, { recursive: true, force: true });
});

const packFiles = () => readdirSync(join(root, 'packs')).sort();
const tmpFiles = () => readdirSync(join(root, 'tmp'));

/**
 * Feeds `file` to an Ingest in pieces of the given sizes (cycled), the way git's packets arrive. After
 * 2000 pieces the rest comes in 256 KiB pieces, so tiny sizes over a big file stay fast.
 */
async function ingest(writer: ObjectWriter, name: string, file: Buffer, sizes: readonly number[] = [file.length || 1]): Promise<string> {
  const ing = new Ingest(writer, name);
  let at = 0;
  let k = 0;
  while (at < file.length) {
    const n = k++ >= 2000 ? 256 * 1024 : Math.max(1, sizes[k % sizes.length]!);
    // A copy, as a pipe would hand over a fresh buffer each time.
    await ing.push(Buffer.from(file.subarray(at, at + n)));
    at += n;
  }
  return ing.finish();
}

/** Clean then commit, as the filter does. */
async function clean(name: string, file: Buffer, sizes?: readonly number[]): Promise<{ text: string; bytesWritten: number }> {
  const w = store.beginWrite();
  try {
    const text = await ingest(w, name, file, sizes);
    w.commit();
    return { text, bytesWritten: w.bytesWritten };
  } catch (e) {
    w.abort();
    throw e;
  }
}

async function smudge(text: string, name: string, from: ObjectStore = store): Promise<Buffer> {
  const plan = planRestore(from, text, name);
  expect(plan.missing).toEqual([]);
  const parts: Buffer[] = [];
  for await (const piece of restore(from, plan.pointer, name)) parts.push(piece);
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------------
// Generated checkpoints

function byteLength(dtype: DType, shape: readonly number[]): number {
  return (shape.reduce((a, b) => a * b, 1) * dtypeBits(dtype)) / 8;
}

/** Small tensors of any dtype and shape (scalars and zero-size included), as in the safetensors tests. */
const smallTensorArb = fc
  .record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 3 }), seed: fc.nat() })
  .map(({ dtype, shape, seed }) => {
    const elements = shape.reduce((a, b) => a * b, 1);
    const fixed = (elements * dtypeBits(dtype)) % 8 === 0 ? shape : [...shape, 4];
    return { dtype, shape: fixed, data: noise(seed, byteLength(dtype, fixed)) };
  });

/** Tensors of several chunks: 2-D, rows of every width, sub-byte dtypes included. */
const bigTensorArb = fc
  .record({
    dtype: fc.constantFrom<DType>('F32', 'BF16', 'U8', 'F64', 'F4', 'F6_E2M3'),
    rows: fc.integer({ min: 1, max: 40 }),
    cols: fc.integer({ min: 1, max: 160 }),
    seed: fc.nat(),
  })
  .map(({ dtype, rows, cols, seed }) => {
    const shape = [rows * 8, cols * 4]; // * 4: whole bytes for F4 and F6
    return { dtype, shape, data: noise(seed, byteLength(dtype, shape)) };
  });

const checkpointArb = fc.record({
  tensors: fc.uniqueArray(
    fc.record({
      name: fc.oneof(fc.string({ unit: 'binary', maxLength: 10 }), fc.constantFrom('model.embed.weight', '词嵌入', 'a"b\\c')),
      body: fc.oneof({ weight: 4, arbitrary: smallTensorArb }, { weight: 1, arbitrary: bigTensorArb }),
    }),
    { maxLength: 5, selector: (t) => t.name },
  ),
  metadata: fc.option(fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 12 }), { maxKeys: 3 }), { nil: null }),
  pieces: fc.array(fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 300_000 })), { minLength: 1, maxLength: 5 }),
}).filter(({ tensors }) => tensors.every((t) => t.name !== '__metadata__'));

function toFile(tensors: { name: string; body: { dtype: DType; shape: number[]; data: Buffer } }[], metadata: Record<string, string> | null): Buffer {
  const inputs: TensorInput[] = tensors.map((t) => ({ name: t.name, dtype: t.body.dtype, shape: t.body.shape, data: t.body.data }));
  return serializeSafetensors(inputs, metadata);
}

/** The pointer a file must get, derived from the file alone (independently of the ingest code). */
function expectedPointer(file: Buffer): Pointer {
  const n = Number(file.readBigUInt64LE(0));
  const h = parseSafetensors(file);
  const data = file.subarray(8 + n);
  return {
    kind: 'safetensors',
    size: file.length,
    header: { id: sha(file.subarray(8, 8 + n)), length: n },
    metadata: h.metadata === null ? null : Object.entries(h.metadata),
    tensors: h.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, id: sha(data.subarray(t.begin, t.end)) })),
  };
}

// ---------------------------------------------------------------------------------------------------

describe('safetensors: Ingest + restore', () => {
  it('round-trips generated checkpoints bit for bit, fed in random-size pieces (property)', async () => {
    let chunkedTensors = 0;
    await fc.assert(
      fc.asyncProperty(checkpointArb, async ({ tensors, metadata, pieces }) => {
        const file = toFile(tensors, metadata);
        const { text } = await clean('model.safetensors', file, pieces);
        const expected = expectedPointer(file) as Extract<Pointer, { kind: 'safetensors' }>;
        expect(parsePointer(text)).toEqual(expected);
        expect(serializePointer(expected)).toBe(text);
        // Tensors larger than one chunk are cut at the offsets chunking.ts gives for their dtype and shape.
        for (const t of expected.tensors) {
          const loc = store.locate(t.id)!;
          if (loc.encoding !== Encoding.chunkList) continue;
          chunkedTensors++;
          const step = tensorChunkBytes(dtypeBits(t.dtype as DType), t.shape);
          const lengths = store.chunkRefs(t.id, loc).map((r) => r.length);
          expect(lengths.slice(0, -1).every((l) => l === step)).toBe(true);
          expect(lengths.at(-1)!).toBeLessThanOrEqual(step);
        }
        // Bit-exact, from this store and from a fresh one on the same directory.
        expect((await smudge(text, 'model.safetensors')).equals(file)).toBe(true);
        const other = ObjectStore.open(root);
        try {
          expect((await smudge(text, 'model.safetensors', other)).equals(file)).toBe(true);
        } finally {
          other.close();
        }
      }),
      { seed: 31337, numRuns: 40 },
    );
    expect(chunkedTensors).toBeGreaterThan(3);
    expect(tmpFiles()).toEqual([]);
  });

  it('gives the same pointer however the bytes were split, and a second clean writes nothing', async () => {
    const file = toFile(
      [
        { name: 'w', body: { dtype: 'F32', shape: [300, 200], data: noise('w', 240_000) } },
        { name: 'b', body: { dtype: 'F32', shape: [200], data: noise('b', 800) } },
      ],
      { format: 'pt' },
    );
    const first = await clean('m.safetensors', file, [1, 7, 65536]);
    const packs = packFiles();
    const second = await clean('m.safetensors', file, [file.length]);
    expect(second.text).toBe(first.text);
    expect(second.bytesWritten).toBe(0);
    expect(packFiles()).toEqual(packs);
  });

  it('cuts each tensor at row-aligned offsets, so a fine-tune that changes one row stores about one chunk', async () => {
    // F32 [512, 512]: 2 KiB rows, 32 rows per 64 KiB chunk, 16 chunks.
    const weights = noise('rows', 512 * 512 * 4);
    const v1 = toFile([{ name: 'layer.weight', body: { dtype: 'F32', shape: [512, 512], data: weights } }], null);
    const before = await clean('m.safetensors', v1);
    const tensorId = (parsePointer(before.text) as Extract<Pointer, { kind: 'safetensors' }>).tensors[0]!.id;
    const loc = store.locate(tensorId)!;
    expect(loc.encoding).toBe(Encoding.chunkList);
    const refs = store.chunkRefs(tensorId, loc);
    expect(refs.map((r) => r.length)).toEqual(Array(16).fill(tensorChunkBytes(32, [512, 512])));
    expect(tensorChunkBytes(32, [512, 512])).toBe(64 * 1024);

    const tuned = Buffer.from(weights);
    tuned.fill(0x3f, 100 * 2048, 101 * 2048); // row 100
    const v2 = toFile([{ name: 'layer.weight', body: { dtype: 'F32', shape: [512, 512], data: tuned } }], null);
    const after = await clean('m.safetensors', v2);
    expect(after.text).not.toBe(before.text);
    expect(after.bytesWritten).toBeGreaterThanOrEqual(64 * 1024);
    expect(after.bytesWritten).toBeLessThan(2 * 64 * 1024);
    expect((await smudge(after.text, 'm.safetensors')).equals(v2)).toBe(true);
    expect((await smudge(before.text, 'm.safetensors')).equals(v1)).toBe(true);
  });

  it('keeps zero-size tensors, scalars and a header without tensors', async () => {
    const cases = [
      toFile([], null),
      toFile([], { only: 'metadata' }),
      toFile([{ name: 'empty', body: { dtype: 'F16', shape: [0, 4], data: Buffer.alloc(0) } }], null),
      toFile(
        [
          { name: 'scalar', body: { dtype: 'F64', shape: [], data: noise('s', 8) } },
          { name: 'z', body: { dtype: 'U8', shape: [0], data: Buffer.alloc(0) } },
        ],
        {},
      ),
    ];
    for (const file of cases) {
      const { text } = await clean('x.safetensors', file, [3]);
      expect(parsePointer(text)).toEqual(expectedPointer(file));
      expect((await smudge(text, 'x.safetensors')).equals(file)).toBe(true);
    }
  });
});

describe('a checkpoint of many batches', () => {
  // 36 MiB: a 16 MiB tensor (four full batches), then six of 3 MiB (one partial batch each, which the
  // pack has not written yet when the next batch starts), then 2 MiB of bytes. Random bytes do not
  // compress, so chunks go to the pack raw, as views of their batch's buffer.
  const file = toFile([
    { name: 'big', body: { dtype: 'F32', shape: [1024, 4096], data: noise('many/big', 16 << 20) } },
    ...Array.from({ length: 6 }, (_, k) => ({ name: `t${k}`, body: { dtype: 'F32' as DType, shape: [768, 1024], data: noise(`many/${k}`, 3 << 20) } })),
    { name: 'bytes', body: { dtype: 'U8', shape: [2 << 20], data: noise('many/bytes', 2 << 20) } },
  ], null);

  it.each([['without compression', false], ['with compression', true]] as const)('round-trips bit for bit, %s', async (_, compress) => {
    const target = compress && storeCodec() ? ObjectStore.open(join(root, 'z'), { codec: storeCodec() }) : store;
    try {
      const w = target.beginWrite();
      const text = await ingest(w, 'm.safetensors', file, [65516]);
      w.commit();
      expect(text).toBe(serializePointer(expectedPointer(file)));
      expect((await smudge(text, 'm.safetensors', target)).equals(file)).toBe(true);
    } finally {
      if (target !== store) target.close();
    }
  });
});

describe('safetensors: refused files leave nothing behind', () => {
  const file = toFile(
    [
      { name: 'big', body: { dtype: 'F32', shape: [256, 256], data: noise('big', 256 * 256 * 4) } }, // 4 chunks, laid out first
      { name: 'small', body: { dtype: 'U8', shape: [1000], data: noise('small', 1000) } },
    ],
    { format: 'pt' },
  );
  const n = Number(file.readBigUInt64LE(0));

  it.each([
    ['inside the 8-byte prefix', 5, 'E_ST_TRUNCATED_PREFIX'],
    ['inside the header', 8 + Math.floor(n / 2), 'E_ST_TRUNCATED_HEADER'],
    ['inside the first tensor', 8 + n + 100_000, 'E_ST_TRUNCATED_DATA'],
    ['inside the last tensor, after a multi-chunk tensor was fully read', file.length - 10, 'E_ST_TRUNCATED_DATA'],
  ])('a file truncated %s throws SafetensorsError %s; after abort no pack and no temp file exist', async (_what, cut, code) => {
    const before = packFiles();
    const w = store.beginWrite();
    const truncated = file.subarray(0, cut as number);
    const err = await ingest(w, 'model.safetensors', truncated, [4096]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err).toMatchObject({ code, data: { file: 'model.safetensors' } });
    w.abort();
    w.commit(); // a writer used after abort must not bring anything back

    expect(packFiles()).toEqual(before);
    expect(tmpFiles()).toEqual([]);
  });

  it('trailing bytes after the last tensor -> E_ST_TRAILING_DATA', async () => {
    const w = store.beginWrite();
    const err = await ingest(w, 'model.safetensors', Buffer.concat([file, Buffer.from('junk')])).catch((e: unknown) => e);
    w.abort();
    expect(err).toMatchObject({ name: 'SafetensorsError', code: 'E_ST_TRAILING_DATA' });
    expect(packFiles()).toEqual([]);
  });

  it('a *.safetensors path whose content is not safetensors is refused, not stored opaquely', async () => {
    const w = store.beginWrite();
    const err = await ingest(w, 'notes.safetensors', Buffer.from('just some text that is not a checkpoint\n')).catch((e: unknown) => e);
    w.abort();
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(packFiles()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('opaque files: Ingest + restore', () => {
  it('round-trips files of any size bit for bit, fed in random-size pieces (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.nat({ max: 40 }), fc.integer({ min: 1, max: 900_000 }), fc.constantFrom(0, 15, 16, 17, CDC_MIN, CDC_MAX, CDC_MAX + 1)),
        fc.nat(),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 400_000 })), { minLength: 1, maxLength: 4 }),
        async (size, seed, pieces) => {
          const file = noise(seed, size);
          const { text } = await clean('weights.bin', file, pieces);
          expect(parsePointer(text)).toEqual({ kind: 'opaque', size, id: sha(file) });
          expect((await smudge(text, 'weights.bin')).equals(file)).toBe(true);
          const loc = store.locate(sha(file))!;
          if (size > CDC_MAX) {
            expect(loc.encoding).toBe(Encoding.chunkList);
            const lengths = store.chunkRefs(sha(file), loc).map((r) => r.length);
            for (const l of lengths.slice(0, -1)) {
              expect(l).toBeGreaterThanOrEqual(CDC_MIN);
              expect(l).toBeLessThanOrEqual(CDC_MAX);
            }
          }
        },
      ),
      { seed: 2718, numRuns: 30 },
    );
  });

  it('the pointer does not depend on how the bytes were split', async () => {
    const file = noise('split', 900_000);
    const a = await clean('w.bin', file, [1, 2, 3, 100_000]);
    const b = await clean('w.bin', file, [65536]);
    expect(b.text).toBe(a.text);
    expect(b.bytesWritten).toBe(0);
  });

  it('an insertion near the start re-stores only a chunk or two', async () => {
    const file = noise('cdc', 2 * 1024 * 1024);
    await clean('w.bin', file);
    const edited = Buffer.concat([file.subarray(0, 1000), Buffer.from('inserted'), file.subarray(1000)]);
    const { text, bytesWritten } = await clean('w.bin', edited);
    expect(bytesWritten).toBeLessThan(2 * CDC_MAX + 10_000);
    expect((await smudge(text, 'w.bin')).equals(edited)).toBe(true);
  });
});

describe('content that already is a pointer, or a conflict', () => {
  const pointer = `git-tensor v1 opaque\nsize 3\nobject ${'ab'.repeat(32)}\n`;

  it('a valid pointer passes through clean unchanged and stores nothing', async () => {
    const w = store.beginWrite();
    expect(await ingest(w, 'w.bin', Buffer.from(pointer), [5])).toBe(pointer);
    expect(w.bytesWritten).toBe(0);
    w.commit();
    expect(packFiles()).toEqual([]);
  });

  it('a file that starts like a pointer but does not parse is refused', async () => {
    const w = store.beginWrite();
    const err = await ingest(w, 'w.bin', Buffer.from(pointer.replace('size 3', 'size 03'))).catch((e: unknown) => e);
    w.abort();
    expect(err).toBeInstanceOf(PointerError);
    expect(err).toMatchObject({ code: 'E_POINTER_SYNTAX', data: { file: 'w.bin', line: 2 } });
  });

  it('a file with conflict markers is refused with E_POINTER_CONFLICT naming `git tensor resolve`', async () => {
    const conflicted = `<<<<<<< HEAD\n${pointer}=======\n${pointer.replace('size 3', 'size 4')}>>>>>>> theirs\n`;
    const w = store.beginWrite();
    const err = await ingest(w, 'm.safetensors', Buffer.from(conflicted), [4]).catch((e: unknown) => e);
    w.abort();
    expect(err).toMatchObject({ code: 'E_POINTER_CONFLICT' });
    expect((err as PointerError).hint).toContain('git tensor resolve m.safetensors');
  });
});

describe('restore checks before it writes', () => {
  it('planRestore lists the objects the store lacks', async () => {
    const file = toFile([{ name: 'w', body: { dtype: 'U8', shape: [10], data: noise('p', 10) } }], null);
    const text = serializePointer(expectedPointer(file)); // never cleaned into this store
    const plan = planRestore(store, text, 'm.safetensors');
    const p = expectedPointer(file) as Extract<Pointer, { kind: 'safetensors' }>;
    expect(plan.missing.sort()).toEqual([p.header.id, p.tensors[0]!.id].sort());
  });

  it('a hand-edited pointer (renamed tensor) fails with E_POINTER_MISMATCH before any byte is produced', async () => {
    const file = toFile([{ name: 'w', body: { dtype: 'U8', shape: [10], data: noise('e', 10) } }], null);
    const { text } = await clean('m.safetensors', file);
    const edited = parsePointer(text.replace('tensor "w"', 'tensor "v"'));
    expect(() => restore(store, edited, 'm.safetensors')).toThrow(expect.objectContaining({ code: 'E_POINTER_MISMATCH' }));
  });
});

describe('validatePointer: a pointer that would give wrong bytes is refused, naming the file and tensor', () => {
  // Two tensors of different sizes and metadata; each case edits the committed pointer text by hand.
  const file = toFile([
    { name: 'a', body: { dtype: 'F32', shape: [4, 4], data: noise('va', 64) } },
    { name: 'b', body: { dtype: 'U8', shape: [10], data: noise('vb', 10) } },
  ], { format: 'pt', step: '7' });
  let text: string;
  let p: Extract<Pointer, { kind: 'safetensors' }>;
  beforeEach(async () => {
    text = (await clean('m.safetensors', file)).text;
    p = parsePointer(text) as typeof p;
  });
  const idOf = (name: string) => p.tensors.find((t) => t.name === name)!.id;

  it('accepts the pointer clean wrote, and restore gives the file back', async () => {
    expect(() => validatePointer(store, p, 'm.safetensors')).not.toThrow();
    expect((await smudge(text, 'm.safetensors')).equals(file)).toBe(true);
  });

  it.each<[string, (t: string) => string, string, RegExp, string | undefined]>([
    ['a tensor id swapped for another tensor\'s (another size)', (t) => t.replace(idOf('a'), idOf('b')), 'E_POINTER_MISMATCH', /tensor `a` object \w+ holds 10 bytes, its dtype and shape need 64/, 'a'],
    ['a tensor id swapped for the header object\'s', (t) => t.replace(idOf('b'), p.header.id), 'E_POINTER_MISMATCH', /tensor `b` object \w+ holds \d+ bytes, its dtype and shape need 10/, 'b'],
    ['the header id swapped for a tensor\'s', (t) => t.replace(`header ${p.header.id}`, `header ${idOf('a')}`), 'E_POINTER_MISMATCH', /header object \w+ holds 64 bytes, the pointer says \d+/, undefined],
    ['a wrong header length', (t) => t.replace(`header ${p.header.id} ${p.header.length}`, `header ${p.header.id} ${p.header.length + 8}`), 'E_POINTER_MISMATCH', /header object \w+ holds \d+ bytes, the pointer says \d+/, undefined],
    ['edited metadata', (t) => t.replace('meta "step" "7"', 'meta "step" "8"'), 'E_POINTER_MISMATCH', /metadata lines say .*"8".*__metadata__ .*"7"/, undefined],
    ['a shape edited to another size', (t) => t.replace('"a" F32 [4,4]', '"a" F32 [4,2]'), 'E_POINTER_MISMATCH', /tensor `a` object \w+ holds 64 bytes, its dtype and shape need 32/, 'a'],
    ['a shape edited to the same size', (t) => t.replace('"a" F32 [4,4]', '"a" F32 [2,8]'), 'E_POINTER_MISMATCH', /tensor `a` is F32 \[2, 8\] in the pointer, `a` F32 \[4, 4\] in the header/, 'a'],
    ['an unknown dtype', (t) => t.replace('"b" U8', '"b" U7'), 'E_POINTER_INVALID', /tensor `b` has unknown dtype U7/, 'b'],
    ['a tensor listed twice', (t) => t.replace('tensor "b"', 'tensor "a"'), 'E_POINTER_INVALID', /tensor `a` is listed twice/, 'a'],
    ['a wrong size line', (t) => t.replace(`size ${p.size}`, `size ${p.size + 1}`), 'E_POINTER_INVALID', /size \d+, but .* make \d+ bytes/, undefined],
  ])('%s', (_what, edit, code, message, tensor) => {
    const edited = edit(text);
    expect(edited).not.toBe(text);
    const bad = parsePointer(edited, 'm.safetensors');
    const err = (() => { try { validatePointer(store, bad, 'm.safetensors'); } catch (e) { return e; } })() as GitTensorError;
    expect(err).toMatchObject({ code, exitCode: 3, data: { file: 'm.safetensors', tensor } });
    expect(err.message).toMatch(message);
    expect(err.message).toContain('m.safetensors');
    expect(err.hint).toContain('git tensor fsck');
    // Checkout refuses before producing a single byte.
    expect(() => restore(store, bad, 'm.safetensors')).toThrow(expect.objectContaining({ code }));
    // And clean refuses the edited pointer rather than committing it.
    return expect(clean('m.safetensors', Buffer.from(edited))).rejects.toMatchObject({ code });
  });

  it('property: any edit of the lines either is refused (exit 3) or restores exactly the file the edited pointer describes', async () => {
    // A third tensor of a's size: swapping their ids is a valid pointer of another file, not an error.
    const three = toFile([
      { name: 'a', body: { dtype: 'F32', shape: [4, 4], data: noise('pa', 64) } },
      { name: 'b', body: { dtype: 'U8', shape: [10], data: noise('pb', 10) } },
      { name: 'c', body: { dtype: 'I32', shape: [16], data: noise('pc', 64) } },
    ], { format: 'pt' });
    const good = (await clean('m.safetensors', three)).text;
    const q = parsePointer(good) as typeof p;
    const ids = [q.header.id, ...q.tensors.map((t) => t.id)];
    const edit = fc.oneof(
      fc.tuple(fc.constantFrom(...ids), fc.constantFrom(...ids)).map(([x, y]) => (t: string) => t.replace(x, y)),
      fc.integer({ min: -16, max: 16 }).map((d) => (t: string) => t.replace(/^header (\w+) (\d+)$/m, (_m, id: string, n: string) => `header ${id} ${Math.max(0, Number(n) + d)}`)),
      fc.integer({ min: -70, max: 70 }).map((d) => (t: string) => t.replace(/^size (\d+)$/m, (_m, n: string) => `size ${Math.max(0, Number(n) + d)}`)),
      fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.constantFrom('F32', 'I32', 'U8', 'F16', 'BF16', 'F64', 'BOOL', 'F8_E4M3', 'Q4', 'X')).map(([n, d]) => (t: string) => t.replace(new RegExp(`"${n}" \\w+`), `"${n}" ${d}`)),
      fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 3 })).map(([n, shape]) => (t: string) => t.replace(new RegExp(`("${n}" \\w+) \\[[0-9,]*\\]`), `$1 [${shape.join(',')}]`)),
      fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.constantFrom('a', 'b', 'c', 'd')).map(([x, y]) => (t: string) => t.replace(`tensor "${x}"`, `tensor "${y}"`)),
      fc.constantFrom('"pt"', '"np"', '"pt "').map((v) => (t: string) => t.replace('meta "format" "pt"', `meta "format" ${v}`)),
    );
    await fc.assert(fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), async (edits) => {
      const text = edits.reduce((t, e) => e(t), good);
      const pointer = parsePointer(text, 'm.safetensors');
      let pieces: AsyncGenerator<Buffer>;
      try {
        pieces = restore(store, pointer, 'm.safetensors');
      } catch (err) {
        expect(err).toMatchObject({ exitCode: 3, code: expect.stringMatching(/^E_POINTER_(INVALID|MISMATCH)$/) });
        return;
      }
      const parts: Buffer[] = [];
      for await (const piece of pieces) parts.push(piece);
      const bytes = Buffer.concat(parts);
      expect(bytes.length).toBe(pointer.size);
      expect((await clean('m.safetensors', bytes)).text, 'the restored file is the one the edited pointer describes').toBe(text);
    }), { numRuns: 300 });
  });

  it('an opaque pointer whose object has another size', async () => {
    const { text: opaque } = await clean('w.bin', noise('op', 300));
    const bad = parsePointer(opaque.replace('size 300', 'size 301'));
    expect(() => restore(store, bad, 'w.bin')).toThrow(expect.objectContaining({ code: 'E_POINTER_MISMATCH', message: expect.stringContaining('holds 300 bytes, the pointer says 301') }));
  });

  it('objects the store lacks are left to the caller (fetch, or report missing)', () => {
    const absent = parsePointer(text.replace(idOf('a'), 'e'.repeat(64))) as typeof p;
    expect(() => validatePointer(store, absent, 'm.safetensors')).not.toThrow();
  });
});

describe.skipIf(!storeCodec() || !chunkBatches()?.decode)('a merge reuses the bytes it already decoded', () => {
  const shape = [256, 1024];
  /** A base tensor and a fine-tune of it that changed every 40th element (stored as deltas against the base). */
  const v0 = Float32Array.from({ length: 256 * 1024 }, (_, i) => Math.sin(i) * 0.05);
  const v1 = Float32Array.from(v0, (x, i) => (i % 40 === 0 ? x + 1e-3 : x));
  const u8 = (f: Float32Array) => new Uint8Array(f.buffer);
  let zroot: string;
  let zstore: ObjectStore;

  beforeEach(() => {
    zroot = mkdtempSync(join(tmpdir(), 'gt-merge-read-'));
    zstore = ObjectStore.open(zroot, { codec: storeCodec() });
  });
  afterEach(() => {
    zstore.close();
    rmSync(zroot, { recursive: true, force: true });
  });

  async function put(data: Float32Array, related?: { id: string; bytes?: Uint8Array }): Promise<{ id: string; written: number }> {
    const w = zstore.beginWrite();
    const relatedTensor = related && { name: 'w', dtype: 'F32', shape, id: related.id };
    const id = await storeTensor(w, 'F32', shape, u8(data), relatedTensor, related?.bytes);
    w.commit();
    return { id, written: w.bytesWritten };
  }

  it('storing against the related tensor\'s bytes in memory writes what reading them from the store writes', async () => {
    const base = await put(v0);
    const fromStore = await put(v1, { id: base.id });
    expect(fromStore.written).toBeLessThan(v1.byteLength / 4); // a delta, not a copy
    const other = ObjectStore.open(join(zroot, 'other'), { codec: storeCodec() });
    try {
      const w = other.beginWrite();
      expect(await storeTensor(w, 'F32', shape, u8(v0))).toBe(base.id);
      w.commit();
      const w2 = other.beginWrite();
      const id = await storeTensor(w2, 'F32', shape, u8(v1), { name: 'w', dtype: 'F32', shape, id: base.id }, u8(v0));
      w2.commit();
      expect(id).toBe(fromStore.id);
      expect(w2.bytesWritten).toBe(fromStore.written);
      expect((await other.readAsync(id)).equals(Buffer.from(u8(v1)))).toBe(true);
    } finally {
      other.close();
    }
  });

  it('readAsync decodes deltas from given base chunks, and still rejects a chunk whose base bytes were wrong', async () => {
    const base = await put(v0);
    const tuned = await put(v1, { id: base.id });
    const bases = zstore.chunkViews(base.id, u8(v0));
    expect(bases.size).toBeGreaterThan(1);
    expect((await zstore.readAsync(tuned.id, {}, bases)).equals(Buffer.from(u8(v1)))).toBe(true);
    const damaged = Uint8Array.from(u8(v0));
    damaged[12345] = damaged[12345]! ^ 0x40;
    await expect(zstore.readAsync(tuned.id, { tensor: 'w' }, zstore.chunkViews(base.id, damaged)))
      .rejects.toThrow(expect.objectContaining({ code: 'E_CORRUPT_OBJECT', message: expect.stringMatching(/content hashes to/) }));
  });
});
