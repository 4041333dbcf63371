// A user adds checkpoints, commits, deletes them and checks them out again: they get back exactly the
// bytes they had, git commits a small readable pointer instead, and the work tree is clean afterwards.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { everyDtypeTensors, handWritten, makeTensor, randomBytes, replaceTensors, tinyModel, toSafetensors } from '../helpers/models.js';
import { makeRepo, pointerAt, pointerTensors, type Repo } from '../helpers/repo.js';
import { orSkipped, sharedDir } from '../helpers/shared.js';

/** add, commit, delete, check out: returns what came back and the committed pointer. */
function roundTrip(repo: Repo, path: string, bytes: Buffer): { restored: Buffer; pointer: string } {
  repo.write(path, bytes);
  repo.commit([path], `add ${path}`);
  repo.remove(path);
  repo.git(['checkout', '--', path]);
  const restored = repo.read(path);
  expect(repo.git(['status', '--porcelain']).stdout).toBe('');
  return { restored, pointer: pointerAt(repo, 'HEAD', path) };
}

function expectSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  // Comparing buffers with toEqual would print megabytes on failure; say where they first differ.
  if (actual.equals(expected)) return;
  let at = 0;
  while (at < Math.min(actual.length, expected.length) && actual[at] === expected[at]) at++;
  expect.fail(`${what}: restored ${actual.length} bytes differ from the original ${expected.length} bytes at offset ${at}`);
}

interface CatalogRow {
  file: string;
  path: string;
  bytes: number;
  nTensors: number | null;
  note: string;
}

// The real checkpoints of ../shared; a fresh clone has none and skips their tests.
const real = sharedDir('fixtures', 'real-safetensors');
const REAL_FIXTURES_DIR = real.dir;

function readCatalog(): CatalogRow[] {
  const [head, ...lines] = readFileSync(join(REAL_FIXTURES_DIR, 'CATALOG.tsv'), 'utf8').trimEnd().split('\n');
  const cols = head!.split('\t');
  return lines.map((line) => {
    const f = line.split('\t');
    const get = (name: string) => f[cols.indexOf(name)] ?? '';
    return {
      file: get('file'),
      path: get('path'),
      bytes: Number(get('bytes')),
      nTensors: /^\d+$/.test(get('n_tensors')) ? Number(get('n_tensors')) : null,
      note: get('note'),
    };
  });
}

const catalog = real.skip ? [] : readCatalog();
const valid = catalog.filter((r) => !/MALFORMED/i.test(r.note));
const malformed = catalog.filter((r) => /MALFORMED/i.test(r.note));

describe('add, commit, rm, checkout gives back the exact bytes', () => {
  it('for a file holding one tensor of every dtype', () => {
    const repo = makeRepo();
    const tensors = everyDtypeTensors();
    const bytes = toSafetensors(tensors, { format: 'pt' });
    const { restored, pointer } = roundTrip(repo, 'dtypes.safetensors', bytes);
    expectSameBytes(restored, bytes, 'dtypes.safetensors');
    const listed = pointerTensors(pointer);
    expect(listed.map((t) => t.dtype).sort()).toEqual(tensors.map((t) => t.dtype).sort());
  });

  it.skipIf(real.skip)(orSkipped('for every real checkpoint in the fixture catalog', real), () => {
    expect(valid.length).toBeGreaterThan(5);
    const repo = makeRepo();
    // Each fixture under its own folder, as the checkpoints of several projects would be.
    const paths = valid.map((r, k) => `ckpt${k}/${r.path.split('/').pop()}`);
    valid.forEach((r, k) => repo.write(paths[k]!, readFileSync(join(REAL_FIXTURES_DIR, r.file))));
    repo.commit(['.'], 'real checkpoints');
    for (const p of paths) repo.remove(p);
    repo.git(['checkout', '--', '.']);
    expect(repo.git(['status', '--porcelain']).stdout).toBe('');
    valid.forEach((r, k) => {
      const original = readFileSync(join(REAL_FIXTURES_DIR, r.file));
      expect(original.length, r.file).toBe(r.bytes);
      expectSameBytes(repo.read(paths[k]!), original, r.file);
      const pointer = pointerAt(repo, 'HEAD', paths[k]!);
      expect(pointer.startsWith('git-tensor v1 safetensors\n'), r.file).toBe(true);
      if (r.nTensors !== null) expect(pointerTensors(pointer).length, r.file).toBe(r.nTensors);
    });
  });

  it.skipIf(real.skip)(orSkipped('refuses the malformed catalog file at `git add`, naming it', real), () => {
    expect(malformed.length).toBeGreaterThan(0);
    const repo = makeRepo();
    for (const r of malformed) {
      const name = r.path.split('/').pop()!;
      repo.write(name, readFileSync(join(REAL_FIXTURES_DIR, r.file)));
      const add = repo.git(['add', name], { allowFail: true });
      expect(add.status, r.file).not.toBe(0);
      expect(add.stderr).toContain(name);
      expect(add.stderr).toMatch(/git-tensor: error\[E_ST_/);
      expect(add.stderr).toContain('hint:');
      expect(repo.git(['ls-files', '--', name]).stdout).toBe('');
    }
  });

  it('for a file with no tensors, with and without metadata', () => {
    const repo = makeRepo();
    for (const [path, bytes] of [
      ['empty.safetensors', toSafetensors([])],
      ['empty-meta.safetensors', toSafetensors([], { note: 'nothing here' })],
    ] as const) {
      const { restored, pointer } = roundTrip(repo, path, bytes);
      expectSameBytes(restored, bytes, path);
      expect(pointerTensors(pointer)).toEqual([]);
    }
  });

  it('for zero-size tensors among ordinary ones', () => {
    const repo = makeRepo();
    const tensors = [
      makeTensor('a.empty', 'F32', [0]),
      makeTensor('b.no_cols', 'F16', [4, 0]),
      makeTensor('c.no_rows', 'I64', [0, 5]),
      makeTensor('d.real', 'F32', [4, 4]),
      makeTensor('e.empty_sub_byte', 'F4', [0, 3]),
    ];
    const bytes = toSafetensors(tensors);
    const { restored, pointer } = roundTrip(repo, 'zeros.safetensors', bytes);
    expectSameBytes(restored, bytes, 'zeros.safetensors');
    expect(pointerTensors(pointer).map((t) => [t.name, t.shape])).toEqual(expect.arrayContaining([
      ['a.empty', [0]], ['b.no_cols', [4, 0]], ['c.no_rows', [0, 5]], ['e.empty_sub_byte', [0, 3]],
    ]));
  });

  it('for scalar tensors (shape [])', () => {
    const repo = makeRepo();
    const tensors = [
      makeTensor('step', 'I64', []),
      makeTensor('loss_scale', 'F32', []),
      makeTensor('flag', 'BOOL', []),
      makeTensor('weight', 'BF16', [2, 3]),
    ];
    const bytes = toSafetensors(tensors);
    const { restored, pointer } = roundTrip(repo, 'scalars.safetensors', bytes);
    expectSameBytes(restored, bytes, 'scalars.safetensors');
    expect(pointerTensors(pointer).find((t) => t.name === 'step')?.shape).toEqual([]);
  });

  it('for non-ASCII tensor names and metadata', () => {
    const repo = makeRepo();
    const names = ['层.权重', 'émbed.ünïcode', '🤗.weight', 'name with spaces', 'quote"and\\backslash', 'ŝ\u0301.combining',
      'new\nline', 'nul\u0000char', 'del\u007f', 'line\u2028separator', 'tab\tand\rreturn'];
    const tensors = names.map((n, k) => makeTensor(n, 'F32', [k + 1, 2]));
    const metadata = { '描述': '小模型 ✓', emoji: '🚀🧪', 'line\nbreak': 'tab\there' };
    const bytes = toSafetensors(tensors, metadata);
    const { restored, pointer } = roundTrip(repo, 'unicode.safetensors', bytes);
    expectSameBytes(restored, bytes, 'unicode.safetensors');
    expect(pointerTensors(pointer).map((t) => t.name).sort()).toEqual([...names].sort());
    expect(pointer).toContain('小模型 ✓');
  });

  it('for headers laid out by hand: unpadded, pretty-printed, fields and tensors in any order', () => {
    const repo = makeRepo();
    const a = randomBytes('hand/a', 8);
    const b = randomBytes('hand/b', 6);
    const files: [string, Buffer][] = [
      // Header order differs from data order, metadata last, no padding (header length not a multiple of 8).
      ['unpadded.safetensors', handWritten(
        '{"b":{"dtype":"I16","shape":[3],"data_offsets":[8,14]},"a":{"shape":[2],"dtype":"F32","data_offsets":[0,8]},"__metadata__":{"z":"1","a":"2"}}',
        Buffer.concat([a, b]))],
      // Pretty-printed with newlines and tabs, padded with spaces.
      ['pretty.safetensors', handWritten(
        '{\n\t"a": {\n\t\t"dtype": "F32",\n\t\t"shape": [2],\n\t\t"data_offsets": [0, 8]\n\t}\n}\n',
        a, { pad: true })],
      // Escaped characters in names that a different writer would have spelled literally.
      ['escaped.safetensors', handWritten('{"\\u00e9t\\u00e9":{"dtype":"U8","shape":[6],"data_offsets":[0,6]}}', b, { pad: true })],
    ];
    for (const [path, bytes] of files) {
      const { restored } = roundTrip(repo, path, bytes);
      expectSameBytes(restored, bytes, path);
    }
  });

  it('for tensors spanning many chunks, with sizes that do not divide evenly', () => {
    const repo = makeRepo();
    const tensors = [
      makeTensor('sub_byte.f4', 'F4', [1001, 334]),
      makeTensor('sub_byte.f6', 'F6_E3M2', [1000, 333]),
      makeTensor('wide_rows', 'F32', [3, 70_001]),
      makeTensor('odd', 'BF16', [257, 259]),
      makeTensor('exact', 'U8', [4, 65_536]),
    ];
    const bytes = toSafetensors(tensors);
    const { restored } = roundTrip(repo, 'chunks.safetensors', bytes);
    expectSameBytes(restored, bytes, 'chunks.safetensors');
  });

  it('with core.autocrlf=true in the user config', () => {
    const repo = makeRepo({ track: ['*.safetensors', '*.bin'] });
    repo.git(['config', '--global', 'core.autocrlf', 'true']);
    // Plenty of CR LF and lone LF bytes in the tensor data and the opaque file.
    const crlf = Buffer.from('\r\n\n\r'.repeat(4096), 'latin1');
    const bytes = toSafetensors([{ name: 'text_like', dtype: 'U8', shape: [crlf.length], data: crlf }, makeTensor('w', 'F32', [64, 64])]);
    const model = roundTrip(repo, 'model.safetensors', bytes);
    expectSameBytes(model.restored, bytes, 'model.safetensors');
    const other = roundTrip(repo, 'crlf.bin', crlf);
    expectSameBytes(other.restored, crlf, 'crlf.bin');
  });

  it('for an empty tracked opaque file', () => {
    const repo = makeRepo({ track: ['*.safetensors', '*.bin'] });
    const { restored, pointer } = roundTrip(repo, 'empty.bin', Buffer.alloc(0));
    expect(restored.length).toBe(0);
    expect(pointer.startsWith('git-tensor v1 opaque\nsize 0\n')).toBe(true);
  });

  it('for a tracked opaque file shorter than the pointer magic', () => {
    const repo = makeRepo({ track: ['*.safetensors', '*.bin'] });
    const bytes = Buffer.from('git-tensor', 'latin1');
    const { restored } = roundTrip(repo, 'short.bin', bytes);
    expectSameBytes(restored, bytes, 'short.bin');
  });

  it('under a non-ASCII file name', () => {
    const repo = makeRepo();
    const bytes = toSafetensors(tinyModel({ seed: 'ü' }));
    const { restored } = roundTrip(repo, 'modèles/模型 v1.safetensors', bytes);
    expectSameBytes(restored, bytes, 'modèles/模型 v1.safetensors');
  });

  it('for a tracked file that is not safetensors, stored opaquely', () => {
    const repo = makeRepo({ track: ['*.safetensors', '*.bin'] });
    const bytes = randomBytes('opaque', 1 << 20);
    const { restored, pointer } = roundTrip(repo, 'pytorch_model.bin', bytes);
    expectSameBytes(restored, bytes, 'pytorch_model.bin');
    expect(pointer.startsWith('git-tensor v1 opaque\n')).toBe(true);
    expect(pointer).toContain(`size ${1 << 20}`);
    expect(Buffer.byteLength(pointer)).toBeLessThan(1024);
  });
});

describe('the committed pointer', () => {
  it('is small text, one line per tensor, instead of the checkpoint', () => {
    const repo = makeRepo();
    const tensors = tinyModel({ layers: 3, hidden: 64 });
    const bytes = toSafetensors(tensors, { format: 'pt' });
    repo.write('model.safetensors', bytes);
    repo.commit(['model.safetensors'], 'model');

    const blob = repo.git(['cat-file', '-p', 'HEAD:model.safetensors']).stdout;
    expect(blob.startsWith('git-tensor v1 safetensors\n')).toBe(true);
    expect(Buffer.byteLength(blob)).toBeLessThan(bytes.length / 10);
    expect(blob).not.toContain('\0');
    const listed = pointerTensors(blob);
    expect(listed.length).toBe(tensors.length);
    expect(blob.split('\n').filter((l) => l.startsWith('tensor ')).length).toBe(tensors.length);
    expect(listed.map((t) => t.name).sort()).toEqual(tensors.map((t) => t.name).sort());
    for (const t of tensors) expect(listed.find((l) => l.name === t.name)).toMatchObject({ dtype: t.dtype, shape: t.shape });
    expect(blob).toContain(`size ${bytes.length}`);
  });

  it('diffs as text showing exactly the tensors that changed', () => {
    const repo = makeRepo();
    const tensors = tinyModel({ seed: 'diff' });
    repo.write('model.safetensors', toSafetensors(tensors));
    repo.commit(['model.safetensors'], 'v1');
    repo.write('model.safetensors', toSafetensors(replaceTensors(tensors, ['model.layers.0.mlp.up_proj.weight'])));
    // The raw pointer diff, whatever diff driver is configured.
    const diff = repo.git(['diff', '--no-ext-diff', '--no-textconv', '--', 'model.safetensors']).stdout;
    const changed = diff.split('\n').filter((l) => /^[-+]tensor /.test(l));
    expect(changed.length).toBe(2);
    for (const l of changed) expect(l).toContain('"model.layers.0.mlp.up_proj.weight" F32 [64,32]');
    expect(diff).not.toContain('Binary files');
  });

  it('is the same for the same file added in two repositories', () => {
    const bytes = toSafetensors(tinyModel({ seed: 'shared' }), { format: 'pt' });
    const first = makeRepo();
    first.write('model.safetensors', bytes);
    first.commit(['model.safetensors'], 'model');

    // The second repository's store already holds other objects and it lives at another path: neither
    // may change the pointer.
    const second = makeRepo();
    second.write('other.safetensors', toSafetensors(tinyModel({ seed: 'other' })));
    second.commit(['other.safetensors'], 'other');
    second.write('model.safetensors', bytes);
    second.commit(['model.safetensors'], 'model');

    expect(pointerAt(second, 'HEAD', 'model.safetensors')).toBe(pointerAt(first, 'HEAD', 'model.safetensors'));
    expect(second.git(['rev-parse', 'HEAD:model.safetensors']).stdout).toBe(first.git(['rev-parse', 'HEAD:model.safetensors']).stdout);
  });
});
