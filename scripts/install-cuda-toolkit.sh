#!/usr/bin/env bash
# Installs a CUDA toolkit for compiling (not running) the CUDA backend: NVIDIA's PyPI wheels, pinned, into a
# tooling venv, then lays the wheel tree out as a conventional CUDA_HOME (bin/nvcc, include/, lib64/ with
# unversioned .so links, NCCL beside the rest). Prints the CUDA_HOME it made; idempotent.
#   CUDA_TOOLS_DIR   where to install (default: <repo>/.tools/cuda)
# Afterwards: CUDA_HOME=$CUDA_TOOLS_DIR/home (native/build.js finds it there on its own).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${CUDA_TOOLS_DIR:-$ROOT/.tools/cuda}"
PY="${PYTHON:-python3}"

# Pinned versions: the compiler, runtime and libraries must agree (CUDA 13.x); bump together.
PINS=(
  nvidia-cuda-nvcc==13.5.37
  nvidia-cuda-runtime==13.5.37
  nvidia-cuda-crt==13.5.37
  nvidia-cuda-cccl==13.3.5.0.6
  nvidia-nvvm==13.5.37
  nvidia-cublas==13.10.0.20
  nvidia-nccl-cu13==2.32.3
)
STAMP="$DIR/.installed"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$DIR/home/bin/nvcc" ]]; then
  echo "CUDA toolkit: already installed at $DIR/home"
  exit 0
fi

mkdir -p "$DIR"
if [[ ! -x "$DIR/venv/bin/python" ]]; then
  "$PY" -m venv "$DIR/venv"
fi
"$DIR/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${PINS[@]}"

SITE="$("$DIR/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
CU="$SITE/nvidia/cu13"
NCCL="$SITE/nvidia/nccl"
for need in "$CU/bin/nvcc" "$CU/include/cuda_runtime.h" "$CU/include/cublasLt.h" "$CU/lib/libcudart.so.13" \
            "$CU/lib/libcublas.so.13" "$CU/lib/libcublasLt.so.13" "$NCCL/include/nccl.h" "$NCCL/lib/libnccl.so.2"; do
  [[ -e "$need" ]] || { echo "CUDA toolkit: expected $need after installing the wheels" >&2; exit 1; }
done

# The wheels ship versioned shared objects only; the linker needs the plain names.
link() { ln -sfn "$1" "$2"; }
link libcudart.so.13 "$CU/lib/libcudart.so"
link libcublas.so.13 "$CU/lib/libcublas.so"
link libcublasLt.so.13 "$CU/lib/libcublasLt.so"
link "$NCCL/lib/libnccl.so.2" "$CU/lib/libnccl.so.2"
link libnccl.so.2 "$CU/lib/libnccl.so"
for h in "$NCCL"/include/*.h; do link "$h" "$CU/include/$(basename "$h")"; done
# Build systems look in lib64 (CMake's FindCUDAToolkit, many Makefiles).
[[ -e "$CU/lib64" ]] || link lib "$CU/lib64"
link "$CU" "$DIR/home"

"$DIR/home/bin/nvcc" --version | tail -2
printf '%s\n' "${PINS[@]}" > "$STAMP"
echo "CUDA toolkit: CUDA_HOME=$DIR/home"
