// Owns `git tensor fetch` (download the store objects of given revisions, or of all history, from a remote)
// and the lazy fetch behind smudge: a checkout that meets objects the store lacks downloads them from the
// remote, in one batch for the whole tree being checked out, before giving up.

import { formatBytes } from '../format/units.js';
import { Printable } from './printable.js';
import { GitTensorError, UsageError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import { retriesFromConfig, retryNotice, TENSOR_URL_PREFIX, TransferContext, userConfigOf } from '../remote/context.js';
import { downloadObjects, DownloadResult, missingLocally } from '../remote/download.js';
import { NoTensorRemoteError, RemoteTransferError } from '../remote/errors.js';
import { blobsInAllRefs, blobsInTree, idsInBlobs } from '../remote/pointers.js';
import { RemoteIndex } from '../remote/remote-index.js';
import { openRepo, RepoContext } from './context.js';

export interface RemoteChoice {
  name: string;
  /** The git URL, without `tensor::`. */
  url: string;
}

/** Remotes by name with their fetch URLs, in config order. */
function configuredRemotes(cwd?: string): Map<string, string> {
  const r = gitRaw(['config', '--get-regexp', '^remote\\..*\\.url$'], { cwd, okCodes: [1] });
  const out = new Map<string, string>();
  for (const line of r.stdout.toString('utf8').split('\n')) {
    const m = /^remote\.(.+)\.url (.*)$/.exec(line);
    if (m && !out.has(m[1]!)) out.set(m[1]!, m[2]!);
  }
  return out;
}

function currentBranchRemote(cwd?: string): string | undefined {
  const head = gitRaw(['symbolic-ref', '-q', 'HEAD'], { cwd, okCodes: [1, 128] });
  if (head.status !== 0) return undefined;
  const branch = head.stdout.toString('utf8').trim().replace(/^refs\/heads\//, '');
  const r = gitRaw(['config', '--get', `branch.${branch}.remote`], { cwd, okCodes: [1] });
  return r.status === 0 ? r.stdout.toString('utf8').trim() : undefined;
}

/**
 * The remote tensor objects come from: the one named, else the current branch's remote, else origin, else
 * any other; `tensor::` remotes first. A plain git remote is used too (a repository cloned without
 * `tensor::` whose host holds refs/tensor/*). Undefined when the repository has no remote at all.
 */
export function chooseRemote(cwd?: string, name?: string): RemoteChoice | undefined {
  const remotes = configuredRemotes(cwd);
  const strip = (url: string) => (url.startsWith(TENSOR_URL_PREFIX) ? url.slice(TENSOR_URL_PREFIX.length) : url);
  if (name !== undefined) {
    const url = remotes.get(name);
    if (url === undefined) throw new NoTensorRemoteError(`no remote named ${JSON.stringify(name)} (see \`git remote -v\`)`);
    return { name, url: strip(url) };
  }
  const order = [currentBranchRemote(cwd), 'origin', ...remotes.keys()].filter((n): n is string => n !== undefined && remotes.has(n));
  const pick = order.find((n) => remotes.get(n)!.startsWith(TENSOR_URL_PREFIX)) ?? order[0];
  return pick === undefined ? undefined : { name: pick, url: strip(remotes.get(pick)!) };
}

export function transferContext(repo: RepoContext, remote: RemoteChoice, opts: { progress: boolean; verbosity: number; cwd?: string }): TransferContext {
  return {
    store: repo.store,
    remoteName: remote.name,
    url: remote.url,
    userConfig: userConfigOf(repo.commonDir),
    cwd: opts.cwd,
    env: process.env,
    progress: opts.progress,
    verbosity: opts.verbosity,
    retry: { attempts: retriesFromConfig(opts.cwd) + 1, onRetry: retryNotice(opts.verbosity) },
  };
}

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

  constructor(private readonly repo: RepoContext, private readonly opts: { cwd?: string; progress?: boolean } = {}) {}

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
