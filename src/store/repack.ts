// Owns the pack `git tensor gc` writes: the objects it keeps, payloads copied as they are, except raw
// chunks, which are compressed on the way (byte planes, encoding 5). `git add` writes a new checkpoint's
// chunks raw so that it runs at the speed of hashing and writing (docs/store.md, "Writing fast,
// compressing later"); gc, which has the time, gives them the encoding `git add` used to.

import { CorruptObjectError } from '../errors/index.js';
import { dtypeBits, dtypeKind, isDType } from '../format/dtype.js';
import type { Pointer } from '../format/pointer.js';
import { chunkBatches } from '../kernels/chunks.js';
import { removeDeadWritersFiles } from './atomic.js';
import { CDC_MAX } from './chunking.js';
import { IdMap, IdSet } from './id-set.js';
import { EncodeHint, encodeChunks } from './encoding.js';
import { Encoding, PackWriter, RECORD_KEPT_RAW } from './pack.js';
import { ObjectStore, sha256 } from './store.js';
import type { LocatedObject } from './transfer.js';

/** How to compress a chunk: its element width and whether the elements are floats. */
export type ChunkHint = Omit<EncodeHint, 'base'>;

/** Chunks are read, verified and compressed in groups of about this many bytes, two groups at once. */
const GROUP_BYTES = 4 * 1024 * 1024;
const GROUPS_IN_FLIGHT = 2;
/** A group closes at the payload that takes it past GROUP_BYTES; raw chunks are at most CDC_MAX. */
const MAX_GROUPED_PAYLOAD = CDC_MAX;

/**
 * The element layout of every chunk of the objects `pointers` name, by chunk id: a tensor's dtype gives
 * its chunks' width (clean cuts and compresses them the same way), an opaque file's chunks are bytes.
 * Headers get none: they are small and stay raw. A chunk shared by tensors of different dtypes keeps the
 * first layout found. Kept as a byte per chunk in an IdMap (an index into the few layouts there are):
 * gc holds this for every chunk in history.
 */
export class ChunkHints {
  private readonly byId = new IdMap();
  private readonly layouts: ChunkHint[] = [];

  static of(store: ObjectStore, pointers: Iterable<Pointer>): ChunkHints {
    const hints = new ChunkHints();
    const done = new IdSet();
    const add = (id: string, hint: ChunkHint) => {
      if (!done.add(id)) return;
      const loc = store.locate(id, false);
      if (!loc) return;
      if (loc.encoding === Encoding.chunkList) for (const c of store.chunkRefs(id, loc)) hints.add(c.id, hint);
      else hints.add(id, hint);
    };
    for (const p of pointers) {
      if (p.kind === 'opaque') add(p.id, { width: 1 });
      else {
        for (const t of p.tensors) {
          if (!isDType(t.dtype)) continue; // a pointer fsck reports; its chunks are kept as they are
          const bits = dtypeBits(t.dtype);
          add(t.id, { width: bits % 8 === 0 ? bits / 8 : 1, float: dtypeKind(t.dtype) === 'float' && bits >= 16 });
        }
      }
    }
    return hints;
  }

  /** Hints given chunk by chunk (the first one given for a chunk stays). */
  static from(entries: Iterable<[Buffer | string, ChunkHint]>): ChunkHints {
    const hints = new ChunkHints();
    for (const [id, hint] of entries) hints.add(id, hint);
    return hints;
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): ChunkHint | undefined {
    const k = this.byId.get(id);
    return k === undefined ? undefined : this.layouts[k];
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  private add(id: Buffer | string, hint: ChunkHint): void {
    if (this.byId.has(id)) return;
    let k = this.layouts.findIndex((h) => h.width === hint.width && h.float === hint.float);
    if (k < 0) k = this.layouts.push(hint) - 1;
    this.byId.set(id, k);
  }
}

/** A raw object no gc has tried to compress yet (it still has to be a chunk with a hint). */
export function wantsCompression(o: LocatedObject): boolean {
  return o.loc.encoding === Encoding.raw && (o.loc.flags & RECORD_KEPT_RAW) === 0;
}

/**
 * Writes a pack into `packDir` holding exactly `objects`. Raw chunks with a hint are read in groups,
 * checked against their ids (a damaged chunk stops the repack: nothing is written over a store that is
 * already wrong) and compressed where that pays, off the JS thread when the addon is there; every other
 * payload is copied as it is. Returns the pack's name (null when `objects` is empty) and how many chunks
 * were compressed.
 */
export async function repackObjects(store: ObjectStore, objects: Iterable<LocatedObject>, hints: ChunkHints): Promise<{ name: string | null; compressed: number }> {
  removeDeadWritersFiles(store.tmpDir);
  // Through the page cache: what gc writes is what the next checkout reads, and gc's time goes to zstd.
  const writer = new PackWriter(store.packDir, store.tmpDir);
  const batches = chunkBatches();
  const codec = store.compress ? store.codec : null;
  const groups: Promise<void>[] = [];
  let compressed = 0;
  /** Raw chunks waiting for compression, by hint (a group shares one width and float flag). */
  const waiting = new Map<string, { hint: ChunkHint; objects: LocatedObject[]; bytes: number }>();

  // Each group is read into one of these, reused from group to group: a fresh buffer per chunk made
  // gigabytes of garbage, and the process's peak grew with the store (docs/store.md, "The 14 GiB run").
  const spare: Buffer[] = [];
  const encodeGroup = async (hint: ChunkHint, group: LocatedObject[], bytes: number): Promise<void> => {
    const buffer = spare.pop() ?? Buffer.allocUnsafe(GROUP_BYTES + MAX_GROUPED_PAYLOAD);
    const joined = bytes <= buffer.length ? buffer.subarray(0, bytes) : Buffer.allocUnsafe(bytes);
    let at = 0;
    const payloads = group.map((o) => o.loc.pack.readInto(o.loc, joined.subarray(at, (at += o.loc.payloadLength)), o.id));
    const lengths = payloads.map((p) => p.length);
    const digests = batches ? await batches.hash(joined, Uint32Array.from(lengths)) : Buffer.concat(payloads.map((p) => sha256(p)));
    group.forEach((o, k) => {
      if (!digests.subarray(32 * k, 32 * k + 32).equals(Buffer.from(o.id, 'hex'))) {
        throw new CorruptObjectError(o.id, `content hashes to ${digests.toString('hex', 32 * k, 32 * k + 8)}`, { file: o.loc.pack.packPath });
      }
    });
    const encoded = await encodeChunks(payloads.map((bytes) => ({ bytes })), hint, codec!, batches?.compressPlanes);
    group.forEach((o, k) => {
      const e = encoded[k];
      if (e) compressed++;
      writer.append(Buffer.from(o.id, 'hex'), e ? e.encoding : Encoding.raw, o.loc.decodedSize, e ? e.payload : payloads[k]!, e ? e.depth : 0, e ? 0 : RECORD_KEPT_RAW);
    });
    writer.flush(); // the chunks kept raw are views of `joined`
    spare.push(buffer);
  };
  const submit = async (key: string): Promise<void> => {
    const w = waiting.get(key)!;
    waiting.delete(key);
    const group = encodeGroup(w.hint, w.objects, w.bytes);
    group.catch(() => undefined); // awaited below; this only keeps Node from calling it unhandled
    groups.push(group);
    while (groups.length >= GROUPS_IN_FLIGHT) await groups.shift();
  };

  // In file order: the reads are then sequential (readahead works, even on a pack written past the page
  // cache), and the order of entries in a pack means nothing to readers.
  const ordered = [...objects].sort((a, b) => (a.loc.pack === b.loc.pack ? a.loc.payloadOffset - b.loc.payloadOffset : a.loc.pack.packPath < b.loc.pack.packPath ? -1 : 1));
  try {
    for (const o of ordered) {
      const hint = codec && wantsCompression(o) ? hints.get(o.id) : undefined;
      if (!hint) {
        writer.append(Buffer.from(o.id, 'hex'), o.loc.encoding, o.loc.decodedSize, o.loc.pack.read(o.loc, o.loc.payloadLength, o.id), o.loc.depth, o.loc.flags & RECORD_KEPT_RAW);
        continue;
      }
      const key = `${hint.width}:${hint.float === true}`;
      const w = waiting.get(key) ?? { hint, objects: [], bytes: 0 };
      waiting.set(key, w);
      w.objects.push(o);
      w.bytes += o.loc.payloadLength;
      if (w.bytes >= GROUP_BYTES) await submit(key);
    }
    for (const key of [...waiting.keys()]) await submit(key);
    await Promise.all(groups);
    return { name: writer.commit(), compressed };
  } catch (err) {
    await Promise.allSettled(groups);
    writer.abort();
    throw err;
  }
}
