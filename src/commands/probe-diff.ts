// Owns adding the behaviour section to `git tensor diff --probes`: the diff's two sides, read as
// `git diff` reads them (commands/diff.ts resolveSides), are probed and compared after the weight table.

import { Printable } from '../cli/output.js';
import { join } from 'node:path';
import { GitTensorError, UsageError } from '../errors/index.js';
import { compareResults } from '../probe/compare.js';
import { renderBehaviour } from '../probe/report.js';
import { loadProbeSettings } from './probe-config.js';
import { blobVersion, diskVersion } from './probe-source.js';
import { gitRaw } from '../git/exec.js';
import { resolveSides } from './diff.js';
import { behaviourDiff, ProbeSession } from './probe.js';

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

/**
 * The behaviour lines git's diff driver adds under a checkpoint's weight table when `.gittensor` names a
 * probes file. A failure becomes a line, never a failed `git diff`.
 */
export async function driverBehaviour(o: { path: string; oldHex?: string; newHex?: string; topLevel: string }): Promise<string[]> {
  if (!o.topLevel || !loadProbeSettings(o.topLevel).file) return [];
  const isBlob = (h?: string) => !!h && !/^0+$/.test(h) && h !== '.';
  if (!isBlob(o.oldHex)) return [];
  try {
    const s = new ProbeSession({});
    try {
      const a = await blobVersion(o.path, o.oldHex!, `${o.oldHex!.slice(0, 10)}:${o.path}`, s.topLevel);
      const b = isBlob(o.newHex) ? await blobVersion(o.path, o.newHex!, `${o.newHex!.slice(0, 10)}:${o.path}`, s.topLevel) : diskVersion(join(s.topLevel, o.path));
      const [ra, rb] = await s.results([a, b]);
      return ['', ...renderBehaviour(compareResults(ra!.results, rb!.results))];
    } finally {
      s.close();
    }
  } catch (err) {
    if (!(err instanceof GitTensorError)) throw err;
    return ['', `behaviour skipped: ${err.message}`, ...(err.hint ? [`hint: ${err.hint}`] : [])];
  }
}
