// The CUDA kernels are built only on request (GIT_TENSOR_CUDA=1), so compile-check them here
// whenever nvcc is on the machine; CPU-only machines skip this.

import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect, test } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const nvcc = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).stdout.trim();

test.runIf(nvcc !== '')('native/cuda/kernels.cu compiles with nvcc', () => {
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'gt-cuda-')), 'kernels.o');
  // The same flags as native/CMakeLists.txt's CUDA target.
  const r = spawnSync(nvcc, ['-std=c++17', '--fmad=false', '--expt-relaxed-constexpr', '-arch=sm_80', '-Xcompiler', '-fPIC',
    '-c', path.join(root, 'native', 'cuda', 'kernels.cu'), '-o', out], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}, 300_000);
