// Owns the pointer: the small text file git commits in place of a checkpoint (spec: docs/pointer.md).
// Pure parse/serialise and the pointer's own consistency; the pointer depends only on the stored file's
// bytes, so the same file gives the same pointer on every machine (DESIGN.md principles 2 and 3).
// Checking a pointer against the store's objects is store/checkpoint.ts's validatePointer.

import { ExitCode, GitTensorError, PointerError } from '../errors/index.js';
import { isDType, type DType } from './dtype.js';
import { tensorByteLength } from './safetensors.js';

export const POINTER_MAGIC = 'git-tensor v1';
/** A pointer larger than this is not read as one (checked before buffering the rest of the input). */
export const MAX_POINTER_BYTES = 64 * 1024 * 1024;

const ID = /^[0-9a-f]{64}$/;
const DTYPE = /^[A-Z][A-Z0-9_]*$/;

export interface PointerTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** SHA-256 of the tensor's bytes. */
  id: string;
}

export type Pointer =
  | {
      kind: 'safetensors';
      /** Size of the checkpoint file in bytes. */
      size: number;
      /** Object holding the exact header bytes (JSON and padding, without the 8-byte length prefix). */
      header: { id: string; length: number };
      /** `__metadata__` entries in header order; null when the header has no `__metadata__` key. */
      metadata: [string, string][] | null;
      /** In the file's data order (ascending data offsets). */
      tensors: PointerTensor[];
    }
  | {
      kind: 'opaque';
      size: number;
      /** Object holding the whole file (stored as content-defined chunks). */
      id: string;
    };

export function isIdString(s: string): boolean {
  return ID.test(s);
}

/**
 * Cheap test on the first bytes of a file: does it claim to be a pointer, of any version? A pointer from
 * a newer git-tensor must be recognised as one, so the reader can refuse it with E_POINTER_VERSION
 * instead of taking it for file content.
 */
export function looksLikePointer(prefix: Uint8Array): boolean {
  const head = Buffer.from(prefix.buffer, prefix.byteOffset, Math.min(prefix.length, 32)).toString('latin1');
  return /^git-tensor v\d+ /.test(head);
}

/** True when the text holds git conflict markers at the start of a line. */
export function hasConflictMarkers(text: string): boolean {
  return /^(<{7}|={7}|>{7})( |$)/m.test(text);
}

/** Object ids a pointer needs: the header's and each tensor's, in pointer order, or the opaque object's. */
export function objectIdsOf(p: Pointer): string[] {
  return p.kind === 'opaque' ? [p.id] : [p.header.id, ...p.tensors.map((t) => t.id)];
}

export function serializePointer(p: Pointer): string {
  const lines: string[] = [`${POINTER_MAGIC} ${p.kind}`, `size ${p.size}`];
  if (p.kind === 'opaque') {
    lines.push(`object ${p.id}`);
  } else {
    lines.push(`header ${p.header.id} ${p.header.length}`);
    if (p.metadata) {
      lines.push(`metadata ${p.metadata.length}`);
      for (const [k, v] of p.metadata) lines.push(`meta ${JSON.stringify(k)} ${JSON.stringify(v)}`);
    }
    for (const t of p.tensors) lines.push(`tensor ${JSON.stringify(t.name)} ${t.dtype} ${JSON.stringify(t.shape)} ${t.id}`);
  }
  return lines.join('\n') + '\n';
}

/** Strict parser: fixed line order, exact forms, nothing unknown. `file` names the path in errors. */
export function parsePointer(text: string, file?: string): Pointer {
  const fail = (line: number, what: string): never => {
    throw new PointerError('E_POINTER_SYNTAX', `${file ?? 'pointer'}: line ${line}: ${what}`, { file, line });
  };
  if (hasConflictMarkers(text)) {
    throw new PointerError('E_POINTER_CONFLICT', `${file ?? 'pointer'} contains git conflict markers, not a tensor pointer`, { file },
      `Finish the merge with \`git tensor resolve ${file ?? '<path>'} --strategy <name>\`, or take one side: ` +
      `\`git checkout --ours -- ${file ?? '<path>'}\` (or --theirs).`);
  }
  if (!text.endsWith('\n')) fail(text.split('\n').length, 'pointer must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  let i = 0;
  const next = (): string => (i < lines.length ? lines[i++]! : fail(i + 1, 'unexpected end of pointer'));

  const first = next();
  const version = /^git-tensor v(\d+) /.exec(first)?.[1];
  if (version !== undefined && version !== '1') {
    throw new PointerError('E_POINTER_VERSION', `${file ?? 'pointer'}: pointer version v${version} is newer than this git-tensor reads (v1)`, { file },
      'Upgrade git-tensor (`git tensor doctor` shows the installed version).');
  }
  const m0 = /^git-tensor v1 (safetensors|opaque)$/.exec(first);
  if (!m0) fail(1, `expected "${POINTER_MAGIC} safetensors" or "${POINTER_MAGIC} opaque"`);
  const size = parseCount(next(), /^size (\d+)$/, i, fail);

  if (m0![1] === 'opaque') {
    const m = /^object ([0-9a-f]{64})$/.exec(next());
    if (!m) fail(i, 'expected "object <64 hex digits>"');
    if (i !== lines.length) fail(i + 1, 'unexpected line after the object line');
    return { kind: 'opaque', size, id: m![1]! };
  }

  const mh = /^header ([0-9a-f]{64}) (\d+)$/.exec(next());
  if (!mh) fail(i, 'expected "header <64 hex digits> <length>"');
  const header = { id: mh![1]!, length: toSafeInt(mh![2]!, i, fail) };

  let metadata: [string, string][] | null = null;
  if (i < lines.length && lines[i]!.startsWith('metadata ')) {
    const count = parseCount(next(), /^metadata (\d+)$/, i, fail);
    metadata = [];
    for (let k = 0; k < count; k++) {
      const line = next();
      if (!line.startsWith('meta ')) fail(i, 'expected a "meta <key> <value>" line');
      const [key, rest] = readJsonString(line, 5, i, fail);
      if (line[rest] !== ' ') fail(i, 'expected a space between meta key and value');
      const [value, end] = readJsonString(line, rest + 1, i, fail);
      if (end !== line.length) fail(i, 'unexpected text after meta value');
      metadata.push([key, value]);
    }
  }

  const tensors: PointerTensor[] = [];
  while (i < lines.length) {
    const line = next();
    if (!line.startsWith('tensor ')) fail(i, 'expected a "tensor <name> <dtype> <shape> <id>" line');
    const [name, after] = readJsonString(line, 7, i, fail);
    const m = /^ ([A-Z][A-Z0-9_]*) (\[[0-9,]*\]) ([0-9a-f]{64})$/.exec(line.slice(after));
    if (!m || !DTYPE.test(m[1]!)) fail(i, 'expected " <DTYPE> [d0,d1,...] <64 hex digits>" after the tensor name');
    const shape = parseShape(m![2]!, i, fail);
    tensors.push({ name, dtype: m![1]!, shape, id: m![3]! });
  }
  return { kind: 'safetensors', size, header, metadata, tensors };
}

/** The next step for a pointer that is wrong in itself or disagrees with the store. */
export function badPointerHint(file: string): string {
  return `The pointer was edited by hand or damaged: \`git tensor fsck\` lists every bad pointer. Take ${file} from a commit ` +
    `where it is intact (\`git log -- ${file}\`, then \`git checkout <commit> -- ${file}\`), or add the original checkpoint again.`;
}

function invalidPointer(file: string, what: string, tensor?: string): never {
  throw new GitTensorError('E_POINTER_INVALID', `${file}: invalid pointer: ${what}`, { data: { file, tensor }, exitCode: ExitCode.badInput, hint: badPointerHint(file) });
}

/**
 * The byte length of each tensor line, in pointer order, after checking what the lines must satisfy
 * without the store: known dtypes, unique names, sizes that can be computed. Throws E_POINTER_INVALID
 * (exit 3) naming the file and tensor. Part of store/checkpoint.ts's validatePointer.
 */
export function pointerTensorLengths(p: Extract<Pointer, { kind: 'safetensors' }>, file: string): number[] {
  const seen = new Set<string>();
  return p.tensors.map((t) => {
    if (seen.has(t.name)) invalidPointer(file, `tensor \`${t.name}\` is listed twice`, t.name);
    seen.add(t.name);
    if (!isDType(t.dtype)) invalidPointer(file, `tensor \`${t.name}\` has unknown dtype ${t.dtype}`, t.name);
    try {
      return tensorByteLength(t.dtype as DType, t.shape, { tensor: t.name });
    } catch (err) {
      return invalidPointer(file, err instanceof Error ? err.message : String(err), t.name);
    }
  });
}

/** The `size` line must be the 8-byte prefix, the header and the tensors (`lengths`) laid end to end. */
export function checkPointerSize(p: Extract<Pointer, { kind: 'safetensors' }>, lengths: number[], file: string): void {
  const total = 8 + p.header.length + lengths.reduce((a, b) => a + b, 0);
  if (total !== p.size) invalidPointer(file, `size ${p.size}, but the 8-byte prefix, the ${p.header.length}-byte header and the tensors make ${total} bytes`);
}

type Fail = (line: number, what: string) => never;

function toSafeInt(digits: string, line: number, fail: Fail): number {
  if (digits.length > 1 && digits.startsWith('0')) fail(line, `number with a leading zero: ${digits}`);
  const n = Number(digits);
  if (!Number.isSafeInteger(n)) fail(line, `number out of range: ${digits}`);
  return n;
}

function parseCount(line: string, re: RegExp, lineNo: number, fail: Fail): number {
  const m = re.exec(line);
  if (!m) fail(lineNo, `expected ${re.source.replace(/[\^$\\()]/g, '').replace('d+', '<n>')}`);
  return toSafeInt(m![1]!, lineNo, fail);
}

function parseShape(text: string, line: number, fail: Fail): number[] {
  const inner = text.slice(1, -1);
  if (inner === '') return [];
  return inner.split(',').map((d) => (/^\d+$/.test(d) ? toSafeInt(d, line, fail) : fail(line, `bad shape ${text}`)));
}

/** Reads a JSON string literal starting at `start`; returns the value and the index after it. */
function readJsonString(line: string, start: number, lineNo: number, fail: Fail): [string, number] {
  if (line[start] !== '"') fail(lineNo, 'expected a JSON string');
  let j = start + 1;
  while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
  if (j >= line.length) fail(lineNo, 'unterminated JSON string');
  const literal = line.slice(start, j + 1);
  let value: unknown;
  try {
    value = JSON.parse(literal);
  } catch {
    fail(lineNo, `invalid JSON string ${literal}`);
  }
  // Canonical form only: the serialiser's own escaping, so one file maps to exactly one pointer text.
  if (JSON.stringify(value) !== literal) fail(lineNo, `non-canonical JSON string ${literal}`);
  return [value as string, j + 1];
}
