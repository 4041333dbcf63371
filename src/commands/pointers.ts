// Owns finding the checkpoints git-tensor tracks at a revision or across history, as parsed pointers.

import { GitTensorError, UsageError } from '../errors/index.js';
import { pointerCandidates } from '../git/cat-file.js';
import { gitRaw } from '../git/exec.js';
import { readPointerBlobs } from '../git/cat-file.js';
import { listFiles, trackedPaths } from '../git/tree.js';
import { looksLikePointer, MAX_POINTER_BYTES, parsePointer, Pointer } from '../format/pointer.js';

export interface TrackedPointer {
  path: string;
  oid: string;
  pointer: Pointer;
}

/** Tracked files at `rev` whose blob is a pointer (files committed before tracking are skipped). */
export async function pointersAt(rev: string, paths: string[] = [], cwd?: string): Promise<TrackedPointer[]> {
  const check = gitRaw(['rev-parse', '--verify', '--quiet', `${rev}^{tree}`], { cwd, okCodes: [1] });
  if (check.status !== 0) {
    throw new UsageError(`unknown revision ${JSON.stringify(rev)}`, rev === 'HEAD' ? 'Commit something first (`git commit`).' : 'Check the name with `git log --oneline`.');
  }
  const files = listFiles(rev, paths, cwd);
  const tracked = trackedPaths(files.map((f) => f.path), cwd);
  const candidates = files.filter((f) => tracked.has(f.path) || paths.includes(f.path));
  const blobs = await readPointerBlobs(candidates.map((f) => f.oid), cwd);
  const out: TrackedPointer[] = [];
  for (const f of candidates) {
    const blob = blobs.get(f.oid);
    if (!blob || !looksLikePointer(blob)) continue;
    out.push({ ...f, pointer: parsePointer(blob.toString('utf8'), f.path) });
  }
  return out;
}

/**
 * Every distinct pointer blob reachable from any ref (all versions of all tracked checkpoints); with
 * `everything`, also from reflogs and the index, so nothing a user can still get back is missed.
 */
export async function pointersInHistory(cwd?: string, everything = false): Promise<TrackedPointer[]> {
  const extra = everything ? ['--reflog', '--indexed-objects'] : [];
  // Blobs too large to be pointers are left out by git itself, so an ordinary file of any size in
  // history is never read (the rest stream through one cat-file, see pointerCandidates).
  const filter = `--filter=combine:blob:limit=${MAX_POINTER_BYTES + 1}+object:type=blob`;
  const listing = gitRaw(['rev-list', '--objects', '--all', ...extra, '--no-object-names', filter], { cwd, okCodes: [128] });
  if (listing.status !== 0) return [];
  const oids = listing.stdout.toString('utf8').split('\n').filter((l) => /^[0-9a-f]{40,64}$/.test(l));
  const out: TrackedPointer[] = [];
  for await (const { oid, blob } of pointerCandidates(oids, { cwd })) {
    try {
      out.push({ path: '', oid, pointer: parsePointer(blob.toString('utf8')) });
    } catch (err) {
      if (!(err instanceof GitTensorError)) throw err;
    }
  }
  return out;
}
