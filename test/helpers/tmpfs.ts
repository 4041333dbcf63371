// Owns the small real filesystems the disk-full tests fill: a tmpfs mounted over a folder, where this
// system lets the tests mount one (root on Linux), and whether it does.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Mounts a tmpfs of `bytes` over `dir`; false when this system does not let the test do it. */
export function mountTmpfs(dir: string, bytes: number): boolean {
  if (process.getuid?.() !== 0 || process.platform !== 'linux') return false;
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]).status === 0;
}

/** Whether mountTmpfs works here, tried once on a throw-away folder. */
export const canMount: boolean = (() => {
  const dir = mkdtempSync(join(tmpdir(), 'mount-probe-'));
  const ok = mountTmpfs(dir, 1 << 20);
  if (ok) spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
  return ok;
})();
