#!/usr/bin/python3
"""Writes the tiny reference models of test/fixtures/models/ and their expected outputs.

Each folder is a Hugging Face layout (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json) with random, seeded weights, plus expected.json: logits computed by an
independent float64 PyTorch implementation of each architecture, written here from the equations of
the Hugging Face modeling code (transformers is not used, nor is tokenizers: this script tokenizes
the texts itself). The weights the reference runs on are read back from the written safetensors file
and upcast to float64, so F16/BF16 models are checked against exactly the stored values.

A dev-time tool only (Debian's python3-torch and numpy); nothing in npm ci/npm test runs it.
Usage: /usr/bin/python3 scripts/make-reference-models.py [out-dir]   (default test/fixtures/models)
Running it twice gives byte-identical files.
"""

import json
import math
import os
import re
import struct
import sys
import unicodedata
import zlib

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "test", "fixtures", "models")
TRANSFORMERS_VERSION = "4.46.3"  # the version string config.json files carry; no transformers is run
SIG = 9  # significant digits of the float values written to expected.json


# ---------------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, JSON header (names sorted, data_offsets into the
# data section, __metadata__ {"format": "pt"}), padded with spaces to a multiple of 8, then the data.

def to_stored(arr32, dtype):
    """float32 array -> (bytes in `dtype`, the stored values as float64)."""
    if dtype == "F32":
        a = arr32.astype("<f4")
        return a.tobytes(), a.astype(np.float64)
    if dtype == "F16":
        a = arr32.astype("<f2")
        return a.tobytes(), a.astype(np.float64)
    if dtype == "BF16":  # round to nearest even, as torch's float32 -> bfloat16 conversion does
        t = torch.from_numpy(np.ascontiguousarray(arr32, dtype=np.float32)).to(torch.bfloat16)
        raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        return raw, t.to(torch.float64).numpy()
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: {name: (dtype, shape, bytes)}"""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header = dict([("__metadata__", {"format": "pt"})] + list(header.items()))
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """The file's tensors as float64 torch tensors (read back independently of the writer's state)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        if info["dtype"] == "F32":
            v = np.frombuffer(raw, "<f4").astype(np.float64)
        elif info["dtype"] == "F16":
            v = np.frombuffer(raw, "<f2").astype(np.float64)
        elif info["dtype"] == "BF16":
            v = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise ValueError(info["dtype"])
        out[name] = torch.from_numpy(v.reshape(info["shape"]).copy())
    return out


class Weights:
    """Seeded random weights; scales chosen so that activations neither vanish nor explode and the
    logits are spread (so top-k orders and greedy choices are well separated)."""

    def __init__(self, name):  # name: "<model>/<seed>"
        self.rng = np.random.default_rng(zlib.crc32(name.encode()))
        self.params = {}

    def normal(self, name, shape, std, mean=0.0):
        self.params[name] = (mean + std * self.rng.standard_normal(shape)).astype(np.float32)

    def linear(self, name, n_out, n_in, bias=True, conv1d=False):
        std = 1.0 / math.sqrt(n_in)
        self.normal(name + ".weight", (n_in, n_out) if conv1d else (n_out, n_in), std)
        if bias:
            self.normal(name + ".bias", (n_out,), 0.05)

    def norm(self, name, n, bias=True):
        self.normal(name + ".weight", (n,), 0.1, mean=1.0)
        if bias:
            self.normal(name + ".bias", (n,), 0.05)

    def save(self, folder, dtype):
        tensors = {}
        for name, arr in self.params.items():
            raw, _ = to_stored(arr, dtype)
            tensors[name] = (dtype, arr.shape, raw)
        path = os.path.join(folder, "model.safetensors")
        write_safetensors(path, tensors)
        return read_safetensors(path)


# ---------------------------------------------------------------------------------------------------
# Reference building blocks (float64).

def linear(x, w, b=None):  # nn.Linear: x W^T + b, W is [out, in]
    y = x @ w.T
    return y if b is None else y + b


def conv1d(x, w, b):  # GPT-2's Conv1D: x W + b, W is [in, out]
    return x @ w + b


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def gelu(x):  # erf form ("gelu")
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_new(x):  # tanh approximation ("gelu_new", GPT-2)
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1.0 + torch.exp(-x))


def attention(q, k, v, causal):
    """q: [heads, n, d], k/v: [heads, n, d] -> [n, heads*d]"""
    d = q.shape[-1]
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if causal:
        n = q.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    out = p @ v
    return out.transpose(0, 1).reshape(q.shape[1], -1)


def heads(x, nh):  # [n, nh*d] -> [nh, n, d]
    n = x.shape[0]
    return x.reshape(n, nh, -1).transpose(0, 1)


def rope(x, theta):
    """x: [heads, n, d]; Hugging Face's rotate_half convention (first half / second half pairs)."""
    d = x.shape[-1]
    n = x.shape[1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    freqs = torch.arange(n, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = torch.cos(emb), torch.sin(emb)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos + rotated * sin


def check_building_blocks():
    """The hand-written blocks above against torch's own modules and a per-element RoPE and BF16
    rounding, so that a slip in them cannot pass into the expected values unnoticed."""
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    rnd = lambda *shape: torch.randn(*shape, generator=g)

    def close(a, b, what):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12), what

    x, w, b = rnd(5, 16), rnd(16), rnd(16)
    close(layer_norm(x, w, b, 1e-5), F.layer_norm(x, (16,), w, b, 1e-5), "layer_norm")
    close(gelu(x), F.gelu(x), "gelu")
    close(gelu_new(x), F.gelu(x, approximate="tanh"), "gelu_new")
    close(silu(x), F.silu(x), "silu")
    close(rms_norm(x, w, 1e-6), x / torch.sqrt((x ** 2).sum(-1, keepdim=True) / 16 + 1e-6) * w, "rms_norm")
    mha = torch.nn.MultiheadAttention(16, 4, bias=False, dtype=torch.float64)  # identity projections
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([torch.eye(16)] * 3))
        mha.out_proj.weight.copy_(torch.eye(16))
    q, k, v = rnd(5, 16), rnd(5, 16), rnd(5, 16)
    for causal in (False, True):
        mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1) if causal else None
        ref, _ = mha(q, k, v, attn_mask=mask, need_weights=False)
        close(attention(heads(q, 4), heads(k, 4), heads(v, 4), causal), ref, f"attention causal={causal}")
    xr, theta, d = rnd(2, 6, 8), 500000.0, 8
    out = rope(xr, theta)
    for h in range(2):
        for pos in range(6):
            for i in range(d // 2):  # pair (i, i + d/2) turned by pos * theta^(-2i/d)
                a, c = float(xr[h, pos, i]), float(xr[h, pos, i + d // 2])
                ang = pos * theta ** (-2 * i / d)
                assert abs(float(out[h, pos, i]) - (a * math.cos(ang) - c * math.sin(ang))) < 1e-12, "rope"
                assert abs(float(out[h, pos, i + d // 2]) - (c * math.cos(ang) + a * math.sin(ang))) < 1e-12, "rope"
    f = (np.random.default_rng(0).standard_normal(10000) * 3).astype(np.float32)
    u = f.view(np.uint32).astype(np.uint64)
    rne = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
    assert to_stored(f, "BF16")[0] == rne.tobytes(), "bf16 rounding"


# ---------------------------------------------------------------------------------------------------
# Forward passes: ids (list of int) -> logits [n, vocab] (float64).

def bert_forward(W, cfg, ids, prefix="bert", roberta=False):
    n = len(ids)
    eps = cfg["layer_norm_eps"]
    p = prefix + ".embeddings."
    ids_t = torch.tensor(ids)
    if roberta:  # create_position_ids_from_input_ids: padding_idx + 1 + cumsum over non-pad tokens
        pad = cfg["pad_token_id"]
        mask = (ids_t != pad).long()
        pos = torch.cumsum(mask, 0) * mask + pad
    else:
        pos = torch.arange(n)
    x = W[p + "word_embeddings.weight"][ids_t] + W[p + "position_embeddings.weight"][pos] \
        + W[p + "token_type_embeddings.weight"][0]
    x = layer_norm(x, W[p + "LayerNorm.weight"], W[p + "LayerNorm.bias"], eps)
    nh = cfg["num_attention_heads"]
    for i in range(cfg["num_hidden_layers"]):
        L = f"{prefix}.encoder.layer.{i}."
        q = linear(x, W[L + "attention.self.query.weight"], W[L + "attention.self.query.bias"])
        k = linear(x, W[L + "attention.self.key.weight"], W[L + "attention.self.key.bias"])
        v = linear(x, W[L + "attention.self.value.weight"], W[L + "attention.self.value.bias"])
        ctx = attention(heads(q, nh), heads(k, nh), heads(v, nh), causal=False)
        a = linear(ctx, W[L + "attention.output.dense.weight"], W[L + "attention.output.dense.bias"])
        x = layer_norm(a + x, W[L + "attention.output.LayerNorm.weight"], W[L + "attention.output.LayerNorm.bias"], eps)
        h = gelu(linear(x, W[L + "intermediate.dense.weight"], W[L + "intermediate.dense.bias"]))
        h = linear(h, W[L + "output.dense.weight"], W[L + "output.dense.bias"])
        x = layer_norm(h + x, W[L + "output.LayerNorm.weight"], W[L + "output.LayerNorm.bias"], eps)
    emb = W[p + "word_embeddings.weight"]
    if roberta:  # RobertaLMHead: dense -> gelu -> layer_norm -> decoder (tied) + lm_head.bias
        h = gelu(linear(x, W["lm_head.dense.weight"], W["lm_head.dense.bias"]))
        h = layer_norm(h, W["lm_head.layer_norm.weight"], W["lm_head.layer_norm.bias"], eps)
        return h @ emb.T + W["lm_head.bias"]
    c = "cls.predictions."  # BertOnlyMLMHead: transform (dense, gelu, LayerNorm) -> decoder (tied) + bias
    h = gelu(linear(x, W[c + "transform.dense.weight"], W[c + "transform.dense.bias"]))
    h = layer_norm(h, W[c + "transform.LayerNorm.weight"], W[c + "transform.LayerNorm.bias"], eps)
    return h @ emb.T + W[c + "bias"]


def distilbert_forward(W, cfg, ids):
    n = len(ids)
    eps = 1e-12  # DistilBERT's nn.LayerNorm(dim, eps=1e-12) everywhere; not in config.json
    p = "distilbert.embeddings."
    x = W[p + "word_embeddings.weight"][torch.tensor(ids)] + W[p + "position_embeddings.weight"][:n]
    x = layer_norm(x, W[p + "LayerNorm.weight"], W[p + "LayerNorm.bias"], eps)
    nh = cfg["n_heads"]
    for i in range(cfg["n_layers"]):
        L = f"distilbert.transformer.layer.{i}."
        A = L + "attention."
        q = linear(x, W[A + "q_lin.weight"], W[A + "q_lin.bias"])
        k = linear(x, W[A + "k_lin.weight"], W[A + "k_lin.bias"])
        v = linear(x, W[A + "v_lin.weight"], W[A + "v_lin.bias"])
        ctx = attention(heads(q, nh), heads(k, nh), heads(v, nh), causal=False)
        a = linear(ctx, W[A + "out_lin.weight"], W[A + "out_lin.bias"])
        x = layer_norm(a + x, W[L + "sa_layer_norm.weight"], W[L + "sa_layer_norm.bias"], eps)
        h = gelu(linear(x, W[L + "ffn.lin1.weight"], W[L + "ffn.lin1.bias"]))
        h = linear(h, W[L + "ffn.lin2.weight"], W[L + "ffn.lin2.bias"])
        x = layer_norm(h + x, W[L + "output_layer_norm.weight"], W[L + "output_layer_norm.bias"], eps)
    h = gelu(linear(x, W["vocab_transform.weight"], W["vocab_transform.bias"]))
    h = layer_norm(h, W["vocab_layer_norm.weight"], W["vocab_layer_norm.bias"], eps)
    return h @ W[p + "word_embeddings.weight"].T + W["vocab_projector.bias"]


def gpt2_forward(W, cfg, ids):
    n = len(ids)
    eps = cfg["layer_norm_epsilon"]
    nh = cfg["n_head"]
    d = cfg["n_embd"]
    x = W["transformer.wte.weight"][torch.tensor(ids)] + W["transformer.wpe.weight"][:n]
    for i in range(cfg["n_layer"]):
        L = f"transformer.h.{i}."
        a = layer_norm(x, W[L + "ln_1.weight"], W[L + "ln_1.bias"], eps)
        qkv = conv1d(a, W[L + "attn.c_attn.weight"], W[L + "attn.c_attn.bias"])
        q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
        ctx = attention(heads(q, nh), heads(k, nh), heads(v, nh), causal=True)
        x = x + conv1d(ctx, W[L + "attn.c_proj.weight"], W[L + "attn.c_proj.bias"])
        m = layer_norm(x, W[L + "ln_2.weight"], W[L + "ln_2.bias"], eps)
        m = gelu_new(conv1d(m, W[L + "mlp.c_fc.weight"], W[L + "mlp.c_fc.bias"]))
        x = x + conv1d(m, W[L + "mlp.c_proj.weight"], W[L + "mlp.c_proj.bias"])
    x = layer_norm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    return x @ W["transformer.wte.weight"].T  # lm_head tied to wte, not stored


def llama_forward(W, cfg, ids):
    """LlamaForCausalLM, and Qwen2/Mistral which share its equations (Qwen2: q/k/v bias)."""
    eps = cfg["rms_norm_eps"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // nh
    theta = cfg["rope_theta"]
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    for i in range(cfg["num_hidden_layers"]):
        L = f"model.layers.{i}."
        a = rms_norm(x, W[L + "input_layernorm.weight"], eps)
        S = L + "self_attn."
        q = linear(a, W[S + "q_proj.weight"], W.get(S + "q_proj.bias"))
        k = linear(a, W[S + "k_proj.weight"], W.get(S + "k_proj.bias"))
        v = linear(a, W[S + "v_proj.weight"], W.get(S + "v_proj.bias"))
        q, k, v = heads(q, nh), heads(k, nkv), heads(v, nkv)
        assert q.shape[-1] == hd
        q, k = rope(q, theta), rope(k, theta)
        rep = nh // nkv  # repeat_kv: query head h uses key/value head h // rep
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        ctx = attention(q, k, v, causal=True)
        x = x + linear(ctx, W[S + "o_proj.weight"])
        m = rms_norm(x, W[L + "post_attention_layernorm.weight"], eps)
        M = L + "mlp."
        m = silu(linear(m, W[M + "gate_proj.weight"])) * linear(m, W[M + "up_proj.weight"])
        x = x + linear(m, W[M + "down_proj.weight"])
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    return x @ head.T


# ---------------------------------------------------------------------------------------------------
# Tokenizers: the tokenizer.json files, and this script's own tokenization of the test texts.

SPECIAL = dict(single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)


def added(id_, content, **kw):
    t = {"id": id_, "content": content}
    t.update(SPECIAL)
    t.update(kw)
    return t


WORDPIECE_WORDS = """the a an of and to in is was it that he she they we you i on at by for with from
as be this are not or but his her their its have has had one two three all can will would there what
which who when where how man woman child king queen city river house tree dog cat bird fish horse
red blue green black white big small old new good bad first last long little great high world
time day year way people water light sound word name work life hand part place case point
music play run walk talk read write open close sing think know see make take give come go went
saw said made took gave came paris france london england capital model tensor git file weights
merge diff store chunk layer head token""".split()
WORDPIECE_SUFFIXES = "##s ##ed ##ing ##er ##est ##ly ##ness ##ful ##able ##tion ##a ##e ##i ##o ##u ##n ##t ##r".split()
WORDPIECE_PUNCT = list(".,!?;:'\"()-")


def wordpiece_vocab():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDPIECE_PUNCT + list("abcdefghijklmnopqrstuvwxyz") \
        + WORDPIECE_WORDS + WORDPIECE_SUFFIXES
    return list(dict.fromkeys(vocab))  # "a" and "i" are letters and words


def bert_tokenizer_json(vocab):
    v = {t: i for i, t in enumerate(vocab)}
    special = [added(v[t], t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": special,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [v["[CLS]"]], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [v["[SEP]"]], "tokens": ["[SEP]"]},
            },
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": v},
    }


def bert_tokenizer_config(vocab, cls="BertTokenizer"):
    v = {t: i for i, t in enumerate(vocab)}
    return {
        "added_tokens_decoder": {str(v[t]): {k: x for k, x in added(v[t], t).items() if k != "id"}
                                 for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]},
        "clean_up_tokenization_spaces": True,
        "cls_token": "[CLS]",
        "do_lower_case": True,
        "mask_token": "[MASK]",
        "model_max_length": 512,
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "tokenizer_class": cls,
        "unk_token": "[UNK]",
    }


def is_punct(ch):  # BERT's _is_punctuation: ASCII non-alphanumeric printable, or Unicode category P*
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def wordpiece_encode(text, vocab):
    """BertNormalizer(lowercase, strip accents) + BertPreTokenizer + WordPiece greedy longest match,
    with [CLS] ... [SEP]; the special token [MASK] in the text is matched before normalization."""
    v = {t: i for i, t in enumerate(vocab)}
    ids = [v["[CLS]"]]
    for k, part in enumerate(text.split("[MASK]")):
        if k > 0:
            ids.append(v["[MASK]"])
        s = unicodedata.normalize("NFD", part.lower())
        s = "".join(c for c in s if unicodedata.category(c) != "Mn")
        words, cur = [], ""
        for c in s:
            if c.isspace():
                if cur:
                    words.append(cur)
                cur = ""
            elif is_punct(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
        for w in words:
            pieces, start = [], 0
            while start < len(w):
                end = len(w)
                while end > start:
                    sub = w[start:end] if start == 0 else "##" + w[start:end]
                    if sub in v:
                        break
                    end -= 1
                if end == start:
                    pieces = [v["[UNK]"]]
                    break
                pieces.append(v[sub])
                start = end
            ids.extend(pieces)
    ids.append(v["[SEP]"])
    return ids


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return list(zip(bs, [chr(c) for c in cs]))


BYTE_ALPHABET = [c for _, c in bytes_to_unicode()]  # GPT-2's order of the 256 byte symbols
BYTE_ENCODER = dict(bytes_to_unicode())

# The byte-level BPE vocabularies: a few common pairs merged first (as real BPE vocabularies start),
# then, for each word, the merges that make " word" (and the sentence-initial forms listed) one token
# given the merges before it (found with the encoder below, so later merges cannot change how an
# earlier word splits). Other words then split into pieces by the merges' ranks.
BPE_COMMON = [("Ġ", "t"), ("e", "r"), ("i", "n"), ("o", "n"), ("e", "s"), ("t", "h"), ("a", "n"), ("e", "n"),
              ("Ġ", "s"), ("r", "e"), ("a", "t"), ("l", "l"), ("Ġ", "a")]
BPE_WORDS = """the cat dog sat on mat a is of and to in it was red big small house tree bird sun sky
blue model tensor git weights merge hello world runs fast green river""".split()
BPE_INITIAL = ["The", "A", "Hello", "Git"]


def bpe_vocab(prefix_tokens, suffix_tokens):
    """-> (vocab list, merges list of (a, b)); ids: prefix specials, 256 bytes, merged tokens, suffix specials."""
    merges = list(BPE_COMMON)
    for w in ["Ġ" + w for w in BPE_WORDS] + BPE_INITIAL:
        sym = [BYTE_ENCODER[b] for b in w.replace("Ġ", " ").encode()]
        while True:
            pieces = bpe_word(sym, {m: i for i, m in enumerate(merges)})
            if len(pieces) == 1:
                break
            merges.append((pieces[0], pieces[1]))
    tokens = list(dict.fromkeys(a + b for a, b in merges))
    known = set(BYTE_ALPHABET) | set(tokens)
    assert all(a in known and b in known for a, b in merges)  # as the tokenizers crate requires
    vocab = prefix_tokens + BYTE_ALPHABET + tokens + suffix_tokens
    assert len(vocab) == len(set(vocab)) and len(vocab) <= 400
    return vocab, merges


GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+"""
QWEN2_SPLIT_ASCII = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_SPLIT_ASCII = QWEN2_SPLIT_ASCII.replace("|[0-9]|", "|[0-9]{1,3}|")
# The patterns tokenizer.json carries (Unicode classes); on ASCII text they split as the ones above.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def bpe_word(symbols, ranks):
    """Applies merges by rank: repeatedly merge the lowest-ranked adjacent pair (leftmost first)."""
    syms = list(symbols)
    while len(syms) > 1:
        best = None
        for i in range(len(syms) - 1):
            r = ranks.get((syms[i], syms[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        syms[i:i + 2] = [syms[i] + syms[i + 1]]
    return syms


def bpe_encode(text, vocab, merges, split, specials=(), ignore_merges=False):
    """Byte-level BPE of ASCII text; `specials` are added tokens matched first (content, lstrip);
    ignore_merges: a pre-token that is itself a vocab entry is one token, without applying merges."""
    assert all(ord(c) < 128 for c in text), "the byte-level cases use ASCII text only"
    v = {t: i for i, t in enumerate(vocab)}
    ranks = {m: i for i, m in enumerate(merges)}
    parts = [(text, None)]
    for content, lstrip in specials:
        nxt = []
        for s, tok in parts:
            if tok is not None:
                nxt.append((s, tok))
                continue
            pieces = s.split(content)
            for k, piece in enumerate(pieces):
                if k > 0:
                    nxt.append((content, content))
                    if lstrip and nxt[-2:-1] and nxt[-2][1] is None:
                        nxt[-2] = (nxt[-2][0].rstrip(), None)
                nxt.append((piece, None))
        parts = nxt
    ids = []
    for s, tok in parts:
        if tok is not None:
            ids.append(v[tok])
            continue
        for chunk in re.findall(split, s):
            syms = [BYTE_ENCODER[b] for b in chunk.encode()]
            if ignore_merges and "".join(syms) in v:
                ids.append(v["".join(syms)])
                continue
            ids.extend(v[t] for t in bpe_word(syms, ranks))
    return ids


def bpe_model(vocab, merges, unk=None):
    return {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(vocab)}, "merges": [f"{a} {b}" for a, b in merges]}


def bytelevel(add_prefix_space, trim_offsets, use_regex):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": trim_offsets,
            "use_regex": use_regex}


def split_then_bytelevel(pattern):  # Qwen2's and Llama 3's pre-tokenizer
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        bytelevel(False, False, False)]}


# ---------------------------------------------------------------------------------------------------
# expected.json

def fmt(x):
    return float(f"{x:.{SIG}g}")


def rows(t):
    return [[fmt(x) for x in r] for r in t.tolist()]


class TooClose(Exception):
    """A top-k order or greedy choice the engine's float32 tolerance could not decide, or a greedy
    continuation too repetitive to test much: the model is remade with the next seed."""


def top_order(row, k):
    vals, idx = torch.sort(row, descending=True)
    margins = (vals[:k] - vals[1:k + 1]).tolist()
    return idx[:k].tolist(), min(margins)


def masked_case(forward, name, ids, text=None, tokens=None, mask_id=None):
    logits = forward(ids)
    case = {"name": name}
    if text is not None:
        case["text"] = text
    case["ids"] = ids
    if tokens is not None:
        case["tokens"] = tokens
    if mask_id is not None:
        pos = ids.index(mask_id)
        top5, margin = top_order(logits[pos], 5)
        case["mask_position"] = pos
        case["top5_ids"] = top5
        case["top5_min_gap"] = fmt(margin)  # smallest gap between consecutive logits among the top 6
        rel = margin / float(logits.max() - logits.min())
        if rel < 5e-4:  # 5x the engine's tolerance
            raise TooClose(f"{name}: top-5 order too close to call ({rel})")
    case["logit_range"] = fmt(float(logits.max() - logits.min()))
    case["logits"] = rows(logits)
    return case


def causal_case(forward, name, ids, max_pos, text=None, tokens=None):
    logits = forward(ids)
    case = {"name": name}
    if text is not None:
        case["text"] = text
    case["ids"] = ids
    if tokens is not None:
        case["tokens"] = tokens
    lp = torch.log_softmax(logits, dim=-1)
    case["logprob_of_next_ids"] = [fmt(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)]
    seq, margin = list(ids), float("inf")
    for _ in range(20):
        row = forward(seq)[-1]
        vals, idx = torch.sort(row, descending=True)
        margin = min(margin, float(vals[0] - vals[1]) / float(row.max() - row.min()))
        seq.append(int(idx[0]))
    assert len(seq) <= max_pos
    if margin < 5e-4:
        raise TooClose(f"{name}: a greedy step is too close to call ({margin})")
    if len(set(seq[len(ids):])) < 4:  # a continuation stuck on one or two ids would test little
        raise TooClose(f"{name}: the greedy continuation repeats {sorted(set(seq[len(ids):]))}")
    case["greedy_20"] = seq[len(ids):]
    case["greedy_min_relative_gap"] = fmt(margin)  # smallest (top1 - top2) / logit range over the 20 steps
    case["logit_range"] = fmt(float(logits.max() - logits.min()))
    case["logits"] = rows(logits)
    return case


ABOUT = ("Made by scripts/make-reference-models.py (seeded random weights; run `/usr/bin/python3 "
         "scripts/make-reference-models.py` to regenerate, byte-identical). The values come from an "
         "independent float64 PyTorch implementation of the architecture written in that script from the "
         "Hugging Face modeling equations (transformers is not used), run on the weights read back from "
         "model.safetensors and upcast to float64; ids come from the script's own tokenizer implementation "
         "(not the tokenizers library). Floats are rounded to 9 significant digits. Schema: cases[] with "
         "name, text (absent when the model has no tokenizer), ids (with the special tokens the tokenizer "
         "adds), tokens (the token strings of ids), logits (one row of vocab_size floats per position of "
         "ids, before softmax), logit_range (max - min over all logits of the case); masked models: "
         "mask_position, top5_ids (descending logit at mask_position), top5_min_gap; causal models: "
         "logprob_of_next_ids[i] = log_softmax(logits[i])[ids[i+1]], greedy_20 (20 argmax ids appended "
         "one at a time after ids, no EOS stop), greedy_min_relative_gap.")


def write_json(path, obj, compact=False):
    with open(path, "w") as f:
        if compact:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def expected(folder, model, seed, arch, kind, dtype, vocab_size, cases, note):
    write_json(os.path.join(folder, "expected.json"), {
        "about": ABOUT + " " + note, "model": model, "architecture": arch, "kind": kind, "dtype": dtype,
        "vocab_size": vocab_size, "weights_rng": f"numpy.random.default_rng(zlib.crc32(b'{model}/{seed}'))",
        "cases": cases}, compact=True)


def folder_for(name):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    return d


# ---------------------------------------------------------------------------------------------------
# The models.

BERT_TEXTS = [
    ("plain", "The king went to London."),
    ("subwords_and_unknown", "Singing birds walked slowly; zyxq Mérge!"),
]
BERT_MASK = ("mask", "The capital of France is [MASK].")


def make_bert(seed):
    name = "bert-tiny"
    d = folder_for(name)
    vocab = wordpiece_vocab()
    V, H, I, NL, NH, P = len(vocab), 32, 128, 2, 4, 64
    cfg = {
        "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "classifier_dropout": None,
        "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": H,
        "initializer_range": 0.02, "intermediate_size": I, "layer_norm_eps": 1e-12,
        "max_position_embeddings": P, "model_type": "bert", "num_attention_heads": NH,
        "num_hidden_layers": NL, "pad_token_id": 0, "position_embedding_type": "absolute",
        "torch_dtype": "float32", "transformers_version": TRANSFORMERS_VERSION, "type_vocab_size": 2,
        "use_cache": True, "vocab_size": V}
    w = Weights(f"{name}/{seed}")
    e = "bert.embeddings."
    w.normal(e + "word_embeddings.weight", (V, H), 0.5)
    w.normal(e + "position_embeddings.weight", (P, H), 0.2)
    w.normal(e + "token_type_embeddings.weight", (2, H), 0.2)
    w.norm(e + "LayerNorm", H)
    for i in range(NL):
        L = f"bert.encoder.layer.{i}."
        for n in ["query", "key", "value"]:
            w.linear(L + "attention.self." + n, H, H)
        w.linear(L + "attention.output.dense", H, H)
        w.norm(L + "attention.output.LayerNorm", H)
        w.linear(L + "intermediate.dense", I, H)
        w.linear(L + "output.dense", H, I)
        w.norm(L + "output.LayerNorm", H)
    w.linear("cls.predictions.transform.dense", H, H)
    w.norm("cls.predictions.transform.LayerNorm", H)
    w.normal("cls.predictions.bias", (V,), 0.1)
    W = w.save(d, "F32")
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "tokenizer.json"), bert_tokenizer_json(vocab))
    write_json(os.path.join(d, "tokenizer_config.json"), bert_tokenizer_config(vocab))
    fwd = lambda ids: bert_forward(W, cfg, ids)
    cases = []
    for cname, text in BERT_TEXTS + [BERT_MASK]:
        ids = wordpiece_encode(text, vocab)
        cases.append(masked_case(fwd, cname, ids, text, [vocab[i] for i in ids],
                                 mask_id=vocab.index("[MASK]") if "[MASK]" in text else None))
    cases.append(masked_case(fwd, "ids_only", [2, 40, 41, 42, 4, 43, 3], tokens=None, mask_id=4))
    expected(d, name, seed, "BertForMaskedLM", "masked", "F32", V, cases,
             "token_type_ids are all 0 and the attention mask all 1. The decoder "
             "(cls.predictions.decoder.weight) is tied to bert.embeddings.word_embeddings.weight and not stored.")


def make_distilbert(seed):
    name = "distilbert-tiny"
    d = folder_for(name)
    vocab = wordpiece_vocab()
    V, H, I, NL, NH, P = len(vocab), 32, 64, 2, 4, 64
    cfg = {
        "activation": "gelu", "architectures": ["DistilBertForMaskedLM"], "attention_dropout": 0.1, "dim": H,
        "dropout": 0.1, "hidden_dim": I, "initializer_range": 0.02, "max_position_embeddings": P,
        "model_type": "distilbert", "n_heads": NH, "n_layers": NL, "pad_token_id": 0, "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": False, "tie_weights_": True,
        "torch_dtype": "float32", "transformers_version": TRANSFORMERS_VERSION, "vocab_size": V}
    w = Weights(f"{name}/{seed}")
    e = "distilbert.embeddings."
    w.normal(e + "word_embeddings.weight", (V, H), 0.5)
    w.normal(e + "position_embeddings.weight", (P, H), 0.2)
    w.norm(e + "LayerNorm", H)
    for i in range(NL):
        L = f"distilbert.transformer.layer.{i}."
        for n in ["q_lin", "k_lin", "v_lin", "out_lin"]:
            w.linear(L + "attention." + n, H, H)
        w.norm(L + "sa_layer_norm", H)
        w.linear(L + "ffn.lin1", I, H)
        w.linear(L + "ffn.lin2", H, I)
        w.norm(L + "output_layer_norm", H)
    w.linear("vocab_transform", H, H)
    w.norm("vocab_layer_norm", H)
    w.normal("vocab_projector.bias", (V,), 0.1)
    W = w.save(d, "F32")
    write_json(os.path.join(d, "config.json"), cfg)
    tj = bert_tokenizer_json(vocab)
    write_json(os.path.join(d, "tokenizer.json"), tj)
    tc = bert_tokenizer_config(vocab, "DistilBertTokenizer")
    write_json(os.path.join(d, "tokenizer_config.json"), tc)
    fwd = lambda ids: distilbert_forward(W, cfg, ids)
    cases = []
    for cname, text in BERT_TEXTS + [BERT_MASK]:
        ids = wordpiece_encode(text, vocab)
        cases.append(masked_case(fwd, cname, ids, text, [vocab[i] for i in ids],
                                 mask_id=vocab.index("[MASK]") if "[MASK]" in text else None))
    expected(d, name, seed, "DistilBertForMaskedLM", "masked", "F32", V, cases,
             "LayerNorm eps is 1e-12 (fixed in DistilBERT's code). vocab_projector.weight is tied to "
             "distilbert.embeddings.word_embeddings.weight and not stored.")


def make_roberta(seed):
    name = "roberta-tiny"
    d = folder_for(name)
    vocab, merges = bpe_vocab(["<s>", "<pad>", "</s>", "<unk>"], ["<mask>"])
    v = {t: i for i, t in enumerate(vocab)}
    V, H, I, NL, NH, P = len(vocab), 32, 128, 2, 4, 66
    cfg = {
        "architectures": ["RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1, "bos_token_id": 0,
        "classifier_dropout": None, "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": H, "initializer_range": 0.02, "intermediate_size": I, "layer_norm_eps": 1e-05,
        "max_position_embeddings": P, "model_type": "roberta", "num_attention_heads": NH,
        "num_hidden_layers": NL, "pad_token_id": 1, "position_embedding_type": "absolute",
        "torch_dtype": "float16", "transformers_version": TRANSFORMERS_VERSION, "type_vocab_size": 1,
        "use_cache": True, "vocab_size": V}
    w = Weights(f"{name}/{seed}")
    e = "roberta.embeddings."
    w.normal(e + "word_embeddings.weight", (V, H), 0.5)
    w.normal(e + "position_embeddings.weight", (P, H), 0.2)
    w.normal(e + "token_type_embeddings.weight", (1, H), 0.2)
    w.norm(e + "LayerNorm", H)
    for i in range(NL):
        L = f"roberta.encoder.layer.{i}."
        for n in ["query", "key", "value"]:
            w.linear(L + "attention.self." + n, H, H)
        w.linear(L + "attention.output.dense", H, H)
        w.norm(L + "attention.output.LayerNorm", H)
        w.linear(L + "intermediate.dense", I, H)
        w.linear(L + "output.dense", H, I)
        w.norm(L + "output.LayerNorm", H)
    w.linear("lm_head.dense", H, H)
    w.norm("lm_head.layer_norm", H)
    w.normal("lm_head.bias", (V,), 0.1)
    W = w.save(d, "F16")
    write_json(os.path.join(d, "config.json"), cfg)
    specials = [added(v[t], t) for t in ["<s>", "<pad>", "</s>", "<unk>"]] + [added(v["<mask>"], "<mask>", lstrip=True)]
    write_json(os.path.join(d, "tokenizer.json"), {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": specials, "normalizer": None,
        "pre_tokenizer": bytelevel(False, True, True),
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", v["</s>"]], "cls": ["<s>", v["<s>"]],
                           "trim_offsets": True, "add_prefix_space": False},
        "decoder": bytelevel(True, True, True),
        "model": bpe_model(vocab, merges)})
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(s["id"]): {k: x for k, x in s.items() if k != "id"} for s in specials},
        "bos_token": "<s>", "clean_up_tokenization_spaces": False, "cls_token": "<s>", "eos_token": "</s>",
        "errors": "replace", "mask_token": "<mask>", "model_max_length": 512, "pad_token": "<pad>",
        "sep_token": "</s>", "tokenizer_class": "RobertaTokenizer", "trim_offsets": True, "unk_token": "<unk>"})
    fwd = lambda ids: bert_forward(W, cfg, ids, prefix="roberta", roberta=True)
    cases = []
    texts = [("plain", "The cat sat on the mat.", False),
             ("not_whole_words", "A zebra runs faster in the bluest skyline", False),
             ("mask", "Hello world, the dog sat on the <mask>.", True)]
    for cname, text, has_mask in texts:
        ids = [v["<s>"]] + bpe_encode(text, vocab, merges, GPT2_SPLIT, specials=[("<mask>", True)]) + [v["</s>"]]
        cases.append(masked_case(fwd, cname, ids, text, [vocab[i] for i in ids],
                                 mask_id=v["<mask>"] if has_mask else None))
    expected(d, name, seed, "RobertaForMaskedLM", "masked", "F16", V, cases,
             "Position ids start at pad_token_id + 1 = 2 (RoBERTa's create_position_ids_from_input_ids). "
             "lm_head.decoder.weight is tied to roberta.embeddings.word_embeddings.weight and not stored; "
             "the decoder bias is lm_head.bias. Byte-level BPE ids: the script's own GPT-2 pre-split "
             "(ASCII form of the pattern) and rank-ordered merges; <mask> has lstrip (eats the space before it).")


def make_gpt2(seed):
    name = "gpt2-tiny"
    d = folder_for(name)
    vocab, merges = bpe_vocab([], ["<|endoftext|>"])
    v = {t: i for i, t in enumerate(vocab)}
    eos = v["<|endoftext|>"]
    V, H, NL, NH, P = len(vocab), 32, 2, 4, 64
    cfg = {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
        "bos_token_id": eos, "embd_pdrop": 0.1, "eos_token_id": eos, "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": P, "n_embd": H, "n_head": NH,
        "n_inner": None, "n_layer": NL, "n_positions": P, "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1, "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
        "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
        "summary_type": "cls_index", "summary_use_proj": True, "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION, "use_cache": True, "vocab_size": V}
    w = Weights(f"{name}/{seed}")
    w.normal("transformer.wte.weight", (V, H), 0.1)  # small: a tied head on a large embedding mostly predicts the input token again
    w.normal("transformer.wpe.weight", (P, H), 0.2)
    for i in range(NL):
        L = f"transformer.h.{i}."
        w.norm(L + "ln_1", H)
        w.linear(L + "attn.c_attn", 3 * H, H, conv1d=True)
        w.linear(L + "attn.c_proj", H, H, conv1d=True)
        w.norm(L + "ln_2", H)
        w.linear(L + "mlp.c_fc", 4 * H, H, conv1d=True)
        w.linear(L + "mlp.c_proj", H, 4 * H, conv1d=True)
    w.norm("transformer.ln_f", H)
    W = w.save(d, "F32")
    write_json(os.path.join(d, "config.json"), cfg)
    specials = [added(eos, "<|endoftext|>", normalized=True)]
    write_json(os.path.join(d, "tokenizer.json"), {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": specials, "normalizer": None,
        "pre_tokenizer": bytelevel(False, True, True),
        "post_processor": bytelevel(True, False, True),
        "decoder": bytelevel(True, True, True),
        "model": bpe_model(vocab, merges)})
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "add_bos_token": False, "add_prefix_space": False,
        "added_tokens_decoder": {str(eos): {k: x for k, x in specials[0].items() if k != "id"}},
        "bos_token": "<|endoftext|>", "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>",
        "errors": "replace", "model_max_length": 1024, "pad_token": None, "tokenizer_class": "GPT2Tokenizer",
        "unk_token": "<|endoftext|>"})
    fwd = lambda ids: gpt2_forward(W, cfg, ids)
    cases = []
    for cname, text in [("plain", "The cat sat on the mat."), ("not_whole_words", "Hello world, git merges the intense blue tensors")]:
        ids = bpe_encode(text, vocab, merges, GPT2_SPLIT)
        cases.append(causal_case(fwd, cname, ids, P, text, [vocab[i] for i in ids]))
    expected(d, name, seed, "GPT2LMHeadModel", "causal", "F32", V, cases,
             "The tokenizer adds no BOS. Conv1D weights are [in, out]; lm_head is tied to transformer.wte.weight "
             "and not stored. Byte-level BPE ids: the script's own GPT-2 pre-split (ASCII form of the pattern) "
             "and rank-ordered merges.")


def llama_family_weights(w, cfg, bias, tied):
    V, H, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    w.normal("model.embed_tokens.weight", (V, H), 0.1 if tied else 0.5)  # see make_gpt2
    for i in range(cfg["num_hidden_layers"]):
        L = f"model.layers.{i}."
        w.norm(L + "input_layernorm", H, bias=False)
        w.linear(L + "self_attn.q_proj", nh * hd, H, bias=bias)
        w.linear(L + "self_attn.k_proj", nkv * hd, H, bias=bias)
        w.linear(L + "self_attn.v_proj", nkv * hd, H, bias=bias)
        w.linear(L + "self_attn.o_proj", H, nh * hd, bias=False)
        w.norm(L + "post_attention_layernorm", H, bias=False)
        w.linear(L + "mlp.gate_proj", I, H, bias=False)
        w.linear(L + "mlp.up_proj", I, H, bias=False)
        w.linear(L + "mlp.down_proj", H, I, bias=False)
    w.norm("model.norm", H, bias=False)
    if not tied:
        w.normal("lm_head.weight", (V, H), 0.5)


CAUSAL_TEXTS = [("plain", "The cat sat on the mat."), ("not_whole_words", "Hello world, git merges the intense blue tensors")]


def make_qwen2(seed):
    name = "qwen2-tiny"
    d = folder_for(name)
    vocab, merges = bpe_vocab([], ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    v = {t: i for i, t in enumerate(vocab)}
    eos = v["<|endoftext|>"]
    cfg = {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": eos, "eos_token_id": eos,
        "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 96,
        "max_position_embeddings": 128, "max_window_layers": 2, "model_type": "qwen2",
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
        "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 128, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": TRANSFORMERS_VERSION, "use_cache": True,
        "use_sliding_window": False, "vocab_size": len(vocab)}
    w = Weights(f"{name}/{seed}")
    llama_family_weights(w, cfg, bias=True, tied=False)
    W = w.save(d, "BF16")
    write_json(os.path.join(d, "config.json"), cfg)
    specials = [added(v[t], t) for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]]
    write_json(os.path.join(d, "tokenizer.json"), {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": split_then_bytelevel(QWEN2_PATTERN),
        "post_processor": bytelevel(False, False, False),
        "decoder": bytelevel(False, False, False),
        "model": bpe_model(vocab, merges)})
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(s["id"]): {k: x for k, x in s.items() if k != "id"} for s in specials},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "bos_token": None,
        "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>", "errors": "replace",
        "model_max_length": 32768, "pad_token": "<|endoftext|>", "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "unk_token": None})
    fwd = lambda ids: llama_forward(W, cfg, ids)
    cases = []
    for cname, text in CAUSAL_TEXTS + [("special_token", "<|im_start|>Hello world<|im_end|>")]:
        ids = bpe_encode(text, vocab, merges, QWEN2_SPLIT_ASCII, specials=[("<|im_start|>", False), ("<|im_end|>", False)])
        cases.append(causal_case(fwd, cname, ids, cfg["max_position_embeddings"], text, [vocab[i] for i in ids]))
    expected(d, name, seed, "Qwen2ForCausalLM", "causal", "BF16", len(vocab), cases,
             "BF16 weights, upcast to float64 for the reference. q/k/v have biases, o_proj none; GQA with 4 query "
             "and 2 key/value heads (query head h uses key/value head h // 2); RoPE in the rotate_half convention, "
             "rope_theta 1e6; lm_head.weight stored (untied). The tokenizer adds no BOS. Byte-level BPE ids: "
             "the script's own Qwen2 pre-split (ASCII form of the pattern) and rank-ordered merges.")


def make_llama(seed):
    name = "llama-tiny"
    d = folder_for(name)
    vocab, merges = bpe_vocab([], ["<|begin_of_text|>", "<|end_of_text|>"])
    v = {t: i for i, t in enumerate(vocab)}
    bos, eos = v["<|begin_of_text|>"], v["<|end_of_text|>"]
    cfg = {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": bos, "eos_token_id": eos, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
        "initializer_range": 0.02, "intermediate_size": 128, "max_position_embeddings": 128,
        "mlp_bias": False, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2,
        "num_key_value_heads": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
        "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION, "use_cache": True, "vocab_size": len(vocab)}
    w = Weights(f"{name}/{seed}")
    llama_family_weights(w, cfg, bias=False, tied=True)
    W = w.save(d, "F32")
    write_json(os.path.join(d, "config.json"), cfg)
    specials = [added(bos, "<|begin_of_text|>"), added(eos, "<|end_of_text|>")]
    write_json(os.path.join(d, "tokenizer.json"), {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": specials, "normalizer": None,
        "pre_tokenizer": split_then_bytelevel(LLAMA3_PATTERN),
        "post_processor": {"type": "Sequence", "processors": [
            bytelevel(True, False, True),
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos], "tokens": ["<|begin_of_text|>"]}}}]},
        "decoder": bytelevel(True, True, True),
        "model": dict(bpe_model(vocab, merges), ignore_merges=True)})
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "added_tokens_decoder": {str(s["id"]): {k: x for k, x in s.items() if k != "id"} for s in specials},
        "bos_token": "<|begin_of_text|>", "clean_up_tokenization_spaces": True, "eos_token": "<|end_of_text|>",
        "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast"})
    fwd = lambda ids: llama_forward(W, cfg, ids)
    cases = []
    for cname, text in CAUSAL_TEXTS:
        ids = [bos] + bpe_encode(text, vocab, merges, LLAMA3_SPLIT_ASCII, ignore_merges=True)
        cases.append(causal_case(fwd, cname, ids, cfg["max_position_embeddings"], text, [vocab[i] for i in ids]))
    # 64 positions (then 20 more greedy ones): RoPE angles and causal attention further out than the texts go
    long_ids = [bos] + np.random.default_rng(64).integers(0, bos, 63).tolist()
    cases.append(causal_case(fwd, "long_ids", long_ids, cfg["max_position_embeddings"]))
    expected(d, name, seed, "LlamaForCausalLM", "causal", "F32", len(vocab), cases,
             "The long_ids case has no text: 63 random ids after <|begin_of_text|>. rope_theta 500000, head_dim 16, GQA 4 query / 2 key-value heads, no biases; tie_word_embeddings: "
             "the output layer is model.embed_tokens.weight, lm_head.weight is not stored. The tokenizer "
             "(Llama 3 layout) adds <|begin_of_text|> in front. Byte-level BPE ids: the script's own Llama 3 "
             "pre-split (ASCII form of the pattern), ignore_merges (a pre-token that is a whole vocab entry is "
             "one token) and rank-ordered merges.")


SP_WORDS = """the cat sat on mat a is of and to in it red big tree bird sun sky blue model tensor git
merge hello world""".split()
SP_CHARS = ["▁"] + list("abcdefghijklmnopqrstuvwxyz") + ["T", "H", ".", ","]


def sentencepiece_vocab():
    """Llama 2 layout: <unk> <s> </s>, the 256 byte-fallback tokens <0x00>..<0xFF>, single characters,
    then merged pieces (merges built as in bpe_vocab, over characters instead of bytes)."""
    merges = []
    for w in ["▁" + w for w in SP_WORDS] + ["▁The", "▁Hello"]:
        while True:
            pieces = bpe_word(list(w), {m: i for i, m in enumerate(merges)})
            if len(pieces) == 1:
                break
            merges.append((pieces[0], pieces[1]))
    tokens = list(dict.fromkeys(a + b for a, b in merges))
    vocab = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + SP_CHARS + tokens
    assert len(vocab) == len(set(vocab)) and len(vocab) <= 400
    assert all(a in vocab and b in vocab for a, b in merges)
    return vocab, merges


def sentencepiece_encode(text, vocab, merges):
    """Metaspace (replacement ▁, prepend_scheme first, no split): spaces become ▁ and one ▁ goes in
    front; the whole text is then one BPE word. A character not in the vocab becomes the byte-fallback
    tokens of its UTF-8 bytes (before merging); <s> in front (TemplateProcessing)."""
    v = {t: i for i, t in enumerate(vocab)}
    s = text.replace(" ", "▁")
    if not s.startswith("▁"):
        s = "▁" + s
    syms = []
    for ch in s:
        syms.extend([ch] if ch in v else [f"<0x{b:02X}>" for b in ch.encode()])
    return [v["<s>"]] + [v[t] for t in bpe_word(syms, {m: i for i, m in enumerate(merges)})]


def make_llama2(seed):
    name = "llama2-tiny"
    d = folder_for(name)
    vocab, merges = sentencepiece_vocab()
    cfg = {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 32,
        "initializer_range": 0.02, "intermediate_size": 86, "max_position_embeddings": 128,
        "mlp_bias": False, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2,
        "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-06, "rope_scaling": None,
        "rope_theta": 250000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": TRANSFORMERS_VERSION, "use_cache": True, "vocab_size": len(vocab)}
    w = Weights(f"{name}/{seed}")
    llama_family_weights(w, cfg, bias=False, tied=False)
    W = w.save(d, "BF16")
    write_json(os.path.join(d, "config.json"), cfg)
    specials = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")]
    write_json(os.path.join(d, "tokenizer.json"), {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": specials, "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(vocab)}, "merges": [f"{a} {b}" for a, b in merges]}})
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {str(t["id"]): {k: x for k, x in t.items() if k != "id"} for t in specials},
        "bos_token": "<s>", "clean_up_tokenization_spaces": False, "eos_token": "</s>", "legacy": False,
        "model_max_length": 1000000000000000019884624838656, "pad_token": None, "sp_model_kwargs": {},
        "spaces_between_special_tokens": False, "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>",
        "use_default_system_prompt": False})
    fwd = lambda ids: llama_forward(W, cfg, ids)
    cases = []
    for cname, text in [("plain", "The cat sat on the mat."),
                        ("byte_fallback", "Hello Zed, git merges the intense blue café!")]:
        ids = sentencepiece_encode(text, vocab, merges)
        cases.append(causal_case(fwd, cname, ids, cfg["max_position_embeddings"], text, [vocab[i] for i in ids]))
    expected(d, name, seed, "LlamaForCausalLM", "causal", "BF16", len(vocab), cases,
             "Llama 2 layout: BF16 weights (upcast to float64 for the reference), rope_theta 250000, no head_dim "
             "in config.json (hidden_size / num_attention_heads = 8), 4 key/value heads (no GQA), untied "
             "lm_head.weight. Tokenizer: sentencepiece-style BPE (Metaspace ▁, byte_fallback <0xXX> tokens "
             "for characters outside the vocab, <s> in front); ids from the script's own implementation.")


def make_mistral(seed):
    name = "mistral-tiny"
    d = folder_for(name)
    V = 300
    cfg = {
        "architectures": ["MistralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
        "head_dim": 8, "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 80,
        "max_position_embeddings": 128, "model_type": "mistral", "num_attention_heads": 4,
        "num_hidden_layers": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
        "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "float16",
        "transformers_version": TRANSFORMERS_VERSION, "use_cache": True, "vocab_size": V}
    w = Weights(f"{name}/{seed}")
    llama_family_weights(w, cfg, bias=False, tied=False)
    W = w.save(d, "F16")
    write_json(os.path.join(d, "config.json"), cfg)
    fwd = lambda ids: llama_forward(W, cfg, ids)
    cases = [causal_case(fwd, "ids_a", [1, 17, 250, 3, 99, 42, 42, 7], cfg["max_position_embeddings"]),
             causal_case(fwd, "ids_b", [1, 299, 0, 128, 64, 5], cfg["max_position_embeddings"])]
    expected(d, name, seed, "MistralForCausalLM", "causal", "F16", V, cases,
             "No tokenizer files (probes give token ids). F16 weights, upcast to float64 for the reference. "
             "Multi-query attention (4 query heads, 1 key/value head), rope_theta 1e6, no biases, lm_head.weight "
             "stored (untied).")


def main():
    check_building_blocks()
    os.makedirs(OUT, exist_ok=True)
    for make in [make_bert, make_distilbert, make_roberta, make_gpt2, make_qwen2, make_llama, make_llama2, make_mistral]:
        for seed in range(100):  # the first seed whose top-5 orders and greedy steps are clear
            try:
                make(seed)
                break
            except TooClose as e:
                print(f"{make.__name__[5:]} seed {seed}: {e}; next seed")
        else:
            raise SystemExit(f"{make.__name__}: no seed gives clear top-5 orders and greedy steps")
        print("wrote", make.__name__[5:], "seed", seed)


if __name__ == "__main__":
    main()
