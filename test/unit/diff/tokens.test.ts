// tokenizer.json parsing (object and list vocabularies, added tokens), byte-level and ▁ decoding, and
// which tensors count as token matrices.

import { describe, expect, it } from 'vitest';
import { isTokenMatrix, parseTokenizer, tokenText, topTokenMoves } from '../../../src/diff/tokens.js';
import { GitTensorError } from '../../../src/errors/index.js';
import { tokenizerJson } from '../../helpers/diff-models.js';

describe('parseTokenizer', () => {
  it('reads a BPE vocabulary (token -> id) and added tokens', () => {
    const v = parseTokenizer(tokenizerJson(10, { 3: 'Ġelection' }), 'tok.json');
    expect(v.size).toBe(10);
    expect(v.tokens[3]).toBe('Ġelection');
    expect(v.tokens[0]).toBe('<|endoftext|>');
    expect(v.style).toBe('byte-level');
  });

  it('reads a Unigram vocabulary ([token, score] list, index = id) with ▁ spaces', () => {
    const json = JSON.stringify({ decoder: { type: 'Metaspace', replacement: '\u2581' }, model: { type: 'Unigram', vocab: [['<unk>', 0], ['\u2581ballot', -3.2], ['s', -4]] } });
    const v = parseTokenizer(json, 't');
    expect(v.size).toBe(3);
    expect(v.style).toBe('metaspace');
    expect(tokenText(v.tokens[1]!, v.style)).toBe(' ballot');
  });

  it('refuses a file without a vocabulary with a coded error', () => {
    for (const bad of ['not json', '{"model":{}}', '{"model":{"vocab":{}}}']) {
      expect(() => parseTokenizer(bad, 'x.json')).toThrow(GitTensorError);
    }
  });
});

describe('tokenText', () => {
  it('decodes GPT-2 byte-level spellings to text', () => {
    expect(tokenText('Ġelection', 'byte-level')).toBe(' election');
    expect(tokenText('Ċ', 'byte-level')).toBe('\n');
    // "é" is two UTF-8 bytes, each spelled as one code point
    expect(tokenText('Ã©', 'byte-level')).toBe('é');
    expect(tokenText('##ing', 'plain')).toBe('##ing');
  });
});

describe('isTokenMatrix', () => {
  it('needs a known name, 2-D, and vocab <= rows < vocab + padding', () => {
    expect(isTokenMatrix('model.embed_tokens.weight', [32000, 4096], 32000)).toBe(true);
    expect(isTokenMatrix('lm_head.weight', [32064, 4096], 32000)).toBe(true);
    expect(isTokenMatrix('transformer.wte.weight', [50257, 768], 50257)).toBe(true);
    expect(isTokenMatrix('bert.embeddings.word_embeddings.weight', [30522, 768], 30522)).toBe(true);
    expect(isTokenMatrix('model.layers.0.mlp.up_proj.weight', [32000, 4096], 32000)).toBe(false);
    expect(isTokenMatrix('lm_head.weight', [4096, 32000], 32000)).toBe(false);
    expect(isTokenMatrix('lm_head.weight', [31999, 4096], 32000)).toBe(false);
  });
});

describe('topTokenMoves', () => {
  it('lists changed rows by ||Δ row||, ties by id, padding rows named by index', () => {
    const v = parseTokenizer(tokenizerJson(3, { 1: 'Ġa', 2: 'b' }), 't');
    const moves = topTokenMoves(Float64Array.of(0, 4, 4, 9), Float64Array.of(1, 1, 0, 1), v, 10);
    expect(moves.map((m) => [m.id, m.text, m.change, m.relChange])).toEqual([[3, '<row 3>', 3, 3], [1, ' a', 2, 2], [2, 'b', 2, null]]);
  });
});
