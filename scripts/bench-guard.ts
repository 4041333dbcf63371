// Benchmark of the merge guard (issue #13 item 3: "a guarded merge of the demo model costs <= 3x an
// unguarded one"). Usage: npx tsx scripts/bench-guard.ts [--runs 5]
// In fresh repositories holding the demo BERT (scripts/demo-models) with main at base + day 1 and a
// branch at base + day 3 (disjoint masks: the driver merges them exactly), times `git merge day3`:
// unguarded (no `[probe] file`), guarded with ours' results not cached (the driver runs ours and the merge
// result), guarded with ours cached by an earlier `git tensor probe HEAD` (the usual case: the notes
// cache travels with the repository), and the guarded refusal of day 5 (the report and the search for the
// responsible modules). Each merge includes the pre-merge-commit hook (`git tensor verify --staged`).
// Medians of --runs, all in one run, so the ratios compare like with like.

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { benchEnv, printTable, ROOT, sh, tempDir } from './bench-lib.js';

const args = process.argv.slice(2);
const runs = args.includes('--runs') ? Number(args[args.indexOf('--runs') + 1]) : 5;
const DEMO = join(ROOT, 'scripts', 'demo-models');
const work = tempDir('bench-guard-');
const home = join(work, 'home');
mkdirSync(home, { recursive: true });
const env = benchEnv(home);
let n = 0;

/** A repository ready to merge `theirs` into main (base + day 1); `probes`: the demo's probes and .gittensor. */
function setup(theirs: string, probes: boolean, warm: boolean): string {
  const dir = join(work, `r${n++}`);
  mkdirSync(join(dir, 'model'), { recursive: true });
  const git = (...a: string[]) => sh('git', a, { cwd: dir, env });
  git('init', '-q', '-b', 'main');
  git('tensor', 'install');
  git('tensor', 'track', '*.safetensors');
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) copyFileSync(join(DEMO, 'base', f), join(dir, 'model', f));
  if (probes) {
    copyFileSync(join(DEMO, 'probes.jsonl'), join(dir, 'probes.jsonl'));
    writeFileSync(join(dir, '.gittensor'), '[probe]\n\tfile = probes.jsonl\n');
  }
  git('add', '-A');
  git('commit', '-qm', 'base');
  git('checkout', '-qb', 'theirs');
  copyFileSync(join(DEMO, theirs, 'sparse', 'model.safetensors'), join(dir, 'model', 'model.safetensors'));
  git('commit', '-qam', theirs);
  git('checkout', '-q', 'main');
  copyFileSync(join(DEMO, 'day1', 'sparse', 'model.safetensors'), join(dir, 'model', 'model.safetensors'));
  git('commit', '-qam', 'day1');
  if (warm) git('tensor', 'probe', 'HEAD');
  return dir;
}

/** One timed `git merge theirs` in a fresh repository. */
function timeMerge(theirs: string, probes: boolean, warm: boolean, expectOk: boolean): number {
  const dir = setup(theirs, probes, warm);
  const t = process.hrtime.bigint();
  const r = spawnSync('git', ['merge', '--no-edit', 'theirs'], { cwd: dir, env, stdio: 'ignore' });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  if ((r.status === 0) !== expectOk) throw new Error(`git merge ${theirs} in ${dir} exited ${r.status}`);
  return seconds;
}

// Runs interleaved (one of each case per round), so a load change on a shared machine hits every case alike.
const cases = {
  unguarded: () => timeMerge('day3', false, false, true),
  cold: () => timeMerge('day3', true, false, true),
  warm: () => timeMerge('day3', true, true, true),
  refused: () => timeMerge('day5', true, true, false),
};
const times: Record<keyof typeof cases, number[]> = { unguarded: [], cold: [], warm: [], refused: [] };
for (let i = 0; i < runs; i++) for (const k of Object.keys(cases) as (keyof typeof cases)[]) times[k].push(cases[k]());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const [unguarded, cold, warm, refused] = [times.unguarded, times.cold, times.warm, times.refused].map(median) as [number, number, number, number];
const x = (t: number) => `${(t / unguarded).toFixed(2)}x`;
printTable(`git merge of the demo BERT (main: base + day 1), median of ${runs}, seconds`, ['merge', 'time', 'vs unguarded'], [
  ['day 3, unguarded (no [probe] file)', unguarded.toFixed(2), '1.00x'],
  ['day 3, guarded, ours not cached', cold.toFixed(2), x(cold)],
  ['day 3, guarded, ours cached (git tensor probe HEAD)', warm.toFixed(2), x(warm)],
  ['day 5, guarded and refused (report + responsible modules)', refused.toFixed(2), x(refused)],
]);
sh('rm', ['-rf', work]);
