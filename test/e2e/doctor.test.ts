// `git tensor doctor` tells a user whether the native addon loaded and whether it compresses, and exits
// 1 when it did not: a package without its addon is never silently slower and bigger. The degraded
// cases run a copy of the built package (bin, dist, package.json) that has no build/ folder, or a
// broken addon file in it, as an install whose native build failed would.

import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTensor, toSafetensors } from '../helpers/models.js';
import { makeRepo, PROJECT_ROOT, run } from '../helpers/repo.js';

const copies: string[] = [];
afterAll(() => copies.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** The built package without its addon; `addon` is written as its .node file when given. */
function packageCopy(addon?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'gt-noaddon-'));
  copies.push(dir);
  for (const item of ['bin', 'dist', 'package.json']) cpSync(join(PROJECT_ROOT, item), join(dir, item), { recursive: true });
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(dir, 'node_modules'));
  if (addon !== undefined) {
    mkdirSync(join(dir, 'build', 'cmake', 'Release'), { recursive: true });
    writeFileSync(join(dir, 'build', 'cmake', 'Release', 'git_tensor.node'), addon);
  }
  return dir;
}

describe('git tensor doctor', () => {
  it('reports the loaded addon, its zstd version and the kernels, and exits 0', () => {
    const repo = makeRepo();
    const r = repo.gitTensor(['doctor'], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^addon: loaded \(build\/(cmake\/)?Release\/git_tensor\.node\)$/m);
    expect(r.stdout).toMatch(/^compression: zstd \d+\.\d+\.\d+$/m);
    expect(r.stdout).toMatch(/^kernels: active \w+; supported: .*\bscalar\b.*, js; cuda (yes|no)$/m);
    const json = JSON.parse(repo.gitTensor(['doctor', '--json']).stdout);
    expect(json).toMatchObject({ degraded: false, addon: { loaded: true, problem: null }, kernels: { addonLoaded: true } });
    expect(json.compression.zstd).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('without the addon: says compression is off and exits 1, in text and JSON', () => {
    const repo = makeRepo();
    const bin = join(packageCopy(), 'bin', 'git-tensor');
    const env = { GIT_TENSOR_REQUIRE_ADDON: undefined };
    const r = run(process.execPath, [bin, 'doctor'], repo.dir, repo.env, { allowFail: true, env });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^addon: NOT LOADED: the native addon did not load \(not built: run `npm run build:native`\)$/m);
    expect(r.stdout).toMatch(/^compression: NONE: new chunks are stored uncompressed and no deltas are made$/m);
    expect(r.stdout).toMatch(/^kernels: active js; supported: js; cuda no$/m);
    expect(r.stdout).toContain('hint: build the addon: `npm run build:native`');
    const json = JSON.parse(run(process.execPath, [bin, 'doctor', '--json'], repo.dir, repo.env, { allowFail: true, env }).stdout);
    expect(json).toMatchObject({ degraded: true, addon: { loaded: false, path: null }, compression: { zstd: null } });
  });

  it('without the addon, git add still works but says, once, that it stores chunks uncompressed', () => {
    const repo = makeRepo();
    const copy = packageCopy();
    const env = { GIT_TENSOR_REQUIRE_ADDON: undefined, PATH: [join(copy, 'bin'), repo.env.PATH].join(delimiter) };
    repo.write('m.safetensors', toSafetensors([makeTensor('w', 'F32', [1 << 18])]));
    const add = repo.git(['add', 'm.safetensors'], { env });
    const warnings = add.stderr.split('\n').filter((l) => l.startsWith('git-tensor: warning:'));
    expect(warnings).toEqual([
      'git-tensor: warning: the native addon did not load (not built: run `npm run build:native`): ' +
        'new chunks are stored uncompressed and no deltas are made (see `git tensor doctor`)',
    ]);
  });

  it('names a broken addon file and why it did not load', () => {
    const repo = makeRepo();
    const bin = join(packageCopy('not a shared object'), 'bin', 'git-tensor');
    const r = run(process.execPath, [bin, 'doctor', '--json'], repo.dir, repo.env, { allowFail: true, env: { GIT_TENSOR_REQUIRE_ADDON: undefined } });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout).addon.problem).toMatch(/^the native addon did not load \(build\/cmake\/Release\/git_tensor\.node: .+\)$/);
  });

  it('GIT_TENSOR_REQUIRE_ADDON=1 turns a missing addon into an error at git add; doctor still reports it', () => {
    const repo = makeRepo();
    const copy = packageCopy();
    const env = { GIT_TENSOR_REQUIRE_ADDON: '1', PATH: [join(copy, 'bin'), repo.env.PATH].join(delimiter) };
    repo.write('m.safetensors', toSafetensors([makeTensor('w', 'F32', [64])]));
    const add = repo.git(['add', 'm.safetensors'], { allowFail: true, env });
    expect(add.status).not.toBe(0);
    expect(add.stderr).toContain('E_ADDON_REQUIRED');
    expect(add.stderr).toContain('GIT_TENSOR_REQUIRE_ADDON=1, but the native addon did not load');
    expect(add.stderr).toContain('hint: run `npm run build:native`');
    expect(repo.git(['ls-files', '--', 'm.safetensors']).stdout).toBe('');
    const doctor = run(process.execPath, [join(copy, 'bin', 'git-tensor'), 'doctor'], repo.dir, repo.env, { allowFail: true, env });
    expect(doctor.status).toBe(1);
    expect(doctor.stdout).toContain('addon: NOT LOADED');
  });
});
