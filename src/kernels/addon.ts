// Loads the native kernels addon (the only place in git-tensor that does) and decides which kernel
// implementation runs: GIT_TENSOR_KERNELS=scalar|avx2|avx512|neon|cuda|js forces one, otherwise the
// best one the addon supports on this machine. When the addon is missing or broken, the TypeScript
// reference kernels run instead, after a one-line warning on stderr, and new chunks are stored
// uncompressed; `git tensor doctor` reports that state (addonStatus) and exits 1. With
// GIT_TENSOR_REQUIRE_ADDON=1 (CI sets it) a missing addon, or one without zstd, is an error instead.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { GitTensorError } from '../errors/index.js';
import type { DType } from './types.js';

/** The addon's exports (native/src/addon.cc). Every kernel takes (implementation, threads, dtype, ...). */
export interface NativeAddon {
  implementations(): { name: string; supported: boolean }[];
  best(): string;
  changeMask(impl: string, threads: number, dtype: DType, a: Uint8Array, b: Uint8Array, mask: Uint8Array): Promise<number>;
  classify3(impl: string, threads: number, dtype: DType, o: Uint8Array, a: Uint8Array, b: Uint8Array, masks: Uint8Array[]): Promise<number[]>;
  diffStats(impl: string, threads: number, dtype: DType, a: Uint8Array, b: Uint8Array): Promise<import('./types.js').DiffStats>;
  toF32(impl: string, threads: number, dtype: DType, src: Uint8Array, dst: Uint8Array): Promise<void>;
  fromF32(impl: string, threads: number, dtype: DType, src: Uint8Array, dst: Uint8Array): Promise<void>;
  select(impl: string, threads: number, dtype: DType, a: Uint8Array, b: Uint8Array, mask: Uint8Array, out: Uint8Array): Promise<void>;
  combine(impl: string, threads: number, dtype: DType, mode: string, base: Uint8Array | null, models: Uint8Array[],
    coeffs: number[], seed: bigint, keepBelow: number, out: Uint8Array, streamFirst: number): Promise<void>;
  ties(impl: string, threads: number, dtype: DType, base: Uint8Array, models: Uint8Array[], keep: number[], lambda: number,
    out: Uint8Array): Promise<void>;
  tiesHistogram(impl: string, threads: number, dtype: DType, base: Uint8Array, models: Uint8Array[], model: number, shift: number,
    prefix: bigint, hist: BigUint64Array): Promise<void>;
  tiesSigns(impl: string, threads: number, dtype: DType, base: Uint8Array, models: Uint8Array[], thresholds: BigUint64Array): Promise<number[]>;
  tiesMerge(impl: string, threads: number, dtype: DType, base: Uint8Array, models: Uint8Array[], thresholds: BigUint64Array,
    majority: number, lambda: number, out: Uint8Array): Promise<void>;
  matvec(impl: string, threads: number, dtype: DType, matrix: Uint8Array, rows: number, cols: number, x: Float64Array,
    y: Float64Array, transpose: boolean): Promise<void>;
  matmul(impl: string, threads: number, x: Float32Array, w: Float32Array | Uint16Array, wDtype: 'F32' | 'F16' | 'BF16',
    bias: Float32Array | null, out: Float32Array, rows: number, inDim: number, outDim: number): Promise<void>;
  activation(impl: string, threads: number, name: string, x: Float32Array): Promise<void>;
  attention(impl: string, threads: number, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, seqs: Uint32Array,
    heads: number, kvHeads: number, headDim: number, scale: number, causal: boolean, window: number | null): Promise<void>;
  norm(impl: string, threads: number, x: Float32Array, weight: Float32Array, bias: Float32Array | null, out: Float32Array,
    rows: number, dim: number, eps: number, rms: boolean): Promise<void>;
  copy(threads: number, src: Uint8Array, dst: Uint8Array): Promise<void>;
  cuda: boolean;
}

export interface KernelBackend {
  /** null when the TypeScript kernels run. */
  addon: NativeAddon | null;
  /** The implementation that runs by default: a native name, or 'js'. */
  active: string;
  /** Every implementation usable here, best first; 'js' is always last. */
  supported: string[];
  /** Where the addon was loaded from. */
  addonPath: string | null;
  /** The one-line warning printed when the choice fell back, if any. */
  warning: string | null;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where scripts/build-native.mjs puts the addon: cmake-js first, then the node-gyp fallback. */
export const ADDON_PATHS = ['build/cmake/Release/git_tensor.node', 'build/Release/git_tensor.node'].map((p) => path.join(root, p));

/**
 * The CUDA addon (GIT_TENSOR_CUDA=1 builds): the CPU kernels plus 'cuda'. Loaded only for
 * GIT_TENSOR_KERNELS=cuda, since the GPU is opt-in and the file may be older than the CPU addon.
 */
export const CUDA_ADDON_PATH = path.join(root, 'build/cmake-cuda/Release/git_tensor_cuda.node');

/** Set to 1, a missing addon or one built without zstd throws AddonRequiredError instead of degrading. */
export const REQUIRE_ADDON_ENV = 'GIT_TENSOR_REQUIRE_ADDON';

const requireAddon = (env: NodeJS.ProcessEnv) => env[REQUIRE_ADDON_ENV] === '1';

export class AddonRequiredError extends GitTensorError {
  constructor(problem: string) {
    super('E_ADDON_REQUIRED', `${REQUIRE_ADDON_ENV}=1, but ${problem}`, {
      hint: 'run `npm run build:native` in the git-tensor package (it needs a C++ toolchain), then `git tensor doctor`',
    });
  }
}

/** Decides the backend from the environment; prints nothing (see backend()). */
export function loadBackend(env: NodeJS.ProcessEnv = process.env, addonPaths: readonly string[] = ADDON_PATHS): KernelBackend {
  const wanted = (env.GIT_TENSOR_KERNELS ?? '').trim().toLowerCase();
  const jsOnly: KernelBackend = { addon: null, active: 'js', supported: ['js'], addonPath: null, warning: null };
  if (wanted === 'js') return jsOnly;
  const paths = wanted === 'cuda' ? [CUDA_ADDON_PATH, ...addonPaths] : addonPaths;

  const { exports, path: addonPath, errors } = requireFirst(paths);
  const addon = exports as NativeAddon | null;
  if (!addon) {
    const why = errors.length ? errors.join('; ') : 'not built (run `npm run build:native`)';
    if (requireAddon(env)) throw new AddonRequiredError(`the native addon did not load (${why})`);
    return { ...jsOnly, warning: `git-tensor: native kernels unavailable (${why}); using the slower JavaScript kernels` };
  }
  const supported = [...addon.implementations().filter((i) => i.supported).map((i) => i.name), 'js'];
  const best = addon.best();
  if (!wanted || wanted === 'auto') return { addon, active: best, supported, addonPath, warning: null };
  if (supported.includes(wanted)) return { addon, active: wanted, supported, addonPath, warning: null };
  return {
    addon, active: best, supported, addonPath,
    warning: `git-tensor: GIT_TENSOR_KERNELS=${wanted} is not available here (supported: ${supported.join(', ')}); using ${best}`,
  };
}

/** Loads the first of `paths` that exists and loads; the others' load errors, one line each. */
function requireFirst(paths: readonly string[]): { exports: Record<string, unknown> | null; path: string | null; errors: string[] } {
  const errors: string[] = [];
  const require = createRequire(import.meta.url);
  for (const p of paths) {
    if (!existsSync(p)) continue;
    try {
      return { exports: require(p) as Record<string, unknown>, path: p, errors };
    } catch (err) {
      errors.push(`${path.relative(root, p)}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return { exports: null, path: null, errors };
}

export interface AddonStatus {
  /** Where the CPU addon was loaded from; null when it did not load. */
  path: string | null;
  /** The zstd version compiled into the addon; null without compression. */
  zstd: string | null;
  /** Why the addon is degraded (not built, failed to load, no zstd); null when it is complete. */
  problem: string | null;
}

let plain: { exports: Record<string, unknown> | null; status: AddonStatus } | undefined;

/** The CPU addon's state, for `git tensor doctor`; never throws. */
export function addonStatus(paths: readonly string[] = ADDON_PATHS): AddonStatus {
  if (paths === ADDON_PATHS && plain) return plain.status;
  const { exports, path: addonPath, errors } = requireFirst(paths);
  const zstd = (exports?.zstd as { version?: string } | undefined)?.version ?? null;
  const problem = !exports
    ? `the native addon did not load (${errors.length ? errors.join('; ') : 'not built: run `npm run build:native`'})`
    : zstd === null ? `the native addon (${path.relative(root, addonPath!)}) was built without zstd` : null;
  const status = { path: addonPath, zstd, problem };
  if (paths === ADDON_PATHS) plain = { exports, status };
  return status;
}

/**
 * The CPU addon's exports for what is not a kernel (the store codec, pipe sizing), whatever
 * GIT_TENSOR_KERNELS chose; null when it is missing or broken (doctor reports why). Under
 * GIT_TENSOR_REQUIRE_ADDON=1 an addon that is missing or lacks zstd throws AddonRequiredError.
 */
export function cpuAddon(env: NodeJS.ProcessEnv = process.env): Record<string, unknown> | null {
  const { problem } = addonStatus();
  if (problem && requireAddon(env)) throw new AddonRequiredError(problem);
  return plain!.exports;
}

/** The addon's zstd functions (native/src/codec.cc); the store's codec (src/store/codec.ts) wraps them. */
export interface NativeZstd {
  compress(src: Uint8Array, level: number): Buffer;
  decompress(src: Uint8Array, size: number): Buffer;
  compressPlanes(src: Uint8Array, width: number, rotate: boolean, base: Uint8Array | null, level: number): Buffer;
  compressPlane(plane: Uint8Array, level: number): Buffer;
  decompressPlanes(src: Uint8Array, size: number, width: number, rotate: boolean, base: Uint8Array | null): Buffer;
  version: string;
}

/** null when the addon is missing or was built without libzstd. */
export function nativeZstd(): NativeZstd | null {
  return (cpuAddon()?.zstd as NativeZstd | undefined) ?? null;
}

/**
 * The addon's setPipeSize(fd, bytes) (fcntl F_SETPIPE_SZ), returning the size now in effect or 0;
 * null without the addon. src/git/pipes.ts decides the sizes.
 */
export function nativeSetPipeSize(): ((fd: number, bytes: number) => number) | null {
  return (cpuAddon()?.setPipeSize as ((fd: number, bytes: number) => number) | undefined) ?? null;
}

/**
 * The addon's alignedBuffer(bytes, alignment): memory that starts at a multiple of `alignment`, for
 * O_DIRECT writes (src/store/pack.ts); null without the addon.
 */
export function nativeAlignedBuffer(): ((bytes: number, alignment: number) => Buffer) | null {
  return (cpuAddon()?.alignedBuffer as ((bytes: number, alignment: number) => Buffer) | undefined) ?? null;
}

/**
 * The addon's preallocate(fd, bytes): reserves a new file's blocks (Linux fallocate, size unchanged);
 * true when reserved, false where the filesystem cannot; throws an Error with code ENOSPC (EDQUOT,
 * EFBIG) when the disk cannot hold the file. null without the addon.
 */
export function nativePreallocate(): ((fd: number, bytes: number) => boolean) | null {
  return (cpuAddon()?.preallocate as ((fd: number, bytes: number) => boolean) | undefined) ?? null;
}

let cached: KernelBackend | undefined;

/** The process-wide backend, chosen on first use; its warning, if any, is printed once. */
export function backend(): KernelBackend {
  if (!cached) {
    cached = loadBackend();
    if (cached.warning) process.stderr.write(cached.warning + '\n');
  }
  return cached;
}
