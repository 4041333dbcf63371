// Owns `git tensor doctor`: what is installed, how git is configured, whether the native addon loaded
// with zstd compression, and which kernels run. Exits 1 when anything is missing or degraded, so a
// script (or CI) can rely on it.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Printable } from './printable.js';
import { gitRaw } from '../git/exec.js';
import { GIT_CONFIG } from './install.js';
import { hookCall, hookStatus } from './hooks.js';

export async function doctor(_opts: object): Promise<Printable> {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const gitVersion = gitRaw(['--version']).stdout.toString().trim();
  const config = GIT_CONFIG.map(([key, expected]) => {
    const r = gitRaw(['config', '--show-scope', '--get', key], { okCodes: [1] });
    const [scope, ...rest] = r.stdout.toString().trim().split('\t');
    const value = r.status === 0 ? rest.join('\t') : null;
    return { key, expected, value, scope: r.status === 0 ? scope : null, ok: value === expected };
  });
  const { addonStatus } = await import('../kernels/addon.js');
  const { kernelInfo } = await import('../kernels/index.js');
  const status = addonStatus();
  // Under GIT_TENSOR_REQUIRE_ADDON=1 the kernel loader throws for a missing addon; doctor reports it.
  const kernels = status.path ? kernelInfo() : { active: 'js', supported: ['js'], addonLoaded: false, cuda: false };
  const addon = { loaded: status.path !== null, path: status.path, problem: status.problem };
  const compression = { zstd: status.zstd };
  const degraded = status.problem !== null;
  // Hooks are a repository's own: checked only inside one (hookStatus is empty elsewhere).
  const hooks = hookStatus();
  const hooksOk = hooks.every((h) => h.state === 'installed' || h.state === 'foreign-calls-us');
  const data = { version: pkg.version, node: process.version, git: gitVersion, config, addon, compression, kernels, hooks, degraded };

  const pkgRoot = fileURLToPath(new URL('../..', import.meta.url));
  const text = [
    `git-tensor ${pkg.version} (node ${process.version}, ${gitVersion})`,
    'git config:',
    ...config.map((c) => `  ${c.ok ? 'ok     ' : 'MISSING'} ${c.key} = ${c.value ?? '(unset)'}${c.scope ? ` [${c.scope}]` : ''}`),
    status.path
      ? `addon: loaded (${path.relative(pkgRoot, status.path)})`
      : `addon: NOT LOADED: ${status.problem}`,
    status.zstd
      ? `compression: zstd ${status.zstd}`
      : 'compression: NONE: new chunks are stored uncompressed and no deltas are made',
    `kernels: active ${kernels.active}; supported: ${kernels.supported.join(', ')}; cuda ${kernels.cuda ? 'yes' : 'no'}`,
    ...(hooks.length ? ['hooks:'] : []),
    ...hooks.map((h) => `  ${h.state === 'installed' || h.state === 'foreign-calls-us' ? 'ok     ' : 'MISSING'} hook ${h.name}: ${h.path}` +
      (h.state === 'foreign' ? ` (your own hook: add \`${hookCall(h.name)}\` to it)` : '')),
  ];
  if (config.some((c) => !c.ok) || hooks.some((h) => h.state === 'missing')) text.push('hint: run `git tensor install` to configure git.');
  if (degraded) {
    text.push(`hint: build the addon: \`npm run build:native\` in ${pkgRoot} (needs a C++ toolchain and cmake or make).`);
  }
  return { data, text, exitCode: config.every((c) => c.ok) && hooksOk && !degraded ? 0 : 1 };
}
