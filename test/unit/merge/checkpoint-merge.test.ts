// mergeCheckpoint against a real store with compression: both sides stored as deltas against the base
// (as `git add` stores fine-tunes), merged tensor by tensor in reused buffers, checked against a merge
// computed here in plain JavaScript; and a pointer whose shape does not match its object is named.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Pointer, PointerTensor } from '../../../src/format/pointer.js';
import { parsePointer } from '../../../src/format/pointer.js';
import { parseHeader, serializeHeader, tensorByteLength } from '../../../src/format/safetensors.js';
import { storeCodec } from '../../../src/store/codec.js';
import { mergeCheckpoint } from '../../../src/merge/checkpoint-merge.js';
import { storeBlob } from '../../../src/store/checkpoint.js';
import { storeTensor } from '../../../src/store/tensor-sink.js';
import { ObjectStore } from '../../../src/store/store.js';

type SafetensorsPointer = Extract<Pointer, { kind: 'safetensors' }>;

let root: string;
let store: ObjectStore;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'gt-ckpt-merge-'));
  store = ObjectStore.open(root, { codec: storeCodec() ?? undefined });
});
afterEach(() => {
  store.close();
  rmSync(root, { recursive: true, force: true });
});

/** Tensors of different sizes, so the reused buffers are cut to each in turn. */
const SHAPES: Record<string, number[]> = { 'l.0.w': [64, 256], 'l.1.w': [16, 32], 'l.2.w': [128, 256], 'l.3.b': [7] };

function values(shape: number[], seed: number, from?: Float32Array): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, (_, i) => (from ? from[i]! + 1e-3 * Math.sin(seed * 7 + i) : Math.cos(seed + i * 0.37)));
}

async function version(tensors: Record<string, Float32Array>, related?: SafetensorsPointer): Promise<SafetensorsPointer> {
  const w = store.beginWrite();
  const out: PointerTensor[] = [];
  for (const [name, v] of Object.entries(tensors)) {
    const rel = related?.tensors.find((t) => t.name === name);
    out.push({ name, dtype: 'F32', shape: SHAPES[name]!, id: await storeTensor(w, 'F32', SHAPES[name]!, new Uint8Array(v.buffer), rel) });
  }
  // A real header, so the pointer is what `git add` would write for these tensors (merges validate it).
  const header = serializeHeader(out.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, byteLength: tensorByteLength('F32', t.shape) })), null);
  const headerId = storeBlob(w, header.headerBytes);
  w.commit();
  const byName = new Map(out.map((t) => [t.name, t]));
  return {
    kind: 'safetensors', size: 8 + header.headerBytes.length + header.dataLength, header: { id: headerId, length: header.headerBytes.length },
    metadata: null, tensors: parseHeader(header.headerBytes).tensors.map((t) => byName.get(t.name)!),
  };
}

describe('mergeCheckpoint', () => {
  it('merges delta-stored fine-tunes tensor by tensor to what task arithmetic computes', async () => {
    const o = Object.fromEntries(Object.entries(SHAPES).map(([n, s], k) => [n, values(s, k)]));
    const a = Object.fromEntries(Object.entries(o).map(([n, v], k) => [n, values(SHAPES[n]!, 10 + k, v)]));
    const b = Object.fromEntries(Object.entries(o).map(([n, v], k) => [n, values(SHAPES[n]!, 20 + k, v)]));
    const base = await version(o);
    const ours = await version(a, base);
    const theirs = await version(b, base);
    const w = store.beginWrite();
    const r = await mergeCheckpoint(store, w, { path: 'm.safetensors', base, ours, theirs, rules: [], override: { name: 'task-arithmetic' } });
    w.commit();
    expect(r.clean).toBe(true);
    const merged = parsePointer(r.pointer) as SafetensorsPointer;
    for (const t of merged.tensors) {
      const bytes = await store.readAsync(t.id);
      const got = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
      expect(got.length).toBe(o[t.name]!.length);
      const want = o[t.name]!.map((x, i) => Math.fround(Math.fround(x + Math.fround(a[t.name]![i]! - x)) + Math.fround(b[t.name]![i]! - x)));
      let worst = 0;
      got.forEach((g, i) => (worst = Math.max(worst, Math.abs(g - want[i]!))));
      expect(worst, t.name).toBeLessThan(1e-6);
    }
  });

  it('names the tensor whose pointer shape does not match its stored object', async () => {
    const o = { 'l.0.w': values(SHAPES['l.0.w']!, 1) };
    const base = await version(o);
    const ours = await version({ 'l.0.w': values(SHAPES['l.0.w']!, 2, o['l.0.w']) }, base);
    const theirs = await version({ 'l.0.w': values(SHAPES['l.0.w']!, 3, o['l.0.w']) }, base);
    const edit = (p: SafetensorsPointer): SafetensorsPointer => ({ ...p, tensors: p.tensors.map((t) => ({ ...t, shape: [32, 256] })) });
    await expect(mergeCheckpoint(store, store.beginWrite(), { path: 'm.safetensors', base: edit(base), ours: edit(ours), theirs: edit(theirs), rules: [], override: { name: 'task-arithmetic' } }))
      .rejects.toThrow(expect.objectContaining({ code: 'E_POINTER_MISMATCH', message: expect.stringContaining('tensor `l.0.w`') }));
  });
});
