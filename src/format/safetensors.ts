// Owns the safetensors container format, pure and in memory: the 8-byte length prefix, the JSON header
// (parsed and validated as the Rust reference does) and the writer that lays a file out the way
// `safetensors::serialize` does. No fs, no native code: callers read the bytes, this module judges them.
//
// File layout (huggingface/safetensors, `safetensors/src/tensor.rs`):
//   [0, 8)          N, u64 little-endian: byte length of the header
//   [8, 8+N)        UTF-8 JSON object { "__metadata__"?: {str: str}, name: {dtype, shape, data_offsets} ... },
//                   writers pad it with spaces (0x20) to a multiple of 8; JSON allows trailing whitespace
//   [8+N, EOF)      data section; each tensor's data_offsets [begin, end) are relative to its start
//
// Validation follows `SafeTensors::read_metadata` + `Metadata::validate`, in their order: prefix present,
// N <= 100 MB before anything is allocated, header inside the file, UTF-8, JSON and entry types (in text
// order), then tensors sorted by data_offsets must tile the data section from 0 with checked u64
// arithmetic (elements * bits must be whole bytes and equal end - begin), and the data must end exactly
// at the end of the file. Where we are stricter than Rust it is said at the check, with the reason.

import { SafetensorsError, type ErrorData, type SafetensorsErrorCode } from '../errors/index.js';
import { DTYPES, dtypeBits, dtypeRank, isDType, type DType } from './dtype.js';

export const MAX_HEADER_BYTES = 100_000_000;
const PREFIX_BYTES = 8;
const U64_MAX = (1n << 64n) - 1n;
const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Offsets relative to the start of the data section, as written in the header. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N from the 8-byte prefix. */
  headerLength: number;
  /** Exactly the N header bytes, padding included (a copy: bit-exact files are rebuilt from it). */
  headerBytes: Buffer;
  /** Sorted by begin offset (file data order); zero-size ties keep header order. */
  tensors: TensorInfo[];
  /** Tensor names in the order they appear in the JSON text. */
  headerOrder: string[];
  /** `__metadata__`, or null when absent or written as JSON null (Rust accepts both). */
  metadata: Record<string, string> | null;
  /** Bytes in the data section: the last tensor's end, 0 without tensors. */
  dataLength: number;
}

export interface ParseOptions {
  /** Path used in error messages. */
  file?: string;
  /** Total file size; when given, the data section must end exactly at the end of the file. */
  fileSize?: number;
}

export interface HeaderEntry {
  name: string;
  dtype: DType;
  shape: readonly number[];
  byteLength: number;
}

export interface SerializedHeader {
  /** The 8-byte little-endian N to write first. */
  prefix: Buffer;
  /** The N header bytes, space-padded to a multiple of 8. */
  headerBytes: Buffer;
  /** Where each tensor goes, in the order its bytes must be written. */
  layout: TensorInfo[];
  dataLength: number;
}

export interface TensorInput {
  name: string;
  dtype: DType;
  shape: readonly number[];
  data: Uint8Array;
}

// ---------------------------------------------------------------------------------------------------
// Reading

/**
 * Reads N from the first 8 bytes. With `fileSize`, also checks that the header fits in the file, which is
 * Rust's next check and must come before the caller reads N bytes.
 */
export function readHeaderLength(prefix: Uint8Array, file?: string, fileSize?: number): number {
  if (prefix.length < PREFIX_BYTES) {
    fail('E_ST_TRUNCATED_PREFIX', `file is ${prefix.length} byte(s), too short for the 8-byte header length that starts a safetensors file`, file);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, PREFIX_BYTES).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail('E_ST_HEADER_TOO_LARGE', `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`, file);
  }
  const length = Number(n);
  if (fileSize !== undefined) checkHeaderFits(length, fileSize, file);
  return length;
}

/** Parses a whole file held in memory: prefix, header and the size of what follows. */
export function parseSafetensors(bytes: Uint8Array, opts: { file?: string } = {}): SafetensorsHeader {
  const n = readHeaderLength(bytes, opts.file, bytes.length);
  return parseHeader(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + n), { file: opts.file, fileSize: bytes.length });
}

export function parseHeader(headerBytes: Uint8Array, opts: ParseOptions = {}): SafetensorsHeader {
  const { file, fileSize } = opts;
  const headerLength = headerBytes.length;
  if (headerLength > MAX_HEADER_BYTES) {
    fail('E_ST_HEADER_TOO_LARGE', `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`, file);
  }
  if (fileSize !== undefined) checkHeaderFits(headerLength, fileSize, file);

  let text: string;
  try {
    text = UTF8.decode(headerBytes);
  } catch {
    fail('E_ST_HEADER_UTF8', `header is not valid UTF-8 (first bad byte at header offset ${firstInvalidUtf8(headerBytes)})`, file);
  }

  const { metadata, tensors, headerOrder } = new HeaderReader(text, file).read();

  // Rust sorts by (begin, end). The sort is stable, so zero-size tensors sharing an offset keep header
  // order (Rust leaves them in HashMap order) and the result is deterministic.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let start = 0;
  let previous: TensorInfo | undefined;
  for (const t of tensors) {
    const where = () => `tensor ${quote(t.name)}: data_offsets [${t.begin}, ${t.end}]`;
    if (t.end < t.begin) fail('E_ST_OFFSETS', `${where()} end before they begin`, file, t.name);
    if (t.begin !== start) {
      const detail = previous === undefined
        ? 'the first tensor in the data section must begin at offset 0'
        : t.begin > start
          ? `leave bytes [${start}, ${t.begin}) after tensor ${quote(previous.name)} unused`
          : `overlap tensor ${quote(previous.name)}, which ends at ${start}`;
      fail('E_ST_NOT_CONTIGUOUS', `${where()} ${detail}; tensors must tile the data section in order`, file, t.name);
    }
    start = t.end;
    const bytes = byteLengthOrError(t.dtype, t.shape);
    if (bytes === 'overflow') {
      fail('E_ST_OVERFLOW', `tensor ${quote(t.name)}: ${t.dtype} ${fmtShape(t.shape)} overflows 64-bit size arithmetic`, file, t.name);
    }
    if (bytes === 'partial-byte') {
      fail('E_ST_SIZE_MISMATCH', `tensor ${quote(t.name)}: ${t.dtype} ${fmtShape(t.shape)} is ${elementCount(t.shape)} x ${dtypeBits(t.dtype)} bits, not a whole number of bytes`, file, t.name);
    }
    if (bytes !== t.end - t.begin) {
      fail('E_ST_SIZE_MISMATCH', `${where()} span ${t.end - t.begin} bytes but ${t.dtype} ${fmtShape(t.shape)} needs ${bytes}`, file, t.name);
    }
    previous = t;
  }
  const dataLength = start;

  if (fileSize !== undefined) {
    const available = fileSize - PREFIX_BYTES - headerLength;
    if (available < dataLength) {
      const cut = tensors.find((t) => t.end > available)!;
      fail('E_ST_TRUNCATED_DATA', `file is truncated: the data section holds ${available} bytes but the header needs ${dataLength}; tensor ${quote(cut.name)} (data_offsets [${cut.begin}, ${cut.end}]) runs past the end of the file`, file, cut.name);
    }
    if (available > dataLength) {
      fail('E_ST_TRAILING_DATA', `${available - dataLength} byte(s) of trailing data after the last tensor (file is ${fileSize} bytes, header accounts for ${PREFIX_BYTES + headerLength + dataLength})`, file);
    }
  }

  return { headerLength, headerBytes: Buffer.from(headerBytes), tensors, headerOrder, metadata, dataLength };
}

function checkHeaderFits(headerLength: number, fileSize: number, file: string | undefined): void {
  if (PREFIX_BYTES + headerLength > fileSize) {
    fail('E_ST_TRUNCATED_HEADER', `header length says ${headerLength} bytes but only ${Math.max(0, fileSize - PREFIX_BYTES)} follow the 8-byte prefix (file truncated?)`, file);
  }
}

// ---------------------------------------------------------------------------------------------------
// Sizes

/**
 * Byte length of a tensor: elements * bits / 8 with Rust's checked u64 arithmetic (the element count is
 * multiplied dimension by dimension, so [2^40, 2^40, 0] overflows while [0, 2^40, 2^40] does not).
 */
function byteLengthOrError(dtype: DType, shape: readonly number[]): number | bigint | 'overflow' | 'partial-byte' {
  const bits = dtypeBits(dtype);
  // Fast path while every partial product stays exact; leaving it early keeps Rust's step-wise overflow.
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) break;
  }
  if (n * bits <= Number.MAX_SAFE_INTEGER) return (n * bits) % 8 === 0 ? (n * bits) / 8 : 'partial-byte';
  {
    let e = 1n;
    for (const d of shape) {
      e *= BigInt(d);
      if (e > U64_MAX) return 'overflow';
    }
    const total = e * BigInt(bits);
    if (total > U64_MAX) return 'overflow';
    return total % 8n === 0n ? total / 8n : 'partial-byte';
  }
}

/** Bytes a tensor of this dtype and shape occupies; throws a SafetensorsError if it has none. */
export function tensorByteLength(dtype: DType, shape: readonly number[], opts: { file?: string; tensor?: string } = {}): number {
  const { file, tensor } = opts;
  const where = () => `${tensor === undefined ? '' : `tensor ${quote(tensor)}: `}${dtype} ${fmtShape(shape)}`;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    const at = tensor === undefined ? '' : `tensor ${quote(tensor)}: `;
    fail('E_ST_SHAPE', `${at}shape must be an array of non-negative safe integers, got ${String(JSON.stringify(shape))}`, file, tensor);
  }
  const bytes = byteLengthOrError(dtype, shape);
  if (bytes === 'overflow') fail('E_ST_OVERFLOW', `${where()} overflows 64-bit size arithmetic`, file, tensor);
  if (bytes === 'partial-byte') {
    fail('E_ST_SIZE_MISMATCH', `${where()} is ${elementCount(shape)} x ${dtypeBits(dtype)} bits, not a whole number of bytes`, file, tensor);
  }
  if (typeof bytes === 'bigint') fail('E_ST_OVERFLOW', `${where()} is larger than 2^53 - 1 bytes`, file, tensor);
  return bytes;
}

function elementCount(shape: readonly number[]): bigint {
  return shape.reduce((n, d) => n * BigInt(d), 1n);
}

// ---------------------------------------------------------------------------------------------------
// Writing

/**
 * Builds the header the way Rust's `serialize` (`prepare`) does, so that a file we write is the file
 * `safetensors.torch.save_file` would write for the same tensors:
 * - tensors sorted by dtype rank descending (the Rust enum order, see dtype.ts), then by name compared as
 *   UTF-8 bytes (Rust's `str` order), and laid out back to back from offset 0 in that order;
 * - compact JSON (serde_json: no spaces; same escapes as JSON.stringify for well-formed strings),
 *   `__metadata__` first when given (even empty), then each tensor as {dtype, shape, data_offsets};
 * - padded with spaces to a multiple of 8 so the data section starts aligned.
 * Rust emits metadata keys in HashMap order, which is random; we keep the record's own key order, so a
 * header rebuilt from a parsed one keeps its metadata order.
 */
export function serializeHeader(entries: readonly HeaderEntry[], metadata?: Record<string, string> | null, opts: { file?: string } = {}): SerializedHeader {
  const { file } = opts;
  const seen = new Set<string>();
  const keyed = entries.map((e) => {
    if (typeof e.name !== 'string' || hasLoneSurrogate(e.name)) {
      fail('E_ST_HEADER_SHAPE', `tensor name ${quote(String(e.name))} is not a valid UTF-8 string`, file);
    }
    if (e.name === METADATA_KEY) fail('E_ST_HEADER_SHAPE', `tensor name ${quote(METADATA_KEY)} is reserved for metadata`, file, e.name);
    if (seen.has(e.name)) fail('E_ST_HEADER_JSON', `duplicate tensor name ${quote(e.name)}`, file, e.name);
    seen.add(e.name);
    if (!isDType(e.dtype)) fail('E_ST_DTYPE', `tensor ${quote(e.name)}: unknown dtype ${quote(String(e.dtype))}`, file, e.name);
    const needed = tensorByteLength(e.dtype, e.shape, { file, tensor: e.name });
    if (e.byteLength !== needed) {
      fail('E_ST_SIZE_MISMATCH', `tensor ${quote(e.name)}: ${e.byteLength} bytes of data but ${e.dtype} ${fmtShape(e.shape)} needs ${needed}`, file, e.name);
    }
    return { entry: e, rank: dtypeRank(e.dtype) };
  });
  keyed.sort((a, b) => b.rank - a.rank || compareUtf8(a.entry.name, b.entry.name));

  const parts: string[] = [];
  if (metadata != null) {
    const fields = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string') fail('E_ST_METADATA', `${METADATA_KEY} key ${quote(k)} must map to a string, got ${typeof v}`, file);
      if (hasLoneSurrogate(k) || hasLoneSurrogate(v)) fail('E_ST_METADATA', `${METADATA_KEY} key ${quote(k)} is not valid UTF-8 text`, file);
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${fields.join(',')}}`);
  }
  const layout: TensorInfo[] = [];
  let offset = 0;
  for (const { entry } of keyed) {
    const info: TensorInfo = { name: entry.name, dtype: entry.dtype, shape: [...entry.shape], begin: offset, end: offset + entry.byteLength };
    if (!Number.isSafeInteger(info.end)) fail('E_ST_OVERFLOW', `data section would exceed 2^53 - 1 bytes at tensor ${quote(entry.name)}`, file, entry.name);
    offset = info.end;
    layout.push(info);
    parts.push(`${JSON.stringify(info.name)}:{"dtype":"${info.dtype}","shape":[${info.shape.join(',')}],"data_offsets":[${info.begin},${info.end}]}`);
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const headerLength = Math.ceil(json.length / PREFIX_BYTES) * PREFIX_BYTES;
  if (headerLength > MAX_HEADER_BYTES) {
    fail('E_ST_HEADER_TOO_LARGE', `header would be ${headerLength} bytes, over the ${MAX_HEADER_BYTES}-byte limit readers enforce`, file);
  }
  const headerBytes = Buffer.alloc(headerLength, 0x20);
  json.copy(headerBytes);
  const prefix = Buffer.alloc(PREFIX_BYTES);
  prefix.writeBigUInt64LE(BigInt(headerLength));
  return { prefix, headerBytes, layout, dataLength: offset };
}

/** A whole file in memory, byte for byte what the Rust `serialize` produces for the same input. */
export function serializeSafetensors(tensors: readonly TensorInput[], metadata?: Record<string, string> | null, opts: { file?: string } = {}): Buffer {
  const { prefix, headerBytes, layout, dataLength } = serializeHeader(
    tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.data.length })),
    metadata,
    opts,
  );
  const data = new Map(tensors.map((t) => [t.name, t.data]));
  const out = Buffer.allocUnsafe(PREFIX_BYTES + headerBytes.length + dataLength);
  prefix.copy(out, 0);
  headerBytes.copy(out, PREFIX_BYTES);
  const base = PREFIX_BYTES + headerBytes.length;
  for (const t of layout) out.set(data.get(t.name)!, base + t.begin);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The header, read the way serde_json deserializes it: one pass in text order, so the first problem in
// the text is the one reported, as in Rust. JSON is RFC 8259 with serde_json's rules: its whitespace set,
// no BOM, no raw control characters in strings, no lone surrogate escapes. The reader is driven by the
// schema (object of entries, each {dtype, shape, data_offsets}) instead of building a generic tree: a
// 100 MB header with a million tensors then costs one small object per tensor.
//
// Names keep their text order (JSON.parse would move integer-like keys such as "0" first). Duplicate
// keys are refused: Rust keeps the last duplicate tensor or metadata key (and errors on a duplicate field
// inside an entry), but a name with two entries is ambiguous to every other reader and cannot be stored
// as one pointer line per tensor.

// ignoreBOM keeps a leading U+FEFF in the text, where the reader rejects it as serde_json does.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES: Readonly<Record<string, string>> = Object.assign(Object.create(null) as Record<string, string>, {
  '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t',
});

class HeaderReader {
  private i = 0;
  /** The top-level key being read, so that a JSON error inside an entry names the tensor. */
  private topKey: string | undefined;

  constructor(private readonly s: string, private readonly file: string | undefined) {}

  read(): { metadata: Record<string, string> | null; tensors: TensorInfo[]; headerOrder: string[] } {
    let metadata: Record<string, string> | null = null;
    const tensors: TensorInfo[] = [];
    const headerOrder: string[] = [];
    const seen = new Set<string>();
    this.ws();
    if (this.s[this.i] !== '{') this.typeFail('E_ST_HEADER_SHAPE', 'header must be a JSON object mapping tensor names to entries');
    this.members(() => {
      const at = this.i;
      const key = this.string();
      this.topKey = key;
      if (seen.has(key)) this.jsonFail(`duplicate key ${quote(key)}`, at);
      seen.add(key);
      this.colon();
      if (key === METADATA_KEY) {
        metadata = this.metadata();
      } else {
        tensors.push(this.entry(key));
        headerOrder.push(key);
      }
      this.topKey = undefined;
    });
    this.ws();
    if (this.i < this.s.length) this.jsonFail('trailing characters after the JSON object');
    return { metadata, tensors, headerOrder };
  }

  /** `{"k": v, ...}` with the reader at `{`; `member` reads one key and its value. */
  private members(member: () => void): void {
    this.i++;
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.jsonFail('expected a string key');
      member();
      this.ws();
      const c = this.s[this.i++];
      if (c === '}') return;
      if (c !== ',') this.jsonFail("expected ',' or '}'", this.i - 1);
    }
  }

  private metadata(): Record<string, string> | null {
    if (this.s.startsWith('null', this.i)) {
      this.i += 4; // Option::None in Rust
      return null;
    }
    const where = `${METADATA_KEY} must be an object of string values`;
    if (this.s[this.i] !== '{') this.typeFail('E_ST_METADATA', where);
    const out: Record<string, string> = {};
    const seen = new Set<string>();
    this.members(() => {
      const at = this.i;
      const key = this.string();
      if (seen.has(key)) this.jsonFail(`duplicate ${METADATA_KEY} key ${quote(key)}`, at);
      seen.add(key);
      this.colon();
      if (this.s[this.i] !== '"') this.typeFail('E_ST_METADATA', `${METADATA_KEY} key ${quote(key)} must map to a string`);
      // defineProperty: `__proto__` is a legal key, and plain assignment would set the prototype.
      Object.defineProperty(out, key, { value: this.string(), enumerable: true, writable: true, configurable: true });
    });
    return out;
  }

  private entry(name: string): TensorInfo {
    const at = () => `tensor ${quote(name)}`;
    if (this.s[this.i] !== '{') this.typeFail('E_ST_HEADER_SHAPE', `${at()}: entry must be an object with dtype, shape and data_offsets`, name);
    let dtype: DType | undefined;
    let shape: number[] | undefined;
    let offsets: number[] | undefined;
    this.members(() => {
      const keyAt = this.i;
      const field = this.string();
      this.colon();
      const duplicate = () => this.jsonFail(`duplicate field ${quote(field)}`, keyAt);
      if (field === 'dtype') {
        if (dtype !== undefined) duplicate();
        if (this.s[this.i] !== '"') this.typeFail('E_ST_DTYPE', `${at()}: dtype must be a string`, name);
        const d = this.string();
        if (!isDType(d)) fail('E_ST_DTYPE', `${at()}: unknown dtype ${quote(d)} (known: ${DTYPES.join(', ')})`, this.file, name);
        dtype = d;
      } else if (field === 'shape') {
        if (shape !== undefined) duplicate();
        shape = this.indices('E_ST_SHAPE', `${at()}: shape`, 'an array of non-negative integers', name);
      } else if (field === 'data_offsets') {
        if (offsets !== undefined) duplicate();
        offsets = this.indices('E_ST_OFFSETS', `${at()}: data_offsets`, '[begin, end] with non-negative integers', name);
        if (offsets.length !== 2) fail('E_ST_OFFSETS', `${at()}: data_offsets must be [begin, end], found ${offsets.length} number(s)`, this.file, name);
      } else {
        // Stricter than Rust, which ignores unknown fields: a field we do not model would be dropped
        // whenever a header is rewritten (merge), so the file could not be reproduced exactly.
        fail('E_ST_HEADER_SHAPE', `${at()}: unexpected field ${quote(field)} (entries hold only dtype, shape and data_offsets)`, this.file, name);
      }
    });
    const missing = [dtype === undefined && 'dtype', shape === undefined && 'shape', offsets === undefined && 'data_offsets'].filter(Boolean);
    if (missing.length > 0) fail('E_ST_HEADER_SHAPE', `${at()}: missing field(s) ${missing.join(', ')}`, this.file, name);
    return { name, dtype: dtype!, shape: shape!, begin: offsets![0]!, end: offsets![1]! };
  }

  /** An array of usize as serde reads them: no sign, fraction or exponent (those are floats), at most u64. */
  private indices(code: SafetensorsErrorCode, field: string, expected: string, tensor: string): number[] {
    const what = `${field} must be ${expected}`;
    if (this.s[this.i] !== '[') this.typeFail(code, what, tensor);
    this.i++;
    const out: number[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      const raw = this.peekNumber();
      if (raw === undefined) this.typeFail(code, what, tensor);
      if (!/^\d+$/.test(raw) || raw.length > 20 || (raw.length === 20 && BigInt(raw) > U64_MAX)) {
        fail(code, `${what}, found the number ${clip(raw)}`, this.file, tensor);
      }
      // Rust takes any u64; numbers here stay exact only up to 2^53 - 1. No real tensor or file gets near
      // that, and for a dimension a zero elsewhere in the shape is the only way the file could be valid.
      if (raw.length >= 16 && BigInt(raw) > BigInt(Number.MAX_SAFE_INTEGER)) {
        fail('E_ST_OVERFLOW', `${field}: ${raw} exceeds 2^53 - 1`, this.file, tensor);
      }
      out.push(Number(raw));
      this.i += raw.length;
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') this.jsonFail("expected ',' or ']'", this.i - 1);
    }
  }

  private colon(): void {
    this.ws();
    if (this.s[this.i] !== ':') this.jsonFail("expected ':'");
    this.i++;
    this.ws();
  }

  private ws(): void {
    const s = this.s;
    let i = this.i;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    }
    this.i = i;
  }

  private peekNumber(): string | undefined {
    NUMBER.lastIndex = this.i;
    return NUMBER.exec(this.s)?.[0];
  }

  /** A value of the wrong JSON type: a type error if it is a JSON value at all, else a syntax error. */
  private typeFail(code: SafetensorsErrorCode, what: string, tensor?: string): never {
    const s = this.s;
    const c = s[this.i];
    const num = this.peekNumber();
    const found =
      c === '{' ? 'an object' :
      c === '[' ? 'an array' :
      c === '"' ? 'a string' :
      num !== undefined ? `the number ${clip(num)}` :
      s.startsWith('true', this.i) || s.startsWith('false', this.i) ? 'a boolean' :
      s.startsWith('null', this.i) ? 'null' : undefined;
    if (found === undefined) this.jsonFail(c === undefined ? 'unexpected end of header' : `unexpected ${JSON.stringify(c)}`);
    fail(code, `${what}, found ${found}`, this.file, tensor);
  }

  private jsonFail(what: string, at = this.i): never {
    const tensor = this.topKey === METADATA_KEY ? undefined : this.topKey;
    fail('E_ST_HEADER_JSON', `header is not valid JSON: ${what} at character ${at}${tensor === undefined ? '' : ` (in tensor ${quote(tensor)})`}`, this.file, tensor);
  }

  /** A JSON string, with the reader at its opening quote. */
  private string(): string {
    const s = this.s;
    const start = this.i;
    let i = start + 1;
    let chunk = i;
    let out = '';
    for (;;) {
      if (i >= s.length) this.jsonFail('unterminated string', start);
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        return out + s.slice(chunk, i);
      }
      if (c < 0x20) this.jsonFail('raw control character in string', i);
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += s.slice(chunk, i);
      const e = s[i + 1];
      const simple = e === undefined ? undefined : ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === 'u') {
        const unit = this.hex4(i + 2);
        if (unit >= 0xdc00 && unit <= 0xdfff) this.jsonFail('lone surrogate in \\u escape', i);
        if (unit >= 0xd800 && unit <= 0xdbff) {
          const low = s[i + 6] === '\\' && s[i + 7] === 'u' ? this.hex4(i + 8) : -1;
          if (low < 0xdc00 || low > 0xdfff) this.jsonFail('lone surrogate in \\u escape', i);
          out += String.fromCharCode(unit, low);
          i += 12;
        } else {
          out += String.fromCharCode(unit);
          i += 6;
        }
      } else {
        this.jsonFail('invalid escape', i);
      }
      chunk = i;
    }
  }

  private hex4(at: number): number {
    const digits = this.s.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(digits)) this.jsonFail('invalid \\u escape', at - 2);
    return parseInt(digits, 16);
  }
}

// ---------------------------------------------------------------------------------------------------
// Helpers

function fail(code: SafetensorsErrorCode, message: string, file?: string, tensor?: string): never {
  const data: ErrorData = {};
  if (file !== undefined) data.file = file;
  if (tensor !== undefined) data.tensor = tensor;
  throw new SafetensorsError(code, message, data);
}

/** Names are untrusted text: show them in backticks unless they hold control characters or backticks. */
function quote(name: string): string {
  return /^[^\u0000-\u001f\u007f-\u009f`]*$/.test(name) ? `\`${name}\`` : JSON.stringify(name);
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDFFF]/.test(s) && /\p{Cs}/u.test(s); // the second test sees pairs as one code point
}

/**
 * Orders strings as Rust orders `str`: by UTF-8 bytes, which is code point order. UTF-16 order (JS `<`)
 * differs only where a surrogate pair (U+10000 and up) meets a unit in U+E000..U+FFFF.
 */
function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      const surrogate = (c: number) => c >= 0xd800 && c <= 0xdfff;
      return (surrogate(x) ? x + 0x10000 : x) - (surrogate(y) ? y + 0x10000 : y);
    }
  }
  return a.length - b.length;
}

/** Offset of the first byte that breaks UTF-8, for the error message only (the decoder says no more). */
function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    const [len, lo, hi] =
      c >= 0xc2 && c <= 0xdf ? [2, 0x80, 0xbf] :
      c === 0xe0 ? [3, 0xa0, 0xbf] :
      c === 0xed ? [3, 0x80, 0x9f] :
      c >= 0xe1 && c <= 0xef ? [3, 0x80, 0xbf] :
      c === 0xf0 ? [4, 0x90, 0xbf] :
      c >= 0xf1 && c <= 0xf3 ? [4, 0x80, 0xbf] :
      c === 0xf4 ? [4, 0x80, 0x8f] : [0, 0, 0];
    if (len === 0) return i;
    for (let k = 1; k < len; k++) {
      const d = b[i + k];
      if (d === undefined || d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += len;
  }
  return -1;
}

/** Reads up to `buf.length` bytes at `position` into `buf`; returns how many (0 at the end of the file). */
export type ReadAt = (buf: Uint8Array, position: number) => number;

/**
 * The header of a safetensors file of `fileSize` bytes, read through `readAt` (the caller owns the file
 * descriptor: `(b, at) => readSync(fd, b, 0, b.length, at)`): the prefix, then exactly N header bytes,
 * with the same checks as parseSafetensors. `dataStart` is where tensor offsets count from.
 */
export function readHeaderAt(readAt: ReadAt, fileSize: number, file?: string): SafetensorsHeader & { dataStart: number } {
  const prefix = readFully(readAt, 0, Math.min(PREFIX_BYTES, fileSize));
  const n = readHeaderLength(prefix, file, fileSize);
  const headerBytes = readFully(readAt, PREFIX_BYTES, n);
  if (headerBytes.length < n) fail('E_ST_TRUNCATED_HEADER', `header is cut short at ${headerBytes.length} of ${n} bytes (file changed while reading?)`, file);
  return { ...parseHeader(headerBytes, { file, fileSize }), dataStart: PREFIX_BYTES + n };
}

function readFully(readAt: ReadAt, at: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const got = readAt(out.subarray(done), at + done);
    if (got <= 0) break;
    done += got;
  }
  return out.subarray(0, done);
}
