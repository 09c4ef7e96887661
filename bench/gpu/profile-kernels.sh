#!/usr/bin/env bash
# Per-kernel GPU time of one bf16 training step (plus the harness's warm-up steps) at Small, batch 16 x 512, under
# Nsight Compute (gpu__time_duration only, so each kernel is replayed once): where a step's time goes.
#   OUT=dir bench/gpu/profile-kernels.sh [backpack|gpt2 ...]     (default: both)
# BATCH=32 ACCUM=8: the recipe shape instead (one warm-up and one timed optimizer step of ACCUM micro-batches).
# Reuses the harness gpu-check.sh built in /tmp/backpack-gpu-check, else builds it. Writes $OUT/kernels-<arch>.txt.
source "$(dirname "$0")/ncu-setup.sh"
for arch in "${@:-backpack gpt2}"; do
  for a in $arch; do
    args=(train "$a" small "${BATCH:-16}" 512 1 bf16 --accum "${ACCUM:-1}")
    "$NCU" --metrics gpu__time_duration.sum --csv --launch-count 20000 "$BUILD/harness" "${args[@]}" \
      > "/tmp/ncu-$a.csv" 2> "/tmp/ncu-$a.err"
    { echo "# ncu --metrics gpu__time_duration.sum: harness ${args[*]} (warm-up: 3 steps, 1 with --accum > 1; then 1 step)";
      python3 "$ROOT/bench/gpu/kernel-summary.py" "/tmp/ncu-$a.csv" 30; } > "$OUT/kernels-$a.txt"
    cat "$OUT/kernels-$a.txt"
  done
done
