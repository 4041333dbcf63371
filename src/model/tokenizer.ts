// Owns text <-> token ids for the engine, over @huggingface/tokenizers (which reads tokenizer.json the way
// the Rust `tokenizers` crate does). What the library leaves to transformers' Python classes is done here:
//   - add_bos_token / add_eos_token in tokenizer_config.json, when set, decide whether BOS/EOS surround
//     the ids, as LlamaTokenizerFast.update_post_processor does, whatever tokenizer.json's post-processor says;
//   - the mask token of a masked LM: tokenizer_config.json's mask_token, else [MASK] or <mask>;
//   - bos/eos ids from tokenizer_config.json's bos_token/eos_token.

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

import { ModelError } from './errors.js';
import type { Tokenizer } from './types.js';

/** A special token as tokenizer_config.json writes it: a string or an AddedToken object. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

export function loadTokenizer(json: unknown, configArg: unknown, label: string): Tokenizer {
  const config = (typeof configArg === 'object' && configArg !== null ? configArg : {}) as Record<string, unknown>;
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(json as object, config);
  } catch (err) {
    throw new ModelError('E_MODEL_UNSUPPORTED', label, `tokenizer.json cannot be loaded: ${(err as Error).message}`,
      { hint: 'The tokenizer uses a component @huggingface/tokenizers does not implement; probe with token ids instead.' });
  }
  const idOf = (key: string): number | undefined => {
    const text = tokenText(config[key]);
    return text === undefined ? undefined : hf.token_to_id(text);
  };
  const bosId = idOf('bos_token');
  const eosId = idOf('eos_token');
  const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : undefined;
  const addEos = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : undefined;

  let maskToken: Tokenizer['maskToken'];
  for (const text of [tokenText(config.mask_token), '[MASK]', '<mask>']) {
    const id = text === undefined ? undefined : hf.token_to_id(text);
    if (text !== undefined && id !== undefined) {
      maskToken = { text, id };
      break;
    }
  }

  return {
    encode(text, opts) {
      const special = opts?.addSpecialTokens ?? true;
      const ids = hf.encode(text, { add_special_tokens: special }).ids;
      if (!special) return ids;
      if (bosId !== undefined && addBos !== undefined) {
        if (addBos && ids[0] !== bosId) ids.unshift(bosId);
        if (!addBos && ids[0] === bosId && hf.encode(text, { add_special_tokens: false }).ids[0] !== bosId) ids.shift();
      }
      if (eosId !== undefined && addEos !== undefined) {
        if (addEos && ids[ids.length - 1] !== eosId) ids.push(eosId);
        if (!addEos && ids[ids.length - 1] === eosId && hf.encode(text, { add_special_tokens: false }).ids.at(-1) !== eosId) ids.pop();
      }
      return ids;
    },
    // the library throws on an empty list; an empty continuation is an empty string
    decode: (ids) => (ids.length === 0 ? '' : hf.decode(ids, { skip_special_tokens: false })),
    tokenToId: (token) => hf.token_to_id(token),
    idToToken: (id) => hf.id_to_token(id),
    maskToken,
    bosId,
    eosId,
  };
}
