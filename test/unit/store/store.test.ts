import { createCipheriv, createHash } from 'node:crypto';
import { chmodSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptObjectError, GitTensorError, PackError } from '../../../src/errors/index.js';
import { Encoding, RECORD_RAW_CRC } from '../../../src/store/pack.js';
import { ObjectStore, sha256, type ChunkRef } from '../../../src/store/store.js';

/** Deterministic incompressible bytes (AES-CTR keystream of a seed): no encoding can shrink them. */
function noise(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

const hex = (b: Buffer) => b.toString('hex');

let root: string;
let opened: ObjectStore[];

function open(): ObjectStore {
  const s = ObjectStore.open(root);
  opened.push(s);
  return s;
}

const packFiles = () => readdirSync(join(root, 'packs')).sort();
const tmpFiles = () => readdirSync(join(root, 'tmp'));

function onlyPack(): { pack: string; idx: string } {
  const files = packFiles();
  expect(files).toHaveLength(2);
  const pack = files.find((f) => f.endsWith('.pack'))!;
  const idx = files.find((f) => f.endsWith('.idx'))!;
  expect(pack.slice(0, -5)).toBe(idx.slice(0, -4));
  return { pack: join(root, 'packs', pack), idx: join(root, 'packs', idx) };
}

/** XORs one byte of a file in place (pack files are written read-only). */
function flipByte(path: string, at: number, mask = 0x01): void {
  chmodSync(path, 0o644);
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0]! ^= mask;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error, nothing was thrown');
}

/** Stores `chunks` and a chunk list over them; returns the list's id (the SHA-256 of the whole). */
function putChunked(store: ObjectStore, chunks: Buffer[], opts: { skip?: number[]; id?: Buffer; size?: number } = {}): { id: string; refs: ChunkRef[] } {
  const w = store.beginWrite();
  const refs = chunks.map((c, k) => ({ id: opts.skip?.includes(k) ? sha256(c) : w.putBlob(c), length: c.length }));
  const id = opts.id ?? sha256(Buffer.concat(chunks));
  w.putChunkList(id, opts.size ?? chunks.reduce((n, c) => n + c.length, 0), refs);
  w.commit();
  return { id: hex(id), refs };
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'gt-store-'));
  opened = [];
});

afterEach(() => {
  for (const s of opened) s.close();
  rmSync(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------

describe('writing: atomic visibility', () => {
  it('objects are invisible before commit and visible after, to this store and to others on the same dir', () => {
    const store = open();
    const other = open(); // opened before the write, as a second git process would be
    const data = noise('a', 5000);
    const w = store.beginWrite();
    const id = w.putBlob(data);
    expect(hex(id)).toBe(hex(createHash('sha256').update(data).digest()));

    expect(store.has(id)).toBe(false);
    expect(store.locate(id)).toBeUndefined();
    expect(other.missing([hex(id)])).toEqual([hex(id)]);
    expect(packFiles()).toEqual([]);

    w.commit();
    expect(store.has(id)).toBe(true);
    expect(store.read(hex(id)).equals(data)).toBe(true);

    other.refresh();
    expect(other.has(id)).toBe(true);
    expect(other.read(hex(id)).equals(data)).toBe(true);
    expect(open().read(hex(id)).equals(data)).toBe(true);
    onlyPack();
    expect(tmpFiles()).toEqual([]);
  });

  it('a reader opened earlier finds a newly committed object on read without an explicit refresh', () => {
    const reader = open();
    const w = open().beginWrite();
    const id = hex(w.putBlob(noise('late', 100)));
    w.commit();
    expect(reader.read(id).equals(noise('late', 100))).toBe(true);
    expect(reader.missing([id])).toEqual([]);
  });

  it('abort leaves no pack and no temp file, and later puts through that writer are dropped', () => {
    const store = open();
    const w = store.beginWrite();
    const ids = [1, 2, 3].map((k) => w.putBlob(noise(`x${k}`, 70_000)));
    expect(tmpFiles()).toHaveLength(1); // the pack being written
    w.abort();
    expect(tmpFiles()).toEqual([]);
    expect(packFiles()).toEqual([]);
    w.putBlob(noise('after abort', 10));
    w.commit();
    expect(packFiles()).toEqual([]);
    expect(tmpFiles()).toEqual([]);
    for (const id of ids) expect(open().has(id)).toBe(false);
  });

  it('a writer that stored nothing commits nothing', () => {
    const store = open();
    store.beginWrite().commit();
    const w = store.beginWrite();
    w.abort();
    expect(packFiles()).toEqual([]);
    expect(tmpFiles()).toEqual([]);
  });

  it('pack names are content hashes: two writers never collide, each commit adds one pack', () => {
    const store = open();
    const w1 = store.beginWrite();
    const w2 = store.beginWrite(); // concurrent writers in one process
    const a = w1.putBlob(noise('one', 10));
    const b = w2.putBlob(noise('two', 10));
    w2.commit();
    w1.commit();
    expect(packFiles().filter((f) => f.endsWith('.pack'))).toHaveLength(2);
    const fresh = open();
    expect(fresh.has(a) && fresh.has(b)).toBe(true);
  });
});

describe('dedup', () => {
  it('the same blob put twice through one writer is stored once', () => {
    const store = open();
    const data = noise('dup', 1000);
    const w = store.beginWrite();
    const id1 = w.putBlob(data);
    const id2 = w.putBlob(Buffer.from(data));
    expect(hex(id1)).toBe(hex(id2));
    expect(w.bytesWritten).toBe(1000);
    w.commit();
    const { pack } = onlyPack();
    expect(store.packFiles[0]!.count).toBe(1);
    // One entry: 8-byte pack magic, then one entry header and the payload.
    expect(statSync(pack).size).toBeLessThan(8 + 64 + 1000 + 1);
  });

  it('a blob already committed is not written again by a later writer (no new pack at all)', () => {
    const store = open();
    const data = noise('dup2', 3000);
    const w1 = store.beginWrite();
    w1.putBlob(data);
    w1.commit();
    const before = packFiles();

    for (const s of [store, open()]) {
      const w2 = s.beginWrite();
      w2.putBlob(Buffer.from(data));
      expect(w2.bytesWritten).toBe(0);
      w2.commit();
    }
    expect(packFiles()).toEqual(before);
  });

  it('a chunk list already committed is not written again', () => {
    const store = open();
    const chunks = [noise('c1', 100), noise('c2', 100)];
    putChunked(store, chunks);
    const before = packFiles();
    const { id } = putChunked(store, chunks);
    expect(packFiles()).toEqual(before);
    expect(store.read(id).equals(Buffer.concat(chunks))).toBe(true);
  });
});

describe('reading', () => {
  it('finds every one of many objects by binary search in a fresh store, and no absent one', () => {
    const store = open();
    const w = store.beginWrite();
    const blobs = Array.from({ length: 300 }, (_, k) => noise(`blob${k}`, k % 17));
    const ids = blobs.map((b) => hex(w.putBlob(b)));
    w.commit();
    const fresh = open();
    ids.forEach((id, k) => expect(fresh.read(id).equals(blobs[k]!), `blob ${k}`).toBe(true));
    // Ids just around the stored ones (same prefix, last byte changed) and the extremes are absent.
    const absent = [...new Set([...ids.slice(0, 50).map((id) => id.slice(0, 62) + (((parseInt(id.slice(62), 16) + 1) & 0xff).toString(16).padStart(2, '0'))), '0'.repeat(64), 'f'.repeat(64)])]
      .filter((id) => !ids.includes(id));
    for (const id of absent) expect(fresh.has(id), id).toBe(false);
    expect(fresh.missing(absent).sort()).toEqual([...absent].sort());
  });

  it('stream() of a chunk list yields the chunks in order; read() is their concatenation', () => {
    const store = open();
    const chunks = [noise('s1', 70_000), noise('s2', 1), noise('s3', 12_345)];
    const { id } = putChunked(store, chunks);
    const loc = store.locate(id)!;
    expect(loc.encoding).toBe(Encoding.chunkList);
    expect(loc.decodedSize).toBe(82_346);
    const pieces = [...store.stream(id)];
    expect(Buffer.concat(pieces).equals(Buffer.concat(chunks))).toBe(true);
    expect(pieces.map((p) => p.length)).toEqual([70_000, 1, 12_345]);
    expect(store.read(id).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('a chunk list that repeats a chunk reads back with the repetition', () => {
    const store = open();
    const z = Buffer.alloc(1000, 7);
    const { id } = putChunked(store, [z, z, z]);
    expect(store.read(id).equals(Buffer.alloc(3000, 7))).toBe(true);
  });

  // Guards a hang fixed in 98945e8: writev of an empty payload made no progress, forever.
  it('the empty object can be stored and read', () => {
    const store = open();
    const w = store.beginWrite();
    const id = hex(w.putBlob(Buffer.alloc(0)));
    w.commit();
    expect(id).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(open().read(id).length).toBe(0);
  });

  it('verifies a chunk list against its id: a list stored under the wrong id fails with CorruptObjectError', () => {
    const store = open();
    const claimed = sha256(Buffer.from('something else'));
    const { id } = putChunked(store, [noise('v1', 50), noise('v2', 50)], { id: claimed });
    const e = caught(() => store.read(id, { file: 'w.bin' }));
    expect(e).toBeInstanceOf(CorruptObjectError);
    expect(e).toMatchObject({ code: 'E_CORRUPT_OBJECT', data: { id, file: 'w.bin' } });
    expect((e as Error).message).toContain(id.slice(0, 16));
  });

  it('refuses a chunk list whose decoded size disagrees with its chunks', () => {
    const store = open();
    const { id } = putChunked(store, [noise('d1', 50), noise('d2', 50)], { size: 101 });
    expect(caught(() => store.read(id))).toMatchObject({ code: 'E_CORRUPT_OBJECT', data: { id } });
  });

  it('refuses a chunk list whose record gives a chunk the wrong length', () => {
    const store = open();
    const a = noise('l1', 50);
    const b = noise('l2', 10);
    const w = store.beginWrite();
    const refs = [{ id: w.putBlob(a), length: 49 }, { id: w.putBlob(b), length: 10 }];
    const listId = hex(sha256(Buffer.concat([a, b])));
    w.putChunkList(Buffer.from(listId, 'hex'), 60, refs);
    w.commit();
    expect(store.read(hex(refs[0]!.id)).equals(a)).toBe(true); // the chunk itself is fine
    expect(caught(() => store.read(listId))).toMatchObject({ code: 'E_CORRUPT_OBJECT', data: { id: listId } });
  });
});

describe('missing()', () => {
  it('reports absent ids and nothing for present ones', () => {
    const store = open();
    const w = store.beginWrite();
    const present = hex(w.putBlob(noise('p', 10)));
    w.commit();
    const absent = hex(sha256(Buffer.from('absent')));
    expect(store.missing([present])).toEqual([]);
    expect(store.missing([present, absent, absent])).toEqual([absent]);
  });

  it('reports the absent chunks of a chunk list that is present, not its present chunks', () => {
    const store = open();
    const chunks = [noise('m1', 100), noise('m2', 100), noise('m3', 100)];
    const { id, refs } = putChunked(store, chunks, { skip: [1] });
    const got = store.missing([id]);
    expect(got).toContain(hex(refs[1]!.id));
    expect(got).not.toContain(hex(refs[0]!.id));
    expect(got).not.toContain(hex(refs[2]!.id));
    expect(caught(() => store.read(id))).toMatchObject({ code: 'E_MISSING_OBJECTS' });
  });

  it('reports each absent chunk once, however many times lists refer to it', () => {
    // A tensor of zeros is one chunk repeated; if that chunk is absent the user must be told about one
    // object, not about the same id once per repetition.
    const store = open();
    const zeros = Buffer.alloc(1000);
    const { id: list1, refs } = putChunked(store, [zeros, zeros, zeros, zeros], { skip: [0, 1, 2, 3] });
    const { id: list2 } = putChunked(store, [zeros, noise('other', 5)], { skip: [0] });
    expect(store.missing([list1])).toEqual([hex(refs[0]!.id)]);
    expect(store.missing([list1, list2])).toEqual([hex(refs[0]!.id)]);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('damage is detected, never returned as data', () => {
  /** Every window streamChunks yields, joined (the addon's readRaw and decode paths). */
  async function streamed(store: ObjectStore, id: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const w of store.streamChunks(id, { file: 'model.bin' })) parts.push(Buffer.from(w));
    return Buffer.concat(parts);
  }

  it('a raw chunk\'s index record holds its CRC-32, the value of the standard check string', () => {
    const store = open();
    const w = store.beginWrite();
    const id = hex(w.putBlob(Buffer.from('123456789')));
    w.commit();
    const loc = open().locate(id)!;
    // CRC-32 (ISO-HDLC, zlib's) of "123456789" is 0xCBF43926 (the catalogue's check value).
    expect(loc.crc).toBe(0xcbf43926);
    expect(loc.flags & RECORD_RAW_CRC).toBe(RECORD_RAW_CRC);
  });

  it('streamChunks refuses a raw chunk whose bytes fail their CRC-32, naming the object', async () => {
    const store = open();
    const chunks = [noise('crc-a', 300_000), noise('crc-b', 300_000)];
    const { id } = putChunked(store, chunks);
    expect((await streamed(open(), id)).equals(Buffer.concat(chunks))).toBe(true);
    const loc = store.locate(sha256(chunks[1]!))!;
    flipByte(onlyPack().pack, loc.payloadOffset + 123_456);
    const e = await streamed(open(), id).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(CorruptObjectError);
    expect((e as Error).message).toContain(id.slice(0, 16));
    expect((e as Error).message).toContain(hex(sha256(chunks[1]!)).slice(0, 16));
  });

  it('packs of older writers (raw records without a CRC-32) still read back, verified by SHA-256', async () => {
    const store = open();
    const chunks = [noise('old-a', 300_000), noise('old-b', 300_000)];
    const { id } = putChunked(store, chunks);
    // Rewrite the index as a writer before RECORD_RAW_CRC did: crc 0 and the flag clear on raw records,
    // then the index's own SHA-256 trailer again.
    const { idx, pack } = onlyPack();
    const bytes = readFileSync(idx);
    const records = (bytes.length - 16 - 32) / 64;
    for (let k = 0; k < records; k++) {
      const at = 16 + 64 * k;
      if (bytes[at + 56] !== Encoding.raw) continue;
      bytes.writeUInt32LE(0, at + 58);
      bytes[at + 62] = bytes[at + 62]! & ~RECORD_RAW_CRC;
    }
    createHash('sha256').update(bytes.subarray(0, bytes.length - 32)).digest().copy(bytes, bytes.length - 32);
    chmodSync(idx, 0o644);
    writeFileSync(idx, bytes);
    expect(open().locate(sha256(chunks[0]!))!.flags & RECORD_RAW_CRC).toBe(0);
    expect((await streamed(open(), id)).equals(Buffer.concat(chunks))).toBe(true);
    flipByte(pack, open().locate(sha256(chunks[0]!))!.payloadOffset + 99);
    const e = await streamed(open(), id).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(CorruptObjectError);
    expect((e as Error).message).toContain(id.slice(0, 16));
  });

  it('flipping any byte of a raw object in the pack -> CorruptObjectError naming the object', () => {
    const store = open();
    const data = noise('flip', 48);
    const w = store.beginWrite();
    const id = hex(w.putBlob(data));
    w.commit();
    const { pack } = onlyPack();
    const loc = store.locate(id)!;
    for (let at = loc.payloadOffset; at < loc.payloadOffset + loc.payloadLength; at++) {
      flipByte(pack, at);
      const e = caught(() => open().read(id, { file: 'model.bin' }));
      expect(e, `byte ${at}`).toBeInstanceOf(CorruptObjectError);
      expect(e).toMatchObject({ code: 'E_CORRUPT_OBJECT', data: { id, file: 'model.bin' } });
      expect((e as Error).message).toContain(id.slice(0, 16));
      flipByte(pack, at);
    }
    expect(open().read(id).equals(data)).toBe(true);
  });

  it('a flipped byte inside one chunk -> reading the whole object fails naming the object', () => {
    const store = open();
    const chunks = [noise('k1', 300), noise('k2', 300)];
    const { id, refs } = putChunked(store, chunks);
    const { pack } = onlyPack();
    const chunkLoc = store.locate(refs[1]!.id)!;
    flipByte(pack, chunkLoc.payloadOffset + 150, 0x80);
    expect(caught(() => open().read(id))).toMatchObject({ code: 'E_CORRUPT_OBJECT', data: { id } });
    expect(caught(() => open().read(hex(refs[1]!.id)))).toMatchObject({ code: 'E_CORRUPT_OBJECT', data: { id: hex(refs[1]!.id) } });
    // The untouched chunk still reads.
    expect(open().read(hex(refs[0]!.id)).equals(chunks[0]!)).toBe(true);
  });

  it('a flipped byte in a chunk list record -> CorruptObjectError naming the object, not "missing"', () => {
    const store = open();
    const chunks = [noise('r1', 200), noise('r2', 200)];
    const { id } = putChunked(store, chunks);
    const { pack } = onlyPack();
    const loc = store.locate(id)!;
    // Every byte of the first record: 32 bytes of chunk id, then 4 bytes of length.
    for (let k = 0; k < 36; k++) {
      flipByte(pack, loc.payloadOffset + k);
      const e = caught(() => open().read(id));
      flipByte(pack, loc.payloadOffset + k);
      expect(e, `record byte ${k}`).toBeInstanceOf(CorruptObjectError);
      expect(e).toMatchObject({ data: { id } });
    }
  });

  it('a truncated pack -> PackError naming the pack for what lies past the cut; what lies before still reads', () => {
    const store = open();
    const w = store.beginWrite();
    const first = noise('t1', 1000);
    const second = noise('t2', 1000);
    const id1 = hex(w.putBlob(first));
    const id2 = hex(w.putBlob(second));
    w.commit();
    const { pack } = onlyPack();
    const [early, late] = [id1, id2].sort((a, b) => store.locate(a)!.payloadOffset - store.locate(b)!.payloadOffset);
    chmodSync(pack, 0o644);
    truncateSync(pack, store.locate(late!)!.payloadOffset + 500);
    const fresh = open();
    const e = caught(() => fresh.read(late!));
    expect(e).toBeInstanceOf(PackError);
    expect((e as Error).message).toMatch(/\.pack: pack file is truncated/);
    expect(fresh.read(early!).equals(early === id1 ? first : second)).toBe(true);
  });

  it('a corrupted .idx is refused when the store is opened (checksum), and when its length is wrong', () => {
    const store = open();
    const w = store.beginWrite();
    for (let k = 0; k < 5; k++) w.putBlob(noise(`i${k}`, 100));
    w.commit();
    store.close();
    const { idx } = onlyPack();
    const pristine = readFileSync(idx);
    for (const at of [0, 20, 16 + 64 * 2 + 40, pristine.length - 1]) {
      flipByte(idx, at);
      const e = caught(() => ObjectStore.open(root));
      expect(e, `idx byte ${at}`).toBeInstanceOf(PackError);
      expect(e).toMatchObject({ data: { file: idx } });
      expect((e as Error).message.startsWith(idx)).toBe(true);
      flipByte(idx, at);
    }
    writeFileSync(idx, pristine.subarray(0, pristine.length - 64));
    expect(caught(() => ObjectStore.open(root))).toBeInstanceOf(PackError);
    writeFileSync(idx, pristine);
    expect(open().packFiles[0]!.count).toBe(5);
  });

  it('an index whose pack file is gone -> a git-tensor error naming the pack, not an internal error', () => {
    const store = open();
    const w = store.beginWrite();
    const id = hex(w.putBlob(noise('gone', 100)));
    w.commit();
    store.close();
    const { pack } = onlyPack();
    rmSync(pack);
    const e = caught(() => open().read(id));
    expect(e).toBeInstanceOf(GitTensorError); // formatError() would otherwise call it a bug in git-tensor
    expect((e as GitTensorError).message).toContain(basename(pack));
  });

  it('messages about a damaged pack or index name the file, so the user knows what to repair', () => {
    const store = open();
    const w = store.beginWrite();
    const id = hex(w.putBlob(noise('named', 1000)));
    w.commit();
    const { pack, idx } = onlyPack();
    store.close();

    chmodSync(pack, 0o644);
    truncateSync(pack, 100);
    const truncated = caught(() => open().read(id)) as GitTensorError;
    expect(truncated.message).toContain(basename(pack));

    flipByte(idx, 20);
    const badIdx = caught(() => ObjectStore.open(root)) as GitTensorError;
    expect(badIdx.message).toContain(basename(idx));
  });
});
