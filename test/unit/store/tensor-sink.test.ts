// TensorSink (a merge's result, stored block by block) against clean (`git add` of a file holding the
// same tensor): the same id, the same chunks, the same encodings (deltas against the related version)
// and the same bytes written, whatever the sizes of the blocks and whether ours' bytes come with them.

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parsePointer, type Pointer, type PointerTensor } from '../../../src/format/pointer.js';
import { serializeSafetensors } from '../../../src/format/safetensors.js';
import { Ingest } from '../../../src/store/checkpoint.js';
import { storeCodec } from '../../../src/store/codec.js';
import { ObjectStore } from '../../../src/store/store.js';
import { TensorSink } from '../../../src/store/tensor-sink.js';

type SafetensorsPointer = Extract<Pointer, { kind: 'safetensors' }>;

/** F32 rows of 4000 bytes: chunks of 16 rows, more than one 4 MiB batch, a short last chunk. */
const SHAPE = [1100, 1000];
const v0 = Float32Array.from({ length: SHAPE[0]! * SHAPE[1]! }, (_, i) => Math.sin(i) * 0.05);
/** A fine-tune of v0: every 40th element, so every chunk is new and deltas well against v0's. */
const v1 = Float32Array.from(v0, (x, i) => (i % 40 === 0 ? x + 1e-3 : x));
const u8 = (f: Float32Array) => new Uint8Array(f.buffer);

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'gt-sink-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fresh store holding v0 as `git add` stored it; its pointer tensor. */
async function storeWithBase(name: string): Promise<{ store: ObjectStore; base: SafetensorsPointer }> {
  const store = ObjectStore.open(join(root, name), { codec: storeCodec() });
  const w = store.beginWrite();
  const ing = new Ingest(w, 'm.safetensors');
  await ing.push(serializeSafetensors([{ name: 'w', dtype: 'F32', shape: SHAPE, data: u8(v0) }]));
  const text = await ing.finish();
  w.commit();
  return { store, base: parsePointer(text) as SafetensorsPointer };
}

/** What the store holds for object `id`: each chunk's id, length, encoding, delta depth and payload size. */
function records(store: ObjectStore, id: string): string[] {
  return store.chunksOf(id)!.map((c) => {
    const loc = store.locate(c.id)!;
    return `${c.id.toString('hex')} ${c.length} enc ${loc.encoding} depth ${loc.depth} payload ${loc.payloadLength}`;
  });
}

describe.skipIf(!storeCodec())('TensorSink stores a merged tensor as git add stores the same bytes', () => {
  let added: { id: string; written: number; records: string[] };

  beforeEach(async () => {
    // git add of v1 with v0 as the previous version (its index entry), as a fine-tune is added.
    const { store, base } = await storeWithBase('added');
    const w = store.beginWrite();
    const ing = new Ingest(w, 'm.safetensors', base);
    await ing.push(serializeSafetensors([{ name: 'w', dtype: 'F32', shape: SHAPE, data: u8(v1) }]));
    const id = (parsePointer(await ing.finish()) as SafetensorsPointer).tensors[0]!.id;
    w.commit();
    added = { id, written: w.bytesWritten, records: records(store, id) };
    store.close();
  });

  it.each([
    ['blocks of whole chunks with ours\' bytes, as a merge pushes them', 'aligned', true],
    ['blocks of whole chunks, ours read back from the store', 'aligned', false],
    ['blocks that cut chunks in two, with ours\' bytes', 'odd', true],
    ['one byte, then blocks that cut chunks in two, no ours', 'odd', false],
  ] as const)('%s', async (_, blocks, withOurs) => {
    const { store, base } = await storeWithBase(`${blocks}-${withOurs}`);
    try {
      const related: PointerTensor = base.tensors[0]!;
      const w = store.beginWrite();
      const sink = new TensorSink(w, 'F32', SHAPE, related);
      const sizes = blocks === 'aligned' ? [sink.blockBytes] : [1, sink.chunkBytes * 3 + 5, 777_777];
      const data = u8(v1);
      const ours = u8(v0);
      // One block buffer, refilled for every push: the sink copies the block (it may keep ours' bytes
      // until the push after next, not the block's).
      const block = new Uint8Array(Math.max(...sizes));
      for (let at = 0, k = 0; at < data.length; k++) {
        const n = Math.min(sizes[Math.min(k, sizes.length - 1)]!, data.length - at);
        block.set(data.subarray(at, at + n));
        await sink.push(block.subarray(0, n), withOurs ? ours.subarray(at, at + n) : undefined);
        at += n;
      }
      const id = await sink.finish();
      w.commit();
      expect(id).toBe(createHash('sha256').update(data).digest('hex'));
      expect(id).toBe(added.id);
      expect(records(store, id)).toEqual(added.records);
      expect(added.records.some((r) => / depth 1 /.test(r))).toBe(true); // deltas against v0, not copies
      expect(w.bytesWritten).toBe(added.written);
      expect((await store.readAsync(id)).equals(Buffer.from(data))).toBe(true);
    } finally {
      store.close();
    }
  });
});
