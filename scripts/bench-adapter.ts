// Measures ‖ΔW‖_F of every module of a real PEFT adapter two ways: from the r×r Gram matrices
// (trace((BᵀB)(AAᵀ)), what `git diff` uses) and by forming ΔW = B·A with the matmul kernel and summing its
// squares (the baseline), medians of 5 runs in the same process; also checks the two agree.
// Usage: npx tsx scripts/bench-adapter.ts [adapter_model.safetensors] (default: the GPT-2 adapter in ../shared)

import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSafetensors } from '../src/format/safetensors.js';
import { deltaNorm, deltaOf, readAdapter } from '../src/model/adapter.js';
import { ROOT } from './bench-lib.js';

const file = process.argv[2] ?? join(ROOT, '..', 'shared', 'fixtures', 'real-safetensors', 'abrhaleyarefaine1997__gpt2-tigrinya-lora__4441abb6d609__adapter_model.safetensors');
if (!existsSync(file)) {
  console.error(`no adapter at ${file}`);
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), 'bench-adapter-'));
try {
  copyFileSync(file, join(dir, 'adapter_model.safetensors'));
  const r = parseSafetensors(readFileSync(file)).tensors.find((t) => t.name.includes('lora_A'))!.shape[0]!;
  const config = join(dir, 'adapter_config.json');
  if (existsSync(join(file, '..', 'adapter_config.json'))) copyFileSync(join(file, '..', 'adapter_config.json'), config);
  else writeFileSync(config, JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 2 * r, fan_in_fan_out: file.includes('gpt2') }));
  const adapter = await readAdapter(dir);
  const median = async (fn: () => Promise<number[]>) => {
    const times: number[] = [];
    let out: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t0 = process.hrtime.bigint();
      out = await fn();
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return { s: times.sort((a, b) => a - b)[2]!, out };
  };
  const gram = await median(async () => Promise.all(adapter.modules.map((m) => deltaNorm(adapter, m))));
  const dense = await median(async () => {
    const out: number[] = [];
    for (const m of adapter.modules) {
      const d = await deltaOf(adapter, m);
      let s = 0;
      for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
      out.push(Math.sqrt(s));
    }
    return out;
  });
  const worst = Math.max(...gram.out.map((g, i) => Math.abs(g - dense.out[i]!) / dense.out[i]!));
  const m0 = adapter.modules[0]!;
  console.log(`adapter: ${file}`);
  console.log(`${adapter.modules.length} modules, rank ${m0.rank}, first ΔW [${m0.b.shape[0]},${m0.a.shape[1]}]`);
  console.log('| ‖ΔW‖ of every module | median s (5 runs) |');
  console.log('|---|---|');
  console.log(`| Gram matrices, trace((BᵀB)(AAᵀ)) | ${gram.s.toFixed(4)} |`);
  console.log(`| baseline: ΔW = B·A (matmul kernel), sum of squares | ${dense.s.toFixed(4)} |`);
  console.log(`largest relative difference between the two: ${worst.toExponential(2)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
