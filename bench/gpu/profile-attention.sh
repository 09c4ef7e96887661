#!/usr/bin/env bash
# Why the fused attention kernels take the time they do: Nsight Compute's throughput, occupancy, warp-stall,
# scheduler and instruction sections for one launch each of the forward, dK/dV and dQ kernels, taken from a
# bf16 Transformer-Small training step (batch 16 x 512, dropout 0.1) after the harness's 3 warm-up steps.
#   OUT=dir bench/gpu/profile-attention.sh [gpt2|backpack]     (default: gpt2)
# Reuses the harness gpu-check.sh built in /tmp/backpack-gpu-check, else builds it. Writes $OUT/attention-<arch>.txt.
source "$(dirname "$0")/ncu-setup.sh"
arch="${1:-gpt2}"
layers=12  # Small: one launch of each kernel per layer and step; skip the warm-up steps' launches
report="$OUT/attention-$arch.txt"
echo "# ncu sections per fused attention kernel: harness train $arch small 16 512 1 bf16, launch $((3 * layers + 1)) of each" > "$report"
for kernel in flashForwardKernel flashBackwardKVKernel flashBackwardQKernel; do
  "$NCU" --kernel-name "regex:$kernel" --launch-skip $((3 * layers)) --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section InstructionStats "$BUILD/harness" train "$arch" small 16 512 1 bf16 >> "$report" 2>&1
done
cat "$report"
