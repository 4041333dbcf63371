// The inference engine's interface: what a caller (src/probe, src/commands) hands the engine and what it
// gets back. The engine reads no git state itself: the caller says where the tensors come from.

/** dtype and shape of one tensor of a checkpoint. */
export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
}

/**
 * Where the engine reads a checkpoint's tensors from: a working-tree file, the store, a lazy remote.
 * A sharded checkpoint is one source listing the tensors of every shard.
 */
export interface TensorSource {
  list(): Promise<TensorInfo[]>;
  /** The tensor's raw little-endian bytes, in the dtype `list()` gives. */
  read(name: string): Promise<Uint8Array>;
}

/** The files of one model version beside its checkpoint (Hugging Face layout), already read and parsed. */
export interface ModelFiles {
  /** Names the version in messages, e.g. `HEAD~2:models/bert/model.safetensors`. */
  label: string;
  /** config.json */
  config: unknown;
  /** tokenizer.json, when the version has one. */
  tokenizer?: unknown;
  /** tokenizer_config.json, when the version has one. */
  tokenizerConfig?: unknown;
  tensors: TensorSource;
}

export interface Tokenizer {
  /** Token ids of `text`, with the special tokens the model expects (BOS, [CLS]/[SEP]) unless told not to. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[]): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** The mask token of a masked LM's tokenizer ([MASK], <mask>). */
  maskToken?: { text: string; id: number };
  bosId?: number;
  eosId?: number;
}

export interface LanguageModel {
  /** config.json's architectures[0], e.g. `LlamaForCausalLM`. */
  architecture: string;
  kind: 'causal' | 'masked';
  vocabSize: number;
  maxPositions: number;
  /** null when the version has no tokenizer.json: probes then give token ids. */
  tokenizer: Tokenizer | null;
  /**
   * Runs a batch of token sequences (weights read once per batch, both cores used) and returns, per
   * sequence, the logits at the requested positions: positions.length x vocabSize floats, row-major.
   */
  logits(batch: { ids: number[]; positions: number[] }[]): Promise<Float32Array[]>;
  /** Frees the weights. */
  dispose(): void;
}
