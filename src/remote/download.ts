// Owns downloading store objects from a git host (docs/remote.md, "Fetch").
//
// Given the ids a checkout needs, it finds which remote packs hold them (from the cached indexes,
// refreshed once if an id is unknown), fetches those packs' refs into a scratch repository in batches
// (one `git fetch` per PACKS_PER_FETCH packs), and copies into the local store exactly the objects that
// were asked for (a whole pack is imported as is when all of it is wanted). Chunk lists reveal the chunks
// they need only once downloaded, so this repeats until nothing is missing: usually two rounds.
// Every payload is verified before it enters the store; a killed download leaves only scratch files.

import { join } from 'node:path';
import { GitTensorError } from '../errors/index.js';
import { PackFile } from '../store/pack.js';
import { ObjectStore } from '../store/store.js';
import { dependenciesOf, importObjects, importPack } from '../store/transfer.js';
import { BYTES_PER_FETCH, PACKS_PER_FETCH, TransferContext } from './context.js';
import { RemoteObjectsMissingError, RemotePackMissingError, RemoteTransferError } from './errors.js';
import { Progress } from './progress.js';
import { listRemote, packRef, RemoteIndex } from './remote-index.js';
import { TransferRepo } from './transfer-repo.js';
import { groupForTransfer } from './upload.js';

export interface DownloadResult {
  objects: number;
  packs: number;
  /** Bytes of tensor packs downloaded. */
  bytes: number;
}

export interface DownloadOptions {
  /** The file the objects are for, named in errors. */
  file?: string;
  /** True when the index was synced with the remote just before: unknown ids are then an error at once. */
  synced?: boolean;
}

/**
 * Ids among `ids` the store cannot read in full, as the ids to get: absent objects, and the absent chunks
 * and delta bases of present ones (as store.missing(), with one look at the pack folder, not one per miss).
 */
export function missingLocally(store: ObjectStore, ids: Iterable<string>): string[] {
  store.refresh();
  const out = new Set<string>();
  const seen = new Set<string>();
  const stack = [...ids];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const loc = store.locate(id, false);
    if (!loc) out.add(id);
    else for (const dep of dependenciesOf(loc, id)) stack.push(dep);
  }
  return [...out];
}

const MAX_ROUNDS = 10;

/** A downloaded pack kept on disk while part of it may still be needed. */
interface HeldPack {
  name: string;
  path: string;
  file: PackFile;
}

/**
 * One download: remote packs fetched so far are held in a scratch folder until every object wanted from
 * them has been imported, so a pack is never downloaded twice even when its chunk lists and its chunks
 * are needed in different rounds.
 */
class DownloadSession {
  readonly held = new Map<string, HeldPack>();
  private holding: TransferRepo | undefined;

  constructor(private readonly ctx: TransferContext, private readonly index: RemoteIndex) {}

  /** The folder downloaded packs are held in (under <store>/tmp: same filesystem, so imports are renames). */
  async holdDir(): Promise<string> {
    this.holding ??= await TransferRepo.create({ parent: this.ctx.store.tmpDir, userConfig: this.ctx.userConfig, baseEnv: this.ctx.env });
    return this.holding.dir;
  }

  /** Imports what it can of `missing` (and what those need) from the held packs; returns how many objects. */
  importHeld(missing: readonly string[]): number {
    const store = this.ctx.store;
    const byPack = new Map<string, Set<string>>();
    const assigned = new Set<string>();
    const stack = [...missing];
    while (stack.length) {
      const id = stack.pop()!;
      if (assigned.has(id)) continue;
      const key = Buffer.from(id, 'hex');
      let found: { held: HeldPack; loc: ReturnType<PackFile['find']> } | undefined;
      for (const held of this.held.values()) {
        const loc = held.file.find(key);
        if (loc) {
          found = { held, loc };
          break;
        }
      }
      if (!found?.loc) continue;
      assigned.add(id);
      if (!byPack.has(found.held.name)) byPack.set(found.held.name, new Set());
      byPack.get(found.held.name)!.add(id);
      for (const dep of dependenciesOf(found.loc, id)) if (!assigned.has(dep) && !store.locate(dep, false)) stack.push(dep);
    }
    // Partial copies first, whole packs (renamed into the store) last: a delta is verified against a base
    // that may still be in a held file, which must not have moved yet.
    const incoming = [...this.held.values()].map((h) => h.file);
    let objects = 0;
    const whole: HeldPack[] = [];
    for (const [name, ids] of byPack) {
      const held = this.held.get(name)!;
      objects += ids.size;
      if (ids.size === held.file.count) whole.push(held);
      else importObjects(store, held.file, ids, incoming);
    }
    for (const held of whole) {
      incoming.splice(incoming.indexOf(held.file), 1);
      held.file.close();
      this.held.delete(held.name);
      importPack(store, held.path, this.index.idxPath(held.name), held.name, incoming);
    }
    return objects;
  }

  /** Downloads the packs `names` (one `git fetch` for them all) into the holding folder. */
  async fetch(names: string[], byPack: Map<string, Set<string>>, onBytes: (bytes: number) => void, file?: string): Promise<number> {
    const dir = await this.holdDir();
    const repo = await TransferRepo.create({ parent: this.ctx.store.tmpDir, userConfig: this.ctx.userConfig, baseEnv: this.ctx.env });
    try {
      const refspecs = names.map((n) => `+${packRef(n)}:refs/p/${n}`);
      try {
        await repo.network('downloading tensor packs from', this.ctx.url,
          ['fetch', '--no-tags', '--no-write-fetch-head', '--no-auto-gc', '--progress', '--stdin', this.ctx.url],
          { input: refspecs.join('\n') + '\n', onBytes, retry: this.ctx.retry });
      } catch (err) {
        const m = err instanceof RemoteTransferError ? /couldn't find remote ref refs\/tensor\/packs\/([0-9a-f]{64})/i.exec(err.message) : null;
        if (m) throw new RemotePackMissingError(this.ctx.url, m[1]!, [...(byPack.get(m[1]!) ?? [])], { file });
        throw err;
      }
      let bytes = 0;
      for (const name of names) {
        const path = join(dir, `pack-${name}.pack`);
        await repo.catBlob(`refs/p/${name}:pack`, path);
        this.held.set(name, { name, path, file: new PackFile(path, this.index.idxPath(name)) });
        bytes += this.index.packBytes(name);
      }
      return bytes;
    } finally {
      repo.dispose();
    }
  }

  dispose(): void {
    for (const h of this.held.values()) h.file.close();
    this.held.clear();
    this.holding?.dispose();
  }
}

export async function downloadObjects(ctx: TransferContext, index: RemoteIndex, ids: Iterable<string>, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const wanted = [...new Set(ids)];
  const result: DownloadResult = { objects: 0, packs: 0, bytes: 0 };
  let synced = opts.synced ?? false;
  let progress: Progress | undefined;
  const session = new DownloadSession(ctx, index);
  try {
    // The store only gains objects during a download, so what is missing later is found by walking on
    // from what was missing before, never again from everything wanted: at 14 GiB that is some 230,000
    // chunks, walked after every group of packs, each looked for in a store that gains hundreds of packs.
    let missing = wanted;
    for (let round = 0; ; round++) {
      missing = missingLocally(ctx.store, missing);
      // What earlier rounds downloaded may already hold what is missing now (chunks of a chunk list).
      while (missing.length && session.held.size) {
        const got = session.importHeld(missing);
        if (!got) break;
        result.objects += got;
        missing = missingLocally(ctx.store, missing);
      }
      if (!missing.length) break;
      if (round >= MAX_ROUNDS) throw inconsistent(ctx, missing);
      const plan = assignPacks(index, missing, session.held);
      if (plan.unknown.length) {
        if (!synced) {
          await index.sync(ctx, await listRemote(ctx));
          synced = true;
          continue;
        }
        throw new RemoteObjectsMissingError(ctx.remoteName, ctx.url, plan.unknown, { file: opts.file });
      }
      const names = [...plan.byPack.keys()].sort();
      if (!names.length) throw inconsistent(ctx, missing);
      progress ??= new Progress('Downloading tensor packs', 0, { enabled: ctx.progress && ctx.verbosity > 0 });
      progress.setTotal(result.packs + names.length);
      for (const group of groupForTransfer(names, (n) => index.packBytes(n), PACKS_PER_FETCH, BYTES_PER_FETCH)) {
        const bytes = await session.fetch(group, plan.byPack, (b) => progress!.update(result.packs, result.bytes + b), opts.file);
        result.packs += group.length;
        result.bytes += bytes;
        progress.update(result.packs, result.bytes);
        // Import as soon as a group is here, so held packs that are wholly wanted leave the scratch space.
        missing = missingLocally(ctx.store, missing);
        result.objects += session.importHeld(missing);
      }
    }
  } finally {
    session.dispose();
  }
  progress?.finish();
  return result;
}

function inconsistent(ctx: TransferContext, missing: string[]): GitTensorError {
  return new GitTensorError('E_REMOTE_INCONSISTENT', `the tensor packs of ${ctx.remoteName} did not provide object ${missing[0]!.slice(0, 16)} that their index lists`, {
    data: { ids: missing },
    hint: 'Run `git tensor fsck`; if it is clean, the remote pack is damaged: push the objects again from a clone that has them.',
  });
}

/**
 * Chooses, for each missing id, one remote pack holding it, preferring packs that hold many of the ids
 * (an object pushed twice by two clones lives in two packs; one download is enough). Packs already held
 * are never chosen again.
 */
function assignPacks(index: RemoteIndex, missing: readonly string[], held: Map<string, HeldPack>): { byPack: Map<string, Set<string>>; unknown: string[] } {
  const holders = new Map<string, string[]>();
  const score = new Map<string, number>();
  const unknown: string[] = [];
  for (const id of missing) {
    const packs = index.packsHolding(Buffer.from(id, 'hex')).filter((p) => !held.has(p));
    if (!packs.length) {
      unknown.push(id);
      continue;
    }
    holders.set(id, packs);
    for (const p of packs) score.set(p, (score.get(p) ?? 0) + 1);
  }
  const byPack = new Map<string, Set<string>>();
  for (const [id, packs] of holders) {
    const best = packs.reduce((a, b) => ((score.get(b) ?? 0) > (score.get(a) ?? 0) ? b : a));
    if (!byPack.has(best)) byPack.set(best, new Set());
    byPack.get(best)!.add(id);
  }
  return { byPack, unknown };
}
