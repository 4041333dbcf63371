// Owns how a chunk's bytes are kept in a pack: raw, compressed, or as a delta against a related chunk
// (the same chunk of the same tensor in the previous version). Encodings are private and versioned: they
// never change an id (DESIGN.md principle 5), and a reader that meets an unknown one says so.
//
// Written now:
//   5 planes        payload = width(u8) float(u8) split(planes(rotl1?(bytes)))
//   6 delta planes  payload = base id(32) width(u8) split(planes(zigzag(bytes - base)))
// Still read (written by earlier versions; one zstd frame for all planes, which makes zstd code the
// near-random mantissa bytes and the exponent bytes with one entropy table):
//   2 zstd              payload = zstd(bytes)
//   3 planes+zstd       payload = width(u8) float(u8) zstd(planes(rotl1?(bytes)))
//   4 delta+planes+zstd payload = base id(32) width(u8) zstd(planes(zigzag(bytes - base)))
//
// rotl1 (float = 1): each float's bits rotated left by one, moving the sign to the bottom so the top
// byte holds exactly the exponent of F32 and BF16 (F16: exponent and 3 mantissa bits). Exponents of
// trained weights take few distinct values, so that plane compresses to a fraction of a byte per
// element, the idea behind exponent-aware coders such as DFloat11.
//
// planes(): for elements of `width` bytes, all first bytes, then all second bytes, ...: the sign and
// exponent bytes of floats, nearly constant across a tensor, end up together where zstd finds them.
// split(): each plane on its own, as mode(u8) length(u32 LE) bytes, where mode 1 is a zstd frame of the
// plane and mode 0 the plane itself (when zstd does not make it smaller). Each plane so gets its own
// entropy coding, and the low mantissa planes, which are noise, cost a memcpy to read.
// zigzag(a - b): the element-wise difference of the bit patterns as unsigned integers of `width` bytes,
// mapped so small positive and negative differences both have zero high bytes. An update of relative
// size 1e-3 changes only the low bits of a float's pattern, so most high planes become zero.

import { CorruptObjectError } from '../errors/index.js';
import type { Codec } from './codec.js';

export const ChunkEncoding = {
  zstd: 2,
  planesZstd: 3,
  deltaPlanesZstd: 4,
  planes: 5,
  deltaPlanes: 6,
} as const;

/** Delta chains stop here: a chunk whose base is this deep is stored without a delta, so reads stay short. */
export const MAX_DELTA_DEPTH = 4;

/** zstd level for new chunks: on byte planes of trained weights, level 3 gains under 1% over 1 at half the speed. */
export const ZSTD_LEVEL = 1;

/** Compression is kept only if it saves at least this fraction (else raw: no decode cost for nothing). */
const MIN_SAVING = 0.03;

export interface EncodeHint {
  /** Bytes per element: 1 leaves planes() a no-op. */
  width: number;
  /** The elements are IEEE floats of `width` bytes (F16, BF16, F32, F64). */
  float?: boolean;
  /** The related chunk to delta against, with its own chain depth. */
  base?: { id: Buffer; bytes: Uint8Array; depth: number };
}

export interface Encoded {
  encoding: number;
  payload: Uint8Array;
  /** 0 for a self-contained chunk, base depth + 1 for a delta. */
  depth: number;
}

/**
 * Byte planes of `src`, with each element first rotated left by one bit when `rotate` (see rotateSign).
 * The common widths work on 16/32-bit words rather than bytes: this runs on every chunk `git add` writes.
 */
export function toPlanes(src: Uint8Array, width: number, rotate = false): Uint8Array {
  if (width <= 1 || src.length % width !== 0) return src;
  const n = src.length / width;
  const aligned = src.byteOffset % width === 0;
  if (aligned && width === 4) {
    const w = new Uint32Array(src.buffer, src.byteOffset, n);
    const out = new Uint8Array(src.length);
    for (let i = 0; i < n; i++) {
      let x = w[i]!;
      if (rotate) x = ((x << 1) | (x >>> 31)) >>> 0;
      out[i] = x & 0xff;
      out[n + i] = (x >>> 8) & 0xff;
      out[2 * n + i] = (x >>> 16) & 0xff;
      out[3 * n + i] = x >>> 24;
    }
    return out;
  }
  if (aligned && width === 2) {
    const w = new Uint16Array(src.buffer, src.byteOffset, n);
    const out = new Uint8Array(src.length);
    for (let i = 0; i < n; i++) {
      let x = w[i]!;
      if (rotate) x = ((x << 1) | (x >>> 15)) & 0xffff;
      out[i] = x & 0xff;
      out[n + i] = x >>> 8;
    }
    return out;
  }
  if (rotate) src = rotateSign(src, width);
  const out = new Uint8Array(src.length);
  for (let b = 0; b < width; b++) {
    const plane = b * n;
    for (let i = 0, j = b; i < n; i++, j += width) out[plane + i] = src[j]!;
  }
  return out;
}

/** Inverse of toPlanes (with the same `rotate`). */
export function fromPlanes(src: Uint8Array, width: number, rotate = false): Uint8Array {
  if (width <= 1 || src.length % width !== 0) return src;
  const n = src.length / width;
  if (width === 4) {
    const out = new Uint8Array(src.length);
    const w = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) {
      const x = (src[i]! | (src[n + i]! << 8) | (src[2 * n + i]! << 16) | (src[3 * n + i]! << 24)) >>> 0;
      w[i] = rotate ? ((x >>> 1) | (x << 31)) >>> 0 : x;
    }
    return out;
  }
  if (width === 2) {
    const out = new Uint8Array(src.length);
    const w = new Uint16Array(out.buffer);
    for (let i = 0; i < n; i++) {
      const x = src[i]! | (src[n + i]! << 8);
      w[i] = rotate ? ((x >>> 1) | (x << 15)) & 0xffff : x;
    }
    return out;
  }
  const out = new Uint8Array(src.length);
  for (let b = 0; b < width; b++) {
    const plane = b * n;
    for (let i = 0, j = b; i < n; i++, j += width) out[j] = src[plane + i]!;
  }
  return rotate ? rotateSign(out, width, true) : out;
}

/** Rotates each element of `width` bytes (2, 4, 8; little-endian) left by one bit, or right when `back`. */
export function rotateSign(src: Uint8Array, width: number, back = false): Uint8Array {
  const out = new Uint8Array(src.length);
  const top = width - 1;
  for (let off = 0; off < src.length; off += width) {
    if (!back) {
      // left: every byte takes its neighbour's top bit; the lowest takes the element's sign bit
      let carry = src[off + top]! >>> 7;
      for (let k = 0; k < width; k++) {
        const b = src[off + k]!;
        out[off + k] = ((b << 1) | carry) & 0xff;
        carry = b >>> 7;
      }
    } else {
      let carry = src[off]! & 1;
      for (let k = top; k >= 0; k--) {
        const b = src[off + k]!;
        out[off + k] = (b >>> 1) | (carry << 7);
        carry = b & 1;
      }
    }
  }
  return out;
}

/** zigzag(a - b) per element of `width` bytes (1, 2, 4 or 8), little-endian, wrapping. */
export function zigzagDelta(a: Uint8Array, b: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(a.length);
  if (width === 4 && a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const x = new Int32Array(a.buffer, a.byteOffset, a.length / 4);
    const y = new Int32Array(b.buffer, b.byteOffset, b.length / 4);
    const o = new Uint32Array(out.buffer);
    for (let i = 0; i < x.length; i++) {
      const d = (x[i]! - y[i]!) | 0;
      o[i] = ((d << 1) ^ (d >> 31)) >>> 0;
    }
    return out;
  }
  const dv = (u: Uint8Array) => new DataView(u.buffer, u.byteOffset, u.length);
  const [da, db, dout] = [dv(a), dv(b), dv(out)];
  for (let off = 0; off < a.length; off += width) {
    switch (width) {
      case 8: {
        const d = BigInt.asIntN(64, da.getBigInt64(off, true) - db.getBigInt64(off, true));
        dout.setBigUint64(off, BigInt.asUintN(64, (d << 1n) ^ (d >> 63n)), true);
        break;
      }
      case 2: {
        const d = (da.getInt16(off, true) - db.getInt16(off, true)) << 16 >> 16;
        dout.setUint16(off, ((d << 1) ^ (d >> 15)) & 0xffff, true);
        break;
      }
      case 4: {
        const d = (da.getInt32(off, true) - db.getInt32(off, true)) | 0;
        dout.setUint32(off, ((d << 1) ^ (d >> 31)) >>> 0, true);
        break;
      }
      default: {
        const d = ((a[off]! - b[off]!) << 24) >> 24;
        out[off] = ((d << 1) ^ (d >> 7)) & 0xff;
      }
    }
  }
  return out;
}

/** Inverse of zigzagDelta: returns base + unzigzag(delta). */
export function applyZigzagDelta(delta: Uint8Array, base: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(delta.length);
  if (width === 4 && delta.byteOffset % 4 === 0 && base.byteOffset % 4 === 0) {
    const z = new Uint32Array(delta.buffer, delta.byteOffset, delta.length / 4);
    const y = new Int32Array(base.buffer, base.byteOffset, base.length / 4);
    const o = new Int32Array(out.buffer);
    for (let i = 0; i < z.length; i++) {
      const u = z[i]!;
      o[i] = (y[i]! + ((u >>> 1) ^ -(u & 1))) | 0;
    }
    return out;
  }
  const dv = (u: Uint8Array) => new DataView(u.buffer, u.byteOffset, u.length);
  const [dz, dy, dout] = [dv(delta), dv(base), dv(out)];
  for (let off = 0; off < delta.length; off += width) {
    switch (width) {
      case 8: {
        const u = dz.getBigUint64(off, true);
        const d = (u >> 1n) ^ -(u & 1n);
        dout.setBigInt64(off, BigInt.asIntN(64, dy.getBigInt64(off, true) + d), true);
        break;
      }
      case 2: {
        const u = dz.getUint16(off, true);
        dout.setInt16(off, (dy.getInt16(off, true) + ((u >>> 1) ^ -(u & 1))) << 16 >> 16, true);
        break;
      }
      case 4: {
        const u = dz.getUint32(off, true);
        dout.setInt32(off, (dy.getInt32(off, true) + ((u >>> 1) ^ -(u & 1))) | 0, true);
        break;
      }
      default: {
        const u = delta[off]!;
        out[off] = (base[off]! + ((u >>> 1) ^ -(u & 1))) & 0xff;
      }
    }
  }
  return out;
}

/**
 * Picks the encoding for one chunk: a delta against `hint.base` when there is one (and its chain is not
 * too deep), else planes+zstd; raw (null) when compression would not save enough.
 */
export function encodeChunk(bytes: Uint8Array, hint: EncodeHint, codec: Codec, level = ZSTD_LEVEL): Encoded | null {
  const compress = codec.compress;
  if (!compress) return null;
  const plan = planEncoding(bytes, hint);
  if (plan.delta) {
    const z = compressPlanes(codec, compress, bytes, plan.width, false, plan.delta.bytes, level);
    const encoded = deltaEncoded(plan, bytes.length, z);
    if (encoded) return encoded;
  }
  return plainEncoded(plan, bytes.length, compressPlanes(codec, compress, bytes, plan.width, plan.float, null, level));
}

/** Compresses many chunks in one call, [bytes, width, rotate, base] each (the addon's chunk batches). */
export type CompressBatch = (items: [Uint8Array, number, boolean, Uint8Array | null][], level: number) => Promise<Buffer[]>;

/**
 * encodeChunk for many chunks of one tensor, with the same choices and payloads; `batch` does the
 * compression off the JS thread. A delta that does not pay is retried as plain planes in a second batch.
 */
export async function encodeChunks(items: { bytes: Uint8Array; base?: EncodeHint['base'] }[], hint: Omit<EncodeHint, 'base'>, codec: Codec,
  batch: CompressBatch | undefined, level = ZSTD_LEVEL): Promise<(Encoded | null)[]> {
  if (!codec.compress) return items.map(() => null);
  if (!batch) return items.map((it) => encodeChunk(it.bytes, { ...hint, base: it.base }, codec, level));
  const plans = items.map((it) => planEncoding(it.bytes, { ...hint, base: it.base }));
  const first = await batch(items.map((it, k) => {
    const p = plans[k]!;
    return p.delta ? [it.bytes, p.width, false, p.delta.bytes] : [it.bytes, p.width, p.float, null];
  }), level);
  const out = items.map((it, k) => (plans[k]!.delta ? deltaEncoded(plans[k]!, it.bytes.length, first[k]!) : plainEncoded(plans[k]!, it.bytes.length, first[k]!)));
  const retry = items.flatMap((_, k) => (plans[k]!.delta && !out[k] ? [k] : []));
  if (retry.length) {
    const second = await batch(retry.map((k) => [items[k]!.bytes, plans[k]!.width, plans[k]!.float, null]), level);
    retry.forEach((k, j) => (out[k] = plainEncoded(plans[k]!, items[k]!.bytes.length, second[j]!)));
  }
  return out;
}

interface EncodingPlan {
  /** 1 when the chunk is not a whole number of 2-, 4- or 8-byte elements. */
  width: number;
  /** Rotate the sign out of the exponent byte (floats of 2+ bytes). */
  float: boolean;
  /** The base to try a delta against, when its chain has room and its size matches. */
  delta?: NonNullable<EncodeHint['base']>;
}

function planEncoding(bytes: Uint8Array, hint: EncodeHint): EncodingPlan {
  const width = [2, 4, 8].includes(hint.width) && bytes.length % hint.width === 0 ? hint.width : 1;
  const base = hint.base;
  const delta = base && base.depth < MAX_DELTA_DEPTH && base.bytes.length === bytes.length ? base : undefined;
  return { width, float: width > 1 && hint.float === true, delta };
}

const savesEnough = (stored: number, size: number) => stored <= size * (1 - MIN_SAVING);

function deltaEncoded(plan: EncodingPlan, size: number, body: Uint8Array): Encoded | null {
  const base = plan.delta!;
  if (!savesEnough(body.length + 33, size)) return null;
  return { encoding: ChunkEncoding.deltaPlanes, payload: concat([base.id, Uint8Array.of(plan.width), body]), depth: base.depth + 1 };
}

function plainEncoded(plan: EncodingPlan, size: number, body: Uint8Array): Encoded | null {
  if (!savesEnough(body.length + 2, size)) return null;
  return { encoding: ChunkEncoding.planes, payload: concat([Uint8Array.of(plan.width, plan.float ? 1 : 0), body]), depth: 0 };
}

/**
 * split(planes(...)) in TypeScript (see the top of this file): what the addon's compressPlanes makes,
 * byte for byte, given the same zstd.
 */
export function splitPlanes(bytes: Uint8Array, width: number, rotate: boolean, base: Uint8Array | null,
  compress: (plane: Uint8Array, level: number) => Uint8Array, level: number): Uint8Array {
  const planes = toPlanes(base ? zigzagDelta(bytes, base, width) : bytes, width, rotate && !base);
  const n = bytes.length / width;
  const parts: Uint8Array[] = [];
  for (let b = 0; b < width; b++) {
    const plane = planes.subarray(b * n, (b + 1) * n);
    const z = compress(plane, level);
    const packed = z.length < n;
    const head = Buffer.alloc(5);
    head[0] = packed ? 1 : 0;
    head.writeUInt32LE(packed ? z.length : n, 1);
    parts.push(head, packed ? z : plane);
  }
  return concat(parts);
}

/** The inverse of splitPlanes; throws CorruptObjectError naming `id` when the body is malformed. */
export function joinSplitPlanes(id: string, body: Uint8Array, size: number, width: number, rotate: boolean, base: Uint8Array | null,
  decompress: Codec['decompress']): Uint8Array {
  const n = size / width;
  const planes = new Uint8Array(size);
  const view = Buffer.from(body.buffer, body.byteOffset, body.length);
  let at = 0;
  for (let b = 0; b < width; b++) {
    if (body.length - at < 5) throw new CorruptObjectError(id, `plane ${b} is cut short`);
    const [mode, stored] = [view[at]!, view.readUInt32LE(at + 1)];
    at += 5;
    if (stored > body.length - at) throw new CorruptObjectError(id, `plane ${b} runs past the payload`);
    const bytes = body.subarray(at, at + stored);
    if (mode === 0 && stored === n) planes.set(bytes, b * n);
    else if (mode === 1) planes.set(checkSize(id, decompress(bytes, n), n), b * n);
    else throw new CorruptObjectError(id, `plane ${b} has mode ${mode} and ${stored} bytes`);
    at += stored;
  }
  if (at !== body.length) throw new CorruptObjectError(id, 'bytes follow the last plane');
  const unplaned = fromPlanes(planes, width, rotate && !base);
  return base ? applyZigzagDelta(unplaned, base, width) : unplaned;
}

/** How a payload body is stored: the bytes themselves, one zstd frame of all planes, or split planes. */
export const BodyMode = { raw: 0, joined: 1, split: 2 } as const;

/** How a chunk payload is laid out for decoding: its body and the transform around it. */
export interface PayloadLayout {
  body: Uint8Array;
  mode: (typeof BodyMode)[keyof typeof BodyMode];
  width: number;
  rotate: boolean;
  /** The delta base's id (hex), for encodings 4 and 6. */
  baseId?: string;
}

/** Reads a payload's small header (docs/store.md) without decoding it; `decodedSize` checks the width. */
export function payloadLayout(id: string, encoding: number, payload: Uint8Array, decodedSize: number): PayloadLayout {
  switch (encoding) {
    case 0:
      return { body: payload, mode: BodyMode.raw, width: 1, rotate: false };
    case ChunkEncoding.zstd:
      return { body: payload, mode: BodyMode.joined, width: 1, rotate: false };
    case ChunkEncoding.planesZstd:
    case ChunkEncoding.planes:
      checkWidth(id, payload[0]!, decodedSize);
      return {
        body: payload.subarray(2), mode: encoding === ChunkEncoding.planes ? BodyMode.split : BodyMode.joined,
        width: payload[0]!, rotate: payload[1] === 1,
      };
    case ChunkEncoding.deltaPlanesZstd:
    case ChunkEncoding.deltaPlanes:
      checkWidth(id, payload[32]!, decodedSize);
      return {
        body: payload.subarray(33), mode: encoding === ChunkEncoding.deltaPlanes ? BodyMode.split : BodyMode.joined,
        width: payload[32]!, rotate: false, baseId: Buffer.from(payload.subarray(0, 32)).toString('hex'),
      };
    default:
      throw new CorruptObjectError(id, `unknown encoding ${encoding} (written by a newer git-tensor?)`);
  }
}

/** Decodes a chunk; `readBase` returns a base chunk's decoded bytes (deltas only). */
export function decodeChunk(id: string, encoding: number, payload: Uint8Array, decodedSize: number, codec: Codec, readBase: (id: string) => Uint8Array): Uint8Array {
  const layout = payloadLayout(id, encoding, payload, decodedSize);
  if (layout.mode === BodyMode.raw) return checkSize(id, payload, decodedSize);
  const base = layout.baseId ? readBase(layout.baseId) : null;
  if (base && base.length !== decodedSize) throw new CorruptObjectError(id, `delta base ${layout.baseId!.slice(0, 16)} holds ${base.length} bytes, the chunk ${decodedSize}`);
  const { body, width, rotate } = layout;
  if (layout.mode === BodyMode.joined) {
    const planes = fromPlanes(checkSize(id, codec.decompress(body, decodedSize), decodedSize), width, rotate && !base);
    return base ? applyZigzagDelta(planes, base, width) : planes;
  }
  if (!codec.decompressPlanes) return joinSplitPlanes(id, body, decodedSize, width, rotate, base, codec.decompress);
  try {
    return checkSize(id, codec.decompressPlanes(body, decodedSize, width, rotate, base), decodedSize);
  } catch (err) {
    throw err instanceof CorruptObjectError ? err : new CorruptObjectError(id, (err as Error).message);
  }
}

/** The id a delta-encoded payload depends on. */
export function deltaBaseOf(encoding: number, payload: Uint8Array): string | undefined {
  return isDelta(encoding) ? Buffer.from(payload.subarray(0, 32)).toString('hex') : undefined;
}

/** One of the chunk encodings above (2-6), which this version can decode. */
export function isChunkEncoding(encoding: number): boolean {
  return (Object.values(ChunkEncoding) as number[]).includes(encoding);
}

/** Encodings whose payload starts with the 32-byte id of the chunk they are a delta against. */
export function isDelta(encoding: number): boolean {
  return encoding === ChunkEncoding.deltaPlanesZstd || encoding === ChunkEncoding.deltaPlanes;
}

function compressPlanes(codec: Codec, compress: NonNullable<Codec['compress']>, bytes: Uint8Array, width: number, rotate: boolean,
  base: Uint8Array | null, level: number): Uint8Array {
  if (codec.compressPlanes) return codec.compressPlanes(bytes, width, rotate, base, level);
  return splitPlanes(bytes, width, rotate, base, codec.compressPlane ?? compress, level);
}

function checkWidth(id: string, width: number, size: number): void {
  if (![1, 2, 4, 8].includes(width) || size % width !== 0) throw new CorruptObjectError(id, `element width ${width} does not divide the chunk's ${size} bytes`);
}

function checkSize(id: string, out: Uint8Array, expected: number): Uint8Array {
  if (out.length !== expected) throw new CorruptObjectError(id, `decoded ${out.length} bytes, expected ${expected}`);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}
