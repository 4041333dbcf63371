#!/usr/bin/env node
// Builds the native kernels addon: `npm run build:native`, and the `install` script of `npm ci` and of
// an installed package.
//
//   1. cmake-js, from native/CMakeLists.txt, into build/cmake/Release/git_tensor.node;
//   2. if that fails (no cmake, say), node-gyp from binding.gyp into build/Release/git_tensor.node;
//   3. if both fail, a warning naming what is lost and exit 0 (exit 1 under GIT_TENSOR_REQUIRE_ADDON=1):
//      git-tensor then runs its TypeScript kernels and stores chunks uncompressed, and says so
//      (`git tensor doctor` exits 1).
// With GIT_TENSOR_CUDA=1 and nvcc on the machine, also the CUDA addon into build/cmake-cuda/Release.
//
// zstd is always compiled into the addon, so a machine needs a C/C++ toolchain and nothing else. In a
// checkout its sources are the ones the zstd-napi package ships (deps/zstd/lib; a devDependency whose
// own install script is denied in package.json "allowScripts"); `npm pack` copies them into
// vendor/zstd of the tarball (--vendor-zstd at prepack, --unvendor-zstd at postpack), so an installed
// package builds from there, offline, without zstd-napi and its prebuild-install dependencies.
// `--zstd-dir` and `--zstd-sources` print the folder and its source files for binding.gyp: the same
// files native/CMakeLists.txt globs.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const started = Date.now();
const seconds = () => ((Date.now() - started) / 1000).toFixed(1);
const log = (msg) => process.stderr.write(`build-native: ${msg}\n`);

const vendored = path.join(root, 'vendor', 'zstd');

/** zstd-napi's copy of zstd (lib/, LICENSE, COPYING); throws when the package is not installed. */
function zstdNapiCopy() {
  let pkg;
  try {
    pkg = require.resolve('zstd-napi/package.json');
  } catch {
    throw new Error('no zstd sources: neither vendor/zstd (a packed git-tensor) nor the zstd-napi package (run `npm ci`)');
  }
  return path.join(path.dirname(pkg), 'deps', 'zstd');
}

/** zstd's lib/ folder: vendor/zstd/lib in an installed tarball, zstd-napi's copy in a checkout. */
function zstdDir() {
  const dir = path.join(existsSync(vendored) ? vendored : zstdNapiCopy(), 'lib');
  if (!existsSync(path.join(dir, 'zstd.h'))) throw new Error(`${dir} has no zstd.h`);
  return dir;
}

/** The zstd library sources, as native/CMakeLists.txt globs them: common, compress, decompress. */
function zstdSources(dir = zstdDir()) {
  const files = ['common', 'compress', 'decompress'].flatMap((sub) =>
    readdirSync(path.join(dir, sub)).filter((f) => f.endsWith('.c')).map((f) => path.join(dir, sub, f)));
  if (process.arch === 'x64' && process.platform !== 'win32') files.push(path.join(dir, 'decompress', 'huf_decompress_amd64.S'));
  return files.sort();
}

async function cmakeJs({ out, target, cmakeOptions = {} }) {
  const { BuildSystem } = require('cmake-js');
  const system = new BuildSystem({
    directory: path.join(root, 'native'),
    out: path.join(root, out),
    config: 'Release',
    target,
    parallel: os.availableParallelism?.() ?? os.cpus().length,
    cMakeOptions: { GT_ZSTD_DIR: zstdDir(), ...cmakeOptions },
  });
  // The documented switch is package.json "binary.napi_versions"; this is the option it sets.
  system.options.isNodeApi = true;
  await system.build();
}

function nodeHeadersDir() {
  const candidates = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), '..')];
  return candidates.find((dir) => dir && existsSync(path.join(dir, 'include', 'node', 'node_api.h')));
}

function nodeGypScript() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.resolve(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ];
  return candidates.find((file) => file && existsSync(file));
}

function nodeGyp() {
  const nodedir = nodeHeadersDir();
  const script = nodeGypScript();
  if (!nodedir || !script) throw new Error(!script ? 'node-gyp not found' : 'no local Node headers for node-gyp');
  for (const command of ['configure', 'build']) {
    const r = spawnSync(process.execPath, [script, command, `--nodedir=${nodedir}`, `--jobs=${os.cpus().length}`], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, npm_config_nodedir: nodedir },
    });
    if (r.status !== 0) throw new Error(`node-gyp ${command} failed`);
  }
}

function findNvcc() {
  const candidates = [process.env.CUDACXX, '/usr/local/cuda/bin/nvcc'];
  const which = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  if (which.status === 0) candidates.unshift(which.stdout.trim());
  return candidates.find((file) => file && existsSync(file));
}

async function main() {
  let built = false;
  const required = process.env.GIT_TENSOR_REQUIRE_ADDON === '1';
  try {
    await cmakeJs({ out: 'build/cmake' });
    built = true;
    log(`cmake-js built build/cmake/Release/git_tensor.node in ${seconds()} s`);
  } catch (err) {
    log(`cmake-js failed (${err?.message ?? err}); trying node-gyp`);
    try {
      nodeGyp();
      built = true;
      log(`node-gyp built build/Release/git_tensor.node in ${seconds()} s`);
    } catch (err2) {
      console.warn(
        [
          `git-tensor: WARNING: the native addon was not built (${err2?.message ?? err2}).`,
          'git-tensor: without it new chunks are stored uncompressed, no deltas are made and the slower',
          'git-tensor: JavaScript kernels run. Install a C++ toolchain (g++ or clang, cmake or make) and run',
          '`npm run build:native`; `git tensor doctor` shows the state.',
        ].join('\n'),
      );
      if (required) {
        console.error('git-tensor: GIT_TENSOR_REQUIRE_ADDON=1: failing the build');
        process.exitCode = 1;
      }
    }
  }
  if (built && process.env.GIT_TENSOR_CUDA === '1') {
    const nvcc = findNvcc();
    if (!nvcc) {
      log('GIT_TENSOR_CUDA=1 but nvcc was not found: skipping the CUDA addon');
    } else {
      try {
        await cmakeJs({
          out: 'build/cmake-cuda',
          target: 'git_tensor_cuda',
          cmakeOptions: { GT_CUDA: 'ON', CMAKE_CUDA_COMPILER: nvcc },
        });
        log(`CUDA addon built (build/cmake-cuda/Release/git_tensor_cuda.node) at ${seconds()} s`);
      } catch (err) {
        log(`the CUDA addon did not build (${err?.message ?? err}); the CPU addon is used`);
      }
    }
  }
}

const mode = process.argv[2];
if (mode === '--zstd-dir') console.log(zstdDir());
// gyp wants source paths relative to binding.gyp's folder.
else if (mode === '--zstd-sources') console.log(zstdSources().map((f) => path.relative(root, f)).join('\n'));
else if (mode === '--vendor-zstd') {
  rmSync(vendored, { recursive: true, force: true });
  const from = zstdNapiCopy();
  for (const item of ['lib', 'LICENSE', 'COPYING']) cpSync(path.join(from, item), path.join(vendored, item), { recursive: true });
} else if (mode === '--unvendor-zstd') {
  rmSync(vendored, { recursive: true, force: true });
  if (existsSync(path.dirname(vendored)) && readdirSync(path.dirname(vendored)).length === 0) rmSync(path.dirname(vendored), { recursive: true });
}
else await main();
