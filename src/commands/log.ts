// Owns `git tensor log [<path>]`: one line per commit that changed a tracked checkpoint, summarising the
// change against the commit's first parent, e.g.
//   a1b2c3d fine-tune layer 3  model.safetensors: 2/13 tensors changed, max rel 1.2e-3 (low-rank r=4)

import { Printable } from './printable.js';
import { compared } from '../diff/analyze.js';
import { sci } from '../diff/report-text.js';
import type { CheckpointDiff } from '../diff/types.js';
import { UsageError } from '../errors/index.js';
import { looksLikePointer, parsePointer } from '../format/pointer.js';
import { git, gitRaw } from '../git/exec.js';
import { readPointerBlobs } from '../git/cat-file.js';
import { trackedPaths } from '../git/tree.js';
import { openRepo } from './context.js';
import { diffModel, diffVersions, sameVersion, sideFilesOf, type Version, vocabularyAt, tokenizerPathFor } from './diff.js';
import { findModels, modelPaths, modelUnchanged, type ShardedModel } from './sharded.js';
import { isShardIndexPath } from '../format/shard-index.js';
import { posix } from 'node:path';

export interface LogOptions {
  path?: string;
  /** Where the walk starts (default HEAD). */
  rev?: string;
  maxCount?: number;
}

interface RawChange {
  path: string;
  oldOid: string | null;
  newOid: string | null;
}

const ZERO = /^0+$/;

export async function log(opts: LogOptions): Promise<Printable> {
  const { topLevel, store } = openRepo();
  const cwd = topLevel || undefined;
  const start = opts.rev ?? 'HEAD';
  if (gitRaw(['rev-parse', '--verify', '--quiet', `${start}^{commit}`], { cwd, okCodes: [1, 128] }).status !== 0) {
    throw new UsageError(`unknown revision ${JSON.stringify(start)}`, start === 'HEAD' ? 'Commit something first (`git commit`).' : 'Check the name with `git log --oneline`.');
  }
  const prefix = opts.path ? git(['rev-parse', '--show-prefix']) : '';
  const pathspec = opts.path ? [`:(top)${prefix}${opts.path}`] : [];
  const listing = git(['log', '--format=%H%x00%h%x00%P%x00%s', ...(opts.maxCount ? [`--max-count=${opts.maxCount}`] : []), start, '--', ...pathspec], { cwd });
  const commits = listing.split('\n').filter(Boolean).map((l) => {
    const [hash, short, parents, subject] = l.split('\0');
    return { hash: hash!, short: short!, parent: parents!.split(' ').filter(Boolean)[0] ?? null, subject: subject ?? '' };
  });

  const entries: { commit: string; short: string; subject: string; files: ReturnType<typeof fileSummary>[] }[] = [];
  const text: string[] = [];
  for (const c of commits) {
    const changes = changedFiles(c.hash, c.parent, pathspec, cwd);
    const tracked = trackedPaths(changes.map((x) => x.path), cwd);
    const relevant = changes.filter((x) => tracked.has(x.path));
    if (!relevant.length && !changes.some((x) => isShardIndexPath(x.path))) continue;
    const blobs = await readPointerBlobs(relevant.flatMap((x) => [x.oldOid, x.newOid]).filter((o): o is string => o !== null), cwd);
    const version = (oid: string | null, path: string): Version | null => {
      if (!oid) return null;
      const b = blobs.get(oid);
      return b && looksLikePointer(b) ? { type: 'pointer', pointer: parsePointer(b.toString('utf8'), path), blob: oid } : null;
    };
    const files: ReturnType<typeof fileSummary>[] = [];
    // A sharded checkpoint is one model: its changed tensors are listed once, whichever shards changed.
    const models = await changedModels(c.hash, c.parent, [...relevant, ...changes.filter((x) => isShardIndexPath(x.path))], cwd ?? process.cwd());
    for (const m of models) {
      const findTokenizer = () => vocabularyAt(`${c.hash}:${tokenizerPathFor(m.index)}`, store, cwd);
      files.push(fileSummary(await diffModel(m, { store, findTokenizer, topTokens: 3 })));
    }
    const inModels = modelPaths(models);
    for (const x of relevant.filter((r) => !inModels.has(r.path))) {
      const o = version(x.oldOid, x.path), n = version(x.newOid, x.path);
      if (!o && !n) continue;
      const findTokenizer = () => vocabularyAt(`${c.hash}:${tokenizerPathFor(x.path)}`, store, cwd);
      files.push(fileSummary(await diffVersions(x.path, o, n, { store, findTokenizer, topTokens: 3 })));
    }
    if (!files.length) continue;
    entries.push({ commit: c.hash, short: c.short, subject: c.subject, files });
    text.push(`${c.short} ${c.subject}  ${files.map((f) => f.line).join('; ')}`);
  }
  if (!entries.length) text.push(opts.path ? `no commits change ${opts.path}` : 'no commits change a tracked checkpoint');
  return { data: { version: 1, commits: entries }, text };
}

/** The sharded models a commit changes (a shard or an index changed), compared with its first parent. */
async function changedModels(commit: string, parent: string | null, changes: RawChange[], cwd: string): Promise<ShardedModel[]> {
  if (!changes.length) return [];
  const dirs = [...new Set(changes.map((x) => posix.dirname(x.path)))];
  const hasIndex = (rev: string) => dirs.some((d) => gitRaw(['ls-tree', '--name-only', '-z', rev, ...(d === '.' ? [] : ['--', `${d}/`])], { cwd }).stdout.toString('utf8').split('\0').some(isShardIndexPath));
  if (!changes.some((x) => isShardIndexPath(x.path)) && !hasIndex(commit) && !(parent && hasIndex(parent))) return [];
  const [oldFiles, newFiles] = await sideFilesOf(parent ? { kind: 'rev', rev: parent } : null, { kind: 'rev', rev: commit }, dirs.includes('.') ? [] : dirs, cwd);
  return findModels(oldFiles, newFiles).filter((m) => !modelUnchanged(m, sameVersion));
}

/** Files a commit changes relative to its first parent (all files for a root commit). */
function changedFiles(commit: string, parent: string | null, pathspec: string[], cwd?: string): RawChange[] {
  const common = ['diff-tree', '-r', '-z', '--no-abbrev', '--no-renames', '--no-commit-id'];
  const args = parent ? [...common, parent, commit, '--', ...pathspec] : [...common, '--root', commit, '--', ...pathspec];
  const fields = gitRaw(args, { cwd }).stdout.toString('utf8').split('\0');
  const out: RawChange[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const meta = fields[i]!;
    const [, , oldOid, newOid] = meta.slice(1).split(' ');
    out.push({ path: fields[i + 1]!, oldOid: oldOid && !ZERO.test(oldOid) ? oldOid : null, newOid: newOid && !ZERO.test(newOid) ? newOid : null });
  }
  return out;
}

/** The per-file part of a log line and its data. */
export function fileSummary(d: CheckpointDiff) {
  const changed = d.tensors.filter((t) => t.status !== 'unchanged');
  const rels = d.tensors.filter(compared).map((t) => t.relChange).filter((r): r is number => r !== null);
  const maxRel = rels.length ? Math.max(...rels) : null;
  const kinds = new Map<string, number>();
  for (const t of changed) kinds.set(t.kind, (kinds.get(t.kind) ?? 0) + 1);
  const s = d.shards;
  const name = !s ? d.path : s.old !== null && s.new !== null && s.old !== s.new ? `${d.path} (${s.old} -> ${s.new} shards)` : `${d.path} (${s.new ?? s.old} shards)`;
  let line: string;
  if (d.kind === 'opaque') line = `${d.path}: opaque file ${d.status}`;
  else if (d.status === 'added') line = `${name}: added (${d.new!.tensors} tensors)`;
  else if (d.status === 'deleted') line = `${name}: deleted (${d.old!.tensors} tensors)`;
  else {
    line = `${name}: ${changed.length}/${d.new!.tensors} tensors changed`;
    if (maxRel !== null) line += `, max rel ${sci(maxRel)}`;
    if (changed.length) line += ` (${kindSummary(d)})`;
    if (d.tokens.length && d.tokens[0]!.top.length) line += `; tokens ${d.tokens[0]!.top.map((m) => JSON.stringify(m.text)).join(', ')}`;
  }
  return {
    path: d.path, status: d.status, tensors: d.new?.tensors ?? d.old?.tensors ?? 0, changed: changed.length,
    max_rel_change: maxRel, kinds: Object.fromEntries(kinds), line,
  };
}

/** `low-rank r=4` when every changed tensor has one kind, else counts per kind, largest first. */
function kindSummary(d: CheckpointDiff): string {
  const changed = d.tensors.filter((t) => t.status !== 'unchanged');
  const kinds = new Map<string, number>();
  for (const t of changed) kinds.set(t.kind, (kinds.get(t.kind) ?? 0) + 1);
  if (kinds.size === 1) {
    const kind = [...kinds.keys()][0]!;
    if (kind === 'low-rank') {
      const ranks = changed.map((t) => t.rank?.effective ?? 0);
      const lo = Math.min(...ranks), hi = Math.max(...ranks);
      return `low-rank r=${lo === hi ? lo : `${lo}-${hi}`}`;
    }
    if (kind === 'structural') return changed.map((t) => t.status).filter((s, i, a) => a.indexOf(s) === i).join(', ');
    return changed.length === 1 ? `${kind} ${changed[0]!.detail}` : kind;
  }
  return [...kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${k}`).join(', ');
}
