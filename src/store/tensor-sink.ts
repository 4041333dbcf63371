// Owns storing a tensor that is produced rather than read from a file (a merge result): pushed block by
// block, or whole from memory (storeTensor), it is built by object-builder.ts exactly as clean builds a
// tensor of that dtype and shape (same chunks, ids and encodings), hashed on the libuv pool, and
// delta-encoded against the related tensor (ours, in a merge) chunk by chunk. Memory is a few blocks
// whatever the tensor's size.

import type { DType } from '../format/dtype.js';
import type { PointerTensor } from '../format/pointer.js';
import { type ChunkedObjectBuilder, InFlight, tensorObjectBuilder } from './object-builder.js';
import type { ObjectWriter } from './store.js';

export class TensorSink {
  /**
   * The tensor's chunk length. Blocks of a whole number of chunks each hold their chunks' related bytes
   * whole, so no delta base is read from the store again; other block sizes store the same objects.
   */
  readonly chunkBytes: number;
  /** Blocks of this many bytes (a whole number of chunks, about 4 MiB) fill one batch each. */
  readonly blockBytes: number;
  private readonly inFlight = new InFlight();
  private readonly object: ChunkedObjectBuilder;

  /** `related`: the version to delta against (ours, in a merge), used when its dtype and shape are these. */
  constructor(writer: ObjectWriter, dtype: DType, shape: number[], related?: PointerTensor) {
    this.object = tensorObjectBuilder({ writer, inFlight: this.inFlight, dtype, shape, related });
    this.chunkBytes = this.object.chunkBytes;
    this.blockBytes = this.object.batchBytes;
  }

  /**
   * Appends the next bytes of the tensor; resolves once the store is no more than two batches behind.
   * `bytes` are copied. `relatedBytes`: the related tensor's bytes at the same place, when the caller has
   * them (a merge does: ours), so that delta bases need not be read again; they must stay unchanged until
   * the push after next settles.
   */
  async push(bytes: Uint8Array, relatedBytes?: Uint8Array): Promise<void> {
    this.object.push(bytes, relatedBytes);
    await this.inFlight.settle();
  }

  /** Stores the object and returns its id: a single chunk is its own object, more make a chunk list. */
  finish(): Promise<string> {
    return this.object.finish();
  }
}

/**
 * Stores a tensor produced in memory, chunked exactly as clean would cut it, with `related` (and its
 * decoded bytes, if at hand) as the delta base.
 */
export async function storeTensor(writer: ObjectWriter, dtype: DType, shape: number[], data: Uint8Array, related?: PointerTensor, relatedBytes?: Uint8Array): Promise<string> {
  const sink = new TensorSink(writer, dtype, shape, related);
  const relatedAll = relatedBytes?.length === data.length ? relatedBytes : undefined;
  for (let at = 0; at < data.length; at += sink.blockBytes) {
    await sink.push(data.subarray(at, at + sink.blockBytes), relatedAll?.subarray(at, at + sink.blockBytes));
  }
  return sink.finish();
}
