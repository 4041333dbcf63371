// Owns git's two hooks into diff output for tracked checkpoints (configured by `git tensor install`):
//
// * `diff.tensor.command = git-tensor diff-driver`: git's external diff driver. git runs it for
//   `git diff` (and for `git show`/`git log -p` with --ext-diff) as
//     git-tensor diff-driver <path> <old-file> <old-hex> <old-mode> <new-file> <new-hex> <new-mode> [<new-path> <rename-info>]
//   and prints whatever it prints (gitattributes(5), "Defining an external diff driver"). A side whose hex
//   names a blob is read from its pointer (git cat-file) and the tensor store; a side whose hex is all
//   zeros is the working-tree file itself, read tensor by tensor; /dev/null is an absent side. git has
//   already written smudged copies of blob sides to temporary files before calling us (docs/diff.md);
//   they are not read.
//
// * `diff.tensor.textconv = git-tensor textconv`: git runs external diff drivers only in `git diff`
//   (builtin/diff.c sets allow_external; log.c and show do not), but it runs textconv in `git show` and
//   `git log -p` too. textconv sees one version at a time, so each call prints a one-line header for its
//   version, and a call that completes a pair also prints the table of the change: git calls textconv
//   for the old side, then the new side, of each changed file, so a version is remembered per git
//   process, and the next version is compared with it when some commit changes a path from the first
//   to the second (checked with `git log --find-object`). Versions are identified without hashing whole
//   files: candidates are the pointers in history with the file's name, header and size, narrowed by
//   hashing the smallest tensors that tell them apart.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { basename, join, posix } from 'node:path';
import { Printable } from './printable.js';
import { renderText } from '../diff/report-text.js';
import { GitCommandError, GitTensorError } from '../errors/index.js';
import { looksLikePointer, parsePointer, type Pointer, serializePointer } from '../format/pointer.js';
import { readHeaderAt } from '../format/safetensors.js';
import { git, gitRaw } from '../git/exec.js';
import { batchCheck } from '../git/cat-file.js';
import { readPointerBlobs } from '../git/cat-file.js';
import { isSafetensorsPath } from '../store/checkpoint.js';
import { openRepo } from './context.js';
import { LazyFetcher } from '../remote/lazy-fetch.js';
import { DEFAULT_TOP, diffModel, diffVersions, hasCommit, resolveSides, type SideSpec, sideFilesOf, tokenizerPathFor, type Version, versionOfFile, vocabularyAt, vocabularyInWorktree } from './diff.js';
import { findModels, type ModelSide, type ShardedModel } from './sharded.js';
import { isShardIndexPath, parseShardIndex, SHARD_INDEX_SUFFIX } from '../format/shard-index.js';
import { gitSubcommand, invokingGitArgv } from '../git/invoker.js';
import { formatBytes } from '../format/units.js';

const NULL_FILE = '/dev/null';
const ZERO_HEX = /^0+$/;

export interface DiffDriverOptions {
  path: string;
  oldFile?: string;
  oldHex?: string;
  oldMode?: string;
  newFile?: string;
  newHex?: string;
  newMode?: string;
  /** [new path, rename/copy info] when git detected a rename or copy. */
  rest?: string[];
  /** Prints a line at once (the header, before the tensors are read). */
  emit?: (line: string) => void;
  top?: number;
}

function versionOfSide(file: string, hex: string | undefined): Version | null {
  if (file === NULL_FILE) return null;
  if (hex && !ZERO_HEX.test(hex)) {
    const blob = gitRaw(['cat-file', 'blob', hex]).stdout;
    if (looksLikePointer(blob)) return { type: 'pointer', pointer: parsePointer(blob.toString('utf8'), file), blob: hex };
    // Committed before it was tracked: git's temporary file holds the real bytes.
    return { type: 'file', file };
  }
  return versionOfFile(file);
}

export async function diffDriver(opts: DiffDriverOptions): Promise<Printable> {
  const newPath = opts.rest?.[0] ?? opts.path;
  if (opts.oldFile === undefined || opts.newFile === undefined) {
    return { data: { path: opts.path, unmerged: true }, text: [`* Unmerged path ${opts.path} (see \`git tensor conflicts\`)`] };
  }
  const header = `diff --tensor a/${opts.path} b/${newPath}`;
  opts.emit?.(header);
  const lines = opts.emit ? [] : [header];
  if (opts.oldMode && opts.newMode && opts.oldMode !== opts.newMode && opts.oldFile !== NULL_FILE && opts.newFile !== NULL_FILE) {
    lines.push(`old mode ${opts.oldMode}`, `new mode ${opts.newMode}`);
  }
  // git's rename/copy lines ("similarity index 90%", "rename from ...", "rename to ...").
  if (opts.rest?.[1]) lines.push(...opts.rest[1].split('\n').filter(Boolean));
  let lazy: LazyFetcher | undefined;
  try {
    const repo = openRepo();
    const { topLevel, store } = repo;
    // `git diff` against a branch this clone never checked out reads tensors fetched from the remote.
    lazy = new LazyFetcher(repo);
    const fetchMissing = (ids: string[], file: string) => lazy!.fetch(ids, { file });
    const oldV = versionOfSide(opts.oldFile, opts.oldHex);
    const newV = versionOfSide(opts.newFile, opts.newHex);
    const findTokenizer = () => (topLevel ? vocabularyInWorktree(topLevel, newPath) : null)
      ?? vocabularyAt(`:${tokenizerPathFor(newPath)}`, store) ?? vocabularyAt(`HEAD:${tokenizerPathFor(newPath)}`, store);
    // git does not say which commits it compares: a blob side reads the adapter's config and base from the
    // index (then HEAD), a working-tree side from the working tree.
    const side = (hex: string | undefined) => ({ rev: hex && !ZERO_HEX.test(hex) ? '' : null, store, topLevel });
    const adapterSides = topLevel ? { old: side(opts.oldHex), new: side(opts.newHex) } : undefined;
    const shard = topLevel ? await shardOfModel(opts, newPath, topLevel) : null;
    const d = shard?.model
      ? await diffModel(shard.model, { store, findTokenizer, fetchMissing, focus: { old: basename(opts.path), new: basename(newPath) } })
      : await diffVersions(newPath, oldV, newV, { store, findTokenizer, fetchMissing, adapterSides });
    if (shard?.unclear) d.notes.push(`shard of ${shard.unclear}: git did not say which versions it compares, so tensors moved from or to other shards show as removed or added; \`git tensor diff\` compares the whole model`);
    lines.push(...renderText(d, { top: opts.top ?? DEFAULT_TOP }));
    // With a probes file named in .gittensor, what the change did to the model's answers (docs/probe.md).
    if (d.kind === 'safetensors' && oldV && newV) lines.push(...(await (await import('./probe-diff.js')).driverBehaviour({ path: newPath, oldHex: opts.oldHex, newHex: opts.newHex, topLevel })));
    return { data: d, text: lines };
  } catch (err) {
    // git stops the whole diff when a driver fails; report this file and let git go on with the others.
    if (!(err instanceof GitTensorError)) throw err;
    lines.push(`git-tensor: cannot compare ${newPath}: ${err.message}`);
    if (err.hint) lines.push(`hint: ${err.hint}`);
    return { data: { path: newPath, error: err.code }, text: lines };
  } finally {
    lazy?.close();
  }
}

// ---- shards of a model ---------------------------------------------------------------------------

/** Shard file names as save_pretrained writes them (`model-00001-of-00003.safetensors`). */
const SHARD_FILE = /-\d+-of-\d+\.safetensors$/;

/** Options of `git diff` that take the next argument as their value. */
const DIFF_VALUE_OPTIONS = new Set(['-O', '-S', '-G', '--output', '--src-prefix', '--dst-prefix', '--line-prefix', '--relative', '-I', '--ignore-matching-lines', '--anchored', '--find-object', '--diff-filter', '--word-diff-regex', '--color-moved-ws']);

/**
 * The sharded model a changed file belongs to, with both of `git diff`'s sides, so its table lists the
 * tensors this shard holds now and leaves moves between shards out. git gives a diff driver one file's
 * blobs, not the revisions: they are read from git's command line and checked against this file's blobs.
 * `unclear` names the index when the file is a shard but the sides could not be told (`git show
 * --ext-diff`, an option not understood): the file is then compared alone.
 */
async function shardOfModel(opts: DiffDriverOptions, newPath: string, topLevel: string): Promise<{ model?: ShardedModel; unclear?: string } | null> {
  const dir = posix.dirname(newPath);
  // Only the folder's own index files are listed (glob magic: `*` does not cross `/`).
  const nearby = gitRaw(['ls-files', '-z', '--', `:(top,glob)${dir === '.' ? '' : `${dir}/`}*${SHARD_INDEX_SUFFIX}`], { cwd: topLevel }).stdout.toString('utf8').split('\0')
    .filter((p) => isShardIndexPath(p) && posix.dirname(p) === dir);
  if (!nearby.length && !SHARD_FILE.test(newPath)) return null;
  // `git show --ext-diff` / `git log -p --ext-diff`: the commit that made this change stands for the sides.
  const blobHex = (file: string | undefined, hex: string | undefined) => (file === NULL_FILE || !hex || ZERO_HEX.test(hex) ? null : hex);
  const oldBlob = blobHex(opts.oldFile, opts.oldHex), newBlob = blobHex(opts.newFile, opts.newHex);
  const direct = gitDiffSides(opts, newPath, topLevel);
  const change = !direct && newBlob ? findChange(oldBlob ?? '0'.repeat(newBlob.length), newBlob, basename(newPath)) : null;
  const sides = direct ?? (change && change.path === newPath ? parentSides(change.commit, topLevel) : null);
  if (!sides) {
    // Said only of a file the staged index really names (a stray checkpoint beside a model is not a shard).
    const names = (index: string) => {
      const text = gitRaw(['cat-file', 'blob', `:${index}`], { cwd: topLevel, okCodes: [128] });
      try {
        return text.status === 0 && parseShardIndex(text.stdout.toString('utf8'), index).shards.includes(basename(newPath));
      } catch (err) {
        if (err instanceof GitTensorError) return false;
        throw err;
      }
    };
    const index = nearby.find(names);
    return index ? { unclear: index } : null;
  }
  const model = await modelOfShard(sides, opts.path, newPath, topLevel);
  return model ? { model } : null;
}

/** `[first parent, commit]` (nothing before a root commit). */
function parentSides(commit: string, topLevel: string): [SideSpec | null, SideSpec] {
  return [hasCommit(`${commit}^`, topLevel) ? { kind: 'rev', rev: `${commit}^` } : null, { kind: 'rev', rev: commit }];
}

/** The sharded model whose shard is `oldPath` on the old side or `newPath` on the new one, if any. */
async function modelOfShard(sides: [SideSpec | null, SideSpec], oldPath: string, newPath: string, topLevel: string): Promise<ShardedModel | undefined> {
  const dir = posix.dirname(newPath);
  const [oldFiles, newFiles] = await sideFilesOf(sides[0], sides[1], dir === '.' ? [] : [dir], topLevel);
  const has = (side: ModelSide | null, m: ShardedModel, path: string) => !!side && m.dir === (dir === '.' ? '' : dir) && posix.dirname(path) === dir && side.shards.has(basename(path));
  return findModels(oldFiles, newFiles).find((m) => has(m.new, m, newPath) || has(m.old, m, oldPath));
}

/**
 * The two sides of the running `git diff`, from its command line (`git diff [--cached] [<rev> [<rev>]]`,
 * `A..B`, `A...B`, `-R`), when this file's blobs confirm them; null otherwise.
 */
function gitDiffSides(opts: DiffDriverOptions, newPath: string, topLevel: string): [SideSpec, SideSpec] | null {
  const argv = invokingGitArgv();
  if (!argv || gitSubcommand(argv) !== 'diff') return null;
  let cached = false, reverse = false;
  const revs: string[] = [];
  for (let k = argv.indexOf('diff') + 1; k < argv.length; k++) {
    const a = argv[k]!;
    if (a === '--') break;
    if (a === '--cached' || a === '--staged') cached = true;
    else if (a === '-R') reverse = true;
    else if (a === '--no-index' || a === '--merge-base' || a.startsWith('--merge-base=')) return null;
    else if (DIFF_VALUE_OPTIONS.has(a)) k++;
    else if (a.startsWith('-')) continue;
    else if (a.includes('..') || hasCommit(a, topLevel)) revs.push(a);
    else break; // paths follow
  }
  let sides: [SideSpec, SideSpec];
  try {
    sides = revs.length === 0 && !cached ? [{ kind: 'index' }, { kind: 'worktree' }] : resolveSides(revs, cached, topLevel);
  } catch (err) {
    if (err instanceof GitTensorError) return null;
    throw err;
  }
  if (reverse) sides.reverse();
  const confirms = (side: SideSpec, path: string, file: string | undefined, hex: string | undefined) => {
    const absent = file === NULL_FILE;
    if (side.kind === 'worktree') return absent !== existsSync(join(topLevel, path));
    const r = gitRaw(['rev-parse', '--verify', '--quiet', side.kind === 'index' ? `:${path}` : `${side.rev}:${path}`], { cwd: topLevel, okCodes: [1, 128] });
    return r.status === 0 ? !absent && r.stdout.toString('utf8').trim() === hex : absent;
  };
  return confirms(sides[0], opts.path, opts.oldFile, opts.oldHex) && confirms(sides[1], newPath, opts.newFile, opts.newHex) ? sides : null;
}

// ---- textconv ------------------------------------------------------------------------------------

export interface TextconvOptions {
  file: string;
  top?: number;
}

interface Identified {
  /** Blob id of the pointer this version was smudged from (null when unknown). */
  oid: string | null;
  pointer: Pointer | null;
  size: number;
  tensors: number;
}

interface PendingVersion {
  oid: string;
  name: string;
  time: number;
}

const PENDING_MAX_AGE_MS = 10 * 60 * 1000;

/** git keeps the file name in its temporary files: <tmp>/git-blob-XXXXXX/<name>. */
const GIT_TEMP_BLOB = /(^|[\\/])git-blob-[A-Za-z0-9]{6}[\\/][^\\/]+$/;

export async function textconv(opts: TextconvOptions): Promise<Printable> {
  const name = basename(opts.file);
  const me = await identify(opts.file, name);
  // The header names the version, so two versions never print the same text (git would show nothing).
  const what = me.pointer?.kind === 'opaque' || (!me.pointer && !isSafetensorsPath(name)) ? 'file' : 'checkpoint';
  const version = me.oid ? me.oid.slice(0, 10) : `~${fingerprint(opts.file, me.size)}`;
  const headerLine = `git-tensor ${what} ${version}: ${what === 'checkpoint' ? `${me.tensors} tensors, ` : ''}${formatBytes(me.size)}`;
  const text = [headerLine];
  const state = pendingStore();
  const taken = state.take();
  // git converts both sides of a pair back to back; an old leftover (pid reuse) is ignored.
  const pending = taken && Date.now() - taken.time < PENDING_MAX_AGE_MS ? taken : null;
  if (!me.oid || !me.pointer) return { data: { header: headerLine }, text };

  // The pair is checked against history, not by name: a rename pairs too, a stale version does not.
  const pair = pending && pending.oid !== me.oid ? findChange(pending.oid, me.oid, name) : null;
  if (!pair) {
    state.put({ oid: me.oid, name, time: Date.now() });
    return { data: { header: headerLine }, text };
  }
  try {
    const { store } = openRepo();
    const oldBlob = gitRaw(['cat-file', 'blob', pending!.oid]).stdout;
    const oldV: Version = { type: 'pointer', pointer: parsePointer(oldBlob.toString('utf8'), pair.path), blob: pending!.oid };
    const newV: Version = { type: 'pointer', pointer: me.pointer, blob: me.oid };
    const findTokenizer = () => vocabularyAt(`${pair.commit}:${tokenizerPathFor(pair.path)}`, store);
    // A shard of a sharded model: its part of the model's change at that commit (docs/diff.md).
    const { topLevel } = openRepo();
    const model = topLevel ? await modelOfShard(parentSides(pair.commit, topLevel), pair.path, pair.path, topLevel) : undefined;
    const d = model
      ? await diffModel(model, { store, findTokenizer, focus: { old: basename(pair.path), new: basename(pair.path) } })
      : await diffVersions(pair.path, oldV, newV, { store, findTokenizer });
    text.push(...renderText(d, { top: opts.top ?? DEFAULT_TOP }));
    return { data: d, text };
  } catch (err) {
    if (!(err instanceof GitTensorError)) throw err;
    text.push(`git-tensor: cannot compare: ${err.message}`);
    if (err.hint) text.push(`hint: ${err.hint}`);
    return { data: { header: headerLine, error: err.code }, text };
  }
}

/**
 * A cheap content fingerprint for a version that is not in history (a working-tree file): the size
 * and 256 evenly spread 4 KiB samples. Versions that differ only outside the samples look alike.
 */
function fingerprint(file: string, size: number): string {
  const hash = createHash('sha256').update(String(size));
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const samples = Math.min(256, Math.ceil(size / buf.length));
    for (let k = 0; k < samples; k++) {
      const at = samples === 1 ? 0 : Math.floor(((size - buf.length) * k) / (samples - 1));
      const n = readSync(fd, buf, 0, buf.length, Math.max(0, at));
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex').slice(0, 10);
}

/** Which pointer a textconv input stands for. */
async function identify(file: string, name: string): Promise<Identified> {
  const size = statSync(file).size;
  const head = Buffer.alloc(Math.min(size, 64));
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (looksLikePointer(head)) {
    // Left as a pointer (GIT_TENSOR_SKIP_SMUDGE): the text is the blob.
    const text = readFileSync(file);
    const pointer = parsePointer(text.toString('utf8'), name);
    const oid = git(['hash-object', '-t', 'blob', '--stdin'], { input: text });
    return { oid, pointer, size: pointer.size, tensors: pointer.kind === 'safetensors' ? pointer.tensors.length : 0 };
  }
  if (!isSafetensorsPath(name)) return { oid: null, pointer: null, size, tensors: 0 };
  const header = readFileHeader(file, name, size);
  const unknown = { oid: null, pointer: null, size, tensors: header?.tensors.length ?? 0 };
  // Only git's temporary copies of blobs are versions from history; a working-tree file may be anything.
  if (!header || !GIT_TEMP_BLOB.test(file)) return unknown;
  const found = await matchPointer(file, name, size, header);
  return found ? { oid: found.oid, pointer: found.pointer, size, tensors: header.tensors.length } : unknown;
}

type FileHeader = ReturnType<typeof readHeaderAt>;

function readFileHeader(file: string, name: string, size: number): FileHeader | null {
  const fd = openSync(file, 'r');
  try {
    return readHeaderAt((b, at) => readSync(fd, b, 0, b.length, at), size, name);
  } catch (err) {
    if (err instanceof GitTensorError) return null;
    throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * The pointer in history that this checkpoint file was smudged from: pointers of files with the same
 * name, header and size, narrowed down by hashing the smallest tensors whose ids tell them apart.
 */
async function matchPointer(file: string, name: string, size: number, header: FileHeader): Promise<{ oid: string; pointer: Extract<Pointer, { kind: 'safetensors' }> } | null> {
  const headerId = createHash('sha256').update(header.headerBytes).digest('hex');
  // The pointer's length follows from the header alone (ids are fixed-width): only blobs of exactly that
  // size can be candidates, so a repository's other blobs are never read.
  const expected = Buffer.byteLength(serializePointer({
    kind: 'safetensors', size, header: { id: headerId, length: header.headerLength },
    metadata: header.metadata === null ? null : Object.entries(header.metadata),
    tensors: header.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, id: headerId })),
  }));
  let oids: string[];
  try {
    oids = batchCheck([], { all: true }).flatMap((h) => (h.type === 'blob' && h.size === expected ? [h.oid] : []));
  } catch (err) {
    if (err instanceof GitCommandError) return null; // no object database to search: no match
    throw err;
  }
  const blobs = await readPointerBlobs(oids);
  let candidates: { oid: string; pointer: Extract<Pointer, { kind: 'safetensors' }> }[] = [];
  for (const [oid, blob] of blobs) {
    if (!looksLikePointer(blob)) continue;
    try {
      const p = parsePointer(blob.toString('utf8'), name);
      if (p.kind === 'safetensors' && p.size === size && p.header.id === headerId && p.tensors.length === header.tensors.length) candidates.push({ oid, pointer: p });
    } catch (err) {
      if (!(err instanceof GitTensorError)) throw err;
    }
  }
  // Two pointers with the same tensor ids are the same pointer: keep one.
  candidates = [...new Map(candidates.map((c) => [c.pointer.tensors.map((t) => t.id).join(), c])).values()];
  const fd = openSync(file, 'r');
  try {
    const hashed = new Set<number>();
    // Always check at least one tensor, so a file that matches no pointer is not taken for the only candidate.
    while (candidates.length > 1 || (candidates.length === 1 && hashed.size === 0)) {
      let pick = -1;
      for (let k = 0; k < header.tensors.length; k++) {
        if (hashed.has(k)) continue;
        const ids = new Set(candidates.map((c) => c.pointer.tensors[k]!.id));
        if (candidates.length > 1 && ids.size < 2) continue;
        const t = header.tensors[k]!;
        if (pick < 0 || t.end - t.begin < header.tensors[pick]!.end - header.tensors[pick]!.begin) pick = k;
      }
      if (pick < 0) break;
      hashed.add(pick);
      const t = header.tensors[pick]!;
      const id = hashRange(fd, header.dataStart + t.begin, t.end - t.begin);
      candidates = candidates.filter((c) => c.pointer.tensors[pick]!.id === id);
    }
  } finally {
    closeSync(fd);
  }
  return candidates.length === 1 ? candidates[0]! : null;
}

function hashRange(fd: number, at: number, length: number): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(length, 8 << 20) || 1);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, length - done), at + done);
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    done += n;
  }
  return hash.digest('hex');
}

/**
 * A commit that changes some path from blob `from` to blob `to` (renames included), if any; a path
 * whose file name is `name` is preferred (the same blob may live at several paths).
 */
function findChange(from: string, to: string, name: string): { commit: string; path: string } | null {
  const r = gitRaw(['log', '--all', '-m', '--no-abbrev', '--raw', '--format=commit %H', `--find-object=${to}`], { okCodes: [128] });
  if (r.status !== 0) return null;
  let commit = '';
  let found: { commit: string; path: string } | null = null;
  for (const line of r.stdout.toString('utf8').split('\n')) {
    if (line.startsWith('commit ')) {
      commit = line.slice(7).trim();
      continue;
    }
    // :100644 100644 <from> <to> M<tab>path   (R/C lines carry two paths)
    const m = /^:\d+ \d+ ([0-9a-f]+) ([0-9a-f]+) [A-Z]\d*\t(?:[^\t]*\t)?(.*)$/.exec(line);
    if (!m || m[1] !== from || m[2] !== to) continue;
    if (basename(m[3]!) === name) return { commit, path: m[3]! };
    found ??= { commit, path: m[3]! };
  }
  return found;
}

/** The version a git process's previous textconv call saw, kept in a small file per git process. */
function pendingStore(): { take(): PendingVersion | null; put(v: PendingVersion): void } {
  const owner = gitProcess();
  const dir = join(tmpdir(), `git-tensor-textconv-${safeUser()}`);
  const file = join(dir, `${owner}.json`);
  return {
    take() {
      if (!existsSync(file)) return null;
      try {
        const v = JSON.parse(readFileSync(file, 'utf8')) as PendingVersion;
        rmSync(file, { force: true });
        return v;
      } catch {
        return null;
      }
    },
    put(v) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(file, JSON.stringify(v), { mode: 0o600 });
      sweep(dir);
    },
  };
}

function safeUser(): string {
  try {
    return String(userInfo().uid >= 0 ? userInfo().uid : userInfo().username);
  } catch {
    return 'user';
  }
}

/** Leftovers of git processes killed mid-log (e.g. `git log -p | head`) are removed after a day. */
function sweep(dir: string): void {
  const cutoff = Date.now() - 24 * 3600 * 1000;
  for (const f of readdirSync(dir)) {
    try {
      if (statSync(join(dir, f)).mtimeMs < cutoff) rmSync(join(dir, f), { force: true });
    } catch {
      // another textconv removed it first
    }
  }
}

/** "<pid>-<start time>" of the git process that runs us (through a shell, or `env` from the shebang). */
function gitProcess(): string {
  let pid = process.ppid;
  for (let depth = 0; depth < 4; depth++) {
    const stat = procStat(pid);
    if (!stat) break;
    if (stat.comm === 'git' || !['sh', 'bash', 'dash', 'env', 'zsh', 'busybox'].includes(stat.comm)) return `${pid}-${stat.start}`;
    pid = stat.ppid;
  }
  return `${process.ppid}-0`;
}

function procStat(pid: number): { comm: string; ppid: number; start: string } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    const comm = s.slice(s.indexOf('(') + 1, close);
    const fields = s.slice(close + 2).split(' ');
    // fields[0] is the state (field 3 of stat); ppid is field 4, starttime field 22.
    return { comm, ppid: Number(fields[1]), start: fields[19] ?? '0' };
  } catch {
    return null;
  }
}
