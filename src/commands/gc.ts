// Owns `git tensor gc`: merges the store's packs into packs of about `tensor.gcPackSize` (1 GiB), drops
// objects no version can reach once they are old enough, and removes what killed writers left behind.
// Packs are rewritten a group at a time and each group's old packs are removed as soon as its new pack
// is in place, so gc needs free disk for one group (the size limit plus one pack), not a second store. Like `git gc`, it never removes an object
// that anything reachable (refs, reflogs, the index, stashes) needs, and it keeps recent unreachable
// objects for a grace period, so a command running at the same time cannot lose what it just wrote.

import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatBytes } from '../format/units.js';
import { Printable } from './printable.js';
import { UsageError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import type { PackFile } from '../store/pack.js';
import { removeDeadWritersFiles } from '../store/atomic.js';
import { closureIds, LocatedObject } from '../store/transfer.js';
import { IdSet } from '../store/id-set.js';
import { ChunkHints, repackObjects, wantsCompression } from '../store/repack.js';
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

/** Default of `tensor.gcPackSize`: the bytes of old packs gc rewrites into one new pack. */
export const DEFAULT_GC_PACK_BYTES = 1 << 30;

/** `tensor.gcPackSize` (git's size suffixes allowed: 512m, 2g), default 1 GiB. */
export function gcPackSize(): number {
  const r = gitRaw(['config', '--type=int', '--get', 'tensor.gcPackSize'], { okCodes: [1] });
  const v = Number(r.stdout.toString('utf8').trim());
  return r.status === 0 && Number.isFinite(v) && v > 0 ? v : DEFAULT_GC_PACK_BYTES;
}

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
  // Sets over every object in the store are IdSets (32 bytes an id): at 14 GiB the store holds about
  // 230,000 chunks, and a JS Set of hex strings over them costs some 35 MiB.
  const reachable = closureIds(store, pointers.flatMap((p) => objectIdsOf(p.pointer)));
  // Largest first: a pack already past the group size stays as it is unless it loses objects, and the
  // small ones (one per `git add`) are gathered into new packs.
  const packs = [...store.packFiles].sort((x, y) => statSync(y.packPath).size - statSync(x.packPath).size);
  const groupBytes = gcPackSize();
  // An object counts as recent if any of its copies is in a recent pack: after a gc killed between
  // writing a group's new pack and removing the old ones, the same object sits in an old pack and in the
  // new one, and judging it by whichever copy comes first would drop an object still in its grace period.
  // That is asked of the recent packs' own indexes, in memory already, rather than of a set of every id
  // in them (at the end of a day's work, every pack is recent).
  const ageOf = (pack: PackFile) => (now - statSync(pack.packPath).mtimeMs) / 1000;
  const recentPacks = packs.filter((pack) => ageOf(pack) < graceSeconds);
  const isRecent = (id: Buffer) => recentPacks.some((pack) => pack.find(id) !== undefined);
  const seen = new IdSet();
  let dropped = 0;
  let droppedBytes = 0;
  let before = 0;
  // Chunks `git add` wrote raw (docs/store.md, "Writing fast, compressing later") are compressed here.
  const hints = store.compress ? ChunkHints.of(store, pointers.map((p) => p.pointer)) : new ChunkHints();
  let compressed = 0;
  let after = 0;
  let packsAfter = 0;
  let objects = 0;
  // Groups of old packs, each closed once its kept payload reaches groupBytes.
  let group: { packs: PackFile[]; keep: LocatedObject[]; bytes: number; dropped: number } = { packs: [], keep: [], bytes: 0, dropped: 0 };
  const flush = async () => {
    const g = group;
    group = { packs: [], keep: [], bytes: 0, dropped: 0 };
    if (!g.packs.length) return;
    objects += g.keep.length;
    // A lone pack that loses nothing and holds nothing left to compress is already what gc would write:
    // leave it (a second gc changes nothing).
    const raw = g.keep.some((o) => wantsCompression(o) && hints.has(o.id));
    if (g.packs.length === 1 && g.dropped === 0 && g.keep.length === g.packs[0]!.count && !raw) {
      after += statSync(g.packs[0]!.packPath).size + statSync(g.packs[0]!.idxPath).size;
      packsAfter++;
      return;
    }
    const repacked = g.keep.length ? await repackObjects(store, g.keep, hints) : null;
    const name = repacked?.name ?? null;
    compressed += repacked?.compressed ?? 0;
    // The new pack is complete and visible; only now can the group's old ones go (index first: readers
    // skip a pack without an index).
    for (const pack of g.packs) {
      if (name && pack.packPath.endsWith(`pack-${name}.pack`)) continue;
      pack.close();
      rmSync(pack.idxPath, { force: true });
      rmSync(pack.packPath, { force: true });
    }
    if (name) {
      after += statSync(join(store.packDir, `pack-${name}.pack`)).size + statSync(join(store.packDir, `pack-${name}.idx`)).size;
      packsAfter++;
    }
  };
  for (const pack of packs) {
    before += statSync(pack.packPath).size + statSync(pack.idxPath).size;
    group.packs.push(pack);
    for (const entry of pack.entries()) {
      if (!seen.add(entry.id)) {
        group.dropped++; // a copy of an object kept from an earlier pack
        continue;
      }
      if (!reachable.has(entry.id) && !isRecent(Buffer.from(entry.id, 'hex'))) {
        dropped++;
        droppedBytes += entry.payloadLength;
        group.dropped++;
        continue;
      }
      group.keep.push({ id: entry.id, loc: entry });
      group.bytes += entry.payloadLength;
    }
    if (group.bytes >= groupBytes) await flush();
  }
  await flush();
  for (const p of leftovers) rmSync(p, { recursive: true, force: true });

  const data = { packsBefore: packs.length, packsAfter, objects, dropped, droppedBytes, compressed, bytesBefore: before, bytesAfter: after, leftoversRemoved: swept + leftovers.length };
  const text = [
    `packs: ${packs.length} -> ${data.packsAfter}; ${objects} objects kept, ${dropped} unreachable dropped (${formatBytes(droppedBytes)})` +
      (compressed ? `, ${compressed} chunks compressed` : ''),
    `store: ${formatBytes(before)} -> ${formatBytes(after)}` + (data.leftoversRemoved ? `; removed ${data.leftoversRemoved} file(s) left by interrupted commands` : ''),
  ];
  return { data, text };
}
