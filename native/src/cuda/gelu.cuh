// GELU, tanh approximation ("gelu_new"), and its derivative: shared by the activation kernels (gelu_mlp.cu) and
// the gradient preparation of the linear layer that follows one (linear.cu); on the host, the cuBLASLt probe.
#pragma once
#include <cuda_runtime.h>

#include <cmath>

#include "namespace.h"

namespace bp::BP_CUDA_NS {

constexpr float kGeluScale = 0.7978845608028654f;

__host__ __device__ __forceinline__ float geluValue(float x) {
  return 0.5f * x * (1.0f + tanhf(kGeluScale * (x + 0.044715f * x * x * x)));
}
__host__ __device__ __forceinline__ float geluGrad(float x) {
  const float th = tanhf(kGeluScale * (x + 0.044715f * x * x * x));
  const float sech2 = 1.0f - th * th;
  return 0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
}

}  // namespace bp::BP_CUDA_NS
