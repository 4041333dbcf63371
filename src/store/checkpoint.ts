// Owns the mapping between a tracked file and its pointer: `Ingest` streams a file's bytes into the store
// and yields the pointer (clean), `restore` streams the exact bytes back from a pointer (smudge).
// Cutting, hashing and storing each tensor (or opaque file) is object-builder.ts's; this module parses
// and checks. Memory stays bounded: the header plus a few batches of chunks, whatever the file size.

import { ExitCode, GitTensorError, PointerError, SafetensorsError } from '../errors/index.js';
import {
  badPointerHint, checkPointerSize, hasConflictMarkers, looksLikePointer, MAX_POINTER_BYTES, objectIdsOf, parsePointer, Pointer, pointerTensorLengths,
  PointerTensor, serializePointer,
} from '../format/pointer.js';
import { parseHeader, readHeaderLength, SafetensorsHeader, TensorInfo } from '../format/safetensors.js';
import { CDC_MAX, GearChunker } from './chunking.js';
import { ChunkedObjectBuilder, InFlight, tensorObjectBuilder } from './object-builder.js';
import { ObjectStore, ObjectWriter } from './store.js';

/** Files with this suffix must parse as safetensors; any other tracked file is stored opaquely. */
export function isSafetensorsPath(path: string): boolean {
  return path.toLowerCase().endsWith('.safetensors');
}

const CONFLICT_PREFIX = Buffer.from('<<<<<<<', 'latin1');
const PREFIX_SNIFF_BYTES = 16;

/**
 * Streams one file into the store. Feed it with `push`, then `finish()` returns the pointer text.
 * Objects go to `writer`; the caller commits the writer only when `finish()` succeeds. The bytes given
 * to `push` are only valid during the call (the filter process reads git's pipe into a few reused
 * buffers, git/pipes.ts): whatever is kept longer is copied.
 */
export class Ingest {
  private sniff: Buffer[] = [];
  private sniffBytes = 0;
  private sink: Sink | undefined;
  private readonly inFlight = new InFlight();

  /**
   * `previous` is the version git has for this path now (its index entry), when there is one: its
   * chunks are the delta bases of this version's chunks.
   */
  constructor(
    private readonly writer: ObjectWriter,
    private readonly file: string,
    private readonly previous?: Pointer,
  ) {}

  /** Takes the next bytes; waits while the store is behind (a few batches of chunks in flight). */
  async push(bytes: Buffer): Promise<void> {
    if (this.sink) {
      this.sink.push(bytes);
      return this.inFlight.settle();
    }
    this.sniff.push(Buffer.from(bytes));
    this.sniffBytes += bytes.length;
    if (this.sniffBytes >= PREFIX_SNIFF_BYTES) this.choose();
  }

  async finish(): Promise<string> {
    if (!this.sink) this.choose();
    return this.sink!.finish();
  }

  /** Decides from the first bytes and the name what this file is, then replays them into that sink. */
  private choose(): void {
    const head = Buffer.concat(this.sniff);
    if (looksLikePointer(head) || head.subarray(0, CONFLICT_PREFIX.length).equals(CONFLICT_PREFIX)) {
      this.sink = new PointerPassThrough(this.writer.store, this.file);
    }
    else if (isSafetensorsPath(this.file)) {
      this.sink = new SafetensorsSink(this.writer, this.inFlight, this.file, this.previous?.kind === 'safetensors' ? this.previous.tensors : []);
    }
    else this.sink = new OpaqueSink(this.writer, this.inFlight);
    this.sniff = [];
    this.sink.push(head);
  }
}

interface Sink {
  push(bytes: Buffer): void;
  finish(): Promise<string>;
}

/**
 * A pointer given to clean (e.g. `git add` of a file left as a pointer) is validated against the store and
 * kept as is: a hand-edited pointer is refused here rather than committed.
 */
class PointerPassThrough implements Sink {
  private parts: Buffer[] = [];
  private size = 0;
  constructor(private readonly store: ObjectStore, private readonly file: string) {}

  push(bytes: Buffer): void {
    this.size += bytes.length;
    if (this.size > MAX_POINTER_BYTES) {
      throw new PointerError('E_POINTER_SYNTAX', `${this.file}: starts like a pointer but is larger than ${MAX_POINTER_BYTES} bytes`, { file: this.file });
    }
    this.parts.push(Buffer.from(bytes));
  }

  async finish(): Promise<string> {
    const text = Buffer.concat(this.parts).toString('utf8');
    if (hasConflictMarkers(text) && !looksLikePointer(Buffer.from(text))) {
      throw new PointerError('E_POINTER_CONFLICT', `${this.file} contains git conflict markers, not a checkpoint`, { file: this.file },
        `Finish the merge with \`git tensor resolve ${this.file} --strategy <name>\`, or take one side: \`git checkout --ours -- ${this.file}\` (or --theirs).`);
    }
    validatePointer(this.store, parsePointer(text, this.file), this.file);
    return text;
  }
}

class OpaqueSink implements Sink {
  private readonly chunker = new GearChunker();
  /** CDC_MAX as the builder's size: only the gear hash decides where chunks end. */
  private readonly object: ChunkedObjectBuilder;
  private streamPos = 0;

  constructor(writer: ObjectWriter, inFlight: InFlight) {
    this.object = new ChunkedObjectBuilder({ writer, inFlight, chunkBytes: CDC_MAX });
  }

  push(bytes: Buffer): void {
    let from = 0;
    for (const cut of this.chunker.push(bytes)) {
      const rel = cut - this.streamPos;
      this.object.push(bytes.subarray(from, rel));
      this.object.cut();
      from = rel;
    }
    this.object.push(bytes.subarray(from));
    this.streamPos += bytes.length;
  }

  async finish(): Promise<string> {
    const size = this.object.size;
    return serializePointer({ kind: 'opaque', size, id: await this.object.finish() });
  }
}

class SafetensorsSink implements Sink {
  private phase: 'prefix' | 'header' | 'data' = 'prefix';
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private headerLength = 0;
  private header: SafetensorsHeader | undefined;
  private headerId = '';
  private tensorIndex = 0;
  private tensorRemaining = 0;
  private object: ChunkedObjectBuilder | undefined;
  private readonly ids: Promise<string>[] = [];

  private readonly previous: Map<string, PointerTensor>;

  constructor(private readonly writer: ObjectWriter, private readonly inFlight: InFlight, private readonly file: string, previous: PointerTensor[]) {
    this.previous = new Map(previous.map((t) => [t.name, t]));
  }

  push(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length) {
      if (this.phase === 'data') {
        at = this.pushData(bytes, at);
        continue;
      }
      const need = (this.phase === 'prefix' ? 8 : this.headerLength) - this.pendingBytes;
      const k = Math.min(need, bytes.length - at);
      this.pending.push(Buffer.from(bytes.subarray(at, at + k)));
      this.pendingBytes += k;
      at += k;
      if (k === need) this.advanceHeader();
    }
  }

  async finish(): Promise<string> {
    if (this.phase === 'prefix') {
      readHeaderLength(Buffer.concat(this.pending), this.file); // throws: file shorter than its 8-byte prefix
    }
    if (this.phase === 'header') {
      throw new SafetensorsError('E_ST_TRUNCATED_HEADER',
        `header declares ${this.headerLength} bytes but the file ends after ${this.pendingBytes}`, { file: this.file });
    }
    const h = this.header!;
    if (this.tensorIndex < h.tensors.length) {
      const t = h.tensors[this.tensorIndex]!;
      throw new SafetensorsError('E_ST_TRUNCATED_DATA',
        `file ends inside the data of tensor \`${t.name}\` (${this.tensorRemaining} of its bytes missing)`, { file: this.file, tensor: t.name });
    }
    const ids = await Promise.all(this.ids);
    const tensors: PointerTensor[] = h.tensors.map((t, k) => ({ name: t.name, dtype: t.dtype, shape: t.shape, id: ids[k]! }));
    return serializePointer({
      kind: 'safetensors',
      size: 8 + this.headerLength + h.dataLength,
      header: { id: this.headerId, length: this.headerLength },
      metadata: h.metadata === null ? null : Object.entries(h.metadata),
      tensors,
    });
  }

  private advanceHeader(): void {
    const bytes = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.phase === 'prefix') {
      this.headerLength = readHeaderLength(bytes, this.file);
      this.phase = 'header';
      if (this.headerLength === 0) this.advanceHeader();
      return;
    }
    this.header = parseHeader(bytes, { file: this.file });
    this.headerId = this.writer.putBlob(bytes).toString('hex');
    this.phase = 'data';
    this.startTensor();
  }

  /** Opens the next tensor, closing any zero-byte ones on the way. */
  private startTensor(): void {
    const tensors = this.header!.tensors;
    while (this.tensorIndex < tensors.length) {
      const t = tensors[this.tensorIndex]!;
      this.tensorRemaining = t.end - t.begin;
      this.object = tensorObjectBuilder({ writer: this.writer, inFlight: this.inFlight, dtype: t.dtype, shape: t.shape, related: this.previous.get(t.name) });
      if (this.tensorRemaining > 0) return;
      this.finishTensor();
      this.tensorIndex++;
    }
    this.object = undefined;
  }

  private finishTensor(): void {
    const id = this.object!.finish();
    this.inFlight.add(id);
    this.ids.push(id);
  }

  private pushData(bytes: Buffer, at: number): number {
    if (!this.object) {
      throw new SafetensorsError('E_ST_TRAILING_DATA',
        `${bytes.length - at} or more bytes follow the last tensor's data (header says the data section is ${this.header!.dataLength} bytes)`,
        { file: this.file });
    }
    const k = Math.min(this.tensorRemaining, bytes.length - at);
    this.object.push(bytes.subarray(at, at + k));
    this.tensorRemaining -= k;
    if (this.tensorRemaining === 0) {
      this.finishTensor();
      this.tensorIndex++;
      this.startTensor();
    }
    return at + k;
  }
}

export interface RestorePlan {
  pointer: Pointer;
  /** Ids the store lacks; restore() fails if any. */
  missing: string[];
}

export function planRestore(store: ObjectStore, pointerText: string, file: string): RestorePlan {
  const pointer = parsePointer(pointerText, file);
  return { pointer, missing: store.missing(objectIdsOf(pointer)) };
}

/**
 * The exact bytes of the file the pointer stands for, verifying every chunk on the way. The pointer is
 * validated against the store first (validatePointer), so a pointer that would give wrong bytes fails
 * here, before the generator yields anything.
 */
export function restore(store: ObjectStore, pointer: Pointer, file: string): AsyncGenerator<Buffer> {
  const headerBytes = validate(store, pointer, file);
  return restoreValidated(store, pointer, file, headerBytes);
}

async function* restoreValidated(store: ObjectStore, pointer: Pointer, file: string, headerBytes: Buffer | null): AsyncGenerator<Buffer> {
  if (pointer.kind === 'opaque') {
    yield* store.streamChunks(pointer.id, { file });
    return;
  }
  // planRestore found every object present, so validate() read the header.
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes!.length));
  yield prefix;
  yield headerBytes!;
  for (const t of pointer.tensors) yield* store.streamChunks(t.id, { file, tensor: t.name });
}

/**
 * The one check of a pointer against the store, shared by checkout (restore), clean's pointer
 * pass-through, merges, diffs and fsck: the pointer is consistent in itself (checkPointer: known dtypes,
 * unique names, sizes adding up); its header object holds `length` bytes, parses, and lists the same
 * tensors (names, dtypes, shapes, order) and the same `__metadata__` as the pointer's lines; and each
 * tensor object holds the bytes its dtype and shape need. Objects the store lacks are not checked (the
 * caller reports or fetches them, then validates again). Throws E_POINTER_INVALID or E_POINTER_MISMATCH
 * (exit 3) naming the file and tensor, with the `git tensor fsck` hint.
 */
export function validatePointer(store: ObjectStore, pointer: Pointer, file: string): void {
  validate(store, pointer, file);
}

/** validatePointer; returns the header bytes when it read them. */
function validate(store: ObjectStore, pointer: Pointer, file: string): Buffer | null {
  const mismatch = (what: string, tensor?: string): never => {
    throw new GitTensorError('E_POINTER_MISMATCH', `${file}: pointer does not match the store: ${what}`, {
      data: { file, tensor }, exitCode: ExitCode.badInput, hint: badPointerHint(file),
    });
  };
  const holds = (id: string): number | undefined => store.locate(id)?.decodedSize;
  if (pointer.kind === 'opaque') {
    const size = holds(pointer.id);
    if (size !== undefined && size !== pointer.size) mismatch(`object ${pointer.id.slice(0, 16)} holds ${size} bytes, the pointer says ${pointer.size}`);
    return null;
  }
  // Tensor objects first: a hand-edited id or shape is then named by its tensor.
  const lengths = pointerTensorLengths(pointer, file);
  pointer.tensors.forEach((t, k) => {
    const size = holds(t.id);
    if (size !== undefined && size !== lengths[k]) {
      mismatch(`tensor \`${t.name}\` object ${t.id.slice(0, 16)} holds ${size} bytes, its dtype and shape need ${lengths[k]}`, t.name);
    }
  });
  let headerBytes: Buffer | null = null;
  const headerSize = holds(pointer.header.id);
  if (headerSize !== undefined) {
    if (headerSize !== pointer.header.length) {
      mismatch(`header object ${pointer.header.id.slice(0, 16)} holds ${headerSize} bytes, the pointer says ${pointer.header.length}`);
    }
    headerBytes = store.read(pointer.header.id, { file });
    let header: SafetensorsHeader;
    try {
      header = parseHeader(headerBytes, { file });
    } catch (err) {
      if (!(err instanceof GitTensorError)) throw err;
      return mismatch(`header object ${pointer.header.id.slice(0, 16)} is not a safetensors header (${err.message})`);
    }
    if (header.tensors.length !== pointer.tensors.length) mismatch(`${pointer.tensors.length} tensors listed, the header has ${header.tensors.length}`);
    header.tensors.forEach((t: TensorInfo, k: number) => {
      const p = pointer.tensors[k]!;
      if (p.name !== t.name || p.dtype !== t.dtype || p.shape.join() !== t.shape.join()) {
        mismatch(`tensor \`${p.name}\` is ${p.dtype} [${p.shape.join(', ')}] in the pointer, \`${t.name}\` ${t.dtype} [${t.shape.join(', ')}] in the header`, p.name);
      }
    });
    const stored = header.metadata === null ? null : Object.entries(header.metadata);
    if (JSON.stringify(stored) !== JSON.stringify(pointer.metadata)) {
      mismatch(`its metadata lines say ${JSON.stringify(pointer.metadata)}, the header's __metadata__ ${JSON.stringify(stored)}`);
    }
  }
  checkPointerSize(pointer, lengths, file);
  return headerBytes;
}

/** Stores raw bytes (a header) as one object. */
export function storeBlob(writer: ObjectWriter, data: Uint8Array): string {
  return writer.putBlob(data).toString('hex');
}
