// Owns finding one model version to probe and giving access to its files: `<rev>` / `<rev>:<path>` reads
// the checkpoint (one safetensors file or a sharded one through model.safetensors.index.json) and the
// Hugging Face files beside it (config.json, tokenizer.json, ...) at that commit, tensors from the store
// (lazily fetched from a `tensor::` remote when this clone lacks them); `--path` reads a checkpoint on
// disk. A version can be handed to the built-in engine (ModelFiles) or materialized into a folder for an
// external runner.

import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { ExitCode, GitTensorError, MissingObjectsError, UsageError } from '../errors/index.js';
import { looksLikePointer, parsePointer, type Pointer } from '../format/pointer.js';
import { gitRaw } from '../git/exec.js';
import { readPointerBlobs } from '../git/cat-file.js';
import { listFiles, MAX_MODEL_FILE_BYTES, readSmallObjects, trackedPaths } from '../git/tree.js';
import type { ModelFiles, TensorInfo, TensorSource } from '../model/types.js';
import { restore, validatePointer } from '../store/checkpoint.js';
import type { RepoContext } from './context.js';
import type { LazyFetcher } from '../remote/lazy-fetch.js';
import { objectIdsOf } from '../format/pointer.js';

/** Files a Hugging Face model folder may hold besides its weights: what the engine and runners read. */
export const MODEL_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
  'vocab.txt', 'vocab.json', 'merges.txt', 'tokenizer.model', 'added_tokens.json',
];
export const SHARD_INDEX = 'model.safetensors.index.json';

/** One version of a model: at a commit (files are blobs) or on disk. */
export type ModelVersion = CommitVersion | DiskVersion;

export interface CommitVersion {
  type: 'commit';
  /** What the user wrote, e.g. `HEAD~2`. */
  rev: string;
  /** The commit id ('' for a blob given by git's diff driver). */
  commit: string;
  /** Repository-relative checkpoint path (the shard index for a sharded checkpoint). */
  path: string;
  label: string;
  /** name in the checkpoint's folder -> blob id, for the model files, the index and the shards. */
  blobs: Map<string, string>;
  /** Shard (or single file) name -> its pointer. */
  pointers: Map<string, Extract<Pointer, { kind: 'safetensors' }>>;
  /** Hash of the blob ids above: the same files give the same key in every clone. */
  contentKey: string;
}

export interface DiskVersion {
  type: 'disk';
  /** Absolute path of the checkpoint (or shard index). */
  file: string;
  label: string;
}

function dirOf(path: string): string {
  const d = posix.dirname(path);
  return d === '.' ? '' : d;
}

function inDir(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

/**
 * Resolves `<rev>` or `<rev>:<path>` to a checkpoint version. Without a path, the commit must hold one
 * checkpoint (a sharded one counts once); `path` picks one when there are several.
 */
export async function commitVersion(spec: string, cwd: string, path?: string): Promise<CommitVersion> {
  const colon = spec.indexOf(':');
  const rev = colon > 0 ? spec.slice(0, colon) : spec;
  const wanted = colon > 0 ? spec.slice(colon + 1) : path;
  const r = gitRaw(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], { cwd, okCodes: [1, 128] });
  if (r.status !== 0) throw new UsageError(`unknown revision ${JSON.stringify(rev)}`, 'Check the name with `git log --oneline`.');
  const commit = r.stdout.toString('utf8').trim();
  const files = listFiles(commit, [], cwd);
  const tracked = trackedPaths(files.map((f) => f.path), cwd);
  const byPath = new Map(files.map((f) => [f.path, f.oid]));
  const indexes = files.filter((f) => basename(f.path) === SHARD_INDEX).map((f) => f.path);
  let chosen: string;
  if (wanted) {
    if (!byPath.has(wanted)) throw new UsageError(`${rev} has no file ${wanted}`, `List its checkpoints with \`git tensor ls ${rev}\`.`);
    chosen = wanted;
  } else {
    const sharded = new Set(indexes.map(dirOf));
    // A PEFT adapter (adapter_model.safetensors) is not a model to probe alone: `--adapter` applies it.
    const candidates = [...indexes, ...files.filter((f) => tracked.has(f.path) && f.path.endsWith('.safetensors') && basename(f.path) !== 'adapter_model.safetensors' && !sharded.has(dirOf(f.path))).map((f) => f.path)];
    if (candidates.length !== 1) {
      throw new UsageError(candidates.length ? `${rev} holds ${candidates.length} checkpoints (${candidates.slice(0, 5).join(', ')})` : `${rev} holds no tracked checkpoint`,
        candidates.length ? `Name one: \`git tensor probe ${rev}:${candidates[0]}\`.` : 'Track and commit one (`git tensor track "*.safetensors"`).');
    }
    chosen = candidates[0]!;
  }
  const dir = dirOf(chosen);
  const label = `${rev}:${chosen}`;
  const blobs = new Map<string, string>();
  for (const name of MODEL_FILES) {
    const oid = byPath.get(inDir(dir, name));
    if (oid) blobs.set(name, oid);
  }
  let shards: string[];
  if (basename(chosen) === SHARD_INDEX) {
    blobs.set(SHARD_INDEX, byPath.get(chosen)!);
    const index = (await readSmallObjects([byPath.get(chosen)!], cwd)).get(byPath.get(chosen)!)!;
    shards = shardsOf(index.toString('utf8'), label);
  } else {
    shards = [basename(chosen)];
  }
  for (const s of shards) {
    const oid = byPath.get(inDir(dir, s));
    if (!oid) throw new GitTensorError('E_PROBE_CHECKPOINT', `${label}: shard ${s} is not in the commit`, { exitCode: ExitCode.badInput, data: { file: chosen } });
    blobs.set(s, oid);
  }
  const pointerBlobs = await readPointerBlobs(shards.map((s) => blobs.get(s)!), cwd);
  const pointers = new Map<string, Extract<Pointer, { kind: 'safetensors' }>>();
  for (const s of shards) {
    const bytes = pointerBlobs.get(blobs.get(s)!);
    const file = inDir(dir, s);
    if (!bytes || !looksLikePointer(bytes)) {
      throw new GitTensorError('E_PROBE_CHECKPOINT', `${rev}:${file} is not stored by git-tensor (no pointer)`, {
        exitCode: ExitCode.badInput, data: { file }, hint: 'Track it (`git tensor track "*.safetensors"`) and commit it again, or probe the file with --path.',
      });
    }
    const p = parsePointer(bytes.toString('utf8'), file);
    if (p.kind !== 'safetensors') throw new GitTensorError('E_PROBE_CHECKPOINT', `${rev}:${file} is not a safetensors checkpoint`, { exitCode: ExitCode.badInput, data: { file } });
    pointers.set(s, p);
  }
  return { type: 'commit', rev, commit, path: chosen, label, blobs, pointers, contentKey: contentKeyOf(blobs) };
}

/**
 * The version of the single checkpoint `path` whose pointer is blob `oid` (what git's diff driver is
 * given), with the model files beside it taken from the index: the driver does not know the commit.
 */
export async function blobVersion(path: string, oid: string, label: string, cwd: string): Promise<CommitVersion> {
  const dir = dirOf(path);
  const blobs = new Map<string, string>();
  const staged = gitRaw(['ls-files', '-s', '-z', '--', ...MODEL_FILES.map((n) => `:(top,literal)${inDir(dir, n)}`)], { cwd }).stdout.toString('utf8');
  for (const rec of staged.split('\0').filter(Boolean)) {
    const tab = rec.indexOf('\t');
    const [, blob, stage] = rec.slice(0, tab).split(' ');
    if (stage === '0') blobs.set(basename(rec.slice(tab + 1)), blob!);
  }
  const name = basename(path);
  blobs.set(name, oid);
  const bytes = (await readPointerBlobs([oid], cwd)).get(oid);
  if (!bytes || !looksLikePointer(bytes)) throw new GitTensorError('E_PROBE_CHECKPOINT', `${label} is not stored by git-tensor (no pointer)`, { exitCode: ExitCode.badInput, data: { file: path } });
  const p = parsePointer(bytes.toString('utf8'), path);
  if (p.kind !== 'safetensors') throw new GitTensorError('E_PROBE_CHECKPOINT', `${label} is not a safetensors checkpoint`, { exitCode: ExitCode.badInput, data: { file: path } });
  return { type: 'commit', rev: label, commit: '', path, label, blobs, pointers: new Map([[name, p]]), contentKey: contentKeyOf(blobs) };
}

export function contentKeyOf(blobs: Map<string, string>): string {
  const key = createHash('sha256');
  for (const [name, oid] of [...blobs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) key.update(`${name} ${oid}\n`);
  return key.digest('hex');
}

/** Entries of a git tree object (binary format: `<mode> <name>\0<raw id>`...), name -> hex id of blobs. */
function parseTree(bytes: Buffer, idBytes: number): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < bytes.length) {
    const sp = bytes.indexOf(0x20, at), nul = bytes.indexOf(0, sp);
    const mode = bytes.toString('latin1', at, sp);
    const name = bytes.toString('utf8', sp + 1, nul);
    if (!mode.startsWith('4') && !mode.startsWith('16')) out.set(name, bytes.toString('hex', nul + 1, nul + 1 + idBytes));
    at = nul + 1 + idBytes;
  }
  return out;
}

/**
 * The version of checkpoint `path` at each of `commits` (full ids), read in bulk: one `git cat-file
 * --batch` for the folders' trees and one for the pointers, whatever the number of commits (what makes a
 * cached `log --probes` fast). Commits without the checkpoint are left out.
 */
export async function commitVersionsOf(commits: { commit: string; rev: string }[], path: string, cwd: string): Promise<CommitVersion[]> {
  const dir = dirOf(path);
  const name = basename(path);
  const trees = await readSmallObjects(commits.map((c) => `${c.commit}:${dir}`), cwd);
  const listed = commits.map((c) => {
    const tree = trees.get(`${c.commit}:${dir}`);
    return tree ? parseTree(tree, c.commit.length / 2) : new Map<string, string>();
  });
  const indexes = await readSmallObjects(name === SHARD_INDEX ? listed.map((t) => t.get(name)).filter((o): o is string => !!o) : [], cwd);
  const shardsAt = listed.map((t, i) => {
    const oid = t.get(name);
    if (!oid) return null;
    return name === SHARD_INDEX ? shardsOf(indexes.get(oid)!.toString('utf8'), `${commits[i]!.rev}:${path}`) : [name];
  });
  const pointerBlobs = await readPointerBlobs(listed.flatMap((t, i) => (shardsAt[i] ?? []).map((s) => t.get(s)).filter((o): o is string => !!o)), cwd);
  const out: CommitVersion[] = [];
  listed.forEach((t, i) => {
    const shards = shardsAt[i];
    if (!shards) return;
    const c = commits[i]!;
    const label = `${c.rev}:${path}`;
    const blobs = new Map<string, string>();
    for (const n of [...MODEL_FILES, SHARD_INDEX, ...shards]) if (t.has(n)) blobs.set(n, t.get(n)!);
    const pointers = new Map<string, Extract<Pointer, { kind: 'safetensors' }>>();
    for (const s of shards) {
      const bytes = pointerBlobs.get(t.get(s) ?? '');
      if (!bytes || !looksLikePointer(bytes)) return;
      const p = parsePointer(bytes.toString('utf8'), inDir(dir, s));
      if (p.kind !== 'safetensors') return;
      pointers.set(s, p);
    }
    out.push({ type: 'commit', rev: c.rev, commit: c.commit, path, label, blobs, pointers, contentKey: contentKeyOf(blobs) });
  });
  return out;
}

/** Shard file names a model.safetensors.index.json names, in first-use order. */
export function shardsOf(text: string, label: string): string[] {
  let map: unknown;
  try {
    map = (JSON.parse(text) as { weight_map?: unknown })?.weight_map;
  } catch (err) {
    throw new GitTensorError('E_PROBE_CHECKPOINT', `${label}: not JSON (${(err as Error).message})`, { exitCode: ExitCode.badInput });
  }
  if (!map || typeof map !== 'object') throw new GitTensorError('E_PROBE_CHECKPOINT', `${label}: no weight_map`, { exitCode: ExitCode.badInput });
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const s of shards) {
    if (typeof s !== 'string' || s.includes('/') || s.includes('\\') || s === '..' || !s) {
      throw new GitTensorError('E_PROBE_CHECKPOINT', `${label}: bad shard name ${JSON.stringify(s)}`, { exitCode: ExitCode.badInput });
    }
  }
  return shards as string[];
}

export function diskVersion(file: string): DiskVersion {
  const abs = resolve(file);
  if (!existsSync(abs) || !statSync(abs).isFile()) throw new UsageError(`--path ${file}: no such file`, 'Give a .safetensors checkpoint or its model.safetensors.index.json.');
  return { type: 'disk', file: abs, label: file };
}

/**
 * Makes sure the store holds every object of the version's pointers (fetching from the remote when it
 * can), then checks each pointer against the store: its header object and tensor object sizes.
 */
export async function ensureObjects(v: CommitVersion, repo: RepoContext, lazy: LazyFetcher): Promise<void> {
  const dir = dirOf(v.path);
  const ids = [...v.pointers.values()].flatMap(objectIdsOf);
  let missing = repo.store.missing(ids);
  if (missing.length) {
    await lazy.fetch(missing, { file: v.path, treeish: v.commit || undefined });
    missing = repo.store.missing(ids);
    if (missing.length) throw new MissingObjectsError(missing, { file: v.path });
  }
  for (const [name, p] of v.pointers) validatePointer(repo.store, p, inDir(dir, name));
}

/** A model file's bytes at the commit (a file tracked by git-tensor is read from the store). */
async function blobBytes(v: CommitVersion, name: string, repo: RepoContext, lazy: LazyFetcher, cwd: string): Promise<Buffer | undefined> {
  const oid = v.blobs.get(name);
  if (!oid) return undefined;
  const bytes = (await readSmallObjects([oid], cwd)).get(oid);
  if (!bytes) {
    throw new GitTensorError('E_PROBE_CHECKPOINT', `${v.label}: ${name} is over ${MAX_MODEL_FILE_BYTES >> 20} MiB`, { exitCode: ExitCode.badInput, data: { file: inDir(dirOf(v.path), name) } });
  }
  if (!looksLikePointer(bytes)) return bytes;
  const file = inDir(dirOf(v.path), name);
  const p = parsePointer(bytes.toString('utf8'), file);
  const ids = objectIdsOf(p);
  if (repo.store.missing(ids).length) await lazy.fetch(repo.store.missing(ids), { file });
  const chunks: Buffer[] = [];
  for await (const c of restore(repo.store, p, file)) chunks.push(c);
  return Buffer.concat(chunks);
}

function parseJson(bytes: Buffer | undefined, what: string): unknown {
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new GitTensorError('E_PROBE_CHECKPOINT', `${what}: not JSON (${(err as Error).message})`, { exitCode: ExitCode.badInput, data: { file: what } });
  }
}

/** The version's tensors read from the store (verified on read). */
function storeTensorSource(v: CommitVersion, repo: RepoContext): TensorSource {
  const dir = dirOf(v.path);
  const where = new Map<string, { id: string; file: string }>();
  const infos: TensorInfo[] = [];
  for (const [name, p] of v.pointers) {
    for (const t of p.tensors) {
      if (where.has(t.name)) continue;
      where.set(t.name, { id: t.id, file: inDir(dir, name) });
      infos.push({ name: t.name, dtype: t.dtype, shape: t.shape });
    }
  }
  return {
    list: async () => infos,
    read: async (name) => {
      const w = where.get(name);
      if (!w) throw new GitTensorError('E_PROBE_CHECKPOINT', `${v.label}: no tensor named ${name}`, { data: { tensor: name } });
      return repo.store.readAsync(w.id, { file: w.file, tensor: name });
    },
  };
}

/** ModelFiles for the built-in engine. */
export async function modelFiles(v: ModelVersion, repo: RepoContext | null, lazy: LazyFetcher | null, cwd: string): Promise<ModelFiles> {
  if (v.type === 'disk') {
    const { fileTensorSource } = await import('../model/index.js');
    const dir = dirname(v.file);
    const read = (name: string) => (existsSync(join(dir, name)) ? readFileSync(join(dir, name)) : undefined);
    const config = parseJson(read('config.json'), join(dir, 'config.json'));
    if (config === undefined) throw missingConfig(v.label);
    return {
      label: v.label, config, tokenizer: parseJson(read('tokenizer.json'), 'tokenizer.json'),
      tokenizerConfig: parseJson(read('tokenizer_config.json'), 'tokenizer_config.json'), tensors: await fileTensorSource(v.file),
    };
  }
  await ensureObjects(v, repo!, lazy!);
  const dir = dirOf(v.path);
  const read = async (name: string) => parseJson(await blobBytes(v, name, repo!, lazy!, cwd), `${v.rev}:${inDir(dir, name)}`);
  const config = await read('config.json');
  if (config === undefined) throw missingConfig(v.label);
  return { label: v.label, config, tokenizer: await read('tokenizer.json'), tokenizerConfig: await read('tokenizer_config.json'), tensors: storeTensorSource(v, repo!) };
}

function missingConfig(label: string): GitTensorError {
  return new GitTensorError('E_PROBE_CHECKPOINT', `${label}: no config.json beside the checkpoint`, {
    exitCode: ExitCode.badInput, hint: 'Commit the model\'s config.json (Hugging Face layout) in the checkpoint\'s folder.',
  });
}

/**
 * Writes the version's model folder into `out` for an external runner: the checkpoint (restored byte for
 * byte from the store) or its shards and index, and the model files beside it. Returns the checkpoint's
 * path inside `out`. A disk version is not copied: its own folder is used.
 */
export async function materialize(v: ModelVersion, out: string, repo: RepoContext | null, lazy: LazyFetcher | null, cwd: string): Promise<{ dir: string; checkpoint: string }> {
  if (v.type === 'disk') return { dir: dirname(v.file), checkpoint: v.file };
  await ensureObjects(v, repo!, lazy!);
  mkdirSync(out, { recursive: true });
  const dir = dirOf(v.path);
  for (const name of v.blobs.keys()) {
    const p = v.pointers.get(name);
    if (p) {
      await pipeline(Readable.from(restore(repo!.store, p, inDir(dir, name))), createWriteStream(join(out, name)));
    } else {
      writeFileSync(join(out, name), (await blobBytes(v, name, repo!, lazy!, cwd))!);
    }
  }
  return { dir: out, checkpoint: join(out, basename(v.path)) };
}
