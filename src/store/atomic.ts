// Owns crash-safe file replacement: write a temp file, fsync it, rename it over the target, fsync the
// directory. A reader sees the old file or the new one, never a torn one (DESIGN.md principle 6). Also
// owns temp file names, which say who wrote them, so the files of writers that died can be removed.

import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

/** This machine, as temp file names carry it (a store on a shared filesystem sees other hosts' pids). */
const HOST = hostname().replace(/[^A-Za-z0-9-]/g, '_') || 'unknown';

/**
 * A fresh temp path for `target` in `dir`: `.<name>.<pid>@<host>.<random>.tmp`, so that a later command
 * can tell the file of a writer that died (kill -9, power loss) from that of one still running.
 */
export function tempPathFor(target: string, dir = dirname(target)): string {
  return join(dir, `.${basename(target)}.${process.pid}@${HOST}.${randomBytes(4).toString('hex')}.tmp`);
}

const TEMP_NAME = /^\..+\.(\d+)@([A-Za-z0-9_-]+)\.[0-9a-f]{8}\.tmp$/;

/**
 * Removes the temp files in `dir` whose writer is gone: written on this host by a process that no
 * longer exists. Files of running processes, of other hosts, and names of any other form are kept (gc
 * removes those once they are old). Returns the names removed.
 */
export function removeDeadWritersFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || m[2] !== HOST || isRunning(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch {
      // Removed by another command doing the same, or not a plain file: leave it to gc.
    }
  }
  return removed;
}

/** Whether process `pid` on this host can still write: alive and not a zombie waiting to be reaped. */
export function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed writer whose parent died too stays a zombie until init reaps it (in a container, perhaps
  // never): it still has its pid, but writes nothing more.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function writeFileAtomic(target: string, data: Uint8Array | string): void {
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, target);
  fsyncDir(dirname(target));
}
