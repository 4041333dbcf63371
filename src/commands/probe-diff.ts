// Owns adding the behaviour section to `git tensor diff --probes`: the diff's two sides, read as
// `git diff` reads them (commands/diff.ts resolveSides), are probed and compared after the weight table.

import { Printable } from '../cli/output.js';
import { UsageError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import { resolveSides } from './diff.js';
import { behaviourDiff } from './probe.js';

export interface BehaviourSideOptions {
  revs: string[];
  cached: boolean;
  probes: string;
  paths: string[];
}

export async function diffWithBehaviour(weights: Printable, opts: BehaviourSideOptions): Promise<Printable> {
  const cwd = process.cwd();
  const isRev = (r: string) => r.includes('..') || gitRaw(['rev-parse', '--verify', '--quiet', `${r}^{commit}`], { cwd, okCodes: [1, 128] }).status === 0;
  const revs = opts.revs.filter(isRev);
  const paths = [...opts.revs.filter((r) => !isRev(r)), ...opts.paths];
  const [oldSide, newSide] = resolveSides(revs, opts.cached);
  if (oldSide.kind !== 'rev' || newSide.kind === 'index') {
    throw new UsageError('--probes compares two revisions, or a revision with the working tree', 'Use `git tensor diff <rev> <rev> --probes`.');
  }
  const path = paths.length === 1 ? toTopLevel(paths[0]!, cwd) : undefined;
  const b = await behaviourDiff({ old: oldSide.rev, new: newSide.kind === 'rev' ? newSide.rev : null, path, probes: opts.probes || undefined });
  const data = { ...(weights.data as object), behaviour: b.data };
  const text = [...weights.text, '', `${b.data.old} -> ${b.data.new}`, ...b.text];
  return { data, text };
}

function toTopLevel(path: string, cwd: string): string {
  const prefix = gitRaw(['rev-parse', '--show-prefix'], { cwd }).stdout.toString('utf8').trim();
  return (prefix + path).replace(/\/$/, '');
}
