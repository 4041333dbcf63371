// Owns `git tensor resolve <path> --strategy auto`: merges the file with each candidate strategy that
// `.gittensor` lists (`[resolve "auto"] candidate = ties density=0.5`, one line each; git config
// `tensor-resolve.auto.candidate` overrides them; DEFAULT_CANDIDATES otherwise), runs every probe on each
// clean result, keeps the candidates that hold every protected probe (the merge guard) and stages the one
// with the best mean over the other probes. Prints the table of candidates either way.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Printable, table } from './printable.js';
import { ExitCode, UsageError } from '../errors/index.js';
import { gitRaw } from '../git/exec.js';
import { makeStrategy, parseStrategyText, type StrategyParams } from '../merge/strategy.js';
import { checkProtected, othersMean } from '../probe/guard.js';
import { openRepo } from './context.js';
import { cannotRun, guardMerge, openGuard } from './guard.js';
import { RULES_FILE } from './merge-rules.js';
import { loadChoices } from './resolve-state.js';
import { mergeTarget, resolveTarget, stageResult, type ResolveOptions } from './resolve.js';

/** Tried in this order when no `[resolve "auto"] candidate` is configured (docs/merge.md). */
export const DEFAULT_CANDIDATES = ['ties density=0.2', 'ties density=0.5', 'dare density=0.5', 'average', 'protect', 'ours', 'theirs'];

function configured(topLevel: string): { texts: string[]; source: string } {
  const get = (args: string[], key: string) => {
    const r = gitRaw(['config', ...args, '--get-all', key], { cwd: topLevel, okCodes: [1] });
    return r.status === 0 ? r.stdout.toString('utf8').split('\n').filter((l) => l.trim()) : [];
  };
  const local = get([], 'tensor-resolve.auto.candidate');
  if (local.length) return { texts: local, source: 'git config tensor-resolve.auto.candidate' };
  const file = join(topLevel, RULES_FILE);
  const committed = existsSync(file) ? get(['-f', file], 'resolve.auto.candidate') : [];
  if (committed.length) return { texts: committed, source: `${RULES_FILE} [resolve "auto"] candidate` };
  return { texts: DEFAULT_CANDIDATES, source: 'the default candidates' };
}

interface Row {
  candidate: string;
  status: 'held' | 'regressed' | 'conflict';
  worstDrop: number | null;
  othersMean: number | null;
  chosen: boolean;
}

export async function resolveAuto(opts: ResolveOptions): Promise<Printable> {
  const repo = openRepo();
  const { texts, source } = configured(repo.topLevel);
  const candidates = texts.map((text) => {
    const params: StrategyParams = parseStrategyText(text, source);
    makeStrategy(params, `${source} ${JSON.stringify(text)}`);
    return { text: text.trim(), params };
  });
  const t = await resolveTarget(repo, opts.path);
  const setup = openGuard(repo);
  if (setup.kind === 'none') throw new UsageError('--strategy auto ranks candidates by the probes, and no protected probe is configured', 'Name a probes file with protected probes in .gittensor: [probe] file = probes.jsonl (docs/merge.md).');
  const guard = setup.guard;
  const rows: Row[] = [];
  let best: { row: Row; pointer: string } | null = null;
  try {
    const ours = await guard.version({ treeish: 'HEAD', path: t.path, label: `ours:${t.path}`, replace: t.oursText });
    const before = await guard.results(ours, guard.full);
    const earlier = loadChoices(repo.commonDir, t.entry);
    for (const c of candidates) {
      const choices = [...earlier, { tensor: opts.tensor, params: c.params }];
      const first = await mergeTarget(t, choices, opts.keepOurs ?? []);
      const row: Row = { candidate: c.text, status: 'conflict', worstDrop: null, othersMean: null, chosen: false };
      rows.push(row);
      if (!first.clean) continue;
      const g = await guardMerge({ setup, path: t.path, treeish: 'HEAD', oursText: t.oursText, outcome: first, remerge: (extra) => mergeTarget(t, choices, opts.keepOurs ?? [], extra), explain: c.params.name === 'protect' });
      const candidate = await guard.version({ treeish: 'HEAD', path: t.path, label: `${c.text}:${t.path}`, replace: g.outcome.pointer });
      const after = await guard.results(candidate, guard.full);
      const check = checkProtected(guard.full.probes, before, after);
      row.status = check.regressed.length ? 'regressed' : 'held';
      row.worstDrop = check.worstDrop;
      row.othersMean = othersMean(guard.full.probes, after);
      if (row.status === 'held' && (!best || (row.othersMean ?? -Infinity) > (best.row.othersMean ?? -Infinity))) best = { row, pointer: g.outcome.pointer };
    }
  } catch (err) {
    if (cannotRun(err)) throw new UsageError(`--strategy auto cannot run the probes on ${t.path}: ${err.message}`, 'Pick a strategy yourself: `git tensor resolve <path> --strategy <name>`.');
    throw err;
  } finally {
    guard.close();
  }
  if (best) best.row.chosen = true;
  const num = (x: number | null) => (x === null ? '-' : x.toFixed(3));
  const text = [`${t.path}: ${rows.length} candidate(s) from ${source}; drops in nats against ours, others = mean over the unprotected probes:`,
    ...table([['  candidate', 'protected worst drop', 'others mean', 'result'],
      ...rows.map((r) => ['  ' + r.candidate, num(r.worstDrop), num(r.othersMean), r.chosen ? 'held, chosen' : r.status])], [1, 2])];
  const data = { path: t.path, source, candidates: rows };
  if (!best) {
    text.push(`no candidate holds every protected probe; ${t.path} is still unmerged.`,
      `hint: try other candidates (\`[resolve "auto"] candidate = ...\` in ${RULES_FILE}), \`git tensor resolve ${t.path} --keep-ours <glob>\`, or \`git merge --abort\`.`);
    return { data, text, exitCode: ExitCode.failure };
  }
  await stageResult(t, best.pointer);
  text.push(`chose ${best.row.candidate}; resolved ${t.path} and staged it; finish with \`git commit\` (or \`git merge --continue\`).`);
  return { data: { ...data, chosen: best.row.candidate }, text };
}
