// Owns `git tensor diff [<rev> [<rev>]] [-- <path>...]` and the I/O every diff shares (the diff driver,
// textconv and `git tensor log` use it too): checkpoint versions as CheckpointSources read from the
// tensor store (pointer sides) or straight from a checkpoint file's tensor slices (working-tree sides),
// tokenizer discovery, and the text/JSON/HTML reports. Nothing is smudged or stored. A sharded
// checkpoint is compared as one model (commands/sharded.ts; docs/diff.md, "Sharded checkpoints").
//
// Sides, as `git diff` users expect: no revision = HEAD vs the working tree; one = that revision vs the
// working tree; two (or A..B, A...B) = between them; --cached = the revision (default HEAD) vs the index.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Printable } from './printable.js';
import { analyzeCheckpoint, type CheckpointSource, type TensorEntry } from '../diff/analyze.js';
import { renderHtml } from '../diff/report-html.js';
import { renderJson } from '../diff/report-json.js';
import { renderText } from '../diff/report-text.js';
import { hasTokenMatrixName, parseTokenizer, type Vocabulary } from '../diff/tokens.js';
import type { CheckpointDiff } from '../diff/types.js';
import { CorruptObjectError, ExitCode, GitTensorError, MissingObjectsError, UsageError } from '../errors/index.js';
import { looksLikePointer, parsePointer, type Pointer } from '../format/pointer.js';
import { readHeaderAt } from '../format/safetensors.js';
import { isShardIndexPath } from '../format/shard-index.js';
import { git, gitRaw } from '../git/exec.js';
import { readPointerBlobs } from '../git/cat-file.js';
import { listFiles, readSmallObjects, trackedPaths } from '../git/tree.js';
import { isSafetensorsPath, validatePointer } from '../store/checkpoint.js';
import type { ObjectStore } from '../store/store.js';
import { openRepo } from './context.js';
import { LazyFetcher } from '../remote/lazy-fetch.js';
import { type AdapterSide, explainAdapter, looksLikeAdapter } from './adapter-diff.js';
import { pointersAt } from './pointers.js';
import { findModels, type ModelSide, modelPaths, modelSources, modelUnchanged, type ShardedModel, type SideFiles, withProblems } from './sharded.js';

/** Tensor rows a text report lists by default (`--top 0` lists all). */
export const DEFAULT_TOP = 20;

// ---- sides ---------------------------------------------------------------------------------------

/** One version of a tracked file: a parsed pointer (tensors in the store) or a checkpoint on disk. */
export type Version =
  | { type: 'pointer'; pointer: Pointer; blob?: string }
  | { type: 'file'; file: string };

/** A safetensors pointer as a source: tensors come from the store (verified on read). */
export function pointerSource(p: Extract<Pointer, { kind: 'safetensors' }>, store: ObjectStore, path: string, blob?: string): CheckpointSource {
  const ranges = new Map<string, (begin: number, end: number) => Buffer>();
  return {
    size: p.size,
    id: blob ? blob.slice(0, 10) : p.header.id.slice(0, 10),
    metadata: p.metadata,
    tensors: p.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, id: t.id })),
    read: (t) => store.readAsync(t.id!, { file: path, tensor: t.name }),
    // Decoded a window (~4 MiB) at a time, each chunk checked against its id: large tensors are compared block by block.
    stream: (t) => store.streamChunks(t.id!, { file: path, tensor: t.name }),
    readRange: (t, begin, end) => {
      let r = ranges.get(t.id!);
      if (!r) ranges.set(t.id!, (r = objectRange(store, t.id!, { file: path, tensor: t.name })));
      return r(begin, end);
    },
  };
}

/**
 * Bytes [begin, end) of a stored object, decoding only the chunks that hold them (the last one is kept
 * for the next call: rows are asked for in order), each checked against its id (SHA-256).
 */
function objectRange(store: ObjectStore, id: string, data: { file: string; tensor: string }): (begin: number, end: number) => Buffer {
  let chunks: { id: string; at: number; length: number }[] | undefined;
  let last: { id: string; bytes: Buffer } | undefined;
  return (begin, end) => {
    if (!chunks) {
      const list = store.chunksOf(id);
      if (!list) throw new MissingObjectsError([id], { file: data.file });
      let at = 0;
      chunks = list.map((c) => ({ id: c.id.toString('hex'), at, length: (at += c.length, c.length) }));
    }
    const out = Buffer.allocUnsafe(end - begin);
    let lo = 0, hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (chunks[mid]!.at + chunks[mid]!.length > begin) hi = mid;
      else lo = mid + 1;
    }
    let got = 0;
    for (let k = lo; k < chunks.length && got < out.length; k++) {
      const c = chunks[k]!;
      if (last?.id !== c.id) {
        const bytes = store.readChunk(c.id, data);
        const hash = createHash('sha256').update(bytes).digest('hex');
        if (bytes.length !== c.length || hash !== c.id) throw new CorruptObjectError(c.id, `chunk of ${id.slice(0, 16)} hashes to ${hash.slice(0, 16)}`, data);
        last = { id: c.id, bytes };
      }
      const from = Math.max(begin, c.at), to = Math.min(end, c.at + c.length);
      last.bytes.copy(out, got, from - c.at, to - c.at);
      got += to - from;
    }
    if (got !== out.length) throw new CorruptObjectError(id, `holds fewer than ${end} bytes`, data);
    return out;
  };
}

/** A checkpoint file as a source: the header is parsed and each tensor is read from its byte range. */
export function fileSource(file: string, path: string): CheckpointSource {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const header = readHeaderAt((b, at) => readSync(fd, b, 0, b.length, at), size, path);
    const ranges = new Map(header.tensors.map((t) => [t.name, t]));
    const { dataStart } = header;
    return {
      size,
      metadata: header.metadata === null ? null : Object.entries(header.metadata),
      tensors: header.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
      read: (t: TensorEntry) => {
        const r = ranges.get(t.name)!;
        const out = Buffer.allocUnsafe(r.end - r.begin);
        readRange(file, path, dataStart + r.begin, out);
        return out;
      },
      readRange: (t: TensorEntry, begin: number, end: number) => {
        const out = Buffer.allocUnsafe(end - begin);
        readRange(file, path, dataStart + ranges.get(t.name)!.begin + begin, out);
        return out;
      },
      stream: async function* (t: TensorEntry) {
        const r = ranges.get(t.name)!;
        for (let at = r.begin; at < r.end; at += FILE_PIECE_BYTES) {
          const out = Buffer.allocUnsafe(Math.min(FILE_PIECE_BYTES, r.end - at));
          readRange(file, path, dataStart + at, out);
          yield out;
        }
      },
    };
  } finally {
    closeSync(fd);
  }
}

/** Bytes read from a working-tree checkpoint at a time when a tensor is streamed. */
const FILE_PIECE_BYTES = 4 << 20;

/** Fills `out` from `file` at byte `at`. */
function readRange(file: string, path: string, at: number, out: Buffer): void {
  const f = openSync(file, 'r');
  try {
    let got = 0;
    while (got < out.length) {
      const n = readSync(f, out, got, out.length - got, at + got);
      if (n === 0) throw new GitTensorError('E_DIFF_FILE_CHANGED', `${path} changed while it was being read`, { data: { file: path }, hint: 'Run the diff again.' });
      got += n;
    }
  } finally {
    closeSync(f);
  }
}

/** Reads a file on disk as a Version: a pointer text (left by GIT_TENSOR_SKIP_SMUDGE) or the checkpoint itself. */
export function versionOfFile(file: string): Version {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(32);
    const n = readSync(fd, head, 0, 32, 0);
    if (looksLikePointer(head.subarray(0, n))) return { type: 'pointer', pointer: parsePointer(readFileSync(file, 'utf8'), file) };
  } finally {
    closeSync(fd);
  }
  return { type: 'file', file };
}

interface DiffPairOptions {
  store: ObjectStore;
  vocabulary?: Vocabulary | null;
  /** Finds a tokenizer for this path when `vocabulary` is undefined and a token matrix is present. */
  findTokenizer?: () => Vocabulary | null;
  histogram?: boolean;
  topTokens?: number;
  /** Downloads objects the store lacks (LazyFetcher); false when there is no remote to ask. */
  fetchMissing?: (ids: string[], file: string) => Promise<boolean>;
  /** Where each side reads an adapter's config and base, to explain a LoRA adapter (docs/adapters.md). */
  adapterSides?: { old: AdapterSide; new: AdapterSide };
}

/** Compares two versions (null = absent) of the file at `path`. */
export async function diffVersions(path: string, oldV: Version | null, newV: Version | null, opts: DiffPairOptions): Promise<CheckpointDiff> {
  const isOpaque = (v: Version | null) => v !== null && (v.type === 'pointer' ? v.pointer.kind === 'opaque' : !isSafetensorsPath(path));
  if (isOpaque(oldV) || isOpaque(newV)) return opaqueDiff(path, oldV, newV);
  const oldS = oldV && sourceOf(oldV, opts.store, path);
  const newS = newV && sourceOf(newV, opts.store, path);
  return diffSources(path, oldS, newS, [{ v: oldV, path }, { v: newV, path }], opts);
}

/**
 * Compares a sharded model's two sides as one checkpoint keyed by tensor name (`path` is its index), or,
 * with `focus`, the part of it one shard file holds now (git's diff driver): moves between shards are
 * not changes; the new side's index is checked against its shards.
 */
export async function diffModel(m: ShardedModel, opts: DiffPairOptions & { focus?: { old: string; new: string } }): Promise<CheckpointDiff> {
  const path = (name: string) => (m.dir ? `${m.dir}/${name}` : name);
  const sourceOf = (name: string, v: Version): CheckpointSource => {
    if (v.type === 'pointer' && v.pointer.kind !== 'safetensors') {
      throw new GitTensorError('E_SHARD_NOT_CHECKPOINT', `${m.index} names shard ${name}, which is not a safetensors checkpoint`, { data: { file: path(name) }, exitCode: ExitCode.badInput });
    }
    return v.type === 'file' ? fileSource(v.file, path(name)) : pointerSource(v.pointer as Extract<Pointer, { kind: 'safetensors' }>, opts.store, path(name), v.blob);
  };
  const safeSource = (name: string, v: Version) => {
    try {
      return sourceOf(name, v);
    } catch (err) {
      if (err instanceof GitTensorError) return null;
      throw err;
    }
  };
  const problems = withProblems({ index: m.index, old: null, new: null, moved: [], problems: [] }, m, safeSource);
  // Shards that are not checkpoints are reported as index problems; the rest of the model is still compared.
  const usable = (side: ModelSide | null): ModelSide | null => side && { ...side, shards: new Map([...side.shards].filter(([n, v]) => !v || safeSource(n, v) !== null)) };
  const sources = modelSources({ ...m, old: usable(m.old), new: usable(m.new) }, { sourceOf, focus: opts.focus });
  const shown = opts.focus ? path(opts.focus.new) : m.index;
  const versions = [m.old, m.new].flatMap((side) => [...(side?.shards ?? [])].map(([name, v]) => ({ v, path: path(name) })));
  // git's driver runs for a shard file that is absent on one side: the model's other shards stand in.
  const present = (side: ModelSide | null, name: string | undefined) => !!side && (name === undefined || !!side.shards.get(name));
  const d = await diffSources(shown, sources.old ?? (opts.focus && m.old ? emptySource() : null), sources.new ?? (opts.focus && m.new ? emptySource() : null), versions, opts);
  if (opts.focus) d.status = !present(m.old, opts.focus.old) ? 'added' : !present(m.new, opts.focus.new) ? 'deleted' : 'modified';
  d.shards = { ...sources.summary, problems: problems.problems, hint: problems.hint };
  return d;
}

function emptySource(): CheckpointSource {
  return { size: 0, metadata: null, tensors: [], read: () => new Uint8Array(0) };
}

async function diffSources(path: string, oldS: CheckpointSource | null, newS: CheckpointSource | null, versions: { v: Version | null; path: string }[], opts: DiffPairOptions): Promise<CheckpointDiff> {
  try {
    checkObjects(path, oldS, newS, opts.store);
  } catch (err) {
    // A version this clone never checked out: its tensors come from the remote, as a checkout's would.
    if (!(err instanceof MissingObjectsError) || !opts.fetchMissing || !(await opts.fetchMissing(err.ids, path))) throw err;
    checkObjects(path, oldS, newS, opts.store);
  }
  // A hand-edited pointer (an object of another size, a header that disagrees) is named here, not met as
  // a kernel's size error halfway through the comparison.
  for (const { v, path: file } of versions) if (v?.type === 'pointer' && v.pointer.kind === 'safetensors') validatePointer(opts.store, v.pointer, file);
  let vocabulary = opts.vocabulary;
  const notes: string[] = [];
  if (vocabulary === undefined) {
    // The tokenizer is looked for only when a tensor could be a token matrix.
    const candidates = [...(newS?.tensors ?? []), ...(oldS?.tensors ?? [])].some((t) => t.shape.length === 2 && hasTokenMatrixName(t.name));
    vocabulary = null;
    if (candidates && opts.findTokenizer) {
      try {
        vocabulary = opts.findTokenizer();
      } catch (err) {
        if (!(err instanceof GitTensorError)) throw err;
        notes.push(`token view skipped: ${err.message}`);
      }
    }
  }
  const d = await analyzeCheckpoint(path, oldS, newS, { vocabulary, histogram: opts.histogram, topTokens: opts.topTokens });
  if (vocabulary && d.tokens.length === 0) {
    notes.push(`${vocabulary.source} has ${vocabulary.size} tokens; no embedding/output matrix with that many rows changed`);
  }
  d.notes.push(...notes);
  const explained = newS ?? oldS;
  if (explained && opts.adapterSides && looksLikeAdapter(explained.tensors)) {
    d.adapter = await explainAdapter(path, explained, newS ? opts.adapterSides.new : opts.adapterSides.old);
  }
  return d;
}

function sourceOf(v: Version, store: ObjectStore, path: string): CheckpointSource {
  if (v.type === 'file') return fileSource(v.file, path);
  return pointerSource(v.pointer as Extract<Pointer, { kind: 'safetensors' }>, store, path, v.blob);
}

/** Fails up front, naming what to fetch, when objects the comparison must read are not in the store. */
function checkObjects(path: string, o: CheckpointSource | null, n: CheckpointSource | null, store: ObjectStore): void {
  const need: string[] = [];
  const other = (side: CheckpointSource | null) => new Map((side?.tensors ?? []).map((t) => [t.name, t]));
  const oMap = other(o), nMap = other(n);
  for (const [side, map] of [[o, nMap], [n, oMap]] as const) {
    for (const t of side?.tensors ?? []) {
      const peer = map.get(t.name);
      if (t.id && peer && peer.id !== t.id) need.push(t.id);
    }
  }
  const missing = store.missing(need);
  if (missing.length) throw new MissingObjectsError(missing, { file: path });
}

function opaqueDiff(path: string, oldV: Version | null, newV: Version | null): CheckpointDiff {
  const info = (v: Version | null) => {
    if (!v) return null;
    if (v.type === 'pointer') return { size: v.pointer.size, tensors: 0, id: v.pointer.kind === 'opaque' ? v.pointer.id.slice(0, 10) : undefined };
    return { size: fstatSize(v.file), tensors: 0 };
  };
  return {
    path, status: !oldV ? 'added' : !newV ? 'deleted' : 'modified', kind: 'opaque', old: info(oldV), new: info(newV),
    tensors: [], modules: [], tokens: [], totals: { normDelta: 0, normOld: 0, relChange: null }, metadata: [], notes: [],
  };
}

function fstatSize(file: string): number {
  const fd = openSync(file, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

// ---- tokenizers ----------------------------------------------------------------------------------

/** Parses a tokenizer.json given on the command line. */
export function vocabularyFromFile(file: string): Vocabulary {
  if (!existsSync(file)) throw new UsageError(`--tokenizer ${file}: no such file`, 'Give the path of a Hugging Face tokenizer.json.');
  return parseTokenizer(readFileSync(file, 'utf8'), file);
}

/** `<dir>/tokenizer.json` beside a checkpoint path (posix, repository-relative). */
export function tokenizerPathFor(path: string): string {
  const dir = posix.dirname(path);
  return dir === '.' ? 'tokenizer.json' : `${dir}/tokenizer.json`;
}

/** Reads tokenizer.json from a tree (`rev:path`) or the index (`:path`); a pointer is read from the store. */
export function vocabularyAt(spec: string, store: ObjectStore, cwd?: string): Vocabulary | null {
  const r = gitRaw(['cat-file', 'blob', spec], { cwd, okCodes: [128] });
  if (r.status !== 0) return null;
  let bytes = r.stdout;
  if (looksLikePointer(bytes)) {
    const p = parsePointer(bytes.toString('utf8'), spec);
    if (p.kind !== 'opaque' || store.missing([p.id]).length) return null;
    bytes = store.read(p.id, { file: spec });
  }
  return parseTokenizer(bytes.toString('utf8'), spec);
}

export function vocabularyInWorktree(topLevel: string, path: string): Vocabulary | null {
  const file = join(topLevel, tokenizerPathFor(path));
  if (!existsSync(file)) return null;
  const v = versionOfFile(file);
  if (v.type === 'pointer') return null;
  return parseTokenizer(readFileSync(file, 'utf8'), tokenizerPathFor(path));
}

// ---- `git tensor diff` ---------------------------------------------------------------------------

export interface DiffOptions {
  revs: string[];
  paths: string[];
  cached?: boolean;
  top?: number;
  html?: string;
  tokenizer?: string;
  /** Only the JSON data is wanted (skips building text). */
  json?: boolean;
}

export type SideSpec = { kind: 'rev'; rev: string } | { kind: 'index' } | { kind: 'worktree' };

export function sideName(s: SideSpec): string {
  return s.kind === 'rev' ? s.rev : s.kind;
}

/** Resolves the command line's revisions the way `git diff` reads them. */
export function resolveSides(revs: string[], cached: boolean, cwd?: string): [SideSpec, SideSpec] {
  const list = revs.flatMap((r) => {
    const three = /^(.*)\.\.\.(.*)$/.exec(r);
    if (three) {
      const a = three[1] || 'HEAD', b = three[2] || 'HEAD';
      return [git(['merge-base', a, b], { cwd }), b];
    }
    const two = /^(.*)\.\.(.*)$/.exec(r);
    if (two) return [two[1] || 'HEAD', two[2] || 'HEAD'];
    return [r];
  });
  if (list.length > 2) throw new UsageError(`at most two revisions, got ${list.length}`, 'Use `git tensor diff <rev> <rev> -- <path>`.');
  if (cached && list.length > 1) throw new UsageError('--cached compares one revision with the index', 'Use `git tensor diff --cached [<rev>]`.');
  if (list.length === 2) return [{ kind: 'rev', rev: list[0]! }, { kind: 'rev', rev: list[1]! }];
  const old: SideSpec = { kind: 'rev', rev: list[0] ?? 'HEAD' };
  return [old, cached ? { kind: 'index' } : { kind: 'worktree' }];
}

export function hasCommit(rev: string, cwd?: string): boolean {
  return gitRaw(['rev-parse', '--verify', '--quiet', `${rev}^{tree}`], { cwd, okCodes: [1, 128] }).status === 0;
}

/** Tracked files of a side, as versions keyed by repository-relative path. */
async function versionsOf(side: SideSpec, paths: string[], topLevel: string, candidates: Set<string>): Promise<Map<string, Version>> {
  const out = new Map<string, Version>();
  if (side.kind === 'rev') {
    // A repository without commits compares with nothing, as `git diff` does before the first commit.
    if (side.rev === 'HEAD' && !hasCommit('HEAD', topLevel)) return out;
    for (const f of await pointersAt(side.rev, paths, topLevel)) out.set(f.path, { type: 'pointer', pointer: f.pointer, blob: f.oid });
    return out;
  }
  const staged = indexEntries(paths, topLevel, true);
  if (side.kind === 'index') {
    const blobs = await readPointerBlobs([...staged.values()], topLevel);
    for (const [path, oid] of staged) {
      const blob = blobs.get(oid);
      if (blob && looksLikePointer(blob)) out.set(path, { type: 'pointer', pointer: parsePointer(blob.toString('utf8'), path), blob: oid });
    }
    return out;
  }
  for (const path of new Set([...staged.keys(), ...candidates])) {
    const file = join(topLevel, path);
    if (existsSync(file)) out.set(path, versionOfFile(file));
  }
  return out;
}

/** The shard indexes (`*.safetensors.index.json`) of a side under `paths`, with their text. */
async function indexesOf(side: SideSpec, paths: string[], topLevel: string, candidates: Iterable<string>): Promise<SideFiles['indexes']> {
  const out: SideFiles['indexes'] = new Map();
  let entries: [string, string][];
  if (side.kind === 'rev') {
    if (side.rev === 'HEAD' && !hasCommit('HEAD', topLevel)) return out;
    if (!hasCommit(side.rev, topLevel)) throw new UsageError(`unknown revision ${JSON.stringify(side.rev)}`, 'Check the name with `git log --oneline`.');
    entries = listFiles(side.rev, paths, topLevel).filter((f) => isShardIndexPath(f.path)).map((f) => [f.path, f.oid]);
  } else {
    entries = [...indexEntries(paths, topLevel, false)].filter(([p]) => isShardIndexPath(p));
  }
  if (side.kind === 'worktree') {
    for (const path of new Set([...entries.map(([p]) => p), ...[...candidates].filter(isShardIndexPath)])) {
      const file = join(topLevel, path);
      if (existsSync(file)) out.set(path, { text: readFileSync(file, 'utf8') });
    }
    return out;
  }
  const texts = await readSmallObjects(entries.map(([, oid]) => oid), topLevel);
  for (const [path, oid] of entries) {
    const text = texts.get(oid);
    if (text) out.set(path, { text: text.toString('utf8'), blob: oid });
  }
  return out;
}

/** Both sides' tracked files and shard indexes under `paths` (the indexes' folders are read whole). */
export async function sideFilesOf(oldSpec: SideSpec | null, newSpec: SideSpec, paths: string[], topLevel: string): Promise<[SideFiles, SideFiles]> {
  if (!oldSpec) {
    const [, newFiles] = await sideFilesOf(newSpec, newSpec, paths, topLevel);
    return [{ versions: new Map(), indexes: new Map() }, newFiles];
  }
  // The index of a model one of `paths` is a shard of sits in that path's folder.
  const lookIn = paths.some((p) => posix.dirname(p) === '.') ? [] : [...new Set([...paths, ...paths.map((p) => posix.dirname(p))])];
  const wanted = (index: string) => !paths.length || paths.some((p) => index === p || index.startsWith(`${p}/`) || posix.dirname(index) === posix.dirname(p));
  const only = (m: SideFiles['indexes']) => new Map([...m].filter(([p]) => wanted(p)));
  const oldIndexes = only(await indexesOf(oldSpec, lookIn, topLevel, []));
  const newIndexes = only(await indexesOf(newSpec, lookIn, topLevel, oldIndexes.keys()));
  // A path that names one shard (or the index) stands for the whole model: its folder is read.
  const dirs = [...new Set([...oldIndexes.keys(), ...newIndexes.keys()].map((p) => posix.dirname(p)))];
  const wide = paths.length && dirs.length ? (dirs.includes('.') ? [] : [...paths, ...dirs]) : paths;
  const oldVersions = await versionsOf(oldSpec, wide, topLevel, new Set());
  const newVersions = await versionsOf(newSpec, wide, topLevel, new Set(oldVersions.keys()));
  return [{ versions: oldVersions, indexes: oldIndexes }, { versions: newVersions, indexes: newIndexes }];
}

/** Index entries (stage 0), path -> blob id; with `trackedOnly`, only files git-tensor tracks. */
function indexEntries(paths: string[], cwd: string, trackedOnly: boolean): Map<string, string> {
  const out = gitRaw(['ls-files', '-s', '-z', '--', ...paths], { cwd }).stdout.toString('utf8');
  const entries = new Map<string, string>();
  for (const rec of out.split('\0').filter(Boolean)) {
    const tab = rec.indexOf('\t');
    const [, oid, stage] = rec.slice(0, tab).split(' ');
    if (stage === '0') entries.set(rec.slice(tab + 1), oid!);
  }
  if (!trackedOnly) return entries;
  const tracked = trackedPaths([...entries.keys()], cwd);
  for (const p of [...entries.keys()]) if (!tracked.has(p)) entries.delete(p);
  return entries;
}

/** Paths whose working-tree file may differ from `rev` (stat information only: nothing is cleaned). */
function possiblyChanged(rev: string | null, paths: string[], cwd: string): Set<string> | null {
  if (rev === null) return null;
  const r = gitRaw(['diff-index', '--name-only', '-z', '--no-renames', rev, '--', ...paths], { cwd, okCodes: [128] });
  if (r.status !== 0) return null;
  return new Set(r.stdout.toString('utf8').split('\0').filter(Boolean));
}

/** Repository-relative paths from paths relative to the current directory. */
function toTopLevelPaths(paths: string[], cwd: string): string[] {
  if (!paths.length) return [];
  const prefix = git(['rev-parse', '--show-prefix'], { cwd });
  return paths.map((p) => {
    const joined = posix.normalize(posix.join(prefix, p.replace(/\\/g, '/')));
    return joined === '.' ? '' : joined.replace(/\/$/, '');
  }).filter((p) => p !== '' || paths.length === 1);
}

export async function diff(opts: DiffOptions): Promise<Printable> {
  const ctx = openRepo();
  const { topLevel, store } = ctx;
  if (!topLevel) throw new UsageError('git tensor diff needs a working tree', 'Run it inside a checkout, or give two revisions.');
  // As in git, arguments before `--` that are not revisions but name files are paths.
  const revs: string[] = [], named: string[] = [];
  for (const r of opts.revs) {
    if (named.length || (!r.includes('..') && !hasCommit(r) && existsSync(r))) named.push(r);
    else revs.push(r);
  }
  const [oldSpec, newSpec] = resolveSides(revs, !!opts.cached, topLevel);
  const paths = toTopLevelPaths([...named, ...opts.paths], process.cwd()).filter(Boolean);
  const [oldFiles, newFiles] = await sideFilesOf(oldSpec, newSpec, paths, topLevel);
  const { versions: oldVersions } = oldFiles, { versions: newVersions } = newFiles;
  // Working-tree files that git sees as unchanged (by stat) are skipped without reading them; a shard
  // among them stands in for itself by its pointer, so the model's comparison does not read it.
  // (All paths: a path that names one shard brought its whole model in.)
  const dirty = newSpec.kind === 'worktree' && oldSpec.kind === 'rev' ? possiblyChanged(hasCommit(oldSpec.rev, topLevel) ? oldSpec.rev : null, [], topLevel) : null;
  if (dirty) for (const [path, v] of oldVersions) if (newVersions.has(path) && !dirty.has(path)) newVersions.set(path, v);
  const models = findModels(oldFiles, newFiles);
  const inModels = modelPaths(models);

  const vocabulary = opts.tokenizer ? vocabularyFromFile(opts.tokenizer) : undefined;
  const lazy = new LazyFetcher(ctx);
  const fetchMissing = (ids: string[], file: string) => lazy.fetch(ids, { file });
  const files: CheckpointDiff[] = [];
  const allPaths = [...new Set([...oldVersions.keys(), ...newVersions.keys()])].filter((p) => !inModels.has(p)).sort();
  const findTokenizerFor = (path: string) => () => {
    const spec = (s: SideSpec) => (s.kind === 'rev' ? `${s.rev}:${tokenizerPathFor(path)}` : `:${tokenizerPathFor(path)}`);
    if (newSpec.kind === 'worktree') return vocabularyInWorktree(topLevel, path) ?? vocabularyAt(spec(oldSpec), store, topLevel);
    return vocabularyAt(spec(newSpec), store, topLevel) ?? vocabularyAt(spec(oldSpec), store, topLevel);
  };
  try {
    for (const m of models) {
      if (modelUnchanged(m, sameVersion)) continue;
      const d = await diffModel(m, { store, vocabulary, findTokenizer: findTokenizerFor(m.index), histogram: !!opts.html, fetchMissing });
      const layout = d.shards!.old !== d.shards!.new || d.shards!.moved.length > 0 || d.shards!.problems.length > 0;
      if (d.status === 'modified' && d.tensors.every((t) => t.status === 'unchanged') && !d.metadata.length && !layout) continue;
      files.push(d);
    }
    for (const path of allPaths) {
      const o = oldVersions.get(path) ?? null;
      const n = newVersions.get(path) ?? null;
      if (o && n && sameVersion(o, n)) continue;
      if (dirty && o && n && !dirty.has(path)) continue;
      const adapterSide = (s: SideSpec): AdapterSide => ({ rev: s.kind === 'rev' ? s.rev : s.kind === 'index' ? '' : null, store, topLevel });
      const adapterSides = { old: adapterSide(oldSpec), new: adapterSide(newSpec) };
      const d = await diffVersions(path, o, n, { store, vocabulary, findTokenizer: findTokenizerFor(path), histogram: !!opts.html, fetchMissing, adapterSides });
      if (d.status === 'modified' && d.kind === 'safetensors' && d.tensors.every((t) => t.status === 'unchanged') && !d.metadata.length) continue;
      files.push(d);
    }
  } finally {
    lazy.close();
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const data = renderJson({ old: sideName(oldSpec), new: sideName(newSpec), files });
  const text: string[] = [];
  const top = opts.top ?? DEFAULT_TOP;
  for (const f of files) text.push(...renderText(f, { top }), '');
  if (!files.length) text.push(`no checkpoint changes between ${sideName(oldSpec)} and ${sideName(newSpec)}`);
  else text.pop();
  if (opts.html) {
    writeFileSync(opts.html, renderHtml({ old: sideName(oldSpec), new: sideName(newSpec), files, top }));
    text.push('', `wrote ${opts.html}`);
  }
  return { data, text };
}

export function sameVersion(a: Version, b: Version): boolean {
  if (a.type !== 'pointer' || b.type !== 'pointer') return false;
  if (a.blob && b.blob) return a.blob === b.blob;
  return JSON.stringify(a.pointer) === JSON.stringify(b.pointer);
}
