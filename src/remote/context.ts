// Owns what every tensor transfer needs to know: the local store, the remote's underlying git URL, the
// user's repository (for its config and refs), and how loud to be.

import { join } from 'node:path';
import { gitRaw } from '../git/exec.js';
import { ObjectStore } from '../store/store.js';
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

export const TENSOR_URL_PREFIX = 'tensor::';
export const DEFAULT_PACK_SIZE_LIMIT = 64 << 20;
/** Packs uploaded by one `git push` to the host: bounds what one interrupted push loses. */
export const PACKS_PER_PUSH = 8;
export const BYTES_PER_PUSH = 512 << 20;
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
