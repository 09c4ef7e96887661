#!/usr/bin/env bash
# Builds the GPU check harness for the CPU emulator (native/src/cuda/emulator/): the CUDA engine's sources compiled
# by the host compiler (BP_CUDA_EMULATOR=1) and linked against the emulator's runtime and cuBLAS instead of
# NVIDIA's, so `harness-emulated parity` checks the CUDA engine against the CPU model where no GPU exists.
#   bench/gpu/build-emulated-harness.sh OUT_DIR [--fp16]
# --fp16: the fp16 build of the engine, as OUT_DIR/harness-emulated-fp16. Needs only the toolkit's headers
# ($CUDA_HOME/include, default .tools/cuda/home; with nccl.h there, data parallel runs over BACKPACK_EMULATED_GPUS
# emulated devices). No cuBLASLt: the engine takes its plain cuBLAS path.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:?usage: build-emulated-harness.sh OUT_DIR [--fp16]}"
NAME=harness-emulated; VARIANT=()
if [[ "${2:-}" == --fp16 ]]; then NAME=harness-emulated-fp16; VARIANT=(-DBP_CUDA_FP16=1); fi
CUDA="${CUDA_HOME:-$ROOT/.tools/cuda/home}"
[[ -f "$CUDA/include/cuda_runtime.h" ]] || { echo "build-emulated-harness: no CUDA headers in $CUDA/include" >&2; exit 1; }
OBJ="$OUT/obj-$NAME"
mkdir -p "$OBJ"

FLAGS=(-O2 -std=c++17 -fopenmp -DBP_CUDA_EMULATOR=1 -I"$CUDA/include" "${VARIANT[@]}")
JOBS="$(nproc 2>/dev/null || echo 4)"
pids=()
objs=()
compile() {  # source, object, extra flags...
  local src="$1" obj="$2"; shift 2
  objs+=("$obj")
  g++ "${FLAGS[@]}" "$@" -c "$src" -o "$obj" &
  pids+=($!)
  while (( $(jobs -r | wc -l) >= JOBS )); do sleep 0.2; done
}
for src in "$ROOT"/native/src/cuda/*.cu "$ROOT"/bench/gpu/*.cu; do
  compile "$src" "$OBJ/$(basename "$src" .cu).cu.o" -x c++
done
for src in "$ROOT"/native/src/cuda/emulator/*.cpp; do compile "$src" "$OBJ/emu-$(basename "$src" .cpp).o"; done
# Every engine source but the Node-API glue (addon.cpp), as build-harness.sh
for src in "$ROOT"/native/src/*.cpp "$ROOT"/native/src/layers/*.cpp "$ROOT"/bench/gpu/harness.cpp; do
  [[ "$(basename "$src")" == addon.cpp ]] && continue
  compile "$src" "$OBJ/$(basename "$src" .cpp).o"
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
(( fail == 0 )) || { echo "build-emulated-harness: compilation failed" >&2; exit 1; }
g++ -o "$OUT/$NAME" "${objs[@]}" -fopenmp -lpthread
echo "build-emulated-harness: built $OUT/$NAME"
