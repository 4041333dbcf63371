// The store side of transfers (src/store/transfer.ts): which objects a set of ids needs, packs of bounded
// size in dependency order, packs that hold exactly the chosen objects with their payloads copied as
// they are, and imports of foreign packs that refuse damaged bytes and never show half a pack.

import { createCipheriv, createHash } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptObjectError } from '../../../src/errors/index.js';
import type { Codec } from '../../../src/store/codec.js';
import { ChunkEncoding, toPlanes, zigzagDelta } from '../../../src/store/encoding.js';
import { PackFile, PackWriter } from '../../../src/store/pack.js';
import { ObjectStore, sha256, type ChunkRef } from '../../../src/store/store.js';
import {
  importObjects, importPack, objectClosure, ObjectSource, packNameOfIndex, planPacks, plannedPackBytes, verifyForeignPack, writePackOf,
  type LocatedObject,
} from '../../../src/store/transfer.js';
import { missingLocally } from '../../../src/remote/download.js';

/** Deterministic incompressible bytes. */
function noise(seed: string, n: number): Buffer {
  return createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** A codec that stores bytes as they are: enough to exercise encodings 2..4 without zstd. */
const identity: Codec = { compress: (src) => Uint8Array.from(src), decompress: (src) => Uint8Array.from(src) };

let root: string;
const opened: ObjectStore[] = [];
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'git-tensor-transfer-'));
});
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  rmSync(root, { recursive: true, force: true });
});

function open(name: string, codec: Codec | null = identity): ObjectStore {
  const s = ObjectStore.open(join(root, name), { codec, compress: false });
  opened.push(s);
  return s;
}

/** Stores `chunks` as one chunk-list object; returns the object id and the chunk ids. */
function putChunked(store: ObjectStore, chunks: Buffer[]): { id: string; chunkIds: string[] } {
  const w = store.beginWrite();
  const refs: ChunkRef[] = chunks.map((c) => ({ id: w.putBlob(c), length: c.length }));
  const id = sha256(Buffer.concat(chunks));
  w.putChunkList(id, chunks.reduce((s, c) => s + c.length, 0), refs);
  w.commit();
  return { id: id.toString('hex'), chunkIds: refs.map((r) => r.id.toString('hex')) };
}

/** Writes a pack by hand with a delta chunk (encoding 4) against `base`, as clean writes for a fine-tune. */
function putDelta(store: ObjectStore, base: Buffer, next: Buffer): string {
  const w = new PackWriter(store.packDir, store.tmpDir);
  const baseId = sha256(base);
  const id = sha256(next);
  const payload = Buffer.concat([baseId, Buffer.of(4), Buffer.from(toPlanes(zigzagDelta(next, base, 4), 4))]);
  w.append(id, ChunkEncoding.deltaPlanesZstd, next.length, payload, 1);
  w.commit();
  store.refresh();
  return id.toString('hex');
}

function located(store: ObjectStore, ids: string[]): LocatedObject[] {
  return ids.map((id) => ({ id, loc: store.locate(id)! }));
}

function flipByte(path: string, at: number): void {
  chmodSync(path, 0o644);
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0]! ^= 1;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

describe('objectClosure', () => {
  it('expands chunk lists into their chunks and deltas into their bases', () => {
    const store = open('a');
    const base = noise('base', 4096);
    const { id: listId, chunkIds } = putChunked(store, [base, noise('c2', 4096)]);
    const next = Buffer.from(base);
    next.writeUInt32LE(next.readUInt32LE(0) + 1, 0);
    const deltaId = putDelta(store, base, next);

    const { present, absent } = objectClosure(store, [listId, deltaId]);
    expect(absent).toEqual([]);
    expect(present.map((o) => o.id).sort()).toEqual([listId, ...chunkIds, deltaId].sort());
  });

  it('stops where `skip` says the other side already has an object, and reports what is absent', () => {
    const store = open('a');
    const { id: listId, chunkIds } = putChunked(store, [noise('x', 100), noise('y', 100)]);
    expect(objectClosure(store, [listId], (id) => id === listId).present).toEqual([]);
    const absentId = 'ab'.repeat(32);
    const { present, absent } = objectClosure(store, [listId, absentId], (id) => id === chunkIds[0]);
    expect(present.map((o) => o.id).sort()).toEqual([listId, chunkIds[1]!].sort());
    expect(absent).toEqual([absentId]);
  });
});

describe('planPacks', () => {
  it('keeps every pack within the limit (an object larger than it alone) and bases before deltas before chunk lists', () => {
    const store = open('a');
    const chunks = Array.from({ length: 10 }, (_, k) => noise(`k${k}`, 10_000));
    const { id: listId, chunkIds } = putChunked(store, chunks);
    const big = putChunked(store, [noise('big', 50_000)]).id; // one chunk: stored raw
    const base = chunks[0]!;
    const next = Buffer.from(base);
    next[0]! ^= 2;
    const deltaId = putDelta(store, base, next);
    const objects = located(store, [listId, deltaId, big, ...chunkIds]);

    const packs = planPacks(objects, 32_000);
    for (const p of packs) if (p.length > 1) expect(plannedPackBytes(p)).toBeLessThanOrEqual(32_000);
    expect(packs.flat().map((o) => o.id).sort()).toEqual(objects.map((o) => o.id).sort());
    const order = packs.flat().map((o) => o.id);
    expect(order.indexOf(chunkIds[0]!)).toBeLessThan(order.indexOf(deltaId));
    expect(order.indexOf(deltaId)).toBeLessThan(order.indexOf(listId));
    expect(order.at(-1)).toBe(listId);
  });
});

describe('writePackOf', () => {
  it('writes exactly the chosen objects, payload bytes, encodings and depths unchanged', () => {
    const src = open('src');
    const base = noise('b', 8192);
    const { chunkIds } = putChunked(src, [base, noise('other', 8192)]);
    const next = Buffer.from(base);
    next[100]! ^= 8;
    const deltaId = putDelta(src, base, next);
    const chosen = located(src, [chunkIds[0]!, deltaId]);

    const out = join(root, 'out');
    const tmp = join(root, 'out-tmp');
    for (const d of [out, tmp]) mkdirSync(d, { recursive: true });
    const name = writePackOf(chosen, out, tmp, new ObjectSource(src))!;
    const pack = new PackFile(join(out, `pack-${name}.pack`), join(out, `pack-${name}.idx`));
    expect([...pack.entries()].map((e) => e.id).sort()).toEqual([chunkIds[0]!, deltaId].sort());
    for (const o of chosen) {
      const copy = pack.find(Buffer.from(o.id, 'hex'))!;
      expect(copy.encoding).toBe(o.loc.encoding);
      expect(copy.depth).toBe(o.loc.depth);
      expect(pack.read(copy).equals(o.loc.pack.read(o.loc))).toBe(true);
    }
    pack.close();
    expect(packNameOfIndex(readFileSync(join(out, `pack-${name}.idx`)))).toBe(name);
  });

  it('refuses to spread a damaged object: nothing is written', () => {
    const src = open('src');
    const { chunkIds } = putChunked(src, [noise('p', 5000), noise('q', 5000)]);
    const loc = src.locate(chunkIds[0]!)!;
    flipByte(loc.pack.packPath, loc.payloadOffset + 10);
    const out = join(root, 'out');
    mkdirSync(out, { recursive: true });
    expect(() => writePackOf(located(src, chunkIds), out, out, new ObjectSource(src))).toThrow(CorruptObjectError);
    expect(readdirSync(out).filter((f) => f.startsWith('pack-'))).toEqual([]);
  });
});

describe('importing a foreign pack', () => {
  function foreignPack(): { store: ObjectStore; pack: string; idx: string; name: string; ids: string[] } {
    const remote = open('remote');
    const { id, chunkIds } = putChunked(remote, [noise('r1', 3000), noise('r2', 3000), noise('r3', 3000)]);
    const [packFile] = readdirSync(remote.packDir).filter((f) => f.endsWith('.pack'));
    const name = packFile!.slice(5, -5);
    const local = open('local');
    // A download lands in the store's tmp folder, as the remote code does.
    const pack = join(local.tmpDir, 'download.pack');
    const idx = join(local.tmpDir, 'download.idx');
    copyFileSync(join(remote.packDir, packFile!), pack);
    copyFileSync(join(remote.packDir, `pack-${name}.idx`), idx);
    chmodSync(pack, 0o644);
    return { store: local, pack, idx, name, ids: [id, ...chunkIds] };
  }

  it('importPack verifies, then makes the whole pack visible under its name', () => {
    const { store, pack, idx, name, ids } = foreignPack();
    expect(missingLocally(store, [ids[0]!])).toEqual([ids[0]]);
    importPack(store, pack, idx, name);
    expect(readdirSync(store.packDir).sort()).toEqual([`pack-${name}.idx`, `pack-${name}.pack`]);
    expect(statSync(join(store.packDir, `pack-${name}.pack`)).mode & 0o222).toBe(0);
    expect(missingLocally(store, [ids[0]!])).toEqual([]);
    expect(sha256(store.read(ids[0]!)).toString('hex')).toBe(ids[0]);
  });

  it('importPack refuses a pack whose bytes or index do not match: the store is unchanged', () => {
    const { store, pack, idx, name } = foreignPack();
    flipByte(pack, 200);
    expect(() => importPack(store, pack, idx, name)).toThrow(CorruptObjectError);
    expect(readdirSync(store.packDir)).toEqual([]);
    expect(() => verifyForeignPack(pack, idx, 'f'.repeat(64), (p) => new ObjectSource(store, [p]))).toThrow(/does not match its name/);
  });

  it('importObjects copies only the wanted objects; missingLocally then asks for the chunks still absent', () => {
    const { store, pack, idx, ids } = foreignPack();
    const file = new PackFile(pack, idx);
    importObjects(store, file, [ids[0]!]);
    file.close();
    expect(store.packFiles.map((p) => p.count)).toEqual([1]);
    expect(missingLocally(store, [ids[0]!]).sort()).toEqual(ids.slice(1).sort());
  });

  it('verifies a delta against a base that arrives in the same download', () => {
    const remote = open('remote2');
    const base = noise('delta-base', 4096);
    const baseId = putChunked(remote, [base]).id;
    const next = Buffer.from(base);
    next[7]! ^= 1;
    const deltaId = putDelta(remote, base, next);
    const local = open('local2');
    const files = readdirSync(remote.packDir).filter((f) => f.endsWith('.pack'));
    const incoming = files.map((f) => new PackFile(join(remote.packDir, f), join(remote.packDir, f.replace(/\.pack$/, '.idx'))));
    const deltaPack = incoming.find((p) => p.find(Buffer.from(deltaId, 'hex')))!;
    importObjects(local, deltaPack, [deltaId], incoming);
    for (const p of incoming) p.close();
    expect(missingLocally(local, [deltaId])).toEqual([baseId]);
  });
});
