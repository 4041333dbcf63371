// Owns the on-disk pack format: append-only files of objects plus a sorted index, and the writer that
// makes them appear atomically. Spec: docs/store.md.
//
//   pack-<name>.pack  = "GTPACK\0" version(u8=1) entry*
//   entry             = encoding(u8) depth(u8) reserved(2) id(32) decodedSize(u64 LE) payloadLength(u64 LE) payload
//   pack-<name>.idx   = "GTIDX\0\0" version(u8=1) count(u32 LE) reserved(u32) record*count sha256(32)
//   record            = id(32) payloadOffset(u64) payloadLength(u64) decodedSize(u64) encoding(u8) depth(u8)
//                       crc32(u32 LE, of the payload) flags(u8) reserved(1)
//   flags             = bit 0 (RECORD_KEPT_RAW): a raw chunk `git tensor gc` tried to compress and kept raw
//                       (it did not pay), so the next gc does not try again. Older readers ignore it.
//                       bit 1 (RECORD_RAW_CRC): the record's crc32 is a raw payload's. Writers before it
//                       left 0 there for raw objects: without the flag, a raw object has no CRC-32 and
//                       its reader checks its SHA-256 id instead.
//
// depth is the length of the delta chain behind an object (0: decodes on its own); see encoding.ts.
//
// Records are sorted by id so lookups binary-search the mapped index. A pack is visible only once its
// index exists, and the index is renamed into place after the pack is fsynced: a killed writer leaves at
// most temp files that readers ignore and the next writing command removes (atomic.ts); a write that
// fails (disk full) removes its own and is a StoreWriteError.

import { createHash } from 'node:crypto';
import { close, closeSync, constants, fchmodSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, renameSync, unlinkSync, write, writeSync, writev, writevSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { CorruptObjectError, PackError, StoreWriteError } from '../errors/index.js';
import { fsyncDir, tempPathFor } from './atomic.js';
import { IdSet } from './id-set.js';
import { nativeAlignedBuffer } from '../kernels/addon.js';

export const PACK_MAGIC = Buffer.from('GTPACK\0\x01', 'latin1');
export const IDX_MAGIC = Buffer.from('GTIDX\0\0\x01', 'latin1');
export const ENTRY_HEADER_BYTES = 52;
export const IDX_RECORD_BYTES = 64;
const IDX_HEADER_BYTES = 16;

/** How an object's bytes are kept. Never changes an id (DESIGN.md principle 5). */
export const Encoding = {
  /** payload = the object's bytes. */
  raw: 0,
  /** payload = (chunk id(32), chunk length(u32 LE))*: the object is the concatenation of its chunks. */
  chunkList: 1,
  // 2..4: compressed and delta-encoded chunks, see encoding.ts.
} as const;
export type Encoding = (typeof Encoding)[keyof typeof Encoding];

export interface ObjectLocation {
  pack: PackFile;
  payloadOffset: number;
  payloadLength: number;
  decodedSize: number;
  encoding: number;
  depth: number;
  /** CRC-32 of the payload (for a raw object, only with RECORD_RAW_CRC: see hasCrc). */
  crc: number;
  /** Record flags (RECORD_KEPT_RAW, RECORD_RAW_CRC); 0 in packs of older writers. */
  flags: number;
}

/** Record flag: a raw chunk gc found not worth compressing. */
export const RECORD_KEPT_RAW = 1;
/** Record flag: the crc field holds the CRC-32 of a raw payload (older writers left 0 there). */
export const RECORD_RAW_CRC = 2;

/** The record's crc field is the CRC-32 of its payload. */
export function hasCrc(loc: ObjectLocation): boolean {
  return loc.encoding !== Encoding.raw || (loc.flags & RECORD_RAW_CRC) !== 0;
}

/**
 * Orders the 32-byte id at `a[aAt]` against the one at `b[bAt]` as their bytes do (< 0: a first). The
 * first 4 bytes as a big-endian number settle almost every comparison without a call into
 * Buffer#compare, whose argument order (target first, then the source's range) is easy to get backwards.
 */
function compareIds(a: Buffer, aAt: number, b: Buffer, bAt: number): number {
  const x = a.readUInt32BE(aAt);
  const y = b.readUInt32BE(bAt);
  return x !== y ? x - y : a.compare(b, bAt, bAt + 32, aAt, aAt + 32);
}

export class PackFile {
  private fd: number | undefined;
  private readonly records: Buffer;
  readonly count: number;
  /** fanout[b]: how many records have an id whose first byte is below b (as git's own .idx). */
  private readonly fanout = new Uint32Array(257);

  constructor(readonly packPath: string, readonly idxPath: string) {
    const idx = readFileSync(idxPath);
    if (idx.length < IDX_HEADER_BYTES + 32 || !idx.subarray(0, 8).equals(IDX_MAGIC)) {
      throw new PackError(idxPath, 'not a git-tensor pack index');
    }
    const count = idx.readUInt32LE(8);
    if (idx.length !== IDX_HEADER_BYTES + count * IDX_RECORD_BYTES + 32) {
      throw new PackError(idxPath, 'pack index has the wrong length');
    }
    const sum = createHash('sha256').update(idx.subarray(0, idx.length - 32)).digest();
    if (!sum.equals(idx.subarray(idx.length - 32))) {
      throw new PackError(idxPath, 'pack index checksum mismatch');
    }
    this.count = count;
    this.records = idx.subarray(IDX_HEADER_BYTES, IDX_HEADER_BYTES + count * IDX_RECORD_BYTES);
    // find() binary-searches: an index out of order would hide objects that are there, as missing.
    for (let k = 1; k < count; k++) {
      if (compareIds(this.records, (k - 1) * IDX_RECORD_BYTES, this.records, k * IDX_RECORD_BYTES) >= 0) {
        throw new PackError(idxPath, `pack index is not sorted by object id (record ${k})`);
      }
    }
    for (let k = 0; k < count; k++) this.fanout[this.records[k * IDX_RECORD_BYTES]! + 1]!++;
    for (let b = 1; b <= 256; b++) this.fanout[b]! += this.fanout[b - 1]!;
  }

  /**
   * Binary search of the sorted records, among those whose id starts with the same byte (fanout). A
   * store holds many packs (a lazy clone of 14 GiB, some 220) and an absent id is looked for in each of
   * them: with the fan-out a miss costs a step or two per pack instead of ten.
   */
  find(id: Buffer): ObjectLocation | undefined {
    let lo = this.fanout[id[0]!]!;
    let hi = this.fanout[id[0]! + 1]! - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      // > 0: the record sorts after the id.
      const c = compareIds(this.records, mid * IDX_RECORD_BYTES, id, 0);
      if (c === 0) return this.recordAt(mid);
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  *entries(): Generator<{ id: string } & ObjectLocation> {
    for (let k = 0; k < this.count; k++) {
      const at = k * IDX_RECORD_BYTES;
      yield { id: this.records.toString('hex', at, at + 32), ...this.recordAt(k) };
    }
  }

  /**
   * Reads an object's payload, or its first `length` bytes. Whole payloads of encoded objects are checked
   * against their CRC-32, so damage is reported as corruption, never misread as a reference to another
   * object; raw payloads are verified by their SHA-256 id by the reader (or by their CRC-32 in the
   * addon's readRaw, which reads them itself). `checkCrc = false` is for a reader that hashes the
   * decoded object against its id anyway and finds no reference in the payload.
   */
  read(loc: ObjectLocation, length = loc.payloadLength, id?: string, checkCrc = true): Buffer {
    return this.readInto(loc, Buffer.allocUnsafe(length), id, checkCrc);
  }

  /** `read` into memory the caller owns (e.g. reused from one batch to the next): the first `out.length` bytes. */
  readInto(loc: ObjectLocation, out: Buffer, id?: string, checkCrc = true): Buffer {
    const length = out.length;
    const fd = this.readFd();
    let got = 0;
    while (got < length) {
      const n = readSync(fd, out, got, length - got, loc.payloadOffset + got);
      if (n === 0) throw new PackError(this.packPath, `pack file is truncated${id ? ` inside object ${id.slice(0, 16)}` : ''}`);
      got += n;
    }
    if (checkCrc && length === loc.payloadLength && loc.encoding !== Encoding.raw && crc32(out) !== loc.crc) {
      throw new CorruptObjectError(id ?? '(unknown)', `stored payload fails its CRC-32 in ${this.packPath}`, { file: this.packPath });
    }
    return out;
  }

  /** The pack file open for reading (opened on first use, kept until close()). */
  readFd(): number {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.packPath, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PackError(this.packPath, 'pack file is missing (its index is there)');
        throw err;
      }
    }
    return this.fd;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /**
   * Checks the pack file against its index without reading payloads: the magic and version, then each
   * entry header in file order (id, encoding, depth and sizes as the index records them for that
   * offset), entries laid end to end up to the end of the file, and every indexed object met once.
   * Returns the first problem found, or null. Throws ENOENT when the pack file is gone.
   */
  checkLayout(): string | null {
    const byOffset = new Map<number, number>();
    for (let k = 0; k < this.count; k++) byOffset.set(Number(this.records.readBigUInt64LE(k * IDX_RECORD_BYTES + 32)), k);
    const fd = openSync(this.packPath, 'r');
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(ENTRY_HEADER_BYTES);
      const readAt = (at: number, n: number): boolean => readSync(fd, head, 0, n, at) === n;
      if (!readAt(0, PACK_MAGIC.length) || !head.subarray(0, PACK_MAGIC.length - 1).equals(PACK_MAGIC.subarray(0, PACK_MAGIC.length - 1))) {
        return 'does not start with the pack magic "GTPACK\\0"';
      }
      if (head[PACK_MAGIC.length - 1] !== PACK_MAGIC[PACK_MAGIC.length - 1]) return `has pack version ${head[PACK_MAGIC.length - 1]}, not ${PACK_MAGIC[PACK_MAGIC.length - 1]}`;
      let at = PACK_MAGIC.length;
      let seen = 0;
      while (at < size) {
        if (!readAt(at, ENTRY_HEADER_BYTES)) return `entry header at byte ${at} is cut off by the end of the file`;
        const k = byOffset.get(at + ENTRY_HEADER_BYTES);
        if (k === undefined) return `entry at byte ${at} is not in the index (the pack is damaged before it)`;
        const rec = k * IDX_RECORD_BYTES;
        const id = this.records.toString('hex', rec, rec + 32);
        const differs = [
          !head.subarray(4, 36).equals(this.records.subarray(rec, rec + 32)) && 'id',
          head[0] !== this.records[rec + 56] && 'encoding',
          head[1] !== this.records[rec + 57] && 'delta depth',
          head.readBigUInt64LE(36) !== this.records.readBigUInt64LE(rec + 48) && 'decoded size',
          head.readBigUInt64LE(44) !== this.records.readBigUInt64LE(rec + 40) && 'payload length',
        ].filter(Boolean);
        if (differs.length) return `entry header at byte ${at} (object ${id.slice(0, 16)}) disagrees with the index on its ${differs.join(', ')}`;
        at += ENTRY_HEADER_BYTES + Number(this.records.readBigUInt64LE(rec + 40));
        seen++;
      }
      if (at > size) return `is truncated: the last entry ends at byte ${at}, the file at ${size}`;
      if (seen !== this.count) return `holds ${seen} entries, its index lists ${this.count}`;
      return null;
    } finally {
      closeSync(fd);
    }
  }

  private recordAt(k: number): ObjectLocation {
    const at = k * IDX_RECORD_BYTES;
    const r = this.records;
    return {
      pack: this,
      payloadOffset: Number(r.readBigUInt64LE(at + 32)),
      payloadLength: Number(r.readBigUInt64LE(at + 40)),
      decodedSize: Number(r.readBigUInt64LE(at + 48)),
      encoding: r[at + 56]!,
      depth: r[at + 57]!,
      crc: r.readUInt32LE(at + 58),
      flags: r[at + 62]!,
    };
  }
}

function writeDurable(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, 'wx', 0o444);
  try {
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Never created, or already gone.
  }
}

/** One object for PackWriter.appendAll. */
export interface PackEntry {
  id: Buffer;
  encoding: number;
  decodedSize: number;
  payload: Uint8Array;
  depth?: number;
  /** The payload's CRC-32 when the caller has it (computed with the chunk's SHA-256 on the pool). */
  crc?: number;
}

/** writev at a position on the libuv pool; resolves with the bytes written. */
function writevAt(fd: number, buffers: Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => writev(fd, buffers as NodeJS.ArrayBufferView[], position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** O_DIRECT writes need memory, file offset and length aligned to the device's block size: 4 KiB covers them all. */
const DIRECT_ALIGN = 4096;
/** Bytes per O_DIRECT write (a multiple of DIRECT_ALIGN). */
const DIRECT_BLOCK = 8 << 20;

/**
 * Staging blocks, reused across the writers of one process (a `git add` of many shards writes a pack per
 * file). Their memory is the addon's, which V8 does not count, so blocks left to the garbage collector
 * could pile up unseen; a few kept here are enough for the two blocks in flight and the one filling.
 */
const stagePool: Buffer[] = [];
const POOLED_STAGES = 4;

export interface PackWriterOptions {
  /**
   * Write the pack with O_DIRECT where the addon and the filesystem allow it: the bytes go from a staging
   * buffer to the disk, not first into the page cache. For `git add` that copy cost as much CPU as a
   * SHA-256 pass over the file, and the fsync at commit then waited for the whole file to be written
   * back; now the writes run on the libuv pool while the JS thread reads and hashes on, and fsync has
   * only the last block and the metadata left. Where O_DIRECT is refused (tmpfs, some network
   * filesystems) the same staged writes go through the page cache.
   */
  direct?: boolean;
}

/**
 * Appends objects to a temp pack; `commit()` makes them durable and visible, `abort()` forgets them.
 * Every write is positional. By default payloads are gathered by reference and written with writev, so a
 * stream of 64 KiB chunks costs few system calls; with `direct`, they are copied into aligned 8 MiB
 * staging blocks written with O_DIRECT. `append` writes synchronously, `appendAll` (the chunks of
 * `git add`) on the libuv pool, so the JS thread reads and hashes on while the bytes go to disk.
 */
export class PackWriter {
  private readonly tmpPath: string;
  private fd: number | undefined;
  /** Where the next entry goes: the bytes before it are written, in `batch` or in `stage`. */
  private offset = 0;
  /**
   * The index records of the objects written so far, in write order and in the index's own layout (a
   * JS object per record and a Set of hex ids cost some 300 bytes an object: 70 MiB for the 230,000
   * chunks of a 14 GiB `git add`).
   */
  private records = Buffer.alloc(1024 * IDX_RECORD_BYTES);
  private recordCount = 0;
  private written = new IdSet();
  /** Buffered mode: payloads not yet written, by reference. */
  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  /** Direct mode: the staging block being filled (it starts at file offset `stageStart`), spare blocks. */
  private readonly aligned: ((bytes: number, alignment: number) => Buffer) | null;
  private stage: Buffer | undefined;
  private stageStart = 0;
  private stageFill = 0;
  private readonly spare: Buffer[] = [];
  /** An ordinary fd on the temp pack, when O_DIRECT writes were refused after the open. */
  private fallbackFd: number | undefined;
  /** Writes still running on the pool. */
  private readonly inFlight = new Set<Promise<void>>();
  /** The temp pack exists on disk (removed again by abort). */
  private created = false;
  /** The temp pack was created writable (mode 0600); commit makes it read-only like every pack. */
  private writableUntilCommit = false;

  constructor(private readonly packDir: string, private readonly tmpDir: string, opts: PackWriterOptions = {}) {
    this.tmpPath = tempPathFor(join(tmpDir, 'pack'), tmpDir);
    this.aligned = opts.direct && constants.O_DIRECT !== undefined ? nativeAlignedBuffer() : null;
  }

  get objectCount(): number {
    return this.recordCount;
  }

  has(idHex: string): boolean {
    return this.written.has(idHex);
  }

  append(id: Buffer, encoding: number, decodedSize: number, payload: Uint8Array, depth = 0, flags = 0): void {
    if (!this.add(id, encoding, decodedSize, payload, depth, null, flags)) return;
    if (!this.stage && (this.batchBytes >= 4 << 20 || this.batch.length >= 1000)) this.drain();
  }

  /**
   * Appends `entries` (those not yet in this pack) and writes them, with anything `append` left
   * unwritten (in direct mode: every full staging block), on the libuv pool. Resolves once those bytes
   * are in the file, so the caller may reuse the payloads' memory; a failure (disk full...) removes the
   * temp pack and rejects with a StoreWriteError. The caller must await it before `commit()`.
   */
  async appendAll(entries: readonly PackEntry[]): Promise<void> {
    const writes: Promise<void>[] = [];
    for (const e of entries) this.add(e.id, e.encoding, e.decodedSize, e.payload, e.depth ?? 0, writes, 0, e.crc);
    if (!this.stage && this.batch.length) {
      const buffers = this.batch;
      const bytes = this.batchBytes;
      const position = this.offset - bytes;
      const fd = this.fd!;
      this.batch = [];
      this.batchBytes = 0;
      writes.push(this.track((async () => {
        let done = 0;
        while (done < bytes) done += await writevAt(fd, done === 0 ? buffers : remaining(buffers, done), position + done);
      })()));
    }
    try {
      await Promise.all(writes);
    } catch (err) {
      await Promise.allSettled(writes);
      const named = StoreWriteError.from(err, dirname(this.packDir));
      this.abort();
      throw named ?? err;
    }
  }

  /**
   * Fsyncs the pack and its index (both still temp files), renames the pack into place, then the index.
   * Returns the pack name, or null if empty. On failure (disk full...) nothing is visible and both temp
   * files are gone; the error is a StoreWriteError.
   */
  commit(): string | null {
    if (this.inFlight.size) throw new Error('internal: a pack was committed while appendAll was still writing');
    if (this.fd === undefined) return null;
    const idxTmp = tempPathFor(join(this.tmpDir, 'idx'), this.tmpDir);
    let packPath: string | undefined;
    try {
      if (this.stage) {
        // The last block, padded to the alignment, then the file cut back to its length.
        const padded = Math.ceil(this.stageFill / DIRECT_ALIGN) * DIRECT_ALIGN;
        this.stage.fill(0, this.stageFill, padded);
        this.writeStageSync(this.stage, padded, this.stageStart);
        ftruncateSync(this.fd, this.offset);
        this.releaseStages();
      } else this.drain();
      if (this.writableUntilCommit) fchmodSync(this.fd, 0o444);
      fsyncSync(this.fd);
      this.closeFds();
      const idx = this.buildIndex();
      const name = createHash('sha256').update(idx).digest('hex');
      writeDurable(idxTmp, idx);
      packPath = join(this.packDir, `pack-${name}.pack`);
      renameSync(this.tmpPath, packPath);
      fsyncDir(this.packDir);
      renameSync(idxTmp, join(this.packDir, `pack-${name}.idx`));
      fsyncDir(this.packDir);
      return name;
    } catch (err) {
      for (const p of [idxTmp, packPath]) if (p) removeQuietly(p);
      this.abort();
      throw StoreWriteError.from(err, dirname(this.packDir)) ?? err;
    }
  }

  /** Forgets everything appended and removes the temp pack. */
  abort(): void {
    this.closeFds();
    if (this.created) removeQuietly(this.tmpPath);
    this.created = false;
    this.writableUntilCommit = false;
    this.offset = 0;
    this.recordCount = 0;
    this.written = new IdSet();
    this.batch = [];
    this.batchBytes = 0;
    if (!this.inFlight.size) this.releaseStages();
    this.stage = undefined;
    this.spare.length = 0;
    this.stageStart = 0;
    this.stageFill = 0;
  }

  private closeFds(): void {
    for (const fd of [this.fd, this.fallbackFd]) {
      if (fd === undefined) continue;
      // A write still running on the pool holds the fd: close it only after, so the number cannot be
      // reused by another file while that write lands.
      if (this.inFlight.size) void Promise.allSettled([...this.inFlight]).then(() => close(fd, () => undefined));
      else closeSync(fd);
    }
    this.fd = undefined;
    this.fallbackFd = undefined;
  }

  private track(write: Promise<void>): Promise<void> {
    this.inFlight.add(write);
    const done = (): void => void this.inFlight.delete(write);
    write.then(done, done);
    return write;
  }

  /**
   * Adds one entry (opening the temp pack first); false when the pack has it. In direct mode the bytes
   * are copied into staging blocks, and each block that fills is written: on the pool when `writes`
   * collects the writes, else synchronously.
   */
  private add(id: Buffer, encoding: number, decodedSize: number, payload: Uint8Array, depth: number, writes: Promise<void>[] | null, flags = 0, knownCrc?: number): boolean {
    if (this.written.has(id)) return false;
    if (this.fd === undefined) {
      this.open();
      this.push(PACK_MAGIC, writes);
    }
    // Small buffers from Node's shared pool (allocUnsafe): `git add` makes one header and one id copy per
    // 64 KiB chunk, and an ArrayBuffer of its own for each showed up as garbage collection time.
    const head = Buffer.allocUnsafe(ENTRY_HEADER_BYTES);
    head[0] = encoding;
    head[1] = depth;
    head[2] = 0;
    head[3] = 0;
    id.copy(head, 4);
    head.writeBigUInt64LE(BigInt(decodedSize), 36);
    head.writeBigUInt64LE(BigInt(payload.length), 44);
    this.push(head, writes);
    const crc = knownCrc ?? crc32(payload);
    if (encoding === Encoding.raw) flags |= RECORD_RAW_CRC;
    this.record(id, payload.length, decodedSize, encoding, depth, crc, flags);
    this.push(payload, writes);
    this.written.add(id);
    return true;
  }

  private open(): void {
    this.guard(() => {
      if (this.aligned) {
        try {
          // Writable by its owner until commit: a refused O_DIRECT write reopens it without O_DIRECT.
          this.fd = openSync(this.tmpPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT, 0o600);
          this.writableUntilCommit = true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
        }
      }
      this.fd ??= openSync(this.tmpPath, 'wx', 0o444);
    });
    this.created = true;
    if (this.aligned) {
      this.stage = this.newStage();
      this.stageStart = 0;
      this.stageFill = 0;
    }
  }

  private push(bytes: Uint8Array, writes: Promise<void>[] | null): void {
    if (bytes.length === 0) return; // an empty object has a header and no payload; writev of nothing makes no progress
    this.offset += bytes.length;
    if (!this.stage) {
      this.batch.push(bytes);
      this.batchBytes += bytes.length;
      return;
    }
    for (let at = 0; at < bytes.length;) {
      const n = Math.min(bytes.length - at, DIRECT_BLOCK - this.stageFill);
      this.stage.set(n === bytes.length ? bytes : bytes.subarray(at, at + n), this.stageFill);
      this.stageFill += n;
      at += n;
      if (this.stageFill === DIRECT_BLOCK) this.emitStage(writes);
    }
  }

  /** Writes the full staging block and starts the next one. */
  private emitStage(writes: Promise<void>[] | null): void {
    const block = this.stage!;
    const position = this.stageStart;
    this.stage = this.spare.pop() ?? this.newStage();
    this.stageStart += DIRECT_BLOCK;
    this.stageFill = 0;
    if (!writes) {
      this.guard(() => this.writeStageSync(block, DIRECT_BLOCK, position));
      this.spare.push(block);
      return;
    }
    writes.push(this.track((async () => {
      let done = 0;
      while (done < DIRECT_BLOCK) done += await this.writeStage(block, done, DIRECT_BLOCK - done, position + done);
      if (this.spare.length < 2) this.spare.push(block);
    })()));
  }

  private newStage(): Buffer {
    return stagePool.pop() ?? this.aligned!(DIRECT_BLOCK, DIRECT_ALIGN);
  }

  /** Gives the idle staging blocks back to the process's pool (blocks still being written are not idle). */
  private releaseStages(): void {
    for (const b of [this.stage, ...this.spare.splice(0)]) if (b && stagePool.length < POOLED_STAGES) stagePool.push(b);
    this.stage = undefined;
  }

  private writeStageSync(block: Buffer, length: number, position: number): void {
    for (let done = 0; done < length;) {
      try {
        done += writeSync(this.fallbackFd ?? this.fd!, block, done, length - done, position + done);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL' || this.fallbackFd !== undefined) throw err;
        this.fallbackFd = openSync(this.tmpPath, 'r+'); // O_DIRECT refused on write: the page cache it is
      }
    }
  }

  private async writeStage(block: Buffer, from: number, length: number, position: number): Promise<number> {
    const attempt = (fd: number) => new Promise<number>((resolve, reject) => write(fd, block, from, length, position, (err, n) => (err ? reject(err) : resolve(n))));
    try {
      return await attempt(this.fallbackFd ?? this.fd!);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      this.fallbackFd ??= openSync(this.tmpPath, 'r+'); // O_DIRECT refused on write: the page cache it is
      return attempt(this.fallbackFd);
    }
  }

  /** Runs a write; a disk-full or I/O failure removes the temp pack and becomes a StoreWriteError. */
  private guard<T>(write: () => T): T {
    try {
      return write();
    } catch (err) {
      const named = StoreWriteError.from(err, dirname(this.packDir));
      if (!named) throw err;
      this.abort();
      throw named;
    }
  }

  /** Writes what `append` holds by reference (buffered mode), so the caller may reuse the payloads' memory. */
  flush(): void {
    if (this.batch.length) this.drain();
  }

  private drain(): void {
    this.guard(() => this.drainBatch());
  }

  private drainBatch(): void {
    const pending = this.batch;
    const position = this.offset - this.batchBytes;
    let done = 0;
    while (done < this.batchBytes) done += writevSync(this.fd!, done === 0 ? pending : remaining(pending, done), position + done);
    this.batch = [];
    this.batchBytes = 0;
  }

  /** Appends the index record of the object whose payload starts at the current offset. */
  private record(id: Buffer, payloadLength: number, decodedSize: number, encoding: number, depth: number, crc: number, flags: number): void {
    if ((this.recordCount + 1) * IDX_RECORD_BYTES > this.records.length) {
      const grown = Buffer.alloc(2 * this.records.length);
      this.records.copy(grown);
      this.records = grown;
    }
    const r = this.records;
    const at = this.recordCount++ * IDX_RECORD_BYTES;
    id.copy(r, at, 0, 32);
    r.writeBigUInt64LE(BigInt(this.offset), at + 32);
    r.writeBigUInt64LE(BigInt(payloadLength), at + 40);
    r.writeBigUInt64LE(BigInt(decodedSize), at + 48);
    r[at + 56] = encoding;
    r[at + 57] = depth;
    r.writeUInt32LE(crc, at + 58);
    r[at + 62] = flags;
  }

  private buildIndex(): Buffer {
    const r = this.records;
    const order = Uint32Array.from({ length: this.recordCount }, (_, k) => k).sort((a, b) => compareIds(r, a * IDX_RECORD_BYTES, r, b * IDX_RECORD_BYTES));
    const out = Buffer.alloc(IDX_HEADER_BYTES + order.length * IDX_RECORD_BYTES + 32);
    IDX_MAGIC.copy(out, 0);
    out.writeUInt32LE(order.length, 8);
    order.forEach((from, k) => r.copy(out, IDX_HEADER_BYTES + k * IDX_RECORD_BYTES, from * IDX_RECORD_BYTES, (from + 1) * IDX_RECORD_BYTES));
    createHash('sha256').update(out.subarray(0, out.length - 32)).digest().copy(out, out.length - 32);
    return out;
  }
}

/** What is left of `buffers` after its first `skip` bytes. */
function remaining(buffers: Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of buffers) {
    if (skip >= b.length) skip -= b.length;
    else {
      out.push(skip ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return out;
}
