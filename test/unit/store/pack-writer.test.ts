// PackWriter's two ways of writing (gathered writev, and O_DIRECT staging blocks written on the pool)
// make the same pack, byte for byte, whatever mix of synchronous and pool writes made it; a failed or
// aborted write leaves nothing behind. And the store's write policy: `git add` keeps a new chunk raw
// (gc compresses it later), a chunk with a related chunk is delta-encoded at once.

import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nativeAlignedBuffer } from '../../../src/kernels/addon.js';
import { storeCodec } from '../../../src/store/codec.js';
import { ChunkEncoding } from '../../../src/store/encoding.js';
import { Encoding, PackEntry, PackFile, PackWriter, RECORD_KEPT_RAW } from '../../../src/store/pack.js';
import { ChunkHints, repackObjects, wantsCompression } from '../../../src/store/repack.js';
import { ObjectStore, sha256 } from '../../../src/store/store.js';

/** Deterministic incompressible bytes (AES-CTR keystream of a seed). */
function noise(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** BF16 values shaped like trained weights (a sum of three uniforms, scale 0.02): they compress. */
function bf16Weights(elements: number, seed: number): Buffer {
  let s = seed >>> 0 || 1;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const out = Buffer.alloc(elements * 2);
  for (let i = 0; i < elements; i++) {
    f[0] = (next() + next() + next() - 1.5) * 0.04;
    out.writeUInt16LE(u[0]! >>> 16, 2 * i);
  }
  return out;
}

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'gt-packw-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const dirs = (name: string) => {
  const packs = join(root, name, 'packs');
  const tmp = join(root, name, 'tmp');
  for (const d of [packs, tmp]) mkdirSync(d, { recursive: true });
  return { packs, tmp };
};

function entry(payload: Buffer, encoding: number = Encoding.raw): PackEntry {
  return { id: sha256(payload), encoding, decodedSize: payload.length, payload };
}

/** Objects of awkward sizes: entries straddle the 8 MiB staging blocks, one is empty, one is 9 MiB. */
function objects(): PackEntry[] {
  const sizes = [0, 1, 52, 4095, 4096, 4097, 65536, 3 << 20, 9 << 20, 77, 2 << 20, 123457];
  return sizes.map((n, k) => entry(noise(`o${k}`, n)));
}

describe('PackWriter: direct (O_DIRECT staging) and gathered writes make the same pack', () => {
  const cases: [string, (w: PackWriter, es: PackEntry[]) => Promise<void>][] = [
    ['all through append', async (w, es) => es.forEach((e) => w.append(e.id, e.encoding, e.decodedSize, e.payload))],
    ['all through appendAll', async (w, es) => w.appendAll(es)],
    ['mixed, appendAll in pieces', async (w, es) => {
      w.append(es[0]!.id, es[0]!.encoding, es[0]!.decodedSize, es[0]!.payload);
      await w.appendAll(es.slice(1, 8));
      for (const e of es.slice(8, 10)) w.append(e.id, e.encoding, e.decodedSize, e.payload);
      await Promise.all([w.appendAll(es.slice(10, 11)), w.appendAll(es.slice(11))]);
    }],
  ];
  for (const [name, write] of cases) {
    it(`${name}: identical pack and index, read back, read-only`, async () => {
      const es = objects();
      const names: string[] = [];
      for (const direct of [false, true]) {
        const d = dirs(`${name}-${direct}`);
        const w = new PackWriter(d.packs, d.tmp, { direct });
        await write(w, es);
        names.push(w.commit()!);
        expect(readdirSync(d.tmp)).toEqual([]);
        const pack = new PackFile(join(d.packs, `pack-${names.at(-1)}.pack`), join(d.packs, `pack-${names.at(-1)}.idx`));
        expect(pack.checkLayout()).toBeNull();
        for (const e of es) expect(pack.read(pack.find(e.id)!).equals(e.payload)).toBe(true);
        expect(statSync(pack.packPath).mode & 0o777).toBe(0o444);
        pack.close();
      }
      expect(names[0]).toBe(names[1]);
      const [a, b] = [false, true].map((direct) => readFileSync(join(root, `${name}-${direct}`, 'packs', `pack-${names[0]}.pack`)));
      expect(a!.equals(b!)).toBe(true);
    });
  }

  it('a pack of exactly one staging block is not padded', async () => {
    const d = dirs('exact');
    const w = new PackWriter(d.packs, d.tmp, { direct: true });
    // magic 8 + header 52 + payload = 8 MiB
    await w.appendAll([entry(noise('exact', (8 << 20) - 8 - 52))]);
    const name = w.commit()!;
    expect(statSync(join(d.packs, `pack-${name}.pack`)).size).toBe(8 << 20);
  });

  it('the index is sorted by the whole id: ids sharing their first bytes are all found (at 230,000 chunks some share 4)', () => {
    const d = dirs('prefix');
    const w = new PackWriter(d.packs, d.tmp);
    const ids: Buffer[] = [];
    for (let k = 0; k < 40; k++) {
      const id = createHash('sha256').update(`id ${k}`).digest();
      id.writeUInt32BE(k < 30 ? 0xabcdef01 : 0x00000007, 0); // two runs of equal 4-byte heads, the rest random
      ids.push(id);
      w.append(id, Encoding.raw, 1, Buffer.from([k]));
    }
    const name = w.commit()!;
    const pack = new PackFile(join(d.packs, `pack-${name}.pack`), join(d.packs, `pack-${name}.idx`));
    const found = ids.map((id) => pack.find(id)?.payloadLength ?? 0);
    expect(found).toEqual(ids.map(() => 1));
    const inOrder = [...pack.entries()].map((e) => e.id);
    expect(inOrder).toEqual([...inOrder].sort());
  });

  it('finds every id whatever its first byte (the fan-out\'s edges 0x00 and 0xff included), and no absent one', () => {
    const d = dirs('fanout');
    const w = new PackWriter(d.packs, d.tmp);
    const ids: Buffer[] = [];
    for (let k = 0; k < 600; k++) {
      const id = createHash('sha256').update(`fan ${k}`).digest();
      if (k < 5) id[0] = 0x00;
      else if (k < 10) id[0] = 0xff;
      ids.push(id);
      w.append(id, Encoding.raw, 1, Buffer.from([k & 0xff]));
    }
    const name = w.commit()!;
    const pack = new PackFile(join(d.packs, `pack-${name}.pack`), join(d.packs, `pack-${name}.idx`));
    expect(ids.every((id) => pack.find(id) !== undefined)).toBe(true);
    const absent = [0x00, 0x01, 0x7f, 0xfe, 0xff].map((first) => {
      const id = createHash('sha256').update(`absent ${first}`).digest();
      id[0] = first;
      return id;
    });
    expect(absent.map((id) => pack.find(id))).toEqual(absent.map(() => undefined));
  });

  it('an index out of order is refused as corrupt, not read with objects missing', () => {
    const d = dirs('unsorted');
    const w = new PackWriter(d.packs, d.tmp);
    for (let k = 0; k < 3; k++) w.append(createHash('sha256').update(`u ${k}`).digest(), Encoding.raw, 1, Buffer.from([k]));
    const name = w.commit()!;
    const idxPath = join(d.packs, `pack-${name}.idx`);
    const idx = Buffer.from(readFileSync(idxPath));
    const first = Buffer.from(idx.subarray(16, 16 + 64));
    idx.copy(idx, 16, 16 + 64, 16 + 128); // swap the first two records
    first.copy(idx, 16 + 64);
    createHash('sha256').update(idx.subarray(0, idx.length - 32)).digest().copy(idx, idx.length - 32);
    rmSync(idxPath, { force: true });
    writeFileSync(idxPath, idx);
    expect(() => new PackFile(join(d.packs, `pack-${name}.pack`), idxPath)).toThrow(/not sorted by object id/);
  });

  it('abort while pool writes run leaves no temp file, and the payloads can be reused after', async () => {
    const d = dirs('abort');
    const w = new PackWriter(d.packs, d.tmp, { direct: true });
    const running = w.appendAll([entry(noise('a', 20 << 20))]);
    w.abort();
    await running.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(d.tmp)).toEqual([]);
    expect(readdirSync(d.packs)).toEqual([]);
  });

  it('the addon hands out aligned memory for it (O_DIRECT needs 4 KiB alignment)', () => {
    const aligned = nativeAlignedBuffer();
    if (!aligned) return; // without the addon PackWriter writes through the page cache (tested above too)
    const b = aligned(1 << 20, 4096);
    expect(b.length).toBe(1 << 20);
    expect(() => aligned(1 << 20, 3000)).toThrow(RangeError);
  });
});

describe('write policy: fast at add, compressed by gc', () => {
  const codec = storeCodec();
  const chunkBytes = 64 * 1024;

  async function putTensor(store: ObjectStore, data: Buffer, base?: Buffer): Promise<Buffer[]> {
    const w = store.beginWrite();
    const lengths = Array.from({ length: data.length / chunkBytes }, () => chunkBytes);
    const baseIds = base ? lengths.map((_, k) => sha256(base.subarray(k * chunkBytes, (k + 1) * chunkBytes))) : [];
    const ids = await w.putChunks(data, lengths, {
      width: 2, float: true,
      base: base ? (k) => ({ id: baseIds[k]!, depth: 0, bytes: base.subarray(k * chunkBytes, (k + 1) * chunkBytes) }) : undefined,
    });
    w.commit();
    return ids;
  }

  const encodings = (store: ObjectStore, ids: Buffer[]) => ids.map((id) => store.locate(id)!.encoding);

  it('a new chunk is written raw, unless compressOnWrite; a changed chunk is a delta at once', async () => {
    if (!codec.compress) return; // no addon: nothing is compressed anywhere (codec.ts warns)
    const data = bf16Weights(4 * chunkBytes / 2, 7);
    const fast = ObjectStore.open(join(root, 'fast'), { codec });
    const ids = await putTensor(fast, data);
    expect(encodings(fast, ids)).toEqual([0, 0, 0, 0]);

    const eager = ObjectStore.open(join(root, 'eager'), { codec, compressOnWrite: true });
    expect(encodings(eager, await putTensor(eager, data))).toEqual(Array(4).fill(ChunkEncoding.planes));

    // A fine-tune: one element of each chunk nudged by one BF16 step.
    const tuned = Buffer.from(data);
    for (let k = 0; k < 4; k++) tuned.writeUInt16LE((tuned.readUInt16LE(k * chunkBytes + 100) + 1) & 0xffff, k * chunkBytes + 100);
    const tunedIds = await putTensor(fast, tuned, data);
    expect(encodings(fast, tunedIds)).toEqual(Array(4).fill(ChunkEncoding.deltaPlanes));
    for (const [k, id] of tunedIds.entries()) expect(fast.read(id.toString('hex')).equals(tuned.subarray(k * chunkBytes, (k + 1) * chunkBytes))).toBe(true);
  });

  it('repackObjects compresses raw chunks with a hint, keeps the rest, and every object reads back', async () => {
    if (!codec.compress) return;
    const store = ObjectStore.open(join(root, 'gc'), { codec });
    const data = bf16Weights(8 * chunkBytes / 2, 11);
    const ids = await putTensor(store, data);
    const w = store.beginWrite();
    const list = sha256(data);
    w.putChunkList(list, data.length, ids.map((id) => ({ id, length: chunkBytes })));
    const header = w.putBlob(Buffer.from('{"t":{"dtype":"BF16","shape":[2048,128],"data_offsets":[0,524288]}}'));
    w.commit();
    const hints = ChunkHints.of(store, [{ kind: 'safetensors', size: 0, header: { id: header.toString('hex'), length: 0 }, metadata: null, tensors: [{ name: 't', dtype: 'BF16', shape: [2048, 128], id: list.toString('hex') }] }]);
    expect(hints.size).toBe(8);
    expect(hints.get(ids[0]!.toString('hex'))).toEqual({ width: 2, float: true });
    const before = store.packFiles.map((p) => p.packPath);
    const objects = store.packFiles.flatMap((p) => [...p.entries()].map((e) => ({ id: e.id, loc: e })));
    const { name, compressed } = await repackObjects(store, objects, hints);
    expect(compressed).toBe(8);
    for (const p of before) rmSync(p.replace(/\.pack$/, '.idx'));
    const fresh = ObjectStore.open(join(root, 'gc'), { codec });
    expect(fresh.packFiles.map((p) => p.packPath)).toEqual([join(root, 'gc', 'packs', `pack-${name}.pack`)]);
    expect(encodings(fresh, ids)).toEqual(Array(8).fill(ChunkEncoding.planes));
    expect(fresh.locate(header)!.encoding).toBe(Encoding.raw);
    expect(fresh.read(list.toString('hex')).equals(data)).toBe(true);
    expect(fresh.packFiles[0]!.checkLayout()).toBeNull();
  });

  it('repackObjects refuses a raw chunk that does not hash to its id, and writes nothing', async () => {
    if (!codec.compress) return;
    const store = ObjectStore.open(join(root, 'bad'), { codec });
    const good = bf16Weights(chunkBytes / 2, 3);
    const w = store.beginWrite();
    const liar = sha256(Buffer.from('something else'));
    w.putBlob(good, liar); // stored under an id that is not its hash
    w.commit();
    const objects = store.packFiles.flatMap((p) => [...p.entries()].map((e) => ({ id: e.id, loc: e })));
    const packsBefore = readdirSync(join(root, 'bad', 'packs')).sort();
    await expect(repackObjects(store, objects, ChunkHints.from([[liar, { width: 2, float: true }]])))
      .rejects.toMatchObject({ code: 'E_CORRUPT_OBJECT' });
    expect(readdirSync(join(root, 'bad', 'packs')).sort()).toEqual(packsBefore);
    expect(readdirSync(join(root, 'bad', 'tmp'))).toEqual([]);
  });

  it('a chunk that does not compress is kept raw and marked, so the next repack does not try again', async () => {
    if (!codec.compress) return;
    const store = ObjectStore.open(join(root, 'noise'), { codec });
    const ids = await putTensor(store, noise('n', 2 * chunkBytes));
    const hints = ChunkHints.from(ids.map((id) => [id, { width: 2, float: true }]));
    const all = (s: ObjectStore) => s.packFiles.flatMap((p) => [...p.entries()].map((e) => ({ id: e.id, loc: e })));
    expect(all(store).filter(wantsCompression)).toHaveLength(2);
    const old = store.packFiles.map((p) => p.idxPath);
    expect((await repackObjects(store, all(store), hints)).compressed).toBe(0);
    for (const p of old) rmSync(p);
    const fresh = ObjectStore.open(join(root, 'noise'), { codec });
    expect(all(fresh).map((o) => [o.loc.encoding, o.loc.flags & RECORD_KEPT_RAW])).toEqual([[Encoding.raw, RECORD_KEPT_RAW], [Encoding.raw, RECORD_KEPT_RAW]]);
    expect(all(fresh).filter(wantsCompression)).toHaveLength(0);
    for (const id of ids) expect(fresh.read(id.toString('hex')).length).toBe(chunkBytes);
  });
});
