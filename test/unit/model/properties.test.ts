// Properties of the engine that follow from the equations rather than from a reference's numbers:
// Mistral's sliding window against RoPE's invariance to shifting every position, and the byte-level
// tokenizer's round trip.

import fc from 'fast-check';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { PROJECT_ROOT } from '../../helpers/repo.js';
import { loadModelDir, readJson } from './helpers.js';

const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures', 'models');
const MISTRAL = join(FIXTURES, 'mistral-tiny');

function maxRelativeDiff(a: Float32Array, b: Float32Array): number {
  let range = 0, worst = 0, lo = Infinity, hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    lo = Math.min(lo, b[i]!);
    hi = Math.max(hi, b[i]!);
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  range = hi - lo;
  return worst / range;
}

describe('sliding window (MistralForCausalLM)', () => {
  // With one layer, the last token under a window of w sees exactly the last w tokens; RoPE scores depend
  // only on position differences, so that equals running those w tokens alone from position 0.
  const ids = [5, 17, 3, 40, 22, 9, 31, 12, 8, 27];
  const oneLayer = (window: number | null) => ({ ...readJson(MISTRAL, 'config.json'), num_hidden_layers: 1, sliding_window: window });

  it('the last token under a window of 4 sees exactly the last 4 tokens', async () => {
    const windowed = await loadModelDir(MISTRAL, { config: oneLayer(4) });
    const full = await loadModelDir(MISTRAL, { config: oneLayer(null) });
    const [w] = await windowed.logits([{ ids, positions: [ids.length - 1] }]);
    const [tail] = await full.logits([{ ids: ids.slice(-4), positions: [3] }]);
    const [unwindowed] = await full.logits([{ ids, positions: [ids.length - 1] }]);
    expect(maxRelativeDiff(w!, tail!)).toBeLessThanOrEqual(1e-5);
    expect(maxRelativeDiff(w!, unwindowed!)).toBeGreaterThan(1e-3); // the window changed something
  });

  it('a window as long as the sequence changes nothing', async () => {
    const [a] = await (await loadModelDir(MISTRAL, { config: oneLayer(ids.length) })).logits([{ ids, positions: [9, 4] }]);
    const [b] = await (await loadModelDir(MISTRAL, { config: oneLayer(null) })).logits([{ ids, positions: [9, 4] }]);
    expect(a).toEqual(b);
  });
});

describe('tokenizer', () => {
  it('byte-level BPE (gpt2-tiny) decodes what it encodes, for any text', async () => {
    const tok = (await loadModelDir(join(FIXTURES, 'gpt2-tiny'))).tokenizer!;
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }), { numRuns: 200 });
  });
});
