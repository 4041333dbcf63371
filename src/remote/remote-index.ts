// Owns what this clone knows of a remote's tensor packs: the layout of refs on the host, listing them,
// and a local cache of the remote's pack indexes that answers "which remote pack holds object X".
//
// On the host (docs/remote.md):
//   refs/tensor/packs/<name>  a root commit whose tree holds `pack` and `idx` (one store pack, <= 64 MiB)
//   refs/tensor/idx/<name>    a root commit whose tree holds `idx` alone
// <name> is the pack's name (SHA-256 of its index). Refs are only ever created, never moved: two clones
// pushing at once create distinct refs, and an identical pack gives an identical commit.
//
// Here: <store>/remotes/<key>/idx/pack-<name>.idx, one verified copy of each index the remote lists, where
// <key> is derived from the remote's URL. Fetching all indexes is cheap (64 bytes per object); packs are
// fetched only when their objects are needed.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptObjectError } from '../errors/index.js';
import { writeFileAtomic } from '../store/atomic.js';
import { ObjectLocation, PackFile } from '../store/pack.js';
import { ObjectStore } from '../store/store.js';
import { packNameOfIndex } from '../store/transfer.js';
import { redactUrl } from './errors.js';
import { runNetworkGit, transferEnv } from './git-run.js';
import type { TransferContext } from './context.js';
import { TransferRepo } from './transfer-repo.js';

export const TENSOR_REF_PREFIX = 'refs/tensor/';
export const PACK_REF_PREFIX = 'refs/tensor/packs/';
export const IDX_REF_PREFIX = 'refs/tensor/idx/';
const PACK_NAME = /^[0-9a-f]{64}$/;

export function packRef(name: string): string {
  return PACK_REF_PREFIX + name;
}

export function idxRef(name: string): string {
  return IDX_REF_PREFIX + name;
}

/** The refs of a remote as `git ls-remote --symref` lists them. */
export interface RemoteListing {
  /** ref name -> object id, peeled tags (`^{}`) left out. */
  refs: Map<string, string>;
  /** Symbolic refs (HEAD -> refs/heads/main). */
  symrefs: Map<string, string>;
}

/** Parses `git ls-remote --symref` output. */
export function parseLsRemote(text: string): RemoteListing {
  const refs = new Map<string, string>();
  const symrefs = new Map<string, string>();
  for (const line of text.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const value = line.slice(0, tab);
    const name = line.slice(tab + 1);
    if (value.startsWith('ref: ')) symrefs.set(name, value.slice(5));
    else if (/^[0-9a-f]{40,64}$/.test(value) && !name.endsWith('^{}')) refs.set(name, value);
  }
  return { refs, symrefs };
}

export async function listRemote(ctx: TransferContext): Promise<RemoteListing> {
  const r = await runNetworkGit('listing refs of', ctx.url, ['ls-remote', '--symref', ctx.url], {
    cwd: ctx.cwd,
    env: transferEnv(ctx.env),
    retry: ctx.retry,
  });
  return parseLsRemote(r.stdout.toString('utf8'));
}

/** Names of the packs whose index ref the listing holds. */
export function indexedPacks(listing: RemoteListing): string[] {
  const out: string[] = [];
  for (const ref of listing.refs.keys()) {
    if (!ref.startsWith(IDX_REF_PREFIX)) continue;
    const name = ref.slice(IDX_REF_PREFIX.length);
    if (PACK_NAME.test(name)) out.push(name);
  }
  return out.sort();
}

export interface RemoteObject {
  pack: string;
  loc: ObjectLocation;
}

export class RemoteIndex {
  readonly dir: string;
  private readonly idxDir: string;
  private readonly packs = new Map<string, PackFile>();
  private readonly sizes = new Map<string, number>();

  constructor(store: ObjectStore, readonly url: string) {
    const key = createHash('sha256').update(url).digest('hex').slice(0, 16);
    this.dir = join(store.dir, 'remotes', key);
    this.idxDir = join(this.dir, 'idx');
    this.load();
  }

  /** Reads the cached indexes (a damaged one is dropped: the next sync fetches it again). */
  private load(): void {
    if (!existsSync(this.idxDir)) return;
    for (const f of readdirSync(this.idxDir)) {
      const m = /^pack-([0-9a-f]{64})\.idx$/.exec(f);
      if (!m || this.packs.has(m[1]!)) continue;
      try {
        this.packs.set(m[1]!, new PackFile(`<remote pack ${m[1]}>`, join(this.idxDir, f)));
      } catch (err) {
        if (!(err instanceof CorruptObjectError)) throw err;
        rmSync(join(this.idxDir, f), { force: true });
      }
    }
  }

  locate(id: string | Buffer): RemoteObject | undefined {
    const key = typeof id === 'string' ? Buffer.from(id, 'hex') : id;
    for (const [pack, file] of this.packs) {
      const loc = file.find(key);
      if (loc) return { pack, loc };
    }
    return undefined;
  }

  has(id: string | Buffer): boolean {
    return this.locate(id) !== undefined;
  }

  /** Packs holding `id` (the same object may have been pushed twice, by two clones). */
  packsHolding(id: Buffer): string[] {
    const out: string[] = [];
    for (const [pack, file] of this.packs) if (file.find(id)) out.push(pack);
    return out;
  }

  idxPath(name: string): string {
    return join(this.idxDir, `pack-${name}.idx`);
  }

  /** The pack's size as its index implies it (end of its last payload), for progress and batching. */
  packBytes(name: string): number {
    let size = this.sizes.get(name);
    if (size === undefined) {
      size = 8;
      for (const e of this.packs.get(name)?.entries() ?? []) size = Math.max(size, e.payloadOffset + e.payloadLength);
      this.sizes.set(name, size);
    }
    return size;
  }

  /**
   * Brings the cache in line with the listing: downloads the indexes of packs it lacks (one git fetch
   * for all of them) and forgets packs the remote no longer lists. Returns how many indexes were added.
   */
  async sync(ctx: TransferContext, listing: RemoteListing): Promise<number> {
    const listed = new Set(indexedPacks(listing));
    for (const name of [...this.packs.keys()]) {
      if (listed.has(name)) continue;
      this.packs.get(name)!.close();
      this.packs.delete(name);
      rmSync(this.idxPath(name), { force: true });
    }
    const fresh = [...listed].filter((n) => !this.packs.has(n));
    if (!fresh.length) return 0;
    mkdirSync(this.idxDir, { recursive: true });
    writeFileAtomic(join(this.dir, 'url'), redactUrl(this.url) + '\n');
    const repo = await TransferRepo.create({ parent: ctx.store.tmpDir, userConfig: ctx.userConfig, baseEnv: ctx.env });
    try {
      const refspecs = fresh.map((n) => `+${idxRef(n)}:refs/i/${n}`);
      await repo.network('fetching tensor pack indexes from', ctx.url,
        ['fetch', '--no-tags', '--no-write-fetch-head', '--no-auto-gc', '-q', '--stdin', ctx.url],
        { input: refspecs.join('\n') + '\n', retry: ctx.retry });
      const blobs = await repo.readSmallBlobs(fresh.map((n) => `refs/i/${n}:idx`));
      for (const [k, name] of fresh.entries()) {
        const bytes = blobs[k];
        if (!bytes || packNameOfIndex(bytes) !== name) {
          throw new CorruptObjectError(name, `the index under ${idxRef(name)} on ${redactUrl(ctx.url)} does not match its name`, { ref: idxRef(name) });
        }
        writeFileAtomic(this.idxPath(name), bytes);
        this.packs.set(name, new PackFile(`<remote pack ${name}>`, this.idxPath(name)));
      }
    } finally {
      repo.dispose();
    }
    return fresh.length;
  }

  close(): void {
    for (const p of this.packs.values()) p.close();
  }
}
