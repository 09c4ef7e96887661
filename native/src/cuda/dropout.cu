// Inverted dropout with the CPU backend's counter-based masks (element i of a site kept when uniform >= p).
#include "layers.cuh"

namespace bp::cuda {

__global__ void dropoutKernel(float* dst, const float* src, long n, float p, uint32_t key) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = src[i] * dkeep(p, key, (uint32_t)i);
}

__global__ void residualKernel(float* out, const float* base, const float* branch, long n, float p, uint32_t key) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = base[i] + branch[i] * dkeep(p, key, (uint32_t)i);
}

__global__ void biasResidualKernel(float* out, const float* base, const float* branch, const float* bias, int OC, long n,
                                   float p, uint32_t key) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float b = branch[i] + bias[i % OC];
  out[i] = base[i] + b * dkeep(p, key, (uint32_t)i);
}

void dropoutCopy(float* dst, const float* src, long n, Site s, cudaStream_t st) {
  if (s.p <= 0.0f) {
    if (dst != src) BP_CUDA(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToDevice, st));
    return;
  }
  dropoutKernel<<<blocksFor(n, 256), 256, 0, st>>>(dst, src, n, s.p, s.key);
  BP_LAUNCHED();
}

void dropoutForward(float* x, long n, Site s, cudaStream_t st) { dropoutCopy(x, x, n, s, st); }

void residualDropoutForward(float* out, const float* base, const float* branch, long n, Site s, cudaStream_t st) {
  residualKernel<<<blocksFor(n, 256), 256, 0, st>>>(out, base, branch, n, s.p, s.key);
  BP_LAUNCHED();
}

void biasResidualDropoutForward(float* out, const float* base, const float* branch, const float* bias, int OC, long n,
                                Site s, cudaStream_t st) {
  if (n <= 0) return;
  biasResidualKernel<<<blocksFor(n, 256), 256, 0, st>>>(out, base, branch, bias, OC, n, s.p, s.key);
  BP_LAUNCHED();
}

}  // namespace bp::cuda
