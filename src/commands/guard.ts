// Owns running the merge guard (docs/merge.md "Merge guard"): the protected probes of the `[probe] file`
// scored with the built-in engine on ours and on a merge candidate, the responsible modules found by
// reverting groups of tensors to ours, and the candidate versions themselves (a checkpoint at a tree,
// with one pointer replaced by a merge result). Used by the merge driver, `resolve` and `verify`.
//
// Ours' results come from the notes cache (probe-cache.ts, keyed by blob ids like `git tensor probe`'s),
// the model files are read once per version, and only the protected probes run: what keeps a guarded
// merge within a small factor of an unguarded one.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, posix } from 'node:path';
import { GitTensorError } from '../errors/index.js';
import { looksLikePointer, parsePointer, type Pointer, type PointerTensor } from '../format/pointer.js';
import { git, gitRaw } from '../git/exec.js';
import { readSmallObjects } from '../git/tree.js';
import type { MergeOutcome } from '../merge/checkpoint-merge.js';
import type { MergeRule } from '../merge/strategy.js';
import type { ModelFiles } from '../model/types.js';
import { ENGINE_VERSION } from '../model/version.js';
import { checkProtected, type GuardCheck, minimalSubset, moduleOf, protectedSubset, renderRegressions } from '../probe/guard.js';
import { parseProbes, type ProbeSet } from '../probe/probes.js';
import type { VersionResults } from '../probe/result.js';
import { LazyFetcher } from '../remote/lazy-fetch.js';
import type { RepoContext } from './context.js';
import { ProbeCache, type CacheKey } from './probe-cache.js';
import { loadProbeSettings } from './probe-config.js';
import { contentKeyOf, MODEL_FILES, modelFiles, SHARD_INDEX, shardsOf, type CommitVersion } from './probe-source.js';

type SafetensorsPointer = Extract<Pointer, { kind: 'safetensors' }>;

/** What a guarded step found. */
export interface GuardVerdict {
  path: string;
  held: boolean;
  check: GuardCheck;
  /** Modules whose revert to ours restores every protected probe; null when not searched or not found. */
  responsible: string[] | null;
  /** Model runs (forward passes over the protected probes) this verdict took, the cached ones not counted. */
  forwards: number;
}

/** How the guard stands in a repository: nothing to guard, guarded, or protected probes that cannot run. */
export type GuardSetup = { kind: 'none' } | { kind: 'guarded'; guard: Guard };

/** Errors that mean "the built-in engine cannot run this model", as opposed to a broken repository. */
export function cannotRun(err: unknown): err is GitTensorError {
  return err instanceof GitTensorError && ['E_MODEL_UNSUPPORTED', 'E_MODEL_CONFIG', 'E_MODEL_TENSOR', 'E_PROBE_CHECKPOINT', 'E_PROBE_TOKENIZER'].includes(err.code);
}

/** No `[probe] file`, or no protected probe in it: no guard and no message. */
export function openGuard(repo: RepoContext): GuardSetup {
  const settings = loadProbeSettings(repo.topLevel);
  if (!settings.file) return { kind: 'none' };
  const file = join(repo.topLevel, settings.file);
  if (!existsSync(file)) {
    throw new GitTensorError('E_GUARD_PROBES', `.gittensor names the probes file ${settings.file}, which does not exist`, {
      hint: 'Commit the probes file, or remove `[probe] file` from .gittensor; `git merge --abort` undoes this merge.',
    });
  }
  const full = parseProbes(readFileSync(file), settings.file);
  const prot = protectedSubset(full);
  return prot ? { kind: 'guarded', guard: new Guard(repo, full, prot) } : { kind: 'none' };
}

const dirOf = (path: string) => (posix.dirname(path) === '.' ? '' : posix.dirname(path));
const inDir = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);

export class Guard {
  private readonly cache: ProbeCache;
  private readonly lazy: LazyFetcher;
  private readonly format: 'sha1' | 'sha256';
  private readonly files = new Map<string, ModelFiles>();
  /** Model runs so far. */
  forwards = 0;

  constructor(readonly repo: RepoContext, readonly full: ProbeSet, readonly prot: ProbeSet) {
    this.cache = new ProbeCache(repo.topLevel, repo.commonDir);
    this.lazy = new LazyFetcher(repo);
    this.format = git(['rev-parse', '--show-object-format'], { cwd: repo.topLevel }) === 'sha256' ? 'sha256' : 'sha1';
  }

  close(): void {
    this.lazy.close();
  }

  /** The git blob id `text` would have, computed here. */
  blobId(text: string): string {
    const body = Buffer.from(text, 'utf8');
    return createHash(this.format).update(`blob ${body.length}\0`).update(body).digest('hex');
  }

  /**
   * The checkpoint `path` as of `treeish` (a commit or a tree), its model files (config.json,
   * tokenizer.json ...) and, for a sharded checkpoint, its other shards from there too; `replace` puts a
   * pointer text in place of the file at `path` (a merge result, or ours as the merge driver got it).
   */
  async version(opts: { treeish: string; path: string; label: string; replace?: string }): Promise<CommitVersion> {
    const cwd = this.repo.topLevel;
    const dir = dirOf(opts.path);
    const listing = gitRaw(['ls-tree', '-z', `${opts.treeish}:${dir}`], { cwd, okCodes: [128] }).stdout.toString('utf8');
    const here = new Map<string, string>();
    for (const rec of listing.split('\0').filter(Boolean)) {
      const tab = rec.indexOf('\t');
      const [, type, oid] = rec.slice(0, tab).split(' ');
      if (type === 'blob') here.set(rec.slice(tab + 1), oid!);
    }
    const name = basename(opts.path);
    const blobs = new Map<string, string>();
    for (const m of MODEL_FILES) if (here.has(m)) blobs.set(m, here.get(m)!);
    let shards = [name];
    let checkpoint = opts.path;
    const indexOid = here.get(SHARD_INDEX);
    if (indexOid && (name === SHARD_INDEX || name.endsWith('.safetensors'))) {
      const listed = shardsOf((await readSmallObjects([indexOid], cwd)).get(indexOid)?.toString('utf8') ?? '', `${opts.label} ${SHARD_INDEX}`);
      if (name === SHARD_INDEX || listed.includes(name)) {
        shards = listed;
        checkpoint = inDir(dir, SHARD_INDEX);
        blobs.set(SHARD_INDEX, indexOid);
      }
    }
    const texts = new Map<string, string>();
    if (opts.replace !== undefined) texts.set(name, opts.replace);
    const wanted = shards.filter((s) => !texts.has(s)).map((s) => here.get(s)).filter((o): o is string => !!o);
    const read = await readSmallObjects(wanted, cwd);
    const pointers = new Map<string, SafetensorsPointer>();
    for (const s of shards) {
      const file = inDir(dir, s);
      let text = texts.get(s);
      if (text === undefined) {
        const bytes = read.get(here.get(s) ?? '');
        if (!bytes || !looksLikePointer(bytes)) throw new GitTensorError('E_PROBE_CHECKPOINT', `${opts.label}: ${file} is not a git-tensor pointer there`, { data: { file } });
        text = bytes.toString('utf8');
      }
      const p = parsePointer(text, file);
      if (p.kind !== 'safetensors') throw new GitTensorError('E_PROBE_CHECKPOINT', `${opts.label}: ${file} is not a safetensors checkpoint`, { data: { file } });
      pointers.set(s, p);
      blobs.set(s, texts.has(s) ? this.blobId(text) : here.get(s)!);
    }
    return { type: 'commit', rev: opts.label, commit: '', path: checkpoint, label: opts.label, blobs, pointers, contentKey: contentKeyOf(blobs) };
  }

  private key(v: CommitVersion, set: ProbeSet): CacheKey {
    return { checkpoint: v.contentKey, probes: set.hash, engine: `${ENGINE_VERSION} generate=0` };
  }

  private async modelFilesOf(v: CommitVersion): Promise<ModelFiles> {
    let files = this.files.get(v.contentKey);
    if (!files) {
      files = await modelFiles(v, this.repo, this.lazy, this.repo.topLevel);
      this.files.set(v.contentKey, files);
    }
    return files;
  }

  private async score(files: ModelFiles, set: ProbeSet): Promise<VersionResults> {
    const { loadModel } = await import('../model/index.js');
    const { scoreProbes } = await import('../probe/score.js');
    const model = await loadModel(files);
    this.forwards++;
    try {
      return await scoreProbes(model, set, { label: files.label });
    } finally {
      model.dispose();
    }
  }

  /**
   * A version's results on `set` (the protected probes, or all of them): from the notes cache where
   * `git tensor probe` or an earlier guard left them, else computed and cached.
   */
  async results(v: CommitVersion, set: ProbeSet = this.prot): Promise<VersionResults> {
    const ids = new Set(set.probes.map((p) => p.id));
    if (set !== this.full) {
      const [all] = await this.cache.getMany([this.key(v, this.full)], this.full);
      if (all) return { ...all, probes: all.probes.filter((r) => ids.has(r.id)) };
    }
    const [hit] = await this.cache.getMany([this.key(v, set)], set);
    if (hit) return hit;
    const results = await this.score(await this.modelFilesOf(v), set);
    this.cache.put([{ key: this.key(v, set), label: `guard ${v.label}`, results }]);
    return results;
  }

  /** Runs the protected probes on `candidate` against `ours`; on regression, finds the responsible modules. */
  async check(ours: CommitVersion, candidate: CommitVersion, opts: { path: string; explain?: boolean }): Promise<GuardVerdict> {
    const start = this.forwards;
    const before = await this.results(ours);
    const after = await this.results(candidate);
    const check = checkProtected(this.prot.probes, before, after);
    const held = check.regressed.length === 0;
    const responsible = held || opts.explain === false ? null : await this.responsible(ours, candidate, before);
    return { path: opts.path, held, check, responsible, forwards: this.forwards - start };
  }

  /**
   * The fewest modules (groups of the tensors that differ between candidate and ours) whose revert to
   * ours makes every protected probe hold; null when reverting all of them does not (the regression is
   * elsewhere: a tensor added or reshaped, the header).
   */
  async responsible(ours: CommitVersion, candidate: CommitVersion, before: VersionResults): Promise<string[] | null> {
    const tensorsOf = (v: CommitVersion) => new Map([...v.pointers.values()].flatMap((p) => p.tensors.map((t): [string, PointerTensor] => [t.name, t])));
    const a = tensorsOf(ours);
    const groups = new Map<string, string[]>();
    for (const [name, t] of tensorsOf(candidate)) {
      const o = a.get(name);
      if (!o || o.id === t.id || o.dtype !== t.dtype || o.shape.join() !== t.shape.join()) continue;
      const m = moduleOf(name);
      groups.set(m, [...(groups.get(m) ?? []), name]);
    }
    if (!groups.size) return null;
    const oursFiles = await this.modelFilesOf(ours);
    const candFiles = await this.modelFilesOf(candidate);
    const holds = async (modules: string[]): Promise<boolean> => {
      const reverted = new Set(modules.flatMap((m) => groups.get(m)!));
      const files: ModelFiles = {
        ...candFiles,
        label: `${candidate.label} with ${modules.length} module(s) of ours`,
        tensors: { list: () => candFiles.tensors.list(), read: (n) => (reverted.has(n) ? oursFiles.tensors : candFiles.tensors).read(n) },
      };
      return checkProtected(this.prot.probes, before, await this.score(files, this.prot)).regressed.length === 0;
    };
    return minimalSubset([...groups.keys()], holds);
  }
}

/** The report of a verdict that did not hold, for stderr and `git tensor conflicts`. */
export function renderVerdict(v: GuardVerdict, labels = { before: 'ours', after: 'merged' }): string[] {
  const lines = [`merge guard: ${v.path}: ${v.check.regressed.length} protected probe(s) dropped by more than allowed (log-probability in nats, ${labels.before} -> ${labels.after}):`];
  lines.push(...renderRegressions(v.check, labels));
  if (v.responsible) lines.push(`  responsible module(s) (reverting them to ${labels.before} restores every protected probe): ${v.responsible.join(', ')}`);
  else lines.push(`  responsible modules: not found (reverting every changed tensor to ${labels.before} does not restore the probes)`);
  return lines;
}

/** A merge result after the guard: possibly changed by `protect`, with the verdict, or why it is unguarded. */
export interface GuardedOutcome {
  outcome: MergeOutcome;
  verdict: GuardVerdict | null;
  /** Tensors whose conflicting elements `protect` set back to base. */
  protectedToBase: string[];
  /** Set when protected probes exist but the built-in engine cannot run this model: the merge is not guarded. */
  unguarded?: string;
}

/**
 * Runs the guard on a clean merge result of `path` (`oursText`: ours' pointer, `treeish`: where ours'
 * model files and other shards are read). When the regression lies in modules whose conflicting elements
 * the `protect` strategy merged, merges again with those elements at base (`remerge`) and checks again.
 */
export async function guardMerge(opts: {
  setup: GuardSetup; path: string; treeish: string; oursText: string; outcome: MergeOutcome;
  remerge: (extra: MergeRule[]) => Promise<MergeOutcome>;
  /** Search the responsible modules of a regression (default: yes; auto asks only for `protect`). */
  explain?: boolean;
}): Promise<GuardedOutcome> {
  const { setup, path } = opts;
  let outcome = opts.outcome;
  if (setup.kind === 'none' || !outcome.clean) return { outcome, verdict: null, protectedToBase: [] };
  const guard = setup.guard;
  try {
    const ours = await guard.version({ treeish: opts.treeish, path, label: `ours:${path}`, replace: opts.oursText });
    const candidate = async (o: MergeOutcome) => guard.version({ treeish: opts.treeish, path, label: `merged:${path}`, replace: o.pointer });
    const usesProtect = outcome.tensors.some((t) => t.strategy === 'protect' && t.outcome === 'resolved');
    let verdict = await guard.check(ours, await candidate(outcome), { path, explain: opts.explain !== false || usesProtect });
    if (verdict.held) return { outcome, verdict, protectedToBase: [] };
    const responsible = verdict.responsible ? new Set(verdict.responsible) : null;
    const toBase = outcome.tensors.filter((t) => t.strategy === 'protect' && t.outcome === 'resolved' && (!responsible || responsible.has(moduleOf(t.name)))).map((t) => t.name);
    if (!toBase.length) return { outcome, verdict, protectedToBase: [] };
    outcome = await opts.remerge(toBase.map((name) => ({ tensor: name, params: { name: 'base' }, source: 'protect (merge guard)' })));
    verdict = await guard.check(ours, await candidate(outcome), { path });
    return { outcome, verdict, protectedToBase: toBase };
  } catch (err) {
    if (!cannotRun(err)) throw err;
    return { outcome, verdict: null, protectedToBase: [], unguarded: `merge guard: cannot run the protected probes on ${path} (${err.message}); this merge is NOT guarded` };
  }
}
