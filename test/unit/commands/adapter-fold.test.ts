// `git tensor fold` on half-precision bases: base + ΔW is computed in f32 and rounded once to the base's
// dtype (round to nearest even), checked against base + the float64 reference ΔW rounded to the dtype
// (test/helpers/adapters.ts). f32 then BF16/F16 is a double rounding, so an element may sit one ulp of the
// dtype away from the single-rounded reference when the f32 value lands on a tie; nearly all are equal.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fold } from '../../../src/commands/fold.js';
import { parseSafetensors, serializeSafetensors } from '../../../src/format/safetensors.js';
import { makeAdapter, referenceDelta } from '../../helpers/adapters.js';
import { gaussian } from '../../helpers/diff-models.js';
import { decode, encode, roundTo, ulp, type FloatDType } from '../../helpers/merge-models.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.each(['BF16', 'F16'] as FloatDType[])('fold into a %s base', (dtype) => {
  it('rounds base + ΔW once to the base dtype and keeps the other tensors and the header', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gt-fold-'));
    dirs.push(dir);
    const out = 48, inn = 40, r = 8;
    const w = gaussian(`w${dtype}`, out * inn, 0.5).map((x) => roundTo(dtype, x));
    const bias = gaussian(`b${dtype}`, out, 0.5).map((x) => roundTo(dtype, x));
    const baseBytes = serializeSafetensors([
      { name: 'enc.fc.bias', dtype, shape: [out], data: encode(dtype, bias) },
      { name: 'enc.fc.weight', dtype, shape: [out, inn], data: encode(dtype, w) },
    ], { note: 'kept' });
    writeFileSync(join(dir, 'model.safetensors'), baseBytes);
    const made = makeAdapter(join(dir, 'ad'), { modules: [{ module: 'enc.fc', out, in: inn }], r, alpha: 16, seed: dtype, magnitude: 0.2 });
    await fold({ adapters: [join(dir, 'ad')], base: join(dir, 'model.safetensors'), output: join(dir, 'folded.safetensors') });

    const folded = readFileSync(join(dir, 'folded.safetensors'));
    const headerEnd = 8 + Number(baseBytes.readBigUInt64LE(0));
    expect(folded.subarray(0, headerEnd).equals(baseBytes.subarray(0, headerEnd))).toBe(true);
    const h = parseSafetensors(folded);
    const slice = (name: string) => { const t = h.tensors.find((x) => x.name === name)!; return folded.subarray(headerEnd + t.begin, headerEnd + t.end); };
    expect(slice('enc.fc.bias').equals(encode(dtype, bias))).toBe(true);
    const { a, b } = made.factors.get('enc.fc')!;
    const d = referenceDelta(a, b, r, out, inn, 2, false);
    const got = decode(dtype, slice('enc.fc.weight'));
    let exact = 0;
    for (let i = 0; i < got.length; i++) {
      const want = roundTo(dtype, w[i]! + d[i]!);
      expect(Math.abs(got[i]! - want)).toBeLessThanOrEqual(ulp(dtype, want));
      if (got[i] === want) exact++;
    }
    expect(exact / got.length).toBeGreaterThan(0.99);
  });
});
