// Owns `git tensor fsck`: re-hash every stored object and check that pointers have what they need.

import { readdirSync } from 'node:fs';
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
  corrupt: { id: string; pack: string; problem: string }[];
  missing: { id: string; path: string }[];
  /** Pointers that cannot be restored whatever objects are fetched (hand-edited, inconsistent). */
  badPointers: { path: string; code: string; problem: string }[];
  leftoverTempFiles: string[];
}

export async function fsck(opts: FsckOptions): Promise<Printable> {
  const { store } = openRepo();
  const report: FsckReport = { objects: 0, corrupt: [], missing: [], badPointers: [], leftoverTempFiles: [] };
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
        const problem = err.code === 'E_MISSING_OBJECTS' ? 'a chunk it lists is missing' : err.message;
        report.corrupt.push({ id: entry.id, pack: pack.packPath, problem });
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
  for (const c of report.corrupt) text.push(`corrupt object ${c.id} in ${c.pack}: ${c.problem}`);
  for (const m of report.missing) text.push(`missing object ${m.id} needed by ${m.path}`);
  for (const b of report.badPointers) text.push(`bad pointer ${b.path}: ${b.problem}`);
  if (report.leftoverTempFiles.length) {
    text.push(`${report.leftoverTempFiles.length} temp file(s) left by interrupted writes (harmless; \`git tensor gc\` removes them)`);
  }
  if (report.badPointers.length) text.push(`hint: take each bad pointer's file from a commit where it is intact (\`git checkout <commit> -- <path>\`).`);
  if (report.corrupt.length) text.push('hint: restore damaged objects from a remote with `git tensor fetch`, then run `git tensor fsck` again.');
  else if (report.missing.length) text.push('hint: fetch missing objects with `git tensor fetch`.');
  else if (!report.badPointers.length) text.push('ok');
  const exitCode = report.corrupt.length || report.badPointers.length ? ExitCode.corrupt : report.missing.length ? ExitCode.missingObjects : ExitCode.ok;
  return { data: report, text, exitCode };
}
