// Owns running the real git binary: every git invocation of git-tensor goes through here, so errors
// name the failing command and no shell is ever involved.

import { spawnSync } from 'node:child_process';
import { isAbsolute, resolve } from 'node:path';
import { GitCommandError, GitTensorError } from '../errors/index.js';

export interface GitOptions {
  cwd?: string;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  /** Exit codes that are answers, not failures (e.g. 1 from `git config --get` for an unset key). */
  okCodes?: number[];
}

export interface GitResult {
  status: number;
  stdout: Buffer;
  stderr: string;
}

export function gitRaw(args: string[], opts: GitOptions = {}): GitResult {
  const r = spawnSync('git', args, {
    cwd: opts.cwd,
    input: opts.input,
    env: opts.env ?? process.env,
    maxBuffer: 1 << 30,
  });
  if (r.error) throw new GitTensorError('E_GIT_MISSING', `cannot run git: ${r.error.message}`, { hint: 'Install git >= 2.39 and put it on PATH.' });
  const status = r.status ?? -1;
  const result = { status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
  if (status !== 0 && !(opts.okCodes ?? []).includes(status)) throw new GitCommandError(args, r.status, result.stderr);
  return result;
}

/** Runs git and returns stdout as text without the trailing newline. */
export function git(args: string[], opts: GitOptions = {}): string {
  return gitRaw(args, opts).stdout.toString('utf8').replace(/\n$/, '');
}

export interface RepoPaths {
  /** The working tree root ('' in a bare repository). */
  topLevel: string;
  /** The git directory shared by all worktrees; the tensor store lives in <commonDir>/tensor. */
  commonDir: string;
}

export function repoPaths(cwd = process.cwd()): RepoPaths {
  const r = gitRaw(['rev-parse', '--is-bare-repository', '--git-common-dir', '--show-toplevel'], { cwd, okCodes: [128] });
  if (r.status !== 0) {
    throw new GitTensorError('E_NOT_A_REPO', `not in a git repository: ${cwd}`, { hint: 'Run it inside a repository, or create one with `git init`.', exitCode: 2 });
  }
  const [bare, common, top] = r.stdout.toString('utf8').split('\n');
  const commonDir = isAbsolute(common!) ? common! : resolve(cwd, common!);
  return { topLevel: bare === 'true' ? '' : top ?? '', commonDir };
}
