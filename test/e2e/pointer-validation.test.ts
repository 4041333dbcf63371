// A committed pointer edited by hand (or damaged) is refused by every command that reads it, with exit 3
// and a message naming the file, the tensor and `git tensor fsck`, and nothing wrong is written: checkout
// leaves no wrong-size file, diffs say what is wrong instead of crashing, merges stop with exit 3 instead
// of an internal error, and fsck lists the pointer. The edited pointers are committed with plumbing
// (`git hash-object --no-filters`, `git update-index --cacheinfo`), as a script or a bad tool would.

import { beforeAll, describe, expect, it } from 'vitest';

import { toSafetensors, type TensorInput } from '../helpers/models.js';
import { floatTensor, editValues, withTensors } from '../helpers/merge-models.js';
import { makeRepo, pointerAt, type Repo } from '../helpers/repo.js';

const FILE = 'model.safetensors';
const META = { format: 'pt', step: '100' };
/** Tensors of three different sizes. */
const base: TensorInput[] = [
  floatTensor('embed.weight', 'F32', [64, 32], 'base'),
  floatTensor('proj.weight', 'BF16', [32, 32], 'base'),
  floatTensor('norm.weight', 'F32', [32], 'base'),
];
const baseFile = toSafetensors(base, META);

type Edit = { name: string; edit: (pointer: string) => string; code: string; message: RegExp; tensor?: string };

function tensorIds(pointer: string): Record<string, string> {
  return Object.fromEntries([...pointer.matchAll(/^tensor "([^"]+)" \S+ \S+ ([0-9a-f]{64})$/gm)].map((m) => [m[1]!, m[2]!]));
}
const headerOf = (pointer: string) => /^header ([0-9a-f]{64}) (\d+)$/m.exec(pointer)!;

/** Every way of editing the pointer this file tests. */
const EDITS: Edit[] = [
  {
    name: 'a tensor id swapped for another tensor\'s (another size)',
    edit: (p) => p.replace(tensorIds(p)['embed.weight']!, tensorIds(p)['norm.weight']!),
    code: 'E_POINTER_MISMATCH', message: /tensor `embed\.weight` object \w+ holds 128 bytes, its dtype and shape need 8192/, tensor: 'embed.weight',
  },
  {
    name: 'a tensor id swapped for the header object\'s',
    edit: (p) => p.replace(tensorIds(p)['proj.weight']!, headerOf(p)[1]!),
    code: 'E_POINTER_MISMATCH', message: /tensor `proj\.weight` object \w+ holds \d+ bytes, its dtype and shape need 2048/, tensor: 'proj.weight',
  },
  {
    name: 'a wrong header length',
    edit: (p) => p.replace(headerOf(p)[0], `header ${headerOf(p)[1]} ${Number(headerOf(p)[2]) + 8}`),
    code: 'E_POINTER_MISMATCH', message: /header object \w+ holds \d+ bytes, the pointer says \d+/,
  },
  {
    name: 'edited metadata',
    edit: (p) => p.replace('meta "step" "100"', 'meta "step" "200"'),
    code: 'E_POINTER_MISMATCH', message: /metadata lines say .*"200".* the header's __metadata__ .*"100"/,
  },
  {
    name: 'an unknown dtype',
    edit: (p) => p.replace('"proj.weight" BF16', '"proj.weight" BF17'),
    code: 'E_POINTER_INVALID', message: /tensor `proj\.weight` has unknown dtype BF17/, tensor: 'proj.weight',
  },
  {
    name: 'a tensor name listed twice',
    edit: (p) => p.replace('tensor "norm.weight"', 'tensor "embed.weight"'),
    code: 'E_POINTER_INVALID', message: /tensor `embed\.weight` is listed twice/, tensor: 'embed.weight',
  },
];

/** Commits `text` as the pointer of FILE without running clean (which would refuse it). */
function commitPointer(repo: Repo, text: string, message: string): void {
  const blob = repo.git(['hash-object', '-w', '--no-filters', '--stdin'], { input: text }).stdout.trim();
  repo.git(['update-index', '--cacheinfo', `100644,${blob},${FILE}`]);
  repo.git(['commit', '-q', '-m', message]);
}

function expectRefusal(r: { status: number; stdout: string; stderr: string }, e: Edit, status = 3): void {
  const out = r.stdout + r.stderr;
  expect(r.status, out).toBe(status);
  expect(out).toContain(`error[${e.code}]`);
  expect(out).toContain(FILE);
  expect(out).toMatch(e.message);
  expect(out).toContain('git tensor fsck');
  expect(out).not.toMatch(/RangeError|internal error|at .*\.js:\d+/);
}

describe.each(EDITS)('a committed pointer with $name', (e) => {
  let repo: Repo;
  let good: string;
  let bad: string;
  beforeAll(() => {
    repo = makeRepo({ scope: 'file' });
    repo.write(FILE, baseFile);
    repo.commit([FILE], 'base model');
    good = repo.git(['rev-parse', 'HEAD']).stdout.trim();
    const pointer = pointerAt(repo, 'HEAD', FILE);
    const edited = e.edit(pointer);
    expect(edited, 'the edit changed the pointer').not.toBe(pointer);
    repo.git(['switch', '-q', '-c', 'edited']);
    commitPointer(repo, edited, 'hand-edited pointer');
    bad = repo.git(['rev-parse', 'HEAD']).stdout.trim();
    repo.git(['switch', '-q', '-f', 'main']);
  });

  it('`git checkout` refuses it: non-zero, the file and tensor named, no wrong-size file left', () => {
    expect(repo.read(FILE).equals(baseFile)).toBe(true);
    const r = repo.git(['checkout', '-q', bad, '--', FILE], { allowFail: true });
    expect(r.status, r.stderr).not.toBe(0);
    expect(r.stderr).toContain(`error[${e.code}]`);
    expect(r.stderr).toMatch(e.message);
    if (e.tensor) expect(r.stderr).toContain(e.tensor);
    expect(r.stderr).toContain('git tensor fsck');
    // Whatever git left there, it is not a file of the wrong bytes: either the intact checkpoint or nothing.
    if (repo.exists(FILE)) expect(repo.read(FILE).equals(baseFile), 'the working file keeps its intact bytes').toBe(true);

    // Switching the whole branch fails the same way and stays on main (git removes the file it could not
    // write: nothing, rather than wrong bytes); `git checkout -- FILE` brings the intact version back.
    const s = repo.git(['switch', '-q', 'edited'], { allowFail: true });
    expect(s.status).not.toBe(0);
    expect(s.stderr).toMatch(e.message);
    expect(repo.git(['rev-parse', '--abbrev-ref', 'HEAD']).stdout.trim()).toBe('main');
    if (repo.exists(FILE)) expect(repo.read(FILE).equals(baseFile)).toBe(true);
    repo.git(['checkout', '--', FILE]);
    expect(repo.read(FILE).equals(baseFile)).toBe(true);
    expect(repo.git(['status', '--porcelain']).stdout).toBe('');
  });

  it('`git tensor diff` and `git diff` say what is wrong instead of crashing', () => {
    expectRefusal(repo.gitTensor(['diff', good, bad], { allowFail: true }), e);
    // git's external diff driver reports the file and lets git go on (docs/diff.md).
    const d = repo.git(['diff', good, bad], { allowFail: true });
    expect(d.stdout + d.stderr).toContain(`git-tensor: cannot compare ${FILE}`);
    expect(d.stdout + d.stderr).toMatch(e.message);
    expect(d.stdout + d.stderr).not.toMatch(/RangeError|internal error/);
  });

  it('`git merge` stops with the merge driver\'s exit 3, and the working file stays ours', () => {
    // main fine-tunes the model; the edited branch brings the bad pointer.
    repo.git(['reset', '-q', '--hard', good]);
    const ours = toSafetensors(withTensors(base, [editValues(base[0]!, 'main')]), META);
    repo.write(FILE, ours);
    repo.commit([FILE], 'fine-tune');
    const head = repo.git(['rev-parse', 'HEAD']).stdout.trim();
    const r = repo.git(['merge', '--no-edit', 'edited'], { allowFail: true });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`error[${e.code}]`);
    expect(r.stderr).toMatch(e.message);
    expect(r.stderr).not.toMatch(/RangeError|internal error/);
    expect(repo.read(FILE).equals(ours), 'the working file is ours, byte for byte').toBe(true);
    repo.git(['merge', '--abort']);
    expect(repo.git(['rev-parse', 'HEAD']).stdout.trim()).toBe(head);
    expect(repo.git(['status', '--porcelain']).stdout).toBe('');

    // The driver itself, as git runs it: exit 3 (malformed input), %A untouched.
    const dir = repo.path('.git');
    repo.write('.git/o', pointerAt(repo, good, FILE));
    repo.write('.git/a', pointerAt(repo, head, FILE));
    repo.write('.git/b', pointerAt(repo, bad, FILE));
    const a = repo.read('.git/a');
    const driver = repo.gitTensor(['merge-driver', `${dir}/o`, `${dir}/a`, `${dir}/b`, FILE], { allowFail: true });
    expectRefusal(driver, e);
    expect(repo.read('.git/a').equals(a)).toBe(true);
  });

  it('`git tensor fsck` lists it as a bad pointer', () => {
    repo.git(['reset', '-q', '--hard', good]);
    const r = repo.gitTensor(['fsck', '--all'], { allowFail: true });
    expect(r.status, r.stdout + r.stderr).toBe(5);
    expect(r.stdout).toMatch(/bad pointer /);
    expect(r.stdout).toMatch(e.message);
    // At the intact commit, fsck of HEAD alone is clean.
    expect(repo.gitTensor(['fsck']).status).toBe(0);
  });

  it('`git add` of the edited pointer text is refused rather than committed', () => {
    repo.git(['reset', '-q', '--hard', good]);
    repo.write(FILE, e.edit(pointerAt(repo, good, FILE)));
    const r = repo.git(['add', FILE], { allowFail: true });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(e.message);
    expect(repo.git(['diff', '--cached', '--name-only']).stdout).toBe('');
    repo.git(['checkout', '--', FILE]);
    expect(repo.read(FILE).equals(baseFile)).toBe(true);
  });
});
