// Owns `git tensor du`: how many bytes the tracked history stands for, and how many the store keeps.

import { statSync } from 'node:fs';
import { formatBytes, Printable, table } from '../cli/output.js';
import { openRepo } from './context.js';
import { pointersAt, pointersInHistory } from './pointers.js';

export async function du(_opts: object): Promise<Printable> {
  const { store } = openRepo();
  let packBytes = 0;
  let objects = 0;
  for (const p of store.packFiles) {
    packBytes += statSync(p.packPath).size + statSync(p.idxPath).size;
    objects += p.count;
  }
  const history = await pointersInHistory();
  const logical = history.reduce((s, p) => s + p.pointer.size, 0);
  const head = await pointersAt('HEAD').catch(() => []);
  const files = head.map((f) => ({ path: f.path, logical: f.pointer.size }));
  const data = {
    store: { dir: store.dir, packs: store.packFiles.length, objects, bytes: packBytes },
    history: { versions: history.length, logicalBytes: logical, ratio: logical ? packBytes / logical : null },
    head: files,
  };
  const text = [
    `tensor store: ${formatBytes(packBytes)} in ${objects} objects, ${store.packFiles.length} pack(s)`,
    `history: ${history.length} checkpoint version(s), ${formatBytes(logical)} logical` +
      (logical ? `; stored/logical = ${(100 * packBytes / logical).toFixed(1)}%` : ''),
  ];
  if (files.length) text.push('at HEAD:', ...table(files.map((f) => ['  ' + f.path, formatBytes(f.logical)]), [1]));
  return { data, text };
}
