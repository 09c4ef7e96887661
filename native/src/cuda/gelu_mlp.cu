// GELU, tanh approximation ("gelu_new"), and its derivative.
#include "layers.cuh"

namespace bp::cuda {

constexpr float kGeluScale = 0.7978845608028654f;

// bias (optional): x = inp + bias[i % OC] is written back to inp first.
__global__ void geluKernel(float* out, float* inp, long n, bf16* out16, const float* bias, int OC) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = inp[i];
  if (bias) {
    x += bias[i % OC];
    inp[i] = x;
  }
  const float y = 0.5f * x * (1.0f + tanhf(kGeluScale * (x + 0.044715f * x * x * x)));
  if (out) out[i] = y;
  if (out16) out16[i] = __float2bfloat16_rn(y);
}

__global__ void geluBackKernel(float* dinp, const float* inp, const float* dout, long n, bf16* dinp16) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = inp[i];
  float th = tanhf(kGeluScale * (x + 0.044715f * x * x * x));
  float sech2 = 1.0f - th * th;
  float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
  const float g = grad * dout[i];
  dinp[i] = g;
  if (dinp16) dinp16[i] = __float2bfloat16_rn(g);
}

void geluForward(float* out, const float* inp, long n, cudaStream_t st, bf16* out16) {
  if (n <= 0) return;
  geluKernel<<<blocksFor(n, 256), 256, 0, st>>>(out, const_cast<float*>(inp), n, out16, nullptr, 1);
  BP_LAUNCHED();
}

void biasGeluForward(float* out, float* pre, const float* bias, int OC, long n, cudaStream_t st, bf16* out16) {
  if (n <= 0) return;
  geluKernel<<<blocksFor(n, 256), 256, 0, st>>>(out, pre, n, out16, bias, OC);
  BP_LAUNCHED();
}

void geluBackward(float* dinp, const float* inp, const float* dout, long n, cudaStream_t st, bf16* dinp16) {
  if (n <= 0) return;
  geluBackKernel<<<blocksFor(n, 256), 256, 0, st>>>(dinp, inp, dout, n, dinp16);
  BP_LAUNCHED();
}

}  // namespace bp::cuda
