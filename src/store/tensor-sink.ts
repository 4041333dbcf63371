// Owns storing a tensor that is produced block by block (a merge result): cut into the chunks clean
// would cut (tensorChunkBytes), each block's chunks stored as soon as they arrive and delta-encoded
// against the related tensor's chunk at the same place, the whole object hashed on the way. Memory is a
// few blocks whatever the tensor's size; storeTensor (checkpoint.ts) is the same for a tensor in memory.

import { createHash, type Hash } from 'node:crypto';
import { type DType, dtypeBits, dtypeKind } from '../format/dtype.js';
import type { PointerTensor } from '../format/pointer.js';
import { tensorChunkBytes } from './chunking.js';
import type { EncodeHint } from './encoding.js';
import type { ObjectWriter } from './store.js';

/** Blocks whose chunks may be being stored at once (each block must stay unchanged until then). */
const BLOCKS_IN_FLIGHT = 2;

export class TensorSink {
  /** Pushed blocks must be a multiple of this many bytes, but for the last one. */
  readonly chunkBytes: number;
  private readonly hash: Hash = createHash('sha256');
  private readonly width: number;
  private readonly float: boolean;
  private readonly related?: { id: Buffer; length: number }[];
  private readonly stored: Promise<Buffer[]>[] = [];
  private readonly lengths: number[] = [];
  private size = 0;
  private ended = false;

  /** `related`: the version to delta against (ours, in a merge), used when its dtype and shape are these. */
  constructor(private readonly writer: ObjectWriter, dtype: DType, shape: number[], related?: PointerTensor) {
    const bits = dtypeBits(dtype);
    this.chunkBytes = tensorChunkBytes(bits, shape);
    this.width = bits % 8 === 0 ? bits / 8 : 1;
    this.float = dtypeKind(dtype) === 'float' && bits >= 16;
    if (related && related.dtype === dtype && related.shape.join() === shape.join()) this.related = writer.store.chunksOf(related.id);
  }

  /**
   * Appends the next bytes of the tensor. `relatedBytes`: the related tensor's bytes at the same place,
   * when the caller has them (a merge does: ours), so that delta bases need not be read again.
   * `bytes` (and `relatedBytes`) must stay unchanged until the promise of the push after next settles.
   */
  async push(bytes: Uint8Array, relatedBytes?: Uint8Array): Promise<void> {
    if (this.ended) throw new Error('TensorSink: a block after the last one (a block shorter than a whole number of chunks)');
    if (bytes.length % this.chunkBytes !== 0) this.ended = true;
    this.hash.update(bytes);
    this.size += bytes.length;
    if (bytes.length === 0) return;
    const first = this.lengths.length;
    const lengths: number[] = [];
    for (let at = 0; at < bytes.length; at += this.chunkBytes) lengths.push(Math.min(this.chunkBytes, bytes.length - at));
    this.lengths.push(...lengths);
    const base = (k: number): EncodeHint['base'] => {
      const rel = this.related?.[first + k];
      if (!rel || rel.length !== lengths[k]) return undefined;
      const at = k * this.chunkBytes;
      return this.writer.store.deltaBaseWithBytes(rel.id, relatedBytes?.subarray(at, at + rel.length));
    };
    const stored = this.writer.putChunks(bytes, lengths, { width: this.width, float: this.float, base });
    stored.catch(() => undefined); // awaited below or in finish(); this only keeps Node from calling it unhandled
    this.stored.push(stored);
    if (this.stored.length > BLOCKS_IN_FLIGHT) await this.stored[this.stored.length - 1 - BLOCKS_IN_FLIGHT];
  }

  /** Stores the object and returns its id: a single chunk is its own object, more make a chunk list. */
  async finish(): Promise<string> {
    const ids = (await Promise.all(this.stored)).flat();
    const id = this.hash.digest();
    if (ids.length === 0) this.writer.putBlob(Buffer.alloc(0), id);
    else if (ids.length > 1) this.writer.putChunkList(id, this.size, ids.map((c, k) => ({ id: c, length: this.lengths[k]! })));
    return id.toString('hex');
  }
}
