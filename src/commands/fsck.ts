// Owns `git tensor fsck`: check every pack's layout against its index, re-hash every stored object, and
// check that pointers have what they need.

import { existsSync, readdirSync } from 'node:fs';
import { Printable } from './printable.js';
import { ExitCode, GitTensorError } from '../errors/index.js';
import { Encoding } from '../store/pack.js';
import { sha256 } from '../store/store.js';
import { validatePointer } from '../store/checkpoint.js';
import { openRepo } from './context.js';
import { objectIdsOf } from '../format/pointer.js';
import { pointersAt, pointersInHistory } from './pointers.js';

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
}

export async function fsck(opts: FsckOptions): Promise<Printable> {
  const { store } = openRepo();
  const report: FsckReport = { objects: 0, corruptPacks: [], missingPacks: [], corrupt: [], missing: [], badPointers: [], leftoverTempFiles: [] };
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

  const text = [`checked ${report.objects} objects in ${store.packFiles.length} pack(s), ${pointers.length} pointer(s)`];
  for (const p of report.missingPacks) text.push(`missing pack ${p.pack}: its index lists ${p.objects} object(s), the pack file is gone`);
  for (const p of report.corruptPacks) text.push(`corrupt pack ${p.pack}: ${p.problem}`);
  for (const c of report.corrupt) text.push(`corrupt object ${c.id} in ${c.pack}: ${c.problem}`);
  for (const m of report.missing) text.push(`missing object ${m.id} needed by ${m.path}`);
  for (const b of report.badPointers) text.push(`bad pointer ${b.path}: ${b.problem}`);
  if (report.leftoverTempFiles.length) {
    text.push(`${report.leftoverTempFiles.length} temp file(s) left by interrupted writes (harmless; \`git tensor gc\` removes them)`);
  }
  if (report.badPointers.length) text.push(`hint: take each bad pointer's file from a commit where it is intact (\`git checkout <commit> -- <path>\`).`);
  const corrupt = report.corrupt.length + report.corruptPacks.length;
  const missing = report.missing.length + report.missingPacks.length;
  if (report.corruptPacks.length) text.push('hint: move each corrupt pack and its .idx out of .git/tensor/packs, run `git tensor fetch` to restore their objects from a remote, then `git tensor fsck` again.');
  else if (corrupt) text.push('hint: restore damaged objects from a remote with `git tensor fetch`, then run `git tensor fsck` again.');
  if (report.missingPacks.length) text.push('hint: restore the missing pack from a backup, or remove its .idx and run `git tensor fetch` to get its objects from a remote.');
  else if (missing && !corrupt) text.push('hint: fetch missing objects with `git tensor fetch`.');
  if (!corrupt && !missing && !report.badPointers.length) text.push('ok');
  const exitCode = corrupt || report.badPointers.length ? ExitCode.corrupt : missing ? ExitCode.missingObjects : ExitCode.ok;
  return { data: report, text, exitCode };
}
