// Owns the store's compression codec: what it is (the Codec interface the chunk encodings of
// src/store/encoding.ts call) and which one runs: zstd from the native addon (which always compiles it
// in), and, when the addon is missing, a pure-JavaScript zstd decoder (fzstd), so a repository written
// elsewhere with compression can still be read. Only compression needs the addon; `git tensor doctor`
// reports its absence and GIT_TENSOR_REQUIRE_ADDON=1 makes it an error (src/kernels/addon.ts).

import { decompress as jsDecompress } from 'fzstd';
import { addonStatus, nativeZstd } from '../kernels/addon.js';

export interface Codec {
  /** null when the native addon is missing: new chunks are then stored raw. */
  compress: ((src: Uint8Array, level: number) => Uint8Array) | null;
  decompress(src: Uint8Array, decodedSize: number): Uint8Array;
  /**
   * split(toPlanes(base ? zigzagDelta(src, base) : rotl1?(src))) in one native call; when absent,
   * splitPlanes() in src/store/encoding.ts does the same in TypeScript around compress().
   */
  compressPlanes?(src: Uint8Array, width: number, rotate: boolean, base: Uint8Array | null, level: number): Uint8Array;
  /** zstd with the parameters compressPlanes uses for each plane (tuned for byte planes); compress() when absent. */
  compressPlane?(plane: Uint8Array, level: number): Uint8Array;
  /** The inverse of compressPlanes. */
  decompressPlanes?(src: Uint8Array, decodedSize: number, width: number, rotate: boolean, base: Uint8Array | null): Uint8Array;
  /** e.g. "zstd 1.5.4 (native)" or "zstd (JavaScript decoder only)". */
  description?: string;
}

let cached: Codec | undefined;

export function storeCodec(): Codec {
  if (cached) return cached;
  // The codec is independent of the kernel choice (GIT_TENSOR_KERNELS=js still compresses natively).
  const zstd = nativeZstd();
  if (zstd) {
    cached = {
      compress: (src, level) => zstd.compress(src, level),
      decompress: (src, size) => zstd.decompress(src, size),
      compressPlanes: (src, width, rotate, base, level) => zstd.compressPlanes(src, width, rotate, base, level),
      compressPlane: (plane, level) => zstd.compressPlane(plane, level),
      decompressPlanes: (src, size, width, rotate, base) => zstd.decompressPlanes(src, size, width, rotate, base),
      description: `zstd ${zstd.version} (native)`,
    };
    return cached;
  }
  // Loud, once per process: a store that silently grows by whole files is worse than a warning.
  process.stderr.write(`git-tensor: warning: ${addonStatus().problem}: new chunks are stored uncompressed and no deltas are made (see \`git tensor doctor\`)\n`);
  cached = {
    compress: null,
    decompress: (src, size) => jsDecompress(src, new Uint8Array(size)),
    description: 'none (no native addon: JavaScript zstd decoder only, new chunks stored raw)',
  };
  return cached;
}
