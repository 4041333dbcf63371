// `git tensor diff --html <file>` writes a self-contained page; headless Chromium renders it to a PNG
// that is checked to be a real picture (size, many colours, the heatmap's and histogram's colours).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { addDense, addLowRank, addSparse, edit, gaussianModel, moveRows, rescale, tokenizerJson } from '../helpers/diff-models.js';
import { toSafetensors } from '../helpers/models.js';
import { makeRepo } from '../helpers/repo.js';

const CHROMIUM = '/usr/bin/chromium';

interface Image {
  width: number;
  height: number;
  /** RGB triples, row by row. */
  rgb: Uint8Array;
}

/** Minimal PNG reader: 8-bit RGB or RGBA, non-interlaced (what Chromium writes). */
function decodePng(png: Buffer): Image {
  expect(png.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]))).toBe(true);
  let at = 8, width = 0, height = 0, colorType = 0;
  const idat: Buffer[] = [];
  while (at < png.length) {
    const len = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect(data[8]).toBe(8); // bit depth
      colorType = data[9]!;
      expect(data[12]).toBe(0); // not interlaced
    } else if (type === 'IDAT') idat.push(data);
    at += 12 + len;
  }
  const bpp = colorType === 6 ? 4 : colorType === 2 ? 3 : 0;
  expect(bpp, `PNG colour type ${colorType}`).toBeGreaterThan(0);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const out = new Uint8Array(width * height * bpp);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x]!;
      const a = x >= bpp ? out[y * stride + x - bpp]! : 0;
      const b = y > 0 ? out[(y - 1) * stride + x]! : 0;
      const c = x >= bpp && y > 0 ? out[(y - 1) * stride + x - bpp]! : 0;
      let p: number;
      if (filter === 0) p = v;
      else if (filter === 1) p = v + a;
      else if (filter === 2) p = v + b;
      else if (filter === 3) p = v + ((a + b) >> 1);
      else {
        const e = a + b - c, pa = Math.abs(e - a), pb = Math.abs(e - b), pc = Math.abs(e - c);
        p = v + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      out[y * stride + x] = p & 0xff;
    }
  }
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) rgb.set(out.subarray(i * bpp, i * bpp + 3), i * 3);
  return { width, height, rgb };
}

function colourCounts(img: Image): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < img.rgb.length; i += 3) {
    const key = (img.rgb[i]! << 16) | (img.rgb[i + 1]! << 8) | img.rgb[i + 2]!;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

describe('git tensor diff --html', () => {
  const hasChromium = existsSync(CHROMIUM);

  it('writes a self-contained page', () => {
    const repo = makeRepo();
    const base = gaussianModel({ layers: 4 });
    repo.write('model.safetensors', toSafetensors(base));
    repo.commit(['model.safetensors'], 'base');
    const out = repo.gitTensor(['diff', '--html', 'report.html', '--', 'model.safetensors']).stdout;
    expect(out).toMatch(/no checkpoint changes/);
    repo.write('model.safetensors', toSafetensors(edit(base, 'model.layers.2.mlp.up_proj.weight', (t) => addDense(t))));
    expect(repo.gitTensor(['diff', '--html', 'report.html']).stdout).toMatch(/wrote report\.html$/m);
    const html = repo.read('report.html').toString('utf8');
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).not.toMatch(/<script|<link|src=|href=/i);
    expect(html).toContain('model.layers.2.mlp.up_proj.weight');
  });

  const screenshot = hasChromium ? it : it.skip;
  screenshot(`renders in headless Chromium${hasChromium ? '' : ` (skipped: ${CHROMIUM} is not installed; apt-get install chromium)`}`, () => {
    const repo = makeRepo();
    const base = gaussianModel({ layers: 6, vocab: 64 });
    repo.write('model.safetensors', toSafetensors(base));
    repo.write('tokenizer.json', tokenizerJson(64, { 7: 'Ġelection', 30: 'Ġballot' }));
    repo.commit(['model.safetensors', 'tokenizer.json'], 'base');
    let m = base;
    for (let layer = 0; layer < 6; layer++) m = edit(m, `model.layers.${layer}.self_attn.q_proj.weight`, (t) => addLowRank(t, 2, 0.002 * (layer + 1), `l${layer}`));
    m = edit(m, 'model.layers.3.mlp.up_proj.weight', (t) => addDense(t, 0.01));
    m = edit(m, 'model.layers.5.mlp.down_proj.weight', (t) => addSparse(t, 100).tensor);
    m = edit(m, 'model.layers.1.self_attn.v_proj.weight', (t) => rescale(t, 1.2));
    m = edit(m, 'model.embed_tokens.weight', (t) => moveRows(t, [7, 30]));
    repo.write('model.safetensors', toSafetensors(m));
    repo.commit(['model.safetensors'], 'fine-tune');
    repo.gitTensor(['diff', 'HEAD~1', 'HEAD', '--html', 'report.html']);

    const dir = mkdtempSync(join(tmpdir(), 'git-tensor-chromium-'));
    try {
      const png = join(dir, 'shot.png');
      const r = spawnSync(CHROMIUM, [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, 'profile')}`, `--screenshot=${png}`,
        '--window-size=1200,900', `file://${repo.path('report.html')}`,
      ], { encoding: 'utf8', timeout: 90_000, env: { ...process.env, HOME: dir } });
      expect(existsSync(png), `chromium exited ${r.status}: ${r.stderr}`).toBe(true);
      expect(statSync(png).size).toBeGreaterThan(20_000);
      const img = decodePng(readFileSync(png));
      expect([img.width, img.height]).toEqual([1200, 900]);
      const counts = colourCounts(img);
      // Not blank: many colours, and no single colour covers almost everything.
      expect(counts.size).toBeGreaterThan(100);
      expect(Math.max(...counts.values())).toBeLessThan(0.95 * img.width * img.height);
      // The histogram's bars (#2563eb up, #dc2626 down) are drawn.
      expect(counts.get(0x2563eb) ?? 0).toBeGreaterThan(200);
      expect(counts.get(0xdc2626) ?? 0).toBeGreaterThan(200);
      // The heatmap uses the viridis scale: its ends are bright yellow and dark purple.
      const viridisLike = [...counts.entries()].filter(([c, n]) => n > 50 && ((c >> 16) & 0xff) > 150 && ((c >> 8) & 0xff) > 180 && (c & 0xff) < 90);
      expect(viridisLike.length).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
