// Owns running the git commands that talk to a host (ls-remote, fetch, push) and the local plumbing of
// transfers: asynchronously, with stdout optionally streamed to a file (blobs of any size never pass
// through memory), git's own progress parsed for byte counts, and transient failures retried with backoff.
//
// Every network operation goes through the real git binary, so https/ssh/git/file URLs, credential
// helpers, proxies, `url.<base>.insteadOf` and `-c` settings behave exactly as they do for plain git.

import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { GitTensorError } from '../errors/index.js';
import { RemoteTransferError } from './errors.js';

export interface GitRunOptions {
  cwd?: string;
  env: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Stream stdout into this file instead of collecting it. */
  stdoutFile?: string;
  /** Told the byte count git's progress reports ("Writing objects: 50% (1/2), 32.00 MiB | ..."). */
  onBytes?: (bytes: number) => void;
  /** Copy stderr lines that are not progress to our stderr as they come (git's own messages to the user). */
  forwardStderr?: boolean | ((line: string) => boolean);
  /** With forwardStderr: copy git's progress lines too (a transfer the user sees as git's own). */
  forwardProgress?: boolean;
  /** Exit codes that are answers, not failures. */
  okCodes?: number[];
}

export interface GitRunResult {
  status: number;
  stdout: Buffer;
  /** stderr without progress lines. */
  stderr: string;
}

/** git prints these lines with CR while it works; they are never the reason for a failure. */
const PROGRESS_LINE = /^(remote: )?(Enumerating|Counting|Compressing|Writing|Receiving|Resolving|Unpacking|Checking|Updating|Finding|Delta compression)\b[^:]*: |^(remote: )?Total \d+/;
const BYTES_IN_PROGRESS = /^(?:Writing|Receiving) objects:\s+\d+% \(\d+\/\d+\),\s+([\d.]+) (bytes?|KiB|MiB|GiB|TiB)/;
const UNIT: Record<string, number> = { byte: 1, bytes: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** Bytes announced by one progress line of git, or undefined if it is not such a line. */
export function progressBytes(line: string): number | undefined {
  const m = BYTES_IN_PROGRESS.exec(line);
  return m ? Math.round(Number(m[1]) * UNIT[m[2]!]!) : undefined;
}

export function isProgressLine(line: string): boolean {
  return PROGRESS_LINE.test(line);
}

export async function runGit(args: string[], opts: GitRunOptions): Promise<GitRunResult> {
  const started = Date.now();
  try {
    return await runGitUntraced(args, opts);
  } finally {
    // GIT_TENSOR_TRACE=1: one line per git command of a transfer, with its duration (like GIT_TRACE).
    if (process.env.GIT_TENSOR_TRACE) process.stderr.write(`git-tensor trace: ${Date.now() - started} ms: git ${args.join(' ')}\n`);
  }
}

async function runGitUntraced(args: string[], opts: GitRunOptions): Promise<GitRunResult> {
  const outFd = opts.stdoutFile === undefined ? undefined : openSync(opts.stdoutFile, 'w', 0o644);
  try {
    const child = spawn('git', args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['pipe', outFd ?? 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const kept: string[] = [];
    let partial = '';
    const fwd = opts.forwardStderr;
    const onLine = (line: string, end: string): void => {
      if (!line) return;
      const bytes = progressBytes(line);
      if (bytes !== undefined) opts.onBytes?.(bytes);
      if (isProgressLine(line)) {
        if (fwd && opts.forwardProgress) process.stderr.write(line + end);
        return;
      }
      kept.push(line);
      if (kept.length > 200) kept.shift();
      if (fwd === true || (typeof fwd === 'function' && fwd(line))) process.stderr.write(line + end);
    };
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      const parts = (partial + text).split(/(\r|\n)/);
      partial = parts.pop() ?? '';
      for (let k = 0; k + 1 < parts.length; k += 2) onLine(parts[k]!, parts[k + 1]!);
    });
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stdin!.on('error', () => {
      // git may exit before reading all of its input (it failed); its exit status says why.
    });
    child.stdin!.end(opts.input ?? '');
    const status = await new Promise<number>((resolve, reject) => {
      child.on('error', (err) => reject(new GitTensorError('E_GIT_MISSING', `cannot run git: ${err.message}`, { hint: 'Install git >= 2.39 and put it on PATH.' })));
      child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + 9 : -1)));
    });
    onLine(partial, '\n');
    return { status, stdout: Buffer.concat(out), stderr: kept.join('\n') };
  } finally {
    if (outFd !== undefined) closeSync(outFd);
  }
}

/**
 * A host refusing a push for its size (docs/remote.md, "Host limits"): git's receive.maxInputSize and
 * GitHub's 2 GiB limit ("pack exceeds maximum allowed size"), per-file limits of GitHub, GitLab and
 * Hugging Face. Sending the same push again would fail again.
 */
export const HOST_SIZE_LIMIT = [/pack exceeds maximum allowed size/i, /exceeds .*file size limit/i, /files? larger than \d+ ?[kmg]i?b/i, /blobs which exceed/i];

const PERMANENT = [
  /authentication failed/i, /could not read (username|password)/i, /returned error: 40[0-9]/i, /repository .* not found/i,
  /does not appear to be a git repository/i, /permission denied/i, /not found/i, /invalid username or password/i,
  /couldn't find remote ref/i, /no such remote ref/i, /unable to find remote helper/i, ...HOST_SIZE_LIMIT,
];
const TRANSIENT = [
  /could not resolve host/i, /connection (refused|reset|timed out|closed)/i, /timed out/i, /early eof/i,
  /the remote end hung up/i, /rpc failed/i, /returned error: (5\d\d|429)/i, /broken pipe/i, /unexpected disconnect/i,
  /transfer closed/i, /empty reply from server/i, /failed to connect/i, /couldn't connect/i, /ssl_(read|write)/i,
  /gnutls/i, /http\/2 stream/i, /bad pack header/i, /index-pack failed/i, /unable to access/i, /protocol error/i,
  /unable to connect/i, /network is unreachable/i, /recv error/i, /send-pack: unexpected/i, /did not receive expected object/i,
];

/** True when a failed git network command is worth retrying: a flaky link or a busy host, not bad input. */
export function isTransientFailure(stderr: string): boolean {
  if (PERMANENT.some((re) => re.test(stderr))) return false;
  return TRANSIENT.some((re) => re.test(stderr));
}

export interface NetworkOptions {
  retry?: RetryOptions;
  /**
   * A failed exit that is an answer rather than a failure of the transfer (a push whose refs the host
   * rejected exits 1, as does one whose connection broke: only the first is accepted, the second retried).
   */
  accept?: (r: GitRunResult) => boolean;
}

export interface RetryOptions {
  /** Attempts in all, the first included (default 4). */
  attempts?: number;
  /** Delay before the first retry; doubles each time, with +-20% jitter (default 1000 ms). */
  baseDelayMs?: number;
  /** Told about each retry (to print a line for the user). */
  onRetry?: (err: RemoteTransferError, attempt: number, delayMs: number) => void;
}

/**
 * Runs a network git command, retrying transient failures with exponential backoff. Only for operations
 * that are safe to repeat: fetches, and pushes of content-named refs that are never rewritten.
 */
export async function runNetworkGit(what: string, url: string, args: string[], opts: GitRunOptions & NetworkOptions): Promise<GitRunResult> {
  const attempts = Math.max(1, opts.retry?.attempts ?? 4);
  const base = opts.retry?.baseDelayMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    const r = await runGit(args, { ...opts, okCodes: undefined });
    if (r.status === 0 || opts.accept?.(r)) return r;
    const transient = isTransientFailure(r.stderr);
    const detail = lastLines(r.stderr) || `git ${args[0]} exited ${r.status}`;
    const err = new RemoteTransferError(what, url, detail, transient, attempt);
    if (!transient || attempt >= attempts) throw err;
    const delay = Math.round(base * 2 ** (attempt - 1) * (0.8 + 0.4 * Math.random()));
    opts.retry?.onRetry?.(err, attempt, delay);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function lastLines(text: string, n = 4): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).slice(-n).join(' / ');
}

/** Variables that point git at one repository; stripped before running git on another one. */
const REPO_VARS = [
  'GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR', 'GIT_NAMESPACE', 'GIT_PREFIX', 'GIT_QUARANTINE_PATH', 'GIT_INTERNAL_SUPER_PREFIX', 'GIT_SHALLOW_FILE',
];

/**
 * The environment for git commands of a transfer: the caller's (credential helpers, GIT_SSH_COMMAND,
 * proxies and `git -c` settings carry over), in the C locale so messages and progress can be parsed.
 * With `gitDir`, git works on that repository instead of the one the caller is in.
 */
export function transferEnv(base: NodeJS.ProcessEnv, gitDir?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, LC_ALL: 'C', LANGUAGE: 'C', GIT_TERMINAL_PROMPT: base.GIT_TERMINAL_PROMPT };
  if (env.GIT_TERMINAL_PROMPT === undefined) delete env.GIT_TERMINAL_PROMPT;
  if (gitDir !== undefined) {
    for (const k of REPO_VARS) delete env[k];
    env.GIT_DIR = gitDir;
  }
  return env;
}
