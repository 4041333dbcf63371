// The end-to-end demo behind `npm run demo`: a temp repository, git-tensor installed and tracking
// *.safetensors, two versions of a generated model committed with plain git, the first checked out
// again bit-exact, then `git tensor ls`, `git tensor du` and `git tensor fsck`.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeSafetensors } from '../src/format/safetensors.js';
import { benchEnv, tempDir } from './bench-lib.js';

const work = tempDir('demo');
const home = join(work, 'home');
mkdirSync(home);
writeFileSync(join(home, '.gitconfig'), '[init]\n\tdefaultBranch = main\n');
const repo = join(work, 'repo');
mkdirSync(repo);
const env = benchEnv(home);

function step(cmd: string): string {
  console.log(`\n$ ${cmd}`);
  const r = spawnSync('sh', ['-c', cmd], { cwd: repo, env, encoding: 'utf8' });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`demo step failed (exit ${r.status}): ${cmd}`);
  return r.stdout;
}

/** A small transformer-shaped model with deterministic weights (xorshift32, no Math.random). */
function model(version: number): Buffer {
  let s = 2463534242;
  const next = () => ((s ^= s << 13), (s ^= s >>> 17), (s ^= s << 5), (s >>> 0) / 2 ** 32 - 0.5);
  const f32 = (n: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = next() * 0.02;
    return a;
  };
  const tensors = [{ name: 'embed.weight', shape: [512, 256] }];
  for (let l = 0; l < 4; l++) {
    tensors.push({ name: `layers.${l}.attn.qkv.weight`, shape: [768, 256] }, { name: `layers.${l}.mlp.up.weight`, shape: [1024, 256] },
      { name: `layers.${l}.norm.weight`, shape: [256] });
  }
  return serializeSafetensors(tensors.map(({ name, shape }) => {
    const data = f32(shape.reduce((a, b) => a * b, 1));
    // Version 2 fine-tunes layer 3's MLP only, as a frozen-backbone fine-tune would.
    if (version === 2 && name === 'layers.3.mlp.up.weight') for (let i = 0; i < data.length; i += 7) data[i]! += 0.001;
    return { name, dtype: 'F32' as const, shape, data: new Uint8Array(data.buffer) };
  }), { format: 'pt', version: String(version) });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const v1 = model(1);
const v2 = model(2);

console.log(`demo repository: ${repo}`);
step('git init -q && git tensor install && git tensor track "*.safetensors"');
writeFileSync(join(repo, 'model.safetensors'), v1);
step('git add .gitattributes model.safetensors && git commit -qm "base model" && git log --oneline');
step('git show HEAD:model.safetensors | head -n 6');
writeFileSync(join(repo, 'model.safetensors'), v2);
step('git commit -qam "fine-tune layer 3 MLP" && git diff --stat HEAD~1 HEAD');
step('git checkout -q HEAD~1 -- model.safetensors && git status --short');
const restored = readFileSync(join(repo, 'model.safetensors'));
if (!restored.equals(v1)) throw new Error('demo: checkout did not restore the first version bit-exact');
console.log(`\nversion 1 restored bit-exact: sha256 ${sha(restored).slice(0, 16)} == ${sha(v1).slice(0, 16)}`);
step('git checkout -q HEAD -- model.safetensors');
step('git tensor ls HEAD model.safetensors');
step('git tensor du');
step('git tensor fsck');
rmSync(work, { recursive: true, force: true });
console.log('\ndemo finished: two versions stored, the second sharing all but one tensor with the first.');
