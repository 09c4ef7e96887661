#!/usr/bin/env bash
# Static instruction statistics of the CUDA kernels, for sessions without a GPU: compiles one source for sm_90
# with the project's toolkit and reports, per kernel, its registers, stack bytes (spills) and SASS instructions by
# class. A kernel's body is mostly
# one copy of its loop, so the counts say how much work one iteration issues (not how fast it runs).
#   bench/gpu/sass-stats.sh native/src/cuda/flash_attention.cu [kernel-name-regex]
# Needs the toolkit of scripts/install-cuda-toolkit.sh; installs NVIDIA's cuobjdump and nvdisasm wheels (pinned,
# same release as nvcc) beside it on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SRC="${1:?usage: sass-stats.sh <file.cu> [kernel-regex]}"
FILTER="${2:-.}"
TOOLS="${CUDA_TOOLS_DIR:-$ROOT/.tools/cuda}"
VENV="$TOOLS/venv"
[[ -x "$TOOLS/home/bin/nvcc" ]] || { echo "sass-stats: no toolkit at $TOOLS/home (run scripts/install-cuda-toolkit.sh)" >&2; exit 1; }
BIN="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13/bin"
if [[ ! -x "$BIN/cuobjdump" || ! -x "$BIN/nvdisasm" ]]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    nvidia-cuda-cuobjdump==13.5.37 nvidia-cuda-nvdisasm==13.5.37
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$TOOLS/home/bin/nvcc" -std=c++17 -O3 -cubin -arch=sm_90 -I"$TOOLS/home/include" "$ROOT/$SRC" -o "$WORK/k.cubin"
# Kernel names as "flashForwardKernel<64, 1, 1>": demangled, namespaces and parameter lists dropped
short() { c++filt | sed -E 's/\(anonymous namespace\):://g; s/void //; s/bp::[a-z_0-9]+:://g; s/\(.*\)//'; }
PATH="$BIN:$PATH" "$BIN/cuobjdump" -res-usage "$WORK/k.cubin" | short > "$WORK/res.txt"
PATH="$BIN:$PATH" "$BIN/cuobjdump" -sass "$WORK/k.cubin" | short > "$WORK/k.sass"
# One line per kernel: registers, stack (spills), total instructions, then the classes that carry the work of an
# attention-like loop
awk -v filter="$FILTER" '
  FNR == NR {  # res-usage: "Function name:" then "REG:n STACK:n ..."
    if ($1 == "Function") { name = $0; sub(/^ *Function /, "", name); sub(/:$/, "", name) }
    else if (match($0, /REG:[0-9]+/)) { reg[name] = substr($0, RSTART + 4, RLENGTH - 4); match($0, /STACK:[0-9]+/); stack[name] = substr($0, RSTART + 6, RLENGTH - 6) }
    next
  }
  function flush() {
    if (name != "" && name ~ filter)
      printf "reg %3d  stack %3d  %6d  hmma %4d  mufu %4d  int %5d  fp %5d  lds %4d  bar %3d  local %3d  %s\n",
             reg[name], stack[name], total, c["HMMA"], c["MUFU"],
             c["IMAD"] + c["LOP3"] + c["SHF"] + c["IADD3"] + c["ISETP"] + c["LEA"] + c["VIADD"] + c["SEL"],
             c["FMUL"] + c["FADD"] + c["FFMA"] + c["FSETP"] + c["FSEL"] + c["FMNMX"], c["LDS"] + c["LDSM"], c["BAR"],
             c["LDL"] + c["STL"], name
    delete c; total = 0
  }
  /Function :/ { flush(); name = $0; sub(/.*Function : /, "", name); next }
  /^[ \t]+\/\*[0-9a-f]+\*\// {
    line = $0; sub(/^[ \t]+\/\*[0-9a-f]+\*\/[ \t]+/, "", line); sub(/;.*/, "", line)
    n = split(line, w, /[ \t]+/); op = (w[1] ~ /^@/) ? w[2] : w[1]; sub(/\..*/, "", op)
    if (op == "NOP") next
    c[op]++; total++
  }
  END { flush() }' "$WORK/res.txt" "$WORK/k.sass"
