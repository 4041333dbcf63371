// Owns `git tensor ls` and `git tensor show`: what a checkpoint version holds, read from its pointer.

import { formatBytes } from '../format/units.js';
import { Printable, table } from './printable.js';
import { UsageError } from '../errors/index.js';
import { tensorByteLength } from '../format/safetensors.js';
import { isDType } from '../format/dtype.js';
import { PointerTensor } from '../format/pointer.js';
import { posix } from 'node:path';
import { git, gitRaw } from '../git/exec.js';
import { openRepo } from './context.js';
import { pointersAt } from './pointers.js';

export interface LsOptions {
  rev?: string;
  path?: string;
}

function bytesOf(t: PointerTensor): number {
  return isDType(t.dtype) ? tensorByteLength(t.dtype, t.shape) : NaN;
}

export async function ls(opts: LsOptions): Promise<Printable> {
  // One argument that is not a revision is a path: `git tensor ls model.safetensors` means HEAD's version.
  let rev = opts.rev ?? 'HEAD';
  let path = opts.path;
  if (opts.rev !== undefined && path === undefined && !isRevision(opts.rev)) {
    rev = 'HEAD';
    path = opts.rev;
  }
  if (path !== undefined) path = fromCwd(path);
  const found = await pointersAt(rev, path ? [path] : []);
  if (path && !found.length) throw new UsageError(`${path} is not a tracked checkpoint at ${rev}`, 'See `git tensor ls` for the tracked files.');
  const data = found.map((f) => ({
    path: f.path,
    kind: f.pointer.kind,
    size: f.pointer.size,
    tensors: f.pointer.kind === 'safetensors'
      ? f.pointer.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: bytesOf(t), id: t.id }))
      : [],
  }));
  const text: string[] = [];
  for (const f of data) {
    text.push(`${f.path}  (${f.kind}, ${formatBytes(f.size)}${f.kind === 'safetensors' ? `, ${f.tensors.length} tensors` : ''})`);
    if (path || data.length === 1) {
      text.push(...table(f.tensors.map((t) => ['  ' + t.name, t.dtype, `[${t.shape.join(', ')}]`, formatBytes(t.bytes), t.id.slice(0, 12)]), [3]));
    }
  }
  if (!data.length) text.push(`no tracked checkpoints at ${rev}`);
  return { data, text };
}

/** A path the user typed, relative to the current directory, as a path from the top of the work tree. */
function fromCwd(path: string): string {
  const prefix = git(['rev-parse', '--show-prefix']);
  return posix.normalize(prefix + path).replace(/\/$/, '');
}

function isRevision(name: string): boolean {
  return gitRaw(['rev-parse', '--verify', '--quiet', `${name}^{tree}`], { okCodes: [1, 128] }).status === 0;
}

export interface ShowOptions {
  spec: string;
}

export async function show(opts: ShowOptions): Promise<Printable> {
  const colon = opts.spec.indexOf(':');
  if (colon < 0) throw new UsageError(`expected <rev>:<path>, got ${JSON.stringify(opts.spec)}`, 'For example: `git tensor show HEAD:model.safetensors`.');
  const rev = opts.spec.slice(0, colon) || 'HEAD';
  // As in git, `<rev>:<path>` is relative to the top level, `<rev>:./<path>` to the current directory.
  const raw = opts.spec.slice(colon + 1);
  const path = /^\.\.?\//.test(raw) ? fromCwd(raw) : raw;
  const [found] = await pointersAt(rev, [path]);
  if (!found) throw new UsageError(`${path} is not a tracked checkpoint at ${rev}`, 'See `git tensor ls ' + rev + '`.');
  const { store } = openRepo();
  const p = found.pointer;
  const present = (id: string) => store.missing([id]).length === 0;
  if (p.kind === 'opaque') {
    const data = { path, kind: p.kind, size: p.size, id: p.id, present: present(p.id) };
    return { data, text: [`${path} at ${rev}: opaque file, ${formatBytes(p.size)}`, `  object ${p.id}${data.present ? '' : '  (not in the local store)'}`] };
  }
  const tensors = p.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: bytesOf(t), id: t.id, present: present(t.id) }));
  const data = { path, kind: p.kind, size: p.size, metadata: p.metadata ? Object.fromEntries(p.metadata) : null, tensors };
  const missing = tensors.filter((t) => !t.present).length;
  const text = [
    `${path} at ${rev}: safetensors, ${formatBytes(p.size)}, ${tensors.length} tensors` + (missing ? `, ${missing} not in the local store` : ''),
    ...(p.metadata ?? []).map(([k, v]) => `  metadata ${k} = ${v}`),
    ...table(tensors.map((t) => ['  ' + t.name, t.dtype, `[${t.shape.join(', ')}]`, formatBytes(t.bytes), t.id.slice(0, 12) + (t.present ? '' : ' (missing)')]), [3]),
  ];
  return { data, text };
}
