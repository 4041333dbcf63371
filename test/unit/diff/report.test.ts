// The three reports of one analysis: the text table, the JSON schema (version 1) and the
// self-contained HTML page.

import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeCheckpoint, type CheckpointSource } from '../../../src/diff/analyze.js';
import { renderHtml } from '../../../src/diff/report-html.js';
import { DIFF_JSON_VERSION, renderJson } from '../../../src/diff/report-json.js';
import { renderText, sci } from '../../../src/diff/report-text.js';
import { parseTokenizer } from '../../../src/diff/tokens.js';
import type { CheckpointDiff } from '../../../src/diff/types.js';
import { addLowRank, addSparse, edit, f32Tensor, gaussianModel, moveRows, tokenizerJson } from '../../helpers/diff-models.js';
import type { TensorInput } from '../../helpers/models.js';

function source(tensors: TensorInput[], metadata: [string, string][] | null = null): CheckpointSource {
  return {
    size: tensors.reduce((s, t) => s + t.data.length, 0),
    metadata,
    tensors: tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], id: Buffer.from(t.data).toString('hex') })),
    read: (e) => tensors.find((t) => t.name === e.name)!.data,
  };
}

let d: CheckpointDiff;
beforeAll(async () => {
  const base = gaussianModel();
  let m = edit(base, 'model.layers.1.self_attn.q_proj.weight', (t) => addLowRank(t, 4));
  m = edit(m, 'model.layers.0.mlp.up_proj.weight', (t) => addSparse(t, 46).tensor);
  m = edit(m, 'model.embed_tokens.weight', (t) => moveRows(t, [9]));
  m = [...m, f32Tensor('extra.bias', [2], [1, 2])];
  const vocab = parseTokenizer(tokenizerJson(64, { 9: 'Ġvote' }), 'tokenizer.json');
  d = await analyzeCheckpoint('model.safetensors', source(base, [['step', '100']]), source(m, [['step', '200']]), { vocabulary: vocab, histogram: true });
});

describe('text', () => {
  it('a summary line, then the table of changed tensors only, modules, tokens and metadata', () => {
    const lines = renderText(d, { top: 20 });
    expect(lines[0]).toBe(`model.safetensors: 4/18 tensors changed (1 added), ||Δ||/||W|| ${sci(d.totals.relChange)}, 1 metadata key(s) changed`);
    expect(lines[1]).toMatch(/^ {2}st +tensor +shape +changed +\|\|Δ\|\| +\|\|Δ\|\|\/\|\|W\|\| +cos +max\|Δ\| +kind$/);
    expect(lines[2]).toMatch(/^ {2}\+ +extra\.bias +\[2\] .*added F32 \[2\]$/);
    expect(lines.find((l) => l.includes('q_proj'))).toMatch(/^ {2}! .*100% .*low-rank r=4 \(stable/);
    expect(lines.find((l) => l.includes('up_proj'))).toMatch(/1\.00% .*sparse 1\.0% of elements, scattered/);
    expect(lines.some((l) => l.includes('k_proj'))).toBe(false);
    expect(lines).toContain('  14 tensor(s) unchanged');
    expect(lines.find((l) => l.startsWith('  tokens:'))).toMatch(/model\.embed_tokens\.weight rows moved most: " vote" /);
    expect(lines).toContain('  metadata "step": "100" -> "200"');
  });

  it('--top limits the rows and says how many are left', () => {
    const lines = renderText(d, { top: 1 });
    expect(lines.filter((l) => /^ {2}[!+~-] /.test(l))).toHaveLength(1);
    expect(lines).toContain('  ... 3 more changed tensor(s); `git tensor diff --top 0` lists all');
  });
});

describe('json', () => {
  it('follows schema version 1', () => {
    const j = renderJson({ old: 'HEAD~1', new: 'HEAD', files: [d] });
    expect(j.version).toBe(DIFF_JSON_VERSION);
    expect(j.version).toBe(1);
    const f = j.files[0]!;
    expect(f).toMatchObject({ path: 'model.safetensors', status: 'modified', format: 'safetensors', summary: { tensors: 18, changed: 3, added: 1, removed: 0, unchanged: 14 } });
    const q = f.tensors.find((t) => t.name === 'model.layers.1.self_attn.q_proj.weight')!;
    expect(q).toMatchObject({ status: 'changed', kind: 'low-rank', changed_fraction: 1, rank: { effective: 4, exact: true } });
    for (const key of ['rel_change', 'cosine', 'norm_delta', 'max_abs_delta']) expect(typeof (q as Record<string, unknown>)[key]).toBe('number');
    const added = f.tensors.find((t) => t.name === 'extra.bias')!;
    expect(added).toMatchObject({ status: 'added', rel_change: null, cosine: null, rank: null });
    const unchanged = f.tensors.find((t) => t.status === 'unchanged')!;
    expect(unchanged).toMatchObject({ kind: 'unchanged', rel_change: 0 });
    expect(f.tokens[0]!.top[0]).toMatchObject({ id: 9, token: 'Ġvote', text: ' vote' });
    expect(f.metadata).toEqual([{ key: 'step', old: '100', new: '200' }]);
    // Round-trips through JSON without NaN or Infinity.
    expect(JSON.parse(JSON.stringify(j))).toEqual(j);
  });
});

describe('html', () => {
  it('is one self-contained page: no scripts, no external resources', () => {
    const html = renderHtml({ old: 'HEAD~1', new: 'HEAD', files: [d] });
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<script|<link|@import|url\(http|src=|href=/i);
    const external = [...html.matchAll(/https?:\/\/[^\s"']+/g)].map((m) => m[0]);
    expect(external.every((u) => u === 'http://www.w3.org/2000/svg')).toBe(true);
    expect(html).toContain('aria-label="heatmap of relative change"');
    expect(html).toContain('aria-label="histogram of delta"');
    expect(html).toContain('model.layers.1.self_attn.q_proj.weight');
    expect(html).toContain('&quot; vote&quot;');
  });

  it('escapes names', () => {
    const evil: CheckpointDiff = { ...d, path: '<b>x</b>.safetensors' };
    const html = renderHtml({ old: 'a', new: 'b', files: [evil] });
    expect(html).toContain('&lt;b&gt;x&lt;/b&gt;.safetensors');
    expect(html).not.toContain('<b>x</b>');
  });
});
