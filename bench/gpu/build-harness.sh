#!/usr/bin/env bash
# Builds bench/gpu/harness (the CUDA engine + CPU reference model, no Node) with nvcc and the host compiler.
#   bench/gpu/build-harness.sh OUT_DIR [--fp16]
# --fp16: the fp16 build of the engine (native/src/cuda/half16.cuh) instead, as OUT_DIR/harness-fp16.
# Finds the toolkit in $CUDA_HOME, on PATH, in /usr/local/cuda*, or in NVIDIA's pip wheels; NCCL is linked when
# its header is found (single-GPU otherwise). Compiles for sm_80 and sm_90 (plus the local GPU's arch if newer).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:?usage: build-harness.sh OUT_DIR [--fp16]}"
NAME=harness; VARIANT=()
if [[ "${2:-}" == --fp16 ]]; then NAME=harness-fp16; VARIANT=(-DBP_CUDA_FP16=1); fi
OBJ="$OUT/obj-$NAME"
mkdir -p "$OBJ"

find_cuda() {
  if [[ -n "${CUDA_HOME:-}" && -x "$CUDA_HOME/bin/nvcc" ]]; then echo "$CUDA_HOME"; return; fi
  if command -v nvcc >/dev/null 2>&1; then dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")"; return; fi
  for d in $(ls -d /usr/local/cuda* 2>/dev/null | sort -rV); do
    [[ -x "$d/bin/nvcc" ]] && { echo "$d"; return; }
  done
  for py in python3 python; do
    command -v "$py" >/dev/null 2>&1 || continue
    d="$("$py" - <<'PY' 2>/dev/null || true
import glob, os, site
for s in site.getsitepackages():
    for c in glob.glob(os.path.join(s, 'nvidia', '*', 'bin', 'nvcc')):
        print(os.path.dirname(os.path.dirname(c))); raise SystemExit
PY
)"
    [[ -n "$d" ]] && { echo "$d"; return; }
  done
  return 1
}

CUDA="$(find_cuda)" || { echo "build-harness: no CUDA toolkit (nvcc) found" >&2; exit 1; }
NVCC="$CUDA/bin/nvcc"
echo "build-harness: nvcc $("$NVCC" --version | tail -1) at $NVCC"
LIBDIR="$CUDA/lib64"; [[ -d "$LIBDIR" ]] || LIBDIR="$CUDA/lib"

# NCCL: beside the toolkit, system-wide, or NVIDIA's pip wheel.
NCCL_INC=""; NCCL_LIB=""
SITES="$(python3 -c 'import site;print(" ".join(s + "/nvidia/nccl/include" for s in site.getsitepackages()))' 2>/dev/null || true)"
for inc in "$CUDA/include" /usr/include /usr/local/include $SITES; do
  if [[ -f "$inc/nccl.h" ]]; then NCCL_INC="$inc"; break; fi
done
if [[ -n "$NCCL_INC" ]]; then
  for lib in "$LIBDIR/libnccl.so" "$LIBDIR/libnccl.so.2" /usr/lib/x86_64-linux-gnu/libnccl.so /usr/lib/x86_64-linux-gnu/libnccl.so.2 "$NCCL_INC/../lib/libnccl.so.2"; do
    if [[ -e "$lib" ]]; then NCCL_LIB="$(readlink -f "$lib")"; break; fi
  done
fi
NCCL_FLAGS=(); NCCL_LINK=()
if [[ -n "$NCCL_INC" && -n "$NCCL_LIB" ]]; then
  echo "build-harness: NCCL $NCCL_LIB"
  NCCL_FLAGS=(-I"$NCCL_INC"); NCCL_LINK=("$NCCL_LIB" -Wl,-rpath,"$(dirname "$NCCL_LIB")")
else
  echo "build-harness: NCCL not found: single-GPU build"
  NCCL_FLAGS=(-DBP_NO_NCCL_HEADER)
fi

ARCHS=(-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90)
if command -v nvidia-smi >/dev/null 2>&1; then
  cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')"
  if [[ -n "$cc" && "$cc" != 80 && "$cc" != 90 && "$cc" -gt 90 ]]; then ARCHS+=(-gencode "arch=compute_$cc,code=sm_$cc"); fi
fi

BLAS_FLAGS=(); BLAS_LINK=()
for inc in /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas /usr/include; do
  if [[ -f "$inc/cblas.h" ]] && ls /usr/lib/x86_64-linux-gnu/libopenblas.so* >/dev/null 2>&1; then
    BLAS_FLAGS=(-DBACKPACK_HAVE_OPENBLAS -I"$inc"); BLAS_LINK=(-lopenblas); break
  fi
done

JOBS="$(nproc 2>/dev/null || echo 4)"
pids=()
objs=()
for src in "$ROOT"/native/src/cuda/*.cu "$ROOT"/bench/gpu/*.cu; do
  obj="$OBJ/$(basename "$src" .cu).cu.o"; objs+=("$obj")
  "$NVCC" -O3 -std=c++17 "${ARCHS[@]}" "${NCCL_FLAGS[@]}" "${VARIANT[@]}" -Xcompiler -fPIC -c "$src" -o "$obj" &
  pids+=($!)
  while (( $(jobs -r | wc -l) >= JOBS )); do sleep 0.2; done
done
# Every engine source but the Node-API glue (addon.cpp), so new CPU files need no edit here.
CPU_SOURCES=()
for src in "$ROOT"/native/src/*.cpp; do [[ "$(basename "$src")" == addon.cpp ]] || CPU_SOURCES+=("$src"); done
for src in "${CPU_SOURCES[@]}" "$ROOT"/native/src/layers/*.cpp "$ROOT"/bench/gpu/harness.cpp; do
  obj="$OBJ/$(basename "$src" .cpp).o"; objs+=("$obj")
  g++ -O3 -march=native -fopenmp -std=c++17 "${BLAS_FLAGS[@]}" "${VARIANT[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  while (( $(jobs -r | wc -l) >= JOBS )); do sleep 0.2; done
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
(( fail == 0 )) || { echo "build-harness: compilation failed" >&2; exit 1; }
# The CUDA runtime is linked statically when the toolkit has it, so a harness built elsewhere only needs
# cuBLAS (and NCCL) of the same major version on the machine that runs it.
CUDART=(-lcudart)
[[ -f "$LIBDIR/libcudart_static.a" ]] && CUDART=(-lcudart_static -lrt)
g++ -o "$OUT/$NAME" "${objs[@]}" -fopenmp -L"$LIBDIR" "${CUDART[@]}" -lcublas -lcublasLt "${NCCL_LINK[@]}" "${BLAS_LINK[@]}" \
  -Wl,-rpath,"$LIBDIR" -lpthread -ldl
echo "build-harness: built $OUT/$NAME"
