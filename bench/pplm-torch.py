"""PyTorch CPU peer for bench/pplm.ts: PPLM-BoW (PAPER.md §6.4) on a random GPT-2 of the given shape, fp32,
one sample at a time as the authors' code runs it, with autograd for the gradient w.r.t. the perturbation of
the cached keys/values. Same algorithm as our engines: clean KV cache for the unperturbed distribution,
`iterations` normalised steps on the first `window` cached positions, running per-layer gradient norms,
geometric-mean fusion, multinomial sampling. Prints one JSON line {"seconds_per_sample": ...}.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def init(V, d, L, P, seed):
    g = torch.Generator().manual_seed(seed)
    n = lambda *s, std=0.02: torch.randn(*s, generator=g) * std
    res = 0.02 / math.sqrt(2 * L)
    layers = []
    for _ in range(L):
        layers.append(dict(
            ln1w=torch.ones(d), ln1b=torch.zeros(d), qkvw=n(d, 3 * d), qkvb=torch.zeros(3 * d),
            projw=n(d, d, std=res), projb=torch.zeros(d), ln2w=torch.ones(d), ln2b=torch.zeros(d),
            fcw=n(d, 4 * d), fcb=torch.zeros(4 * d), fc2w=n(4 * d, d, std=res), fc2b=torch.zeros(d)))
    return dict(wte=n(V, d), wpe=n(P, d), layers=layers, lnfw=torch.ones(d), lnfb=torch.zeros(d))


def step(m, H, token, pos, past):
    """One token attending to past [(k, v)] of shape [1, H, T, dh]; returns logits [V] and this token's (k, v)."""
    x = m["wte"][token] + m["wpe"][pos]
    d = x.shape[0]
    dh = d // H
    new = []
    for l, w in enumerate(m["layers"]):
        h = F.layer_norm(x, (d,), w["ln1w"], w["ln1b"])
        q, k, v = (h @ w["qkvw"] + w["qkvb"]).split(d)
        q, k, v = (z.view(1, H, 1, dh) for z in (q, k, v))
        new.append((k, v))
        K = torch.cat([past[l][0], k], dim=2) if past else k
        Vv = torch.cat([past[l][1], v], dim=2) if past else v
        att = torch.softmax((q @ K.transpose(-1, -2)) / math.sqrt(dh) / (l + 1), dim=-1)
        x = x + (att @ Vv).reshape(d) @ w["projw"] + w["projb"]
        h = F.layer_norm(x, (d,), w["ln2w"], w["ln2b"])
        x = x + F.gelu(h @ w["fcw"] + w["fcb"], approximate="tanh") @ w["fc2w"] + w["fc2b"]
    return F.layer_norm(x, (d,), m["lnfw"], m["lnfb"]) @ m["wte"].T, new


def sample(m, H, eos, bag, length, stepsize, iterations=3, window=5, gamma=1.5, kl_scale=0.01, gm=0.9):
    tokens, clean, past = [eos], [], []
    norms = None
    small = 1e-15
    for i in range(length):
        last = tokens[-1]
        with torch.no_grad():
            lu, kv = step(m, H, last, i, clean)
            clean = [(torch.cat([c[0], n[0]], 2), torch.cat([c[1], n[1]], 2)) for c, n in zip(clean, kv)] if clean else kv
            u = torch.softmax(lu, -1)
        if stepsize > 0 and i > 0:
            T = i
            P = window if window > 0 and T > window else T
            deltas = [torch.zeros(2, 1, H, P, past[0][0].shape[-1]) for _ in past]
            if norms is None:
                norms = [None] * len(past)
            uh = u + small * (u <= small)
            for _ in range(iterations):
                ds = [dl.clone().requires_grad_() for dl in deltas]
                pert = [(torch.cat([k[:, :, :P] + dl[0], k[:, :, P:]], 2), torch.cat([v[:, :, :P] + dl[1], v[:, :, P:]], 2))
                        for (k, v), dl in zip(past, ds)]
                logits, _ = step(m, H, last, i, pert)
                p = torch.softmax(logits, -1)
                ph = p + small * (p <= small).float().detach()
                loss = -torch.log(p[bag].sum()) + kl_scale * (ph * (ph / uh).log()).sum()
                loss.backward()
                with torch.no_grad():
                    for l, dl in enumerate(ds):
                        n = dl.grad.norm().item()
                        norms[l] = n + small if norms[l] is None else max(norms[l], n)
                        deltas[l] = deltas[l] - stepsize * dl.grad / norms[l] ** gamma
            with torch.no_grad():
                past = [(torch.cat([k[:, :, :P] + dl[0], k[:, :, P:]], 2), torch.cat([v[:, :, :P] + dl[1], v[:, :, P:]], 2))
                        for (k, v), dl in zip(past, deltas)]
        with torch.no_grad():
            logits, kv = step(m, H, last, i, past)
            past = [(torch.cat([c[0], n[0]], 2), torch.cat([c[1], n[1]], 2)) for c, n in zip(past, kv)] if past else kv
            p = torch.softmax(logits, -1)
            if stepsize > 0:
                p = p ** gm * u ** (1 - gm)
                if p.sum() <= 1:
                    p = p / p.sum()
            tokens.append(int(torch.multinomial(p, 1)))
    return tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--positions", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--stepsize", type=float, default=0.04)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = init(a.vocab, a.d, a.layers, a.positions, 7)
    bag = torch.tensor([100, 200, 300])
    sample(m, a.heads, a.vocab - 8, bag, 3, a.stepsize)  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.samples):
        sample(m, a.heads, a.vocab - 8, bag, a.tokens, a.stepsize)
    print(json.dumps({"seconds_per_sample": (time.perf_counter() - t0) / a.samples, "torch": torch.__version__, "threads": a.threads}))


if __name__ == "__main__":
    main()
