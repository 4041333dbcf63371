// Owns finding the store objects a set of commits or a tree needs: the pointer blobs among them (any blob
// that parses as a pointer, whatever the attributes say, as `git tensor fsck --all` does) and the ids those
// pointers list. Blobs stream through one cat-file (src/git/cat-file.ts) and only those that can be
// pointers are read, so a repository with large ordinary files does not have to fit in memory.

import { GitTensorError } from '../errors/index.js';
import { MAX_POINTER_BYTES, objectIdsOf, parsePointer } from '../format/pointer.js';
import { gitRaw } from '../git/exec.js';
import { batchCheck, pointerCandidates } from '../git/cat-file.js';

export interface BlobRef {
  oid: string;
  size: number;
}

/** The ids listed by every pointer among `blobs`; non-pointers and unparsable pointers are skipped. */
export async function idsInBlobs(blobs: readonly BlobRef[], cwd?: string): Promise<string[]> {
  const ids = new Set<string>();
  for (const list of (await idsByBlob(blobs, cwd)).values()) for (const id of list) ids.add(id);
  return [...ids];
}

/** For each pointer among `blobs` (by blob id), the ids it lists; non-pointers and unparsable pointers are left out. */
export async function idsByBlob(blobs: readonly BlobRef[], cwd?: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const small = blobs.filter((b) => b.size <= MAX_POINTER_BYTES).map((b) => b.oid);
  for await (const { oid, blob } of pointerCandidates(small, { cwd })) {
    try {
      out.set(oid, objectIdsOf(parsePointer(blob.toString('utf8'))));
    } catch (err) {
      if (!(err instanceof GitTensorError)) throw err;
    }
  }
  return out;
}

/** Sizes of the given objects, by `git cat-file --batch-check`; objects git lacks are left out. */
export function blobSizes(oids: readonly string[], cwd?: string): BlobRef[] {
  return batchCheck(oids, { cwd }).flatMap((h) => (h.type === 'blob' ? [{ oid: h.oid, size: h.size }] : []));
}

/** Those of `oids` the local object database has (e.g. remote ref tips we already fetched). */
export function existingObjects(oids: readonly string[], cwd?: string, env?: NodeJS.ProcessEnv): string[] {
  return batchCheck(oids, { cwd, env }).flatMap((h) => (h.size >= 0 ? [h.oid] : []));
}

/**
 * Small blobs reachable from `include` but not from `exclude` (commits the remote already has): the
 * candidates for pointers introduced by the commits being pushed.
 */
export function blobsInRange(include: readonly string[], exclude: readonly string[], cwd?: string): BlobRef[] {
  if (!include.length) return [];
  const have = existingObjects(exclude, cwd);
  const args = ['rev-list', '--objects', '--no-object-names', `--filter=combine:blob:limit=${MAX_POINTER_BYTES}+object:type=blob`, '--stdin'];
  const input = [...include, ...have.map((h) => `^${h}`)].join('\n') + '\n';
  const oids = gitRaw(args, { cwd, input }).stdout.toString('utf8').split('\n').filter((l) => /^[0-9a-f]{40,64}$/.test(l));
  return blobSizes(oids, cwd);
}

/** Commits reachable from `include` but not from `exclude`, newest first (the commits a push sends). */
export function commitsInRange(include: readonly string[], exclude: readonly string[], cwd?: string): string[] {
  if (!include.length) return [];
  const have = existingObjects(exclude, cwd);
  const input = [...include, ...have.map((h) => `^${h}`)].join('\n') + '\n';
  return gitRaw(['rev-list', '--stdin'], { cwd, input }).stdout.toString('utf8').split('\n').filter((l) => /^[0-9a-f]{40,64}$/.test(l));
}

/** Small blobs of a tree (every file of a commit), for prefetching what a checkout will need. */
export function blobsInTree(treeish: string, cwd?: string): BlobRef[] {
  const out = gitRaw(['ls-tree', '-r', '-l', '-z', '--full-tree', treeish], { cwd }).stdout.toString('utf8');
  return out.split('\0').filter(Boolean).flatMap((rec) => {
    const tab = rec.indexOf('\t');
    const [, type, oid, size] = rec.slice(0, tab).split(/ +/);
    return type === 'blob' && Number(size) <= MAX_POINTER_BYTES ? [{ oid: oid!, size: Number(size) }] : [];
  });
}

/** Small blobs reachable from any ref (every version of every checkpoint), for `git tensor fetch --all`. */
export function blobsInAllRefs(cwd?: string): BlobRef[] {
  const r = gitRaw(['rev-list', '--objects', '--all', '--no-object-names', `--filter=combine:blob:limit=${MAX_POINTER_BYTES}+object:type=blob`], { cwd, okCodes: [128] });
  if (r.status !== 0) return [];
  return blobSizes(r.stdout.toString('utf8').split('\n').filter((l) => /^[0-9a-f]{40,64}$/.test(l)), cwd);
}

/**
 * The ids listed by pointers that commits reachable from `include` but not from `exclude` introduce, each
 * with its users: bit k set when the k-th of those commits (newest first) has the pointer in its tree.
 * What layout.ts groups packs by.
 */
export async function idsWithUsers(include: readonly string[], exclude: readonly string[], cwd?: string): Promise<Map<string, bigint>> {
  const byBlob = await idsByBlob(blobsInRange(include, exclude, cwd), cwd);
  const users = new Map<string, bigint>();
  if (!byBlob.size) return users;
  for (const [k, commit] of commitsInRange(include, exclude, cwd).entries()) {
    const bit = 1n << BigInt(k);
    for (const b of blobsInTree(commit, cwd)) {
      for (const id of byBlob.get(b.oid) ?? []) users.set(id, (users.get(id) ?? 0n) | bit);
    }
  }
  return users;
}
