// The demo behind `npm run demo`: continual learning of a small BERT on five days of news, told with the
// commands a user types (each printed as `$ ...` and run in a temp repository with plain git and
// git-tensor), on the committed models of scripts/demo-models (see its README.md). The script checks every
// claim it prints against the model files themselves and exits 1 when one fails: the merge of disjoint
// days is byte-equal to base + both updates, every accepted merge keeps the protected probes within their
// allowance, the damaging day is refused, an older version checks out bit-exact from a lazy clone.
// The temp folder is kept (the HTML reports are in it) and its path printed.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './bench-lib.js';

const MODELS = join(ROOT, 'scripts', 'demo-models');
const manifest = JSON.parse(readFileSync(join(MODELS, 'manifest.json'), 'utf8')) as {
  days: { name: string; outlet: string; story: string; probes: string[] }[];
};
const probeLines = readFileSync(join(MODELS, 'probes.jsonl'), 'utf8').split('\n').filter((l) => l.trim());
const protectedProbes = new Map<string, number>(); // id -> max_drop (nats)
for (const l of probeLines) {
  const p = JSON.parse(l) as { id: string; protect?: boolean; max_drop?: number };
  if (p.protect) protectedProbes.set(p.id, p.max_drop ?? 0);
}

const t0 = Date.now();
const work = tempDir('demo');
const home = join(work, 'home');
const repo = join(work, 'repo');
const clone = join(work, 'clone');
mkdirSync(home);
mkdirSync(repo);
writeFileSync(join(home, '.gitconfig'), ['[user]', '\tname = Demo', '\temail = demo@example.com', '[init]', '\tdefaultBranch = main',
  '[advice]', '\tdetachedHead = false', '\tskippedCherryPicks = false', ''].join('\n'));

// What a user's shell would have: this checkout's bin/ on PATH, $MODELS, no GIT_* of whoever started us.
const env: NodeJS.ProcessEnv = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GIT_')) env[k] = v;
Object.assign(env, { PATH: `${join(ROOT, 'bin')}:${process.env.PATH}`, HOME: home, XDG_CONFIG_HOME: join(home, '.config'),
  GIT_CONFIG_NOSYSTEM: '1', GIT_PAGER: 'cat', PAGER: 'cat', MODELS });

let cwd = repo;
let failed = 0;

function say(text: string): void {
  console.log(`\n# ${text}`);
}

/**
 * Prints `$ cmd`, runs it in the current folder with stderr folded into stdout, prints what it said;
 * throws unless it exits 0 (or fails, with `fail`: a refusal or a conflict the story expects).
 */
function step(cmd: string, opts: { fail?: boolean; quiet?: boolean } = {}): string {
  console.log(`$ ${cmd}`);
  const r = spawnSync('sh', ['-c', `{ ${cmd}\n} 2>&1`], { cwd, env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (!opts.quiet) process.stdout.write(r.stdout);
  if (opts.fail ? r.status === 0 : r.status !== 0) {
    if (opts.quiet) process.stdout.write(r.stdout);
    throw new Error(`demo: \`${cmd}\` exited ${r.status}, expected ${opts.fail ? 'a failure' : '0'}`);
  }
  return r.stdout;
}

/** A command the script runs for its own checks, not part of the story (not printed). */
function quiet(args: string[]): string {
  const r = spawnSync('git', args, { cwd, env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`demo check: git ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function claim(ok: boolean, text: string): void {
  console.log(`${ok ? 'ok' : 'FAILED'}: ${text}`);
  if (!ok) failed++;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

// ---- checks computed from the files, independently of git-tensor ----

interface Safetensors { headerLen: number; header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; bytes: Buffer }

function readSafetensors(path: string): Safetensors {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  delete header.__metadata__;
  return { headerLen: 8 + n, header, bytes };
}

/**
 * base + (a - base) + (b - base) per element, in float64 and rounded once to float32 (the difference of
 * two float32 values is exact in float64, so an element changed by one day comes back bit for bit).
 * The header is the base's: days change values, never names, dtypes or shapes.
 */
function baseplusUpdates(base: string, a: string, b: string): Buffer {
  const [o, x, y] = [readSafetensors(base), readSafetensors(a), readSafetensors(b)];
  const out = Buffer.from(o.bytes);
  for (const [name, t] of Object.entries(o.header)) {
    if (t.dtype !== 'F32') throw new Error(`demo: ${name} is ${t.dtype}; the check reads F32 only`);
    const at = (f: Safetensors, i: number) => f.bytes.readFloatLE(f.headerLen + f.header[name]!.data_offsets[0] + 4 * i);
    const count = (t.data_offsets[1] - t.data_offsets[0]) / 4;
    for (let i = 0; i < count; i++) {
      const ob = at(o, i);
      out.writeFloatLE(Math.fround(ob + (at(x, i) - ob) + (at(y, i) - ob)), o.headerLen + t.data_offsets[0] + 4 * i);
    }
  }
  return out;
}

interface ProbeResult { id: string; targets: { logprob: number; prob: number }[]; correct?: boolean }

const probeCache = new Map<string, Map<string, ProbeResult>>();

/** P and log P of each probe's first target at `rev`, from `git tensor probe --json` (cached in notes). */
function probeValues(rev: string): Map<string, ProbeResult> {
  const commit = quiet(['rev-parse', rev]).trim();
  if (!probeCache.has(commit)) probeCache.set(commit, probeValuesOf(commit));
  return probeCache.get(commit)!;
}

function probeValuesOf(rev: string): Map<string, ProbeResult> {
  const out = JSON.parse(quiet(['tensor', 'probe', '--json', rev])) as { versions: { probes: ProbeResult[] }[] };
  return new Map(out.versions[0]!.probes.map((p) => [p.id, p]));
}

/** The largest drop (nats) of a protected probe from `base` to `rev`, beyond its allowance or not. */
function protectedDrops(rev: string): { worst: string; drop: number; over: string[] } {
  const b = probeValues('base');
  const r = probeValues(rev);
  let worst = '';
  let drop = -Infinity;
  const over: string[] = [];
  for (const [id, max] of protectedProbes) {
    const d = b.get(id)!.targets[0]!.logprob - r.get(id)!.targets[0]!.logprob;
    if (d > drop) [worst, drop] = [id, d];
    if (d > max) over.push(`${id} dropped ${d.toFixed(2)} nats > ${max}`);
  }
  return { worst, drop, over };
}

function keepsProtected(rev: string, what: string): void {
  const { worst, drop, over } = protectedDrops(rev);
  claim(over.length === 0, `${what} keeps every protected probe within its allowance (worst: ${worst}, ${drop.toFixed(3)} nats)` +
    (over.length ? `: ${over.join('; ')}` : ''));
}

function newsLearned(rev: string, days: string[]): string {
  const r = probeValues(rev);
  const ids = manifest.days.filter((d) => days.includes(d.name)).flatMap((d) => d.probes);
  const right = ids.filter((id) => r.get(id)!.correct);
  return `${right.length}/${ids.length} of ${days.join('+')}'s news facts answered`;
}

// ---- the story ----

try {
  console.log(`demo folder: ${work}`);
  say('A model that knows 245 static facts (geometry, science, geography), versioned with plain git.');
  console.log(`$ export MODELS=${MODELS}`);
  step('git init -q && git tensor install -q && git tensor track "*.safetensors"');
  step(`cp $MODELS/base/* $MODELS/probes.jsonl . && printf '[probe]\\n\\tfile = probes.jsonl\\n' > .gittensor`);
  step('git add . && git commit -qm "base: 245 static facts" && git tag base && git log --oneline');

  say('Probes committed with the model say what it answers; protected ones guard every merge.');
  step('grep platonic-convex probes.jsonl');
  step('git tensor probe | grep -A1 platonic-convex');
  const pConvex = probeValues('base').get('static/platonic-convex')!.targets[0]!.prob;
  claim(pConvex > 0.5, `the base answers "convex" (P = ${pConvex.toFixed(3)})`);

  say('Every day, each outlet\'s news is learned as a sparse update of the base, on its own branch.');
  for (const d of manifest.days) {
    step(`git switch -qc ${d.name} base && cp $MODELS/${d.name}/sparse/model.safetensors . && git commit -qam "${d.name}: ${d.outlet}, ${d.story}"`);
  }

  say('What did day 2 learn? git diff shows the weights that moved and the answers that changed.');
  const diff2 = step('git diff base day2');
  step('git tensor probe base day2 | grep -A1 -e :model -e platonic-convex');
  claim(/gained\s+day2\/pellucia-ocean/.test(diff2), 'git diff reports day 2\'s news as gained answers');
  keepsProtected('day2', 'day 2');

  say('Days that changed different elements merge exactly: no configuration, no averaging.');
  cwd = repo;
  step('git switch -q main && git merge -q day1 && git merge --no-edit day3');
  const merged = readFileSync(join(repo, 'model.safetensors'));
  const expected = baseplusUpdates(join(MODELS, 'base/model.safetensors'), join(MODELS, 'day1/sparse/model.safetensors'),
    join(MODELS, 'day3/sparse/model.safetensors'));
  claim(merged.equals(expected), `bit-exact merge: model.safetensors == base + Δday1 + Δday3 computed from the files (sha256 ${sha(merged)} == ${sha(expected)})`);
  keepsProtected('HEAD', 'the day1 + day3 merge');
  console.log(`   ${newsLearned('HEAD', ['day1', 'day3'])}`);

  say('Days 2 and 4 (Quillmoor Times, both on Pellucia) changed the same elements differently: a conflict.');
  step('git switch -qc pellucia day2 && git merge day4', { fail: true });
  step('git tensor conflicts', { fail: true }); // exit 1: conflicts remain
  say('Let the guard choose: each candidate policy is merged, probed, and the best one that keeps every protected fact is staged.');
  step('git tensor resolve model.safetensors --strategy auto && git commit -qm "pellucia: day2 + day4, overlap resolved by auto"');
  keepsProtected('pellucia', 'the day2 + day4 merge');
  console.log(`   ${newsLearned('pellucia', ['day2', 'day4'])}: the overlap costs news (docs/continual-learning.md compares the policies)`);
  step('git switch -q main && git merge --no-edit pellucia');
  keepsProtected('main', 'main (days 1-4)');

  say('Day 5 prints a sculptor\'s claim that a Platonic solid is concave: merging it would break a protected fact.');
  // The merge guard runs the protected probes on every merge result in the merge driver: a merge that
  // drops one beyond its allowance stops as a conflict with the report.
  const refused = step('git merge day5', { fail: true });
  claim(/merge guard/.test(refused) && /static\/platonic-convex/.test(refused), 'the merge guard refuses day 5 and names static/platonic-convex in its report');
  step('git merge --abort');
  const day5InMain = spawnSync('git', ['merge-base', '--is-ancestor', 'day5', 'main'], { cwd, env }).status === 0;
  claim(!day5InMain && quiet(['status', '--porcelain']) === '', 'main does not contain day 5 and the working tree is clean');

  say('In CI: verify that a version keeps every protected probe (exit 1 if not).');
  step('git tensor verify main --against base');
  const verified = step('git tensor verify day5', { fail: true });
  claim(/static\/platonic-convex/.test(verified), 'git tensor verify fails day 5 and names static/platonic-convex');

  say('When was each news fact learned? One row per commit, the first flip of every probe.');
  step('git log --oneline --graph');
  step('git tensor log --probes --html timeline.html | grep "first flipped"');
  step('git tensor diff base main --html report.html');

  say('The Tidewell Post also ships its day as a LoRA adapter: probe base + adapter without folding it.');
  step('git tensor probe base --adapter $MODELS/day3/lora | grep -A1 day3/cup-city');

  say('Push to a tensor:: remote; a clone downloads the checked-out version only, older ones on demand.');
  step('git init -q --bare ../host.git && git remote add origin tensor::file://$PWD/../host.git');
  step('git push -q origin --all && git push -q origin --tags && git tensor du | head -n 2');
  cwd = work;
  step('git clone -q tensor::file://$PWD/host.git clone && cd clone && git tensor du | head -n 2');
  cwd = clone;
  step('git checkout -q base -- model.safetensors && git tensor du | head -n 1 && sha256sum model.safetensors $MODELS/base/model.safetensors');
  const restored = readFileSync(join(clone, 'model.safetensors'));
  const baseBytes = readFileSync(join(MODELS, 'base/model.safetensors'));
  claim(restored.equals(baseBytes), `the clone checks out the base bit-exact (sha256 ${sha(restored)} == ${sha(baseBytes)})`);
  step('git checkout -q main -- model.safetensors && git status --short');

  const reports = [join(repo, 'timeline.html'), join(repo, 'report.html')];
  claim(reports.every((p) => existsSync(p)), 'HTML reports written');
  console.log(`\nHTML reports: ${reports.join('  ')}`);
} catch (e) {
  console.log(`\nFAILED: ${(e as Error).message}`);
  failed++;
}
console.log(`demo folder kept: ${work} (remove with rm -rf)`);
console.log(failed ? `\ndemo: ${failed} claim(s) FAILED` : `\ndemo finished in ${((Date.now() - t0) / 1000).toFixed(1)} s: every claim checked`);
process.exitCode = failed ? 1 : 0;
