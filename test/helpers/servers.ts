// Owns real git servers for remote tests, started on loopback by the tests themselves, and the clients
// that talk to them: smart HTTP (`git http-backend` behind a Node http server), `git daemon` with
// receive-pack enabled, and plain file:// URLs. No mocks of git: the host is git itself.
//
// Usage:
//   const host = await startHttpServer();            // or startGitDaemon(), or fileHost()
//   const url = host.url(host.createRepo('model'));   // http://127.0.0.1:<port>/model.git
//   host.inject({ service: 'git-receive-pack', nth: 2, action: 'stall' });   // fault injection (HTTP only)
//   const b = cloneRepo(`tensor::${url}`);            // a user's clone, in its own HOME
//
// Every server started in a test file stops after that file (afterAll); ports are free ports on
// 127.0.0.1 only. The module also works outside vitest (scripts/bench-remote.ts): call stopAllServers().

import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, connect, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Repo, RunOptions, RunResult } from './repo.js';

const BIN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin');

/**
 * The hermetic environment of test/helpers/repo.ts (own HOME, no system config, no inherited GIT_*,
 * this checkout's bin/ first on PATH), rebuilt here so that this module loads outside vitest too.
 */
export function hermeticEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GIT_')) env[k] = v;
  return {
    ...env,
    PATH: [BIN_DIR, process.env.PATH ?? ''].join(delimiter),
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    LC_ALL: 'C.UTF-8',
  };
}

/** Runs a command to completion; throws with its output unless it exits 0 (or allowFail). */
export function run(cmd: string, args: string[], cwd: string, baseEnv: NodeJS.ProcessEnv, opts: RunOptions = {}): RunResult {
  const env = { ...baseEnv };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const r = spawnSync(cmd, args, { cwd: opts.cwd ? join(cwd, opts.cwd) : cwd, env, input: opts.input, maxBuffer: 1 << 30, timeout: 120_000, killSignal: 'SIGKILL' });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')} could not run or did not finish: ${r.error.message}\n--- stderr\n${r.stderr?.toString('utf8') ?? ''}`);
  const result: RunResult = { status: r.status ?? -1, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), stdoutBytes: r.stdout };
  if (result.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal} in ${cwd}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`);
  }
  return result;
}

export interface GitHost {
  /** Folder holding the bare repositories. */
  readonly root: string;
  /** What kind of host: 'http', 'git' (daemon) or 'file'. */
  readonly kind: 'http' | 'git' | 'file';
  /** Creates an empty bare repository `<name>.git` (HEAD -> main, pushes allowed); returns its name. */
  createRepo(name: string): string;
  /** The URL git uses for a repository of this host. */
  url(name: string): string;
  /** Path of the bare repository on disk (to inspect what the host holds). */
  repoPath(name: string): string;
  stop(): Promise<void>;
}

export type Service = 'git-upload-pack' | 'git-receive-pack';

export interface Fault {
  service: Service;
  /** Protocol v2 command the request body must hold (`fetch`, `ls-refs`); POSTs only. */
  command?: string;
  /** Which matching request trips it, counting from 1 (default 1: the first). */
  nth?: number;
  /** How many matching requests from the nth on it affects (default 1). */
  times?: number;
  /** fail: answer `status` (default 503); stall: never answer; reset: drop the connection. */
  action: 'fail' | 'stall' | 'reset';
  status?: number;
}

export interface HttpStats {
  requests: number;
  /** Request bytes received by receive-pack POSTs (what pushes sent). */
  pushedBytes: number;
  /** Response bytes sent by upload-pack POSTs (what fetches received). */
  fetchedBytes: number;
  /** receive-pack POSTs served (one per `git push` that sent something). */
  receivePacks: number;
}

export interface HttpGitHost extends GitHost {
  readonly stats: HttpStats;
  resetStats(): void;
  /** Arms a fault; the promise resolves when it first trips. */
  inject(fault: Fault): Promise<void>;
  clearFaults(): void;
}

const running: { stop(): Promise<void> }[] = [];
const roots: string[] = [];

// Under vitest, servers stop after each test file; elsewhere (a benchmark script) the caller stops them.
if (process.env.VITEST) {
  const { afterAll } = await import('vitest');
  afterAll(async () => {
    await stopAllServers();
  });
}

export async function stopAllServers(): Promise<void> {
  for (const s of running.splice(0)) await s.stop();
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
}

/** The environment of the git processes that serve: no user config, no inherited GIT_* variables. */
function serverEnv(root: string): NodeJS.ProcessEnv {
  return { ...hermeticEnv(join(root, '.home')), GIT_CONFIG_NOSYSTEM: '1' };
}

function makeRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'git-tensor-host-'));
  roots.push(root);
  mkdirSync(join(root, '.home'), { recursive: true });
  return root;
}

function createBareRepo(root: string, name: string): string {
  const path = join(root, `${name}.git`);
  run('git', ['init', '--bare', '-q', '--initial-branch=main', path], root, serverEnv(root));
  run('git', ['config', 'http.receivepack', 'true'], path, serverEnv(root));
  return name;
}

function baseHost(root: string, kind: GitHost['kind'], url: (name: string) => string, stop: () => Promise<void>): GitHost {
  return {
    root,
    kind,
    createRepo: (name) => createBareRepo(root, name),
    url,
    repoPath: (name) => join(root, `${name}.git`),
    stop,
  };
}

/** A free TCP port on 127.0.0.1 (the OS picks it; released just before the caller binds it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** file:// URLs: no server at all, git runs upload-pack/receive-pack locally. */
export function fileHost(): GitHost {
  const root = makeRoot();
  return baseHost(root, 'file', (name) => `file://${join(root, `${name}.git`)}`, async () => {});
}

/** `git daemon --enable=receive-pack` on a free loopback port (git:// URLs). */
export async function startGitDaemon(): Promise<GitHost> {
  const root = makeRoot();
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn('git', ['daemon', '--reuseaddr', '--export-all', '--enable=receive-pack', '--informative-errors',
      `--base-path=${root}`, `--port=${port}`, '--listen=127.0.0.1', root], { env: serverEnv(root), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    if (await waitForPort(port, child)) {
      const stop = () => stopChild(child);
      running.push({ stop });
      return baseHost(root, 'git', (name) => `git://127.0.0.1:${port}/${name}.git`, stop);
    }
    await stopChild(child);
    if (attempt >= 3) throw new Error(`git daemon did not start on port ${port}: ${stderr}`);
  }
}

async function waitForPort(port: number, child: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    const ok = await new Promise<boolean>((resolve) => {
      const sock: Socket = connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/**
 * Smart HTTP: a Node http server running `git http-backend` as CGI for every request
 * (GIT_PROJECT_ROOT, GIT_HTTP_EXPORT_ALL, PATH_INFO, QUERY_STRING, REQUEST_METHOD, CONTENT_TYPE and the
 * request headers as HTTP_*), with counters of bytes pushed and fetched and fault injection.
 *
 * It runs in a child process: tests drive git with spawnSync, which blocks this process's event loop.
 * The test talks to it through two files in a control folder: faults.json (read by the server on each
 * request) and stats.json (written by the server before each response ends).
 */
export async function startHttpServer(): Promise<HttpGitHost> {
  const root = makeRoot();
  const control = join(root, '.control');
  mkdirSync(control);
  const faultsFile = join(control, 'faults.json');
  const statsFile = join(control, 'stats.json');
  writeFileSync(faultsFile, '[]');
  const child = spawn(process.execPath, ['-e', HTTP_SERVER_SOURCE, root, control], {
    env: serverEnv(root),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the test HTTP server exited (${code}) before listening`)));
  });
  const stop = () => stopChild(child);
  running.push({ stop });

  interface FaultState extends Fault {
    id: number;
  }
  let nextId = 0;
  const armed: FaultState[] = [];
  const readStats = (): HttpStats & { trips: Record<string, number> } => {
    try {
      return JSON.parse(readFileSync(statsFile, 'utf8')) as HttpStats & { trips: Record<string, number> };
    } catch {
      return { requests: 0, pushedBytes: 0, fetchedBytes: 0, receivePacks: 0, trips: {} };
    }
  };
  let baseline: HttpStats = { requests: 0, pushedBytes: 0, fetchedBytes: 0, receivePacks: 0 };
  const stats = {} as HttpStats;
  for (const key of ['requests', 'pushedBytes', 'fetchedBytes', 'receivePacks'] as const) {
    Object.defineProperty(stats, key, { enumerable: true, get: () => readStats()[key] - baseline[key] });
  }
  return {
    ...baseHost(root, 'http', (name) => `http://127.0.0.1:${port}/${name}.git`, stop),
    stats,
    resetStats() {
      const now = readStats();
      baseline = { requests: now.requests, pushedBytes: now.pushedBytes, fetchedBytes: now.fetchedBytes, receivePacks: now.receivePacks };
    },
    inject(fault) {
      const state = { ...fault, id: nextId++ };
      armed.push(state);
      writeFileSync(faultsFile, JSON.stringify(armed));
      return (async () => {
        while (!(readStats().trips[String(state.id)]! > 0)) await new Promise((r) => setTimeout(r, 50));
      })();
    },
    clearFaults() {
      armed.length = 0;
      writeFileSync(faultsFile, '[]');
    },
  };
}

/** The server process (CommonJS, run with `node -e`): argv[1] = project root, argv[2] = control folder. */
const HTTP_SERVER_SOURCE = String.raw`
const { spawn } = require('node:child_process');
const { readFileSync, writeFileSync, renameSync } = require('node:fs');
const { createServer } = require('node:http');
const { join } = require('node:path');
const { gunzipSync } = require('node:zlib');
const [root, control] = process.argv.slice(1);
const stats = { requests: 0, pushedBytes: 0, fetchedBytes: 0, receivePacks: 0, trips: {} };
const seen = {};
const saveStats = () => {
  const tmp = join(control, 'stats.json.tmp');
  writeFileSync(tmp, JSON.stringify(stats));
  renameSync(tmp, join(control, 'stats.json'));
};
const serviceOf = (url) => {
  const q = url.searchParams.get('service');
  if (q === 'git-upload-pack' || q === 'git-receive-pack') return q;
  if (url.pathname.endsWith('/git-upload-pack')) return 'git-upload-pack';
  if (url.pathname.endsWith('/git-receive-pack')) return 'git-receive-pack';
  return undefined;
};
const matchFault = (service, body) => {
  let faults = [];
  try { faults = JSON.parse(readFileSync(join(control, 'faults.json'), 'utf8')); } catch {}
  for (const f of faults) {
    if (f.service !== service) continue;
    if (f.command !== undefined) {
      if (!body) continue;
      let text = '';
      try { text = (body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body) : body).toString('latin1'); } catch { continue; }
      if (!text.includes('command=' + f.command)) continue;
    }
    seen[f.id] = (seen[f.id] || 0) + 1;
    const first = f.nth || 1;
    if (seen[f.id] < first || seen[f.id] >= first + (f.times || 1)) continue;
    stats.trips[f.id] = (stats.trips[f.id] || 0) + 1;
    saveStats();
    return f;
  }
  return undefined;
};
const stalled = [];
// A minimal Git LFS server (batch API, basic transfer) so benchmarks can compare with git-lfs on the
// same host: objects live in <root>/.lfs/<oid>; uploads count as pushed bytes, downloads as fetched.
const lfsDir = join(root, '.lfs');
const lfs = (req, res, url, port) => {
  const { existsSync, mkdirSync, createReadStream, createWriteStream, renameSync: mv, statSync } = require('node:fs');
  mkdirSync(lfsDir, { recursive: true });
  if (url.pathname.endsWith('/info/lfs/objects/batch') && req.method === 'POST') {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => {
      const batch = JSON.parse(Buffer.concat(parts).toString('utf8'));
      const objects = batch.objects.map((o) => {
        if (!/^[0-9a-f]{64}$/.test(o.oid)) return { oid: o.oid, size: o.size, error: { code: 422, message: 'bad oid' } };
        const have = existsSync(join(lfsDir, o.oid));
        const href = 'http://127.0.0.1:' + port + '/lfs/objects/' + o.oid;
        if (batch.operation === 'upload') return have ? { oid: o.oid, size: o.size } : { oid: o.oid, size: o.size, authenticated: true, actions: { upload: { href, expires_in: 3600 } } };
        return have ? { oid: o.oid, size: o.size, authenticated: true, actions: { download: { href, expires_in: 3600 } } } : { oid: o.oid, size: o.size, error: { code: 404, message: 'not found' } };
      });
      saveStats();
      res.writeHead(200, { 'Content-Type': 'application/vnd.git-lfs+json' });
      res.end(JSON.stringify({ transfer: 'basic', objects }));
    });
    return true;
  }
  const m = /^\/lfs\/objects\/([0-9a-f]{64})$/.exec(url.pathname);
  if (m && req.method === 'PUT') {
    const tmp = join(lfsDir, m[1] + '.tmp' + process.pid);
    const out = createWriteStream(tmp);
    req.on('data', (c) => { stats.pushedBytes += c.length; });
    req.pipe(out);
    out.on('finish', () => { mv(tmp, join(lfsDir, m[1])); saveStats(); res.writeHead(200); res.end(); });
    return true;
  }
  if (m && req.method === 'GET') {
    const file = join(lfsDir, m[1]);
    if (!existsSync(file)) { res.writeHead(404); res.end(); return true; }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': statSync(file).size });
    const src = createReadStream(file);
    src.on('data', (c) => { stats.fetchedBytes += c.length; });
    src.on('end', () => saveStats());
    src.pipe(res);
    return true;
  }
  if (url.pathname.includes('/info/lfs/locks')) { res.writeHead(404); res.end(); return true; }
  return false;
};
const serve = (req, res, body) => {
  const url = new URL(req.url || '/', 'http://127.0.0.1');
  const service = serviceOf(url);
  const isPost = req.method === 'POST';
  const fault = isPost && service ? matchFault(service, body) : undefined;
  if (fault && fault.action === 'fail') {
    req.resume();
    res.writeHead(fault.status || 503, { 'Content-Type': 'text/plain' });
    res.end('injected failure\n');
    return;
  }
  if (fault && fault.action === 'stall') { req.resume(); stalled.push(res); return; }
  if (fault && fault.action === 'reset') { req.socket.destroy(); return; }
  const env = Object.assign({}, process.env, {
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ''),
    REQUEST_METHOD: req.method || 'GET',
    CONTENT_TYPE: req.headers['content-type'] || '',
    REMOTE_ADDR: '127.0.0.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
  });
  for (const [k, v] of Object.entries(req.headers)) {
    if (typeof v === 'string') env['HTTP_' + k.toUpperCase().replace(/-/g, '_')] = v;
  }
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
  child.stdin.on('error', () => {});
  const pushing = service === 'git-receive-pack' && isPost;
  const fetching = service === 'git-upload-pack' && isPost;
  if (pushing) stats.receivePacks++;
  if (body) child.stdin.end(body);
  else {
    req.on('data', (c) => { if (pushing) stats.pushedBytes += c.length; });
    req.pipe(child.stdin);
  }
  let head = Buffer.alloc(0);
  let headersSent = false;
  child.stdout.on('data', (chunk) => {
    if (headersSent) {
      if (fetching) stats.fetchedBytes += chunk.length;
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    const headers = {};
    let status = 200;
    for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const key = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (key.toLowerCase() === 'status') status = parseInt(value, 10);
      else headers[key] = value;
    }
    res.writeHead(status, headers);
    headersSent = true;
    const rest = head.subarray(end + 4);
    if (fetching) stats.fetchedBytes += rest.length;
    if (rest.length) res.write(rest);
  });
  child.on('close', () => {
    saveStats();
    if (!headersSent) res.writeHead(500).end();
    else res.end();
  });
};
const server = createServer((req, res) => {
  stats.requests++;
  const url = new URL(req.url || '/', 'http://127.0.0.1');
  if ((url.pathname.includes('/info/lfs/') || url.pathname.startsWith('/lfs/')) && lfs(req, res, url, server.address().port)) return;
  // upload-pack requests are small (wants and haves): read them whole so faults can match the command.
  if (req.method === 'POST' && serviceOf(url) === 'git-upload-pack') {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => serve(req, res, Buffer.concat(parts)));
  } else {
    serve(req, res, null);
  }
});
server.listen(0, '127.0.0.1', () => {
  saveStats();
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
`;

/** A clone of `url` made by `git clone` in a fresh HOME (no git-tensor configured there beforehand). */
export function cloneRepo(url: string, opts: { args?: string[]; env?: Record<string, string>; globalInstall?: boolean; allowFail?: boolean } = {}): Repo & { clone: RunResult } {
  const root = mkdtempSync(join(tmpdir(), 'git-tensor-clone-'));
  roots.push(root);
  const home = join(root, 'home');
  mkdirSync(home, { recursive: true });
  const env = { ...hermeticEnv(home), ...(opts.env ?? {}) };
  run('git', ['config', '--global', 'user.name', 'Test User'], root, env);
  run('git', ['config', '--global', 'user.email', 'test@example.com'], root, env);
  run('git', ['config', '--global', 'init.defaultBranch', 'main'], root, env);
  if (opts.globalInstall) run('git', ['tensor', 'install', '--global'], root, env);
  const clone = run('git', ['clone', ...(opts.args ?? []), url, 'repo'], root, env, { allowFail: opts.allowFail });
  return { ...wrapRepo(join(root, 'repo'), root, home, env), clone };
}

/** Wraps an existing working tree in the harness's Repo interface. */
export function wrapRepo(dir: string, root: string, home: string, env: NodeJS.ProcessEnv): Repo {
  const path = (rel: string) => join(dir, rel);
  const storeDir = join(dir, '.git', 'tensor');
  const packsDir = join(storeDir, 'packs');
  const repo: Repo = {
    dir,
    root,
    home,
    env,
    storeDir,
    git: (args: string[], o?: RunOptions) => run('git', args, dir, env, o),
    gitTensor: (args: string[], o?: RunOptions) => run('git', ['tensor', ...args], dir, env, o),
    path,
    write(rel, data) {
      mkdirSync(dirname(path(rel)), { recursive: true });
      writeFileSync(path(rel), data);
    },
    read: (rel) => readFileSync(path(rel)),
    exists: (rel) => existsSync(path(rel)),
    remove: (rel) => rmSync(path(rel), { recursive: true, force: true }),
    packFiles: () => (existsSync(packsDir) ? readdirSync(packsDir).sort() : []),
    packBytes: () => (existsSync(packsDir) ? readdirSync(packsDir).reduce((s, f) => s + statSync(join(packsDir, f)).size, 0) : 0),
    commit(paths, message) {
      repo.git(['add', '--', ...paths]);
      repo.git(['commit', '-q', '-m', message]);
    },
  };
  return repo;
}

/** Runs a command without blocking the test (for concurrent pushes, or one to kill midway). */
export function runAsync(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<RunResult> } {
  // A process group of its own, so the whole tree (git, helper, inner git) can be killed at once.
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  child.stderr!.on('data', (d: Buffer) => err.push(d));
  const done = new Promise<RunResult>((resolve) => {
    child.on('close', (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ status: code ?? (signal ? 128 : -1), stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes });
    });
  });
  return { child, done };
}

/** Kills a process started by runAsync and everything it started. */
export function killTree(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** Refs of a bare repository on the host, by `git for-each-ref` (name -> object id). */
export function hostRefs(host: GitHost, name: string, prefix = 'refs/'): Map<string, string> {
  const out = run('git', ['for-each-ref', '--format=%(refname) %(objectname)', prefix], host.repoPath(name), serverEnv(host.root)).stdout;
  return new Map(out.split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]));
}
