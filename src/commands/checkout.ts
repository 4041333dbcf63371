// Owns writing checkpoints into the working tree without git in between: `git tensor checkout`, and the
// direct write of large files that the filter process defers until the git command that smudged them is
// done (docs/store.md, "Checkout of large files"). git holds a smudged file whole in memory and takes it
// in 64 KiB packets; here the file goes from the store to disk a few MiB at a time.

import { createHash } from 'node:crypto';
import { type BigIntStats, closeSync, fchmodSync, fstatSync, futimesSync, lstatSync, openSync, readSync, renameSync, statSync, unlinkSync, write } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { GitTensorError, MissingObjectsError } from '../errors/index.js';
import { looksLikePointer, MAX_POINTER_BYTES, parsePointer, Pointer, pointerTensorLengths, serializePointer } from '../format/pointer.js';
import { gitRaw } from '../git/exec.js';
import { StatUpdate, updateIndexStat } from '../git/index-stat.js';
import { tempPathFor } from '../store/atomic.js';
import { planRestore, validatePointer } from '../store/checkpoint.js';
import { fileIdentity, WrittenFiles } from '../store/written-files.js';
import { WindowBuffers } from '../store/store.js';
import { nativePreallocate } from '../kernels/addon.js';
import { LazyFetcher } from '../remote/lazy-fetch.js';
import { openRepo, RepoContext } from './context.js';

function trace(line: string): void {
  if (process.env.GIT_TENSOR_TRACE === '1') process.stderr.write(`git-tensor: ${line}\n`);
}

/** Files at least this large are written by git-tensor rather than through git (tensor.checkoutThreshold). */
export const DEFAULT_CHECKOUT_THRESHOLD = 64 * 1024 * 1024;

/** `tensor.checkoutThreshold` in bytes (git's k/m/g suffixes); a negative value sends every file through git. */
export function checkoutThreshold(cwd?: string): number {
  const r = gitRaw(['config', '--type=int', '--get', 'tensor.checkoutThreshold'], { cwd, okCodes: [1] });
  if (r.status !== 0) return DEFAULT_CHECKOUT_THRESHOLD;
  const n = Number(r.stdout.toString().trim());
  return n < 0 ? Infinity : n;
}

/**
 * The pointer text when it is exactly what clean gives back for the file it stands for. Only such a
 * pointer may be replaced by its file: `git status` must see the same blob either way.
 */
export function canonicalPointer(text: string, file: string): Pointer | undefined {
  try {
    const p = parsePointer(text, file);
    return serializePointer(p) === text ? p : undefined;
  } catch {
    return undefined;
  }
}

/** A working-tree file that holds a pointer, to be replaced by the bytes it stands for. */
export interface PendingFile {
  /** Relative to the working tree's top, with '/' separators (git's pathname). */
  path: string;
  pointer: string;
}

/** 'written' with the file's stat taken right after the rename, or 'changed' (left alone). */
export type WriteOutcome = { written: BigIntStats } | 'changed';

/** Where the temp file for `file` goes: the store's tmp/ when on the same filesystem (never seen by git status). */
function tempDirFor(repo: RepoContext, file: string): string {
  try {
    if (statSync(repo.store.tmpDir).dev === statSync(dirname(file)).dev) return repo.store.tmpDir;
  } catch {
    // fall through: next to the file
  }
  return dirname(file);
}

/** The file's bytes when it is a regular file of exactly `expected`'s length, else null. */
function readIfLength(file: string, expected: number): Buffer | null {
  let fd: number;
  try {
    const st = lstatSync(file);
    if (!st.isFile() || st.size !== expected) return null;
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(expected);
    let got = 0;
    while (got < expected) {
      const n = readSync(fd, buf, got, expected - got, got);
      if (n === 0) return null;
      got += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Tensors decoded at once per file: each keeps a decode window and a write in flight on libuv's pool (4 threads). */
const TENSORS_IN_FLIGHT = 2;

/** pwrite on the libuv pool; resolves with the bytes written. */
function writeAt(fd: number, bytes: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => write(fd, bytes, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * Writes the bytes `pointer` stands for into `fd`: the prefix and header, then the tensors, each at its
 * own offset, several at once so the pool's threads all decode and write while this thread only plans.
 * (restore() yields the same bytes in order, one tensor at a time, for git's pipe.) Every chunk is
 * verified on the way (streamChunks).
 */
async function writeContent(repo: RepoContext, pointer: Pointer, file: string, fd: number): Promise<void> {
  const killAfter = Number(process.env.GIT_TENSOR_TEST_KILL_AFTER_BYTES ?? NaN); // tests: a writer killed mid-file
  let total = 0;
  const put = async (bytes: Uint8Array, at: number): Promise<void> => {
    for (let k = 0; k < bytes.length; ) k += await writeAt(fd, bytes, k, bytes.length - k, at + k);
    total += bytes.length;
    if (total >= killAfter) process.kill(process.pid, 'SIGKILL');
  };
  const buffers = new WindowBuffers();
  const stream = async (id: string, at: number, tensor?: string): Promise<number> => {
    for await (const piece of repo.store.streamChunks(id, { file, tensor }, undefined, undefined, buffers)) {
      await put(piece, at);
      buffers.give(piece);
      at += piece.length;
    }
    return at;
  };
  if (pointer.kind === 'opaque') {
    if ((await stream(pointer.id, 0)) !== pointer.size) throw new GitTensorError('E_INTERNAL', `${file}: wrote a different size than the pointer says`, { exitCode: 70 });
    return;
  }
  const header = repo.store.read(pointer.header.id, { file });
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  await put(prefix, 0);
  await put(header, 8);
  const lengths = pointerTensorLengths(pointer, file);
  const starts: number[] = [];
  let at = 8 + header.length;
  for (const n of lengths) {
    starts.push(at);
    at += n;
  }
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < pointer.tensors.length) {
      const k = next++;
      const t = pointer.tensors[k]!;
      if ((await stream(t.id, starts[k]!, t.name)) !== starts[k]! + lengths[k]!) {
        throw new GitTensorError('E_INTERNAL', `${file}: tensor \`${t.name}\` decoded to a different size than its shape needs`, { exitCode: 70 });
      }
    }
  };
  // Every worker has stopped before the caller may close the descriptor, whichever failed first.
  const outcomes = await Promise.allSettled(Array.from({ length: TENSORS_IN_FLIGHT }, () => worker().catch((err) => {
    failed = true;
    throw err;
  })));
  for (const o of outcomes) if (o.status === 'rejected') throw o.reason;
  if (total !== pointer.size) throw new GitTensorError('E_INTERNAL', `${file}: wrote ${total} bytes, the pointer says ${pointer.size}`, { exitCode: 70 });
}

/**
 * Replaces the working-tree file at `f.path`, which must still hold exactly `f.pointer`, with the bytes
 * the pointer stands for: written to a temp file, then renamed over the pointer, so the path holds the
 * pointer or the whole file, never part of it. A file that no longer holds the pointer (changed since)
 * is left alone ('changed'). The store must hold every object (fetch first).
 */
export async function writeFromPointer(repo: RepoContext, f: PendingFile, written: WrittenFiles): Promise<WriteOutcome> {
  const file = join(repo.topLevel, f.path);
  const pointerBytes = Buffer.from(f.pointer, 'utf8');
  const before = fileIdentity(file);
  const now = readIfLength(file, pointerBytes.length);
  if (!before || !now || !now.equals(pointerBytes)) return 'changed';
  const pointer = canonicalPointer(f.pointer, f.path);
  if (!pointer) return 'changed';
  const plan = planRestore(repo.store, f.pointer, f.path);
  if (plan.missing.length) throw new MissingObjectsError(plan.missing, { file: f.path });
  validatePointer(repo.store, pointer, f.path);
  const mode = lstatSync(file).mode & 0o777;
  const tmp = tempPathFor(file, tempDirFor(repo, file));
  const fd = openSync(tmp, 'wx', 0o600);
  let ours: BigIntStats;
  try {
    // Blocks reserved up front: a disk too small fails here, before any byte, and the rename below does
    // not have to allocate the whole file first (ext4 does on a rename over a file: 0.5 s per GiB).
    nativePreallocate()?.(fd, pointer.size);
    await writeContent(repo, pointer, f.path, fd);
    fchmodSync(fd, mode); // git created the pointer file with the index's mode and the user's umask
    // git trusts an index entry's stat only for a file last modified before the index was written (in
    // whole seconds, as Debian's git is built): dated two seconds back, the file is not "racily clean",
    // and git status does not send it through the filter again each time until a later index write.
    const seconds = Date.now() / 1000;
    futimesSync(fd, seconds, seconds - 2);
    ours = fstatSync(fd, { bigint: true });
    closeSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  // Last look before the rename: a file changed while the bytes were being written is not overwritten.
  if (fileIdentity(file) !== before) {
    unlinkSync(tmp);
    return 'changed';
  }
  renameSync(tmp, file);
  // The stat git's index and WrittenFiles will trust: taken from the path, and only if the path still
  // holds our inode (rename changes the ctime, so the descriptor's stat would not do).
  const st = lstatSync(file, { bigint: true });
  if (st.ino !== ours!.ino || st.dev !== ours!.dev) return 'changed';
  written.record(f.path, f.pointer, st);
  return { written: st };
}

/** The id git gives `text` as a blob, in the repository's object format. */
function blobId(text: string, format: string): string {
  const body = Buffer.from(text, 'utf8');
  return createHash(format === 'sha256' ? 'sha256' : 'sha1').update(`blob ${body.length}\0`).update(body).digest('hex');
}

/**
 * Tells git that the files just written hold what its index says, without reading them again. git
 * compares an entry's size with the file's first and calls a file whose size differs modified without
 * looking at its content, so a refresh cannot take the new stat; the index entries of paths that are
 * stage 0 and name exactly the pointer the file was written from get the file's stat written into them
 * (git/index-stat.ts). Where the index cannot be edited that way (a split index), `git update-index`
 * re-adds those paths: git streams each file to the filter once more and clean answers from
 * WrittenFiles (a stat, no hashing). Nothing else is staged as a side effect. Best effort: where git's
 * index lock is held, the next `git status` does the work.
 */
export function refreshIndex(repo: RepoContext, files: readonly (PendingFile & { stat: BigIntStats })[]): boolean {
  if (!files.length) return true;
  const literal = { ...process.env, GIT_LITERAL_PATHSPECS: '1' };
  const [format, indexPath] = gitRaw(['rev-parse', '--show-object-format', '--git-path', 'index'], { cwd: repo.topLevel })
    .stdout.toString('utf8').split('\n');
  const updates: StatUpdate[] = files.map((f) => ({ path: f.path, oid: blobId(f.pointer, format!), stat: f.stat }));
  const edited = updateIndexStat(resolve(repo.topLevel, indexPath!), updates, format!);
  // Entries the edit left alone do not name the pointer (a merge left them unmerged, say): nothing to record.
  if (edited) return true;
  const rest = files;
  const staged = new Map<string, string[]>();
  let listing = '';
  for (let k = 0; k < rest.length; k += 500) {
    const batch = rest.slice(k, k + 500).map((f) => f.path);
    listing += gitRaw(['ls-files', '-s', '-z', '--', ...batch], { cwd: repo.topLevel, env: literal }).stdout.toString('utf8');
  }
  for (const rec of listing.split('\0')) {
    const m = /^\d+ ([0-9a-f]+) (\d)\t(.*)$/s.exec(rec);
    if (m) staged.set(m[3]!, [...(staged.get(m[3]!) ?? []), `${m[2]} ${m[1]}`]);
  }
  const paths = rest.filter((f) => staged.get(f.path)?.join() === `0 ${blobId(f.pointer, format!)}`).map((f) => f.path);
  if (!paths.length) return true;
  const r = gitRaw(['update-index', '-q', '-z', '--stdin'], {
    cwd: repo.topLevel, env: literal, input: Buffer.from(paths.map((p) => `${p}\0`).join(''), 'utf8'), okCodes: [1, 128],
  });
  return r.status === 0;
}

export interface WriteReport {
  written: string[];
  /** Files that no longer held the pointer when their turn came (changed by someone else): left alone. */
  changed: string[];
  /** Whether git's index now records the written files' stat (else the next `git status` does it). */
  refreshed: boolean;
}

/**
 * Writes each pending file from its pointer, then refreshes git's index for them. Objects the store
 * lacks are fetched first through `lazy` (one batch); a file whose objects stay missing fails the call
 * after the others are written.
 */
export async function writePending(repo: RepoContext, files: readonly PendingFile[], lazy?: LazyFetcher): Promise<WriteReport> {
  const written = new WrittenFiles(repo.store.dir, repo.topLevel);
  const report: WriteReport = { written: [], changed: [], refreshed: true };
  const missing = new Set<string>();
  for (const f of files) for (const id of planRestore(repo.store, f.pointer, f.path).missing) missing.add(id);
  if (missing.size && lazy) await lazy.fetch([...missing], { file: files[0]?.path });
  let failure: unknown;
  const stats = new Map<string, BigIntStats>();
  // git's own progress has ended by now; a large file takes seconds, so say what is being written.
  const progress = !!process.stderr.isTTY && process.env.GIT_TENSOR_TRACE !== '1';
  for (const [k, f] of files.entries()) {
    const started = Date.now();
    if (progress) process.stderr.write(`\rgit-tensor: writing ${f.path} (${k + 1}/${files.length})\x1b[K`);
    try {
      const outcome = await writeFromPointer(repo, f, written);
      if (outcome === 'changed') report.changed.push(f.path);
      else {
        report.written.push(f.path);
        stats.set(f.path, outcome.written);
      }
      trace(`${f.path}: ${outcome === 'changed' ? 'changed meanwhile, left alone' : 'written'} in ${((Date.now() - started) / 1000).toFixed(2)} s`);
    } catch (err) {
      failure ??= err;
    }
  }
  if (progress) process.stderr.write(`\rgit-tensor: wrote ${report.written.length} large file(s)\x1b[K\n`);
  const started = Date.now();
  report.refreshed = refreshIndex(repo, files.filter((f) => stats.has(f.path)).map((f) => ({ ...f, stat: stats.get(f.path)! })));
  trace(`index refresh of ${report.written.length} file(s): ${((Date.now() - started) / 1000).toFixed(2)} s`);
  if (failure) throw failure;
  return report;
}

/** Tracked paths (relative to the top) under `paths` whose filter attribute is git-tensor's. */
function trackedTensorPaths(repo: RepoContext, paths: readonly string[]): string[] {
  const listed = gitRaw(['ls-files', '-z', '--full-name', '--', ...paths])
    .stdout.toString('utf8').split('\0').filter(Boolean);
  const unique = [...new Set(listed)];
  if (!unique.length) return [];
  const attrs = gitRaw(['check-attr', '-z', '--stdin', 'filter'], { cwd: repo.topLevel, input: unique.join('\0') + '\0' })
    .stdout.toString('utf8').split('\0');
  const out: string[] = [];
  for (let k = 0; k + 2 < attrs.length; k += 3) if (attrs[k + 2] === 'tensor') out.push(attrs[k]!);
  return out;
}

/** The pointer a working-tree file holds, if it holds one that can be written out. */
function pointerIn(file: string, path: string): string | undefined {
  let st;
  try {
    st = lstatSync(file);
  } catch {
    return undefined;
  }
  if (!st.isFile() || st.size > MAX_POINTER_BYTES || st.size < 32) return undefined;
  const bytes = readIfLength(file, st.size);
  if (!bytes || !looksLikePointer(bytes.subarray(0, 32))) return undefined;
  const text = bytes.toString('utf8');
  return canonicalPointer(text, path) ? text : undefined;
}

export interface CheckoutOptions {
  /** Pathspecs (relative to the current directory); none: the whole working tree. */
  paths?: string[];
}

/**
 * `git tensor checkout [<path>...]`: replaces every tracked file of the working tree that holds a pointer
 * (a large file a git command left for git-tensor to write and that it could not finish, or a checkout
 * made with GIT_TENSOR_SKIP_SMUDGE=1) with the bytes it stands for, fetching missing objects from the
 * remote. Whatever the size: the threshold only decides what the filter leaves for later.
 */
export async function checkout(opts: CheckoutOptions = {}): Promise<WriteReport> {
  const repo = openRepo();
  if (!repo.topLevel) throw new GitTensorError('E_BARE_REPO', 'a bare repository has no working tree to write files into', { exitCode: 2, hint: 'Run it in a clone with a working tree.' });
  const pending: PendingFile[] = [];
  for (const path of trackedTensorPaths(repo, opts.paths?.length ? opts.paths : [':/'])) {
    const pointer = pointerIn(join(repo.topLevel, path), path);
    if (pointer) pending.push({ path, pointer });
  }
  const lazy = new LazyFetcher(repo);
  try {
    return await writePending(repo, pending, lazy);
  } finally {
    lazy.close();
    repo.store.close();
  }
}
