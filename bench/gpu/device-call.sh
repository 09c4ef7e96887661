#!/usr/bin/env bash
# One lent-GPU call sized to about 7 minutes (device time is scarce; every start costs minutes):
#   1. our side of bench/gpu-check.sh (build, parity, training, Table 7, generation, the kernel experiments),
#   2. Nsight Compute on Transformer-Small: the fused attention kernels' sections and the per-kernel time of a step,
#   3. the headline peers: SDPA alone and PyTorch training at the recipe shape (gpu-check.sh --headline-peers).
# The device tool brings back at most 8 files, so the results are flattened into $OUT:
#   ours-summary.txt ours-results.tsv ours-logs.txt attention-gpt2.txt kernels-gpt2.txt peers-results.tsv peers-logs.txt
# One summary of both sides: python3 bench/gpu/summarize.py --tsv ours-results.tsv peers-results.tsv
#   OUT=dir bench/gpu/device-call.sh [OURS_BUDGET_S] [PEERS_BUDGET_S]     (defaults 270 and 170)
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:?device-call: set OUT}"
W="$(mktemp -d "${TMPDIR:-/tmp}/device-call.XXXXXX")"
OURS_BUDGET="${1:-270}" PEERS_BUDGET="${2:-170}"
t0=$(date +%s)
OUT="$W/ours" bash "$ROOT/bench/gpu-check.sh" --budget "$OURS_BUDGET" --runs 100 --no-peers --no-fp32 > "$W/ours.out" 2>&1
echo "ours: $(( $(date +%s) - t0 ))s"
OUT="$W/prof" timeout 90 bash "$ROOT/bench/gpu/profile-attention.sh" gpt2 > "$W/prof-attention.out" 2>&1
OUT="$W/prof" timeout 60 bash "$ROOT/bench/gpu/profile-kernels.sh" gpt2 > "$W/prof-kernels.out" 2>&1
echo "profiles: $(( $(date +%s) - t0 ))s"
SKIP_BUILD=1 OUT="$W/peers" bash "$ROOT/bench/gpu-check.sh" --no-ours --headline-peers --budget "$PEERS_BUDGET" \
  --runs 100 --no-fp32 > "$W/peers.out" 2>&1
echo "peers: $(( $(date +%s) - t0 ))s"
{ cat "$W/ours/summary.txt" "$W/ours/notes.txt" 2>/dev/null; } > "$OUT/ours-summary.txt"
cp "$W/ours/results.tsv" "$OUT/ours-results.tsv" 2>/dev/null
cp "$W/ours/logs.txt" "$OUT/ours-logs.txt" 2>/dev/null
cp "$W/prof/attention-gpt2.txt" "$OUT/" 2>/dev/null || tail -c 4000 "$W/prof-attention.out" > "$OUT/attention-gpt2.txt"
cp "$W/prof/kernels-gpt2.txt" "$OUT/" 2>/dev/null || tail -c 4000 "$W/prof-kernels.out" > "$OUT/kernels-gpt2.txt"
cp "$W/peers/results.tsv" "$OUT/peers-results.tsv" 2>/dev/null
{ cat "$W/peers/notes.txt" "$W/peers/logs.txt" 2>/dev/null; } > "$OUT/peers-logs.txt"
cat "$OUT/ours-summary.txt"; grep -h '"attention"\|pytorch' "$OUT/peers-results.tsv" 2>/dev/null
