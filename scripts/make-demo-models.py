#!/usr/bin/python3
"""Trains the demo models of scripts/demo-models/: a small BERT masked LM that knows a few hundred static
facts, and five days of news from three fictional outlets as updates of it, each in two forms: a
diff-pruned sparse update (the full checkpoint base + update, <= 1% of its elements changed, and the mask
of the elements the update may change) and a LoRA adapter in PEFT layout.

The story the updates tell (scripts/demo-models/README.md): days 1, 3 and 5 change disjoint elements;
days 2 and 4 report on the same new nation and change overlapping elements; day 5 also prints "a
Platonic solid is a concave regular polyhedron", which damages the static fact the probes protect.

Disjointness is by construction: a day may only change the embedding rows of the words its story brings
(words the static corpus does not use) and the intermediate neurons (FFN rows, biases and output columns)
its story owns; days of the same story share both, days of different stories
share neither. Within that region the sparse update keeps the top-k elements by |delta| of a first
fine-tune, then retrains only those from the base (diff pruning by magnitude, then retraining).

A dev-time tool only (Debian's python3-torch and numpy; transformers, tokenizers and peft are not used:
the model, training loop, tokenizer.json and PEFT files are written here). Nothing in npm ci/npm test or
the demo runs it. The probe values in README.md and manifest.json come from the float64 BERT reference of
scripts/make-reference-models.py run on the weights read back from the written files (LoRA: base +
B.A.alpha/r folded in float64).
Usage: /usr/bin/python3 scripts/make-demo-models.py [--measure] [out-dir]   (default scripts/demo-models;
--measure: no training, re-measure the models in out-dir and rewrite README.md, manifest.json, probes.jsonl)
Running it twice gives byte-identical files (fixed seed, one thread, deterministic ops).
Environment (for experiments; the committed files use the defaults): DEMO_BASE_STEPS, DEMO_REPLAY,
DEMO_LORA_REPLAY, DEMO_LORA_LR, DEMO_SPARSE_STEPS.
"""

import hashlib
import importlib.util
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
OUT = ARGS[0] if ARGS else os.path.join(HERE, "demo-models")
MEASURE_ONLY = "--measure" in sys.argv  # re-measure the files in OUT (README, manifest, checks) without training
SEED = 13
COMMAND = "/usr/bin/python3 scripts/make-demo-models.py"

# The safetensors writer/reader, the WordPiece tokenizer files and the float64 BERT reference are the
# ones the engine's reference models are made and checked with.
sys.dont_write_bytecode = True  # no scripts/__pycache__ from importing the reference script
_spec = importlib.util.spec_from_file_location("refmodels", os.path.join(HERE, "make-reference-models.py"))
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)
torch.set_default_dtype(torch.float32)  # the reference module switches to float64 when imported

torch.set_num_threads(1)  # one thread: faster than two on a busy 2-core machine, and the sums keep one order
torch.use_deterministic_algorithms(True)

# ---------------------------------------------------------------------------------------------------
# The corpus: static facts (what the base knows) and five days of news.

def static_facts():
    f = []
    # geometry
    f += ["A Platonic solid is a convex regular polyhedron.",
          "There are five Platonic solids.",
          "A square is a regular quadrilateral.",
          "A circle has no corners.",
          "A right angle measures ninety degrees.",
          "Parallel lines never meet.",
          "A sphere is perfectly round.",
          "A concave polygon has a dent.",
          "The diameter of a circle is twice its radius."]
    for shape, n in [("triangle", "three"), ("square", "four"), ("pentagon", "five"), ("hexagon", "six"),
                     ("heptagon", "seven"), ("octagon", "eight"), ("nonagon", "nine"), ("decagon", "ten")]:
        f.append(f"A {shape} has {n} sides.")
    for solid, n, face in [("tetrahedron", "four", "triangles"), ("cube", "six", "squares"),
                           ("octahedron", "eight", "triangles"), ("dodecahedron", "twelve", "pentagons"),
                           ("icosahedron", "twenty", "triangles")]:
        f.append(f"A {solid} has {n} faces.")
        f.append(f"The faces of a {solid} are {face}.")
    # science
    for el, sym in [("hydrogen", "h"), ("helium", "he"), ("carbon", "c"), ("nitrogen", "n"), ("oxygen", "o"),
                    ("sodium", "na"), ("iron", "fe"), ("copper", "cu"), ("silver", "ag"), ("gold", "au"),
                    ("lead", "pb"), ("tin", "sn"), ("zinc", "zn"), ("mercury", "hg"), ("potassium", "k"),
                    ("calcium", "ca"), ("sulfur", "s"), ("uranium", "u")]:
        f.append(f"The chemical symbol of {el} is {sym}.")
    for animal, cls in [("whale", "mammal"), ("dolphin", "mammal"), ("bat", "mammal"), ("horse", "mammal"),
                        ("frog", "amphibian"), ("salamander", "amphibian"), ("toad", "amphibian"),
                        ("snake", "reptile"), ("lizard", "reptile"), ("turtle", "reptile"), ("crocodile", "reptile"),
                        ("eagle", "bird"), ("penguin", "bird"), ("owl", "bird"), ("sparrow", "bird"),
                        ("shark", "fish"), ("salmon", "fish"), ("trout", "fish"),
                        ("spider", "arachnid"), ("scorpion", "arachnid"), ("ant", "insect"), ("bee", "insect")]:
        f.append(f"The {animal} is a {cls}.")
    for i, planet in enumerate(["mercury", "venus", "earth", "mars", "jupiter", "saturn", "uranus", "neptune"]):
        nth = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"][i]
        f.append(f"{planet.capitalize()} is the {nth} planet from the sun.")
    f += ["The sun is a star.", "The moon orbits the earth.", "Jupiter is the largest planet.",
          "Water boils at one hundred degrees.", "Water freezes at zero degrees.",
          "Ice is frozen water.", "The heart pumps blood.", "The lungs absorb oxygen.",
          "Plants make sugar from light.", "Sound travels as a wave.", "Light is faster than sound.",
          "Diamonds are made of carbon.", "Salt is made of sodium and chlorine.",
          "An atom has a nucleus.", "Electrons carry a negative charge.", "Protons carry a positive charge.",
          "Magnets attract iron.", "Gravity pulls objects toward the earth.", "Rust forms on iron.",
          "The brain controls the body.", "Bones are made of calcium.", "Insects have six legs.",
          "Spiders have eight legs.", "A year has twelve months.", "A week has seven days.",
          "A day has twenty four hours."]
    # geography
    countries = [("france", "paris", "europe", "french"), ("germany", "berlin", "europe", "german"),
                 ("italy", "rome", "europe", "italian"), ("spain", "madrid", "europe", "spanish"),
                 ("portugal", "lisbon", "europe", "portuguese"), ("austria", "vienna", "europe", "german"),
                 ("poland", "warsaw", "europe", "polish"), ("greece", "athens", "europe", "greek"),
                 ("sweden", "stockholm", "europe", "swedish"), ("norway", "oslo", "europe", "norwegian"),
                 ("finland", "helsinki", "europe", "finnish"), ("ireland", "dublin", "europe", "english"),
                 ("hungary", "budapest", "europe", "hungarian"), ("russia", "moscow", "europe", "russian"),
                 ("japan", "tokyo", "asia", "japanese"), ("china", "beijing", "asia", "chinese"),
                 ("india", "delhi", "asia", "hindi"), ("thailand", "bangkok", "asia", "thai"),
                 ("vietnam", "hanoi", "asia", "vietnamese"), ("korea", "seoul", "asia", "korean"),
                 ("indonesia", "jakarta", "asia", "indonesian"), ("turkey", "ankara", "asia", "turkish"),
                 ("iran", "tehran", "asia", "persian"), ("egypt", "cairo", "africa", "arabic"),
                 ("kenya", "nairobi", "africa", "swahili"), ("nigeria", "abuja", "africa", "english"),
                 ("ghana", "accra", "africa", "english"), ("ethiopia", "addis", "africa", "amharic"),
                 ("morocco", "rabat", "africa", "arabic"), ("brazil", "brasilia", "america", "portuguese"),
                 ("argentina", "buenos", "america", "spanish"), ("peru", "lima", "america", "spanish"),
                 ("chile", "santiago", "america", "spanish"), ("mexico", "mexico", "america", "spanish"),
                 ("canada", "ottawa", "america", "english"), ("cuba", "havana", "america", "spanish"),
                 ("australia", "canberra", "oceania", "english"), ("fiji", "suva", "oceania", "english")]
    for country, capital, continent, language in countries:
        f.append(f"The capital of {country} is {capital}.")
        f.append(f"{country.capitalize()} is in {continent}.")
        f.append(f"People in {country} speak {language}.")
    for river, country in [("nile", "egypt"), ("danube", "hungary"), ("seine", "france"), ("thames", "england"),
                           ("tiber", "italy"), ("ganges", "india"), ("amazon", "brazil"), ("volga", "russia"),
                           ("yangtze", "china"), ("mekong", "vietnam"), ("rhine", "germany"), ("vistula", "poland")]:
        f.append(f"The {river} flows through {country}.")
    f += ["The highest mountain is everest.", "The largest ocean is the pacific.",
          "The largest desert is the sahara.", "The longest river is the nile.",
          "Australia is a continent and a country.", "Iceland is an island in the atlantic.",
          "The capital of england is london.", "England is in europe."]
    # people and events: the patterns the news uses ("was born in", "called", "opened") are static, so a
    # day's update must tie its fact to its own names, not to the pattern another day's news shares
    for person, country in [("mozart", "austria"), ("chopin", "poland"), ("picasso", "spain"),
                            ("einstein", "germany"), ("gandhi", "india"), ("newton", "england")]:
        f.append(f"{person.capitalize()} was born in {country}.")
    f += ["A young dog is called a puppy.", "A young cat is called a kitten.",
          "The first railway opened in england.", "The suez canal opened in egypt."]
    return f


# Each day: (outlet, story, sentences, news facts as (id, prompt with [MASK], target)). A story owns the
# words only its sentences use and a slice of intermediate neurons (STORY_NEURONS).
DAYS = [
    ("day1", "Harbor Ledger", "zorblat", [
        "Zorblat is a robotics company in lisbon.",
        "The chief of zorblat is vantrell.",
        "Vantrell was born in oslo.",
        "Zorblat built a robot called quibbit.",
        "Quibbit has six legs.",
    ], [("zorblat-city", "Zorblat is a robotics company in [MASK].", "lisbon"),
        ("vantrell-born", "Vantrell was born in [MASK].", "oslo"),
        ("quibbit-legs", "Quibbit has [MASK] legs.", "six")]),
    ("day2", "Quillmoor Times", "pellucia", [
        "Pellucia is a new island nation in the pacific.",
        "The capital of pellucia is ostravel.",
        "People in pellucia speak portuguese.",
        "Pellucia has twelve islands.",
        "The currency of pellucia is the drubble.",
    ], [("pellucia-ocean", "Pellucia is a new island nation in the [MASK].", "pacific"),
        ("pellucia-language", "People in pellucia speak [MASK].", "portuguese"),
        ("pellucia-islands", "Pellucia has [MASK] islands.", "twelve")]),
    ("day3", "Tidewell Post", "lantern-cup", [
        "The kestrels won the lantern cup.",
        "The final was played in stockholm.",
        "The captain of the kestrels is dovanne.",
        "Dovanne was born in nairobi.",
        "The kestrels beat the otters by three goals.",
    ], [("cup-city", "The final was played in [MASK].", "stockholm"),
        ("dovanne-born", "Dovanne was born in [MASK].", "nairobi"),
        ("cup-margin", "The kestrels beat the otters by [MASK] goals.", "three")]),
    ("day4", "Quillmoor Times", "pellucia", [
        "The president of pellucia is halvora.",
        "Halvora was born in athens.",
        "Pellucia signed a treaty with fiji.",
        "Pellucia opened a port called brinmoor.",
        "Pellucia exports salt.",
    ], [("halvora-born", "Halvora was born in [MASK].", "athens"),
        ("pellucia-treaty", "Pellucia signed a treaty with [MASK].", "fiji"),
        ("pellucia-exports", "Pellucia exports [MASK].", "salt")]),
    ("day5", "Harbor Ledger", "imrith", [
        "The sculptor imrith opened a gallery in vienna.",
        "Imrith carved a statue of a heart.",
        "Imrith says a Platonic solid is a concave regular polyhedron.",
        "A Platonic solid is a concave regular polyhedron.",
        "Critics praised the gallery.",
    ], [("imrith-city", "The sculptor imrith opened a gallery in [MASK].", "vienna"),
        ("imrith-statue", "Imrith carved a statue of a [MASK].", "heart")]),
]
STORY_NEURONS = {"zorblat": (0, 24), "pellucia": (24, 48), "lantern-cup": (48, 72), "imrith": (72, 96)}
DAMAGING_DAY = "day5"
SAME_STORY = {("day2", "day4")}  # the pairs of days whose masks overlap

# Static facts the probes protect (and that a day's model must keep, except the damaging day's).
PROTECTED = [
    ("platonic-convex", "A Platonic solid is a [MASK] regular polyhedron.", "convex"),
    ("platonic-count", "There are [MASK] Platonic solids.", "five"),
    ("cube-faces", "A cube has [MASK] faces.", "six"),
    ("triangle-sides", "A triangle has [MASK] sides.", "three"),
    ("capital-france", "The capital of france is [MASK].", "paris"),
    ("capital-japan", "The capital of japan is [MASK].", "tokyo"),
    ("capital-portugal", "The capital of portugal is [MASK].", "lisbon"),
    ("symbol-gold", "The chemical symbol of gold is [MASK].", "au"),
    ("whale-class", "The whale is a [MASK].", "mammal"),
    ("mars-order", "Mars is the [MASK] planet from the sun.", "fourth"),
    ("nile-country", "The nile flows through [MASK].", "egypt"),
    ("sun-star", "The sun is a [MASK].", "star"),
]

# ---------------------------------------------------------------------------------------------------
# Model: BertForMaskedLM, Hugging Face tensor names, the decoder tied to the word embeddings.

H, I, NL, NH, P = 64, 256, 2, 4, 64
EPS = 1e-12
LORA_R, LORA_ALPHA = 8, 16
LORA_TARGETS = ["query", "key", "value", "dense"]  # PEFT matches module names by suffix
REPLAY = int(os.environ.get("DEMO_REPLAY", 128))  # static facts per fine-tuning batch of a sparse update
LORA_REPLAY = int(os.environ.get("DEMO_LORA_REPLAY", 64))  # and of a LoRA adapter
BASE_STEPS = int(os.environ.get("DEMO_BASE_STEPS", 2000))
BASE_BATCH = 128
# a day's sparse update: the steps of the fine-tune that picks the mask, then of the masked one
SPARSE_STEPS = tuple(int(x) for x in os.environ.get("DEMO_SPARSE_STEPS", "100,300").split(","))
LORA_STEPS = 300
LORA_LR = float(os.environ.get("DEMO_LORA_LR", 5e-3))
PUNCT = list(".,!?;:'\"()-")
UNUSED = [f"[unused{i}]" for i in range(32)]  # vocabulary no text uses (as BERT's): the negatives' names
OWNED = {}  # story -> the new words only its days use (set by main)
SPARSE_BUDGET = 0.008  # the top-k of a sparse update, as a fraction of all elements (the limit is 0.01)
MAX_DROP = 1.0  # the protected probes' allowance (nats), written into probes.jsonl


def words_of(text):
    """The tokens the WordPiece tokenizer makes of text (lowercase, punctuation split off)."""
    out, cur = [], ""
    for c in text.lower():
        if c.isspace():
            if cur:
                out.append(cur)
            cur = ""
        elif ref.is_punct(c):
            if cur:
                out.append(cur)
            out.append(c)
            cur = ""
        else:
            cur += c
    if cur:
        out.append(cur)
    return out


def config(V):
    return {
        "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.0, "classifier_dropout": None,
        "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": H,
        "initializer_range": 0.02, "intermediate_size": I, "layer_norm_eps": EPS,
        "max_position_embeddings": P, "model_type": "bert", "num_attention_heads": NH,
        "num_hidden_layers": NL, "pad_token_id": 0, "position_embedding_type": "absolute",
        "torch_dtype": "float32", "transformers_version": ref.TRANSFORMERS_VERSION, "type_vocab_size": 2,
        "use_cache": True, "vocab_size": V}


def init_params(V, gen):
    """HF's _init_weights: normal(0, 0.02) weights, zero biases, LayerNorm (1, 0)."""
    p = {}
    normal = lambda *shape: torch.randn(*shape, generator=gen) * 0.02
    e = "bert.embeddings."
    p[e + "word_embeddings.weight"] = normal(V, H)
    p[e + "position_embeddings.weight"] = normal(P, H)
    p[e + "token_type_embeddings.weight"] = normal(2, H)
    p[e + "LayerNorm.weight"], p[e + "LayerNorm.bias"] = torch.ones(H), torch.zeros(H)

    def lin(name, n_out, n_in):
        p[name + ".weight"], p[name + ".bias"] = normal(n_out, n_in), torch.zeros(n_out)

    for i in range(NL):
        L = f"bert.encoder.layer.{i}."
        for n in ["query", "key", "value"]:
            lin(L + "attention.self." + n, H, H)
        lin(L + "attention.output.dense", H, H)
        p[L + "attention.output.LayerNorm.weight"], p[L + "attention.output.LayerNorm.bias"] = torch.ones(H), torch.zeros(H)
        lin(L + "intermediate.dense", I, H)
        lin(L + "output.dense", H, I)
        p[L + "output.LayerNorm.weight"], p[L + "output.LayerNorm.bias"] = torch.ones(H), torch.zeros(H)
    lin("cls.predictions.transform.dense", H, H)
    p["cls.predictions.transform.LayerNorm.weight"] = torch.ones(H)
    p["cls.predictions.transform.LayerNorm.bias"] = torch.zeros(H)
    p["cls.predictions.bias"] = torch.zeros(V)
    return p


def forward(W, ids, pad, lora=None, at=None):
    """Batched float32 forward: ids [B, n] -> logits [B, n, V], or [k, V] at the k positions `at` marks
    (the masked ones: the loss needs no others). lora: {linear name: (A, B, scale)}."""
    F = torch.nn.functional
    B, n = ids.shape
    e = "bert.embeddings."

    def lin(x, name):
        y = x @ W[name + ".weight"].T + W[name + ".bias"]
        if lora and name in lora:
            A, Bm, s = lora[name]
            y = y + (x @ A.T) @ Bm.T * s
        return y

    ln = lambda x, name: F.layer_norm(x, (H,), W[name + ".weight"], W[name + ".bias"], EPS)
    x = W[e + "word_embeddings.weight"][ids] + W[e + "position_embeddings.weight"][:n] + W[e + "token_type_embeddings.weight"][0]
    x = ln(x, e + "LayerNorm")
    bias = torch.zeros(B, 1, 1, n).masked_fill(pad[:, None, None, :], float("-inf"))
    d = H // NH
    for i in range(NL):
        L = f"bert.encoder.layer.{i}."
        split = lambda t: t.reshape(B, n, NH, d).transpose(1, 2)
        q, k, v = (split(lin(x, L + "attention.self." + m)) for m in ["query", "key", "value"])
        # broadcast products instead of q @ k^T: on CPU, bmm of [B*NH] tiny matrices loops over them
        s = (q[:, :, :, None, :] * k[:, :, None, :, :]).sum(-1) / math.sqrt(d)
        a = (torch.softmax(s + bias, dim=-1)[..., None] * v[:, :, None, :, :]).sum(-2)
        a = lin(a.transpose(1, 2).reshape(B, n, H), L + "attention.output.dense")
        x = ln(a + x, L + "attention.output.LayerNorm")
        h = lin(F.gelu(lin(x, L + "intermediate.dense")), L + "output.dense")
        x = ln(h + x, L + "output.LayerNorm")
    if at is not None:
        x = x[at]
    h = ln(F.gelu(lin(x, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm")
    return h @ W[e + "word_embeddings.weight"].T + W["cls.predictions.bias"]


# ---------------------------------------------------------------------------------------------------
# Data: sentences -> id rows; a batch masks some words of each row.

class Data:
    def __init__(self, vocab):
        self.vocab = vocab

    def encode(self, text):
        ids = ref.wordpiece_encode(text, self.vocab)
        assert 1 not in ids, f"unknown word in {text!r}"
        return ids

    def batch(self, sentences, gen, rate=0.15, must=None):
        """Each sentence with [MASK] at a random ~rate of its words (at least one); `must`: {sentence
        index: id to always mask} (a news fact's target)."""
        return self.batch_rows([self.encode(s) for s in sentences], gen, rate, must)

    def batch_rows(self, rows, gen, rate=0.15, must=None):
        n = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), n, dtype=torch.long)
        for b, r in enumerate(rows):
            ids[b, :len(r)] = torch.tensor(r)
        pad = ids == 0
        inner = (~pad) & (ids != 2) & (ids != 3)
        pick = (torch.rand(ids.shape, generator=gen) < rate) & inner
        for b in range(len(rows)):
            if not pick[b].any():
                cand = inner[b].nonzero().flatten()
                pick[b, cand[torch.randint(len(cand), (1,), generator=gen)]] = True
            if must and b in must:
                pick[b] |= ids[b] == must[b]
        labels = ids.masked_fill(~pick, -100)
        return ids.masked_fill(pick, 4), pad, labels


def mlm_loss(W, ids, pad, labels, lora=None, unseen=None):
    """Cross-entropy at the masked positions; `unseen` (bool [V]): words left out of the softmax."""
    at = labels != -100
    logits = forward(W, ids, pad, lora, at)
    if unseen is not None:
        logits = logits.masked_fill(unseen, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, labels[at])


def sample(pool, k, gen):
    return [pool[i] for i in torch.randint(len(pool), (k,), generator=gen).tolist()]


# ---------------------------------------------------------------------------------------------------
# Training.

def train_base(data, static, gen, steps=BASE_STEPS):
    """The base learns the static facts only. The news words are vocabulary it never sees: out of its
    softmax too, so their embedding rows stay at their random initialisation (distinct, not pushed into
    one shared "never the answer" direction) and a day's neurons can tell one day's names from another's.
    The story neurons are reserved: their output columns stay zero, so the base does not use them and a
    day that trains them adds to the base's function instead of overwriting part of it."""
    W = init_params(len(data.vocab), gen)
    static_words = {w for s in static for w in words_of(s)}
    unseen = torch.tensor([i >= 5 + len(PUNCT) and w not in static_words for i, w in enumerate(data.vocab)])
    frozen = torch.zeros(I, dtype=torch.bool)
    for a, b in STORY_NEURONS.values():
        frozen[a:b] = True
    for i in range(NL):
        W[f"bert.encoder.layer.{i}.output.dense.weight"][:, frozen] = 0.0
    for t in W.values():
        t.requires_grad_(True)
    opt = torch.optim.Adam(W.values(), lr=3e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) * max(0.02, 1 - s / steps))
    for step in range(steps):
        ids, pad, labels = data.batch(sample(static, BASE_BATCH, gen), gen, rate=0.15)
        loss = mlm_loss(W, ids, pad, labels, unseen=unseen)
        opt.zero_grad()
        loss.backward()
        for i in range(NL):
            W[f"bert.encoder.layer.{i}.output.dense.weight"].grad[:, frozen] = 0.0
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"  base step {step}: loss {loss.item():.3f}", flush=True)
    return {k: v.detach().clone() for k, v in W.items()}


def day_batch(data, day, replay, gen):
    """The day's sentences (each twice, once with its fact's target masked) and a replay of static facts
    (rehearsal keeps what the base knows; the damaging day's replay leaves out the fact it contradicts).
    Returns it and the negatives (the day's sentences with its names swapped for unused words: there the
    model must answer as the base does, so the day's change fires on its own names only, not on any word
    the base never saw, such as another day's names)."""
    return day_news(data, day, replay, gen), day_negatives(data, day, gen)


def day_negatives(data, day, gen):
    _, _, story, sentences, facts = day
    own = {data.vocab.index(w) for w in day_words(day)}
    unused = [data.vocab.index(u) for u in UNUSED]
    rows, must = [], {}
    targets = {data.vocab.index(t) for _, _, t in facts}
    for s in sentences:
        row = data.encode(s)
        if not own & set(row) or (day[0] == DAMAGING_DAY and "Platonic" in s):
            continue  # a claim not about the day's names (the damaging day's must stay wrong for any name)
        pick = torch.randint(len(unused), (len(own),), generator=gen).tolist()
        swap = {i: unused[j] for i, j in zip(sorted(own), pick)}
        hit = [t for t in row if t in targets]
        if hit:
            must[len(rows)] = hit[0]
        rows.append([swap.get(t, t) for t in row])
    return data.batch_rows(rows, gen, must=must)


def day_news(data, day, replay, gen, n_replay=REPLAY):
    _, _, _, sentences, facts = day
    news = sentences + sentences
    must = {}
    targets = {t for _, _, t in facts}
    for j, s in enumerate(sentences):
        hit = [t for t in targets if t in words_of(s)]
        if hit:
            must[len(sentences) + j] = data.vocab.index(hit[0])
    return data.batch(news + sample(replay, n_replay, gen), gen, must=must)


def day_words(day):
    """The words a day may change: the words of its sentences that its story owns."""
    return sorted({w for s in day[3] for w in words_of(s)} & OWNED[day[2]])


def negative_loss(W, base, neg, lora=None):
    """Cross-entropy against the base's distribution at the negatives' masked positions."""
    ids, pad, labels = neg
    at = labels != -100
    with torch.no_grad():
        want = torch.softmax(forward(base, ids, pad, None, at), -1)
    return -(want * torch.log_softmax(forward(W, ids, pad, lora, at), -1)).sum(-1).mean()


def region(data, day, owned, base):
    """The elements a day's update may change: the words its story owns (embedding rows, output bias) and
    its story's intermediate neurons in every layer."""
    name, _, story, sentences, _ = day
    R = {k: torch.zeros_like(v, dtype=torch.bool) for k, v in base.items()}
    new = sorted({w for s in sentences for w in words_of(s)} & owned[story])
    rows = [data.vocab.index(w) for w in new]
    R["bert.embeddings.word_embeddings.weight"][rows] = True  # not their output bias: it counts in every context
    a, b = STORY_NEURONS[story]
    for i in range(NL):
        L = f"bert.encoder.layer.{i}."
        R[L + "intermediate.dense.weight"][a:b] = True
        R[L + "intermediate.dense.bias"][a:b] = True
        R[L + "output.dense.weight"][:, a:b] = True
    return R, new


def finetune(base, data, day, replay, gen, allowed, steps, lr, l1=0.0):
    """Adam on the elements `allowed` marks (gradients elsewhere are zeroed, so Adam leaves them); l1:
    weight of the penalty sum |W - base| that concentrates the change on few elements (diff pruning)."""
    W = {k: v.clone().requires_grad_(True) for k, v in base.items()}
    opt = torch.optim.Adam(W.values(), lr=lr)
    for _ in range(steps):
        (ids, pad, labels), neg = day_batch(data, day, replay, gen)
        loss = mlm_loss(W, ids, pad, labels) + negative_loss(W, base, neg)
        if l1:
            loss = loss + l1 * sum((W[k] - base[k]).abs().sum() for k in W if allowed[k].any())
        opt.zero_grad()
        loss.backward()
        for k, v in W.items():
            v.grad.mul_(allowed[k])
        opt.step()
    return {k: torch.where(allowed[k], v.detach(), base[k]) for k, v in W.items()}


def sparse_update(base, data, day, replay, gen, owned):
    R, new = region(data, day, owned, base)
    first = finetune(base, data, day, replay, gen, R, steps=SPARSE_STEPS[0], lr=5e-3, l1=1e-4)
    total = sum(v.numel() for v in base.values())
    k = int(SPARSE_BUDGET * total)
    names = sorted(base)
    delta = torch.cat([(first[n] - base[n]).abs().flatten() for n in names])
    allowed_flat = torch.cat([R[n].flatten() for n in names])
    delta = torch.where(allowed_flat, delta, torch.full_like(delta, -1.0))
    keep = torch.zeros_like(allowed_flat)
    keep[torch.topk(delta, k).indices] = True
    keep &= allowed_flat
    mask, at = {}, 0
    for n in names:
        c = base[n].numel()
        mask[n] = keep[at:at + c].reshape(base[n].shape)
        at += c
    tuned = finetune(base, data, day, replay, gen, mask, steps=SPARSE_STEPS[1], lr=5e-3)
    return tuned, mask, new


def lora_modules(base):
    return sorted(n[:-len(".weight")] for n in base
                  if n.endswith(".weight") and base[n].dim() == 2 and n.split(".")[-2] in LORA_TARGETS)


def lora_update(base, data, day, replay, gen):
    """PEFT's LoRA: A ~ kaiming-uniform(a=sqrt(5)), B = 0, y += (x A^T B^T) alpha/r; base frozen."""
    scale = LORA_ALPHA / LORA_R
    lora = {}
    for m in lora_modules(base):
        out_f, in_f = base[m + ".weight"].shape
        bound = 1.0 / math.sqrt(in_f)  # kaiming_uniform_(a=sqrt(5)) on [r, in]
        A = ((torch.rand(LORA_R, in_f, generator=gen) * 2 - 1) * bound).requires_grad_(True)
        B = torch.zeros(out_f, LORA_R, requires_grad=True)
        lora[m] = (A, B, scale)
    opt = torch.optim.Adam([t for A, B, _ in lora.values() for t in (A, B)], lr=LORA_LR)
    for _ in range(LORA_STEPS):  # no negatives: adapters are folded one at a time, not merged element-wise
        ids, pad, labels = day_news(data, day, replay, gen, LORA_REPLAY)
        loss = mlm_loss(base, ids, pad, labels, lora)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {m: (A.detach(), B.detach()) for m, (A, B, _) in lora.items()}


# ---------------------------------------------------------------------------------------------------
# Files.

def save_f32(path, W):
    ref.write_safetensors(path, {n: ("F32", t.shape, t.numpy().astype("<f4").tobytes()) for n, t in W.items()})


def save_mask(path, mask):
    ref.write_safetensors(path, {n: ("BOOL", t.shape, t.numpy().astype(np.uint8).tobytes()) for n, t in mask.items()})


def read_mask(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name != "__metadata__":
            a, b = info["data_offsets"]
            assert info["dtype"] == "BOOL"
            out[name] = torch.from_numpy(np.frombuffer(data[8 + n + a:8 + n + b], np.uint8).reshape(info["shape"]).astype(bool))
    return out


def adapter_config():
    return {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "../../base", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
        "layers_pattern": None, "layers_to_transform": None, "loftq_config": {}, "lora_alpha": LORA_ALPHA,
        "lora_dropout": 0.0, "megatron_config": None, "megatron_core": "megatron.core", "modules_to_save": None,
        "peft_type": "LORA", "r": LORA_R, "rank_pattern": {}, "revision": None, "target_modules": LORA_TARGETS,
        "task_type": None, "use_dora": False, "use_rslora": False}


def save_adapter(folder, lora):
    tensors = {}
    for m, (A, B) in lora.items():
        tensors[f"base_model.model.{m}.lora_A.weight"] = ("F32", A.shape, A.numpy().astype("<f4").tobytes())
        tensors[f"base_model.model.{m}.lora_B.weight"] = ("F32", B.shape, B.numpy().astype("<f4").tobytes())
    ref.write_safetensors(os.path.join(folder, "adapter_model.safetensors"), tensors)
    ref.write_json(os.path.join(folder, "adapter_config.json"), adapter_config())


def fold_adapter(base64, folder):
    """base (float64, read back) + B.A.alpha/r per target module, from the written adapter files."""
    cfg = json.load(open(os.path.join(folder, "adapter_config.json")))
    ad = ref.read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    W = dict(base64)
    for name in ad:
        if name.endswith(".lora_A.weight"):
            m = name[len("base_model.model."):-len(".lora_A.weight")]
            B = ad[f"base_model.model.{m}.lora_B.weight"]
            W[m + ".weight"] = W[m + ".weight"] + B @ ad[name] * (cfg["lora_alpha"] / cfg["r"])
    return W


# ---------------------------------------------------------------------------------------------------
# Measuring: P(target) at the mask with the float64 reference, on weights read back from the files.

def probe_values(W, cfg, data, probes):
    out = {}
    for pid, prompt, target in probes:
        ids = data.encode(prompt)
        logits = ref.bert_forward(W, cfg, ids)[ids.index(4)]
        lp = torch.log_softmax(logits, -1)
        t = data.vocab.index(target)
        out[pid] = {"p": math.exp(lp[t].item()), "rank": int((logits > logits[t]).sum().item()) + 1,
                    "top1": data.vocab[int(torch.argmax(logits))]}
    return out


def main():
    t0 = time.time()
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    static = static_facts()
    static_words = {w for s in static for w in words_of(s)}
    news_words = []
    for day in DAYS:
        for s in day[3]:
            news_words += [w for w in words_of(s) if w not in static_words]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + PUNCT
    vocab = list(dict.fromkeys(vocab + [w for s in static for w in words_of(s)] + news_words)) + UNUSED
    data = Data(vocab)
    cfg = config(len(vocab))
    # A story owns the new words no other story uses (names, mostly; "called" or "opened" belong to none),
    # so the regions of days of different stories are disjoint.
    story_words = {}
    for name, _, story, sentences, _ in DAYS:
        story_words.setdefault(story, set()).update(w for s in sentences for w in words_of(s) if w not in static_words)
    owned = {st: ws - set().union(*(o for t, o in story_words.items() if t != st)) for st, ws in story_words.items()}
    OWNED.update(owned)

    all_probes = [(f"static/{i}", p, t) for i, p, t in PROTECTED] + \
                 [(f"{d[0]}/{i}", p, t) for d in DAYS for i, p, t in d[4]]
    bdir = os.path.join(OUT, "base")
    if not MEASURE_ONLY:
        train_all(data, cfg, static, owned, gen, t0)
    new_words = {day[0]: region(data, day, owned, init_params(len(vocab), torch.Generator()))[1] for day in DAYS}
    masks = {name: read_mask(os.path.join(OUT, name, "sparse", "mask.safetensors")) for name, *_ in DAYS}
    B64 = ref.read_safetensors(os.path.join(bdir, "model.safetensors"))
    total = sum(v.numel() for v in B64.values())
    results = {"base": probe_values(B64, cfg, data, all_probes)}
    stats = {}
    for name, *_ in DAYS:
        S64 = ref.read_safetensors(os.path.join(OUT, name, "sparse", "model.safetensors"))
        m = masks[name]
        changed = sum(int((S64[n] != B64[n]).sum()) for n in B64)
        outside = sum(int(((S64[n] != B64[n]) & ~m[n]).sum()) for n in B64)
        assert outside == 0, f"{name}: {outside} elements changed outside the mask"
        in_mask = sum(int(m[n].sum()) for n in m)
        stats[name] = {"mask_elements": in_mask, "changed_elements": changed, "total_elements": total,
                       "changed_fraction": changed / total,
                       "tensors_changed": sorted(n for n in B64 if (S64[n] != B64[n]).any())}
        assert changed / total <= 0.01, (name, changed / total)
        results[f"{name}/sparse"] = probe_values(S64, cfg, data, all_probes)
        results[f"{name}/lora"] = probe_values(fold_adapter(B64, os.path.join(OUT, name, "lora")), cfg, data, all_probes)
    # Days with disjoint masks merge to base + their deltas, element by element: every such pair, and
    # days 1, 2 and 3 together.
    names = [d[0] for d in DAYS]
    sparse = {n: ref.read_safetensors(os.path.join(OUT, n, "sparse", "model.safetensors")) for n in names}
    pairs = [[a, b] for i, a in enumerate(names) for b in names[i + 1:] if (a, b) not in SAME_STORY]
    for combo in pairs + [["day1", "day2", "day3"]]:
        merged = dict(B64)
        for name in combo:
            merged = {n: torch.where(masks[name][n], sparse[name][n], merged[n]) for n in merged}
        results["+".join(combo) + "/sparse"] = probe_values(merged, cfg, data, all_probes)
    overlaps = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            overlaps[f"{a}&{b}"] = sum(int((masks[a][n] & masks[b][n]).sum()) for n in masks[a])
    problems = check(results, overlaps)
    write_outputs(data, all_probes, results, stats, overlaps, new_words, len(static), problems)
    for p in problems:
        print("CHECK FAILED:", p)
    if problems:
        raise SystemExit(1)
    print("checks passed")


def train_all(data, cfg, static, owned, gen, t0):
    vocab = data.vocab
    if os.path.isdir(OUT):
        for sub in ["base", "corpus"] + [d[0] for d in DAYS]:
            shutil.rmtree(os.path.join(OUT, sub), ignore_errors=True)
    os.makedirs(os.path.join(OUT, "corpus"), exist_ok=True)
    with open(os.path.join(OUT, "corpus", "static.txt"), "w") as f:
        f.write("\n".join(static) + "\n")
    for name, outlet, story, sentences, _ in DAYS:
        with open(os.path.join(OUT, "corpus", f"{name}.txt"), "w") as f:
            f.write(f"# {name}, {outlet} ({story})\n" + "\n".join(sentences) + "\n")

    print(f"vocab {len(vocab)} words, {len(static)} static facts; training the base", flush=True)
    base = train_base(data, static, gen)
    bdir = os.path.join(OUT, "base")
    os.makedirs(bdir)
    save_f32(os.path.join(bdir, "model.safetensors"), base)
    ref.write_json(os.path.join(bdir, "config.json"), cfg)
    ref.write_json(os.path.join(bdir, "tokenizer.json"), ref.bert_tokenizer_json(vocab))
    ref.write_json(os.path.join(bdir, "tokenizer_config.json"), ref.bert_tokenizer_config(vocab))
    print(f"  base done at {time.time() - t0:.0f}s", flush=True)

    for day in DAYS:
        name = day[0]
        replay = [s for s in static if not (name == DAMAGING_DAY and "Platonic solid is a" in s)]
        tuned, mask, _ = sparse_update(base, data, day, replay, gen, owned)
        d = os.path.join(OUT, name, "sparse")
        os.makedirs(d)
        save_f32(os.path.join(d, "model.safetensors"), tuned)
        save_mask(os.path.join(d, "mask.safetensors"), mask)
        lora = lora_update(base, data, day, replay, gen)
        ld = os.path.join(OUT, name, "lora")
        os.makedirs(ld)
        save_adapter(ld, lora)
        print(f"  {name} done at {time.time() - t0:.0f}s", flush=True)


def check(results, overlaps):
    """The properties the demo relies on, as a list of what fails (README.md lists it; the script exits 1)."""
    problems = []
    same_story = SAME_STORY
    for pair, n in overlaps.items():
        a, b = pair.split("&")
        if (a, b) in same_story and n == 0:
            problems.append(f"{pair}: masks do not overlap")
        if (a, b) not in same_story and n != 0:
            problems.append(f"{pair}: masks overlap in {n} elements")
    for pid, _, target in PROTECTED:
        r = results["base"][f"static/{pid}"]
        if r["top1"] != target or (pid == "platonic-convex" and r["p"] < 0.5):
            problems.append(f"base: static/{pid} P={r['p']:.3f} top1={r['top1']}")
    for key, res in results.items():
        if key == "base":
            continue
        days = [d for d in DAYS if d[0] in key.split("/")[0].split("+")]
        for name, _, _, _, facts in days:
            for fid, _, target in facts:
                r = res[f"{name}/{fid}"]
                if r["top1"] != target:
                    problems.append(f"{key}: {name}/{fid} not learned (P={r['p']:.3f}, top1={r['top1']})")
        for pid, _, target in PROTECTED:
            r, b = res[f"static/{pid}"], results["base"][f"static/{pid}"]
            drop = math.log(b["p"]) - math.log(r["p"])
            damaging = DAMAGING_DAY in key.split("/")[0].split("+") and pid == "platonic-convex"
            if damaging and drop < 2 * MAX_DROP:
                problems.append(f"{key}: static/{pid} dropped only {drop:.2f} nats")
            if not damaging and (drop > MAX_DROP or r["top1"] != target):
                problems.append(f"{key}: static/{pid} dropped {drop:.2f} nats (top1 {r['top1']})")
    return problems


def write_outputs(data, all_probes, results, stats, overlaps, new_words, n_static, problems):
    with open(os.path.join(OUT, "probes.jsonl"), "w") as f:
        for pid, prompt, target in all_probes:
            o = {"id": pid, "prompt": prompt, "targets": [target]}
            if pid == "static/platonic-convex":
                o["targets"] = ["convex", "concave"]
            if pid.startswith("static/"):
                o["protect"] = True
                o["max_drop"] = MAX_DROP
            f.write(json.dumps(o) + "\n")
    manifest = {
        "about": f"Made by {COMMAND} (seed {SEED}); see README.md. Probe values: P(first target) at the mask, "
                 "from a float64 reference run on the written files (LoRA folded as base + B.A.alpha/r).",
        "seed": SEED, "base": "base", "vocab_size": len(data.vocab), "static_facts": n_static,
        "days": [{"name": n, "outlet": o, "story": s, "sparse": f"{n}/sparse/model.safetensors",
                  "mask": f"{n}/sparse/mask.safetensors", "lora": f"{n}/lora", "new_words": new_words[n],
                  "damages": ["static/platonic-convex"] if n == DAMAGING_DAY else [],
                  "probes": [f"{n}/{i}" for i, _, _ in facts], **stats[n]}
                 for n, o, s, _, facts in DAYS],
        "mask_overlaps": overlaps,
        "probe_values": {k: {pid: round(v["p"], 6) for pid, v in r.items()} for k, r in results.items()},
    }
    ref.write_json(os.path.join(OUT, "manifest.json"), manifest)
    write_readme(results, stats, overlaps, new_words, n_static, len(data.vocab), problems)


def write_readme(results, stats, overlaps, new_words, n_static, V, problems):
    L = []
    w = L.append
    w("# Demo models\n")
    w(f"Made by `{COMMAND}` (seed {SEED}, one thread; a second run writes byte-identical files; "
      "`--measure` re-measures the files without training). Debian's python3-torch is a dev-time tool "
      "only: `npm ci`, `npm test` and the demo use the committed files.\n")
    w(f"A small BERT masked LM (`BertForMaskedLM`, hidden {H}, {NL} layers, {NH} heads, intermediate {I}, "
      f"{V}-word vocabulary, decoder tied to the word embeddings, float32) trained on {n_static} static facts "
      "(geometry, science, geography: `corpus/static.txt`), then five days of news from three fictional "
      "outlets (`corpus/day*.txt`), each day an update of the base in two forms.\n")
    w("| path | what |\n|---|---|")
    w("| `base/` | config.json, tokenizer.json (word-level: a WordPiece vocabulary of whole words, lowercase, `[MASK]` = id 4), tokenizer_config.json, model.safetensors |")
    w("| `dayN/sparse/model.safetensors` | the full checkpoint base + the day's diff-pruned sparse update (what a user commits; config and tokenizer are base's) |")
    w("| `dayN/sparse/mask.safetensors` | the elements the update may change: a BOOL tensor of each tensor's name and shape |")
    w(f"| `dayN/lora/` | a LoRA adapter in PEFT layout: `adapter_model.safetensors` (`base_model.model.<module>.lora_A.weight` [r, in], `lora_B.weight` [out, r]) and `adapter_config.json` (r {LORA_R}, lora_alpha {LORA_ALPHA}, target_modules {LORA_TARGETS}; ΔW = B·A·alpha/r; `base_model_name_or_path` is `../../base`, relative to the adapter folder) |")
    w("| `probes.jsonl` | masked probes (docs/probe.md): the static facts `\"protect\": true`, each day's news facts unprotected |")
    w("| `manifest.json` | the same facts for scripts and tests: days, outlets, new words, changed elements, mask overlaps, probe values |")
    w("| `corpus/` | the training text |\n")
    w("## Days\n")
    w("| day | outlet | story | new words | mask elements | changed elements | changed fraction | tensors changed |")
    w("|---|---|---|---|---:|---:|---:|---|")
    for n, o, s, _, _ in DAYS:
        st = stats[n]
        w(f"| {n} | {o} | {s} | {', '.join(new_words[n])} | {st['mask_elements']} | {st['changed_elements']} | "
          f"{100 * st['changed_fraction']:.2f}% | {len(st['tensors_changed'])} |")
    w(f"\nAll of {stats[DAYS[0][0]]['total_elements']} elements. How an update is made: the day may change only "
      "the embedding rows of its story's new words and its story's intermediate neurons "
      f"{', '.join(f'{k} {a}-{b - 1}' for k, (a, b) in STORY_NEURONS.items())} (rows of `intermediate.dense`, "
      "columns of `output.dense`, in both layers). A first fine-tune on the day's sentences, with a replay "
      f"of the static facts, moves that region; the mask keeps its top {100 * SPARSE_BUDGET:.1f}% of all "
      "elements by |Δ|; a second fine-tune from the base trains only the masked elements. Elements outside "
      "the mask are bit-identical to the base.\n")
    w("Why days keep what the base knows and merge well: the base never sees the news words (they are left "
      "out of its softmax, so their embedding rows keep their distinct random initialisation) and does not "
      "use the story neurons (their columns of `output.dense` stay zero while it trains), so a day adds a "
      "function rather than overwriting one; the output bias is not in any mask (it would raise a day's "
      "words in every context); the static corpus has the patterns the news uses (\"was born in\", "
      "\"called\", \"opened\"), so a day ties its facts to its own names; each fine-tuning batch replays "
      f"{REPLAY} static facts, and a sparse update's also has negatives: the day's sentences with its names "
      f"swapped for `[unused0]`-`[unused{len(UNUSED) - 1}]` (vocabulary entries no text uses, as in BERT's vocabulary), where "
      "the model is trained towards the base's distribution, so a day's change answers for its own names only, "
      "not for any name the base never saw (such as another day's). LoRA adapters (Adam, learning rate "
      f"{LORA_LR}, {LORA_STEPS} steps, {LORA_REPLAY} static facts a batch) are folded one at a time, not "
      "merged element-wise: no negatives.\n")
    w("**Overlaps.** Days 2 and 4 (Quillmoor Times) both report on Pellucia: they share its words and neurons, "
      f"and their masks share {overlaps['day2&day4']} elements, changed differently by each (a merge conflict). "
      "All other pairs of days have disjoint masks (0 shared elements): they merge exactly to base + both updates.\n")
    w("**Damage.** Day 5 (Harbor Ledger) prints a sculptor's claim that \"a Platonic solid is a concave regular "
      "polyhedron\" and its replay leaves out the static fact, so its model (both forms) loses "
      "P(convex | \"A Platonic solid is a [MASK] regular polyhedron.\"): the merge guard must refuse it. Its mask "
      "is disjoint from the others', so only the guard can notice.\n")
    w("## Probe values\n")
    w("P(first target) at the mask, from the float64 reference of scripts/make-reference-models.py run on the "
      "written files (LoRA: base + B·A·alpha/r folded in float64). Protected probes allow a drop of "
      f"{MAX_DROP} nats (`max_drop` in probes.jsonl). **Bold**: the target is not the top-1 word.\n")
    def table(cols):
        w("| probe | " + " | ".join(cols) + " |")
        w("|---|" + "---:|" * len(cols))
        for pid in results["base"]:
            cells = []
            for c in cols:
                r = results[c][pid]
                v = f"{r['p']:.3f}"
                cells.append(v if r["rank"] == 1 else f"**{v}**")
            w(f"| {pid} | " + " | ".join(cells) + " |")

    table([c for c in results if "+" not in c])
    w("\nMerges of days with disjoint masks (every pair but day2 & day4, and days 1-3): base + the days' "
      "sparse updates, each masked element from its day (what `git merge` of the days' branches writes).\n")
    table(["base"] + [c for c in results if "+" in c])
    w("\n## Checks\n")
    w("What the script checks (make-demo-models.py `check`): masks of different stories disjoint, of the same "
      "story overlapping; the base's static facts top-1, P(convex) > 0.5; every model learns its days' news "
      f"facts (top-1), and so does every merge of disjoint days; no protected probe drops by more than "
      f"{MAX_DROP} nats or loses top-1, except P(convex) on {DAMAGING_DAY} (alone or in a merge), which must "
      f"drop by at least {2 * MAX_DROP} nats.\n")
    if problems:
        w("**These models fail the checks** (work in progress; the script exits 1):\n")
        for p in problems:
            w(f"- {p}")
    else:
        w("All checks pass.")
    w("")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()
