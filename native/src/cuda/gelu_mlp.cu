// GELU activation kernels (forward with the fc layer's bias add fused, and the fp32/TF32 modes' backward; the
// bf16 mode's backward is fused into the gradient preparation of linear.cu).
#include "gelu.cuh"
#include "layers.cuh"
#include "vec4.cuh"

namespace bp::BP_CUDA_NS {

// bias (optional): x = inp + bias[i % OC] is written back to inp first.
__global__ void geluKernel(float* out, float* inp, long n, half16* out16, const float* bias, int OC) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = inp[i];
  if (bias) {
    x += bias[i % OC];
    inp[i] = x;
  }
  const float y = geluValue(x);
  if (out) out[i] = y;
  if (out16) out16[i] = round16(y);
}

// The same, four elements per thread (see vec4.cuh): the bias column in 32-bit arithmetic, 16-byte accesses.
__global__ void geluKernel4(float4* out, float4* inp, int n4, half16* out16, const float4* bias, int OC4) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  float4 x = inp[i];
  if (bias) {
    x = add4(x, bias[i % OC4]);
    inp[i] = x;
  }
  const float4 y = make_float4(geluValue(x.x), geluValue(x.y), geluValue(x.z), geluValue(x.w));
  if (out) out[i] = y;
  if (out16) store4(out16, i, y);
}

__global__ void geluBackKernel(float* dinp, const float* inp, const float* dout, long n) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dinp[i] = geluGrad(inp[i]) * dout[i];
}

__global__ void geluBackKernel4(float4* dinp, const float4* inp, const float4* dout, int n4) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 x = inp[i], d = dout[i];
  dinp[i] = make_float4(geluGrad(x.x) * d.x, geluGrad(x.y) * d.y, geluGrad(x.z) * d.z, geluGrad(x.w) * d.w);
}

void geluForward(float* out, const float* inp, long n, cudaStream_t st, half16* out16) {
  if (n <= 0) return;
  BP_LAUNCH(geluKernel, blocksFor(n, 256), 256, 0, st)(out, const_cast<float*>(inp), n, out16, nullptr, 1);
  BP_LAUNCHED();
}

void biasGeluForward(float* out, float* pre, const float* bias, int OC, long n, cudaStream_t st, half16* out16) {
  if (n <= 0) return;
  if (vec4Fits(n, OC) && aligned4(out) && aligned4(pre) && aligned4(bias) && aligned4(out16)) {
    const int n4 = (int)(n / 4);
    BP_LAUNCH(geluKernel4, blocksFor(n4, 256), 256, 0, st)
    (reinterpret_cast<float4*>(out), reinterpret_cast<float4*>(pre), n4, out16, reinterpret_cast<const float4*>(bias),
     OC / 4);
  } else {
    BP_LAUNCH(geluKernel, blocksFor(n, 256), 256, 0, st)(out, pre, n, out16, bias, OC);
  }
  BP_LAUNCHED();
}

void geluBackward(float* dinp, const float* inp, const float* dout, long n, cudaStream_t st) {
  if (n <= 0) return;
  if (vec4Fits(n, 4) && aligned4(dinp) && aligned4(inp) && aligned4(dout)) {
    const int n4 = (int)(n / 4);
    BP_LAUNCH(geluBackKernel4, blocksFor(n4, 256), 256, 0, st)
    (reinterpret_cast<float4*>(dinp), reinterpret_cast<const float4*>(inp), reinterpret_cast<const float4*>(dout), n4);
  } else {
    BP_LAUNCH(geluBackKernel, blocksFor(n, 256), 256, 0, st)(dinp, inp, dout, n);
  }
  BP_LAUNCHED();
}

}  // namespace bp::BP_CUDA_NS
