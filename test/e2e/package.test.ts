// The packed package installs and works on its own: `npm pack` of this checkout, then
// `npm install -g --prefix <tmp> <tarball>` from a loopback registry that serves the pinned production
// dependencies (test/helpers/registry.ts; no network), must build the addon with zstd from the packed
// sources and give a `git-tensor` and a `git-remote-tensor` on <tmp>/bin that round-trip a checkpoint
// through git add/checkout and through a tensor:: remote. One test: packing and installing compile
// TypeScript and the addon.

import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { tinyModel, toSafetensors } from '../helpers/models.js';
import { startLocalRegistry } from '../helpers/registry.js';
import { hermeticEnv, PROJECT_ROOT, run } from '../helpers/repo.js';
import { wrapRepo } from '../helpers/servers.js';

const root = mkdtempSync(join(tmpdir(), 'gt-package-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The environment without the variables of an npm that may be running these tests. */
function npmEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return { ...env, ...extra };
}

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('npm', args, { cwd, env });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (status) => resolve({ status, output }));
  });
}

/** This checkout's tracked and untracked (not ignored) files, with its node_modules linked: what a clone has. */
function checkoutCopy(): string {
  const dir = join(root, 'checkout');
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: PROJECT_ROOT })
    .toString().split('\0').filter((f) => f && existsSync(join(PROJECT_ROOT, f)));
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(PROJECT_ROOT, f), join(dir, f));
  }
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

it('npm pack, npm install -g <tarball>: git-tensor and git-remote-tensor round-trip a checkpoint', async () => {
  const home = join(root, 'home');
  mkdirSync(home);
  const prefix = join(root, 'prefix');
  const checkout = checkoutCopy();

  const pack = await npm(['pack', '--pack-destination', root], checkout, npmEnv({}));
  expect(pack.status, pack.output).toBe(0);
  const tarball = join(root, readdirSync(root).find((f) => f.endsWith('.tgz'))!);
  const listed = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
  for (const f of ['package/scripts/build-native.mjs', 'package/vendor/zstd/lib/zstd.h', 'package/vendor/zstd/LICENSE', 'package/dist/cli/main.js',
    'package/bin/git-remote-tensor', 'package/native/CMakeLists.txt', 'package/binding.gyp', 'package/man/man1/git-tensor.1']) {
    expect(listed, f).toContain(f);
  }
  expect(existsSync(join(checkout, 'vendor')), 'postpack removes vendor/zstd from the checkout').toBe(false);

  const registry = await startLocalRegistry(PROJECT_ROOT);
  try {
    const install = await npm(['install', '-g', '--prefix', prefix, '--registry', registry.url, '--cache', join(root, 'npm-cache'),
      '--allow-scripts=git-tensor', '--no-audit', '--no-fund', tarball], root, npmEnv({ HOME: home, GIT_TENSOR_REQUIRE_ADDON: '1' }));
    expect(install.status, install.output).toBe(0);
  } finally {
    await registry.close();
  }
  for (const bin of ['git-tensor', 'git-remote-tensor']) expect(existsSync(join(prefix, 'bin', bin)), bin).toBe(true);
  expect(existsSync(join(prefix, 'share', 'man', 'man1', 'git-tensor.1')), 'the man page `git tensor --help` shows').toBe(true);

  // A user with only the installed package on PATH (not this checkout's bin/).
  const env = { ...hermeticEnv(home), PATH: [join(prefix, 'bin'), process.env.PATH ?? ''].join(delimiter) };
  const git = (args: string[], cwd: string) => run('git', args, cwd, env);
  for (const [k, v] of [['user.name', 'Test User'], ['user.email', 'test@example.com'], ['init.defaultBranch', 'main']]) {
    git(['config', '--global', k!, v!], root);
  }
  const doctor = run('git', ['tensor', 'doctor'], root, env, { allowFail: true });
  expect(doctor.stdout).toContain(`addon: loaded (build/`);
  expect(doctor.stdout).toMatch(/^compression: zstd \d+\.\d+\.\d+$/m);
  git(['tensor', 'install', '--global'], root);
  expect(run('git', ['tensor', 'doctor'], root, env, { allowFail: true }).status).toBe(0);

  const dir = join(root, 'repo');
  mkdirSync(dir);
  const repo = wrapRepo(dir, root, home, env);
  repo.git(['init', '-q']);
  repo.gitTensor(['track', '*.safetensors']);
  const bytes = toSafetensors(tinyModel({ seed: 'package' }), { format: 'pt' });
  repo.write('model.safetensors', bytes);
  repo.commit(['.gitattributes', 'model.safetensors'], 'model');
  expect(repo.git(['cat-file', 'blob', 'HEAD:model.safetensors']).stdout).toMatch(/^git-tensor v1 safetensors\n/);
  repo.remove('model.safetensors');
  repo.git(['checkout', '--', 'model.safetensors']);
  expect(repo.read('model.safetensors').equals(bytes)).toBe(true);

  // git-remote-tensor: push to a bare repository and clone it back.
  const bare = join(root, 'host.git');
  git(['init', '-q', '--bare', bare], root);
  repo.git(['remote', 'add', 'origin', `tensor::file://${bare}`]);
  repo.git(['push', '-q', 'origin', 'main']);
  git(['clone', '-q', `tensor::file://${bare}`, join(root, 'clone')], root);
  expect(wrapRepo(join(root, 'clone'), root, home, env).read('model.safetensors').equals(bytes)).toBe(true);
}, 900_000);
