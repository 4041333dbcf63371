// Measures the policies for overlapping masks on the demo models (scripts/demo-models): days 2 and 4
// (Quillmoor Times, both on Pellucia) change 152 shared elements differently, so `git merge day4` on day 2
// conflicts. Each policy resolves that conflict with the real CLI in a temp repository
// (`git tensor resolve model.safetensors --strategy <name>`), and `git tensor probe --json` measures the
// result: the worst drop of a protected probe against the base (nats, allowance in probes.jsonl) and P of
// each day's news facts. Reference rows: each day alone, and disjoint merges (exact, no policy involved).
// Prints the table docs/continual-learning.md quotes.
//
//   npx tsx scripts/demo-policies.ts [--json]

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { printTable, ROOT, tempDir } from './bench-lib.js';

const MODELS = join(ROOT, 'scripts', 'demo-models');
const probeFile = readFileSync(join(MODELS, 'probes.jsonl'), 'utf8').split('\n').filter((l) => l.trim())
  .map((l) => JSON.parse(l) as { id: string; protect?: boolean; max_drop?: number });
const protectedIds = probeFile.filter((p) => p.protect);
const news = (day: string) => probeFile.filter((p) => p.id.startsWith(`${day}/`)).map((p) => p.id);

const work = tempDir('policies');
const home = join(work, 'home');
const repo = join(work, 'repo');
mkdirSync(home);
mkdirSync(repo);
writeFileSync(join(home, '.gitconfig'), '[user]\n\tname = Demo\n\temail = demo@example.com\n[init]\n\tdefaultBranch = main\n');
const env: NodeJS.ProcessEnv = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GIT_')) env[k] = v;
Object.assign(env, { PATH: `${join(ROOT, 'bin')}:${process.env.PATH}`, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_PAGER: 'cat', MODELS });

function sh(cmd: string, okStatus: number[] = [0]): string {
  const r = spawnSync('sh', ['-c', cmd], { cwd: repo, env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (!okStatus.includes(r.status ?? -1)) throw new Error(`\`${cmd}\` exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

interface Probe { id: string; correct?: boolean; targets: { logprob: number; prob: number }[] }
function probe(rev: string): Map<string, Probe> {
  const out = JSON.parse(sh(`git tensor probe --json ${rev}`)) as { versions: { probes: Probe[] }[] };
  return new Map(out.versions[0]!.probes.map((p) => [p.id, p]));
}


// The temp repository goes whatever happens (a failed step throws).
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

sh('git init -q && git tensor install -q && git tensor track "*.safetensors"');
sh(`cp "$MODELS"/base/* "$MODELS"/probes.jsonl . && printf '[probe]\\n\\tfile = probes.jsonl\\n' > .gittensor`);
sh('git add . && git commit -qm base && git tag base');
for (const d of ['day1', 'day2', 'day3', 'day4', 'day5']) {
  sh(`git switch -qc ${d} base && cp "$MODELS"/${d}/sparse/model.safetensors . && git commit -qam ${d}`);
}

interface Row { policy: string; how: string; rev: string; days: string[] }
const rows: Row[] = [
  { policy: 'day 2 alone', how: '(reference)', rev: 'day2', days: ['day2', 'day4'] },
  { policy: 'day 4 alone', how: '(reference)', rev: 'day4', days: ['day2', 'day4'] },
];

/**
 * Merges day4 into day2 (a conflict) and resolves with `resolve`: the branch holding the result, or why
 * there is none (a strategy this build lacks: exit 2; the merge guard refused the result: exit 1).
 */
function overlap(name: string, resolve: string): { branch: string } | { none: string } {
  const branch = `p-${name}`;
  sh(`git switch -qc ${branch} day2`);
  sh('git merge -q day4', [1]);
  const r = spawnSync('sh', ['-c', resolve], { cwd: repo, env, encoding: 'utf8' });
  if (r.status !== 0) {
    sh('git merge --abort');
    if (r.status === 2) return { none: 'not in this build' };
    if (r.status === 1 && /merge guard/.test(r.stdout + r.stderr)) return { none: 'refused by the merge guard' };
    throw new Error(`\`${resolve}\` exited ${r.status}:\n${r.stdout}${r.stderr}`);
  }
  sh(`git commit -qm "day2 + day4: ${name}"`);
  return { branch };
}

const policies: [string, string, string][] = [
  ['newest day wins', 'theirs', 'git tensor resolve model.safetensors --strategy theirs'],
  ['oldest day wins', 'ours', 'git tensor resolve model.safetensors --strategy ours'],
  ['TIES (density 0.2)', 'ties', 'git tensor resolve model.safetensors --strategy ties'],
  ['average', 'average', 'git tensor resolve model.safetensors --strategy average'],
  ['task arithmetic', 'task-arithmetic', 'git tensor resolve model.safetensors --strategy task-arithmetic'],
  ['protect', 'protect', 'git tensor resolve model.safetensors --strategy protect'],
  ['auto (guard picks)', 'auto', 'git tensor resolve model.safetensors --strategy auto'],
];
const missing: string[] = [];
for (const [policy, name, cmd] of policies) {
  const r = overlap(name, cmd);
  if ('none' in r) missing.push(`${policy}: ${r.none}`);
  else rows.push({ policy, how: cmd.replace('git tensor resolve model.safetensors ', 'resolve '), rev: r.branch, days: ['day2', 'day4'] });
}
// Disjoint merges: no element changed on both sides, so no policy is involved (exact union).
// The merge guard refuses a merge that drops a protected probe beyond its allowance: its report is the row.
const refusals: { merge: string; report: string }[] = [];
for (const [a, b] of [['day1', 'day3'], ['day3', 'day5']] as const) {
  const r = spawnSync('sh', ['-c', `git switch -qc m-${a}-${b} ${a} && git merge -q --no-edit ${b}`], { cwd: repo, env, encoding: 'utf8' });
  if (r.status === 0) {
    rows.push({ policy: `${a} + ${b} (disjoint)`, how: 'git merge (exact)', rev: `m-${a}-${b}`, days: [a, b] });
  } else if (/merge guard/.test(r.stderr + r.stdout)) {
    const lines = (r.stderr + r.stdout).split('\n').filter((l) => /^git-tensor:\s+static\//.test(l));
    refusals.push({ merge: `${a} + ${b} (disjoint)`, report: lines.map((l) => l.replace(/^git-tensor:\s+/, '').replace(/\s+/g, ' ')).join('; ') });
    sh('git merge --abort');
  } else {
    throw new Error(`git merge ${b} into ${a} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  }
}

const base = probe('base');
const results = rows.map((r) => {
  const v = probe(r.rev);
  let worst = { id: '', drop: -Infinity };
  for (const p of protectedIds) {
    const drop = base.get(p.id)!.targets[0]!.logprob - v.get(p.id)!.targets[0]!.logprob;
    if (drop > worst.drop) worst = { id: p.id, drop };
  }
  const over = protectedIds.filter((p) => base.get(p.id)!.targets[0]!.logprob - v.get(p.id)!.targets[0]!.logprob > (p.max_drop ?? 0));
  const ids = r.days.flatMap(news);
  return {
    policy: r.policy, how: r.how, worst_drop: worst.drop, worst_probe: worst.id, over_allowance: over.map((p) => p.id),
    news: Object.fromEntries(ids.map((id) => [id, v.get(id)!.targets[0]!.prob])),
    answered: ids.filter((id) => v.get(id)!.correct).length, of: ids.length,
  };
});

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ results, refusals, no_result: missing }, null, 2));
} else {
  const short = (id: string) => id.split('/')[1]!;
  const overlapIds = [...news('day2'), ...news('day4')];
  printTable('Overlap of days 2 and 4 (152 shared elements): P(first target) of each news fact; protected probes: worst drop vs base',
    ['policy', 'command', 'worst protected drop (nats)', ...overlapIds.map(short), 'news answered'],
    results.filter((r) => Object.keys(r.news).every((id) => overlapIds.includes(id))).map((r) => [
      r.policy, r.how, `${r.worst_drop.toFixed(3)} ${short(r.worst_probe)}${r.over_allowance.length ? ' OVER' : ''}`,
      ...overlapIds.map((id) => r.news[id]!.toFixed(3)), `${r.answered}/${r.of}`]));
  printTable('Disjoint days (no overlap: no policy applies)', ['merge', 'worst protected drop (nats)', 'news answered'],
    [...results.filter((r) => r.how.includes('exact')).map((r) => [r.policy,
      `${r.worst_drop.toFixed(3)} ${short(r.worst_probe)}${r.over_allowance.length ? ' OVER' : ''}`, `${r.answered}/${r.of}`]),
    ...refusals.map((r) => [r.merge, `refused by the merge guard (probe, ours, merged, drop, allowed: ${r.report})`, '-'])]);
  console.log('\nallowance: max_drop 1.0 nats per protected probe (probes.jsonl); OVER = beyond it (the guard refuses such a merge)');
  for (const m of missing) console.log(`no result: ${m}`);
}
