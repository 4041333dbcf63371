// Owns where objects are cut into chunks. Tensors are cut at fixed, element- and row-aligned offsets
// that depend only on dtype and shape, so a tensor whose values change in a few rows shares every other
// chunk with its previous version. Opaque files are cut by content (gear hash), so an insertion shifts
// only nearby boundaries. Boundaries affect dedup only, never an id.

export const TARGET_CHUNK_BYTES = 64 * 1024;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Chunk length in bytes for a tensor: whole rows (the product of all but the first dimension) when a row
 * fits in the target, else a whole number of elements. `bits` is the dtype's element size in bits.
 */
export function tensorChunkBytes(bits: number, shape: readonly number[]): number {
  // The smallest byte span holding a whole number of elements (1 byte for F4, 3 bytes for F6).
  const unit = (bits * 8) / gcd(bits, 8) / 8;
  const rowElements = shape.slice(1).reduce((a, b) => a * b, 1);
  const rowBits = rowElements * bits;
  if (shape.length >= 2 && rowBits > 0 && rowBits % 8 === 0) {
    const rowBytes = rowBits / 8;
    if (rowBytes <= TARGET_CHUNK_BYTES) return Math.floor(TARGET_CHUNK_BYTES / rowBytes) * rowBytes;
  }
  return Math.max(unit, Math.floor(TARGET_CHUNK_BYTES / unit) * unit);
}

/** Gear table: 256 fixed pseudo-random words (splitmix32 of the index), part of the dedup contract. */
const GEAR = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let z = (i + 0x9e3779b9) | 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    t[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return t;
})();

export const CDC_MIN = 16 * 1024;
export const CDC_MAX = 256 * 1024;
/** 16 high bits set: a boundary once per 64 KiB on average past the minimum. */
const CDC_MASK = 0xffff0000;

/**
 * Streaming content-defined chunker. `push` returns the cut offsets (relative to the start of the
 * stream) found in the new bytes; the caller ends the last chunk at end of input.
 */
export class GearChunker {
  private hash = 0;
  private sinceCut = 0;
  private position = 0;

  push(bytes: Uint8Array): number[] {
    const cuts: number[] = [];
    let h = this.hash;
    let since = this.sinceCut;
    for (let i = 0; i < bytes.length; i++) {
      h = ((h << 1) + GEAR[bytes[i]!]!) >>> 0;
      since++;
      if ((since >= CDC_MIN && (h & CDC_MASK) === 0) || since >= CDC_MAX) {
        cuts.push(this.position + i + 1);
        since = 0;
        h = 0;
      }
    }
    this.hash = h;
    this.sinceCut = since;
    this.position += bytes.length;
    return cuts;
  }
}
