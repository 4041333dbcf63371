// Owns the store side of moving objects between stores: which local packs hold given ids, writing new
// packs that hold exactly a set of objects copied from existing packs (payloads copied as they are, never
// re-encoded, so ids and encodings are preserved), bounding their size, and importing a pack that came from
// elsewhere after verifying it. Spec: docs/store.md, docs/remote.md.

import { createHash } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptObjectError, StoreWriteError } from '../errors/index.js';
import { fsyncDir, removeDeadWritersFiles, writeFileAtomic } from './atomic.js';
import { IdSet } from './id-set.js';
import { decodeChunk, deltaBaseOf, isChunkEncoding, isDelta } from './encoding.js';
import { Encoding, ENTRY_HEADER_BYTES, ObjectLocation, PACK_MAGIC, PackFile, PackWriter } from './pack.js';
import { CHUNK_LIST_RECORD_BYTES, ObjectStore, sha256 } from './store.js';

/** One object and where its payload is. */
export interface LocatedObject {
  id: string;
  loc: ObjectLocation;
}

/** Bytes an object adds to a pack: its entry header and its payload. */
export function packedSize(loc: Pick<ObjectLocation, 'payloadLength'>): number {
  return ENTRY_HEADER_BYTES + loc.payloadLength;
}

/** The chunk ids a chunk-list object refers to (its payload is read, not its chunks). */
export function chunkIdsOf(loc: ObjectLocation, id = ''): string[] {
  const payload = loc.pack.read(loc, loc.payloadLength, id);
  if (payload.length % CHUNK_LIST_RECORD_BYTES !== 0) throw new CorruptObjectError(id, 'chunk list has a partial record');
  const out: string[] = [];
  for (let at = 0; at < payload.length; at += CHUNK_LIST_RECORD_BYTES) out.push(payload.toString('hex', at, at + 32));
  return out;
}

/** The objects one object needs to be read: a chunk list's chunks, a delta's base. */
export function dependenciesOf(loc: ObjectLocation, id = ''): string[] {
  if (loc.encoding === Encoding.chunkList) return chunkIdsOf(loc, id);
  if (isDelta(loc.encoding)) {
    const base = deltaBaseOf(loc.encoding, loc.pack.read(loc, Math.min(33, loc.payloadLength), id));
    return base ? [base] : [];
  }
  return [];
}

/**
 * Every object needed to read `ids` in full, as found in the local store: the objects themselves, the
 * chunks of chunk lists and the bases of deltas (to any depth). Ids the store lacks are returned in
 * `absent`. `skip` prunes the walk: an id it accepts is neither returned nor expanded (e.g. "the remote
 * already has it": what a remote holds, it holds with everything needed to read it).
 */
export function objectClosure(store: ObjectStore, ids: Iterable<string>, skip: (id: string) => boolean = () => false): { present: LocatedObject[]; absent: string[] } {
  const present: LocatedObject[] = [];
  const { absent } = walkClosure(store, ids, skip, (id, loc) => present.push({ id, loc }));
  return { present, absent };
}

/**
 * The ids of the objects needed to read `ids` in full, absent ones included, without keeping where each
 * is: the compact form a walk over the whole store wants (gc holds this for every reachable object).
 */
export function closureIds(store: ObjectStore, ids: Iterable<string>): IdSet {
  return walkClosure(store, ids, () => false, () => {}).seen;
}

function walkClosure(store: ObjectStore, ids: Iterable<string>, skip: (id: string) => boolean, visit: (id: string, loc: ObjectLocation) => void): { seen: IdSet; absent: string[] } {
  store.refresh();
  const seen = new IdSet();
  const absent: string[] = [];
  const stack = [...ids];
  while (stack.length) {
    const id = stack.pop()!;
    if (!seen.add(id)) continue;
    if (skip(id)) continue;
    const loc = store.locate(id, false);
    if (!loc) {
      absent.push(id);
      continue;
    }
    visit(id, loc);
    for (const dep of dependenciesOf(loc, id)) if (!seen.has(dep)) stack.push(dep);
  }
  return { seen, absent };
}

/**
 * Splits objects into groups that each fit in a pack of at most `limit` bytes (an object larger than the
 * limit gets a pack of its own). Objects come in dependency order: self-contained chunks first, then
 * deltas by increasing depth (a base before what is built on it), chunk lists last. When packs are
 * published one after the other, nothing becomes visible before what it needs.
 */
export function planPacks(objects: readonly LocatedObject[], limit: number): LocatedObject[][] {
  const rank = (o: LocatedObject) => (o.loc.encoding === Encoding.chunkList ? 1000 : o.loc.depth);
  const ordered = [...objects].sort((a, b) => rank(a) - rank(b));
  const packs: LocatedObject[][] = [];
  let current: LocatedObject[] = [];
  let size = PACK_MAGIC.length;
  for (const o of ordered) {
    const add = packedSize(o.loc);
    if (current.length && size + add > limit) {
      packs.push(current);
      current = [];
      size = PACK_MAGIC.length;
    }
    current.push(o);
    size += add;
  }
  if (current.length) packs.push(current);
  return packs;
}

/** The size in bytes of the pack `writePackOf` writes for these objects. */
export function plannedPackBytes(objects: readonly LocatedObject[]): number {
  return objects.reduce((s, o) => s + packedSize(o.loc), PACK_MAGIC.length);
}

/**
 * Finds objects for verification: packs being imported first, then the store. Lets a delta be checked
 * against a base that arrives in the same download.
 */
export class ObjectSource {
  constructor(private readonly store: ObjectStore, private readonly incoming: readonly PackFile[] = []) {}

  locate(id: string): ObjectLocation | undefined {
    const key = Buffer.from(id, 'hex');
    for (const p of this.incoming) {
      const loc = p.find(key);
      if (loc) return loc;
    }
    return this.store.locate(key, false);
  }

  /** The decoded bytes of a chunk, or undefined when they cannot be had (no codec, a base not here). */
  decoded(id: string, loc: ObjectLocation, payload = loc.pack.read(loc, loc.payloadLength, id), depth = 0): Uint8Array | undefined {
    if (loc.encoding === Encoding.raw) return payload;
    const codec = this.store.codec;
    if (!codec || depth > 16 || !isChunkEncoding(loc.encoding)) return undefined;
    let unavailable = false;
    const out = decodeChunk(id, loc.encoding, payload, loc.decodedSize, codec, (base) => {
      const baseLoc = this.locate(base);
      const bytes = baseLoc && baseLoc.encoding !== Encoding.chunkList ? this.decoded(base, baseLoc, undefined, depth + 1) : undefined;
      if (!bytes) {
        unavailable = true;
        return new Uint8Array(loc.decodedSize);
      }
      return bytes;
    });
    return unavailable ? undefined : out;
  }
}

/**
 * Writes a pack into `packDir` holding exactly `objects`, payloads copied without re-encoding, one
 * payload in memory at a time, each verified on the way (a damaged source never spreads). Returns the
 * pack's name, or null when `objects` is empty.
 */
export function writePackOf(objects: Iterable<LocatedObject>, packDir: string, tmpDir: string, source?: ObjectSource): string | null {
  removeDeadWritersFiles(tmpDir);
  const writer = new PackWriter(packDir, tmpDir);
  try {
    for (const o of objects) {
      const payload = o.loc.pack.read(o.loc, o.loc.payloadLength, o.id);
      if (source) checkPayload(o.id, o.loc, payload, source);
      writer.append(Buffer.from(o.id, 'hex'), o.loc.encoding, o.loc.decodedSize, payload, o.loc.depth);
    }
    return writer.commit();
  } catch (err) {
    writer.abort();
    throw err;
  }
}

/**
 * Checks one payload: a chunk decodes (with its delta base, when that is at hand) to bytes that hash to
 * its id; a chunk list is well formed and adds up to the object's size. A compressed chunk is checked
 * only where this build can decode it (stream() checks every read anyway).
 */
export function checkPayload(id: string, loc: ObjectLocation, payload: Buffer, source: ObjectSource): void {
  const where = { file: loc.pack.packPath };
  if (loc.encoding === Encoding.chunkList) {
    if (payload.length % CHUNK_LIST_RECORD_BYTES !== 0) throw new CorruptObjectError(id, 'chunk list has a partial record', where);
    let total = 0;
    for (let at = 0; at < payload.length; at += CHUNK_LIST_RECORD_BYTES) total += payload.readUInt32LE(at + 32);
    if (total !== loc.decodedSize) throw new CorruptObjectError(id, `chunk list adds up to ${total} bytes, expected ${loc.decodedSize}`, where);
    return;
  }
  if (loc.encoding !== Encoding.raw && !isChunkEncoding(loc.encoding)) {
    throw new CorruptObjectError(id, `unknown encoding ${loc.encoding} (written by a newer git-tensor?)`, where);
  }
  const bytes = source.decoded(id, loc, payload);
  if (bytes === undefined) return;
  if (bytes.length !== loc.decodedSize) throw new CorruptObjectError(id, `decodes to ${bytes.length} bytes, expected ${loc.decodedSize}`, where);
  const got = sha256(bytes).toString('hex');
  if (got !== id) throw new CorruptObjectError(id, `content hashes to ${got.slice(0, 16)}`, where);
}

/** The pack name an index gives: the SHA-256 of the index file, as PackWriter names packs. */
export function packNameOfIndex(idx: Buffer): string {
  return createHash('sha256').update(idx).digest('hex');
}

/**
 * Verifies a pack and its index that came from outside this store (a download): the index is the one
 * named `name` and is well formed, the pack starts with the pack magic and is long enough for every
 * record, and every payload passes `checkPayload`. Throws CorruptObjectError naming the file otherwise.
 */
export function verifyForeignPack(packPath: string, idxPath: string, name: string, source: (pack: PackFile) => ObjectSource): PackFile {
  const idx = readFileSync(idxPath);
  if (packNameOfIndex(idx) !== name) throw new CorruptObjectError(name, 'downloaded pack index does not match its name', { file: idxPath });
  const pack = new PackFile(packPath, idxPath);
  const fd = openSync(packPath, 'r');
  try {
    const magic = Buffer.alloc(PACK_MAGIC.length);
    readSync(fd, magic, 0, magic.length, 0);
    if (!magic.equals(PACK_MAGIC)) throw new CorruptObjectError(name, 'downloaded file is not a git-tensor pack', { file: packPath });
  } finally {
    closeSync(fd);
  }
  const size = statSync(packPath).size;
  const src = source(pack);
  for (const e of pack.entries()) {
    if (e.payloadOffset + e.payloadLength > size) throw new CorruptObjectError(e.id, 'downloaded pack is truncated', { file: packPath });
    checkPayload(e.id, e, pack.read(e, e.payloadLength, e.id), src);
  }
  return pack;
}

/**
 * Makes a verified foreign pack part of the store, atomically: the pack is fsynced and renamed into
 * packs/, then its index is written there (the index is what makes a pack visible, docs/store.md).
 * `packPath` must be on the store's filesystem (a file under <store>/tmp).
 */
export function importPack(store: ObjectStore, packPath: string, idxPath: string, name: string, incoming: readonly PackFile[] = []): void {
  const pack = verifyForeignPack(packPath, idxPath, name, (self) => new ObjectSource(store, [self, ...incoming]));
  pack.close();
  chmodSync(packPath, 0o444); // as PackWriter leaves packs: never modified once in place
  const fd = openSync(packPath, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const target = join(store.packDir, `pack-${name}.pack`);
  renameSync(packPath, target);
  fsyncDir(store.packDir);
  try {
    writeFileAtomic(join(store.packDir, `pack-${name}.idx`), readFileSync(idxPath));
  } catch (err) {
    // A pack without its index is invisible; leave none behind (a full disk is the likely cause).
    rmSync(target, { force: true });
    throw StoreWriteError.from(err, store.dir) ?? err;
  }
  store.refresh();
}

/**
 * Copies the objects `ids` out of a foreign pack into a new pack of the store (for a download that needs
 * only part of a pack). Every copied payload is verified; `incoming` are the other packs of the same
 * download, where delta bases may be. Returns the new pack's name, or null if none of the ids is in the pack.
 */
export function importObjects(store: ObjectStore, pack: PackFile, ids: Iterable<string>, incoming: readonly PackFile[] = []): string | null {
  const objects: LocatedObject[] = [];
  for (const id of ids) {
    const loc = pack.find(Buffer.from(id, 'hex'));
    if (loc) objects.push({ id, loc });
  }
  const name = writePackOf(objects, store.packDir, store.tmpDir, new ObjectSource(store, [pack, ...incoming]));
  if (name !== null) store.refresh();
  return name;
}
