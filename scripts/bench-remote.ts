// Benchmark of moving models through a git host with a tensor:: remote (issue: "Push and clone models
// through any existing git host"). Usage: npx tsx scripts/bench-remote.ts [--mib 128] [--no-lfs]
//
// One smart-HTTP host (`git http-backend` behind a Node server, from test/helpers/servers.ts, which also
// speaks the Git LFS batch API so git-lfs can push the same files to the same server), and this session:
//   push a base checkpoint; push a sparse fine-tune of it (0.5% of the rows of every tensor changed);
//   clone; push 3 more fine-tunes and clone again (a clone downloads the checked-out version only).
// Bytes are counted by the server (request bodies of pushes, response bodies of fetches); peak RSS is the
// largest resident set of any process of the command (bounded: no pack is ever held whole in memory).

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Prng, toSafetensors, type TensorInput } from '../test/helpers/models.js';
import { hermeticEnv, startHttpServer, stopAllServers } from '../test/helpers/servers.js';
import { dirBytes, ensureDebian, MiB, printTable, tempDir } from './bench-lib.js';

const args = process.argv.slice(2);
const mib = Number(args[args.indexOf('--mib') + 1] ?? 128) || 128;
const withLfs = !args.includes('--no-lfs');
/** Host repositories that keep packs as received and never recompress (real hosts tune their own). */
const tunedHost = args.includes('--tuned-host');

const COLS = 4096;
const TENSORS = 16;

function baseModel(totalBytes: number): TensorInput[] {
  const rows = Math.max(4, Math.floor(totalBytes / TENSORS / (COLS * 4)));
  const prng = new Prng('bench-remote/base');
  return Array.from({ length: TENSORS }, (_, k) => ({ name: `layers.${k}.weight`, dtype: 'F32' as const, shape: [rows, COLS], data: prng.bytes(rows * COLS * 4) }));
}

/** A sparse fine-tune: `fraction` of the rows of every tensor get new values, the rest keep their bytes. */
function fineTune(tensors: TensorInput[], step: number, fraction = 0.005): TensorInput[] {
  const prng = new Prng(`bench-remote/ft${step}`);
  return tensors.map((t) => {
    const data = Buffer.from(t.data);
    const rows = t.shape[0]!;
    const rowBytes = COLS * 4;
    for (let n = 0; n < Math.max(1, Math.round(rows * fraction)); n++) {
      const r = prng.below(rows);
      for (let i = r * rowBytes; i < (r + 1) * rowBytes; i += 4) data.writeUInt32LE(prng.nextU32(), i);
    }
    return { ...t, data };
  });
}

const work = tempDir('bench-remote');
const home = join(work, 'home');
mkdirSync(home);
const env = hermeticEnv(home);
const lfs = withLfs && ensureDebian('git-lfs', 'git-lfs');

function git(cwd: string, argv: string[]): void {
  const r = spawnSync('git', argv, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`git ${argv.join(' ')} failed in ${cwd}: ${r.stderr.toString()}`);
}

/** Runs a git command and returns its wall time and the peak RSS of it and all its descendants. */
function timed(cwd: string, argv: string[], extraEnv: Record<string, string> = process.env.BENCH_TRACE ? { GIT_TENSOR_TRACE: '1' } : {}): { seconds: number; peakMiB: number } {
  const py = 'import resource,subprocess,sys,time\nt=time.time()\nr=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL)\n' +
    'print(time.time()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)';
  const r = spawnSync('python3', ['-c', py, 'git', ...argv], { cwd, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`git ${argv.join(' ')} failed in ${cwd}: ${r.stderr.toString()}`);
  if (extraEnv.GIT_TENSOR_TRACE) process.stderr.write(r.stderr.toString());
  const [seconds, kib] = r.stdout.toString().trim().split(/\s+/).map(Number);
  return { seconds: seconds!, peakMiB: kib! / 1024 };
}

function tune(bare: string): void {
  for (const [k, v] of [['core.compression', '0'], ['core.looseCompression', '0'], ['receive.unpackLimit', '1'], ['pack.window', '0']]) git(bare, ['config', k!, v!]);
}

git(work, ['config', '--global', 'user.name', 'bench']);
git(work, ['config', '--global', 'user.email', 'bench@example.com']);
git(work, ['config', '--global', 'init.defaultBranch', 'main']);
git(work, ['config', '--global', 'tensor.transferRetries', '0']);
if (lfs) git(work, ['lfs', 'install', '--skip-repo']);

const host = await startHttpServer();
try {
  const base = baseModel(mib * MiB);
  const versions = [base];
  for (let k = 1; k <= 4; k++) versions.push(fineTune(versions[k - 1]!, k));
  const files = versions.map((v) => toSafetensors(v, { format: 'pt' }));
  const size = files[0]!.length;
  const fmt = (b: number) => `${(b / MiB).toFixed(2)} MiB`;
  const secs = (s: number) => `${s.toFixed(2)} s`;

  // git-tensor through a tensor:: remote.
  const a = join(work, 'tensor-a');
  mkdirSync(a);
  git(a, ['init', '-q']);
  git(a, ['tensor', 'install']);
  git(a, ['tensor', 'track', '*.safetensors']);
  host.createRepo('tensor');
  if (tunedHost) tune(host.repoPath('tensor'));
  git(a, ['remote', 'add', 'origin', `tensor::${host.url('tensor')}`]);
  const storeOf = (dir: string) => dirBytes(join(dir, '.git', 'tensor', 'packs'));
  writeFileSync(join(a, 'model.safetensors'), files[0]!);
  git(a, ['add', '.']);
  git(a, ['commit', '-qm', 'base']);
  const baseStored = storeOf(a);
  host.resetStats();
  const tPushBase = timed(a, ['push', '-q', '-u', 'origin', 'main']);
  const pushBase = host.stats.pushedBytes;

  writeFileSync(join(a, 'model.safetensors'), files[1]!);
  git(a, ['commit', '-qam', 'fine-tune 1']);
  const changed = storeOf(a) - baseStored;
  host.resetStats();
  const tPushFt = timed(a, ['push', '-q']);
  const pushFt = host.stats.pushedBytes;

  host.resetStats();
  const tClone = timed(work, ['clone', '-q', `tensor::${host.url('tensor')}`, 'tensor-b']);
  const clone = host.stats.fetchedBytes;
  const cloneStore = storeOf(join(work, 'tensor-b'));

  for (let k = 2; k <= 4; k++) {
    writeFileSync(join(a, 'model.safetensors'), files[k]!);
    git(a, ['commit', '-qam', `fine-tune ${k}`]);
    git(a, ['tag', `ft${k}`]);
  }
  host.resetStats();
  git(a, ['push', '-q', '--tags', 'origin', 'main']);
  const multiPushes = host.stats.receivePacks;
  host.resetStats();
  const tClone5 = timed(work, ['clone', '-q', `tensor::${host.url('tensor')}`, 'tensor-c']);
  const clone5 = host.stats.fetchedBytes;
  const clone5Store = storeOf(join(work, 'tensor-c'));
  const historyStore = storeOf(a);
  const gitHistory = dirBytes(join(work, 'tensor-c', '.git', 'objects'));
  // The checked-out version's stored size: a store that holds that version alone.
  const storedAlone = (name: string, file: Buffer): number => {
    const alone = join(work, name);
    mkdirSync(alone);
    git(alone, ['init', '-q']);
    git(alone, ['tensor', 'install']);
    git(alone, ['tensor', 'track', '*.safetensors']);
    writeFileSync(join(alone, 'model.safetensors'), file);
    git(alone, ['add', '.']);
    git(alone, ['commit', '-qm', 'alone']);
    return storeOf(alone);
  };
  const v5Stored = storedAlone('tensor-alone', files[4]!);

  // git-lfs: the same files, to the same server (its LFS endpoint).
  const l = { pushBase: NaN, tPushBase: NaN, pushFt: NaN, tPushFt: NaN, clone: NaN, tClone: NaN, clone5: NaN, tClone5: NaN };
  if (lfs) {
    const d = join(work, 'lfs-a');
    mkdirSync(d);
    git(d, ['init', '-q']);
    git(d, ['lfs', 'track', '*.safetensors']);
    host.createRepo('lfs');
    if (tunedHost) tune(host.repoPath('lfs'));
    git(d, ['remote', 'add', 'origin', host.url('lfs')]);
    git(d, ['config', `lfs.${host.url('lfs')}/info/lfs.locksverify`, 'false']);
    writeFileSync(join(d, 'model.safetensors'), files[0]!);
    git(d, ['add', '.']);
    git(d, ['commit', '-qm', 'base']);
    host.resetStats();
    l.tPushBase = timed(d, ['push', '-q', '-u', 'origin', 'main']).seconds;
    l.pushBase = host.stats.pushedBytes;
    writeFileSync(join(d, 'model.safetensors'), files[1]!);
    git(d, ['commit', '-qam', 'fine-tune 1']);
    host.resetStats();
    l.tPushFt = timed(d, ['push', '-q']).seconds;
    l.pushFt = host.stats.pushedBytes;
    host.resetStats();
    l.tClone = timed(work, ['clone', '-q', host.url('lfs'), 'lfs-b']).seconds;
    l.clone = host.stats.fetchedBytes;
    for (let k = 2; k <= 4; k++) {
      writeFileSync(join(d, 'model.safetensors'), files[k]!);
      git(d, ['commit', '-qam', `fine-tune ${k}`]);
    }
    git(d, ['push', '-q']);
    host.resetStats();
    l.tClone5 = timed(work, ['clone', '-q', host.url('lfs'), 'lfs-c']).seconds;
    l.clone5 = host.stats.fetchedBytes;
  }
  // A clone of the oldest commit of that 3-commit push.
  host.resetStats();
  const tCloneOld = timed(work, ['clone', '-q', '--branch', 'ft2', `tensor::${host.url('tensor')}`, 'tensor-d']);
  const cloneOld = host.stats.fetchedBytes;
  const cloneOldStore = storeOf(join(work, 'tensor-d'));
  const ft2Stored = storedAlone('ft2-alone', files[2]!);

  // Dense versions (every tensor new) pushed in one `git push`, then a clone of each: issue 15's case.
  const dense = [0, 1, 2].map((k) => toSafetensors(baseModel(mib * MiB / 4).map((t) => ({ ...t, data: new Prng(`bench-remote/dense${k}/${t.name}`).bytes(t.data.length) })), { format: 'pt' }));
  const d = join(work, 'dense-a');
  mkdirSync(d);
  git(d, ['init', '-q']);
  git(d, ['tensor', 'install']);
  git(d, ['tensor', 'track', '*.safetensors']);
  host.createRepo('dense');
  if (tunedHost) tune(host.repoPath('dense'));
  git(d, ['remote', 'add', 'origin', `tensor::${host.url('dense')}`]);
  for (const [k, f] of dense.entries()) {
    writeFileSync(join(d, 'model.safetensors'), f);
    git(d, ['add', '.']);
    git(d, ['commit', '-qm', `dense ${k + 1}`]);
    git(d, ['tag', `d${k + 1}`]);
  }
  git(d, ['push', '-q', '--tags', 'origin', 'main']);
  const denseRows: string[][] = [];
  for (const k of [0, 1, 2]) {
    host.resetStats();
    const t = timed(work, ['clone', '-q', '--branch', `d${k + 1}`, `tensor::${host.url('dense')}`, `dense-clone-${k + 1}`]);
    const fetched = host.stats.fetchedBytes;
    const held = storeOf(join(work, `dense-clone-${k + 1}`));
    const one = storedAlone(`dense-alone-${k + 1}`, dense[k]!);
    const limit = 1.1 * one + 2 * MiB;
    denseRows.push([`clone of dense version ${k + 1} of 3 pushed at once`, `${fmt(fetched)} fetched, ${fmt(held)} held, ${secs(t.seconds)}`,
      `${fmt(limit)} (version alone: ${fmt(one)}; all 3: ${fmt(storeOf(d))})`, fetched <= limit && held <= limit ? 'yes' : 'NO']);
  }
  const na = 'not run (--no-lfs or git-lfs missing)';
  const lfsCell = (bytes: number, s: number) => (lfs ? `${fmt(bytes)} in ${secs(s)}` : na);

  printTable(`tensor:: remote vs git-lfs over smart HTTP (${fmt(size)} F32 checkpoint, fine-tunes change 0.5% of rows)`,
    ['step', 'checkpoint', 'git-tensor bytes', 'git-tensor time', 'peak RSS', 'git-lfs (same server)'], [
      ['push base', fmt(size), fmt(pushBase), secs(tPushBase.seconds), `${tPushBase.peakMiB.toFixed(0)} MiB`, lfsCell(l.pushBase, l.tPushBase)],
      ['push sparse fine-tune', fmt(files[1]!.length), fmt(pushFt), secs(tPushFt.seconds), `${tPushFt.peakMiB.toFixed(0)} MiB`, lfsCell(l.pushFt, l.tPushFt)],
      ['clone (2 versions on host)', fmt(files[1]!.length), fmt(clone), secs(tClone.seconds), `${tClone.peakMiB.toFixed(0)} MiB`, lfsCell(l.clone, l.tClone)],
      ['clone (5 versions on host)', fmt(files[4]!.length), fmt(clone5), secs(tClone5.seconds), `${tClone5.peakMiB.toFixed(0)} MiB`, lfsCell(l.clone5, l.tClone5)],
      ['clone of the oldest of 3 commits pushed at once', fmt(files[2]!.length), fmt(cloneOld), secs(tCloneOld.seconds), `${tCloneOld.peakMiB.toFixed(0)} MiB`, '-'],
    ]);
  printTable('Targets', ['target', 'measured', 'limit', 'met'], [
    ['fine-tune push bytes <= 1.1 x changed chunks + 1 MiB', fmt(pushFt), `${fmt(1.1 * changed + MiB)} (changed chunks as stored: ${fmt(changed)})`, pushFt <= 1.1 * changed + MiB ? 'yes' : 'NO'],
    ['5-version clone store <= 1.1 x checked-out version stored', fmt(clone5Store), `${fmt(1.1 * v5Stored)} (version alone: ${fmt(v5Stored)}; whole history: ${fmt(historyStore)})`, clone5Store <= 1.1 * v5Stored ? 'yes' : 'NO'],
    ['5-version clone: git history beside the store', fmt(gitHistory), '(pointers and commits only)', ''],
    ['2-version clone store', fmt(cloneStore), `${fmt(1.1 * baseStored)} (one version)`, cloneStore <= 1.1 * baseStored ? 'yes' : 'NO'],
    ['clone of the oldest of 3 fine-tunes pushed at once <= 1.1 x its stored size + 2 MiB', `${fmt(cloneOld)} fetched, ${fmt(cloneOldStore)} held`,
      `${fmt(1.1 * ft2Stored + 2 * MiB)} (version alone: ${fmt(ft2Stored)})`, cloneOld <= 1.1 * ft2Stored + 2 * MiB && cloneOldStore <= 1.1 * ft2Stored + 2 * MiB ? 'yes' : 'NO'],
    ['receive-pack requests of the 3-fine-tune push (packs, branch)', String(multiPushes), '', ''],
    ...denseRows,
  ]);
} finally {
  await stopAllServers();
}
