// Owns the lazy fetch behind smudge and the merge and diff drivers: a command that meets objects the store
// lacks downloads them from the remote, in one batch for the whole tree being checked out, before giving up.

import { GitTensorError } from '../errors/index.js';
import { chooseRemote, LocalRepo, TransferContext, transferContext } from './context.js';
import { downloadObjects, missingLocally } from './download.js';
import { RemoteTransferError } from './errors.js';
import { blobsInTree, idsInBlobs } from './pointers.js';
import { RemoteIndex } from './remote-index.js';

/**
 * Downloads missing objects for smudge. Created once per filter process; does nothing (returns false)
 * in a repository without remotes. The first miss for a tree fetches what the whole tree needs, so a
 * checkout costs one batch of downloads, not one per file. A network failure is remembered: the files
 * after it fail at once with the same error instead of each waiting for the network again.
 */
export class LazyFetcher {
  private ctx: TransferContext | undefined;
  private index: RemoteIndex | undefined;
  private failure: unknown;
  private readonly prefetched = new Set<string>();
  private resolved = false;

  constructor(private readonly repo: LocalRepo, private readonly opts: { cwd?: string; progress?: boolean } = {}) {}

  async fetch(missing: readonly string[], hint: { file?: string; treeish?: string } = {}): Promise<boolean> {
    if (this.failure !== undefined) throw this.failure;
    if (!this.resolved) {
      this.resolved = true;
      const remote = chooseRemote(this.opts.cwd);
      if (remote) {
        this.ctx = transferContext(this.repo, remote, { progress: this.opts.progress ?? !!process.stderr.isTTY, verbosity: 1, cwd: this.opts.cwd });
        this.index = new RemoteIndex(this.repo.store, remote.url);
      }
    }
    if (!this.ctx || !this.index) return false;
    const ids = new Set(missing);
    const treeish = hint.treeish;
    if (treeish && /^[0-9a-f]{40,64}$/.test(treeish) && !this.prefetched.has(treeish)) {
      this.prefetched.add(treeish);
      try {
        const all = await idsInBlobs(blobsInTree(treeish, this.opts.cwd), this.opts.cwd);
        for (const id of missingLocally(this.repo.store, all)) ids.add(id);
      } catch (err) {
        // The tree is only a hint for batching; without it the file's own objects are still fetched.
        if (!(err instanceof GitTensorError)) throw err;
      }
    }
    try {
      await downloadObjects(this.ctx, this.index, ids, { file: hint.file });
    } catch (err) {
      if (err instanceof RemoteTransferError) this.failure = err;
      throw err;
    }
    return true;
  }

  close(): void {
    this.index?.close();
  }
}
