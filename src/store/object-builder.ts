// Owns building one stored object (a tensor, or an opaque file) from its bytes: cutting them into chunks,
// hashing each chunk (SHA-256 id and CRC-32) and the whole object (its id) on the libuv pool, choosing
// each new chunk's delta base among the previous version's chunks, storing the chunks and, when there is
// more than one, the chunk list. Clean (checkpoint.ts, `git add`) and merges (tensor-sink.ts) both build
// objects here, so the same bytes get the same chunks, ids and encodings whichever command stores them.
// Memory stays a few batches per file whatever the object's size.

import { createHash, type Hash } from 'node:crypto';
import { type DType, dtypeBits, dtypeKind } from '../format/dtype.js';
import type { PointerTensor } from '../format/pointer.js';
import { tensorByteLength } from '../format/safetensors.js';
import { chunkBatches, type HashStream } from '../kernels/chunks.js';
import { tensorChunkBytes } from './chunking.js';
import type { EncodeHint } from './encoding.js';
import type { ObjectWriter } from './store.js';

/** Chunks are hashed and compressed in batches of about this many bytes, a few batches in flight. */
const BATCH_BYTES = 4 * 1024 * 1024;
const BATCHES_IN_FLIGHT = 2;

/** Bounds the batches of chunks being stored across all objects of one file (or one merged tensor). */
export class InFlight {
  private readonly queue: Promise<unknown>[] = [];

  add(work: Promise<unknown>): void {
    work.catch(() => undefined); // awaited by settle() or its owner; this only keeps Node from calling it unhandled
    this.queue.push(work);
  }

  async settle(max = BATCHES_IN_FLIGHT): Promise<void> {
    while (this.queue.length > max) await this.queue.shift();
  }
}

/**
 * Batch buffers, reused: a fresh 4 MiB buffer per batch costs page faults and garbage collection for
 * every 4 MiB `git add` reads. A buffer comes back once putChunks has settled (its chunks are hashed,
 * compressed and written: nothing refers to it any more). Holds a few buffers at most.
 */
const batchPool: Buffer[] = [];
const EMPTY = Buffer.alloc(0);
const POOLED_BATCHES = BATCHES_IN_FLIGHT + 2;

function takeBatch(bytes: number): Buffer {
  if (bytes < BATCH_BYTES / 2) return Buffer.allocUnsafe(bytes); // a small tensor: no need to hold 4 MiB
  return (batchPool.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES)).subarray(0, bytes);
}

function returnBatch(batch: Buffer): void {
  if (batch.buffer.byteLength === BATCH_BYTES && batchPool.length < POOLED_BATCHES) {
    batchPool.push(Buffer.from(batch.buffer, 0, BATCH_BYTES));
  }
}

/**
 * The previous version's chunks of the same object, cut at the same offsets (a tensor of the same dtype
 * and shape): chunk k of the new object deltas against chunk k of these when their lengths are equal.
 */
export type RelatedChunks = { id: Buffer; length: number; depth: number }[];

export interface ObjectBuilderOptions {
  writer: ObjectWriter;
  /** Bounds the batches in flight; one per file, shared by its objects. */
  inFlight: InFlight;
  /** A chunk ends each time this many bytes have gathered, or earlier at cut(). */
  chunkBytes: number;
  /** Bytes per element, for compression (1 for opaque data). */
  width?: number;
  /** Elements are IEEE floats (compression groups their exponents). */
  float?: boolean;
  related?: RelatedChunks;
  /** The object's size when known: a small tensor gets a batch buffer its own size. */
  expectedBytes?: number;
}

/**
 * Cuts one object into chunks and stores them. Chunks gather into batches that ObjectWriter.putChunks
 * hashes and compresses off the JS thread, while another pool thread hashes the whole object batch by
 * batch (its id) and this thread goes on reading or merging: the two SHA-256 passes of every byte run on
 * both cores, not one of them on the thread that also reads git's pipe and writes packs. Without the
 * addon both run on the JS thread. The InFlight bounds the batches in flight, so memory stays a few
 * batches whatever the object's size.
 */
export class ChunkedObjectBuilder {
  /** A chunk ends each time this many bytes have gathered, or earlier at cut(). */
  readonly chunkBytes: number;
  /** Bytes per batch: a whole number of chunks, about BATCH_BYTES (one chunk when a chunk is larger). */
  readonly batchBytes: number;
  /** The object's id on the pool (each batch as it is submitted), when the addon is there and chunks are kept. */
  private readonly stream: HashStream | undefined;
  private hashed: Promise<void> = Promise.resolve();
  /** Otherwise the object's id on this thread, as bytes arrive. */
  private readonly hash: Hash | undefined;
  private readonly batches: Promise<Buffer[]>[] = [];
  private batch: Buffer = EMPTY;
  private filled = 0;
  /** Where the chunk being filled starts in `batch`, and the lengths of the batch's chunks before it. */
  private chunkStart = 0;
  private lengths: number[] = [];
  /** The lengths of all chunks submitted so far, in order, and the bytes they hold. */
  private submitted: number[] = [];
  private submittedBytes = 0;
  /** The related object's bytes pushed with ours and not yet handed to a batch, by offset in the object. */
  private relatedSpans: { at: number; bytes: Uint8Array }[] = [];
  private readonly writer: ObjectWriter;
  private readonly inFlight: InFlight;
  private readonly width: number;
  private readonly float: boolean;
  private readonly related: RelatedChunks | undefined;
  private readonly expectedBytes: number;
  size = 0;

  constructor(opts: ObjectBuilderOptions) {
    this.writer = opts.writer;
    this.inFlight = opts.inFlight;
    this.chunkBytes = opts.chunkBytes;
    this.width = opts.width ?? 1;
    this.float = opts.float ?? false;
    this.related = opts.related;
    this.expectedBytes = opts.expectedBytes ?? Infinity;
    this.batchBytes = Math.max(1, Math.floor(BATCH_BYTES / this.chunkBytes)) * this.chunkBytes;
    this.stream = this.writer.hashOnly ? undefined : chunkBatches()?.hashStream();
    if (!this.stream) this.hash = createHash('sha256');
  }

  /**
   * Appends bytes; a chunk ends each time `chunkBytes` have gathered. `bytes` are copied: they are only
   * read during the call. `relatedBytes`: the related object's bytes at the same offsets, when the caller
   * has them (a merge holds ours' block), so that a delta base lying within them is not read from the
   * store again; they must stay unchanged until the batches holding these offsets are stored (for a
   * caller that settles the InFlight after each push: until the push after next). Settle the InFlight
   * between pushes.
   */
  push(bytes: Uint8Array, relatedBytes?: Uint8Array): void {
    this.hash?.update(bytes);
    const start = this.size;
    this.size += bytes.length;
    if (this.writer.hashOnly) return; // only the object's id is wanted: no chunks to cut
    if (relatedBytes && this.related && relatedBytes.length === bytes.length) this.relatedSpans.push({ at: start, bytes: relatedBytes });
    let at = 0;
    while (at < bytes.length) {
      if (this.batch.length === 0) this.batch = this.newBatch();
      const k = Math.min(bytes.length - at, this.chunkBytes - (this.filled - this.chunkStart));
      this.batch.set(bytes.subarray(at, at + k), this.filled);
      this.filled += k;
      at += k;
      if (this.filled - this.chunkStart === this.chunkBytes) this.cut();
    }
  }

  /** Ends the current chunk early (content-defined boundaries). */
  cut(): void {
    if (this.filled === this.chunkStart) return;
    this.lengths.push(this.filled - this.chunkStart);
    this.chunkStart = this.filled;
    if (this.batch.length - this.filled < this.chunkBytes) this.submit();
  }

  /** Stores the object and returns its id: a single chunk is its own object, more make a chunk list. */
  async finish(): Promise<string> {
    if (this.writer.hashOnly) return this.hash!.digest('hex');
    this.cut();
    this.submit();
    const ids = (await Promise.all(this.batches)).flat();
    await this.hashed;
    const id = this.stream ? this.stream.digest() : this.hash!.digest();
    if (ids.length === 0) this.writer.putBlob(Buffer.alloc(0), id);
    else if (ids.length > 1) this.writer.putChunkList(id, this.size, ids.map((c, k) => ({ id: c, length: this.submitted[k]! })));
    return id.toString('hex');
  }

  private submit(): void {
    if (this.lengths.length === 0) return;
    const first = this.submitted.length;
    const lengths = this.lengths;
    const batchAt = this.submittedBytes;
    const batchEnd = batchAt + this.filled;
    const spans = this.relatedSpans.filter((s) => s.at < batchEnd);
    this.relatedSpans = this.relatedSpans.filter((s) => s.at + s.bytes.length > batchEnd);
    const starts: number[] = [];
    lengths.reduce((at, n) => (starts.push(at), at + n), batchAt);
    // Called by putChunks only for a chunk the store lacks: reading a base for a chunk it has is wasted.
    const base = (k: number): EncodeHint['base'] => {
      const related = this.related?.[first + k];
      if (!related || related.length !== lengths[k]) return undefined;
      // Same layout, so the related chunk sits where this one does: when the caller gave its bytes, no
      // need to read and decode it again.
      const at = starts[k]!;
      const span = spans.find((s) => s.at <= at && at + related.length <= s.at + s.bytes.length);
      return this.writer.store.deltaBaseWithBytes(related.id, span?.bytes.subarray(at - span.at, at - span.at + related.length));
    };
    const batch = this.batch;
    const bytes = batch.subarray(0, this.filled);
    const stream = this.stream;
    // Batches reach the object's hash in order: each update starts once the one before has finished.
    if (stream) this.hashed = this.hashed.then(() => stream.update(bytes));
    const stored = this.writer.putChunks(bytes, lengths, { width: this.width, float: this.float, base });
    const done = stream ? Promise.all([stored, this.hashed]) : stored;
    done.then(() => returnBatch(batch), () => returnBatch(batch));
    this.inFlight.add(done);
    this.batches.push(stored);
    this.submitted.push(...lengths);
    this.submittedBytes = batchEnd;
    this.lengths = [];
    this.batch = EMPTY; // the next push takes a buffer, so the last batch of an object takes none
    this.filled = 0;
    this.chunkStart = 0;
  }

  private newBatch(): Buffer {
    const left = Math.ceil(Math.max(1, this.expectedBytes - this.submittedBytes) / this.chunkBytes);
    return takeBatch(Math.min(this.batchBytes, left * this.chunkBytes));
  }
}

/**
 * A builder cutting a tensor as clean does (tensorChunkBytes: fixed offsets from dtype and shape),
 * delta-encoding against `related` (the previous version, or ours in a merge) when it has the same dtype
 * and shape, so the same chunk layout.
 */
export function tensorObjectBuilder(opts: { writer: ObjectWriter; inFlight: InFlight; dtype: DType; shape: number[]; related?: PointerTensor }): ChunkedObjectBuilder {
  const { writer, dtype, shape, related } = opts;
  const bits = dtypeBits(dtype);
  const sameLayout = related && related.dtype === dtype && related.shape.join() === shape.join();
  return new ChunkedObjectBuilder({
    writer,
    inFlight: opts.inFlight,
    chunkBytes: tensorChunkBytes(bits, shape),
    width: bits % 8 === 0 ? bits / 8 : 1,
    float: dtypeKind(dtype) === 'float' && bits >= 16,
    related: sameLayout ? writer.store.chunksOf(related.id) : undefined,
    expectedBytes: tensorByteLength(dtype, shape),
  });
}
