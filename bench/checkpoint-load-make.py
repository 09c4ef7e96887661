#!/usr/bin/env python3
"""Tooling for bench/checkpoint-load.ts: builds a Backpack-Small-shaped Lightning checkpoint (random
weights, the authors' key layout, 170,083,584 parameters) and measures PyTorch's own loaders as the peer.

    python bench/checkpoint-load-make.py make <out.ckpt>
    python bench/checkpoint-load-make.py measure torch-load <file.ckpt>        # torch.load(weights_only=True)
    python bench/checkpoint-load-make.py measure safetensors-load <file>        # safetensors.torch.load_file, data touched
Each `measure` prints one JSON line: {"ms": ..., "peakRssDeltaBytes": ..., "tensorBytes": ...}.
"""
import collections
import json
import sys
import time

import torch

V, P, D, L, K = 50264, 512, 768, 12, 16


def vm_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def make(path):
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g) * 0.02  # noqa: E731
    sd = collections.OrderedDict()
    wte, wpe = rand(V, D), rand(P, D)
    body = "model.transformer.gpt2_model."
    sd[body + "embeddings.word_embeddings.weight"] = wte
    sd[body + "embeddings.position_embeddings.weight"] = wpe
    ln = lambda p: sd.update({p + ".weight": torch.ones(D), p + ".bias": torch.zeros(D)})  # noqa: E731

    def lin(p, o, i):
        sd[p + ".weight"] = rand(o, i)
        sd[p + ".bias"] = torch.zeros(o)

    ln(body + "ln_0")
    for i in range(L):
        p = f"{body}layers.{i}."
        lin(p + "mixer.Wqkv", 3 * D, D)
        lin(p + "mixer.out_proj", D, D)
        ln(p + "norm1")
        lin(p + "mlp.fc1", 4 * D, D)
        lin(p + "mlp.fc2", D, 4 * D)
        ln(p + "norm2")
    c = "model.transformer.content_model."
    sd[c + "embeddings.word_embeddings.weight"] = wte
    sd[c + "embeddings.position_embeddings.weight"] = wpe
    ln(c + "ln_0")
    ln(c + "layers.0.norm1")
    lin(c + "layers.0.mlp.fc1", 4 * D, D)
    lin(c + "layers.0.mlp.fc2", D, 4 * D)
    ln(c + "layers.0.norm2")
    lin(c + "final_mlp.fc1", 4 * D, D)
    lin(c + "final_mlp.fc2", K * D, 4 * D)
    lin("model.transformer.contextualization_attn.Wqkv", 2 * D, D)
    sd["model.transformer.embeddings.word_embeddings.weight"] = wte
    sd["model.transformer.embeddings.position_embeddings.weight"] = wpe
    sd["model.lm_head.weight"] = wte
    unique = {id(v): v for v in sd.values()}
    n = sum(v.numel() for v in unique.values())
    assert n == 170_083_584, n
    torch.save({"epoch": 0, "global_step": 0, "state_dict": sd, "hyper_parameters": {"model": {"config": {"n_head": 12}}}}, path)
    print(json.dumps({"keys": len(sd), "unique": len(unique), "parameters": n}))


def measure(what, path):
    base = vm_kib("VmRSS")
    t0 = time.perf_counter()
    if what == "torch-load":
        obj = torch.load(path, map_location="cpu", weights_only=True)
        tensors = obj["state_dict"] if "state_dict" in obj else obj
    elif what == "safetensors-load":
        from safetensors.torch import load_file

        tensors = load_file(path)
        # load_file maps the file lazily: touch every tensor so its bytes are really read, as ours are.
        for t in tensors.values():
            t.sum()
    else:
        raise SystemExit(f"unknown measurement {what}")
    seen = {}
    for t in tensors.values():
        seen[(t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))] = t.numel() * t.element_size()
    ms = (time.perf_counter() - t0) * 1000
    print(json.dumps({"ms": ms, "peakRssDeltaBytes": (vm_kib("VmHWM") - base) * 1024, "tensorBytes": sum(seen.values())}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        measure(sys.argv[2], sys.argv[3])
