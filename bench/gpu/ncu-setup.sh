# Sourced by the Nsight Compute scripts (profile-kernels.sh, profile-attention.sh): sets ROOT, OUT (created), BUILD
# with a harness in it (reused from gpu-check.sh's build directory, else built) and NCU, or exits with the reason.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-/tmp/$(basename "$0" .sh)}"; mkdir -p "$OUT"
BUILD="${BUILD_DIR:-/tmp/backpack-gpu-check}"
[[ -x "$BUILD/harness" ]] || "$ROOT/bench/gpu/build-harness.sh" "$BUILD" > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
NCU="$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)"
[[ -n "$NCU" ]] || { echo "$(basename "$0"): no ncu (Nsight Compute) on this machine"; exit 1; }
