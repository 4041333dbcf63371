// Owns what every architecture file implements (Network) and the batch layout they all take: the
// sequences of a batch concatenated into one [totalTokens x hidden] activation, so each matmul reads the
// weights once per batch, with each token's position inside its own sequence and the rows whose logits
// the caller asked for. Also owns checking a batch against the model before any work starts.

import { ModelError } from './errors.js';

export interface PackedBatch {
  /** Every sequence's token ids, one after another. */
  ids: Int32Array;
  /** Each token's position within its own sequence (0-based). */
  positions: Int32Array;
  seqs: { start: number; length: number }[];
  /** Rows of the packed batch whose logits are wanted, in output order. */
  outRows: Int32Array;
}

export interface Network {
  kind: 'causal' | 'masked';
  vocabSize: number;
  /** Longest sequence the model takes: its position table, or max_position_embeddings for RoPE models. */
  maxPositions: number;
  /** Logits at batch.outRows: outRows.length x vocabSize, row-major. */
  forward(batch: PackedBatch): Promise<Float32Array>;
}

export function packBatch(batch: readonly { ids: readonly number[]; positions: readonly number[] }[], net: Network, label: string): PackedBatch {
  let total = 0, wanted = 0;
  batch.forEach((s, n) => {
    if (s.ids.length === 0) throw new ModelError('E_MODEL_INPUT', label, `sequence ${n} of the batch is empty`);
    if (s.ids.length > net.maxPositions) {
      throw new ModelError('E_MODEL_INPUT', label, `sequence ${n} has ${s.ids.length} tokens; the model takes at most ${net.maxPositions}`,
        { hint: 'Shorten the probe text.' });
    }
    total += s.ids.length;
    wanted += s.positions.length;
  });
  const ids = new Int32Array(total), positions = new Int32Array(total), outRows = new Int32Array(wanted);
  const seqs: PackedBatch['seqs'] = [];
  let row = 0, out = 0;
  batch.forEach((s, n) => {
    seqs.push({ start: row, length: s.ids.length });
    s.ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= net.vocabSize) {
        throw new ModelError('E_MODEL_INPUT', label, `sequence ${n} has token id ${id} at position ${i}, outside the vocabulary [0, ${net.vocabSize})`);
      }
      ids[row + i] = id;
      positions[row + i] = i;
    });
    for (const p of s.positions) {
      if (!Number.isInteger(p) || p < 0 || p >= s.ids.length) {
        throw new ModelError('E_MODEL_INPUT', label, `sequence ${n} asks for logits at position ${p}, outside its ${s.ids.length} tokens`);
      }
      outRows[out++] = row + p;
    }
    row += s.ids.length;
  });
  return { ids, positions, seqs, outRows };
}

/** Splits the forward pass's logits back into one array per sequence. */
export function splitLogits(logits: Float32Array, batch: readonly { positions: readonly number[] }[], vocabSize: number): Float32Array[] {
  const parts: Float32Array[] = [];
  let row = 0;
  for (const s of batch) {
    parts.push(logits.subarray(row * vocabSize, (row + s.positions.length) * vocabSize));
    row += s.positions.length;
  }
  return parts;
}
