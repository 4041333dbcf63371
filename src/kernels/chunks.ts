// Owns the addon's batched chunk work (native/src/chunks.cc): hashing, compressing and decoding a few
// MiB of store chunks per call on a libuv pool thread, so `git add` and `git checkout` keep a second
// core busy. null when the addon is missing or GIT_TENSOR_KERNELS=js: the store then does the same
// work on the JS thread with src/store/encoding.ts.

import { cpuAddon } from './addon.js';

/** One chunk to compress: [bytes, element width, rotate the sign, delta base or null]. */
export type PlanesItem = [Uint8Array, number, boolean, Uint8Array | null];

/**
 * One chunk to decode: [body, body mode (0 raw, 1 one zstd frame, 2 split planes), size, width, rotate,
 * delta base (null, its decoded bytes, or its own item), 32-byte id].
 */
export type DecodeItem = [Uint8Array, number, number, number, boolean, Uint8Array | DecodeItem | null, Uint8Array];

/** SHA-256 of one object fed in pieces on the pool: one update at a time, in order, then digest once. */
export interface HashStream {
  update(data: Uint8Array): Promise<void>;
  digest(): Buffer;
}

export interface ChunkBatches {
  /**
   * SHA-256 of each consecutive piece of `data` (`lengths` bytes each): 32 bytes per piece; with
   * `crcs`, also each piece's CRC-32, written there.
   */
  hash(data: Uint8Array, lengths: Uint32Array, crcs?: Uint32Array): Promise<Buffer>;
  hashStream(): HashStream;
  /**
   * Raw chunks read from their pack files into consecutive parts of `out`, each checked against its
   * CRC-32: `places` holds (fd, offset, length, crc) per chunk. Rejects with "chunk #k: ..." for the
   * first that fails.
   */
  readRaw(places: Float64Array, out: Uint8Array): Promise<void>;
  /** compressPlanes (src/store/encoding.ts) of each item; absent without zstd. */
  compressPlanes?(items: PlanesItem[], level: number): Promise<Buffer[]>;
  /** Decodes the items one after the other into `out`, verifying each against its id; absent without zstd. */
  decode?(items: DecodeItem[], out: Uint8Array): Promise<void>;
}

let cached: ChunkBatches | null | undefined;

export function chunkBatches(env: NodeJS.ProcessEnv = process.env): ChunkBatches | null {
  if (cached !== undefined) return cached;
  const forcedJs = (env.GIT_TENSOR_KERNELS ?? '').trim().toLowerCase() === 'js';
  cached = forcedJs ? null : ((cpuAddon()?.chunks as ChunkBatches | undefined) ?? null);
  return cached;
}
