// AdamW over every tensor in one launch (decoupled weight decay, bias-corrected; c1/c2 = 1 - beta^step) and the
// reduction behind global-norm clipping. The clipping factor gs is applied inside the update (and written back to the
// gradient, as the CPU backend's in-place scaling leaves it) instead of in a pass of its own.
#include <algorithm>

#include "layers.cuh"

namespace bp::BP_CUDA_NS {

__device__ __forceinline__ void adamwElement(float* p, float* g, float* m, float* v, long i, float lr, float b1,
                                             float b2, float eps, float wd, float c1, float c2, half16* p16, float gs) {
  float gi = g[i];
  if (gs != 1.0f) {
    gi *= gs;
    g[i] = gi;
  }
  float mi = b1 * m[i] + (1.0f - b1) * gi;
  float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  float mhat = mi / c1, vhat = vi / c2;
  const float pn = p[i] - lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
  p[i] = pn;
  if (p16) p16[i] = round16(pn);
}

__global__ void adamwAllKernel(float* p, float* g, float* m, float* v, const AdamBlock* blocks, float lr, float b1,
                               float b2, float eps, float wd, float c1, float c2, half16* p16, float gs) {
  const AdamBlock blk = blocks[blockIdx.x];
  const float w = blk.decay ? wd : 0.0f;
  for (long i = blk.start + threadIdx.x; i < blk.end; i += blockDim.x)
    adamwElement(p, g, m, v, i, lr, b1, b2, eps, w, c1, c2, p16, gs);
}

void adamwPlan(std::vector<AdamBlock>& out, const long* offsets, const long* sizes, const bool* decay, int count) {
  out.clear();
  for (int t = 0; t < count; t++)
    for (long s = 0; s < sizes[t]; s += kAdamBlockElems)
      out.push_back(AdamBlock{offsets[t] + s, offsets[t] + std::min(sizes[t], s + kAdamBlockElems), decay[t] ? 1 : 0});
}

void adamwAll(float* p, float* g, float* m, float* v, const AdamBlock* blocks, int nblocks, float lr, float b1,
              float b2, float eps, float wd, float c1, float c2, cudaStream_t st, half16* p16, float gradScale) {
  if (nblocks <= 0) return;
  BP_LAUNCH(adamwAllKernel, nblocks, 256, 0, st)(p, g, m, v, blocks, lr, b1, b2, eps, wd, c1, c2, p16, gradScale);
  BP_LAUNCHED();
}

__global__ void sumSquaresKernel(double* acc, const float* x, long n) {
  double s = 0.0;
  for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
    s += (double)x[i] * x[i];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  __shared__ double part[32];
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int w = 0; w < (int)blockDim.x / 32; w++) t += part[w];
    atomicAdd(acc, t);
  }
}

void sumSquares(double* acc, const float* x, long n, cudaStream_t st) {
  if (n <= 0) return;
  unsigned blocks = blocksFor(n, 256);
  if (blocks > 1024) blocks = 1024;
  BP_LAUNCH(sumSquaresKernel, blocks, 256, 0, st)(acc, x, n);
  BP_LAUNCHED();
}

}  // namespace bp::BP_CUDA_NS
