// Owns the one edit git-tensor makes to git's index file (gitformat-index(5)): recording the stat of
// working-tree files it wrote from their pointers, for entries that already name exactly that pointer.
// git itself cannot take the new stat without reading each file through the filter again (its size
// differs from the pointer's, and git calls a size change modified without looking), which costs as
// much as reading the whole file. Only the stat fields of matching entries change, in place, under
// git's own lock (`index.lock`, O_EXCL), and the trailing checksum is recomputed. Any format this does
// not know in full (a split index, an unknown version, a bad checksum) is left to `git update-index`.

import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, type BigIntStats } from 'node:fs';

export interface StatUpdate {
  /** Path relative to the working tree's top, as in the index. */
  path: string;
  /** The blob the entry must already name (hex). */
  oid: string;
  /** lstat of the file now at the path. */
  stat: BigIntStats;
}

const ENTRY_FIXED = 40; // ctime, mtime (sec + nsec each), dev, ino, mode, uid, gid, size: 10 x u32
const FLAG_EXTENDED = 0x4000;
const FLAG_ASSUME_VALID = 0x8000;
const EXT_SKIP_WORKTREE = 0x4000;
const EXT_INTENT_TO_ADD = 0x2000;

function decodeVarint(buf: Buffer, at: number): [value: number, next: number] {
  let c = buf[at++]!;
  let value = c & 127;
  while (c & 128) {
    c = buf[at++]!;
    value = (value + 1) * 128 + (c & 127);
  }
  return [value, at];
}

const u32 = (n: bigint): number => Number(n & 0xffffffffn);

/**
 * Writes the stat of each update into its index entry, when that entry is stage 0, a regular file, not
 * skip-worktree, assume-valid or intent-to-add, and names `oid`. Returns the paths updated, or null
 * when the index could not be edited (its lock is held, or its format is not one this knows).
 */
export function updateIndexStat(indexFile: string, updates: readonly StatUpdate[], objectFormat: string): string[] | null {
  const hashName = objectFormat === 'sha256' ? 'sha256' : 'sha1';
  const hashLen = hashName === 'sha256' ? 32 : 20;
  const wanted = new Map(updates.map((u) => [u.path, u]));
  const lock = `${indexFile}.lock`;
  let fd: number;
  try {
    fd = openSync(lock, 'wx', 0o666);
  } catch {
    return null; // another git command holds the index
  }
  let committed = false;
  try {
    const buf = readFileSync(indexFile);
    if (buf.length < 12 + hashLen || buf.toString('latin1', 0, 4) !== 'DIRC') return null;
    const version = buf.readUInt32BE(4);
    if (version < 2 || version > 4) return null;
    const body = buf.subarray(0, buf.length - hashLen);
    const trailer = buf.subarray(buf.length - hashLen);
    const skipHash = trailer.every((b) => b === 0);
    if (!skipHash && !createHash(hashName).update(body).digest().equals(trailer)) return null;
    const count = buf.readUInt32BE(8);
    let at = 12;
    let previous = '';
    const done: string[] = [];
    for (let k = 0; k < count; k++) {
      const start = at;
      const flagsAt = start + ENTRY_FIXED + hashLen;
      const flags = buf.readUInt16BE(flagsAt);
      const extended = version >= 3 && (flags & FLAG_EXTENDED) !== 0 ? buf.readUInt16BE(flagsAt + 2) : 0;
      const nameAt = flagsAt + 2 + (version >= 3 && (flags & FLAG_EXTENDED) ? 2 : 0);
      let name: string;
      if (version === 4) {
        const [strip, suffixAt] = decodeVarint(buf, nameAt);
        const end = buf.indexOf(0, suffixAt);
        if (end < 0 || strip > Buffer.byteLength(previous)) return null;
        const prev = Buffer.from(previous, 'utf8');
        name = Buffer.concat([prev.subarray(0, prev.length - strip), buf.subarray(suffixAt, end)]).toString('utf8');
        at = end + 1;
      } else {
        const end = buf.indexOf(0, nameAt);
        if (end < 0) return null;
        name = buf.toString('utf8', nameAt, end);
        at = start + ((nameAt - start + (end - nameAt) + 8) & ~7);
      }
      previous = name;
      if (at > body.length) return null;
      const u = wanted.get(name);
      if (!u) continue;
      const stage = (flags >> 12) & 3;
      const mode = buf.readUInt32BE(start + 24);
      const oid = buf.toString('hex', start + ENTRY_FIXED, start + ENTRY_FIXED + hashLen);
      if (stage !== 0 || (mode !== 0o100644 && mode !== 0o100755) || oid !== u.oid) continue;
      if (flags & FLAG_ASSUME_VALID || extended & (EXT_SKIP_WORKTREE | EXT_INTENT_TO_ADD)) continue;
      const st = u.stat;
      const fields = [st.ctimeNs / 1_000_000_000n, st.ctimeNs % 1_000_000_000n, st.mtimeNs / 1_000_000_000n, st.mtimeNs % 1_000_000_000n, st.dev, st.ino];
      fields.forEach((v, i) => buf.writeUInt32BE(u32(v), start + 4 * i));
      buf.writeUInt32BE(u32(st.uid), start + 28);
      buf.writeUInt32BE(u32(st.gid), start + 32);
      buf.writeUInt32BE(u32(st.size), start + 36);
      done.push(name);
    }
    // Extensions: a split index keeps entries in another file, which this does not edit.
    for (let e = at; e + 8 <= body.length; ) {
      if (buf.toString('latin1', e, e + 4) === 'link') return null;
      e += 8 + buf.readUInt32BE(e + 4);
    }
    if (!done.length) return [];
    if (!skipHash) createHash(hashName).update(body).digest().copy(buf, body.length);
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    closeSync(fd);
    fd = -1;
    renameSync(lock, indexFile);
    committed = true;
    return done;
  } finally {
    if (fd >= 0) closeSync(fd);
    if (!committed) {
      try {
        unlinkSync(lock);
      } catch {
        // already gone
      }
    }
  }
}
