// How the objects of a push are cut into packs (src/remote/layout.ts), checked as properties over random
// histories: versions made of shared, private and delta-encoded chunks, some already on the host. Whatever
// the history: every object the host lacks goes up exactly once; a clone of any one version needs every
// object of every pack it touches (packs never mix what different sets of versions need); packs stay
// within the size limit; and any prefix of the publishing order holds what its objects need.

import { createCipheriv, createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { Codec } from '../../../src/store/codec.js';
import { ChunkEncoding, toPlanes, zigzagDelta } from '../../../src/store/encoding.js';
import { PackWriter } from '../../../src/store/pack.js';
import { ObjectStore, sha256 } from '../../../src/store/store.js';
import { dependenciesOf, objectClosure, plannedPackBytes } from '../../../src/store/transfer.js';
import { planUpload, userBit } from '../../../src/remote/layout.js';

function noise(seed: string, n: number): Buffer {
  return createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16)).update(Buffer.alloc(n));
}

const identity: Codec = { compress: (src) => Uint8Array.from(src), decompress: (src) => Uint8Array.from(src) };
const root = mkdtempSync(join(tmpdir(), 'git-tensor-layout-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const CHUNK = 2048;
/** 8 raw chunks, then 4 deltas: 8 against chunk 0, 9 against 1, 10 against 8 (a chain), 11 against 2. */
const raw = Array.from({ length: 8 }, (_, k) => noise(`chunk${k}`, CHUNK));
const tweak = (b: Buffer, k: number) => {
  const out = Buffer.from(b);
  out.writeUInt32LE((out.readUInt32LE(4 * k) + 1) >>> 0, 4 * k);
  return out;
};
const deltaSpecs: [number, number][] = [[8, 0], [9, 1], [10, 8], [11, 2]];
const bytesOf: Buffer[] = [...raw];
for (const [k, base] of deltaSpecs) bytesOf[k] = tweak(bytesOf[base]!, k);
const POOL = bytesOf.length;

let stores = 0;
/** A store holding the pool and one chunk list per version; returns the list ids and the pool ids. */
function buildStore(versions: number[][]): { store: ObjectStore; lists: string[]; pool: string[] } {
  const store = ObjectStore.open(join(root, `s${stores++}`), { codec: identity, compress: false });
  const w = store.beginWrite();
  for (const b of raw) w.putBlob(b);
  w.commit();
  const p = new PackWriter(store.packDir, store.tmpDir);
  for (const [k, base] of deltaSpecs) {
    const payload = Buffer.concat([sha256(bytesOf[base]!), Buffer.of(4), Buffer.from(toPlanes(zigzagDelta(bytesOf[k]!, bytesOf[base]!, 4), 4))]);
    p.append(sha256(bytesOf[k]!), ChunkEncoding.deltaPlanesZstd, CHUNK, payload, k === 10 ? 2 : 1);
  }
  p.commit();
  store.refresh();
  const pool = bytesOf.map((b) => sha256(b).toString('hex'));
  const lists = versions.map((chunks) => {
    const lw = store.beginWrite();
    const id = sha256(Buffer.concat(chunks.map((c) => bytesOf[c]!)));
    lw.putChunkList(id, chunks.length * CHUNK, chunks.map((c) => ({ id: sha256(bytesOf[c]!), length: CHUNK })));
    lw.commit();
    return id.toString('hex');
  });
  store.refresh();
  return { store, lists, pool };
}

describe('planUpload', () => {
  it('sends each missing object once, in packs that only clones needing all of them touch, published dependencies first', () => {
    const history = fc.record({
      versions: fc.array(fc.uniqueArray(fc.integer({ min: 0, max: POOL - 1 }), { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 5 }),
      onHost: fc.uniqueArray(fc.integer({ min: 0, max: POOL - 1 }), { maxLength: 4 }),
      limit: fc.integer({ min: 1000, max: 12_000 }),
    });
    fc.assert(
      fc.property(history, ({ versions, onHost, limit }) => {
        const { store, lists, pool } = buildStore(versions);
        try {
          // What the host has, it has with everything it needs (as a real host does).
          const hostHas = new Set(objectClosure(store, onHost.map((k) => pool[k]!)).present.map((o) => o.id));
          const skip = (id: string) => hostHas.has(id);
          const roots = new Map<string, bigint>();
          lists.forEach((id, k) => roots.set(id, (roots.get(id) ?? 0n) | userBit(k)));
          const { packs, absent } = planUpload(store, roots, skip, limit);
          expect(absent).toEqual([]);

          const sent = packs.flat().map((o) => o.id);
          expect(new Set(sent).size).toBe(sent.length);
          expect(new Set(sent)).toEqual(new Set(objectClosure(store, lists, skip).present.map((o) => o.id)));

          const packOf = new Map<string, number>();
          packs.forEach((p, i) => p.forEach((o) => packOf.set(o.id, i)));
          for (const p of packs) if (p.length > 1) expect(plannedPackBytes(p)).toBeLessThanOrEqual(limit);
          for (const [i, p] of packs.entries()) {
            for (const o of p) {
              for (const dep of dependenciesOf(o.loc, o.id)) if (packOf.has(dep)) expect(packOf.get(dep)!).toBeLessThanOrEqual(i);
            }
          }
          for (const list of lists) {
            const needs = new Set(objectClosure(store, [list], skip).present.map((o) => o.id));
            const touched = new Set([...needs].map((id) => packOf.get(id)!));
            for (const i of touched) for (const o of packs[i]!) expect(needs.has(o.id), `a clone of one version downloads ${o.id.slice(0, 8)} it does not need`).toBe(true);
          }
        } finally {
          store.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});
