// Owns `git tensor gc`: merges the store's packs into one, drops objects no version can reach once they
// are old enough, and removes what killed writers left behind. Like `git gc`, it never removes an object
// that anything reachable (refs, reflogs, the index, stashes) needs, and it keeps recent unreachable
// objects for a grace period, so a command running at the same time cannot lose what it just wrote.

import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatBytes } from '../format/units.js';
import { Printable } from './printable.js';
import { UsageError } from '../errors/index.js';
import { removeDeadWritersFiles } from '../store/atomic.js';
import { LocatedObject, objectClosure } from '../store/transfer.js';
import { chunkHints, repackObjects, wantsCompression } from '../store/repack.js';
import { openRepo } from './context.js';
import { objectIdsOf } from '../format/pointer.js';
import { pointersInHistory } from './pointers.js';

export interface GcOptions {
  /** Unreachable objects in packs older than this many seconds are dropped (default two weeks; 0 = now). */
  pruneSeconds?: number;
}

const TWO_WEEKS = 14 * 24 * 3600;
/** Temp files younger than this may belong to a running command. */
const TEMP_GRACE_MS = 3600 * 1000;

export function parsePrune(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (text === 'now') return 0;
  const m = /^(\d+)\.?(seconds?|minutes?|hours?|days?|weeks?)(\.ago)?$/.exec(text);
  if (!m) throw new UsageError(`--prune takes "now" or a time like 2.weeks.ago, not ${JSON.stringify(text)}`);
  const unit = { second: 1, minute: 60, hour: 3600, day: 86400, week: 604800 }[m[2]!.replace(/s$/, '') as 'second'];
  return Number(m[1]) * unit;
}

export async function gc(opts: GcOptions): Promise<Printable> {
  const { store } = openRepo();
  const now = Date.now();
  const graceSeconds = opts.pruneSeconds ?? TWO_WEEKS;

  // Files of writers that are gone go now; other unknown files once they are old enough.
  const swept = removeDeadWritersFiles(store.tmpDir).length;
  const leftovers: string[] = [];
  for (const name of readdirSync(store.tmpDir)) {
    const p = join(store.tmpDir, name);
    if (now - statSync(p).mtimeMs > TEMP_GRACE_MS) leftovers.push(p);
  }
  const packDirFiles = new Set(readdirSync(store.packDir));
  for (const name of packDirFiles) {
    const p = join(store.packDir, name);
    // A pack whose index never got written: its writer died between the two renames.
    if (name.endsWith('.pack') && !packDirFiles.has(name.replace(/\.pack$/, '.idx')) && now - statSync(p).mtimeMs > TEMP_GRACE_MS) leftovers.push(p);
  }

  const pointers = await pointersInHistory(undefined, true);
  const { present } = objectClosure(store, pointers.flatMap((p) => objectIdsOf(p.pointer)));
  const reachable = new Set(present.map((o) => o.id));
  const packs = [...store.packFiles];
  const keep: LocatedObject[] = [];
  const seen = new Set<string>();
  let dropped = 0;
  let droppedBytes = 0;
  let before = 0;
  for (const pack of packs) {
    before += statSync(pack.packPath).size + statSync(pack.idxPath).size;
    const old = (now - statSync(pack.packPath).mtimeMs) / 1000 >= graceSeconds;
    for (const entry of pack.entries()) {
      if (seen.has(entry.id)) continue;
      seen.add(entry.id);
      if (!reachable.has(entry.id) && old) {
        dropped++;
        droppedBytes += entry.payloadLength;
        continue;
      }
      keep.push({ id: entry.id, loc: entry });
    }
  }

  // Chunks `git add` wrote raw (docs/store.md, "Writing fast, compressing later") are compressed here.
  const hints = store.compress ? chunkHints(store, pointers.map((p) => p.pointer)) : new Map();
  const rawChunks = keep.filter((o) => wantsCompression(o) && hints.has(o.id)).length;
  let after = before;
  let compressed = 0;
  if (packs.length > 1 || dropped > 0 || rawChunks > 0) {
    const repacked = await repackObjects(store, keep, hints);
    const name = repacked.name;
    compressed = repacked.compressed;
    // The new pack is complete and visible; only now can the old ones go (index first: readers skip a
    // pack without an index).
    for (const pack of packs) {
      if (name && pack.packPath.endsWith(`pack-${name}.pack`)) continue;
      pack.close();
      rmSync(pack.idxPath, { force: true });
      rmSync(pack.packPath, { force: true });
    }
    after = name ? statSync(join(store.packDir, `pack-${name}.pack`)).size + statSync(join(store.packDir, `pack-${name}.idx`)).size : 0;
  }
  for (const p of leftovers) rmSync(p, { recursive: true, force: true });

  const data = { packsBefore: packs.length, packsAfter: keep.length ? 1 : 0, objects: keep.length, dropped, droppedBytes, compressed, bytesBefore: before, bytesAfter: after, leftoversRemoved: swept + leftovers.length };
  const text = [
    `packs: ${packs.length} -> ${data.packsAfter}; ${keep.length} objects kept, ${dropped} unreachable dropped (${formatBytes(droppedBytes)})` +
      (compressed ? `, ${compressed} chunks compressed` : ''),
    `store: ${formatBytes(before)} -> ${formatBytes(after)}` + (data.leftoversRemoved ? `; removed ${data.leftoversRemoved} file(s) left by interrupted commands` : ''),
  ];
  return { data, text };
}
