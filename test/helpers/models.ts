// Owns deterministic test checkpoints: seeded pseudo-random tensors (never Math.random), a small
// transformer-shaped "model", one tensor of every dtype, sharded checkpoints, and edits that change a
// few rows or a few tensors the way a fine-tuning step would. Files are written with the project's
// serializeSafetensors, which lays them out as the reference Rust writer does.

import { DTYPES, type DType } from '../../src/format/dtype.js';
import { serializeSafetensors, type TensorInput } from '../../src/format/safetensors.js';

export type { TensorInput };

/**
 * Element widths in bits, written out here rather than read from src/ so that a wrong width in
 * dtype.ts shows up as a refused or mis-sized file instead of being copied into the oracle.
 */
const DTYPE_BITS: Record<string, number> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8,
  F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
};

export function bitsOf(dtype: string): number {
  const bits = DTYPE_BITS[dtype];
  if (bits === undefined) throw new Error(`test/helpers/models.ts does not know the width of dtype ${dtype}; add it to DTYPE_BITS`);
  return bits;
}

export function byteLength(dtype: string, shape: readonly number[]): number {
  const totalBits = shape.reduce((n, d) => n * d, 1) * bitsOf(dtype);
  if (totalBits % 8 !== 0) throw new Error(`${dtype} ${JSON.stringify(shape)} is not a whole number of bytes`);
  return totalBits / 8;
}

/** xoshiro128** seeded from a string through FNV-1a + splitmix32: same seed, same bytes, everywhere. */
export class Prng {
  private readonly s = new Uint32Array(4);

  constructor(seed: string | number) {
    let h = 0x811c9dc5;
    for (const c of Buffer.from(String(seed), 'utf8')) h = Math.imul(h ^ c, 0x01000193) >>> 0;
    for (let i = 0; i < 4; i++) {
      h = (h + 0x9e3779b9) >>> 0;
      let z = h;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  nextU32(): number {
    const s = this.s;
    let s0 = s[0]!, s1 = s[1]!, s2 = s[2]!, s3 = s[3]!;
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3 >>> 0, 11);
    s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3;
    return result;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return this.nextU32() % n;
  }

  fill(out: Uint8Array): Uint8Array {
    const words = Math.floor(out.length / 4);
    const view = new DataView(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < words; i++) view.setUint32(i * 4, this.nextU32(), true);
    for (let i = words * 4; i < out.length; i++) out[i] = this.nextU32() & 0xff;
    return out;
  }

  bytes(n: number): Buffer {
    return this.fill(Buffer.alloc(n)) as Buffer;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export function randomBytes(seed: string | number, n: number): Buffer {
  return new Prng(seed).bytes(n);
}

/** A tensor with seeded contents; BOOL gets 0/1 bytes as real writers produce. */
export function makeTensor(name: string, dtype: DType, shape: readonly number[], seed: string | number = name): TensorInput {
  const data = randomBytes(seed, byteLength(dtype, shape));
  if (dtype === 'BOOL') for (let i = 0; i < data.length; i++) data[i]! &= 1;
  return { name, dtype, shape: [...shape], data };
}

export interface TinyModelOptions {
  seed?: string;
  layers?: number;
  hidden?: number;
  vocab?: number;
  dtype?: DType;
}

/**
 * A transformer-shaped model with Hugging Face style names. Each tensor's contents depend only on the
 * seed and its name, so two models with the same seed share every tensor.
 */
export function tinyModel(opts: TinyModelOptions = {}): TensorInput[] {
  const { seed = 'tiny', layers = 2, hidden = 32, vocab = 64, dtype = 'F32' } = opts;
  const t = (name: string, shape: number[]) => makeTensor(name, dtype, shape, `${seed}/${name}`);
  const out: TensorInput[] = [t('model.embed_tokens.weight', [vocab, hidden])];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    for (const proj of ['q', 'k', 'v', 'o']) out.push(t(`${p}.self_attn.${proj}_proj.weight`, [hidden, hidden]));
    out.push(t(`${p}.mlp.up_proj.weight`, [2 * hidden, hidden]));
    out.push(t(`${p}.mlp.down_proj.weight`, [hidden, 2 * hidden]));
    out.push(t(`${p}.input_layernorm.weight`, [hidden]));
  }
  out.push(t('model.norm.weight', [hidden]), t('lm_head.weight', [vocab, hidden]));
  return out;
}

/** One tensor of every dtype the format knows (24 elements each: whole bytes for 4- and 6-bit types). */
export function everyDtypeTensors(seed = 'dtypes'): TensorInput[] {
  return DTYPES.map((d) => makeTensor(`t.${d.toLowerCase()}`, d, [3, 8], `${seed}/${d}`));
}

export function toSafetensors(tensors: readonly TensorInput[], metadata?: Record<string, string> | null): Buffer {
  return serializeSafetensors(tensors, metadata ?? null);
}

export function dataBytes(tensors: readonly TensorInput[]): number {
  return tensors.reduce((s, t) => s + t.data.length, 0);
}

function replaceData(tensors: readonly TensorInput[], name: string, edit: (t: TensorInput) => Uint8Array): TensorInput[] {
  let found = false;
  const out = tensors.map((t) => {
    if (t.name !== name) return t;
    found = true;
    return { ...t, shape: [...t.shape], data: edit(t) };
  });
  if (!found) throw new Error(`no tensor named ${name}`);
  return out;
}

/** The same model with the given rows (first dimension) of one tensor changed; every other byte kept. */
export function modifyRows(tensors: readonly TensorInput[], name: string, rows: number[], seed = 'rows'): TensorInput[] {
  return replaceData(tensors, name, (t) => {
    const rowBytes = t.data.length / (t.shape[0] ?? 1);
    if (!Number.isInteger(rowBytes)) throw new Error(`${name}: rows are not whole bytes`);
    const data = Buffer.from(t.data);
    const prng = new Prng(`${seed}/${name}`);
    for (const r of rows) {
      if (r >= (t.shape[0] ?? 1)) throw new Error(`${name} has no row ${r}`);
      // XOR with an odd value changes every byte of the row, whatever the generator yields.
      for (let i = r * rowBytes; i < (r + 1) * rowBytes; i++) data[i]! ^= prng.nextU32() | 1;
    }
    return data;
  });
}

/** The same model with the named tensors given new contents (same dtype and shape). */
export function replaceTensors(tensors: readonly TensorInput[], names: string[], seed = 'replaced'): TensorInput[] {
  let out = [...tensors];
  for (const name of names) {
    out = replaceData(out, name, (t) => {
      const data = randomBytes(`${seed}/${name}`, t.data.length);
      for (let i = 0; i < data.length; i++) data[i]! ^= t.data[i] === data[i] ? 1 : 0;
      return data;
    });
  }
  return out;
}

export interface ShardedCheckpoint {
  /** File name -> bytes, e.g. model-00001-of-00003.safetensors. */
  shards: Map<string, Buffer>;
  /** model.safetensors.index.json as transformers writes it. */
  indexJson: string;
  weightMap: Record<string, string>;
}

/** Splits tensors into `n` shards in order (tensors listed in `groups` explicitly override the split). */
export function shard(groups: TensorInput[][], prefix = 'model'): ShardedCheckpoint {
  const n = groups.length;
  const shards = new Map<string, Buffer>();
  const weightMap: Record<string, string> = {};
  let total = 0;
  groups.forEach((g, k) => {
    const file = `${prefix}-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    shards.set(file, toSafetensors(g, { format: 'pt' }));
    for (const t of g) {
      weightMap[t.name] = file;
      total += t.data.length;
    }
  });
  const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]!]));
  const indexJson = JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + '\n';
  return { shards, indexJson, weightMap: sorted };
}

/**
 * A large checkpoint (about `totalBytes`) of F32 tensors filled with incompressible seeded data, built
 * straight into one buffer so a few hundred MB cost one allocation.
 */
export function largeModel(totalBytes: number, seed = 'large', tensors = 4): Buffer {
  const cols = 4096;
  const rows = Math.max(1, Math.floor(totalBytes / tensors / (cols * 4)));
  const list: TensorInput[] = [];
  const prng = new Prng(seed);
  for (let k = 0; k < tensors; k++) {
    list.push({ name: `layers.${k}.weight`, dtype: 'F32', shape: [rows, cols], data: prng.bytes(rows * cols * 4) });
  }
  return toSafetensors(list, { format: 'pt' });
}

/**
 * A safetensors file from header text written by hand (any key order, whitespace, padding), for the
 * layouts real writers produce that serializeSafetensors never would. `pad` appends spaces up to a
 * multiple of 8 (default false: the header is used exactly as given).
 */
export function handWritten(headerJson: string, data: Uint8Array, opts: { pad?: boolean } = {}): Buffer {
  let header = Buffer.from(headerJson, 'utf8');
  if (opts.pad) {
    const padded = Buffer.alloc(Math.ceil(header.length / 8) * 8, 0x20);
    header.copy(padded);
    header = padded;
  }
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([prefix, header, data]);
}
