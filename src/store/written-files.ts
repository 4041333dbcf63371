// Owns the record of working-tree files that `git tensor checkout` wrote from a pointer: for each, the
// file's full stat identity and the pointer. Clean consults it so that git's refresh of a file git-tensor
// just wrote costs a stat, not a second hashing of gigabytes (docs/store.md, "Checkout of large files").
//
// A record is trusted only when every stat field of the file now equals the recorded one: device, inode,
// size, and mtime and ctime in nanoseconds. Any write, truncation, rename onto the path or chmod changes
// the ctime (which no user call can set back), so a stale record can never answer for other content.

import { createHash } from 'node:crypto';
import { readFileSync, statSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';

/** What identifies one version of a file without reading it. */
export function identityOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** fileIdentity of the file at `file`; null when it cannot be stat'ed or is not a regular file. */
export function fileIdentity(file: string): string | null {
  try {
    const st = statSync(file, { bigint: true });
    return st.isFile() ? identityOf(st) : null;
  } catch {
    return null;
  }
}

/** Records of one working tree, kept in `<store>/written/`, one small file per path. */
export class WrittenFiles {
  private readonly dir: string;

  constructor(storeDir: string, private readonly topLevel: string) {
    this.dir = join(storeDir, 'written');
  }

  private recordPath(path: string): string {
    // Worktrees share the store: the working tree's own path is part of the key.
    return join(this.dir, createHash('sha256').update(`${this.topLevel}\0${path}`).digest('hex'));
  }

  /** Notes that the file at `path` (relative to the working tree), with stat `st`, is `pointer` smudged. */
  record(path: string, pointer: string, st: BigIntStats): void {
    writeFileAtomic(this.recordPath(path), `${JSON.stringify({ path, identity: identityOf(st) })}\n${pointer}`);
  }

  /** The pointer the file at `path` was written from, if the file is still exactly that version. */
  lookup(path: string): string | undefined {
    let text: string;
    try {
      text = readFileSync(this.recordPath(path), 'utf8');
    } catch {
      return undefined;
    }
    const nl = text.indexOf('\n');
    if (nl < 0) return undefined;
    let meta: { path?: unknown; identity?: unknown };
    try {
      meta = JSON.parse(text.slice(0, nl));
    } catch {
      return undefined; // a damaged record only costs a hashing
    }
    if (meta.path !== path || typeof meta.identity !== 'string') return undefined;
    if (fileIdentity(join(this.topLevel, path)) !== meta.identity) return undefined;
    return text.slice(nl + 1);
  }
}
