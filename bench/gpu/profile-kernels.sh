#!/usr/bin/env bash
# Per-kernel GPU time of a few bf16 training steps (Backpack and Transformer, Small, batch 16 x 512) under Nsight
# Systems, to see where a step's time goes. Writes $OUT/kernels-<arch>.txt.  OUT=dir bench/gpu/profile-kernels.sh
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-/tmp/profile-kernels}"; mkdir -p "$OUT"
BUILD=/tmp/backpack-gpu-check
"$ROOT/bench/gpu/build-harness.sh" "$BUILD" > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
NSYS="$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)"
echo "nsys: ${NSYS:-none}"; ls /usr/local/cuda/bin | tr '\n' ' '; echo
for arch in backpack gpt2; do
  if [[ -n "$NSYS" ]]; then
    "$NSYS" profile -o "/tmp/prof-$arch" --force-overwrite true --trace cuda "$BUILD/harness" train "$arch" small 16 512 6 bf16 > "$OUT/run-$arch.txt" 2>&1
    "$NSYS" stats --report cuda_gpu_kern_sum --format csv "/tmp/prof-$arch.nsys-rep" > "$OUT/kernels-$arch.csv" 2>&1
    head -40 "$OUT/kernels-$arch.csv" | cut -c1-220
  else
    "$BUILD/harness" train "$arch" small 16 512 6 bf16
  fi
done
