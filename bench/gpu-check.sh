#!/usr/bin/env bash
# The one script run on a lent GPU: builds the CUDA engine's check harness with the machine's nvcc, then
#   1. parity with the CPU backend on tiny models (logits, loss, alpha, every gradient with and without dropout,
#      10 AdamW steps, KV-cache generation with interventions; fp32 and bf16),
#   2. training throughput + MFU, Backpack and Transformer at Micro and Small (batch 16 x 512, one micro-batch per
#      optimizer step), ours vs PyTorch (SDPA, fused AdamW, bf16 autocast, torch.compile) on the same GPU; and the
#      paper's recipe shape at Small: micro-batch 32 x 512 with 8 accumulation steps, i.e. 256 sequences per
#      optimizer step (the per-GPU share of the authors' 1024 = 4 GPUs x 128 x 2),
#   3. the paper's Table 7 forward timing (batch 32 x 512) at Micro/Mini/Small, ours vs PyTorch,
#   4. KV-cache generation tokens/s, ours vs Hugging Face generate;
#   and the fp16 build of the engine (the paper's arithmetic, with loss scaling): its parity, including a
#   loss-scale overflow that must skip the step, and its training and forward times at Small.
# Everything lands in $OUT (raw JSON lines per section, logs, summary.txt); the summary is also printed.
#   OUT=dir bench/gpu-check.sh [--budget SECONDS] [--runs N] [--quick] [--no-peers] [--no-ours] [--no-fp32]
#                              [--no-fp16] [--headline-peers]
# --budget: wall-clock seconds for the whole check (sections that no longer fit are skipped and say so);
# --runs: timed forward passes per Table 7 model (paper: 100); --quick: tiny settings to test the script itself;
# --no-peers: skip the PyTorch / Hugging Face peers (a rerun of our side only); --no-ours: skip the build and our
# engine (the peers alone); --no-fp32: skip the fp32/TF32 reference runs (training and forward), which the bf16
# kernels do not touch; --no-fp16: skip the fp16 build and its runs; --headline-peers: of the peers, only the
# fused attention's (SDPA alone) and the recipe-shaped training runs (the issue's targets; about 2.5 minutes).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$ROOT/bench/results/gpu-local}"
BUDGET=400
RUNS=100
QUICK=0
PEERS=1
OURS=1
FP32=1
FP16=1
HEADLINE_PEERS=0
while (( $# )); do
  case "$1" in
    --budget) BUDGET="${2:?--budget needs seconds}"; shift 2 ;;
    --runs) RUNS="${2:?--runs needs a count}"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --no-peers) PEERS=0; shift ;;
    --no-ours) OURS=0; shift ;;
    --no-fp32) FP32=0; shift ;;
    --no-fp16) FP16=0; shift ;;
    --headline-peers) HEADLINE_PEERS=1; shift ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;  # the header comment
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$BUDGET" =~ ^[0-9]+$ && "$RUNS" =~ ^[0-9]+$ && "$RUNS" -gt 0 ]] || { echo "gpu-check: --budget and --runs take positive integers" >&2; exit 2; }
mkdir -p "$OUT"
# Per-step files go to a work directory; $OUT receives a handful of consolidated files at the end (the device
# tool brings back only a few files per run).
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
START=$(date +%s)
SUMMARY="$OUT/summary.txt"
# finish: summary + consolidated raw results and logs into $OUT (also on early exit)
finish() {
  [[ -n "${FINISHED:-}" ]] && return
  FINISHED=1
  python3 "$ROOT/bench/gpu/summarize.py" "$WORK" > "$SUMMARY" 2>&1 || echo "summarize failed" >> "$SUMMARY"
  cat "$SUMMARY"
  for f in "$WORK"/*.jsonl; do [[ -e "$f" ]] && sed "s/^/$(basename "$f" .jsonl)\t/" "$f"; done > "$OUT/results.tsv"
  for f in "$WORK"/*.log; do [[ -s "$f" ]] && { echo "==== $(basename "$f")"; tail -c 20000 "$f"; }; done > "$OUT/logs.txt"
  cp "$WORK/env.txt" "$WORK/notes.txt" "$OUT/" 2>/dev/null
}
trap finish EXIT
note() { echo "$*" | tee -a "$WORK/notes.txt"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# run_step NAME MIN_SECONDS FILE CMD...: runs CMD (stdout appended to FILE, stderr to NAME.log) if at least
# MIN_SECONDS remain, under a timeout of the remaining budget.
run_step() {
  local name="$1" need="$2" file="$3"; shift 3
  local rem; rem=$(left)
  if (( rem < need )); then note "SKIPPED $name: ${rem}s of budget left, needs ~${need}s"; return 0; fi
  local t0=$(date +%s)
  timeout --kill-after=5 "$rem" "$@" >> "$WORK/$file" 2>> "$WORK/$name.log"
  local rc=$?
  note "ran $name: rc=$rc in $(( $(date +%s) - t0 ))s"
  return 0
}

# ---- 0. environment
{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1 || echo "nvidia-smi: not available"
  echo "nvcc on PATH: $(command -v nvcc || echo none); /usr/local/cuda*: $(ls -d /usr/local/cuda* 2>/dev/null | tr '\n' ' ')"
  python3 - <<'PY' 2>&1
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))
except Exception as e:
    print("torch: unavailable:", e)
try:
    import transformers
    print("transformers", transformers.__version__)
except Exception as e:
    print("transformers: unavailable:", e)
PY
  echo "cpus: $(nproc); node: $(command -v node >/dev/null && node --version || echo none)"
} > "$WORK/env.txt" 2>&1
cat "$WORK/env.txt"

# ---- 1. build (fallback: a harness prebuilt elsewhere with the pinned PyPI toolkit, carried in
# .tools/gpu-prebuilt/, run against the NVIDIA libraries of the machine's pip packages)
BUILD="${BUILD_DIR:-/tmp/backpack-gpu-check}"
H=""
t0=$(date +%s)
if (( ! OURS )); then
  echo "no build (--no-ours)" > "$WORK/build.log"
  H=false
elif [[ "${SKIP_BUILD:-0}" == 1 && -x "$BUILD/harness" ]]; then
  echo "reusing $BUILD/harness (SKIP_BUILD=1)" > "$WORK/build.log"
  H="$BUILD/harness"
elif "$ROOT/bench/gpu/build-harness.sh" "$BUILD" > "$WORK/build.log" 2>&1; then
  H="$BUILD/harness"
  note "built the harness with this machine's nvcc in $(( $(date +%s) - t0 ))s"
else
  note "BUILD FAILED on this machine (see build.log)"
  tail -15 "$WORK/build.log"
  PRE="$ROOT/.tools/gpu-prebuilt/harness"
  if [[ -x "$PRE" ]]; then
    LIBS="$(python3 -c 'import glob,os,site
d=[]
for s in site.getsitepackages(): d+=glob.glob(os.path.join(s,"nvidia","*","lib"))+glob.glob(os.path.join(s,"torch","lib"))
print(":".join(d))' 2>/dev/null || true)"
    export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # (no `grep -q` under pipefail: it closes the pipe early and the SIGPIPE'd ldd made the test read "all found")
    missing="$(ldd "$PRE" 2>&1 | grep 'not found' || true)"
    if [[ -n "$missing" ]]; then
      note "prebuilt harness cannot run here: $(echo "$missing" | tr -s ' \t' ' ' | tr '\n' ';')"
    else
      H="$PRE"
      note "using the prebuilt harness (CUDA libraries from: $LIBS)"
    fi
  fi
fi
if [[ -z "$H" ]]; then
  note "no harness: the engine checks did not run; PyTorch peers still run below"
  H=false
fi
# The fp16 build of the engine, compiled in the background while the bf16 parity checks run (waited for before
# any timing run, so the compiler does not share the CPU with a benchmark).
H16=false
FP16_BUILD_PID=""
if (( OURS && FP16 )) && [[ "$H" != false ]]; then
  if [[ "${SKIP_BUILD:-0}" == 1 && -x "$BUILD/harness-fp16" ]]; then
    H16="$BUILD/harness-fp16"
  else
    "$ROOT/bench/gpu/build-harness.sh" "$BUILD" --fp16 > "$WORK/build-fp16.log" 2>&1 &
    FP16_BUILD_PID=$!
  fi
fi
wait_fp16_build() {
  [[ -z "$FP16_BUILD_PID" ]] && return 0
  if wait "$FP16_BUILD_PID"; then H16="$BUILD/harness-fp16"; note "built the fp16 harness"; else note "fp16 BUILD FAILED (see build-fp16.log)"; fi
  FP16_BUILD_PID=""
}

# STEPS: timed optimizer steps per training run, ours and the peers' (a step takes ~10-60 ms, so 30 cost ~1 s and
# cut the noise: 10-step PyTorch runs moved by up to 30% between calls). ACC_*: the recipe-shaped run (micro-batch
# ACC_B x 512, ACC gradient-accumulation steps, ACC_STEPS timed optimizer steps, at ACC_SIZE).
if (( QUICK )); then
  SIZES_TRAIN="micro"; STEPS=2; TRAIN_B=2; FWD_SIZES="micro"; FWD_B=2; RUNS=2; GEN_NEW=8
  ACC_SIZE=micro; ACC_B=2; ACC=2; ACC_STEPS=1
else
  SIZES_TRAIN="micro small"; STEPS=30; TRAIN_B=16; FWD_SIZES="micro mini small"; FWD_B=32; GEN_NEW=128
  ACC_SIZE=small; ACC_B=32; ACC=8; ACC_STEPS=3
fi

# The fused attention's forward-kernel experiments (native/src/cuda/flash_attention.cu): name suffix = environment
FWD_EXPERIMENTS=("fwd-blocks4=BACKPACK_CUDA_FLASH_FWD_BLOCKS=4" "fwd-rows128=BACKPACK_CUDA_FLASH_FWD_ROWS=128")

# ---- 2.-5. our engine (skipped with --no-ours: a peers-only call on a machine that already ran them)
run_ours() {
  # ---- 2. parity (fast; most important)
  run_step parity 20 parity.jsonl "$H" parity
  # again on the batched attention products the fused kernels replace (BACKPACK_CUDA_FLASH=0), one sequence per
  # chunk: the multi-chunk path on the tiny batch (B=3)
  # (and on the plain cuBLAS products plus element-wise bias/GELU kernels instead of the cuBLASLt epilogues)
  run_step parity-batched-attn 20 parity.jsonl env BACKPACK_CUDA_FLASH=0 BACKPACK_CUDA_ATTN_SEQS=1 BACKPACK_CUDA_LT=0 \
    "$H" parity
  # the gradient operands written in bf16 by their producers (not yet the default)
  # the gradient operands in fp32 plus a rounding pass, and training's logits in fp32 (the defaults before session 9)
  run_step parity-fp32-grads-logits 20 parity.jsonl env BACKPACK_CUDA_GRAD16=0 BACKPACK_CUDA_LOGITS16=0 "$H" parity
  # the fused Backpack contextualization (backpack_flash.cu; off by default)
  run_step parity-fused-context 20 parity.jsonl env BACKPACK_CUDA_FUSED_CONTEXT=1 "$H" parity
  # the fused attention kernels on multi-block shapes, against the batched path (plus their time at Small)
  run_step attention 20 parity.jsonl "$H" attention
  # the same with each forward-kernel experiment (checked against the same reference; its fused_ms at Small)
  for x in "${FWD_EXPERIMENTS[@]}"; do run_step "attention-${x%%=*}" 20 parity.jsonl env "${x#*=}" "$H" attention; done
  run_step layernorm 10 parity.jsonl "$H" layernorm
  run_step data-parallel 20 parity.jsonl "$H" dp
  wait_fp16_build
  [[ "$H16" != false ]] && run_step parity-fp16 20 parity.jsonl "$H16" parity

  # ---- 3. ours: training throughput (bf16 GEMMs; fp32 once for reference)
  for size in $SIZES_TRAIN; do
    for arch in backpack gpt2; do
      run_step "train-ours-$arch-$size" 15 train.jsonl "$H" train "$arch" "$size" "$TRAIN_B" 512 "$STEPS" bf16
    done
  done
  # the recipe shape: ACC micro-batches per optimizer step
  for arch in backpack gpt2; do
    run_step "train-ours-$arch-$ACC_SIZE-accum$ACC" 20 train.jsonl \
      "$H" train "$arch" "$ACC_SIZE" "$ACC_B" 512 "$ACC_STEPS" bf16 --accum "$ACC"
  done
  (( FP32 )) && for prec in tf32 fp32; do
    run_step "train-ours-backpack-small-$prec" 25 train.jsonl "$H" train backpack "${SIZES_TRAIN##* }" "$TRAIN_B" 512 "$STEPS" "$prec"
  done
  # the batched attention products (in chunks of 2 sequences, their best setting) instead of the fused kernels
  run_step "train-ours-backpack-${SIZES_TRAIN##* }-batched-attn" 20 train.jsonl env BACKPACK_CUDA_FLASH=0 BACKPACK_CUDA_ATTN_SEQS=2 \
    "$H" train backpack "${SIZES_TRAIN##* }" "$TRAIN_B" 512 "$STEPS" bf16
  # the gradient operands in fp32 plus a rounding pass instead of bf16 from their producers (the A/B that made
  # the latter the default)
  for arch in backpack gpt2; do
    run_step "train-ours-$arch-${SIZES_TRAIN##* }-no-grad16" 15 train.jsonl env BACKPACK_CUDA_GRAD16=0 \
      "$H" train "$arch" "${SIZES_TRAIN##* }" "$TRAIN_B" 512 "$STEPS" bf16
    run_step "train-ours-$arch-$ACC_SIZE-accum$ACC-no-grad16" 20 train.jsonl env BACKPACK_CUDA_GRAD16=0 \
      "$H" train "$arch" "$ACC_SIZE" "$ACC_B" 512 "$ACC_STEPS" bf16 --accum "$ACC"
    # training's logits in fp32 instead of bf16 (the A/B of session 9)
    run_step "train-ours-$arch-$ACC_SIZE-accum$ACC-no-logits16" 20 train.jsonl env BACKPACK_CUDA_LOGITS16=0 \
      "$H" train "$arch" "$ACC_SIZE" "$ACC_B" 512 "$ACC_STEPS" bf16 --accum "$ACC"
  done
  # the fp16 build (GradScaler's loss scale of 65536): the paper's arithmetic, on the same kernels
  [[ "$H16" != false ]] && for arch in backpack gpt2; do
    run_step "train-ours-$arch-${SIZES_TRAIN##* }-fp16" 15 train.jsonl "$H16" train "$arch" "${SIZES_TRAIN##* }" "$TRAIN_B" 512 "$STEPS" fp16
  done
  # the attention forward experiments (the Transformer is where attention weighs most), at both shapes
  for x in "${FWD_EXPERIMENTS[@]}"; do
    run_step "train-ours-gpt2-${SIZES_TRAIN##* }-${x%%=*}" 15 train.jsonl env "${x#*=}" \
      "$H" train gpt2 "${SIZES_TRAIN##* }" "$TRAIN_B" 512 "$STEPS" bf16
    run_step "train-ours-gpt2-$ACC_SIZE-accum$ACC-${x%%=*}" 20 train.jsonl env "${x#*=}" \
      "$H" train gpt2 "$ACC_SIZE" "$ACC_B" 512 "$ACC_STEPS" bf16 --accum "$ACC"
  done
  # the fused Backpack contextualization in the forward pass (the backward pass recomputes alpha as before)
  run_step "train-ours-backpack-${SIZES_TRAIN##* }-fused-context" 15 train.jsonl env BACKPACK_CUDA_FUSED_CONTEXT=1 \
    "$H" train backpack "${SIZES_TRAIN##* }" "$TRAIN_B" 512 "$STEPS" bf16
  run_step "train-ours-backpack-$ACC_SIZE-accum$ACC-fused-context" 20 train.jsonl env BACKPACK_CUDA_FUSED_CONTEXT=1 \
    "$H" train backpack "$ACC_SIZE" "$ACC_B" 512 "$ACC_STEPS" bf16 --accum "$ACC"
  # the plain cuBLAS products plus element-wise bias/GELU kernels instead of the cuBLASLt epilogues
  for arch in backpack gpt2; do
    run_step "train-ours-$arch-${SIZES_TRAIN##* }-no-lt" 15 train.jsonl env BACKPACK_CUDA_LT=0 \
      "$H" train "$arch" "${SIZES_TRAIN##* }" "$TRAIN_B" 512 "$STEPS" bf16
  done

  # ---- 4. ours: Table 7 forward timing
  for size in $FWD_SIZES; do
    for arch in backpack gpt2; do
      run_step "forward-ours-$arch-$size" 15 forward.jsonl "$H" forward "$arch" "$size" "$FWD_B" 512 "$RUNS" bf16
    done
  done
  # the eval path on plain cuBLAS products plus element-wise bias/GELU kernels (an A/B for the cuBLASLt epilogues)
  for arch in backpack gpt2; do
    run_step "forward-ours-$arch-${FWD_SIZES##* }-no-lt" 15 forward.jsonl env BACKPACK_CUDA_LT=0 \
      "$H" forward "$arch" "${FWD_SIZES##* }" "$FWD_B" 512 "$RUNS" bf16
  done

  for x in "${FWD_EXPERIMENTS[@]}"; do
    run_step "forward-ours-gpt2-${FWD_SIZES##* }-${x%%=*}" 15 forward.jsonl env "${x#*=}" \
      "$H" forward gpt2 "${FWD_SIZES##* }" "$FWD_B" 512 "$RUNS" bf16
  done
  # Table 7 of the Backpacks with the fused contextualization (d/k = 24, 40, 48 at Micro, Mini, Small)
  for size in $FWD_SIZES; do
    run_step "forward-ours-backpack-$size-fused-context" 15 forward.jsonl env BACKPACK_CUDA_FUSED_CONTEXT=1 \
      "$H" forward backpack "$size" "$FWD_B" 512 "$RUNS" bf16
  done
  [[ "$H16" != false ]] && for arch in backpack gpt2; do
    run_step "forward-ours-$arch-${FWD_SIZES##* }-fp16" 15 forward.jsonl "$H16" forward "$arch" "${FWD_SIZES##* }" "$FWD_B" 512 "$RUNS" fp16
  done
  (( FP32 )) && for arch in backpack gpt2; do
    run_step "forward-ours-$arch-${FWD_SIZES##* }-fp32" 15 forward.jsonl "$H" forward "$arch" "${FWD_SIZES##* }" "$FWD_B" 512 "$RUNS" fp32
  done

  # ---- 5. ours: generation with the KV cache
  for rows in 1 8; do
    for arch in gpt2 backpack; do
      run_step "generate-ours-$arch-r$rows" 10 generate.jsonl "$H" generate "$arch" "${SIZES_TRAIN##* }" "$rows" 16 "$GEN_NEW" fp32
    done
  done
}
if (( OURS )); then run_ours; else note "our engine skipped (--no-ours)"; fi

# ---- 6. PyTorch peers (compile time counts against the budget, so they run last)
TB="$ROOT/bench/gpu/torch_baseline.py"
run_peers() {
  # the fused attention's peer: SDPA alone on the shapes `harness attention` times
  for p in 0.1 0.0; do
    run_step "attention-torch-p$p" 15 attention.jsonl python3 "$TB" attention 16 512 12 64 "$p" 20
  done
  if (( HEADLINE_PEERS )); then
    for arch in gpt2 backpack; do
      run_step "train-torch-$arch-$ACC_SIZE-accum$ACC" 60 train.jsonl \
        python3 "$TB" train "$arch" "$ACC_SIZE" "$ACC_B" 512 "$ACC_STEPS" --compile --accum "$ACC"
    done
    return
  fi
  for size in $(echo "$SIZES_TRAIN" | tr ' ' '\n' | sort -r); do  # small first: the headline comparison
    for arch in backpack gpt2; do
      run_step "train-torch-$arch-$size" 60 train.jsonl python3 "$TB" train "$arch" "$size" "$TRAIN_B" 512 "$STEPS" --compile
    done
    [[ "$size" == "$ACC_SIZE" ]] && for arch in backpack gpt2; do  # the recipe shape, same as ours
      run_step "train-torch-$arch-$ACC_SIZE-accum$ACC" 60 train.jsonl \
        python3 "$TB" train "$arch" "$ACC_SIZE" "$ACC_B" 512 "$ACC_STEPS" --compile --accum "$ACC"
    done
  done
  for size in $FWD_SIZES; do
    for arch in backpack gpt2; do
      run_step "forward-torch-$arch-$size" 15 forward.jsonl python3 "$TB" forward "$arch" "$size" "$FWD_B" 512 "$RUNS"
    done
  done
  for rows in 1 8; do
    run_step "generate-hf-r$rows" 20 generate.jsonl python3 "$TB" generate "${SIZES_TRAIN##* }" "$rows" 16 "$GEN_NEW"
  done
}
if (( PEERS )); then run_peers; else note "peers skipped (--no-peers)"; fi

note "total ${BUDGET}s budget, used $(( $(date +%s) - START ))s"
finish
