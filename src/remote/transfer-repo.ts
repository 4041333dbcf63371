// Owns the scratch git repositories that tensor packs travel through. A pack is uploaded as a blob and
// downloaded as a blob; keeping those blobs out of the user's repository means the model's bytes are never
// stored twice on the user's disk (once in the tensor store, once in .git/objects).
//
// A transfer repository is a bare repository under <store>/tmp whose config includes the user's
// repository config, so the host sees the same credentials, proxies, `http.*` and `url.*.insteadOf`
// settings as a plain `git push`. Hooks are switched off, auto-gc too, and packs larger than 1 MiB are
// streamed rather than read into memory (core.bigFileThreshold). It is deleted when the transfer ends;
// one left by a killed process is removed by the next transfer.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { CatFile } from '../git/cat-file.js';
import { GitPackWriter } from '../git/pack-writer.js';
import { isRunning } from '../store/atomic.js';
import { GitRunOptions, GitRunResult, NetworkOptions, runGit, runNetworkGit, transferEnv } from './git-run.js';
import { GitTensorError } from '../errors/index.js';

const PREFIX = 'transfer-';

export interface TransferRepoOptions {
  /** Parent folder (normally <store>/tmp). */
  parent: string;
  /** The user's repository config file, included so the host sees the same settings as plain git. */
  userConfig?: string;
  /** Environment of the caller (credentials, proxies, GIT_SSH_COMMAND, GIT_CONFIG_PARAMETERS). */
  baseEnv: NodeJS.ProcessEnv;
}

/** A root commit to create: its ref, message, and the files its tree holds (by name in the tree). */
export interface TransferCommit {
  ref: string;
  message: string;
  files: { name: string; path: string }[];
}

export class TransferRepo {
  private constructor(readonly dir: string, private readonly env: NodeJS.ProcessEnv) {}

  static async create(opts: TransferRepoOptions): Promise<TransferRepo> {
    removeAbandoned(opts.parent);
    const dir = join(opts.parent, `${PREFIX}${process.pid}-${randomBytes(4).toString('hex')}.git`);
    mkdirSync(opts.parent, { recursive: true });
    const env = transferEnv(opts.baseEnv, dir);
    const init = await runGit(['init', '--bare', '-q', dir], { env: transferEnv(opts.baseEnv) });
    if (init.status !== 0) throw new GitTensorError('E_GIT', `cannot create a transfer repository in ${opts.parent}: ${init.stderr}`);
    const hooks = join(dir, 'no-hooks');
    mkdirSync(hooks);
    // The include comes first so the settings after it win over the user's (a bare repository, no hooks).
    writeFileSync(join(dir, 'config'), [
      ...(opts.userConfig ? ['[include]', `\tpath = ${quoteConfig(opts.userConfig)}`] : []),
      '[core]', '\trepositoryformatversion = 0', '\tbare = true', `\thooksPath = ${quoteConfig(hooks)}`,
      // Stream big blobs, store packs without zlib (tensor packs are compressed already, or do not compress),
      // and map packs in small windows: resident memory stays small whatever the pack size.
      '\tbigFileThreshold = 1m', '\tcompression = 0', '\tpackedGitWindowSize = 1m', '\tpackedGitLimit = 32m',
      '\tlogAllRefUpdates = false',
      '[gc]', '\tauto = 0',
      '[maintenance]', '\tauto = false',
      '[fetch]', '\tunpackLimit = 1', '\twriteCommitGraph = false',
      '[transfer]', '\tunpackLimit = 1',
      '[pack]', '\twindow = 0',
      '',
    ].join('\n'));
    return new TransferRepo(dir, env);
  }

  run(args: string[], opts: Partial<GitRunOptions> = {}): Promise<GitRunResult> {
    return runGit(args, { ...opts, env: { ...this.env, ...(opts.env ?? {}) } });
  }

  async plumb(args: string[], opts: Partial<GitRunOptions> = {}): Promise<string> {
    const r = await this.run(args, opts);
    if (r.status !== 0) throw new GitTensorError('E_GIT', `git ${args.join(' ')} failed in ${this.dir}: ${r.stderr}`);
    return r.stdout.toString('utf8').trim();
  }

  network(what: string, url: string, args: string[], opts: Partial<GitRunOptions> & NetworkOptions = {}): Promise<GitRunResult> {
    return runNetworkGit(what, url, args, { ...opts, env: { ...this.env, ...(opts.env ?? {}) } });
  }

  /**
   * Creates one root commit per entry, its tree holding the given files as blobs, and points the entry's
   * ref at it. Every object goes into one git pack written here (git/pack-writer.ts: git fast-import took
   * 25 s a GiB for the same), then one `git update-ref --stdin` creates the refs, all or none. Commits
   * have a fixed identity and date (the ones fast-import gave them before), so identical content gives
   * identical commits. A file named by several entries is stored once.
   */
  async writeCommits(commits: readonly TransferCommit[]): Promise<void> {
    if (!commits.length) return;
    const paths = [...new Set(commits.flatMap((c) => c.files.map((f) => f.path)))];
    const pack = GitPackWriter.create(join(this.dir, 'objects', 'pack'), paths.length + 2 * commits.length);
    const updates: string[] = [];
    try {
      const blobs = new Map<string, string>();
      for (const path of paths) {
        blobs.set(path, pack.addBlobFile(path));
        await yieldToEventLoop(); // between files: a push running meanwhile (upload.ts) is served
      }
      const ident = 'git-tensor <git-tensor@localhost> 0 +0000';
      for (const c of commits) {
        const entries = [...c.files].sort((x, y) => (x.name < y.name ? -1 : 1));
        const tree = pack.addObject('tree', Buffer.concat(entries.map((f) => Buffer.concat([Buffer.from(`100644 ${f.name}\0`), Buffer.from(blobs.get(f.path)!, 'hex')]))));
        const commit = pack.addObject('commit', Buffer.from(`tree ${tree}\nauthor ${ident}\ncommitter ${ident}\n\n${c.message}`));
        updates.push(`create ${c.ref} ${commit}\n`);
      }
      pack.finish();
    } catch (err) {
      pack.abort();
      throw err;
    }
    await this.plumb(['update-ref', '--stdin'], { input: updates.join('') });
  }

  /** Reads small blobs (pack indexes) through one `git cat-file --batch`. Missing ones are undefined. */
  async readSmallBlobs(revs: string[]): Promise<(Buffer | undefined)[]> {
    if (!revs.length) return [];
    const batch = new CatFile({ env: this.env });
    try {
      const out: (Buffer | undefined)[] = [];
      for await (const head of batch.objects(revs)) out.push(head.size >= 0 ? await batch.reader.read() : undefined);
      return out;
    } finally {
      batch.close();
    }
  }

  /** Writes `<rev>` (a blob) to `path`, streaming. */
  async catBlob(rev: string, path: string): Promise<void> {
    const r = await this.run(['cat-file', 'blob', rev], { stdoutFile: path });
    if (r.status !== 0) throw new GitTensorError('E_GIT', `cannot read ${rev} from the transfer repository: ${r.stderr}`);
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function quoteConfig(path: string): string {
  return `"${path.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Removes transfer repositories whose process is gone (a push or fetch that was killed). */
function removeAbandoned(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^transfer-(\d+)-[0-9a-f]+\.git$/.exec(name);
    if (!m) continue;
    const path = join(parent, name);
    let old = false;
    try {
      old = Date.now() - statSync(path).mtimeMs > ABANDONED_AFTER_MS;
    } catch {
      continue;
    }
    if (isRunning(Number(m[1])) && !old) continue;
    rmSync(path, { recursive: true, force: true });
  }
}

/** A transfer repository holds one group of packs (<= 512 MiB); one untouched this long is abandoned whatever its pid says. */
const ABANDONED_AFTER_MS = 6 * 3600_000;
