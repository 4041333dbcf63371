// Owns `git tensor doctor`: what is installed, how git is configured, and which kernels run.

import { readFileSync } from 'node:fs';
import { Printable } from './printable.js';
import { gitRaw } from '../git/exec.js';
import { GIT_CONFIG } from './install.js';

export async function doctor(_opts: object): Promise<Printable> {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const gitVersion = gitRaw(['--version']).stdout.toString().trim();
  const config = GIT_CONFIG.map(([key, expected]) => {
    const r = gitRaw(['config', '--show-scope', '--get', key], { okCodes: [1] });
    const [scope, ...rest] = r.stdout.toString().trim().split('\t');
    const value = r.status === 0 ? rest.join('\t') : null;
    return { key, expected, value, scope: r.status === 0 ? scope : null, ok: value === expected };
  });
  const { kernelInfo } = await import('../kernels/index.js');
  const kernels = kernelInfo();
  const data = { version: pkg.version, node: process.version, git: gitVersion, config, kernels };
  const text = [
    `git-tensor ${pkg.version} (node ${process.version}, ${gitVersion})`,
    'git config:',
    ...config.map((c) => `  ${c.ok ? 'ok     ' : 'MISSING'} ${c.key} = ${c.value ?? '(unset)'}${c.scope ? ` [${c.scope}]` : ''}`),
    `kernels: active ${kernels.active}; supported: ${kernels.supported.join(', ')}; addon ${kernels.addonLoaded ? 'loaded' : 'not loaded'}; cuda ${kernels.cuda ? 'yes' : 'no'}`,
  ];
  if (config.some((c) => !c.ok)) text.push('hint: run `git tensor install` to configure git.');
  return { data, text, exitCode: config.every((c) => c.ok) ? 0 : 1 };
}
