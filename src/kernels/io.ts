// Owns process I/O tuning that needs the addon: today, the capacity of the pipes to and from git.

import { readFileSync } from 'node:fs';
import { cpuAddon } from './addon.js';

/** What Linux lets an unprivileged process ask for by default (/proc/sys/fs/pipe-max-size). */
const DEFAULT_PIPE_MAX = 1024 * 1024;

function pipeMaxSize(): number {
  try {
    return Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim()) || DEFAULT_PIPE_MAX;
  } catch {
    return DEFAULT_PIPE_MAX;
  }
}

/**
 * Widens the pipes on `fds` to `bytes` (at most pipe-max-size). git moves a file through its filter in
 * 64 KiB packets; with a 64 KiB pipe each packet costs a context switch on both sides. Returns the sizes
 * now in effect, 0 for an fd that is not a pipe or where the addon or the OS cannot do it.
 */
export function widenPipes(fds: number[], bytes = 1024 * 1024): number[] {
  const set = cpuAddon()?.setPipeSize as ((fd: number, bytes: number) => number) | undefined;
  if (!set) return fds.map(() => 0);
  const size = Math.min(bytes, pipeMaxSize());
  return fds.map((fd) => set(fd, size));
}
