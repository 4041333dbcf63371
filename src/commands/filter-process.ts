// Owns `git-tensor filter-process`: git's long-running clean/smudge filter, one process per git command.

import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { formatError, GitTensorError, MissingObjectsError, StoreWriteError } from '../errors/index.js';
import { serveFilterProcess } from '../git/filter-process.js';
import { looksLikePointer, MAX_POINTER_BYTES, parsePointer, Pointer } from '../format/pointer.js';
import { CatFile } from '../git/cat-file.js';
import { tempPathFor } from '../store/atomic.js';
import { Ingest, planRestore, restore, validatePointer } from '../store/checkpoint.js';
import { openRepo } from './context.js';
import { ensureRoomFor } from './disk-room.js';
import { LazyFetcher } from '../remote/lazy-fetch.js';
import { readSlices, widenPipes } from '../git/pipes.js';
import { git, gitRaw } from '../git/exec.js';
import { invokingGitCommand } from '../git/invoker.js';
import { fileIdentity, WrittenFiles } from '../store/written-files.js';
import { canonicalPointer, checkoutThreshold, PendingFile, writePending } from './checkout.js';


/** git commands whose smudges only feed diff drivers and textconv. */
const DIFF_COMMANDS = new Set(['diff', 'show', 'log', 'whatchanged']);

/**
 * git commands whose cleans only compare working-tree files with the index: they take the blob id and
 * never write the blob, so the filter hashes and stores nothing (`git add` stores the file later).
 */
const COMPARE_ONLY_COMMANDS = new Set(['status']);

/**
 * git commands whose smudges write the working tree at the path git names. For these, a file of at
 * least tensor.checkoutThreshold bytes is handed to git as its pointer and written by this process once
 * git closes the filter, which git does at its exit and waits for (docs/store.md, "Checkout of large
 * files"). Others (archive, cat-file --filters, checkout-index, external diffs) get the bytes.
 */
const WORKTREE_COMMANDS = new Set([
  'checkout', 'switch', 'clone', 'merge', 'pull', 'rebase', 'reset', 'stash', 'restore', 'cherry-pick', 'revert',
  'am', 'read-tree', 'bisect', 'sparse-checkout',
]);

export interface FilterProcessOptions {
  input?: AsyncIterable<Buffer>;
  output?: Writable;
}

export async function filterProcess(opts: FilterProcessOptions = {}): Promise<void> {
  const repo = openRepo();
  const { store } = repo;
  const lazy = new LazyFetcher(repo);
  const skipSmudge = process.env.GIT_TENSOR_SKIP_SMUDGE === '1';
  let index: CatFile | undefined;
  /** The version git has in its index for a path: the natural delta base of the one being added. */
  const previousVersion = async (path: string): Promise<Pointer | undefined> => {
    index ??= new CatFile();
    const head = await index.ask(`:${path}`);
    if (!head || head.type !== 'blob' || head.size > MAX_POINTER_BYTES) return undefined;
    if (!looksLikePointer(await index.reader.peek(32))) return undefined;
    try {
      return parsePointer((await index.reader.read()).toString('utf8'), path);
    } catch {
      return undefined; // a damaged index entry only costs the delta
    }
  };
  if (!opts.input) widenPipes([0, 1]);
  const trace = (line: string) => {
    if (process.env.GIT_TENSOR_TRACE === '1') process.stderr.write(`git-tensor: ${line}\n`);
  };
  const invoker = opts.input ? null : invokingGitCommand();
  /**
   * `git diff`, `git show` and `git log -p` write both sides of a change to temporary files before they
   * run a diff driver or textconv, smudging each through this filter: seconds per GiB before the first
   * line. git-tensor's driver and textconv read tensors from the store by pointer (docs/diff.md), so for
   * those commands, when the path's diff driver is git-tensor's and no external diff or difftool takes
   * the files, the smudge hands back the pointer. GIT_TENSOR_DIFF_SMUDGE=1 turns this off.
   */
  const diffContext = !!invoker && DIFF_COMMANDS.has(invoker) && process.env.GIT_TENSOR_DIFF_SMUDGE !== '1' &&
    !process.env.GIT_EXTERNAL_DIFF && gitRaw(['config', '--get', 'diff.external'], { okCodes: [1] }).status === 1;
  // `git diff` and `git status` clean a changed working-tree file only to learn its blob id: hash,
  // store nothing.
  const compareOnly = (diffContext && invoker === 'diff') || (!!invoker && COMPARE_ONLY_COMMANDS.has(invoker));
  const comparedFiles = new Map<string, { key: string; pointer: Buffer }>();
  const feedsOnlyOurDiff = (path: string): boolean =>
    diffContext && git(['check-attr', 'diff', '--', path]).endsWith(': diff: tensor');
  const threshold = !skipSmudge && invoker && WORKTREE_COMMANDS.has(invoker) && repo.topLevel ? checkoutThreshold() : Infinity;
  /** Large files smudged as their pointer, to be written once git is done (the last version of each path). */
  const deferred = new Map<string, PendingFile>();
  const written = new WrittenFiles(store.dir, repo.topLevel);
  await serveFilterProcess(opts.input ?? readSlices(0), opts.output ?? process.stdout, {
    async clean(req, content) {
      // A file `git tensor checkout` wrote and nobody touched since (same inode, size, times): its pointer
      // is known, git's refresh costs a stat instead of a hashing.
      const wrote = written.lookup(req.pathname);
      if (wrote !== undefined) {
        for await (const _ of content) { /* git sends the file anyway */ }
        if (written.lookup(req.pathname) === wrote) {
          trace(`clean ${req.pathname}: written from its pointer by git-tensor and unchanged since, pointer reused`);
          return Buffer.from(wrote, 'utf8');
        }
        throw new GitTensorError('E_FILE_CHANGED', `${req.pathname} changed while git was reading it`, { data: { file: req.pathname }, hint: 'Run the git command again.' });
      }
      // `git diff` cleans the same file twice (to see that it changed, then for the diff itself): the
      // second time, an unchanged file (same size, times and inode) gets the first answer.
      const fileKey = compareOnly ? fileIdentity(join(repo.topLevel, req.pathname)) : null;
      const known = fileKey ? comparedFiles.get(req.pathname) : undefined;
      if (known && known.key === fileKey) {
        trace(`clean ${req.pathname}: unchanged since this git ${invoker} hashed it, ids reused`);
        return known.pointer; // the adapter drains the content git sends
      }
      if (compareOnly) trace(`clean ${req.pathname}: ids only, nothing stored (git ${invoker} compares, it does not add)`);
      const writer = store.beginWrite({ hashOnly: compareOnly });
      try {
        const ingest = new Ingest(writer, req.pathname, await previousVersion(req.pathname));
        for await (const bytes of content) await ingest.push(bytes);
        const pointer = Buffer.from(await ingest.finish(), 'utf8');
        writer.commit();
        if (fileKey && fileIdentity(join(repo.topLevel, req.pathname)) === fileKey) comparedFiles.set(req.pathname, { key: fileKey, pointer });
        return pointer;
      } catch (err) {
        writer.abort();
        throw err instanceof StoreWriteError ? err.forFile(req.pathname) : err;
      }
    },
    async smudge(req, content) {
      const received = await receiveBlob(content, store.tmpDir, skipSmudge);
      // Not a pointer (committed before the file was tracked, or a conflict left by a text merge): git's
      // content goes to the working tree untouched, as git-lfs does, so nothing is ever hidden or lost.
      if ('passThrough' in received) return received.passThrough;
      const blob = received.pointer;
      if (feedsOnlyOurDiff(req.pathname)) {
        trace(`smudge ${req.pathname}: left as a pointer for git ${invoker} (git-tensor's diff reads the store)`);
        return [blob];
      }
      let plan = planRestore(store, blob.toString('utf8'), req.pathname);
      // Objects not here yet (a lazy clone): download them from the remote, with the rest of this tree.
      if (plan.missing.length && (await lazy.fetch(plan.missing, { file: req.pathname, treeish: req.meta.treeish }))) {
        plan = planRestore(store, blob.toString('utf8'), req.pathname);
      }
      if (plan.missing.length) throw new MissingObjectsError(plan.missing, { file: req.pathname });
      // Room first: a file written now or after git exits must fit, or git is told before it writes anything.
      ensureRoomFor(join(repo.topLevel, req.pathname), plan.pointer.size, req.pathname);
      if (plan.pointer.size >= threshold) {
        const text = blob.toString('utf8');
        if (canonicalPointer(text, req.pathname)) {
          validatePointer(store, plan.pointer, req.pathname);
          trace(`smudge ${req.pathname}: ${plan.pointer.size} bytes, written by git-tensor after git ${invoker} (git gets the pointer)`);
          deferred.delete(req.pathname);
          deferred.set(req.pathname, { path: req.pathname, pointer: text });
          return [blob];
        }
      }
      return restore(store, plan.pointer, req.pathname);
    },
    onError(_req, err) {
      process.stderr.write(formatError(err) + '\n');
    },
  });
  index?.close();
  // git closed the filter: it has written the index and is waiting for this process to exit.
  if (deferred.size) {
    try {
      const report = await writePending(repo, [...deferred.values()], lazy);
      trace(`wrote ${report.written.length} file(s) from their pointers${report.changed.length ? `, ${report.changed.length} changed meanwhile and left alone` : ''}; index ${report.refreshed ? 'refreshed' : 'not refreshed (git status will)'}`);
    } catch (err) {
      process.stderr.write(`${formatError(err)}\nhint: large files still hold their pointers; run \`git tensor checkout\` to write them.\n`);
    }
  }
  lazy.close();
  store.close();
}

/** Content kept in memory before a pass-through blob is spooled to disk. */
const SPOOL_AFTER_BYTES = 8 << 20;

/**
 * Takes the blob git sends to smudge. What can be a pointer (at most MAX_POINTER_BYTES, starting like
 * one) is returned in memory. Anything else passes through: git sends the whole blob before it reads
 * our answer, so a large one is spooled to an unlinked file in the store's tmp/ (gone when closed, or
 * when the process dies) rather than held in memory.
 */
async function receiveBlob(content: AsyncIterable<Buffer>, tmpDir: string, passAll: boolean): Promise<{ pointer: Buffer } | { passThrough: Iterable<Uint8Array> | AsyncIterable<Uint8Array> }> {
  const parts: Buffer[] = [];
  let size = 0;
  let spool: number | undefined;
  let couldBePointer = !passAll;
  let prefixChecked = false;
  try {
    for await (const bytes of content) {
      if (spool !== undefined) {
        writeAll(spool, bytes);
        size += bytes.length;
        continue;
      }
      parts.push(Buffer.from(bytes));
      size += bytes.length;
      if (couldBePointer && !prefixChecked && size >= 32) {
        prefixChecked = true;
        couldBePointer = looksLikePointer(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
      }
      if (size > MAX_POINTER_BYTES) couldBePointer = false;
      if (!couldBePointer && size > SPOOL_AFTER_BYTES) {
        const path = tempPathFor(join(tmpDir, 'smudge'), tmpDir);
        spool = openSync(path, 'wx+', 0o600);
        unlinkSync(path);
        for (const p of parts.splice(0)) writeAll(spool, p);
      }
    }
  } catch (err) {
    if (spool !== undefined) closeSync(spool);
    throw err;
  }
  const blob = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  if (spool === undefined) return couldBePointer && looksLikePointer(blob) ? { pointer: blob } : { passThrough: [blob] };
  return { passThrough: readSpool(spool, size) };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
}

async function* readSpool(fd: number, size: number): AsyncGenerator<Buffer> {
  try {
    for (let at = 0; at < size; ) {
      const piece = Buffer.allocUnsafe(Math.min(1 << 20, size - at));
      const n = readSync(fd, piece, 0, piece.length, at);
      if (n === 0) throw new Error(`smudge spool file ended at ${at} of ${size} bytes`);
      at += n;
      yield piece.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}
