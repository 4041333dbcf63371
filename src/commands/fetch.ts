// Owns `git tensor fetch`: download the store objects of given revisions, or of all history, from a remote.
// The lazy fetch behind smudge and the drivers is src/remote/lazy-fetch.ts.

import { formatBytes } from '../format/units.js';
import { Printable } from './printable.js';
import { UsageError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import { chooseRemote, transferContext } from '../remote/context.js';
import { downloadObjects, DownloadResult } from '../remote/download.js';
import { NoTensorRemoteError } from '../remote/errors.js';
import { blobsInAllRefs, blobsInTree, idsInBlobs } from '../remote/pointers.js';
import { RemoteIndex } from '../remote/remote-index.js';
import { openRepo } from './context.js';

export interface FetchOptions {
  /** Revisions whose checkpoints to fetch (default HEAD). */
  revs?: string[];
  /** Every checkpoint version reachable from any ref. */
  all?: boolean;
  remote?: string;
  quiet?: boolean;
  cwd?: string;
}

export interface FetchReport extends DownloadResult {
  remote: string;
  /** Objects the revisions need, and how many of them were already local. */
  needed: number;
}

export async function fetch(opts: FetchOptions): Promise<Printable> {
  const repo = openRepo(opts.cwd);
  try {
    const remote = chooseRemote(opts.cwd, opts.remote);
    if (!remote) throw new NoTensorRemoteError('this repository has no remote to fetch tensor objects from');
    const ids = new Set<string>();
    if (opts.all) {
      for (const id of await idsInBlobs(blobsInAllRefs(opts.cwd), opts.cwd)) ids.add(id);
    }
    for (const rev of opts.revs?.length ? opts.revs : opts.all ? [] : ['HEAD']) {
      const ok = gitRaw(['rev-parse', '--verify', '--quiet', `${rev}^{tree}`], { cwd: opts.cwd, okCodes: [1] });
      if (ok.status !== 0) throw new UsageError(`unknown revision ${JSON.stringify(rev)}`, 'Check the name with `git log --oneline --all`.');
      for (const id of await idsInBlobs(blobsInTree(rev, opts.cwd), opts.cwd)) ids.add(id);
    }
    const ctx = transferContext(repo, remote, { progress: !opts.quiet && !!process.stderr.isTTY, verbosity: opts.quiet ? 0 : 1, cwd: opts.cwd });
    const index = new RemoteIndex(repo.store, remote.url);
    let result: DownloadResult;
    try {
      result = await downloadObjects(ctx, index, ids);
    } finally {
      index.close();
    }
    const report: FetchReport = { ...result, remote: remote.name, needed: ids.size };
    const text = result.objects
      ? [`fetched ${result.objects} object(s) in ${result.packs} pack(s), ${formatBytes(result.bytes)} from ${remote.name}`]
      : [`nothing to fetch: the ${ids.size} object(s) needed are all in the local store`];
    return { data: report, text, stream: 'stderr' };
  } finally {
    repo.store.close();
  }
}
