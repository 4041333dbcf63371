// `npm run demo` runs to the end: the continual-learning story of scripts/demo.ts on the committed demo
// models exits 0 having checked its claims (the disjoint merge byte-equal to base + both updates computed
// from the files, the damaging day refused by the merge guard, accepted merges within the protected
// probes' allowance, a lazy clone's checkout bit-exact), and leaves the HTML reports it names. Needs
// neither ../shared nor Python. One test: the demo takes about a minute on 2 cores.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/repo.js';

const root = mkdtempSync(join(tmpdir(), 'gt-demo-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function runDemo(): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GIT_')));
    const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'scripts', 'demo.ts')],
      { cwd: PROJECT_ROOT, env: { ...env, BENCH_TMP: root } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (status) => resolve({ status, output }));
  });
}

it('npm run demo tells the story to the end and checks what it claims', { timeout: 600_000 }, async () => {
  const { status, output } = await runDemo();
  expect(status, output).toBe(0);
  expect(output).not.toMatch(/FAILED/);
  // The story's commands, as a user types them.
  for (const cmd of ['$ git tensor probe', '$ git diff base day2', '$ git tensor conflicts', '$ git merge day5', '$ git merge --abort',
    '$ git tensor log --probes', '$ git clone -q tensor::file://']) {
    expect(output, cmd).toContain(cmd);
  }
  expect(output).toMatch(/^ok: bit-exact merge: model\.safetensors == base \+ Δday1 \+ Δday3/m);
  expect(output).toMatch(/^ok: the merge guard refuses day 5/m);
  expect(output).toMatch(/merge guard: model\.safetensors: 1 protected probe\(s\) dropped by more than allowed/);
  expect(output).toMatch(/^ok: the clone checks out the base bit-exact/m);

  const reports = output.match(/^HTML reports: (.+)$/m)?.[1]?.trim().split(/\s+/) ?? [];
  expect(reports).toHaveLength(2);
  for (const r of reports) {
    expect(existsSync(r), r).toBe(true);
    expect(readFileSync(r, 'utf8'), r).toMatch(/<html/i);
  }
  // What the demo left behind, read with git: day 5 never reached main.
  const repo = join(output.match(/^demo folder: (.+)$/m)![1]!.trim(), 'repo');
  expect(spawnSync('git', ['-C', repo, 'merge-base', '--is-ancestor', 'day5', 'main']).status).toBe(1);
  expect(spawnSync('git', ['-C', repo, 'merge-base', '--is-ancestor', 'pellucia', 'main']).status).toBe(0);
});
