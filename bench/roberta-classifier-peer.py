#!/usr/bin/env python3
"""Tooling for bench/roberta-classifier.ts: the transformers side of the RoBERTa classifier benchmark.

    python bench/roberta-classifier-peer.py make <dir>                     # roberta-base shapes, random weights
    python bench/roberta-classifier-peer.py measure <dir> <ids.json> <batch> <threads> <repeats> [sorted]
    python bench/roberta-classifier-peer.py tokenize <dir> <texts.json> <max_length>

`make` writes a RobertaForSequenceClassification with the configuration of cardiffnlp/tweet-topic-21-multi
(roberta-base: 12 layers, hidden 768, 12 heads, intermediate 3072, 514 positions, 50265 tokens, 19 labels,
multi-label) and random weights (seed 0; biases and LayerNorms randomised too) as config.json + model.safetensors.
`measure` classifies the token id lists of ids.json (each "<s> ... </s>") in batches (padded, attention mask)
in eval mode under torch.inference_mode, on `threads` CPU threads, in the order given, and prints one JSON
line: the best of `repeats` timed passes in wall and CPU seconds (all threads), texts, tokens and the logits (for the parity check on the
TypeScript side). One untimed pass first warms up the allocator and the weights. With `sorted`, batches are
cut from the texts ordered by length (less padding; logits still reported in the given order).
`tokenize` encodes the texts of texts.json with transformers' RoBERTa tokenizer of <dir> (vocab.json +
merges.txt; default settings, truncation to max_length) and prints the ids and the seconds it took.
"""
import json
import sys
import time

import torch
from transformers import RobertaConfig, RobertaForSequenceClassification

LABELS = [
    "arts_&_culture", "business_&_entrepreneurs", "celebrity_&_pop_culture", "diaries_&_daily_life", "family",
    "fashion_&_style", "film_tv_&_video", "fitness_&_health", "food_&_dining", "gaming", "learning_&_educational",
    "music", "news_&_social_concern", "other_hobbies", "relationships", "science_&_technology", "sports",
    "travel_&_adventure", "youth_&_student_life",
]


def make(out):
    config = RobertaConfig(
        vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        hidden_act="gelu", max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={l: i for i, l in enumerate(LABELS)}, problem_type="multi_label_classification",
    )
    torch.manual_seed(0)
    model = RobertaForSequenceClassification(config).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    model.save_pretrained(out, safe_serialization=True)


def classify_all(model, seqs, batch):
    logits = []
    with torch.inference_mode():
        for s in range(0, len(seqs), batch):
            rows = seqs[s : s + batch]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), 1, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            logits.extend(model(input_ids=ids, attention_mask=mask).logits.tolist())
    return logits


def measure(model_dir, ids_file, batch, threads, repeats, by_length):
    torch.set_num_threads(threads)
    model = RobertaForSequenceClassification.from_pretrained(model_dir).eval()
    with open(ids_file) as f:
        seqs = json.load(f)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i])) if by_length else list(range(len(seqs)))
    classify_all(model, seqs[:batch], batch)
    seconds = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        got = classify_all(model, [seqs[i] for i in order], batch)
        seconds = min(seconds, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    logits = [None] * len(seqs)
    for k, i in enumerate(order):
        logits[i] = got[k]
    print(json.dumps({"seconds": seconds, "cpuSeconds": cpu, "texts": len(seqs), "tokens": sum(len(r) for r in seqs), "logits": logits,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


def tokenize(model_dir, texts_file, max_length):
    from transformers import RobertaTokenizerFast

    tok = RobertaTokenizerFast.from_pretrained(model_dir)
    with open(texts_file) as f:
        texts = json.load(f)
    t0 = time.perf_counter()
    ids = [tok(t, truncation=True, max_length=max_length)["input_ids"] for t in texts]
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "ids": ids}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    elif sys.argv[1] == "tokenize":
        tokenize(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "measure":
        measure(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7:] == ["sorted"])
    else:
        raise SystemExit(__doc__)
