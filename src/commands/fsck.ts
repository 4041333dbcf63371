// Owns `git tensor fsck`: check every pack's layout against its index, re-hash every stored object,
// check that pointers have what they need, and that the shard indexes at HEAD match their shards.

import { existsSync, readdirSync } from 'node:fs';
import { Printable } from './printable.js';
import { ExitCode, GitTensorError } from '../errors/index.js';
import { Encoding } from '../store/pack.js';
import { sha256 } from '../store/store.js';
import { validatePointer } from '../store/checkpoint.js';
import { openRepo } from './context.js';
import { objectIdsOf } from '../format/pointer.js';
import { pointersAt, pointersInHistory, type TrackedPointer } from './pointers.js';
import { findModels, sideProblems, type SideFiles } from './sharded.js';
import type { Version } from './diff.js';
import { indexProblemHint, isShardIndexPath, type IndexProblem } from '../format/shard-index.js';
import { gitRaw } from '../git/exec.js';
import { listFiles, readSmallObjects } from '../git/tree.js';

export interface FsckOptions {
  all?: boolean;
}

export interface FsckReport {
  objects: number;
  /** Packs whose file is damaged outside any one object (magic, entry headers, length). */
  corruptPacks: { pack: string; problem: string }[];
  /** Packs whose index is there but whose pack file is gone. */
  missingPacks: { pack: string; objects: number }[];
  corrupt: { id: string; pack: string; problem: string }[];
  missing: { id: string; path: string }[];
  /** Pointers that cannot be restored whatever objects are fetched (hand-edited, inconsistent). */
  badPointers: { path: string; code: string; problem: string }[];
  leftoverTempFiles: string[];
  /** Shard indexes at HEAD checked against their shards (docs/diff.md, "Sharded checkpoints"). */
  shardIndexes: { index: string; problems: IndexProblem[] }[];
}

export async function fsck(opts: FsckOptions): Promise<Printable> {
  const { store } = openRepo();
  const report: FsckReport = { objects: 0, corruptPacks: [], missingPacks: [], corrupt: [], missing: [], badPointers: [], leftoverTempFiles: [], shardIndexes: [] };
  for (const pack of [...store.packFiles]) {
    if (!existsSync(pack.packPath)) {
      // The index outlived its pack: the objects it lists are missing (fetch them), not corrupt.
      report.missingPacks.push({ pack: pack.packPath, objects: pack.count });
      store.forgetPack(pack);
      continue;
    }
    const problem = pack.checkLayout();
    if (problem) report.corruptPacks.push({ pack: pack.packPath, problem });
  }
  for (const pack of store.packFiles) {
    for (const entry of pack.entries()) {
      report.objects++;
      try {
        if (entry.encoding === Encoding.raw) {
          const got = sha256(pack.read(entry)).toString('hex');
          if (got !== entry.id) report.corrupt.push({ id: entry.id, pack: pack.packPath, problem: `content hashes to ${got.slice(0, 16)}` });
        } else {
          for (const _ of store.stream(entry.id)) {
            // stream() verifies the whole object's hash at the end
          }
        }
      } catch (err) {
        if (!(err instanceof GitTensorError)) throw err;
        if (err.code === 'E_MISSING_OBJECTS') {
          for (const id of (err.data.ids as string[] | undefined) ?? []) report.missing.push({ id, path: `object ${entry.id.slice(0, 16)}` });
        } else report.corrupt.push({ id: entry.id, pack: pack.packPath, problem: err.message });
      }
    }
  }
  const pointers = opts.all ? await pointersInHistory() : await pointersAt('HEAD').catch(() => []);
  for (const p of pointers) {
    const path = p.path || `blob ${p.oid.slice(0, 12)}`;
    const missing = store.missing(objectIdsOf(p.pointer));
    for (const id of missing) report.missing.push({ id, path });
    try {
      validatePointer(store, p.pointer, path);
    } catch (err) {
      if (!(err instanceof GitTensorError)) throw err;
      report.badPointers.push({ path, code: err.code, problem: err.message });
    }
  }
  report.leftoverTempFiles = readdirSync(store.tmpDir);
  report.shardIndexes = await shardIndexesAtHead(opts.all ? await pointersAt('HEAD').catch(() => []) : pointers);

  const text = [`checked ${report.objects} objects in ${store.packFiles.length} pack(s), ${pointers.length} pointer(s)`];
  for (const p of report.missingPacks) text.push(`missing pack ${p.pack}: its index lists ${p.objects} object(s), the pack file is gone`);
  for (const p of report.corruptPacks) text.push(`corrupt pack ${p.pack}: ${p.problem}`);
  for (const c of report.corrupt) text.push(`corrupt object ${c.id} in ${c.pack}: ${c.problem}`);
  for (const m of report.missing) text.push(`missing object ${m.id} needed by ${m.path}`);
  for (const b of report.badPointers) text.push(`bad pointer ${b.path}: ${b.problem}`);
  if (report.leftoverTempFiles.length) {
    text.push(`${report.leftoverTempFiles.length} temp file(s) left by interrupted writes (harmless; \`git tensor gc\` removes them)`);
  }
  for (const { index, problems } of report.shardIndexes) {
    for (const p of problems) text.push(`${p.severity === 'error' ? 'bad' : 'warning:'} shard index ${index}: ${p.message}`);
  }
  const indexErrors = report.shardIndexes.filter((x) => x.problems.some((p) => p.severity === 'error'));
  for (const x of report.shardIndexes) {
    const hint = indexProblemHint(x.problems, x.index);
    if (hint) text.push(`hint: ${hint}`);
  }
  if (report.badPointers.length) text.push(`hint: take each bad pointer's file from a commit where it is intact (\`git checkout <commit> -- <path>\`).`);
  const corrupt = report.corrupt.length + report.corruptPacks.length;
  const missing = report.missing.length + report.missingPacks.length;
  if (report.corruptPacks.length) text.push('hint: move each corrupt pack and its .idx out of .git/tensor/packs, run `git tensor fetch` to restore their objects from a remote, then `git tensor fsck` again.');
  else if (corrupt) text.push('hint: restore damaged objects from a remote with `git tensor fetch`, then run `git tensor fsck` again.');
  if (report.missingPacks.length) text.push('hint: restore the missing pack from a backup, or remove its .idx and run `git tensor fetch` to get its objects from a remote.');
  else if (missing && !corrupt) text.push('hint: fetch missing objects with `git tensor fetch`.');
  if (!corrupt && !missing && !report.badPointers.length && !indexErrors.length) text.push('ok');
  const exitCode = corrupt || report.badPointers.length ? ExitCode.corrupt : missing ? ExitCode.missingObjects : indexErrors.length ? ExitCode.badInput : ExitCode.ok;
  return { data: report, text, exitCode };
}

/** The shard indexes committed at HEAD, each checked against the shards' pointers at HEAD. */
async function shardIndexesAtHead(pointers: TrackedPointer[]): Promise<FsckReport['shardIndexes']> {
  const head = gitRaw(['rev-parse', '--verify', '--quiet', 'HEAD^{tree}'], { okCodes: [1, 128] });
  if (head.status !== 0) return [];
  const entries = listFiles('HEAD').filter((f) => isShardIndexPath(f.path));
  if (!entries.length) return [];
  const texts = await readSmallObjects(entries.map((f) => f.oid));
  const files: SideFiles = {
    versions: new Map(pointers.map((p): [string, Version] => [p.path, { type: 'pointer', pointer: p.pointer, blob: p.oid }])),
    indexes: new Map(entries.map((f) => [f.path, { text: texts.get(f.oid)?.toString('utf8') ?? '', blob: f.oid }])),
  };
  return findModels(null, files).map((m) => ({ index: m.index, problems: m.new ? sideProblems(m.new, m.index, () => null) : [] }));
}
