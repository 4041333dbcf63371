// Owns reading trees, attributes and blobs from git in bulk (one git process per question, not per file).

import { readObjects } from './cat-file.js';
import { git, gitRaw } from './exec.js';

export interface TreeFile {
  path: string;
  oid: string;
}

/** Files of `rev` (optionally under `paths`). */
export function listFiles(rev: string, paths: string[] = [], cwd?: string): TreeFile[] {
  const out = gitRaw(['ls-tree', '-r', '-z', '--full-tree', rev, '--', ...paths], { cwd }).stdout.toString('utf8');
  return out.split('\0').filter(Boolean).flatMap((line) => {
    const tab = line.indexOf('\t');
    const [, type, oid] = line.slice(0, tab).split(' ');
    return type === 'blob' ? [{ path: line.slice(tab + 1), oid: oid! }] : [];
  });
}

/** Paths whose `filter` attribute is `tensor`, by the current .gitattributes. */
export function trackedPaths(paths: string[], cwd?: string): Set<string> {
  if (paths.length === 0) return new Set();
  const out = gitRaw(['check-attr', '-z', '--stdin', 'filter'], { cwd, input: paths.join('\0') + '\0' }).stdout.toString('utf8');
  const fields = out.split('\0');
  const tracked = new Set<string>();
  for (let i = 0; i + 2 < fields.length; i += 3) if (fields[i + 2] === 'tensor') tracked.add(fields[i]!);
  return tracked;
}

/** Model files beside a checkpoint (config.json, tokenizer.json...) larger than this are refused. */
export const MAX_MODEL_FILE_BYTES = 256 << 20;

/**
 * Small files and trees read whole, by spec (`<oid>` or `<commit>:<path>`), keyed by the spec; missing
 * objects and objects over MAX_MODEL_FILE_BYTES are left out.
 */
export function readSmallObjects(specs: string[], cwd?: string): Promise<Map<string, Buffer>> {
  return readObjects(specs, { cwd, maxBytes: MAX_MODEL_FILE_BYTES });
}

export function revParse(rev: string, cwd?: string): string {
  return git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], { cwd });
}

export interface UnmergedEntry {
  path: string;
  /** Blob ids of the base (1), ours (2) and theirs (3) stages; absent when that side has no file. */
  stages: { 1?: string; 2?: string; 3?: string };
}

/** Paths git left unmerged in the index, with their stage blobs. */
export function unmergedEntries(cwd?: string): UnmergedEntry[] {
  const out = gitRaw(['ls-files', '-u', '-z'], { cwd }).stdout.toString('utf8');
  const byPath = new Map<string, UnmergedEntry>();
  for (const rec of out.split('\0').filter(Boolean)) {
    const tab = rec.indexOf('\t');
    const [, oid, stage] = rec.slice(0, tab).split(' ');
    const path = rec.slice(tab + 1);
    if (!byPath.has(path)) byPath.set(path, { path, stages: {} });
    byPath.get(path)!.stages[Number(stage) as 1 | 2 | 3] = oid!;
  }
  return [...byPath.values()];
}
