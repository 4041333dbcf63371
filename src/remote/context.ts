// Owns what every tensor transfer needs to know: the local store, the remote's underlying git URL (and
// which remote to use when none is named), the user's repository (for its config and refs), and how loud
// to be.

import { join } from 'node:path';
import { gitRaw } from '../git/exec.js';
import { ObjectStore } from '../store/store.js';
import { NoTensorRemoteError } from './errors.js';
import type { RetryOptions } from './git-run.js';

export interface TransferContext {
  store: ObjectStore;
  /** The remote's name for messages ("origin"), or its URL when it has none. */
  remoteName: string;
  /** The git URL after `tensor::` (https://, ssh://, git://, file://, scp-like or a path). */
  url: string;
  /** The user's repository config file; transfer repositories include it. */
  userConfig?: string;
  /** The working directory git commands on the user's repository run in. */
  cwd?: string;
  env: NodeJS.ProcessEnv;
  /** Progress lines on stderr. */
  progress: boolean;
  /** 0: errors only; 1: normal; 2+: chatty (git's `option verbosity`). */
  verbosity: number;
  retry?: RetryOptions;
}

/** The local side of a transfer: the store and the repository's common git directory (for its config). */
export interface LocalRepo {
  store: ObjectStore;
  commonDir: string;
}

export const TENSOR_URL_PREFIX = 'tensor::';
export const DEFAULT_PACK_SIZE_LIMIT = 64 << 20;
/**
 * Bytes of tensor packs sent by one `git push` to the host (`tensor.pushSizeLimit`): under the per-push
 * limits of common hosts (GitHub refuses pushes over 2 GiB) with room for git's framing, and what an
 * interrupted push loses at most.
 */
export const DEFAULT_PUSH_SIZE_LIMIT = 1 << 30;
/** Packs (two refs each) created by one `git push`: keeps a push's ref updates few. */
export const PACKS_PER_PUSH = 256;
/** Packs downloaded by one `git fetch` (bounds the scratch space a download needs). */
export const PACKS_PER_FETCH = 8;
export const BYTES_PER_FETCH = 512 << 20;

export function userConfigOf(commonDir: string): string {
  return join(commonDir, 'config');
}

/** `tensor.packSizeLimit` (git's size suffixes allowed: 64m, 1g), default 64 MiB. */
export function packSizeLimit(cwd?: string, env?: NodeJS.ProcessEnv): number {
  const r = gitRaw(['config', '--type=int', '--get', 'tensor.packSizeLimit'], { cwd, env, okCodes: [1] });
  const v = Number(r.stdout.toString('utf8').trim());
  return r.status === 0 && Number.isFinite(v) && v > 0 ? v : DEFAULT_PACK_SIZE_LIMIT;
}

/**
 * `tensor.pushSizeLimit` (git's size suffixes allowed), default 1 GiB: the most pack bytes one `git push`
 * of tensor packs carries. A single pack larger than it (an object larger than the limit) goes alone.
 */
export function pushSizeLimit(cwd?: string, env?: NodeJS.ProcessEnv): number {
  const r = gitRaw(['config', '--type=int', '--get', 'tensor.pushSizeLimit'], { cwd, env, okCodes: [1] });
  const v = Number(r.stdout.toString('utf8').trim());
  return r.status === 0 && Number.isFinite(v) && v > 0 ? v : DEFAULT_PUSH_SIZE_LIMIT;
}

/** `tensor.transferRetries`: retries of a failed network step (default 3, so 4 attempts). */
export function retriesFromConfig(cwd?: string, env?: NodeJS.ProcessEnv): number {
  const r = gitRaw(['config', '--type=int', '--get', 'tensor.transferRetries'], { cwd, env, okCodes: [1] });
  const v = Number(r.stdout.toString('utf8').trim());
  return r.status === 0 && Number.isInteger(v) && v >= 0 ? v : 3;
}

/** Prints a retry notice the way git prints warnings. */
export function retryNotice(verbosity: number): RetryOptions['onRetry'] {
  return (err, attempt, delayMs) => {
    if (verbosity > 0) process.stderr.write(`warning: ${err.message}; retrying in ${(delayMs / 1000).toFixed(1)}s (attempt ${attempt + 1})\n`);
  };
}

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

export function transferContext(repo: LocalRepo, remote: RemoteChoice, opts: { progress: boolean; verbosity: number; cwd?: string }): TransferContext {
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
