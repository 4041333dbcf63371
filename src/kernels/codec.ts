// Owns the store's compression codec: zstd from the native addon when it was built with libzstd, and
// otherwise a pure-JavaScript zstd decoder (fzstd), so a repository written elsewhere with compression
// can always be read. Only compression needs the native library.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { decompress as jsDecompress } from 'fzstd';
import { ADDON_PATHS } from './addon.js';

export interface Codec {
  /** null when this build cannot compress (no libzstd): new chunks are then stored raw. */
  compress: ((src: Uint8Array, level: number) => Uint8Array) | null;
  decompress(src: Uint8Array, decodedSize: number): Uint8Array;
  /** e.g. "zstd 1.5.4 (native)" or "zstd (JavaScript decoder only)". */
  description: string;
}

interface NativeZstd {
  compress(src: Uint8Array, level: number): Buffer;
  decompress(src: Uint8Array, size: number): Buffer;
  version: string;
}

let cached: Codec | undefined;

export function storeCodec(): Codec {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  // The codec is independent of the kernel choice (GIT_TENSOR_KERNELS=js still compresses natively).
  for (const p of ADDON_PATHS) {
    if (!existsSync(p)) continue;
    try {
      const zstd = (require(p) as { zstd?: NativeZstd }).zstd;
      if (zstd) {
        cached = { compress: (src, level) => zstd.compress(src, level), decompress: (src, size) => zstd.decompress(src, size), description: `zstd ${zstd.version} (native)` };
        return cached;
      }
    } catch {
      // A broken addon: the kernels loader reports it; fall through to the decoder.
    }
  }
  cached = {
    compress: null,
    decompress: (src, size) => jsDecompress(src, new Uint8Array(size)),
    description: 'zstd (JavaScript decoder only; build the addon with libzstd-dev to compress)',
  };
  return cached;
}
