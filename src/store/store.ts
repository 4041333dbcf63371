// Owns the content-addressed object store under <git-common-dir>/tensor: finding objects across packs,
// reading them back verified, and writing new ones through a PackWriter. Spec: docs/store.md.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptObjectError, GitTensorError } from '../errors/index.js';
import { Encoding, ObjectLocation, PackFile, PackWriter } from './pack.js';

export const CHUNK_LIST_RECORD_BYTES = 36;

export interface ChunkRef {
  id: Buffer;
  length: number;
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export class ObjectStore {
  readonly packDir: string;
  readonly tmpDir: string;
  private packs: PackFile[] = [];
  private readonly loaded = new Set<string>();

  private constructor(readonly dir: string) {
    this.packDir = join(dir, 'packs');
    this.tmpDir = join(dir, 'tmp');
  }

  /** Opens (creating if needed) the store rooted at `dir` (normally <git-common-dir>/tensor). */
  static open(dir: string): ObjectStore {
    const store = new ObjectStore(dir);
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

  /** Ids among `ids` that cannot be read in full: absent, or a chunk list with absent chunks. */
  missing(ids: Iterable<string>): string[] {
    const out: string[] = [];
    for (const id of new Set(ids)) {
      const loc = this.locate(id);
      if (!loc) {
        out.push(id);
        continue;
      }
      if (loc.encoding === Encoding.chunkList) {
        for (const c of this.chunkRefs(id, loc)) {
          if (!this.locate(c.id)) out.push(c.id.toString('hex'));
        }
      }
    }
    return out;
  }

  /**
   * Yields the object's bytes in pieces and verifies the SHA-256 of the whole against the id at the end
   * (one hash pass per read: the end-to-end check also covers the chunk list itself).
   */
  *stream(id: string, data: { file?: string; tensor?: string } = {}): Generator<Buffer> {
    const loc = this.locate(id);
    if (!loc) throw new MissingObject(id, data);
    const hash = createHash('sha256');
    let size = 0;
    if (loc.encoding === Encoding.raw) {
      const bytes = loc.pack.read(loc);
      hash.update(bytes);
      size = bytes.length;
      yield bytes;
    } else if (loc.encoding === Encoding.chunkList) {
      for (const c of this.chunkRefs(id, loc)) {
        const cl = this.locate(c.id);
        if (!cl) throw new MissingObject(c.id.toString('hex'), data);
        if (cl.encoding !== Encoding.raw || cl.payloadLength !== c.length) {
          throw new CorruptObjectError(id, `chunk ${c.id.toString('hex').slice(0, 16)} does not match the chunk list`, data);
        }
        const bytes = cl.pack.read(cl);
        hash.update(bytes);
        size += bytes.length;
        yield bytes;
      }
    } else {
      throw new CorruptObjectError(id, `unknown encoding ${loc.encoding} (written by a newer git-tensor?)`, data);
    }
    if (size !== loc.decodedSize) throw new CorruptObjectError(id, `decoded ${size} bytes, expected ${loc.decodedSize}`, data);
    const got = hash.digest('hex');
    if (got !== id) throw new CorruptObjectError(id, `content hashes to ${got.slice(0, 16)}`, data);
  }

  read(id: string, data: { file?: string; tensor?: string } = {}): Buffer {
    const parts = [...this.stream(id, data)];
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  chunkRefs(id: string, loc: ObjectLocation): ChunkRef[] {
    const payload = loc.pack.read(loc);
    if (payload.length % CHUNK_LIST_RECORD_BYTES !== 0) throw new CorruptObjectError(id, 'chunk list has a partial record');
    const refs: ChunkRef[] = [];
    for (let at = 0; at < payload.length; at += CHUNK_LIST_RECORD_BYTES) {
      refs.push({ id: payload.subarray(at, at + 32), length: payload.readUInt32LE(at + 32) });
    }
    return refs;
  }

  beginWrite(): ObjectWriter {
    return new ObjectWriter(this, new PackWriter(this.packDir, this.tmpDir));
  }

  close(): void {
    for (const p of this.packs) p.close();
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

  constructor(private readonly store: ObjectStore, private readonly pack: PackWriter) {}

  has(id: Buffer): boolean {
    return this.pack.has(id.toString('hex')) || this.store.has(id);
  }

  /** Stores `data` as a raw object; `id` may be passed when the caller has already hashed it. */
  putBlob(data: Uint8Array, id: Buffer = sha256(data)): Buffer {
    if (!this.aborted && !this.has(id)) {
      this.pack.append(id, Encoding.raw, data.length, data);
      this.bytesWritten += data.length;
    }
    return id;
  }

  putChunkList(id: Buffer, decodedSize: number, chunks: ChunkRef[]): void {
    if (this.aborted || this.has(id)) return;
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
