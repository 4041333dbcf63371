// Things go wrong: broken files, pointers where checkpoints were expected, a lost or damaged store, a
// `git add` killed halfway. The user gets a clear refusal that names the file and the next step, and
// neither the index nor the store is ever left half-written.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, cpSync, existsSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { largeModel, makeTensor, replaceTensors, tinyModel, toSafetensors } from '../helpers/models.js';
import { canMount, mountTmpfs } from '../helpers/tmpfs.js';
import { gitAsync, makeRepo, pointerAt, pointerTensors, type Repo } from '../helpers/repo.js';

const good = toSafetensors(tinyModel({ seed: 'faults' }), { format: 'pt' });

/** A repository with one committed checkpoint, so that the store and the index have something to lose. */
function repoWithModel(): Repo {
  const repo = makeRepo();
  repo.write('model.safetensors', good);
  repo.commit(['model.safetensors'], 'model');
  return repo;
}

interface Snapshot {
  index: string;
  packs: string[];
  head: string;
}

function snapshot(repo: Repo): Snapshot {
  return {
    index: repo.git(['ls-files', '--stage']).stdout,
    packs: repo.packFiles(),
    head: repo.git(['rev-parse', 'HEAD']).stdout,
  };
}

function expectFsckClean(repo: Repo): void {
  const r = repo.gitTensor(['fsck', '--json'], { allowFail: true });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  const report = JSON.parse(r.stdout) as { corrupt: unknown[]; missing: unknown[]; leftoverTempFiles: string[] };
  expect(report.corrupt).toEqual([]);
  expect(report.missing).toEqual([]);
}

/** A header (JSON text, space-padded to a multiple of 8) followed by `data`, with a correct length prefix. */
function withHeader(json: string, data: Buffer): Buffer {
  const text = Buffer.from(json, 'utf8');
  const header = Buffer.alloc(Math.ceil(text.length / 8) * 8, 0x20);
  text.copy(header);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([prefix, header, data]);
}

describe('git add refuses a broken safetensors file', () => {
  const cases: { what: string; bytes: () => Buffer; problem: RegExp }[] = [
    { what: 'truncated in the data section', bytes: () => good.subarray(0, good.length - 100), problem: /truncat|ends inside/i },
    { what: 'truncated inside the header', bytes: () => good.subarray(0, 40), problem: /truncat|header/i },
    {
      what: 'with a header length prefix over the size limit',
      bytes: () => {
        const b = Buffer.from(good);
        b.writeBigUInt64LE(1n << 40n, 0);
        return b;
      },
      problem: /header length .*(exceeds|limit|too large)/i,
    },
    {
      what: 'with a header length prefix past the end of the file',
      bytes: () => {
        const b = Buffer.from(good);
        b.writeBigUInt64LE(BigInt(good.length + 1000), 0);
        return b;
      },
      problem: /header|truncat/i,
    },
    {
      what: 'with a header that is not JSON',
      bytes: () => withHeader('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', Buffer.alloc(8)),
      problem: /JSON/,
    },
  ];

  for (const c of cases) {
    it(c.what, () => {
      const repo = repoWithModel();
      const before = snapshot(repo);
      repo.write('broken.safetensors', c.bytes());
      const add = repo.git(['add', 'broken.safetensors'], { allowFail: true });

      expect(add.status).not.toBe(0);
      expect(add.stderr).toContain('broken.safetensors');
      expect(add.stderr).toMatch(c.problem);
      expect(add.stderr).toMatch(/^hint: /m);
      expect(add.stderr).not.toMatch(/internal error|    at /);

      expect(snapshot(repo)).toEqual(before);
      expect(repo.git(['status', '--porcelain']).stdout).toBe('?? broken.safetensors\n');
      expectFsckClean(repo);
      expect(readdirSync(join(repo.storeDir, 'tmp'))).toEqual([]);
    });
  }

  it('and still adds the good files given with it', () => {
    const repo = repoWithModel();
    const other = toSafetensors([makeTensor('x', 'F32', [4])]);
    repo.write('other.safetensors', other);
    repo.write('broken.safetensors', good.subarray(0, good.length - 1));
    const add = repo.git(['add', 'other.safetensors', 'broken.safetensors'], { allowFail: true });
    expect(add.status).not.toBe(0);
    expect(add.stderr).toContain('broken.safetensors');
    // git stops at the first failing file; whatever it did add must be a valid pointer that checks out.
    const staged = repo.git(['ls-files', '--', 'other.safetensors']).stdout;
    if (staged) {
      expect(repo.git(['cat-file', 'blob', ':other.safetensors']).stdout.startsWith('git-tensor v1 safetensors\n')).toBe(true);
    }
    expectFsckClean(repo);
  });
});

describe('pointers in the working tree', () => {
  it('GIT_TENSOR_SKIP_SMUDGE=1 checkout leaves the pointer text, and git status stays clean', () => {
    const repo = repoWithModel();
    const pointer = pointerAt(repo, 'HEAD', 'model.safetensors');
    repo.remove('model.safetensors');
    repo.git(['checkout', '--', 'model.safetensors'], { env: { GIT_TENSOR_SKIP_SMUDGE: '1' } });
    expect(repo.read('model.safetensors').toString('utf8')).toBe(pointer);
    expect(repo.git(['status', '--porcelain']).stdout).toBe('');

    // A branch switch with the variable set does the same for every tracked file it writes.
    repo.git(['switch', '-q', '-c', 'v2']);
    repo.write('model.safetensors', toSafetensors(replaceTensors(tinyModel({ seed: 'faults' }), ['lm_head.weight']), { format: 'pt' }));
    repo.commit(['model.safetensors'], 'v2');
    repo.git(['switch', '-q', 'main'], { env: { GIT_TENSOR_SKIP_SMUDGE: '1' } });
    expect(repo.read('model.safetensors').toString('utf8')).toBe(pointer);

    // Without the variable the real bytes come back.
    repo.remove('model.safetensors');
    repo.git(['checkout', '--', 'model.safetensors']);
    expect(repo.read('model.safetensors').equals(good)).toBe(true);
  });

  it('a pointer given to git add passes through unchanged', () => {
    const repo = repoWithModel();
    const blob = repo.git(['rev-parse', 'HEAD:model.safetensors']).stdout;
    repo.remove('model.safetensors');
    repo.git(['checkout', '--', 'model.safetensors'], { env: { GIT_TENSOR_SKIP_SMUDGE: '1' } });
    // Make git read the file again rather than trust the stat cache.
    repo.git(['rm', '-q', '--cached', 'model.safetensors']);
    repo.git(['add', 'model.safetensors']);
    expect(repo.git(['rev-parse', ':model.safetensors']).stdout).toBe(blob);
    expect(repo.git(['status', '--porcelain']).stdout).toBe('');

    // The same pointer text under another tracked name is the same blob and checks out as the model.
    repo.write('copy.safetensors', pointerAt(repo, 'HEAD', 'model.safetensors'));
    repo.commit(['copy.safetensors'], 'pointer copy');
    expect(repo.git(['rev-parse', 'HEAD:copy.safetensors']).stdout).toBe(blob);
    repo.remove('copy.safetensors');
    repo.git(['checkout', '--', 'copy.safetensors']);
    expect(repo.read('copy.safetensors').equals(good)).toBe(true);
  });

  it('a pointer with conflict markers is refused by git add with a conflict message', () => {
    const repo = repoWithModel();
    const ours = pointerAt(repo, 'HEAD', 'model.safetensors');
    repo.write('model.safetensors', toSafetensors(replaceTensors(tinyModel({ seed: 'faults' }), ['model.norm.weight'])));
    repo.commit(['model.safetensors'], 'theirs');
    const theirs = pointerAt(repo, 'HEAD', 'model.safetensors');
    const before = snapshot(repo);

    const common = ours.split('\n').filter((l) => theirs.split('\n').includes(l));
    const conflicted = [
      ...common.slice(0, 3),
      '<<<<<<< HEAD',
      ...ours.split('\n').filter((l) => l && !common.includes(l)),
      '=======',
      ...theirs.split('\n').filter((l) => l && !common.includes(l)),
      '>>>>>>> theirs',
      ...common.slice(3),
    ].join('\n');
    repo.write('model.safetensors', conflicted);
    const add = repo.git(['add', 'model.safetensors'], { allowFail: true });
    expect(add.status).not.toBe(0);
    expect(add.stderr).toContain('model.safetensors');
    expect(add.stderr).toMatch(/conflict/i);
    expect(add.stderr).toMatch(/^hint: .*(resolve|--ours|--theirs)/m);
    expect(snapshot(repo)).toEqual(before);
  });

  it('a pointer that starts with a conflict marker line is refused too', () => {
    const repo = repoWithModel();
    const pointer = pointerAt(repo, 'HEAD', 'model.safetensors');
    repo.write('model.safetensors', `<<<<<<< HEAD\n${pointer}=======\n${pointer.replace(/[0-9a-f]{64}/, 'f'.repeat(64))}>>>>>>> other\n`);
    const add = repo.git(['add', 'model.safetensors'], { allowFail: true });
    expect(add.status).not.toBe(0);
    expect(add.stderr).toMatch(/conflict/i);
    expect(add.stderr).toContain('model.safetensors');
  });
});

describe('pointers git-tensor cannot use', () => {
  /** Commits `text` as the blob of `path` without running the clean filter (as another tool might). */
  function commitRawBlob(repo: Repo, path: string, text: string): void {
    const oid = repo.git(['hash-object', '-w', '--no-filters', '--stdin'], { input: text }).stdout.trim();
    repo.git(['update-index', '--add', '--cacheinfo', `100644,${oid},${path}`]);
    repo.git(['commit', '-q', '-m', `raw ${path}`]);
  }

  it('a pointer written by a newer git-tensor asks for an upgrade instead of posing as a broken file', () => {
    const repo = repoWithModel();
    const future = pointerAt(repo, 'HEAD', 'model.safetensors').replace(/^git-tensor v1 /, 'git-tensor v2 ');
    commitRawBlob(repo, 'future.safetensors', future);
    repo.remove('future.safetensors');
    const checkout = repo.git(['checkout', '--', 'future.safetensors'], { allowFail: true });
    const status = repo.git(['status', '--porcelain'], { allowFail: true });
    const said = checkout.stderr + status.stderr;
    expect(said).toMatch(/version/i);
    expect(said).toMatch(/upgrade git-tensor/i);
    expect(said).not.toMatch(/E_ST_HEADER_TOO_LARGE|not a safetensors file/);
    // Whatever checkout did, `git status` must keep working in this repository.
    expect(status.status, status.stderr).toBe(0);
  });

  it('a hand-edited pointer (wrong shape) is refused at checkout naming the tensor, and fsck reports it', () => {
    const repo = repoWithModel();
    const edited = pointerAt(repo, 'HEAD', 'model.safetensors').replace('"lm_head.weight" F32 [64,32]', '"lm_head.weight" F32 [32,64]');
    expect(edited).toContain('[32,64]');
    // git add refuses such a pointer (validatePointer on clean), so it is committed as a raw blob.
    commitRawBlob(repo, 'model.safetensors', edited);
    repo.remove('model.safetensors');
    const checkout = repo.git(['checkout', '--', 'model.safetensors'], { allowFail: true });
    expect(checkout.status).not.toBe(0);
    expect(checkout.stderr).toContain('model.safetensors');
    expect(checkout.stderr).toContain('lm_head.weight');
    expect(checkout.stderr).toMatch(/^hint: /m);

    const fsck = repo.gitTensor(['fsck'], { allowFail: true });
    expect(fsck.status, fsck.stdout).not.toBe(0);
    expect(fsck.stdout).toContain('model.safetensors');
  });
});

describe('a lost or damaged store', () => {
  it('after deleting .git/tensor, checkout fails naming the missing objects and `git tensor fetch`', () => {
    const repo = repoWithModel();
    const ids = pointerTensors(pointerAt(repo, 'HEAD', 'model.safetensors')).map((t) => t.id);
    rmSync(repo.storeDir, { recursive: true, force: true });
    repo.remove('model.safetensors');
    const r = repo.git(['checkout', '--', 'model.safetensors'], { allowFail: true });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('model.safetensors');
    expect(r.stderr).toMatch(/missing/i);
    expect(ids.some((id) => r.stderr.includes(id.slice(0, 16)))).toBe(true);
    expect(r.stderr).toContain('git tensor fetch');
    // No file with wrong content was left behind for the user to mistake for the model.
    expect(repo.exists('model.safetensors')).toBe(false);

    const fsck = repo.gitTensor(['fsck'], { allowFail: true });
    expect(fsck.status).toBe(4);
    expect(fsck.stdout).toContain(ids[0]!);
  });

  it.each([
    ['through git', undefined],
    ['written by git-tensor (tensor.checkoutThreshold=0)', '0'],
  ])('one corrupted byte in a pack: fsck exits 5 naming the object, checkout %s refuses the bad bytes', (_how, threshold) => {
    const repo = makeRepo();
    if (threshold !== undefined) repo.git(['config', 'tensor.checkoutThreshold', threshold]);
    const victim = makeTensor('victim.weight', 'F32', [64, 64], 'faults/victim');
    const bytes = toSafetensors([victim, makeTensor('other.weight', 'F32', [64, 64], 'faults/other')]);
    repo.write('model.safetensors', bytes);
    repo.commit(['model.safetensors'], 'model');
    const victimId = pointerTensors(pointerAt(repo, 'HEAD', 'model.safetensors')).find((t) => t.name === 'victim.weight')!.id;
    expectFsckClean(repo);

    // Find the victim's bytes in a pack (random data: unique) and flip one bit in the middle of them.
    const packsDir = join(repo.storeDir, 'packs');
    const needle = Buffer.from(victim.data).subarray(1000, 1064);
    let hit: { file: string; at: number } | undefined;
    for (const f of readdirSync(packsDir)) {
      const at = readFileSync(join(packsDir, f)).indexOf(needle);
      if (at >= 0) hit = { file: join(packsDir, f), at: at + 32 };
    }
    expect(hit, 'the tensor bytes should be stored uncompressed in a pack (update this test if packs compress)').toBeDefined();
    chmodSync(hit!.file, 0o644);
    const fd = openSync(hit!.file, 'r+');
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, hit!.at);
    one[0]! ^= 0x10;
    writeSync(fd, one, 0, 1, hit!.at);
    closeSync(fd);

    const fsck = repo.gitTensor(['fsck'], { allowFail: true });
    expect(fsck.status).toBe(5);
    expect(fsck.stdout).toContain(victimId);
    expect(fsck.stdout).toMatch(/corrupt/i);
    expect(fsck.stdout).toContain('hint:');

    repo.remove('model.safetensors');
    const checkout = repo.git(['checkout', '--', 'model.safetensors'], { allowFail: true });
    expect(checkout.stderr).toMatch(/corrupt/i);
    expect(checkout.stderr).toContain(victimId.slice(0, 16));
    if (threshold === undefined) {
      expect(checkout.status).not.toBe(0);
      // The damaged bytes never reach the working tree.
      expect(repo.exists('model.safetensors')).toBe(false);
    } else {
      // git-tensor writes the file after git has finished, so git's status cannot report the failure
      // (docs/store.md, "Checkout of large files"): the file keeps its pointer, and says so; the
      // command that finishes the checkout fails the same way.
      expect(checkout.stderr).toContain('git tensor checkout');
      expect(readFileSync(join(repo.dir, 'model.safetensors'), 'utf8')).toMatch(/^git-tensor/);
      const again = repo.gitTensor(['checkout'], { allowFail: true });
      expect(again.status).toBe(5);
      expect(again.stderr).toContain(victimId.slice(0, 16));
    }
  });
});

describe('a killed git add', () => {
  it('leaves the store and repository usable, and a re-run round-trips', async () => {
    const repo = repoWithModel();
    const before = snapshot(repo);
    const big = largeModel(200 * 1024 * 1024, 'kill');
    repo.write('big.safetensors', big);

    // git and its git-tensor filter share a new process group, killed together as a crash would.
    const child = spawn('git', ['add', 'big.safetensors'], { cwd: repo.dir, env: repo.env, detached: true, stdio: 'ignore' });
    let running = true;
    const exited = new Promise<void>((resolve) => child.on('exit', () => ((running = false), resolve())));
    // Kill it once the filter has started writing its temp pack (a crash mid-write).
    const tmp = join(repo.storeDir, 'tmp');
    while (running && !readdirSync(tmp).some((f) => f.startsWith('.pack.'))) await new Promise((resolve) => setTimeout(resolve, 20));
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already finished: the rest of the test still holds.
    }
    await exited;
    // The filter child was signalled with its group; wait until it has died (SIGKILL takes effect once
    // the process leaves the kernel, e.g. after an fsync), as the writers of the temp files it left.
    const writerGone = (name: string): boolean => {
      const pid = /\.(\d+)@/.exec(name)?.[1];
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      } catch {
        return true; // gone (or no /proc: nothing to wait for)
      }
      return !pid || /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
    };
    while (!readdirSync(tmp).every(writerGone)) await new Promise((resolve) => setTimeout(resolve, 50));

    expectFsckClean(repo);
    // Git's own lock, left by the kill; git's message tells the user to remove it, and so do we.
    const lock = join(repo.dir, '.git', 'index.lock');
    const status = repo.git(['status', '--porcelain']);
    expect(status.status).toBe(0);
    if (existsSync(lock)) rmSync(lock);
    // Either nothing was staged, or the whole file was: never a half-written pointer.
    const staged = repo.git(['ls-files', '--stage']).stdout;
    if (staged !== before.index) {
      expect(repo.git(['cat-file', 'blob', ':big.safetensors']).stdout.startsWith('git-tensor v1 safetensors\n')).toBe(true);
    }

    await gitAsync(repo, ['add', 'big.safetensors']);
    // The re-run's first write removed the temp pack the killed filter left (up to the file's size).
    expect(readdirSync(tmp)).toEqual([]);
    await gitAsync(repo, ['commit', '-q', '-m', 'big']);
    repo.remove('big.safetensors');
    await gitAsync(repo, ['checkout', '--', 'big.safetensors']);
    expect(statSync(repo.path('big.safetensors')).size).toBe(big.length);
    expect(repo.read('big.safetensors').equals(big)).toBe(true);
    expect((await gitAsync(repo, ['status', '--porcelain'])).stdout).toBe('');
    const fsck = await gitAsync(repo, ['tensor', 'fsck'], { allowFail: true });
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);
  });
});

describe('damage to a pack outside any object', () => {
  /** The repository's one pack file, made writable for the test to damage it. */
  function onlyPack(repo: Repo): string {
    const packs = repo.packFiles().filter((f) => f.endsWith('.pack'));
    expect(packs).toHaveLength(1);
    const file = join(repo.storeDir, 'packs', packs[0]!);
    chmodSync(file, 0o644);
    return file;
  }

  function patch(file: string, at: number, byte: (old: number) => number): void {
    const fd = openSync(file, 'r+');
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, at);
    one[0] = byte(one[0]!);
    writeSync(fd, one, 0, 1, at);
    closeSync(fd);
  }

  it('a damaged pack magic: fsck exits 5 naming the pack', () => {
    const repo = repoWithModel();
    const pack = onlyPack(repo);
    patch(pack, 0, () => 0x58);
    const fsck = repo.gitTensor(['fsck'], { allowFail: true });
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(5);
    expect(fsck.stdout).toContain(pack);
    expect(fsck.stdout).toMatch(/corrupt pack .*magic/);
    expect(fsck.stdout).toMatch(/^hint: /m);
  });

  it('an unknown pack version: fsck exits 5 naming the pack', () => {
    const repo = repoWithModel();
    const pack = onlyPack(repo);
    patch(pack, 7, () => 9);
    const fsck = repo.gitTensor(['fsck'], { allowFail: true });
    expect(fsck.status).toBe(5);
    expect(fsck.stdout).toMatch(/corrupt pack .*version 9/);
  });

  it('a damaged entry header (every payload still intact): fsck exits 5 naming the pack and the entry', () => {
    const repo = repoWithModel();
    const pack = onlyPack(repo);
    // The first entry starts after the 8-byte magic; its byte 0 is the encoding (docs/store.md).
    patch(pack, 8, (b) => b ^ 0x40);
    const fsck = repo.gitTensor(['fsck', '--json'], { allowFail: true });
    expect(fsck.status).toBe(5);
    const report = JSON.parse(fsck.stdout) as { corruptPacks: { pack: string; problem: string }[]; corrupt: unknown[] };
    expect(report.corruptPacks).toEqual([{ pack, problem: expect.stringMatching(/entry header at byte 8 .*encoding/) }]);
    // The objects themselves read and verify: only the pack-level check could find this.
    expect(report.corrupt).toEqual([]);
  });

  it('a deleted pack (its index still there): fsck exits 4 "missing", not 5, with a hint', () => {
    const repo = repoWithModel();
    const pack = onlyPack(repo);
    rmSync(pack);
    const fsck = repo.gitTensor(['fsck'], { allowFail: true });
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(4);
    expect(fsck.stdout).toContain(`missing pack ${pack}`);
    expect(fsck.stdout).toMatch(/missing object [0-9a-f]{64} needed by model\.safetensors/);
    expect(fsck.stdout).not.toMatch(/corrupt/);
    expect(fsck.stdout).toMatch(/^hint: .*git tensor fetch/m);
  });
});

describe('temp files of dead writers', () => {
  const host = hostname().replace(/[^A-Za-z0-9-]/g, '_');

  it('the next git add removes those of writers that are gone, and keeps a running writer\'s', () => {
    const repo = repoWithModel();
    const tmp = join(repo.storeDir, 'tmp');
    // A pid that was just used and has exited: what `kill -9` leaves.
    const deadPid = spawnSync('true').pid!;
    const dead = `.pack.${deadPid}@${host}.deadbeef.tmp`;
    const live = `.pack.${process.pid}@${host}.cafebabe.tmp`;
    const elsewhere = `.pack.${deadPid}@another-host.0badf00d.tmp`;
    for (const name of [dead, live, elsewhere]) writeFileSync(join(tmp, name), Buffer.alloc(1 << 20));

    repo.write('other.safetensors', toSafetensors([makeTensor('x', 'F32', [8])]));
    repo.git(['add', 'other.safetensors']);
    expect(readdirSync(tmp).sort()).toEqual([live, elsewhere].sort());
  });

  it('gc removes them too', () => {
    const repo = repoWithModel();
    const tmp = join(repo.storeDir, 'tmp');
    const deadPid = spawnSync('true').pid!;
    writeFileSync(join(tmp, `.idx.${deadPid}@${host}.12345678.tmp`), 'partial');
    const report = JSON.parse(repo.gitTensor(['gc', '--json']).stdout) as { leftoversRemoved: number };
    expect(report.leftoversRemoved).toBe(1);
    expect(readdirSync(tmp)).toEqual([]);
  });
});


describe.skipIf(!canMount)('a full disk (needs root to mount a small tmpfs over .git/tensor)', () => {
  it('git add fails with E_DISK_FULL naming the file and the store, no stack trace, and nothing changes', () => {
    const repo = repoWithModel();
    // The store moves onto a tmpfs with 256 KiB to spare; the new file needs megabytes.
    const saved = join(repo.root, 'store-copy');
    cpSync(repo.storeDir, saved, { recursive: true });
    const used = readdirSync(join(saved, 'packs')).reduce((n, f) => n + statSync(join(saved, 'packs', f)).size, 0);
    expect(mountTmpfs(repo.storeDir, used + (256 << 10) + (64 << 10))).toBe(true);
    try {
      cpSync(saved, repo.storeDir, { recursive: true });
      const before = snapshot(repo);
      repo.write('big.safetensors', toSafetensors([makeTensor('big.weight', 'F32', [1024, 1024], 'faults/full')]));

      const add = repo.git(['add', 'big.safetensors'], { allowFail: true });
      expect(add.status).not.toBe(0);
      expect(add.stderr).toContain('error[E_DISK_FULL]');
      expect(add.stderr).toContain('big.safetensors');
      expect(add.stderr).toContain(repo.storeDir);
      expect(add.stderr).toMatch(/^hint: Free space .*`git tensor gc`.*`git add big\.safetensors`/m);
      expect(add.stderr).not.toMatch(/internal error|    at /);

      expect(snapshot(repo)).toEqual(before);
      expect(repo.git(['status', '--porcelain']).stdout).toBe('?? big.safetensors\n');
      expect(readdirSync(join(repo.storeDir, 'tmp'))).toEqual([]);
      expectFsckClean(repo);
    } finally {
      spawnSync('umount', [repo.storeDir]);
    }
  });
});
