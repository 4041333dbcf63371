// The text git and git-remote-tensor exchange, and the text git prints that transfers read: the
// remote-helper protocol (capabilities, options, list), push status lines and their mapping to git's
// helper vocabulary, ls-remote output, git's progress lines, and which failures are worth a retry.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { TransferContext } from '../../../src/remote/context.js';
import { redactUrl } from '../../../src/remote/errors.js';
import { isProgressLine, isTransientFailure, progressBytes, runNetworkGit, transferEnv } from '../../../src/remote/git-run.js';
import { formatList, LineReader, parsePushSpec, privateNamespace, serveRemoteHelper, unquoteC } from '../../../src/remote/helper.js';
import { formatProgress, humanBytes, Progress } from '../../../src/remote/progress.js';
import { indexedPacks, parseLsRemote } from '../../../src/remote/remote-index.js';
import { answeredPush, groupForTransfer, parsePushPorcelain } from '../../../src/remote/upload.js';
import { ObjectStore } from '../../../src/store/store.js';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

describe('progress in git\'s style', () => {
  it('formats counts, sizes and rates as git does', () => {
    expect(humanBytes(512)).toBe('512 bytes');
    expect(humanBytes(1536)).toBe('1.50 KiB');
    expect(humanBytes(1.2 * 1024 ** 3)).toBe('1.20 GiB');
    expect(formatProgress('Uploading tensor packs', 12, 30, 1.2 * 1024 ** 3, 80 * 1024 ** 2))
      .toBe('Uploading tensor packs:  40% (12/30), 1.20 GiB | 80.00 MiB/s');
    expect(formatProgress('Downloading tensor packs', 0, 0, undefined, undefined)).toBe('Downloading tensor packs: 100% (0/0)');
  });

  it('redraws in place with CR, ends with ", done." and a newline, and prints nothing when disabled', () => {
    let out = '';
    const p = new Progress('Uploading tensor packs', 2, { enabled: true, sink: { write: (t: string) => (out += t) }, minIntervalMs: 0 });
    p.update(1, 100);
    p.update(2, 200);
    p.finish();
    p.finish();
    expect(out.split('\r').length).toBeGreaterThan(2);
    expect(out.endsWith(', done.\n')).toBe(true);
    expect(out.match(/done/g)).toHaveLength(1);

    let quiet = '';
    const q = new Progress('x', 1, { enabled: false, sink: { write: (t: string) => (quiet += t) } });
    q.update(1, 5);
    q.finish();
    expect(quiet).toBe('');
  });
});

describe('git\'s own output, as transfers read it', () => {
  it('takes byte counts from "Writing objects" and "Receiving objects" lines', () => {
    expect(progressBytes('Writing objects:  50% (1/2), 32.00 MiB | 10.00 MiB/s')).toBe(32 * 1024 ** 2);
    expect(progressBytes('Receiving objects: 100% (3/3), 1.50 KiB | 1.50 MiB/s, done.')).toBe(1536);
    expect(progressBytes('Receiving objects: 100% (3/3), 100 bytes | 1.00 KiB/s, done.')).toBe(100);
    expect(progressBytes('Counting objects: 100% (3/3), done.')).toBeUndefined();
    expect(isProgressLine('remote: Counting objects: 100% (3/3), done.')).toBe(true);
    expect(isProgressLine('Total 3 (delta 0), reused 0 (delta 0), pack-reused 0')).toBe(true);
    expect(isProgressLine('fatal: unable to access')).toBe(false);
  });

  it('retries a flaky network or a busy host, never bad credentials or a wrong URL', () => {
    for (const transient of [
      'error: RPC failed; HTTP 503 curl 22 The requested URL returned error: 503',
      'fatal: unable to access \'https://h/r.git/\': Could not resolve host: h',
      'fatal: the remote end hung up unexpectedly',
      'error: RPC failed; curl 56 Recv failure: Connection reset by peer',
      'fatal: early EOF',
    ]) expect(isTransientFailure(transient), transient).toBe(true);
    for (const permanent of [
      'fatal: Authentication failed for \'https://h/r.git/\'',
      'fatal: unable to access \'https://h/r.git/\': The requested URL returned error: 403',
      'fatal: repository \'https://h/r.git/\' not found',
      'fatal: couldn\'t find remote ref refs/tensor/packs/abc',
      'fatal: \'/no/such\' does not appear to be a git repository',
      // Size limits of hosts (docs/remote.md, "Pushes that fit host limits"): the same push fails again.
      'remote: fatal: pack exceeds maximum allowed size\nfatal: the remote end hung up unexpectedly',
      'remote: error: File pack is 161.50 MB; this exceeds GitHub\'s file size limit of 100.00 MB',
      'remote: Your push was rejected because it contains files larger than 10 MiB.',
    ]) expect(isTransientFailure(permanent), permanent).toBe(false);
  });

  it('maps `git push --porcelain` lines to git\'s remote-helper status vocabulary', () => {
    const out = [
      'To http://h/r.git',
      ' \trefs/heads/a:refs/heads/a\t1111111..2222222',
      '+\trefs/heads/b:refs/heads/b\t1111111...2222222 (forced update)',
      '*\trefs/heads/c:refs/heads/c\t[new branch]',
      '=\trefs/heads/d:refs/heads/d\t[up to date]',
      '!\trefs/heads/e:refs/heads/e\t[rejected] (non-fast-forward)',
      '!\trefs/heads/f:refs/heads/f\t[rejected] (fetch first)',
      '!\trefs/heads/g:refs/heads/g\t[remote rejected] (pre-receive hook declined)',
      '-\t:refs/heads/h\t[deleted]',
      'Done',
    ].join('\n');
    const byRef = new Map(parsePushPorcelain(out).map((s) => [s.dst, s]));
    expect(byRef.get('refs/heads/a')).toMatchObject({ ok: true, forced: false });
    expect(byRef.get('refs/heads/b')).toMatchObject({ ok: true, forced: true });
    expect(byRef.get('refs/heads/d')).toMatchObject({ ok: true, upToDate: true });
    expect(byRef.get('refs/heads/e')).toMatchObject({ ok: false, reason: 'non-fast forward' });
    expect(byRef.get('refs/heads/f')).toMatchObject({ ok: false, reason: 'fetch first' });
    expect(byRef.get('refs/heads/g')).toMatchObject({ ok: false, reason: 'pre-receive hook declined' });
    expect(byRef.get('refs/heads/h')).toMatchObject({ ok: true });
    expect(answeredPush({ stdout: Buffer.from(out) })).toBe(true);
    expect(answeredPush({ stdout: Buffer.from('To http://h/r.git\n') })).toBe(false);
  });

  it('reads ls-remote output: refs, symrefs, no peeled tags; pack names from index refs only', () => {
    const name = 'a'.repeat(64);
    const listing = parseLsRemote([
      'ref: refs/heads/main\tHEAD',
      `${'1'.repeat(40)}\tHEAD`,
      `${'1'.repeat(40)}\trefs/heads/main`,
      `${'2'.repeat(40)}\trefs/tags/v1`,
      `${'3'.repeat(40)}\trefs/tags/v1^{}`,
      `${'4'.repeat(40)}\trefs/tensor/idx/${name}`,
      `${'5'.repeat(40)}\trefs/tensor/packs/${name}`,
      `${'6'.repeat(40)}\trefs/tensor/idx/not-a-pack-name`,
    ].join('\n'));
    expect(listing.symrefs.get('HEAD')).toBe('refs/heads/main');
    expect(listing.refs.has('refs/tags/v1^{}')).toBe(false);
    expect(indexedPacks(listing)).toEqual([name]);
    // What git is told: the symref and the user's refs; refs/tensor/* stay hidden.
    expect(formatList(listing)).toBe(`@refs/heads/main HEAD\n${'1'.repeat(40)} refs/heads/main\n${'2'.repeat(40)} refs/tags/v1\n\n`);
    expect(formatList(parseLsRemote(''))).toBe('\n');
  });

  it('parses push specs, C-quoted option values, and names a private ref namespace per remote', () => {
    expect(parsePushSpec('+refs/heads/foo:refs/heads/bar')).toEqual({ force: true, src: 'refs/heads/foo', dst: 'refs/heads/bar' });
    expect(parsePushSpec(':refs/heads/gone')).toEqual({ force: false, src: '', dst: 'refs/heads/gone' });
    expect(unquoteC('"refs/heads/a b:\\101"')).toBe('refs/heads/a b:A');
    expect(unquoteC('plain')).toBe('plain');
    expect(privateNamespace('origin', 'https://h/r.git')).toBe('refs/tensor-remote/origin/');
    expect(privateNamespace('https://h/r.git', 'https://h/r.git')).toMatch(/^refs\/tensor-remote\/url-[0-9a-f]{12}\/$/);
    expect(redactUrl('https://user:secret@host/r.git')).toBe('https://host/r.git');
  });

  it('groups packs for one push or fetch each by count and by bytes', () => {
    const sizes = [10, 10, 10, 50, 10];
    expect(groupForTransfer(sizes, (n) => n, 2, 100)).toEqual([[10, 10], [10, 50], [10]]);
    expect(groupForTransfer(sizes, (n) => n, 10, 30)).toEqual([[10, 10, 10], [50], [10]]);
    expect(groupForTransfer([], (n: number) => n, 2, 2)).toEqual([]);
  });

  it('runs transfers in the C locale, with the repository variables of the caller stripped for another repository', () => {
    const env = transferEnv({ GIT_DIR: '/a/.git', GIT_WORK_TREE: '/a', GIT_SSH_COMMAND: 'ssh -i k', LANG: 'de_DE.UTF-8' }, '/tmp/x.git');
    expect(env).toMatchObject({ GIT_DIR: '/tmp/x.git', GIT_SSH_COMMAND: 'ssh -i k', LC_ALL: 'C' });
    expect(env.GIT_WORK_TREE).toBeUndefined();
    expect(transferEnv({ GIT_DIR: '/a/.git' }).GIT_DIR).toBe('/a/.git');
  });

  it('gives up on a permanent failure at once and names the URL without credentials', async () => {
    const retries: number[] = [];
    await expect(runNetworkGit('listing refs of', 'file:///no/such/repo.git', ['ls-remote', 'file:///no/such/repo.git'], {
      env: transferEnv(process.env), retry: { attempts: 4, baseDelayMs: 5000, onRetry: (_err, attempt) => retries.push(attempt) },
    })).rejects.toMatchObject({ code: 'E_REMOTE_TRANSFER', transient: false, data: { attempts: 1 } });
    expect(retries).toEqual([]);
  });
});

describe('the remote-helper session', () => {
  function bareRemote(): { dir: string; url: string; ctx: TransferContext } {
    const root = mkdtempSync(join(tmpdir(), 'git-tensor-helper-'));
    roots.push(root);
    const env: NodeJS.ProcessEnv = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: root };
    for (const k of Object.keys(env)) if (k.startsWith('GIT_') && k !== 'GIT_CONFIG_NOSYSTEM') delete env[k];
    const git = (args: string[], cwd = root) => {
      const r = spawnSync('git', args, { cwd, env });
      if (r.status !== 0) throw new Error(r.stderr.toString());
      return r.stdout.toString();
    };
    git(['init', '-q', '--bare', '--initial-branch=main', 'remote.git']);
    git(['init', '-q', '--initial-branch=main', 'local']);
    const local = join(root, 'local');
    git(['-c', 'user.name=t', '-c', 'user.email=t@e', 'commit', '-q', '--allow-empty', '-m', 'x'], local);
    git(['push', '-q', join(root, 'remote.git'), 'main', `HEAD:refs/tensor/idx/${'b'.repeat(64)}`], local);
    const store = ObjectStore.open(join(local, '.git', 'tensor'));
    return {
      dir: local,
      url: `file://${join(root, 'remote.git')}`,
      ctx: { store, remoteName: 'origin', url: `file://${join(root, 'remote.git')}`, cwd: local, env, progress: false, verbosity: 1 },
    };
  }

  it('answers capabilities, options and list like a git remote helper, hiding refs/tensor/*', async () => {
    const { ctx } = bareRemote();
    const input = new PassThrough();
    const output = new PassThrough();
    let said = '';
    output.on('data', (d: Buffer) => (said += d.toString()));
    const session = serveRemoteHelper({ ctx, input, output });
    input.write('capabilities\n');
    input.write('option progress true\n');
    input.write('option verbosity 0\n');
    input.write('option object-format true\n');
    input.write('list\n');
    input.end('\n');
    await session;
    ctx.store.close();
    const lines = said.split('\n');
    expect(lines.slice(0, 4)).toEqual(['option', 'fetch', 'push', '']);
    expect(lines.slice(4, 7)).toEqual(['ok', 'ok', 'unsupported']);
    expect(said).toMatch(/^@refs\/heads\/main HEAD$/m);
    expect(said).toMatch(/^[0-9a-f]{40} refs\/heads\/main$/m);
    expect(said).not.toMatch(/refs\/tensor/);
    expect(said.endsWith('\n\n')).toBe(true);
    expect(ctx.progress).toBe(true);
    expect(ctx.verbosity).toBe(0);
  });

  it('LineReader hands out one line at a time, then null at the end', async () => {
    const input = new PassThrough();
    const reader = new LineReader(input);
    input.write('a\nb');
    input.end('\n\nlast');
    expect(await reader.next()).toBe('a');
    expect(await reader.next()).toBe('b');
    expect(await reader.next()).toBe('');
    expect(await reader.next()).toBe('last');
    expect(await reader.next()).toBeNull();
  });
});
