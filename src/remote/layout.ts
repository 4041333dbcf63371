// Owns how the objects of a push are laid out in tensor packs on the host (docs/remote.md, "Layout on
// the host"): which objects share a pack, and in which order packs are published.
//
// A pack is the unit of transfer, so a pack should hold objects that the same clones need. Each object
// is labelled with its *users*: the set of pushed commits whose tree needs it (through a pointer, a chunk
// list or a delta chain). Objects with the same users go in the same packs (cut at the pack size limit);
// objects with different users never share a pack. A clone of any one pushed commit then downloads only
// packs all of whose objects it needs: about that commit's objects, however many commits one push sent.
// Delta payloads are copied as they are (never re-encoded): a delta's base has every user the delta has,
// so it is published no later than the delta and a clone that needs the delta finds its base in packs it
// needs anyway.
//
// Publishing order: groups with more users first (a dependency's users include its dependents' users, so
// it comes first or in the same group), newest commit first among equals; inside a group, chunks by delta
// depth, chunk lists last (planPacks). Any prefix of the pack sequence is therefore closed under
// dependencies, given what the host already held: a push cut between packs never publishes an object
// whose base or chunks are missing.

import { ObjectStore } from '../store/store.js';
import { dependenciesOf, LocatedObject, planPacks } from '../store/transfer.js';

export interface UploadLayout {
  /** Packs to publish, in order: each an array of objects (payloads copied as they are). */
  packs: LocatedObject[][];
  /** Objects the local store lacks (the push cannot go ahead). */
  absent: string[];
  objects: number;
}

/** Bit `k` of a users set: the k-th pushed commit, newest first. */
export function userBit(k: number): bigint {
  return 1n << BigInt(k);
}

function popcount(x: bigint): number {
  let n = 0;
  for (; x; x &= x - 1n) n++;
  return n;
}

function lowestBit(x: bigint): number {
  if (!x) return Number.MAX_SAFE_INTEGER;
  let k = 0;
  for (; !(x & 1n); x >>= 1n) k++;
  return k;
}

/**
 * Lays out the closure of `roots` (object id -> users of the pointers that list it) in the local store,
 * pruned where `skip` accepts an id (the host has it, with everything it needs), in packs of at most
 * `limit` bytes.
 */
export function planUpload(store: ObjectStore, roots: ReadonlyMap<string, bigint>, skip: (id: string) => boolean, limit: number): UploadLayout {
  store.refresh();
  const index = new Map<string, number>();
  const objects: LocatedObject[] = [];
  const absent: string[] = [];
  const seen = new Set<string>();
  const stack = [...roots.keys()];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    if (skip(id)) continue;
    const loc = store.locate(id, false);
    if (!loc) {
      absent.push(id);
      continue;
    }
    index.set(id, objects.length);
    objects.push({ id, loc });
    for (const dep of dependenciesOf(loc, id)) if (!seen.has(dep)) stack.push(dep);
  }
  seen.clear();
  // Dependencies as indexes, read again rather than kept as ids from the walk: chunk lists of many
  // versions of a large model list millions of chunk ids, which as strings would not fit the memory bound.
  const parents = new Int32Array(objects.length);
  const deps: Int32Array[] = objects.map((o) => {
    const list = [...new Set(dependenciesOf(o.loc, o.id).flatMap((id) => (index.has(id) ? [index.get(id)!] : [])))];
    for (const j of list) parents[j]!++;
    return Int32Array.from(list);
  });

  // Users flow from each object to what it needs, parents before children (Kahn's order on the DAG).
  const users = objects.map((o) => roots.get(o.id) ?? 0n);
  const ready: number[] = [];
  for (let i = 0; i < objects.length; i++) if (parents[i] === 0) ready.push(i);
  while (ready.length) {
    const i = ready.pop()!;
    for (const j of deps[i]!) {
      users[j] = users[j]! | users[i]!;
      if (--parents[j]! === 0) ready.push(j);
    }
  }

  const groups = new Map<bigint, LocatedObject[]>();
  for (const [i, o] of objects.entries()) {
    const u = users[i]!;
    if (!groups.has(u)) groups.set(u, []);
    groups.get(u)!.push(o);
  }
  const order = [...groups.keys()].sort((a, b) => popcount(b) - popcount(a) || lowestBit(a) - lowestBit(b) || (a < b ? -1 : a > b ? 1 : 0));
  const packs = order.flatMap((u) => planPacks(groups.get(u)!.sort((a, b) => (a.id < b.id ? -1 : 1)), limit));
  return { packs, absent, objects: objects.length };
}
