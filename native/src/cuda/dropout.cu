// Inverted dropout with the CPU backend's counter-based masks (element i of a site kept when uniform >= p).
#include "layers.cuh"
#include "vec4.cuh"

namespace bp::BP_CUDA_NS {

// out = base + (branch + bias[i % OC]) * keep(i); bias and base optional (null: none)
__global__ void biasResidualKernel(float* out, const float* base, const float* branch, const float* bias, int OC,
                                   long n, float p, uint32_t key, uint32_t off) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float b = bias ? branch[i] + bias[i % OC] : branch[i];
  const float kept = b * dkeep(p, key, off + (uint32_t)i);
  out[i] = base ? base[i] + kept : kept;
}

// The same four elements per thread (see vec4.cuh); the keep of element 4*i4 + e as in the scalar kernels.
__device__ __forceinline__ float4 keep4(float4 v, float p, uint32_t key, uint32_t i0) {
  return make_float4(v.x * dkeep(p, key, i0), v.y * dkeep(p, key, i0 + 1), v.z * dkeep(p, key, i0 + 2),
                     v.w * dkeep(p, key, i0 + 3));
}
__global__ void biasResidualKernel4(float4* out, const float4* base, const float4* branch, const float4* bias, int OC4,
                                    int n4, float p, uint32_t key, uint32_t off) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 b = bias ? add4(branch[i], bias[i % OC4]) : branch[i];
  const float4 kept = keep4(b, p, key, off + 4u * (uint32_t)i);
  out[i] = base ? add4(base[i], kept) : kept;
}

// out = base + (branch [+ bias]) * keep, vectorised where the shapes and pointers allow
static void launchBiasResidual(float* out, const float* base, const float* branch, const float* bias, int OC, long n,
                               Site s, cudaStream_t st) {
  if (n <= 0) return;
  if (vec4Fits(n, OC) && aligned4(out) && aligned4(base) && aligned4(branch) && aligned4(bias)) {
    const int n4 = (int)(n / 4);
    BP_LAUNCH(biasResidualKernel4, blocksFor(n4, 256), 256, 0, st)
    (reinterpret_cast<float4*>(out), reinterpret_cast<const float4*>(base), reinterpret_cast<const float4*>(branch),
     reinterpret_cast<const float4*>(bias), OC / 4, n4, s.p, s.key, s.offset);
  } else {
    BP_LAUNCH(biasResidualKernel, blocksFor(n, 256), 256, 0, st)(out, base, branch, bias, OC, n, s.p, s.key, s.offset);
  }
  BP_LAUNCHED();
}

void dropoutCopy(float* dst, const float* src, long n, Site s, cudaStream_t st) {
  if (s.p <= 0.0f) {
    if (dst != src) BP_CUDA(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToDevice, st));
    return;
  }
  launchBiasResidual(dst, nullptr, src, nullptr, 4, n, s, st);
}

void dropoutForward(float* x, long n, Site s, cudaStream_t st) { dropoutCopy(x, x, n, s, st); }

void residualDropoutForward(float* out, const float* base, const float* branch, long n, Site s, cudaStream_t st) {
  launchBiasResidual(out, base, branch, nullptr, 4, n, s, st);
}

void biasResidualDropoutForward(float* out, const float* base, const float* branch, const float* bias, int OC, long n,
                                Site s, cudaStream_t st) {
  launchBiasResidual(out, base, branch, bias, OC, n, s, st);
}

}  // namespace bp::BP_CUDA_NS
