"""PyTorch peer of bench/gpu/harness for the GPU check: the same Backpack and GPT-2 shapes written the way a PyTorch
user would (scaled_dot_product_attention, fused AdamW, bf16 autocast, optionally torch.compile), timed like the
harness. Prints one JSON object per line.

  python torch_baseline.py train ARCH SIZE BATCH SEQ STEPS [--compile] [--peak-tflops 989] [--accum N]
      (STEPS optimizer steps, each over N micro-batches of BATCH x SEQ: gradient accumulation; N defaults to 1)
  python torch_baseline.py forward ARCH SIZE BATCH SEQ RUNS [--compile]
  python torch_baseline.py generate SIZE ROWS PROMPT NEW       (Hugging Face GPT-2 generate with its KV cache)
  python torch_baseline.py attention BATCH SEQ HEADS HEAD_SIZE DROPOUT REPS
      (causal scaled_dot_product_attention alone, forward and forward+backward: the peer of `harness attention`)
"""
import argparse
import json
import math
import sys
import time

SIZES = {"micro": (384, 6, 6), "mini": (640, 8, 8), "small": (768, 12, 12)}
VOCAB, REAL_VOCAB, POSITIONS, SENSES = 50264, 50257, 512, 16


def forward_flops_per_token(arch, d, L, T, V=VOCAB, k=SENSES):
    """Matmul FLOPs of one forward pass per token; the same formula as the harness."""
    f = 2.0 * L * 12 * d * d + 2.0 * L * 2 * T * d + 2.0 * d * V
    if arch == "backpack":
        h = 4 * d
        f += 2.0 * (d * h + h * d + d * h + h * k * d) + 2.0 * d * 2 * d + 2.0 * T * d + 2.0 * k * T * d
    return f


def build(arch, size, dropout):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    d, L, H = SIZES[size]

    class Mlp(nn.Module):
        def __init__(self, i, h, o):
            super().__init__()
            self.fc, self.proj = nn.Linear(i, h), nn.Linear(h, o)

        def forward(self, x):
            return self.proj(F.gelu(self.fc(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.mlp = Mlp(d, 4 * d, d)
            self.scale = 1.0 / math.sqrt(d // H) / (layer + 1)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale,
                                               dropout_p=dropout if self.training else 0.0)
            x = x + F.dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)), dropout, self.training)
            return x + F.dropout(self.mlp(self.ln_2(x)), dropout, self.training)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(VOCAB, d), nn.Embedding(POSITIONS, d)
            self.h = nn.ModuleList(Block(i) for i in range(L))
            self.ln_f = nn.LayerNorm(d)
            if arch == "backpack":
                self.sln0, self.sln1, self.sln2 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
                self.mlp_a, self.mlp_b = Mlp(d, 4 * d, d), Mlp(d, 4 * d, SENSES * d)
                self.weight_net = nn.Linear(d, 2 * d)

        def senses(self, idx):
            r0 = F.dropout(self.wte(idx), dropout, self.training)
            r1 = r0 + F.dropout(self.sln0(r0), dropout, self.training)
            r2 = r1 + F.dropout(self.mlp_a(self.sln1(r1)), dropout, self.training)
            return self.mlp_b(self.sln2(r2))

        def forward(self, idx, targets=None):
            B, T = idx.shape
            x = F.dropout(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)), dropout, self.training)
            for blk in self.h:
                x = blk(x)
            x = self.ln_f(x)
            if arch == "backpack":
                hs = d // SENSES
                q, k = self.weight_net(x).split(d, dim=2)
                q, k = (t.view(B, T, SENSES, hs).transpose(1, 2) for t in (q, k))
                c = self.senses(idx).view(B, T, SENSES, d).transpose(1, 2)  # values: the sense vectors
                x = F.scaled_dot_product_attention(q, k, c, is_causal=True).sum(dim=1)
            logits = x @ self.wte.weight.t()
            if targets is None:
                return logits
            return F.cross_entropy(logits.float().view(-1, VOCAB), targets.view(-1))

    return Model()


def time_attention(torch, B, T, H, hs, p, reps):
    """SDPA on the layout the models use: q, k, v as views of one (B, T, 3C) bf16 tensor, heads split from C.
    Times the forward pass alone and forward + backward (with a fixed output gradient), CUDA events, mean of REPS
    after 3 warm-ups; prints the backend PyTorch chose."""
    import torch.nn.functional as F
    B, T, H, hs, p, reps = int(B), int(T), int(H), int(hs), float(p), int(reps)
    C = H * hs
    g = torch.Generator(device="cpu").manual_seed(11)
    qkv = (torch.randn(B, T, 3 * C, generator=g) * 1.5).to("cuda", torch.bfloat16).requires_grad_(True)
    dout = torch.randn(B, H, T, hs, generator=g).to("cuda", torch.bfloat16)
    scale = 0.7 / math.sqrt(hs)

    def attend():
        q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in qkv.split(C, dim=2))
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, scale=scale)

    def forward():
        with torch.no_grad():
            attend()

    def both():
        qkv.grad = None
        attend().backward(dout)

    def mean_ms(fn):
        for _ in range(3):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / reps

    backend = "unknown"
    try:  # the kernel names say which backend SDPA chose (flash, memory-efficient, cuDNN)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            both()
            torch.cuda.synchronize()
        words = ("attention", "fmha", "flash")
        names = sorted({e.key for e in prof.key_averages() if any(w in e.key.lower() for w in words)})
        backend = "; ".join(n[:60] for n in names[:3]) or backend
    except Exception as e:  # the timing below does not depend on it
        backend = f"unknown ({type(e).__name__})"
    fwd, fwd_bwd = mean_ms(forward), mean_ms(both)
    flops = 4.0 * B * H * (T * (T + 1) / 2.0) * hs  # causal QK^T and PV, as the harness counts them
    shape = f"B={B} T={T} H={H} hs={hs} dropout={p:.1f}"  # as `harness attention` names it
    print(json.dumps({"bench": "attention", "impl": "pytorch-sdpa", "shape": shape,
                      "forward_ms": round(fwd, 4), "forward_backward_ms": round(fwd_bwd, 4),
                      "forward_tflops": round(flops / (fwd * 1e9), 1), "kernel": backend, "torch": torch.__version__}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["train", "forward", "generate", "attention"])
    ap.add_argument("args", nargs="+")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--accum", type=int, default=1, help="train: micro-batches per optimizer step")
    a = ap.parse_args()
    if a.accum < 1:
        ap.error("--accum must be a positive integer")
    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"bench": a.mode, "impl": "pytorch", "skipped": "no CUDA device"}))
        return 3
    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    g = torch.Generator(device="cpu").manual_seed(0)

    if a.mode == "attention":
        if len(a.args) != 6:
            ap.error("attention takes BATCH SEQ HEADS HEAD_SIZE DROPOUT REPS")
        return time_attention(torch, *a.args)

    if a.mode == "generate":
        size, rows, prompt, new = a.args[0], int(a.args[1]), int(a.args[2]), int(a.args[3])
        try:
            from transformers import GPT2Config, GPT2LMHeadModel
        except ImportError:
            print(json.dumps({"bench": "generate", "impl": "hf", "skipped": "transformers not installed"}))
            return 0
        d, L, H = SIZES[size]
        cfg = GPT2Config(vocab_size=VOCAB, n_positions=POSITIONS, n_embd=d, n_layer=L, n_head=H,
                         scale_attn_by_inverse_layer_idx=True, activation_function="gelu_new")
        model = GPT2LMHeadModel(cfg).to(dev).eval()
        ids = torch.randint(0, REAL_VOCAB, (rows, prompt), generator=g).to(dev)
        with torch.no_grad():
            for rep in range(2):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                               do_sample=False, use_cache=True, pad_token_id=0)
                torch.cuda.synchronize()
                dt = time.perf_counter() - t0
        print(json.dumps({"bench": "generate", "impl": "hf-transformers", "arch": "gpt2", "size": size, "precision": "fp32",
                          "rows": rows, "prompt": prompt, "new_tokens": new, "seconds": round(dt, 4),
                          "tokens_per_s": round(rows * new / dt, 1), "torch": torch.__version__}))
        return 0

    arch, size, B, T, n = a.args[0], a.args[1], int(a.args[2]), int(a.args[3]), int(a.args[4])
    d, L, H = SIZES[size]
    model = build(arch, size, 0.1 if a.mode == "train" else 0.0).to(dev)
    params = sum(p.numel() for p in model.parameters())
    # train: a distinct batch per micro-batch (as the harness does), each its own tensor so the compiled model
    # sees identical inputs every call; forward: one
    micro = a.accum if a.mode == "train" else 1
    idx = [torch.randint(0, REAL_VOCAB, (B, T), generator=g).to(dev) for _ in range(micro)]
    tgt = [torch.randint(0, REAL_VOCAB, (B, T), generator=g).to(dev) for _ in range(micro)]
    run = torch.compile(model) if a.compile else model
    info = {"impl": "pytorch" + ("+compile" if a.compile else ""), "arch": arch, "size": size, "precision": "bf16-autocast",
            "batch": B, "seq": T, "params": params, "torch": torch.__version__}
    if a.mode == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1, fused=True)

        def step():
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for m in range(micro):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = run(idx[m], tgt[m])
                (loss / micro).backward()  # the accumulated gradient is the mean over all micro-batches
                total = total + loss.detach()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return total / micro

        for _ in range(1 if micro > 1 else 3):  # warm-up (compiles on the first call)
            step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            loss = step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / n
        tps = B * T * micro / dt
        mfu = tps * 3 * forward_flops_per_token(arch, d, L, T) / (a.peak_tflops * 1e12)
        print(json.dumps({"bench": "train", **info, "step_s": round(dt, 4), "tokens_per_s": round(tps),
                          "mfu": round(mfu, 4), "peak_tflops": a.peak_tflops, "loss": round(float(loss), 4),
                          "accum": micro}))
    else:
        model.eval()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            for _ in range(3):
                run(idx[0], tgt[0])
            times = []
            for _ in range(n):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                run(idx[0], tgt[0])
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        print(json.dumps({"bench": "forward", **info, "runs": n, "mean_s": round(sum(times) / n, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
