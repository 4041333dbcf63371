// Owns the content-addressed object store under <git-common-dir>/tensor: finding objects across packs,
// reading them back verified, and writing new ones through a PackWriter. Spec: docs/store.md.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptObjectError, GitTensorError } from '../errors/index.js';
import type { Codec } from './codec.js';
import { decodeChunk, deltaBaseOf, EncodeHint, encodeChunks, isDelta, MAX_DELTA_DEPTH, payloadLayout } from './encoding.js';
import { chunkBatches, DecodeItem } from '../kernels/chunks.js';
import { removeDeadWritersFiles } from './atomic.js';
import { Encoding, hasCrc, ObjectLocation, PackEntry, PackFile, PackWriter } from './pack.js';

export const CHUNK_LIST_RECORD_BYTES = 36;

export interface ChunkRef {
  id: Buffer;
  length: number;
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export interface StoreOptions {
  /** zstd: needed to read compressed chunks, and to write them when it can compress. */
  codec?: Codec | null;
  /** Compress chunks (default: whenever the codec can); false keeps every new chunk raw, in gc too. */
  compress?: boolean;
  /**
   * Compress a new chunk that has no related chunk to delta against when it is written (`git add` of a
   * new checkpoint), rather than leaving it raw for `git tensor gc` (the default: see docs/store.md,
   * "Writing fast, compressing later").
   */
  compressOnWrite?: boolean;
}

export class ObjectStore {
  readonly packDir: string;
  readonly tmpDir: string;
  readonly codec: Codec | null;
  readonly compress: boolean;
  readonly compressOnWrite: boolean;
  private packs: PackFile[] = [];
  private readonly loaded = new Set<string>();
  private sweptTemps = false;

  private constructor(readonly dir: string, opts: StoreOptions) {
    this.packDir = join(dir, 'packs');
    this.tmpDir = join(dir, 'tmp');
    this.codec = opts.codec ?? null;
    this.compress = !!this.codec?.compress && opts.compress !== false;
    this.compressOnWrite = this.compress && opts.compressOnWrite === true;
  }

  /** Opens (creating if needed) the store rooted at `dir` (normally <git-common-dir>/tensor). */
  static open(dir: string, opts: StoreOptions = {}): ObjectStore {
    const store = new ObjectStore(dir, opts);
    mkdirSync(store.packDir, { recursive: true });
    mkdirSync(store.tmpDir, { recursive: true });
    store.refresh();
    return store;
  }

  /** Picks up packs written by other processes since the last look. */
  refresh(): void {
    if (!existsSync(this.packDir)) return;
    for (const f of readdirSync(this.packDir).sort()) {
      if (!f.endsWith('.idx') || this.loaded.has(f)) continue;
      const base = f.slice(0, -4);
      this.packs.push(new PackFile(join(this.packDir, `${base}.pack`), join(this.packDir, f)));
      this.loaded.add(f);
    }
  }

  /**
   * Stops reading from `pack` in this process (its objects count as absent from then on): for fsck,
   * when a pack's index is there but the pack file is gone.
   */
  forgetPack(pack: PackFile): void {
    pack.close();
    this.packs = this.packs.filter((p) => p !== pack);
  }

  get packFiles(): readonly PackFile[] {
    return this.packs;
  }

  locate(id: string | Buffer, refreshOnMiss = true): ObjectLocation | undefined {
    const key = typeof id === 'string' ? Buffer.from(id, 'hex') : id;
    for (const p of this.packs) {
      const loc = p.find(key);
      if (loc) return loc;
    }
    if (!refreshOnMiss) return undefined;
    const before = this.packs.length;
    this.refresh();
    for (const p of this.packs.slice(before)) {
      const loc = p.find(key);
      if (loc) return loc;
    }
    return undefined;
  }

  has(id: string | Buffer): boolean {
    return this.locate(id, false) !== undefined;
  }

  /** What reading `ids` in full would lack: the absent ids themselves, and absent chunks or delta bases of present ones. */
  missing(ids: Iterable<string>): string[] {
    const out = new Set<string>();
    const seen = new Set<string>();
    const visit = (id: string): void => {
      if (seen.has(id)) return;
      seen.add(id);
      const loc = this.locate(id);
      if (!loc) {
        out.add(id);
        return;
      }
      if (loc.encoding === Encoding.chunkList) for (const c of this.chunkRefs(id, loc)) visit(c.id.toString('hex'));
      const base = isDelta(loc.encoding) ? deltaBaseOf(loc.encoding, loc.pack.read(loc, loc.payloadLength, id)) : undefined;
      if (base) visit(base);
    };
    for (const id of ids) visit(id);
    return [...out];
  }

  /**
   * Yields the object's bytes in pieces and verifies the SHA-256 of the whole against the id at the end
   * (one hash pass per read: the end-to-end check also covers the chunk list and any delta bases).
   */
  *stream(id: string, data: { file?: string; tensor?: string } = {}): Generator<Buffer> {
    const loc = this.locate(id);
    if (!loc) throw new MissingObject(id, data);
    const hash = createHash('sha256');
    let size = 0;
    const pieces = loc.encoding === Encoding.chunkList
      ? this.chunkRefs(id, loc).map((c) => ({ id: c.id.toString('hex'), length: c.length }))
      : [{ id, length: loc.decodedSize }];
    for (const piece of pieces) {
      const bytes = this.readChunk(piece.id, data, piece.id === id ? loc : undefined);
      if (bytes.length !== piece.length) throw new CorruptObjectError(id, `chunk ${piece.id.slice(0, 16)} does not match the chunk list`, data);
      hash.update(bytes);
      size += bytes.length;
      yield bytes;
    }
    if (size !== loc.decodedSize) throw new CorruptObjectError(id, `decoded ${size} bytes, expected ${loc.decodedSize}`, data);
    const got = hash.digest('hex');
    if (got !== id) throw new CorruptObjectError(id, `content hashes to ${got.slice(0, 16)}`, data);
  }

  /**
   * stream() for checkout, merge and diff: decodes the object's chunks a window (~4 MiB) at a time in the
   * addon, off the JS thread, two windows in flight, and checks every chunk against its own id (SHA-256)
   * there. Raw chunks whose pack records their CRC-32 (every raw chunk written since RECORD_RAW_CRC) are
   * read by the addon straight into the window and checked against that CRC instead: their SHA-256 was
   * computed from those bytes when they entered the store, and the CRC finds what can damage them since
   * (the disk, a stray write) at several times SHA-256's speed. `git tensor fsck` re-checks every id.
   * The chunk list naming the chunks is covered by its CRC-32, and was verified against the object's id
   * when it was written. Yields each window in order: in buffers from `buffers` (the caller gives each
   * back once done with it), in fresh buffers, or in consecutive parts of `target` when given. `bases`
   * holds chunks the caller has already decoded and verified, by hex id (see chunkViews): a delta against
   * one of them is decoded from those bytes instead of reading and decoding its base again. Falls back
   * to stream() without the addon.
   */
  async *streamChunks(id: string, data: { file?: string; tensor?: string } = {}, target?: Buffer, bases?: ReadonlyMap<string, Uint8Array>, buffers?: WindowBuffers): AsyncGenerator<Buffer> {
    const decode = chunkBatches()?.decode;
    const readRaw = chunkBatches()?.readRaw;
    const loc = this.locate(id);
    if (!loc) throw new MissingObject(id, data);
    if (!decode || (!this.codec && loc.encoding !== Encoding.raw && loc.encoding !== Encoding.chunkList)) {
      let at = 0;
      for (const piece of this.stream(id, data)) {
        if (!target) yield piece;
        else {
          piece.copy(target, at);
          yield target.subarray(at, (at += piece.length));
        }
      }
      return;
    }
    const pieces = loc.encoding === Encoding.chunkList ? this.chunkRefs(id, loc) : [{ id: Buffer.from(id, 'hex'), length: loc.decodedSize }];
    const total = pieces.reduce((n, p) => n + p.length, 0);
    if (total !== loc.decodedSize) throw new CorruptObjectError(id, `chunks hold ${total} bytes, the object ${loc.decodedSize}`, data);
    if (target && target.length !== total) throw new RangeError(`decode target holds ${target.length} bytes, the object ${total}`);
    const windows: Promise<Buffer>[] = [];
    let next = 0;
    let offset = 0;
    /** The chunk's place in its pack when the addon can read and check it itself (a raw chunk with a CRC-32). */
    const rawPlace = (piece: ChunkRef): ObjectLocation | undefined => {
      if (!readRaw) return undefined;
      const loc = this.locate(piece.id);
      return loc && loc.encoding === Encoding.raw && hasCrc(loc) && loc.decodedSize === piece.length ? loc : undefined;
    };
    const submit = (): void => {
      const items: DecodeItem[] = [];
      const places: number[] = [];
      const raw: ChunkRef[] = [];
      let bytes = 0;
      // One window is read raw or decoded, all of it: a chunk of the other kind starts the next window.
      const rawWindow = rawPlace(pieces[next]!) !== undefined;
      while (next < pieces.length && (bytes === 0 || bytes + pieces[next]!.length <= DECODE_WINDOW_BYTES)) {
        const piece = pieces[next]!;
        const place = rawWindow ? rawPlace(piece) : undefined;
        if (rawWindow !== (place !== undefined) && bytes > 0) break;
        next++;
        if (place) {
          places.push(place.pack.readFd(), place.payloadOffset, place.payloadLength, place.crc);
          raw.push(piece);
        } else items.push(this.decodeItem(piece.id, piece.length, data, bases));
        bytes += piece.length;
      }
      const out = target ? target.subarray(offset, offset + bytes) : buffers ? buffers.take(bytes) : Buffer.allocUnsafe(bytes);
      offset += bytes;
      const work = rawWindow ? readRaw!(Float64Array.from(places), out) : decode(items, out);
      const done = work.then(() => out, (err: Error) => {
        // readRaw names a chunk by its place in the window; the message names it by id.
        const m = rawWindow ? /^chunk #(\d+): (.*)$/s.exec(err.message) : null;
        const which = m ? raw[Number(m[1])] : undefined;
        throw new CorruptObjectError(id, which ? `chunk ${which.id.toString('hex').slice(0, 16)}: ${m![2]}` : err.message, data);
      });
      done.catch(() => undefined); // awaited in order below; this only keeps Node from calling it unhandled
      windows.push(done);
    };
    while (next < pieces.length || windows.length) {
      while (next < pieces.length && windows.length < DECODE_WINDOWS_IN_FLIGHT) submit();
      yield await windows.shift()!;
    }
  }

  /**
   * read() through the addon: decoded off the JS thread straight into one buffer, each chunk checked
   * against its id. `bases`: decoded chunks to take delta bases from (streamChunks). `target`: a buffer
   * to decode into, of at least the object's size; the object's bytes are its first ones.
   */
  async readAsync(id: string, data: { file?: string; tensor?: string } = {}, bases?: ReadonlyMap<string, Uint8Array>, target?: Buffer): Promise<Buffer> {
    const loc = this.locate(id);
    if (!loc) throw new MissingObject(id, data);
    if (target && target.length < loc.decodedSize) throw new RangeError(`decode target holds ${target.length} bytes, the object ${loc.decodedSize}`);
    const out = target ? target.subarray(0, loc.decodedSize) : Buffer.allocUnsafe(loc.decodedSize);
    let got = 0;
    for await (const window of this.streamChunks(id, data, out, bases)) got += window.length;
    if (got !== out.length) throw new CorruptObjectError(id, `decoded ${got} bytes, expected ${loc.decodedSize}`, data);
    return out;
  }

  /**
   * What the addon needs to decode one chunk: its payload's layout and, for a delta, its base's own item
   * (the whole chain is decoded in the addon). The CRC-32 is checked only where the payload names a base:
   * the decoded chunk is hashed against its id anyway, which catches any other damage.
   */
  private decodeItem(chunkId: Buffer, length: number, data: { file?: string; tensor?: string }, bases?: ReadonlyMap<string, Uint8Array>, depth = 0): DecodeItem {
    const hex = chunkId.toString('hex');
    const loc = this.locate(chunkId);
    if (!loc) throw new MissingObject(hex, data);
    if (loc.encoding === Encoding.chunkList) throw new CorruptObjectError(hex, 'a chunk list where a chunk was expected', data);
    if (loc.decodedSize !== length) throw new CorruptObjectError(hex, `chunk holds ${loc.decodedSize} bytes, expected ${length}`, data);
    if (depth > MAX_DELTA_DEPTH * 4) throw new CorruptObjectError(hex, 'delta chain too deep (a cycle?)', data);
    const layout = payloadLayout(hex, loc.encoding, loc.pack.read(loc, loc.payloadLength, hex, isDelta(loc.encoding)), length);
    const known = layout.baseId ? bases?.get(layout.baseId) : undefined;
    const base = !layout.baseId ? null : known?.length === length ? known : this.decodeItem(Buffer.from(layout.baseId, 'hex'), length, data, bases, depth + 1);
    return [layout.body, layout.mode, length, layout.width, layout.rotate, base, chunkId];
  }

  read(id: string, data: { file?: string; tensor?: string } = {}): Buffer {
    const parts = [...this.stream(id, data)];
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** The decoded bytes of one chunk (any encoding but a chunk list), not verified: stream() verifies. */
  readChunk(id: string, data: { file?: string; tensor?: string } = {}, known?: ObjectLocation): Buffer {
    const loc = known ?? this.locate(id);
    if (!loc) throw new MissingObject(id, data);
    if (loc.encoding === Encoding.raw) return loc.pack.read(loc, loc.payloadLength, id);
    if (loc.encoding === Encoding.chunkList) throw new CorruptObjectError(id, 'a chunk list where a chunk was expected', data);
    if (!this.codec) {
      throw new GitTensorError('E_NO_CODEC', `object ${id.slice(0, 16)} is compressed, and this git-tensor was built without zstd`, {
        data, hint: 'Install libzstd-dev and rebuild with `npm run build:native`, then run the command again.',
      });
    }
    const out = decodeChunk(id, loc.encoding, loc.pack.read(loc, loc.payloadLength, id), loc.decodedSize, this.codec, (base) => this.readChunk(base, data));
    return Buffer.from(out.buffer, out.byteOffset, out.length);
  }

  chunkRefs(id: string, loc: ObjectLocation): ChunkRef[] {
    const payload = loc.pack.read(loc, loc.payloadLength, id);
    if (payload.length % CHUNK_LIST_RECORD_BYTES !== 0) throw new CorruptObjectError(id, 'chunk list has a partial record');
    const refs: ChunkRef[] = [];
    for (let at = 0; at < payload.length; at += CHUNK_LIST_RECORD_BYTES) {
      refs.push({ id: payload.subarray(at, at + 32), length: payload.readUInt32LE(at + 32) });
    }
    return refs;
  }

  /**
   * A delta base for a new version of chunk `id`: the chunk itself, or, when its delta chain is already
   * as deep as allowed, the nearest ancestor on that chain with room. Fine-tunes of one base then all
   * delta against the base instead of starting new chains.
   */
  deltaBaseFor(id: Buffer): { id: Buffer; depth: number } | undefined {
    let cur = { id, loc: this.locate(id, false) };
    while (cur.loc && cur.loc.depth >= MAX_DELTA_DEPTH) {
      const parent = deltaBaseOf(cur.loc.encoding, cur.loc.pack.read(cur.loc, cur.loc.payloadLength, cur.id.toString('hex')));
      if (!parent) break;
      const pid = Buffer.from(parent, 'hex');
      cur = { id: pid, loc: this.locate(pid, false) };
    }
    return cur.loc ? { id: cur.id, depth: cur.loc.depth } : undefined;
  }

  /**
   * deltaBaseFor with the base's decoded bytes, for putChunks: `relatedBytes` (the related chunk's own
   * bytes, when the caller has them: a merge or an in-memory tensor) when the base is that chunk, else
   * read from the store.
   */
  deltaBaseWithBytes(related: Buffer, relatedBytes?: Uint8Array): EncodeHint['base'] {
    const base = this.deltaBaseFor(related);
    if (!base) return undefined;
    const bytes = relatedBytes && base.id.equals(related) ? relatedBytes : this.readChunk(base.id.toString('hex'));
    return { id: base.id, depth: base.depth, bytes };
  }

  /** The chunks of object `id` as views into `bytes`, its decoded content, by hex chunk id: bases for readAsync. */
  chunkViews(id: string, bytes: Uint8Array): Map<string, Uint8Array> {
    const views = new Map<string, Uint8Array>();
    let at = 0;
    for (const c of this.chunksOf(id) ?? []) {
      views.set(c.id.toString('hex'), bytes.subarray(at, (at += c.length)));
    }
    return views;
  }

  /** The chunks of a stored object with their delta depth, for use as delta bases (a raw single-chunk object is its own chunk). */
  chunksOf(id: string): { id: Buffer; length: number; depth: number }[] | undefined {
    const loc = this.locate(id, false);
    if (!loc) return undefined;
    if (loc.encoding !== Encoding.chunkList) return [{ id: Buffer.from(id, 'hex'), length: loc.decodedSize, depth: loc.depth }];
    return this.chunkRefs(id, loc).map((c) => ({ ...c, depth: this.locate(c.id, false)?.depth ?? 0 }));
  }

  /**
   * Starts adding objects. `hashOnly`: compute the ids a clean would give (tensor and header ids) and
   * store nothing, for a git command that only compares (the clean `git diff` runs on a changed
   * working-tree file); chunk ids are then not computed at all.
   */
  beginWrite(opts: { hashOnly?: boolean } = {}): ObjectWriter {
    if (!opts.hashOnly && !this.sweptTemps) {
      // The first write of a command clears what killed writers left in tmp/ (their packs can be large).
      this.sweptTemps = true;
      removeDeadWritersFiles(this.tmpDir);
    }
    return new ObjectWriter(this, new PackWriter(this.packDir, this.tmpDir, { direct: true }), opts.hashOnly === true);
  }

  close(): void {
    for (const p of this.packs) p.close();
  }
}

/** The chunk id a hash-only writer gives: chunk ids are never computed there, nothing refers to them. */
const NO_ID = Buffer.alloc(32);

/** Bytes of chunks decoded per addon call by streamChunks, and how many such calls run at once. */
const DECODE_WINDOW_BYTES = 4 * 1024 * 1024;
const DECODE_WINDOWS_IN_FLIGHT = 2;

/**
 * Window buffers for a streamChunks consumer that hands each window back once it is done with it (a
 * write landed): checkout then reuses a few buffers instead of taking a fresh 4 MiB one per window,
 * whose page faults and garbage collection cost about a tenth of checkout's time.
 */
export class WindowBuffers {
  private readonly free: Buffer[] = [];

  take(bytes: number): Buffer {
    const k = this.free.findIndex((b) => b.length >= bytes);
    const buf = k >= 0 ? this.free.splice(k, 1)[0]! : Buffer.allocUnsafeSlow(Math.max(bytes, DECODE_WINDOW_BYTES));
    return buf.subarray(0, bytes);
  }

  /** Hands back a window take() gave (its whole buffer becomes free again). */
  give(window: Buffer): void {
    this.free.push(Buffer.from(window.buffer, 0, window.buffer.byteLength));
  }
}

/** Raised while streaming; callers check `missing()` first, so this is a race with gc or a damaged store. */
class MissingObject extends GitTensorError {
  constructor(id: string, data: { file?: string; tensor?: string }) {
    super('E_MISSING_OBJECTS', `${data.file ? data.file + ': ' : ''}object ${id.slice(0, 16)} vanished from the tensor store`, {
      data: { ...data, ids: [id] },
      exitCode: 4,
      hint: 'Run `git tensor fsck`, then `git tensor fetch` to restore it from a remote.',
    });
  }
}

/** Adds objects to the store, skipping any it already holds; nothing is visible before `commit()`. */
export class ObjectWriter {
  bytesWritten = 0;
  /** After abort, late puts (e.g. a digest that arrives after a failure) are dropped, never written. */
  private aborted = false;

  constructor(readonly store: ObjectStore, private readonly pack: PackWriter, readonly hashOnly = false) {}

  has(id: Buffer): boolean {
    return this.pack.has(id.toString('hex')) || this.store.has(id);
  }

  /** Stores `data` as a raw object; `id` may be passed when the caller has already hashed it. */
  putBlob(data: Uint8Array, id: Buffer = sha256(data)): Buffer {
    if (!this.hashOnly && !this.aborted && !this.has(id)) {
      this.pack.append(id, Encoding.raw, data.length, data);
      this.bytesWritten += data.length;
    }
    return id;
  }

  /**
   * Stores consecutive chunks of one tensor or file (`lengths` bytes each, laid end to end in `data`)
   * and returns their ids in order, once the new ones are written to the temp pack. `hint` gives the
   * element width, and `base(k)` the related chunk to delta against for chunk k (read only if that chunk
   * is new): such a chunk is delta-encoded when that pays, which for a fine-tune's changed chunks is most
   * of the saving and cheap (their deltas are mostly zero bytes). A new chunk with no related chunk is
   * written raw unless the store compresses on write; `git tensor gc` compresses it later. Hashing,
   * compression and the write run off the JS thread when the addon is there; `data` must stay unchanged
   * until the promise settles.
   */
  async putChunks(data: Uint8Array, lengths: number[], hint: { width: number; float?: boolean; base?: (k: number) => EncodeHint['base'] }): Promise<Buffer[]> {
    if (this.hashOnly) return lengths.map(() => NO_ID);
    const batches = chunkBatches();
    const offsets: number[] = [];
    lengths.reduce((at, n) => (offsets.push(at), at + n), 0);
    const chunk = (k: number) => data.subarray(offsets[k]!, offsets[k]! + lengths[k]!);
    let ids: Buffer[];
    // The CRC-32 of each chunk, which the pack index records and checkout checks raw chunks against,
    // is computed on the pool with the SHA-256 (the bytes are in cache); without the addon, the pack
    // writer computes it.
    let crcs: Uint32Array | undefined;
    if (batches) {
      crcs = new Uint32Array(lengths.length);
      const digests = await batches.hash(data, Uint32Array.from(lengths), crcs);
      ids = lengths.map((_, k) => digests.subarray(32 * k, 32 * k + 32));
    } else {
      ids = lengths.map((_, k) => sha256(chunk(k)));
    }
    const fresh: { k: number; hex: string; base?: EncodeHint['base'] }[] = [];
    const claimed = new Set<string>();
    ids.forEach((id, k) => {
      const hex = id.toString('hex');
      if (this.aborted || claimed.has(hex) || this.pack.has(hex) || this.store.has(id)) return;
      claimed.add(hex);
      fresh.push({ k, hex, base: this.store.compress ? hint.base?.(k) : undefined });
    });
    const toEncode = this.store.compressOnWrite ? fresh : fresh.filter((f) => f.base);
    const encoded = toEncode.length
      ? await encodeChunks(toEncode.map((f) => ({ bytes: chunk(f.k), base: f.base })), hint, this.store.codec!, batches?.compressPlanes)
      : [];
    const encodingOf = new Map(toEncode.map((f, j) => [f.k, encoded[j]]));
    const entries: PackEntry[] = [];
    for (const { k, hex } of fresh) {
      const id = ids[k]!;
      if (this.aborted || this.pack.has(hex)) continue; // a batch still in flight stored it meanwhile
      const e = encodingOf.get(k);
      entries.push(e ? { id, encoding: e.encoding, decodedSize: lengths[k]!, payload: e.payload, depth: e.depth } : { id, encoding: Encoding.raw, decodedSize: lengths[k]!, payload: chunk(k), crc: crcs?.[k] });
      this.bytesWritten += e ? e.payload.length : lengths[k]!;
    }
    if (entries.length) await this.pack.appendAll(entries);
    return ids;
  }

  putChunkList(id: Buffer, decodedSize: number, chunks: ChunkRef[]): void {
    if (this.hashOnly || this.aborted || this.has(id)) return;
    const payload = Buffer.allocUnsafe(chunks.length * CHUNK_LIST_RECORD_BYTES);
    chunks.forEach((c, k) => {
      c.id.copy(payload, k * CHUNK_LIST_RECORD_BYTES);
      payload.writeUInt32LE(c.length, k * CHUNK_LIST_RECORD_BYTES + 32);
    });
    this.pack.append(id, Encoding.chunkList, decodedSize, payload);
    this.bytesWritten += payload.length;
  }

  commit(): void {
    if (this.pack.commit() !== null) this.store.refresh();
  }

  abort(): void {
    this.aborted = true;
    this.pack.abort();
  }
}
