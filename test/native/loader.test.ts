// How the kernel implementation is chosen: GIT_TENSOR_KERNELS, a missing or broken addon, and the
// one-line warning when git-tensor falls back.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, test } from 'vitest';

import { ADDON_PATHS, AddonRequiredError, addonStatus, loadBackend } from '../../src/kernels/addon.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const native = loadBackend({});
const haveAddon = native.addon !== null;

describe('loadBackend', () => {
  test('GIT_TENSOR_KERNELS=js runs the TypeScript kernels without loading the addon or warning', () => {
    const b = loadBackend({ GIT_TENSOR_KERNELS: 'js' });
    expect(b).toMatchObject({ addon: null, active: 'js', supported: ['js'], warning: null });
  });

  test('a missing addon falls back to the TypeScript kernels with a one-line warning', () => {
    const b = loadBackend({}, [path.join(os.tmpdir(), 'no-such-dir', 'git_tensor.node')]);
    expect(b.active).toBe('js');
    expect(b.warning).toMatch(/^git-tensor: native kernels unavailable \(.*\); using the slower JavaScript kernels$/);
    expect(b.warning).not.toContain('\n');
  });

  test('a broken addon file is reported, not thrown', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gt-addon-'));
    const file = path.join(dir, 'git_tensor.node');
    writeFileSync(file, 'not a shared object');
    const b = loadBackend({}, [file]);
    expect(b.active).toBe('js');
    expect(b.warning).toContain('git_tensor.node');
    expect(b.warning).not.toContain('\n');
  });

  test('GIT_TENSOR_REQUIRE_ADDON=1 turns a missing or broken addon into an error, unless the JS kernels are asked for', () => {
    const missing = [path.join(os.tmpdir(), 'no-such-dir', 'git_tensor.node')];
    expect(() => loadBackend({ GIT_TENSOR_REQUIRE_ADDON: '1' }, missing)).toThrow(AddonRequiredError);
    expect(() => loadBackend({ GIT_TENSOR_REQUIRE_ADDON: '1' }, missing)).toThrow(/^GIT_TENSOR_REQUIRE_ADDON=1, but the native addon did not load \(/);
    expect(loadBackend({ GIT_TENSOR_REQUIRE_ADDON: '1', GIT_TENSOR_KERNELS: 'js' }, missing).active).toBe('js');
    expect(loadBackend({ GIT_TENSOR_REQUIRE_ADDON: '0' }, missing).active).toBe('js');
  });

  test('addonStatus names what is missing without throwing', () => {
    const missing = addonStatus([path.join(os.tmpdir(), 'no-such-dir', 'git_tensor.node')]);
    expect(missing).toEqual({ path: null, zstd: null, problem: 'the native addon did not load (not built: run `npm run build:native`)' });
  });

  // The addon is part of the product (it is built by `npm ci` with zstd compiled in); a suite that ran
  // without it would skip the tests below and test a slower, uncompressing git-tensor.
  test('the addon is built and loads, with zstd compression', () => {
    const status = addonStatus();
    expect(status.problem).toBeNull();
    expect(status.zstd).toMatch(/^1\.\d+\.\d+$/);
    expect(haveAddon).toBe(true);
  });

  test.runIf(haveAddon)('the addon picks the best implementation, and scalar is always there', () => {
    expect(native.warning).toBeNull();
    expect(native.supported).toContain('scalar');
    expect(native.supported.at(-1)).toBe('js');
    expect(native.active).toBe(native.supported[0]);
  });

  test.runIf(haveAddon)('GIT_TENSOR_KERNELS forces a supported implementation, in any case', () => {
    for (const name of native.supported) {
      const b = loadBackend({ GIT_TENSOR_KERNELS: name.toUpperCase() }, ADDON_PATHS);
      expect(b.active).toBe(name);
      expect(b.warning).toBeNull();
    }
  });

  test.runIf(haveAddon)('an unsupported GIT_TENSOR_KERNELS warns and uses the best implementation', () => {
    const b = loadBackend({ GIT_TENSOR_KERNELS: 'avx1024' });
    expect(b.active).toBe(native.active);
    expect(b.warning).toMatch(/^git-tensor: GIT_TENSOR_KERNELS=avx1024 is not available here \(supported: .*\); using \w+$/);
  });
});

test('the fallback warning is printed once per process, on stderr', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gt-loader-'));
  const script = path.join(dir, 'run.mts');
  const index = path.join(root, 'src', 'kernels', 'index.ts');
  writeFileSync(script, [
    `import { changeMask, kernelInfo } from ${JSON.stringify(index)};`,
    `await changeMask(new Uint8Array(3), new Uint8Array(3), 'U8');`,
    `await changeMask(new Uint8Array(3), new Uint8Array(3), 'U8');`,
    `process.stdout.write(JSON.stringify(kernelInfo()));`,
  ].join('\n'));
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], {
    cwd: root, encoding: 'utf8', env: { ...process.env, GIT_TENSOR_KERNELS: 'not-an-isa' },
  });
  expect(r.status, r.stderr).toBe(0);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^git-tensor: /);
  expect(JSON.parse(r.stdout)).toMatchObject({ addonLoaded: haveAddon });
});
