"""Turns the raw JSON lines of bench/gpu-check.sh (parity/train/forward/generate .jsonl in OUT) into the text
summary: parity verdicts, throughput and MFU side by side with PyTorch, Table 7 beside the paper's A100 numbers,
generation speed.
Usage: python summarize.py OUT_DIR
       python summarize.py --tsv RESULTS.tsv...   (results.tsv files of several calls, e.g. our side and the peers
                                                 run apart: their lines are merged, as if from one OUT_DIR)"""
import json
import os
import sys

PAPER_TABLE7 = {("micro", "backpack"): 0.093, ("micro", "gpt2"): 0.065, ("mini", "backpack"): 0.21,
                ("mini", "gpt2"): 0.15, ("small", "backpack"): 0.36, ("small", "gpt2"): 0.26}
NAME = {"backpack": "Backpack", "gpt2": "Transformer"}


def read(out, name):
    rows = []
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def fmt(x, spec):
    if x is None:
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return "-".rjust(int(width or 0))
    return format(x, spec)


def main(out):
    lines = []
    p = lines.append
    env = os.path.join(out, "env.txt")
    p("# GPU check (bench/gpu-check.sh)")
    if os.path.exists(env):
        p("## Machine")
        p(open(env).read().rstrip())
    checks = read(out, "parity.jsonl")  # parity verdicts and the kernel checks' timings
    parity = [r for r in checks if r.get("check") == "parity" and "what" in r]
    p("")
    p("## 1. Parity with the CPU backend (tiny models; error = max|gpu-cpu| / max|cpu| unless the line names its unit)")
    if not parity:
        p("(did not run)")
    for r in parity:
        extra = ""
        if "worst_tensor" in r:
            extra = f"  worst: {r['worst_tensor']}"
        if "greedy_token_mismatches" in r:
            extra = f"  greedy tokens differing: {r['greedy_token_mismatches']}/{r['tokens']}"
        p(f"{'PASS' if r['ok'] else 'FAIL'}  {NAME.get(r['arch'], r['arch']):<11} {r['precision']:<5} {r['what']:<48} "
          f"{r['rel_err']:.2e} (tol {r['tol']:.0e}){extra}")
    for r in checks:
        if r.get("check") == "data-parallel" and "skipped" in r:
            p(f"data parallel: skipped ({r['skipped']})")
    if parity:
        fails = sum(1 for r in parity if not r["ok"])
        p(f"-> {len(parity) - fails}/{len(parity)} parity checks pass")
    for r in checks:
        if r.get("check") == "layernorm-time":
            p(f"LayerNorm backward, {r['shape']}: vectorised {r['vectorised_ms']:.4f} ms, per-warp "
              f"{r['per_warp_ms']:.4f} ms ({r['speedup']:.2f}x)")
        if r.get("check") == "attention-time":
            knob = " [forward kernel for 4 CTAs/SM]" if r.get("flash_fwd_blocks") == 4 else ""
            knob += " [forward kernel, 128 query rows per CTA]" if r.get("flash_fwd_rows") == 128 else ""
            p(f"attention forward+backward, {r['shape']}{knob}: fused {r['fused_ms']:.3f} ms, batched bf16 "
              f"{r['batched_bf16_ms']:.3f} ms ({r['speedup']:.2f}x)")
            if "fused_forward_ms" in r:  # runs from session 8 on
                p(f"  forward alone: fused {r['fused_forward_ms']:.4f} ms ({r['fused_forward_tflops']:.1f} TFLOP/s), "
                  f"batched bf16 {r['batched_bf16_forward_ms']:.4f} ms")
    # the PyTorch peer of the same shapes (torch_baseline.py attention), and ours over it where the shapes match
    ours_attn = {r["shape"]: r for r in checks if r.get("check") == "attention-time"
                 and not r.get("flash_fwd_blocks") and not r.get("flash_fwd_rows")}
    for r in read(out, "attention.jsonl"):
        if r.get("bench") != "attention" or "forward_ms" not in r:
            continue
        line = (f"attention, {r['shape']}: {r['impl']} forward+backward {r['forward_backward_ms']:.3f} ms, forward "
                f"{r['forward_ms']:.4f} ms ({r['forward_tflops']:.1f} TFLOP/s) [{r.get('kernel', '?')}]")
        o = ours_attn.get(r["shape"])
        if o and "fused_forward_ms" in o:
            line += (f"; ours/torch speed: forward+backward {r['forward_backward_ms'] / o['fused_ms']:.2f}x, forward "
                     f"{r['forward_ms'] / o['fused_forward_ms']:.2f}x")
        p(line)

    train = read(out, "train.jsonl")
    p("")
    p("## 2. Training throughput (shape: micro-batch x seq [x accumulation steps] per optimizer step; dropout 0.1, "
      "AdamW; MFU vs the bf16 dense peak)")
    if not train:
        p("(did not run)")
    else:
        p(f"{'model':<20} {'impl':<28} {'precision':<14} {'shape':>16} {'tokens/s':>10} {'MFU':>7} {'ours/torch':>10}  gemm")

        # runs compare only within one shape: (size, arch, batch, seq, accum); results from before accum read as 1
        def shape(r):
            return r["size"], r["arch"], r["batch"], r.get("seq", 512), r.get("accum", 1)

        keys = sorted({shape(r) for r in train if "size" in r},
                      key=lambda k: (k[0] != "micro", k[0], k[1], k[2] * k[4], k[2], k[3]))
        for key in keys:
            size, arch, batch, seq, accum = key
            group = [r for r in train if "size" in r and shape(r) == key]
            torch_tps = next((r["tokens_per_s"] for r in group if r["impl"].startswith("pytorch")), None)
            dims = f"{batch}x{seq}" + (f" x{accum} accum" if accum > 1 else "")
            for r in group:
                ratio = r["tokens_per_s"] / torch_tps if torch_tps and r["impl"] == "ours" else None
                gemm = ""
                if "gemm" in r:  # the operand type the engine's GEMMs actually ran with, and the 16-bit share of FLOPs
                    gemm = f"  {r['gemm']} ({r.get('gemm_bf16_flop_share', 0) * 100:.0f}% of GEMM FLOPs on 16-bit operands)"
                    gemm += f" [{r['paths']}]" if r.get("paths") else ""  # the optional kernel paths that ran
                flash = r.get("flash")  # 0: the batched attention products instead of the fused kernels
                impl = r["impl"] + (" batched-attn" if flash == 0 else "")
                impl += f" attn-seqs={r['attn_seqs']}" if "attn_seqs" in r and flash == 0 else ""
                impl += " no-lt" if r.get("lt") == 0 else ""  # plain cuBLAS + element-wise bias/GELU kernels
                # the bf16 gradient operands from their producers: a knob before session 9, the default since
                impl += {1: " grad16", 0: " no-grad16"}.get(r.get("grad16"), "")
                impl += " no-logits16" if r.get("logits16") == 0 else ""  # training's logits in fp32
                impl += " fwd-blocks=4" if r.get("flash_fwd_blocks") == 4 else ""  # attention forward, 4 CTAs/SM
                impl += " fwd-rows=128" if r.get("flash_fwd_rows") == 128 else ""  # attention forward, 128 rows/CTA
                impl += " fused-context" if r.get("fused_context") == 1 else ""  # Backpack contextualization fused
                skipped = f"  {r['skipped_steps']} steps skipped (loss-scale overflow)" if r.get("skipped_steps") else ""
                p(f"{NAME[arch] + '-' + size.capitalize():<20} {impl:<28} {r['precision']:<14} {dims:>16} "
                  f"{r['tokens_per_s']:>10.0f} {r['mfu'] * 100:>6.1f}% {fmt(ratio, '>10.2f')}{gemm}{skipped}")

    fwd = read(out, "forward.jsonl")
    p("")
    p("## 3. Table 7: forward pass, batch 32 x 512, mean seconds (paper: one A100, 100 runs)")
    if not fwd:
        p("(did not run)")
    else:
        runs = sorted({r["runs"] for r in fwd if "runs" in r})
        p(f"timed runs per model: {', '.join(map(str, runs))} (after warm-up)")
        p(f"{'size':<6} {'model':<12} {'ours bf16':>10} {'ours fp32':>10} {'PyTorch bf16':>13} {'paper A100':>11}")

        def default(r):  # not a run with an engine knob set
            return (r.get("lt") != 0 and r.get("flash") != 0 and r.get("grad16") is None and r.get("logits16") is None
                    and r.get("flash_fwd_blocks") is None and r.get("flash_fwd_rows") is None
                    and r.get("fused_context") is None)

        def pick(impl, size, arch, prec=None):
            return next((r["mean_s"] for r in fwd if r.get("impl", "").startswith(impl) and r.get("size") == size
                         and r.get("arch") == arch and (prec is None or r.get("precision") == prec) and default(r)),
                        None)

        for size in ("micro", "mini", "small"):
            for arch in ("backpack", "gpt2"):
                ob, of, pt = pick("ours", size, arch, "bf16"), pick("ours", size, arch, "fp32"), pick("pytorch", size, arch)
                if ob is None and of is None and pt is None:
                    continue
                p(f"{size:<6} {NAME[arch]:<12} {fmt(ob, '>10.4f')} {fmt(of, '>10.4f')} {fmt(pt, '>13.4f')} "
                  f"{PAPER_TABLE7[(size, arch)]:>11.3f}")
            o_b, o_t = pick("ours", size, "backpack", "bf16"), pick("ours", size, "gpt2", "bf16")
            if o_b and o_t:
                p(f"{size:<6} Backpack/Transformer (ours, bf16): {o_b / o_t:.2f}x  "
                  f"(paper: {PAPER_TABLE7[(size, 'backpack')] / PAPER_TABLE7[(size, 'gpt2')]:.2f}x)")
        # the runs beside the default path: what selects them, and how the line names them
        variants = [
            (lambda r: r.get("precision") == "fp16" and r.get("impl") == "ours",
             "ours fp16 (the fp16 build; the paper's autocast arithmetic)"),
            (lambda r: r.get("flash_fwd_rows") == 128,
             "ours bf16, attention forward with 128 query rows per CTA (BACKPACK_CUDA_FLASH_FWD_ROWS=128)"),
            (lambda r: r.get("flash_fwd_blocks") == 4,
             "ours bf16, attention forward built for 4 CTAs/SM (BACKPACK_CUDA_FLASH_FWD_BLOCKS=4)"),
            (lambda r: r.get("lt") == 0, "ours bf16 without the cuBLASLt epilogues (BACKPACK_CUDA_LT=0)"),
            (lambda r: r.get("fused_context") == 1,
             "ours bf16, fused Backpack contextualization (BACKPACK_CUDA_FUSED_CONTEXT=1)"),
        ]
        for r in fwd:
            for selects, label in variants:
                if "mean_s" in r and selects(r):
                    p(f"{r['size']:<6} {NAME[r['arch']]:<12} {label}: {r['mean_s']:.4f}")

    gen = read(out, "generate.jsonl")
    p("")
    p("## 4. Generation with the KV cache (greedy, prompt 16, fp32)")
    if not gen:
        p("(did not run)")
    for r in gen:
        if "skipped" in r:
            p(f"{r.get('impl')}: skipped ({r['skipped']})")
            continue
        p(f"{r['impl']:<16} {NAME.get(r['arch'], r['arch']):<11} {r['size']:<6} rows {r['rows']:>2}  new {r['new_tokens']:>4}  "
          f"{r['tokens_per_s']:>9.1f} tokens/s")

    notes = os.path.join(out, "notes.txt")
    if os.path.exists(notes):
        p("")
        p("## Steps")
        p(open(notes).read().rstrip())
    print("\n".join(lines))


def merge_tsv(paths, into):
    """Splits results.tsv lines ('<file stem>\t<json>') back into <stem>.jsonl files under `into`."""
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                stem, sep, rest = line.partition("\t")
                if not sep or not stem.replace("-", "").replace("_", "").isalnum():
                    sys.exit(f"summarize: {path}:{n}: expected '<name>\\t<json>'")
                with open(os.path.join(into, stem + ".jsonl"), "a") as out:
                    out.write(rest)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--tsv":
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            merge_tsv(sys.argv[2:], d)
            main(d)
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else ".")
