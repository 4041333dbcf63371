// Measures the inference engine's peak RSS and time on a random BF16 Llama (156M parameters, untied head)
// written to a temp folder: the numbers of docs/model.md's "Batching and memory" table. The engine holds
// the checkpoint's BF16 matrices as stored, so its peak should sit near the checkpoint's size (297 MiB),
// not near the F32 size (594 MiB) it needed when it widened every weight at load.
//
// Usage: npx tsx scripts/measure-model-memory.ts [--runs N] [tokens...] | --matmul [--runs N]   (default: 3 runs of 16 and 256
// tokens; GIT_TENSOR_KERNELS=js for the TypeScript kernels). Each measurement runs in a fresh process
// (peak RSS is process.resourceUsage().maxRSS); a row gives the medians of its N runs.
// `--matmul [--runs N]`: instead, the matmul kernel alone on this model's shapes with the same weights as
// F32 and as BF16, alternating in one process (default 11 runs): what widening W inside the kernel costs.

import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { serializeHeader } from '../src/format/safetensors.js';
import { fromF32, kernelInfo, matmul, toF32 } from '../src/kernels/index.js';
import { fileTensorSource, loadModel } from '../src/model/index.js';

const E = 1024, F = 2816, L = 8, H = 16, KV = 4, D = 64, V = 32000;

function writeModel(dir: string): void {
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [V, E]], ['model.norm.weight', [E]], ['lm_head.weight', [V, E]]];
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    shapes.push([`${p}.input_layernorm.weight`, [E]], [`${p}.post_attention_layernorm.weight`, [E]],
      [`${p}.self_attn.q_proj.weight`, [H * D, E]], [`${p}.self_attn.k_proj.weight`, [KV * D, E]], [`${p}.self_attn.v_proj.weight`, [KV * D, E]],
      [`${p}.self_attn.o_proj.weight`, [E, H * D]], [`${p}.mlp.gate_proj.weight`, [F, E]], [`${p}.mlp.up_proj.weight`, [F, E]],
      [`${p}.mlp.down_proj.weight`, [E, F]]);
  }
  const header = serializeHeader(shapes.map(([name, shape]) => ({ name, dtype: 'BF16' as const, shape, byteLength: shape.reduce((a, b) => a * b, 1) * 2 })));
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  writeSync(fd, header.prefix);
  writeSync(fd, header.headerBytes);
  let seed = 1;
  const f = new Float32Array(1), bits = new Uint32Array(f.buffer);
  for (const t of header.layout) {
    const out = new Uint16Array((t.end - t.begin) / 2);
    const norm = t.name.endsWith('norm.weight');
    for (let i = 0; i < out.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      f[0] = norm ? 1 : (seed / 2 ** 32 - 0.5) * 0.06;
      out[i] = bits[0]! >>> 16;
    }
    writeSync(fd, new Uint8Array(out.buffer));
  }
  closeSync(fd);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], hidden_size: E, intermediate_size: F, num_hidden_layers: L, num_attention_heads: H,
    num_key_value_heads: KV, vocab_size: V, max_position_embeddings: 2048, rms_norm_eps: 1e-5, tie_word_embeddings: false,
  }));
}

const mib = (b: number) => (b / 2 ** 20).toFixed(0);

interface Measurement {
  checkpoint: number;
  f32: number;
  before: number;
  loaded: number;
  peak: number;
  loadS: number;
  forwardS: number;
}

/** Loads the model in `dir` and runs one batch in this (fresh) process, so that maxRSS is the engine's. */
async function measure(dir: string, T: number): Promise<Measurement> {
  const before = process.resourceUsage().maxRSS * 1024;
  const t0 = performance.now();
  const tensors = await fileTensorSource(join(dir, 'model.safetensors'));
  const elements = (await tensors.list()).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const model = await loadModel({ label: 'random-llama', config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), tensors });
  const t1 = performance.now();
  const loaded = process.resourceUsage().maxRSS * 1024;
  const seq = Array.from({ length: T }, (_, i) => (i * 7919) % V);
  const half = seq.slice(0, T / 2);
  await model.logits([{ ids: seq, positions: [T - 1] }, { ids: half, positions: half.map((_, i) => i) }]);
  const t2 = performance.now();
  const peak = process.resourceUsage().maxRSS * 1024;
  return { checkpoint: elements * 2, f32: elements * 4, before, loaded, peak, loadS: (t1 - t0) / 1000, forwardS: (t2 - t1) / 1000 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** matmul with F32 and with BF16 weights of the same values, alternating; median ms of each. */
async function compareMatmul(runs: number): Promise<void> {
  const shapes: [string, number, number, number][] = [
    ['mlp up, 24 tokens', 24, E, F], ['mlp up, 384 tokens', 384, E, F], ['mlp down, 384 tokens', 384, F, E],
    ['head, 2 positions', 2, E, V], ['head, 130 positions', 130, E, V],
  ];
  console.log(`kernels: ${kernelInfo().active}; medians of ${runs} runs`);
  console.log('| matmul | rows x in -> out | F32 weights ms | BF16 weights ms | BF16 / F32 |');
  console.log('|---|---|---|---|---|');
  for (const [name, rows, inDim, outDim] of shapes) {
    const x = Float32Array.from({ length: rows * inDim }, (_, i) => Math.sin(i) * 0.5);
    const bf16 = new Uint16Array((await fromF32(Float32Array.from({ length: outDim * inDim }, (_, i) => Math.cos(i * 0.37) * 0.05), 'BF16')).buffer);
    const f32 = await toF32(bf16, 'BF16');
    const tf: number[] = [], tb: number[] = [];
    for (let r = 0; r < runs; r++) {
      let t = performance.now();
      await matmul({ x, w: f32, rows, inDim, outDim });
      tf.push(performance.now() - t);
      t = performance.now();
      await matmul({ x, w: { dtype: 'BF16', data: bf16 }, rows, inDim, outDim });
      tb.push(performance.now() - t);
    }
    console.log(`| ${name} | ${rows} x ${inDim} -> ${outDim} | ${median(tf).toFixed(1)} | ${median(tb).toFixed(1)} | ${(median(tb) / median(tf)).toFixed(2)}x |`);
  }
}

if (process.argv[2] === '--matmul') {
  const at = process.argv.indexOf('--runs');
  await compareMatmul(at >= 0 ? Number(process.argv[at + 1]) : 11);
} else if (process.argv[2] === '--measure') {
  console.log(JSON.stringify(await measure(process.argv[3]!, Number(process.argv[4]))));
} else {
  const args = process.argv.slice(2);
  const at = args.indexOf('--runs');
  const runs = at >= 0 ? Number(args.splice(at, 2)[1]) : 3;
  const tokenCounts = args.length ? args.map(Number) : [16, 256];
  const dir = mkdtempSync(join(tmpdir(), 'gt-model-memory-'));
  try {
    writeModel(dir);
    console.log(`kernels: ${kernelInfo().active}; medians of ${runs} runs, each a fresh process`);
    console.log('| BF16 checkpoint | F32 size | RSS before load | peak after load | batch | peak after forward | peak - checkpoint | load | forward |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const T of tokenCounts) {
      const ms: Measurement[] = [];
      for (let r = 0; r < runs; r++) {
        const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--measure', dir, String(T)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        ms.push(JSON.parse(out.trim().split('\n').pop()!) as Measurement);
      }
      const m = (k: keyof Measurement) => median(ms.map((x) => x[k]));
      console.log(`| ${mib(m('checkpoint'))} MiB | ${mib(m('f32'))} MiB | ${mib(m('before'))} MiB | ${mib(m('loaded'))} MiB | ${T} + ${T / 2} tokens | ` +
        `${mib(m('peak'))} MiB | ${mib(m('peak') - m('checkpoint'))} MiB | ${m('loadS').toFixed(2)} s | ${m('forwardS').toFixed(2)} s |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
