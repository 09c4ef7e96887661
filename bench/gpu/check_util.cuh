// Helpers of the kernel checks in bench/gpu (attention_check.cu, layernorm_check.cu).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../../native/src/cuda/common.cuh"

namespace bp::BP_CUDA_NS::check {

// Mean milliseconds of `reps` calls of f on stream st, timed with CUDA events
template <class F>
double meanMs(F f, int reps, cudaStream_t st) {
  cudaEvent_t a, b;
  BP_CUDA(cudaEventCreate(&a));
  BP_CUDA(cudaEventCreate(&b));
  BP_CUDA(cudaEventRecord(a, st));
  for (int i = 0; i < reps; i++) f();
  BP_CUDA(cudaEventRecord(b, st));
  BP_CUDA(cudaEventSynchronize(b));
  float ms = 0.0f;
  BP_CUDA(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / reps;
}

// max |a - b| / max |b| over the elements where keep(i) holds
template <class Keep>
double relErr(const std::vector<float>& a, const std::vector<float>& b, Keep keep) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); i++) {
    if (!keep(i)) continue;
    num = std::max(num, (double)std::fabs(a[i] - b[i]));
    den = std::max(den, (double)std::fabs(b[i]));
  }
  return den > 0 ? num / den : num;
}
inline double relErr(const std::vector<float>& a, const std::vector<float>& b) {
  return relErr(a, b, [](size_t) { return true; });
}

}  // namespace bp::BP_CUDA_NS::check
