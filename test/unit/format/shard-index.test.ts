// The shard index parser and its checks against the shards (src/format/shard-index.ts): each problem
// named with its severity, a consistent index passes, properties over random indexes, and a fuzz of the
// parser that must only ever throw ShardIndexError.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkShardIndex, isShardIndexPath, parseShardIndex, ShardIndexError, type ShardContents } from '../../../src/format/shard-index.js';

const FILE = 'model.safetensors.index.json';
const S1 = 'model-00001-of-00002.safetensors';
const S2 = 'model-00002-of-00002.safetensors';

function indexText(weightMap: Record<string, string>, totalSize?: unknown): string {
  return JSON.stringify({ metadata: totalSize === undefined ? {} : { total_size: totalSize }, weight_map: weightMap });
}

const shards = (entries: Record<string, [string, number, string?][] | null | 'opaque'>) =>
  new Map(Object.entries(entries).map(([k, v]): [string, ShardContents | null | 'opaque'] => [k, v === null || v === 'opaque' ? v : { tensors: v.map(([name, byteLength, id]) => ({ name, byteLength, id })) }]));

describe('parseShardIndex', () => {
  it('reads the weight_map, shards in first-use order, and total_size', () => {
    const index = parseShardIndex(indexText({ b: S2, a: S1, c: S2 }, 30), FILE);
    expect([...index.weightMap]).toEqual([['b', S2], ['a', S1], ['c', S2]]);
    expect(index.shards).toEqual([S2, S1]);
    expect(index.totalSize).toBe(30);
    expect(index.badTotalSize).toBe(false);
    // Without metadata (some writers omit it) there is nothing to check the size against.
    expect(parseShardIndex('{"weight_map": {}}', FILE)).toMatchObject({ totalSize: undefined, badTotalSize: false, shards: [] });
  });

  it.each([
    ['not json', 'not JSON'],
    ['[]', 'not a JSON object'],
    ['{"metadata": {}}', 'no "weight_map" object'],
    ['{"weight_map": []}', 'no "weight_map" object'],
    ['{"weight_map": {"a": 3}}', 'maps "a" to 3, not a file name'],
    ['{"weight_map": {"a": "../x.safetensors"}}', 'not a file name beside the index'],
    ['{"weight_map": {"a": "sub/x.safetensors"}}', 'not a file name beside the index'],
    ['{"weight_map": {"a": ""}}', 'not a file name beside the index'],
    ['{"weight_map": {}, "metadata": 3}', '"metadata" is not an object'],
  ])('%s is an E_SHARD_INDEX error (exit 3) naming the file: %s', (text, what) => {
    let err: unknown;
    try {
      parseShardIndex(text, FILE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShardIndexError);
    expect((err as ShardIndexError).code).toBe('E_SHARD_INDEX');
    expect((err as ShardIndexError).exitCode).toBe(3);
    expect((err as Error).message).toContain(`${FILE}: `);
    expect((err as Error).message).toContain(what);
    expect((err as ShardIndexError).hint).toContain('save_pretrained');
  });

  it('a total_size that is not a byte count is flagged, not fatal', () => {
    for (const bad of ['12', -1, 1.5, true]) expect(parseShardIndex(indexText({}, bad), FILE).badTotalSize).toBe(true);
  });

  it('recognises index file names', () => {
    expect(isShardIndexPath('model.safetensors.index.json')).toBe(true);
    expect(isShardIndexPath('unet/diffusion_pytorch_model.safetensors.index.json')).toBe(true);
    expect(isShardIndexPath('model.safetensors')).toBe(false);
    expect(isShardIndexPath('.safetensors.index.json')).toBe(false);
    expect(isShardIndexPath('pytorch_model.bin.index.json')).toBe(false);
  });
});

describe('checkShardIndex', () => {
  const consistent = () => parseShardIndex(indexText({ a: S1, b: S1, c: S2 }, 40), FILE);

  it('a consistent index has no problems', () => {
    expect(checkShardIndex(consistent(), shards({ [S1]: [['a', 10], ['b', 10]], [S2]: [['c', 20]] }), FILE)).toEqual([]);
  });

  it('names each problem, with its severity, in a fixed order', () => {
    const index = parseShardIndex(indexText({ a: S1, b: S1, c: S2, d: 'model-00003-of-00003.safetensors', e: S1 }, 7), FILE);
    const problems = checkShardIndex(index, shards({
      [S1]: [['a', 10, 'x'], ['e', 5, 'p']],
      [S2]: [['c', 20], ['b', 10], ['u', 4], ['e', 5, 'q']],
      'model-00003-of-00003.safetensors': null,
    }), FILE);
    expect(problems.map((p) => [p.severity, p.code, p.message])).toEqual([
      ['error', 'E_SHARD_MISSING', `${FILE} names shard model-00003-of-00003.safetensors, which is not there`],
      ['error', 'E_SHARD_TENSOR_MISSING', `${FILE} maps tensor b to ${S1}, which does not hold it (it is in ${S2})`],
      ['error', 'E_SHARD_TENSOR_TWICE', `tensor e is in 2 shards (${S1}, ${S2}) with different values; ${FILE} maps it to ${S1}`],
      ['warning', 'E_SHARD_TENSOR_UNMAPPED', `tensor u in ${S2} is not in ${FILE}'s weight_map (loaders that follow the index skip it)`],
    ]);
    // total_size is not judged while a mapped tensor is missing: the sum would be wrong either way.
  });

  it('the same tensor in two shards with the same id is a warning; a wrong total_size is a warning', () => {
    const index = parseShardIndex(indexText({ a: S1, b: S2 }, 99), FILE);
    const problems = checkShardIndex(index, shards({ [S1]: [['a', 10, 'x']], [S2]: [['b', 10, 'y'], ['a', 10, 'x']] }), FILE);
    expect(problems.map((p) => [p.severity, p.code])).toEqual([['warning', 'E_SHARD_TENSOR_TWICE'], ['warning', 'E_SHARD_TOTAL_SIZE']]);
    expect(problems[1]!.message).toBe(`${FILE}: metadata.total_size is 99, but the mapped tensors hold 20 bytes`);
  });

  it('a shard that is not a checkpoint is an error', () => {
    expect(checkShardIndex(consistent(), shards({ [S1]: [['a', 10], ['b', 10]], [S2]: 'opaque' }), FILE).map((p) => p.code)).toEqual(['E_SHARD_NOT_CHECKPOINT']);
  });

  const layoutArb = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 30 }).chain((names) =>
    fc.record({
      names: fc.constant(names),
      shardOf: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: names.length, maxLength: names.length }),
      sizes: fc.array(fc.integer({ min: 0, max: 1 << 20 }), { minLength: names.length, maxLength: names.length }),
    }));

  const build = (l: { names: string[]; shardOf: number[]; sizes: number[] }) => {
    const file = (k: number) => `model-0000${k + 1}-of-00004.safetensors`;
    const weightMap = Object.fromEntries(l.names.map((n, i) => [n, file(l.shardOf[i]!)]));
    const held: Record<string, [string, number, string][]> = {};
    l.names.forEach((n, i) => (held[file(l.shardOf[i]!)] ??= []).push([n, l.sizes[i]!, `id-${n}`]));
    return { weightMap, held, total: l.sizes.reduce((a, b) => a + b, 0) };
  };

  it('property: an index written from the shards (as save_pretrained does) has no problems', () => {
    fc.assert(fc.property(layoutArb, (l) => {
      const { weightMap, held, total } = build(l);
      const index = parseShardIndex(indexText(weightMap, total), FILE);
      expect(checkShardIndex(index, shards(held), FILE)).toEqual([]);
    }));
  });

  it('property: mapping one tensor to another shard is exactly one error naming it', () => {
    fc.assert(fc.property(layoutArb, fc.nat(), (l, pick) => {
      const { weightMap, held, total } = build(l);
      const name = l.names[pick % l.names.length]!;
      const wrong = Object.keys(held).find((s) => s !== weightMap[name]);
      fc.pre(wrong !== undefined);
      const index = parseShardIndex(indexText({ ...weightMap, [name]: wrong! }, total), FILE);
      const problems = checkShardIndex(index, shards(held), FILE);
      expect(problems.filter((p) => p.severity === 'error').map((p) => [p.code, p.tensor])).toEqual([['E_SHARD_TENSOR_MISSING', name]]);
    }));
  });

  it('fuzz: the parser throws nothing but ShardIndexError, whatever the text', () => {
    const jsonish = fc.oneof(
      fc.string(),
      fc.json(),
      fc.record({ metadata: fc.anything(), weight_map: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.anything())) }).map((o) => JSON.stringify(o)),
    );
    fc.assert(fc.property(jsonish, (text) => {
      try {
        const index = parseShardIndex(text, FILE);
        for (const s of index.shards) expect(s).not.toMatch(/[/\\\0]|^\.\.?$/);
      } catch (err) {
        expect(err).toBeInstanceOf(ShardIndexError);
      }
    }), { numRuns: 2000 });
  });
});
