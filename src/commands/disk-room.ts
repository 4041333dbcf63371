// Owns the free-space check a checkout makes before it hands git a file to write. git writes a smudged
// file in place, not through a temp file: when the disk fills half-way it leaves a truncated file (and
// `git status` shows it modified). Failing the smudge before the first byte makes git keep what was
// there instead. The check is not a reservation (another writer may take the space meanwhile), but it
// covers the common case of a disk that is already too full.

import { statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { WorkingTreeFullError } from '../errors/index.js';

/** Throws WorkingTreeFullError when `bytes` cannot fit at `path` (counting the file it replaces as freed). */
export function ensureRoomFor(path: string, bytes: number, label: string): void {
  let dir = dirname(path);
  for (;;) {
    try {
      if (statSync(dir).isDirectory()) break;
    } catch {
      // Not there yet: git creates it; its disk is the nearest existing ancestor's.
    }
    const up = dirname(dir);
    if (up === dir) return;
    dir = up;
  }
  const fs = statfsSync(dir);
  let free = fs.bavail * fs.bsize;
  try {
    const old = statSync(path);
    if (old.isFile() && old.nlink === 1) free += old.blocks * 512;
  } catch {
    // No file there yet.
  }
  if (bytes > free) throw new WorkingTreeFullError(label, bytes, free);
}
