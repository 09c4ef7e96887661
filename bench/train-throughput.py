"""PyTorch CPU peer for bench/train-throughput.ts: the same GPT-2 / Backpack shapes, fp32, fixed threads.

Training step = forward + cross-entropy over all vocab rows + backward + global-norm clip + AdamW (decay on
Linear weights only); inference = forward + loss under no_grad. Prints one JSON line {"train": tok/s, "infer": tok/s}.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ATTENTION = "sdpa"


class Block(nn.Module):
    def __init__(self, d, heads, layer, dropout):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.heads, self.drop = heads, dropout
        self.scale = 1.0 / math.sqrt(d // heads) / (layer + 1)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        if ATTENTION == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.drop if self.training else 0.0, scale=self.scale)
        else:  # explicit causal softmax attention, as the engine computes it
            s = (q @ k.transpose(-1, -2)) * self.scale
            mask = torch.ones(t, t, dtype=torch.bool).tril()
            p = F.dropout(s.masked_fill(~mask, float("-inf")).softmax(-1), self.drop, self.training)
            y = p @ v
        x = x + F.dropout(self.proj(y.transpose(1, 2).reshape(b, t, d)), self.drop, self.training)
        return x + F.dropout(self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh")), self.drop, self.training)


class GPT2(nn.Module):
    def __init__(self, vocab, seq, d, layers, heads, dropout=0.1):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(Block(d, heads, l, dropout) for l in range(layers))
        self.lnf, self.drop = nn.LayerNorm(d), dropout

    def body(self, idx):
        x = F.dropout(self.wte(idx) + self.wpe(torch.arange(idx.shape[1])), self.drop, self.training)
        for blk in self.blocks:
            x = blk(x)
        return self.lnf(x)

    def forward(self, idx):
        return self.body(idx) @ self.wte.weight.T


class Backpack(nn.Module):
    def __init__(self, vocab, seq, d, layers, heads, senses, dropout=0.1):
        super().__init__()
        h = 4 * d
        self.gpt, self.k, self.drop = GPT2(vocab, seq, d, layers, heads, dropout), senses, dropout
        self.ln0, self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.fa, self.fa2 = nn.Linear(d, h), nn.Linear(h, d)
        self.fb, self.fb2 = nn.Linear(d, h), nn.Linear(h, senses * d)
        self.alpha = nn.Linear(d, 2 * d)

    def forward(self, idx):
        b, t = idx.shape
        d, k = self.gpt.wte.weight.shape[1], self.k
        hc = self.gpt.body(idx)
        r0 = F.dropout(self.gpt.wte(idx), self.drop, self.training)
        r1 = r0 + F.dropout(self.ln0(r0), self.drop, self.training)
        r2 = r1 + F.dropout(self.fa2(F.gelu(self.fa(self.ln1(r1)), approximate="tanh")), self.drop, self.training)
        senses = self.fb2(F.gelu(self.fb(self.ln2(r2)), approximate="tanh")).view(b, t, k, d).transpose(1, 2)
        q, kk = self.alpha(hc).split(d, dim=2)
        q, kk = (z.view(b, t, k, d // k).transpose(1, 2) for z in (q, kk))
        scores = q @ kk.transpose(-1, -2) / math.sqrt(d // k)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        alpha = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        out = (alpha @ senses).sum(1)
        return out @ self.gpt.wte.weight.T


def gpt2_init(model):
    """GPT-2 initialisation (normal std 0.02, zero biases), as the native engine uses. With PyTorch's default
    N(0, 1) embeddings the tied-logit softmax underflows, the gradients fill with denormals and CPU matmuls
    slow down ~8x; that would make the peer look far slower than it is."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def main():
    p = argparse.ArgumentParser()
    for name in ("d", "layers", "heads", "senses", "vocab", "seq", "batch", "threads"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--attention", choices=["sdpa", "math"], default="sdpa")
    a = p.parse_args()
    global ATTENTION
    ATTENTION = a.attention
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Backpack(a.vocab, a.seq, a.d, a.layers, a.heads, a.senses) if a.arch == "backpack" else GPT2(a.vocab, a.seq, a.d, a.layers, a.heads)
    gpt2_init(model)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "wte" not in n and "wpe" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "wte" not in n and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}], lr=1e-4)
    x = torch.randint(0, a.vocab - 7, (a.batch, a.seq))
    y = torch.randint(0, a.vocab - 7, (a.batch, a.seq))

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x).view(-1, a.vocab), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def infer_step():
        with torch.no_grad():
            F.cross_entropy(model(x).view(-1, a.vocab), y.view(-1))

    def rate(fn, seconds):
        fn()
        t0, n = time.perf_counter(), 0
        while n < 3 or time.perf_counter() - t0 < seconds:
            fn()
            n += 1
        return a.batch * a.seq * n / (time.perf_counter() - t0)

    model.train()
    train = rate(train_step, a.seconds)
    model.eval()
    infer = rate(infer_step, a.seconds / 2)
    print(json.dumps({"train": train, "infer": infer, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
