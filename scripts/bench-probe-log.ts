// Benchmark of the probe results cache (issue 12: "a cached `git tensor log --probes` over 20 commits: < 1 s").
// Usage: npx tsx scripts/bench-probe-log.ts [--commits 20] [--runs 5]
// Builds a repository with --commits commits of a small checkpoint and probes run by the test runner
// (test/fixtures/probe/bias-runner.mjs), runs `git tensor log --probes` once to fill the notes cache,
// then prints medians of --runs runs of:
//   * the baseline: `git tensor ls HEAD` (process start, module loading, one pointer read): what any
//     git-tensor command costs,
//   * `git tensor log` (the weight log, no probes) over the same commits,
//   * `git tensor log --probes` with every version in the cache,
// all in this run on this machine.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeSafetensors } from '../src/format/safetensors.js';
import { benchEnv, medianSeconds, printTable, ROOT, sh, tempDir, numberOption } from './bench-lib.js';

const commits = numberOption('commits', 20);
const runs = numberOption('runs', 5);

const root = tempDir('bench-probe-log');
const home = join(root, 'home');
const dir = join(root, 'repo');
sh('mkdir', ['-p', home, dir]);
const env = benchEnv(home);
const git = (a: string[]) => sh('git', a, { cwd: dir, env });
git(['init', '-q', '-b', 'main']);
git(['tensor', 'install']);
git(['tensor', 'track', '*.safetensors']);
writeFileSync(join(dir, '.gittensor'), `[probe]\n\tfile = probes.jsonl\n\tcommand = node ${join(ROOT, 'test', 'fixtures', 'probe', 'bias-runner.mjs')}\n`);
git(['config', 'tensor-probe.trust', 'true']);
writeFileSync(join(dir, 'probes.jsonl'), [
  { id: 'first', prompt: 'x', targets: ['a', 'b'] }, { id: 'c', prompt: 'x', targets: ['c'] },
  { id: 'pick', choices: ['ad', 'bd'] }, { id: 'story', text: 'abcdabcd' },
].map((p) => JSON.stringify(p)).join('\n') + '\n');
writeFileSync(join(dir, 'config.json'), '{"architectures": ["BiasForCausalLM"]}\n');
git(['add', '.']);
git(['commit', '-q', '-m', 'probes']);
for (let k = 0; k < commits; k++) {
  const data = Buffer.alloc(16);
  [(k % 4) + k / 100, 1, (k * 7) % 3, 0].forEach((x, i) => data.writeFloatLE(x, 4 * i));
  writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors([{ name: 'bias', dtype: 'F32', shape: [4], data }, { name: 'embed', dtype: 'F32', shape: [64, 64], data: Buffer.alloc(64 * 64 * 4, 3) }], null));
  git(['add', 'model.safetensors']);
  git(['commit', '-q', '-m', `step ${k}`]);
}
const fill = JSON.parse(git(['tensor', 'log', '--probes', '--json'])) as { commits: unknown[]; computed: number };
if (fill.commits.length !== commits || fill.computed !== commits) throw new Error(`expected ${commits} computed rows, got ${fill.commits.length}/${fill.computed}`);

const rows: (string | number)[][] = [];
const time = (what: string, a: string[]) => rows.push([what, medianSeconds(runs, () => git(a)).toFixed(3)]);
time('baseline: git tensor ls HEAD', ['tensor', 'ls', 'HEAD']);
time(`git tensor log (weights, ${commits} commits)`, ['tensor', 'log']);
time(`git tensor log --probes (${commits} commits, cached)`, ['tensor', 'log', '--probes']);
const again = JSON.parse(git(['tensor', 'log', '--probes', '--json'])) as { computed: number };
if (again.computed !== 0) throw new Error(`the cached run computed ${again.computed} version(s)`);
printTable(`cached log --probes, medians of ${runs} runs (s)`, ['command', 'seconds'], rows);
sh('rm', ['-rf', root]);
