// Owns `git tensor du`: how many bytes the tracked history stands for, and how many the store keeps,
// per encoding and per file at HEAD.

import { statSync } from 'node:fs';
import { formatBytes } from '../format/units.js';
import { Printable, table } from './printable.js';
import { Encoding } from '../store/pack.js';
import { ChunkEncoding } from '../store/encoding.js';
import { objectClosure } from '../store/transfer.js';
import { openRepo } from './context.js';
import { objectIdsOf } from '../format/pointer.js';
import { pointersAt, pointersInHistory } from './pointers.js';

const ENCODING_NAMES: Record<number, string> = {
  [Encoding.raw]: 'raw',
  [Encoding.chunkList]: 'chunk list',
  [ChunkEncoding.zstd]: 'zstd',
  [ChunkEncoding.planesZstd]: 'byte planes + zstd',
  [ChunkEncoding.deltaPlanesZstd]: 'delta + byte planes + zstd',
  [ChunkEncoding.planes]: 'byte planes, zstd each',
  [ChunkEncoding.deltaPlanes]: 'delta + byte planes, zstd each',
};

export async function du(_opts: object): Promise<Printable> {
  const { store } = openRepo();
  let packBytes = 0;
  const byEncoding = new Map<number, { objects: number; decodedBytes: number; storedBytes: number }>();
  const seen = new Set<string>();
  for (const p of store.packFiles) {
    packBytes += statSync(p.packPath).size + statSync(p.idxPath).size;
    for (const e of p.entries()) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      const row = byEncoding.get(e.encoding) ?? { objects: 0, decodedBytes: 0, storedBytes: 0 };
      row.objects++;
      row.storedBytes += e.payloadLength;
      if (e.encoding !== Encoding.chunkList) row.decodedBytes += e.decodedSize;
      byEncoding.set(e.encoding, row);
    }
  }
  const history = await pointersInHistory();
  const logical = history.reduce((s, p) => s + p.pointer.size, 0);
  const head = await pointersAt('HEAD').catch(() => []);
  const files = head.map((f) => {
    // Bytes this version needs from the store (objects shared with other versions counted in full).
    const { present } = objectClosure(store, objectIdsOf(f.pointer));
    const stored = present.reduce((s, o) => s + o.loc.payloadLength, 0);
    return { path: f.path, logicalBytes: f.pointer.size, storedBytes: stored, ratio: f.pointer.size ? stored / f.pointer.size : null };
  });
  const encodings = [...byEncoding].sort((a, b) => a[0] - b[0]).map(([enc, r]) => ({
    encoding: ENCODING_NAMES[enc] ?? `encoding ${enc}`, ...r, ratio: r.decodedBytes ? r.storedBytes / r.decodedBytes : null,
  }));
  const data = {
    store: { dir: store.dir, packs: store.packFiles.length, objects: seen.size, bytes: packBytes, compression: store.compress },
    history: { versions: history.length, logicalBytes: logical, ratio: logical ? packBytes / logical : null },
    encodings,
    head: files,
  };
  const pct = (r: number | null) => (r === null ? '-' : `${(100 * r).toFixed(1)}%`);
  const text = [
    `tensor store: ${formatBytes(packBytes)} in ${seen.size} objects, ${store.packFiles.length} pack(s)` + (store.compress ? '' : ' (compression off)'),
    `history: ${history.length} checkpoint version(s), ${formatBytes(logical)} logical` + (logical ? `; stored/logical = ${pct(packBytes / logical)}` : ''),
  ];
  if (encodings.length) {
    text.push('by encoding:', ...table([['  encoding', 'objects', 'decoded', 'stored', 'ratio'],
      ...encodings.map((e) => ['  ' + e.encoding, String(e.objects), formatBytes(e.decodedBytes), formatBytes(e.storedBytes), pct(e.ratio)])], [1, 2, 3, 4]));
  }
  if (files.length) {
    // A version stored as deltas needs its bases too, which older versions share: the column can exceed
    // the file's own size without anything being stored twice.
    text.push('at HEAD (what each file needs from the store, delta bases included):', ...table([['  file', 'logical', 'needs', 'ratio'],
      ...files.map((f) => ['  ' + f.path, formatBytes(f.logicalBytes), formatBytes(f.storedBytes), pct(f.ratio)])], [1, 2, 3]));
  }
  return { data, text };
}
