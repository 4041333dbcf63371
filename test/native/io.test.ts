// The filter process's pipes to git are widened to 1 MiB (src/kernels/io.ts): checked on a real pipe
// from a child process, and harmless where the fd is not a pipe.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { cpuAddon } from '../../src/kernels/addon.js';
import { widenPipes } from '../../src/kernels/io.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const linux = process.platform === 'linux';

describe.skipIf(!cpuAddon() || !linux)('widenPipes', () => {
  test('a pipe to the parent grows to 1 MiB', () => {
    // Node gives children socket pairs, not pipes; git gives its filter real pipes, as the shell's | does.
    const script = `import(${JSON.stringify(path.join(root, 'src/kernels/io.ts'))}).then((m) => process.stderr.write(String(m.widenPipes([1]))))`;
    const r = spawnSync('sh', ['-c', `"$NODE" --import tsx -e "$SCRIPT" | cat`], {
      cwd: root, env: { ...process.env, NODE: process.execPath, SCRIPT: script }, encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(Number(r.stderr.trim())).toBe(1024 * 1024);
  });

  test('an fd that is not a pipe is left alone and reported as 0', () => {
    expect(widenPipes([987654])).toEqual([0]);
  });
});
