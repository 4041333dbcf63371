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

const strategies = sh('git tensor resolve --help', [0]).match(/--strategy\s+([^\n[]+)/)?.[1] ?? '';
const has = (name: string) => new RegExp(`\\b${name}\\b`).test(strategies);

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

/** Merges day4 into day2 (a conflict), resolves with `resolve` and commits; returns the branch. */
function overlap(name: string, resolve: string): string {
  const branch = `p-${name}`;
  sh(`git switch -qc ${branch} day2`);
  sh('git merge -q day4', [1]);
  sh(`${resolve} && git commit -qm "day2 + day4: ${name}"`);
  return branch;
}

const policies: [string, string, string][] = [
  ['newest day wins', 'theirs', 'git tensor resolve model.safetensors --strategy theirs'],
  ['oldest day wins', 'ours', 'git tensor resolve model.safetensors --strategy ours'],
  ['TIES (density 0.2)', 'ties', 'git tensor resolve model.safetensors --strategy ties'],
  ['TIES (density 1)', 'ties-d1', 'git tensor resolve model.safetensors --strategy ties --density 1'],
  ['average', 'average', 'git tensor resolve model.safetensors --strategy average'],
  ['task arithmetic', 'task-arithmetic', 'git tensor resolve model.safetensors --strategy task-arithmetic'],
  ['protect', 'protect', 'git tensor resolve model.safetensors --strategy protect'],
  ['auto (guard picks)', 'auto', 'git tensor resolve model.safetensors --strategy auto'],
];
const missing: string[] = [];
for (const [policy, name, cmd] of policies) {
  const strategy = name === 'ties-d1' ? 'ties' : name;
  if (!has(strategy)) {
    missing.push(strategy);
    continue;
  }
  rows.push({ policy, how: cmd.replace('git tensor resolve model.safetensors ', 'resolve '), rev: overlap(name, cmd), days: ['day2', 'day4'] });
}
// Disjoint merges: no element changed on both sides, so no policy is involved (exact union).
for (const [a, b] of [['day1', 'day3'], ['day3', 'day5']] as const) {
  sh(`git switch -qc m-${a}-${b} ${a} && git merge -q --no-edit ${b}`);
  rows.push({ policy: `${a} + ${b} (disjoint)`, how: 'git merge (exact)', rev: `m-${a}-${b}`, days: [a, b] });
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
  console.log(JSON.stringify({ results, missing_strategies: missing }, null, 2));
} else {
  const short = (id: string) => id.split('/')[1]!;
  const overlapIds = [...news('day2'), ...news('day4')];
  printTable('Overlap of days 2 and 4 (152 shared elements): P(first target) of each news fact; protected probes: worst drop vs base',
    ['policy', 'command', 'worst protected drop (nats)', ...overlapIds.map(short), 'news answered'],
    results.filter((r) => Object.keys(r.news).every((id) => overlapIds.includes(id))).map((r) => [
      r.policy, r.how, `${r.worst_drop.toFixed(3)} ${short(r.worst_probe)}${r.over_allowance.length ? ' OVER' : ''}`,
      ...overlapIds.map((id) => r.news[id]!.toFixed(3)), `${r.answered}/${r.of}`]));
  printTable('Disjoint days (no overlap: no policy applies)', ['merge', 'worst protected drop (nats)', 'news answered'],
    results.filter((r) => r.how.includes('exact')).map((r) => [r.policy,
      `${r.worst_drop.toFixed(3)} ${short(r.worst_probe)}${r.over_allowance.length ? ' OVER' : ''}`, `${r.answered}/${r.of}`]));
  console.log('\nallowance: max_drop 1.0 nats per protected probe (probes.jsonl); OVER = beyond it (the guard refuses such a merge)');
  if (missing.length) console.log(`not measured (not in this build's \`git tensor resolve --strategy\`): ${missing.join(', ')}`);
}
rmSync(work, { recursive: true, force: true });
