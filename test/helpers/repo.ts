// Owns the e2e harness: throw-away git repositories driven by the real git binary, with git-tensor
// found on PATH from this checkout's bin/ folder, in a hermetic environment (own HOME, no system config,
// no GIT_* variables inherited from whoever runs the tests).
//
// Usage:
//   const repo = makeRepo();                      // git init + git tensor install + track '*.safetensors'
//   repo.write('model.safetensors', bytes);
//   repo.git(['add', '.']);                       // throws with git's stderr unless it exits 0
//   const r = repo.git(['checkout', 'x'], { allowFail: true });   // { status, stdout, stderr }
//
// Repositories made inside a test are removed after that test; those made in beforeAll (scope: 'file')
// after the file's last test.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach } from 'vitest';

/** The project root, found from this file's location (test/helpers/). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Holds the git-tensor shim that git runs as `git tensor` and as the filter process. */
export const BIN_DIR = join(PROJECT_ROOT, 'bin');
/** Shared material next to the project (DESIGN.md, real safetensors fixtures). */
export const SHARED_DIR = resolve(PROJECT_ROOT, '..', 'shared');

export interface RunOptions {
  input?: string | Buffer;
  /** Added to (or, with undefined values, removed from) the repository's environment. */
  env?: Record<string, string | undefined>;
  /** Return a non-zero exit instead of throwing. */
  allowFail?: boolean;
  /** Working directory relative to the repository root. */
  cwd?: string;
  /** Kill the command after this long (default 90 s): a hung filter fails the test instead of the run. */
  timeoutMs?: number;
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
  /** stdout as bytes, for blobs. */
  stdoutBytes: Buffer;
}

export interface RepoOptions {
  /** Run `git tensor install` (default true). */
  install?: boolean;
  /** Patterns for `git tensor track`; false or [] to track nothing (default ['*.safetensors']). */
  track?: string[] | false;
  /** 'test' (default): removed after the current test; 'file': after the test file. */
  scope?: 'test' | 'file';
  /** Commit the .gitattributes that track wrote, as a user would (default true when tracking). */
  commitAttributes?: boolean;
}

export interface Repo {
  /** The working tree. */
  readonly dir: string;
  /** The temp folder holding HOME and the working tree; removed on cleanup. */
  readonly root: string;
  readonly home: string;
  readonly env: NodeJS.ProcessEnv;
  git(args: string[], opts?: RunOptions): RunResult;
  gitTensor(args: string[], opts?: RunOptions): RunResult;
  path(rel: string): string;
  write(rel: string, data: Uint8Array | string): void;
  read(rel: string): Buffer;
  exists(rel: string): boolean;
  remove(rel: string): void;
  /** <git-dir>/tensor, where the store lives. */
  readonly storeDir: string;
  /** Sum of the sizes of the files under <store>/packs (0 when absent). */
  packBytes(): number;
  /** Names of the files under <store>/packs, sorted. */
  packFiles(): string[];
  /** Convenience: `git add` the paths and commit them with `message`. */
  commit(paths: string[], message: string): void;
}

const toClean: { test: string[]; file: string[] } = { test: [], file: [] };

afterEach(() => {
  for (const d of toClean.test.splice(0)) rmSync(d, { recursive: true, force: true });
});
afterAll(() => {
  for (const d of toClean.file.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The environment every git command of a test sees: hermetic, with bin/ first on PATH. */
export function hermeticEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // A test run from a git hook would otherwise act on the outer repository.
    if (k.startsWith('GIT_')) continue;
    env[k] = v;
  }
  return {
    ...env,
    PATH: [BIN_DIR, process.env.PATH ?? ''].join(delimiter),
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    LC_ALL: 'C.UTF-8',
  };
}

function writeHome(home: string): void {
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, '.gitconfig'), [
    '[user]', '\tname = Test User', '\temail = test@example.com',
    '[init]', '\tdefaultBranch = main',
    '[advice]', '\tdetachedHead = false',
    '[core]', '\tautocrlf = false',
    '',
  ].join('\n'));
}

export function run(cmd: string, args: string[], cwd: string, baseEnv: NodeJS.ProcessEnv, opts: RunOptions = {}): RunResult {
  const env = { ...baseEnv };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const timeout = opts.timeoutMs ?? 90_000;
  const r = spawnSync(cmd, args, { cwd: opts.cwd ? join(cwd, opts.cwd) : cwd, env, input: opts.input, maxBuffer: 1 << 30, timeout, killSignal: 'SIGKILL' });
  if (r.error) {
    const timedOut = (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
    throw new Error(`${cmd} ${args.join(' ')} ${timedOut ? `did not finish within ${timeout} ms (hung?)` : `could not run: ${r.error.message}`}` +
      `\n--- stderr\n${r.stderr?.toString('utf8') ?? ''}`);
  }
  const result: RunResult = {
    status: r.status ?? -1,
    stdout: r.stdout.toString('utf8'),
    stderr: r.stderr.toString('utf8'),
    stdoutBytes: r.stdout,
  };
  if (result.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal} in ${cwd}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`);
  }
  return result;
}

/** run() without blocking the event loop (a long spawnSync starves vitest's worker RPC). */
export function runAsync(cmd: string, args: string[], cwd: string, baseEnv: NodeJS.ProcessEnv, opts: RunOptions = {}): Promise<RunResult> {
  const env = { ...baseEnv };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const timeout = opts.timeoutMs ?? 90_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ? join(cwd, opts.cwd) : cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    // A command that exits (or is killed, as the fault tests do) before reading its input closes the
    // pipe: the EPIPE is not the test's business, the exit status is, and unhandled it fails the whole run.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      const result: RunResult = { status: code ?? -1, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes };
      if (result.status !== 0 && !opts.allowFail) {
        reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}${signal === 'SIGKILL' ? ` (killed after ${timeout} ms?)` : ''} in ${cwd}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`));
      } else {
        resolvePromise(result);
      }
    });
  });
}

/** Like repo.git(), without blocking the test worker: for commands that move hundreds of megabytes. */
export function gitAsync(repo: Repo, args: string[], opts?: RunOptions): Promise<RunResult> {
  return runAsync('git', args, repo.dir, repo.env, opts);
}

export function makeRepo(opts: RepoOptions = {}): Repo {
  const root = mkdtempSync(join(tmpdir(), 'git-tensor-e2e-'));
  (opts.scope === 'file' ? toClean.file : toClean.test).push(root);
  const home = join(root, 'home');
  writeHome(home);
  const dir = join(root, 'repo');
  mkdirSync(dir);
  const env = hermeticEnv(home);
  const path = (rel: string) => join(dir, rel);
  const storeDir = join(dir, '.git', 'tensor');
  const packsDir = join(storeDir, 'packs');
  const repo: Repo = {
    dir,
    root,
    home,
    env,
    storeDir,
    git: (args, o) => run('git', args, dir, env, o),
    gitTensor: (args, o) => run('git', ['tensor', ...args], dir, env, o),
    path,
    write(rel, data) {
      mkdirSync(dirname(path(rel)), { recursive: true });
      writeFileSync(path(rel), data);
    },
    read: (rel) => readFileSync(path(rel)),
    exists: (rel) => existsSync(path(rel)),
    remove: (rel) => rmSync(path(rel), { recursive: true, force: true }),
    packFiles: () => (existsSync(packsDir) ? readdirSync(packsDir).sort() : []),
    packBytes: () => (existsSync(packsDir) ? readdirSync(packsDir).reduce((s, f) => s + statSync(join(packsDir, f)).size, 0) : 0),
    commit(paths, message) {
      repo.git(['add', '--', ...paths]);
      repo.git(['commit', '-q', '-m', message]);
    },
  };
  repo.git(['init', '-q']);
  if (opts.install !== false) repo.gitTensor(['install']);
  const patterns = opts.track === undefined ? ['*.safetensors'] : opts.track || [];
  if (patterns.length) {
    repo.gitTensor(['track', ...patterns]);
    if (opts.commitAttributes !== false) repo.commit(['.gitattributes'], 'track checkpoints with git-tensor');
  }
  return repo;
}

/** The pointer text git committed for `path` at `rev` (the blob, not the smudged file). */
export function pointerAt(repo: Repo, rev: string, path: string): string {
  return repo.git(['cat-file', 'blob', `${rev}:${path}`]).stdout;
}

/** `tensor "<name>" DTYPE [shape] id` lines of a pointer, parsed. */
export function pointerTensors(pointer: string): { name: string; dtype: string; shape: number[]; id: string }[] {
  return pointer.split('\n').filter((l) => l.startsWith('tensor ')).map((l) => {
    const m = /^tensor ("(?:[^"\\]|\\.)*") (\S+) (\[[0-9,]*\]) ([0-9a-f]{64})$/.exec(l);
    if (!m) throw new Error(`unexpected pointer line: ${l}`);
    return { name: JSON.parse(m[1]!) as string, dtype: m[2]!, shape: JSON.parse(m[3]!) as number[], id: m[4]! };
  });
}
