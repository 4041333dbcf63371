// A user explores the `git tensor` commands: help, install/uninstall, track/untrack, and the read-only
// commands that describe what is committed (ls, show, du, doctor), in text and as JSON.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTensor, randomBytes, replaceTensors, tinyModel, toSafetensors } from '../helpers/models.js';
import { makeRepo, PROJECT_ROOT, run } from '../helpers/repo.js';

const COMMANDS = ['install', 'uninstall', 'track', 'untrack', 'ls', 'show', 'du', 'fsck', 'doctor'];

describe('help', () => {
  it('`git tensor -h` lists every command', () => {
    const repo = makeRepo({ install: false, track: false });
    const r = repo.gitTensor(['-h']);
    for (const c of COMMANDS) expect(r.stdout, c).toMatch(new RegExp(`git tensor ${c}\\b`));
    expect(r.stdout).not.toContain('filter-process');
  });

  it('`git tensor --help` lists every command', () => {
    // git turns `git tensor --help` into `git help tensor` (a man page lookup) before git-tensor runs;
    // the usage errors of git-tensor point users to this exact command, so it must work.
    const repo = makeRepo({ install: false, track: false });
    const r = repo.gitTensor(['--help'], { allowFail: true, env: { MANPAGER: 'cat', MANWIDTH: '100' } });
    expect(r.status, r.stderr).toBe(0);
    for (const c of COMMANDS) expect(r.stdout, c).toContain(c);
  });

  it('`git-tensor --help` (the binary) lists every command', () => {
    const repo = makeRepo({ install: false, track: false });
    const r = run('git-tensor', ['--help'], repo.dir, repo.env);
    for (const c of COMMANDS) expect(r.stdout, c).toMatch(new RegExp(`git tensor ${c}\\b`));
  });

  it.each(COMMANDS)('`git tensor %s --help` describes the command', (command) => {
    const repo = makeRepo({ install: false, track: false });
    const r = repo.gitTensor([command, '--help']);
    expect(r.stdout).toContain(`git tensor ${command}`);
    expect(r.stdout).toContain('--help');
    expect(r.stderr).toBe('');
  });

  it('a wrong command exits 2 with a usage message', () => {
    const repo = makeRepo({ install: false, track: false });
    const r = repo.gitTensor(['frobnicate'], { allowFail: true });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/frobnicate/);
    expect(r.stderr).toMatch(/^hint: .*git tensor/m);
    expect(r.stderr).not.toMatch(/internal error|    at /);
    expect(r.stdout).toBe('');
  });

  it('no command, or a wrong option, exits 2', () => {
    const repo = makeRepo({ install: false, track: false });
    expect(repo.gitTensor([], { allowFail: true }).status).toBe(2);
    const bad = repo.gitTensor(['ls', '--frob'], { allowFail: true });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/frob/);
  });
});

describe('install and uninstall', () => {
  const get = (repo: ReturnType<typeof makeRepo>, scope: string, key: string) =>
    repo.git(['config', scope, '--get-all', key], { allowFail: true });

  it('install writes the filter config to the repository, uninstall removes it', () => {
    const repo = makeRepo({ install: false, track: false });
    expect(get(repo, '--local', 'filter.tensor.process').status).toBe(1);

    const out = repo.gitTensor(['install']).stdout;
    expect(out).toContain('filter.tensor.process');
    expect(get(repo, '--local', 'filter.tensor.process').stdout).toBe('git-tensor filter-process\n');
    expect(get(repo, '--local', 'filter.tensor.required').stdout).toBe('true\n');

    // Idempotent: a second install leaves one value per key.
    repo.gitTensor(['install']);
    expect(get(repo, '--local', 'filter.tensor.process').stdout).toBe('git-tensor filter-process\n');

    repo.gitTensor(['uninstall']);
    expect(get(repo, '--local', 'filter.tensor.process').status).toBe(1);
    expect(get(repo, '--local', 'filter.tensor.required').status).toBe(1);
    // Uninstalling twice is not an error.
    expect(repo.gitTensor(['uninstall']).status).toBe(0);
  });

  it('install --global writes the user config, not the repository', () => {
    const repo = makeRepo({ install: false, track: false });
    repo.gitTensor(['install', '--global']);
    expect(get(repo, '--global', 'filter.tensor.process').stdout).toBe('git-tensor filter-process\n');
    expect(readFileSync(join(repo.home, '.gitconfig'), 'utf8')).toContain('git-tensor filter-process');
    expect(get(repo, '--local', 'filter.tensor.process').status).toBe(1);
    repo.gitTensor(['uninstall', '--global']);
    expect(get(repo, '--global', 'filter.tensor.process').status).toBe(1);
  });

  it('install --global --system is a usage error', () => {
    const repo = makeRepo({ install: false, track: false });
    const r = repo.gitTensor(['install', '--global', '--system'], { allowFail: true });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--local|--global|--system/);
  });

  it('without install, git add of a tracked file stores it unfiltered (and doctor says so)', () => {
    const repo = makeRepo({ install: false });
    const bytes = toSafetensors([makeTensor('w', 'F32', [4])]);
    repo.write('m.safetensors', bytes);
    repo.commit(['m.safetensors'], 'm');
    expect(repo.git(['cat-file', 'blob', 'HEAD:m.safetensors']).stdoutBytes.equals(bytes)).toBe(true);
    const doctor = repo.gitTensor(['doctor'], { allowFail: true });
    expect(doctor.status).not.toBe(0);
    expect(doctor.stdout).toContain('git tensor install');
  });
});

describe('track and untrack', () => {
  const LINE = '*.safetensors filter=tensor diff=tensor merge=tensor -text';

  it('track writes one .gitattributes line per pattern, once', () => {
    const repo = makeRepo({ track: false });
    repo.write('.gitattributes', '*.txt text\n');
    expect(repo.gitTensor(['track', '*.safetensors']).stdout).toContain('Tracking *.safetensors');
    expect(repo.gitTensor(['track', '*.safetensors']).stdout).toContain('already tracked');
    expect(repo.read('.gitattributes').toString()).toBe(`*.txt text\n${LINE}\n`);
    expect(repo.git(['check-attr', 'filter', 'diff', 'merge', '--', 'm.safetensors']).stdout)
      .toBe('m.safetensors: filter: tensor\nm.safetensors: diff: tensor\nm.safetensors: merge: tensor\n');

    repo.gitTensor(['track', '*.bin', '*.pt']);
    expect(repo.read('.gitattributes').toString().split('\n').filter(Boolean)).toEqual([
      '*.txt text', LINE, '*.bin filter=tensor diff=tensor merge=tensor -text', '*.pt filter=tensor diff=tensor merge=tensor -text',
    ]);
  });

  it('untrack removes only its line, once, and keeps the rest of .gitattributes', () => {
    const repo = makeRepo({ track: false });
    repo.write('.gitattributes', '*.txt text\n');
    repo.gitTensor(['track', '*.safetensors', '*.bin']);
    expect(repo.gitTensor(['untrack', '*.safetensors']).stdout).toContain('Untracked *.safetensors');
    expect(repo.read('.gitattributes').toString()).toBe('*.txt text\n*.bin filter=tensor diff=tensor merge=tensor -text\n');
    const again = repo.gitTensor(['untrack', '*.safetensors']);
    expect(again.stdout).toContain('*.safetensors was not tracked');
    expect(repo.read('.gitattributes').toString()).toBe('*.txt text\n*.bin filter=tensor diff=tensor merge=tensor -text\n');
    expect(repo.git(['check-attr', 'filter', '--', 'm.safetensors']).stdout).toBe('m.safetensors: filter: unspecified\n');
  });

  it('track works from a subdirectory and writes the top-level .gitattributes', () => {
    const repo = makeRepo({ track: false });
    repo.write('models/.keep', '');
    repo.gitTensor(['track', '*.safetensors'], { cwd: 'models' });
    expect(repo.read('.gitattributes').toString()).toBe(`${LINE}\n`);
    expect(repo.exists('models/.gitattributes')).toBe(false);
  });
});

describe('describing what is committed', () => {
  const tensors = [
    makeTensor('embed.weight', 'BF16', [16, 8]),
    makeTensor('proj.weight', 'F32', [8, 8]),
    makeTensor('proj.bias', 'F32', [8]),
    makeTensor('step', 'I64', []),
  ];
  const metadata = { format: 'pt', epoch: '3' };

  function committed() {
    const repo = makeRepo({ track: ['*.safetensors', '*.bin'] });
    repo.write('model.safetensors', toSafetensors(tensors, metadata));
    repo.write('optimizer.bin', randomBytes('optimizer', 5000));
    repo.commit(['.'], 'v1');
    return repo;
  }

  it('`ls` lists the tracked files at HEAD, `ls <path>` one file\'s tensors', () => {
    const repo = committed();
    const all = repo.gitTensor(['ls']).stdout;
    expect(all).toContain('model.safetensors');
    expect(all).toContain('optimizer.bin');
    expect(all).toContain('4 tensors');

    const one = repo.gitTensor(['ls', 'model.safetensors']).stdout;
    for (const t of tensors) {
      const line = one.split('\n').find((l) => l.trim().startsWith(t.name + ' '));
      expect(line, t.name).toBeDefined();
      expect(line).toContain(t.dtype);
      expect(line).toContain(`[${t.shape.join(', ')}]`);
    }
    expect(one).not.toContain('optimizer.bin');

    const json = JSON.parse(repo.gitTensor(['ls', '--json']).stdout) as { path: string; kind: string; tensors: { name: string; dtype: string; shape: number[] }[] }[];
    const model = json.find((f) => f.path === 'model.safetensors')!;
    expect(model.kind).toBe('safetensors');
    expect(model.tensors.map((t) => [t.name, t.dtype, t.shape]).sort()).toEqual(tensors.map((t) => [t.name, t.dtype, t.shape]).sort());
    expect(json.find((f) => f.path === 'optimizer.bin')!.kind).toBe('opaque');
  });

  it('`ls <rev> <path>` describes an older version', () => {
    const repo = committed();
    repo.write('model.safetensors', toSafetensors([...tensors, makeTensor('extra.weight', 'F16', [2, 2])], metadata));
    repo.commit(['model.safetensors'], 'v2');
    const now = JSON.parse(repo.gitTensor(['ls', 'HEAD', 'model.safetensors', '--json']).stdout) as { tensors: unknown[] }[];
    const then = JSON.parse(repo.gitTensor(['ls', 'HEAD~1', 'model.safetensors', '--json']).stdout) as { tensors: unknown[] }[];
    expect(now[0]!.tensors.length).toBe(5);
    expect(then[0]!.tensors.length).toBe(4);
    const missing = repo.gitTensor(['ls', 'HEAD', 'nothing.safetensors'], { allowFail: true });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('nothing.safetensors');
  });

  it('`show HEAD:<path>` in text and --json: names, dtypes, shapes, metadata', () => {
    const repo = committed();
    const text = repo.gitTensor(['show', 'HEAD:model.safetensors']).stdout;
    expect(text).toContain('model.safetensors');
    expect(text).toContain('4 tensors');
    expect(text).toMatch(/epoch = 3/);
    for (const t of tensors) expect(text).toMatch(new RegExp(`${t.name.replace('.', '\\.')}\\s+${t.dtype}\\s+\\[${t.shape.join(', ')}\\]`));

    const json = JSON.parse(repo.gitTensor(['show', 'HEAD:model.safetensors', '--json']).stdout) as {
      kind: string; size: number; metadata: Record<string, string>; tensors: { name: string; dtype: string; shape: number[]; bytes: number; present: boolean }[];
    };
    expect(json.kind).toBe('safetensors');
    expect(json.size).toBe(toSafetensors(tensors, metadata).length);
    expect(json.metadata).toEqual(metadata);
    expect(json.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.bytes })).sort((a, b) => a.name.localeCompare(b.name)))
      .toEqual(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.data.length })).sort((a, b) => a.name.localeCompare(b.name)));
    expect(json.tensors.every((t) => t.present)).toBe(true);

    const opaque = JSON.parse(repo.gitTensor(['show', 'HEAD:optimizer.bin', '--json']).stdout) as { kind: string; size: number };
    expect(opaque).toMatchObject({ kind: 'opaque', size: 5000 });

    const bad = repo.gitTensor(['show', 'model.safetensors'], { allowFail: true });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('<rev>:<path>');
  });

  it('from a subdirectory, paths are relative to it as in git (`ls <path>`, `show HEAD:./<path>`)', () => {
    const repo = makeRepo();
    repo.write('models/model.safetensors', toSafetensors(tensors, metadata));
    repo.commit(['models/model.safetensors'], 'model in a folder');
    const inModels = { cwd: 'models', allowFail: true };

    const all = repo.gitTensor(['ls'], inModels);
    expect(all.status, all.stderr).toBe(0);
    expect(all.stdout).toContain('models/model.safetensors');

    const one = repo.gitTensor(['ls', 'model.safetensors'], inModels);
    expect(one.status, one.stderr).toBe(0);
    expect(one.stdout).toContain('proj.weight');

    // git's own spelling: HEAD:./x is relative to the current directory, HEAD:x to the top.
    expect(repo.git(['cat-file', '-e', 'HEAD:./model.safetensors'], { cwd: 'models' }).status).toBe(0);
    const dot = repo.gitTensor(['show', 'HEAD:./model.safetensors'], inModels);
    expect(dot.status, dot.stderr).toBe(0);
    expect(dot.stdout).toContain('proj.weight');
    const top = repo.gitTensor(['show', 'HEAD:models/model.safetensors'], inModels);
    expect(top.status, top.stderr).toBe(0);
  });

  it('`du --json` counts every version logically and stores shared tensors once', () => {
    const repo = makeRepo();
    const big = tinyModel({ seed: 'du', layers: 4, hidden: 64 });
    const v1 = toSafetensors(big);
    const v2 = toSafetensors(replaceTensors(big, ['model.norm.weight']));
    repo.write('model.safetensors', v1);
    repo.commit(['model.safetensors'], 'v1');
    repo.write('model.safetensors', v2);
    repo.commit(['model.safetensors'], 'v2');

    const du = JSON.parse(repo.gitTensor(['du', '--json']).stdout) as {
      store: { bytes: number; objects: number }; history: { versions: number; logicalBytes: number }; head: { path: string; logicalBytes: number; storedBytes: number }[]; encodings: { objects: number }[];
    };
    expect(du.history.versions).toBe(2);
    expect(du.history.logicalBytes).toBe(v1.length + v2.length);
    expect(du.store.bytes).toBeGreaterThan(0);
    expect(du.history.logicalBytes).toBeGreaterThanOrEqual(du.store.bytes);
    // Shared tensors are stored once: well under the two versions side by side.
    expect(du.store.bytes).toBeLessThan(v1.length * 1.5);
    expect(du.head).toEqual([{ path: 'model.safetensors', logicalBytes: v2.length, storedBytes: expect.any(Number), ratio: expect.any(Number) }]);
    // What HEAD's version needs from the store: all of its tensors, none of v1's replaced one.
    expect(du.head[0]!.storedBytes).toBeGreaterThan(0);
    expect(du.head[0]!.storedBytes).toBeLessThanOrEqual(du.store.bytes);
    expect(du.encodings.reduce((s, e) => s + e.objects, 0)).toBe(du.store.objects);
    expect(repo.gitTensor(['du']).stdout).toMatch(/2 checkpoint version/);
  });

  it('`doctor --json` reports the versions and a correct configuration', () => {
    const repo = makeRepo();
    const r = repo.gitTensor(['doctor', '--json'], { allowFail: true });
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.status).toBe(0);
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    const doctor = JSON.parse(r.stdout) as { version: string; node: string; git: string; config: { key: string; ok: boolean }[] };
    expect(doctor.version).toBe(pkg.version);
    expect(doctor.node).toBe(run('node', ['--version'], repo.dir, repo.env).stdout.trim());
    expect(doctor.git).toMatch(/^git version \d+\.\d+/);
    expect(doctor.config.length).toBeGreaterThan(0);
    expect(doctor.config.every((c) => c.ok)).toBe(true);
  });

  it('`fsck` on a healthy repository says ok and exits 0', () => {
    const repo = committed();
    const r = repo.gitTensor(['fsck']);
    expect(r.stdout).toMatch(/\bok\b/);
    const json = JSON.parse(repo.gitTensor(['fsck', '--json']).stdout) as { objects: number };
    expect(json.objects).toBeGreaterThan(0);
  });

  it('in a repository with no commits yet, ls explains and du/fsck report an empty store', () => {
    const repo = makeRepo({ commitAttributes: false });
    const ls = repo.gitTensor(['ls'], { allowFail: true });
    expect(ls.status).toBe(2);
    expect(ls.stderr).toMatch(/^hint: .*git commit/m);
    const du = JSON.parse(repo.gitTensor(['du', '--json']).stdout) as { history: { versions: number; logicalBytes: number }; store: { bytes: number } };
    expect(du.history).toMatchObject({ versions: 0, logicalBytes: 0 });
    expect(du.store.bytes).toBe(0);
    expect(repo.gitTensor(['fsck']).status).toBe(0);
  });

  it('commands outside a repository fail with a clear message', () => {
    const repo = makeRepo({ install: false, track: false });
    const outside = join(repo.root, 'home');
    const r = run('git', ['tensor', 'ls'], outside, repo.env, { allowFail: true });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/not (in )?a git repository/i);
    expect(r.stderr).not.toMatch(/internal error|    at /);
  });
});
