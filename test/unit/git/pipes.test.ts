// The filter process's pipes to git are widened to 1 MiB and read in large slices (src/git/pipes.ts):
// checked on real pipes from child processes, and on a plain file.

import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { cpuAddon } from '../../../src/kernels/addon.js';
import { readSlices, widenPipes } from '../../../src/git/pipes.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const linux = process.platform === 'linux';

describe.skipIf(!cpuAddon() || !linux)('widenPipes', () => {
  test('a pipe to the parent grows to 1 MiB', () => {
    // Node gives children socket pairs, not pipes; git gives its filter real pipes, as the shell's | does.
    const script = `import(${JSON.stringify(path.join(root, 'src/git/pipes.ts'))}).then((m) => process.stderr.write(String(m.widenPipes([1]))))`;
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

describe('readSlices', () => {
  test('yields every byte of a file, in order, in slices of at most the size asked for', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'git-tensor-io-'));
    try {
      const data = randomBytes(10_000 + 7);
      writeFileSync(path.join(dir, 'f'), data);
      const fd = openSync(path.join(dir, 'f'), 'r');
      const slices: Buffer[] = [];
      // A slice is valid until the next few reads (its buffer is reused): keep copies.
      for await (const s of readSlices(fd, 1000)) slices.push(Buffer.from(s));
      closeSync(fd);
      expect(Buffer.concat(slices).equals(data)).toBe(true);
      expect(Math.max(...slices.map((s) => s.length))).toBe(1000);
      expect(slices.length).toBe(11);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.skipIf(!linux)('reads a real pipe to its end, whatever sizes the writer\'s writes arrive in', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'git-tensor-io-'));
    try {
      const data = randomBytes(3 * 1024 * 1024 + 123);
      writeFileSync(path.join(dir, 'f'), data);
      const script = `import(${JSON.stringify(path.join(root, 'src/git/pipes.ts'))}).then(async (m) => {
        const h = (await import('node:crypto')).createHash('sha256');
        for await (const s of m.readSlices(0)) h.update(s);
        process.stdout.write(h.digest('hex'));
      })`;
      // dd writes 4 KiB at a time with pauses the reader sees as short reads.
      const r = spawnSync('sh', ['-c', `dd if="$F" bs=4096 status=none | "$NODE" --import tsx -e "$SCRIPT"`], {
        cwd: root, env: { ...process.env, NODE: process.execPath, SCRIPT: script, F: path.join(dir, 'f') }, encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(createHash('sha256').update(data).digest('hex'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
