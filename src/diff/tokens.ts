// Owns the token view of a diff: reading a Hugging Face tokenizer.json (plain JSON, no tokenizer
// library), deciding which tensors are token matrices (one row per vocabulary entry), and naming the
// tokens whose rows moved most.
//
// tokenizer.json keeps the vocabulary in `model.vocab`: an object token -> id (BPE, WordPiece) or a list
// of [token, score] pairs / tokens whose index is the id (Unigram); `added_tokens` adds {id, content}.

import { ExitCode, GitTensorError } from '../errors/index.js';
import type { TokenMove } from './types.js';

export interface Vocabulary {
  /** Highest id + 1. */
  size: number;
  /** Token by id ('' where the file names none). */
  tokens: string[];
  /** How tokens spell text: GPT-2 byte-level (Ġ = space), SentencePiece (▁ = space) or as is. */
  style: 'byte-level' | 'metaspace' | 'plain';
  /** Where it was read from, for reports. */
  source: string;
}

function tokenizerError(source: string, what: string): GitTensorError {
  return new GitTensorError('E_TOKENIZER', `${source}: ${what}`, {
    data: { file: source }, exitCode: ExitCode.badInput,
    hint: 'Pass a Hugging Face tokenizer.json with --tokenizer <file>, or leave it out to skip the token view.',
  });
}

export function parseTokenizer(text: string, source: string): Vocabulary {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw tokenizerError(source, `not JSON (${(err as Error).message})`);
  }
  const model = (json as { model?: { vocab?: unknown } } | null)?.model;
  const vocab = model?.vocab;
  const byId = new Map<number, string>();
  if (Array.isArray(vocab)) {
    vocab.forEach((entry, id) => {
      const token = Array.isArray(entry) ? entry[0] : entry;
      if (typeof token === 'string') byId.set(id, token);
    });
  } else if (vocab && typeof vocab === 'object') {
    for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) {
      if (Number.isInteger(id) && (id as number) >= 0) byId.set(id as number, token);
    }
  } else {
    throw tokenizerError(source, 'no model.vocab (expected a Hugging Face tokenizer.json)');
  }
  const added = (json as { added_tokens?: unknown }).added_tokens;
  if (Array.isArray(added)) {
    for (const t of added as { id?: unknown; content?: unknown }[]) {
      if (Number.isInteger(t?.id) && typeof t.content === 'string') byId.set(t.id as number, t.content);
    }
  }
  if (byId.size === 0) throw tokenizerError(source, 'the vocabulary is empty');
  const size = Math.max(...byId.keys()) + 1;
  const tokens = new Array<string>(size).fill('');
  for (const [id, token] of byId) tokens[id] = token;
  return { size, tokens, style: styleOf(json, tokens), source };
}

function styleOf(json: unknown, tokens: string[]): Vocabulary['style'] {
  const j = json as { decoder?: unknown; pre_tokenizer?: unknown };
  const parts = JSON.stringify([j.decoder ?? null, j.pre_tokenizer ?? null]);
  if (parts.includes('"ByteLevel"')) return 'byte-level';
  if (parts.includes('"Metaspace"') || parts.includes('\u2581')) return 'metaspace';
  // No decoder section: guess from the spelling of the first tokens.
  const sample = tokens.slice(0, 5000);
  if (sample.filter((t) => t.startsWith('\u0120')).length > sample.length / 20) return 'byte-level';
  if (sample.filter((t) => t.startsWith('\u2581')).length > sample.length / 20) return 'metaspace';
  return 'plain';
}

let byteDecoder: Map<string, number> | undefined;

/** Inverse of GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest for U+0100 + n. */
function byteLevelMap(): Map<string, number> {
  if (byteDecoder) return byteDecoder;
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  byteDecoder = new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]!), b]));
  return byteDecoder;
}

/** The text a token stands for. */
export function tokenText(token: string, style: Vocabulary['style']): string {
  if (style === 'metaspace') return token.replace(/\u2581/g, ' ');
  if (style !== 'byte-level') return token;
  const map = byteLevelMap();
  const bytes: number[] = [];
  for (const ch of token) {
    const b = map.get(ch);
    if (b !== undefined) bytes.push(b);
    else bytes.push(...Buffer.from(ch, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Name parts of embedding and output matrices in common architectures. */
const TOKEN_MATRIX = /(^|\.)(embed_tokens|wte|lm_head|word_embeddings|tok_embeddings|embed_in|embed_out|embedding|embeddings|shared)(\.|$)/;
/** Rows beyond the vocabulary that a checkpoint may carry as padding (rounded up for kernels). */
export const MAX_PADDING_ROWS = 1024;

/** True when the name is one of an embedding or output matrix (whatever its shape). */
export function hasTokenMatrixName(name: string): boolean {
  return TOKEN_MATRIX.test(name);
}

/** True when the tensor has one row per token: a known name, 2-D, and vocab <= rows < vocab + padding. */
export function isTokenMatrix(name: string, shape: readonly number[], vocabSize: number): boolean {
  return TOKEN_MATRIX.test(name) && shape.length === 2 && shape[0]! >= vocabSize && shape[0]! < vocabSize + MAX_PADDING_ROWS;
}

/** The `limit` rows with the largest ||Δ row|| (rows with no change are never listed). */
export function topTokenMoves(deltaRows2: Float64Array, oldRows2: Float64Array, vocab: Vocabulary, limit: number): TokenMove[] {
  const order: number[] = [];
  for (let i = 0; i < deltaRows2.length; i++) if (deltaRows2[i]! > 0) order.push(i);
  order.sort((x, y) => deltaRows2[y]! - deltaRows2[x]! || x - y);
  return order.slice(0, limit).map((id) => {
    const token = id < vocab.size ? vocab.tokens[id]! : '';
    const change = Math.sqrt(deltaRows2[id]!);
    const old = Math.sqrt(oldRows2[id]!);
    return {
      id,
      token: token || `<row ${id}>`,
      text: token ? tokenText(token, vocab.style) : `<row ${id}>`,
      change,
      relChange: old > 0 ? change / old : null,
    };
  });
}
