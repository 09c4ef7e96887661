// AdamW over one tensor (decoupled weight decay, bias-corrected; c1/c2 = 1 - beta^step) and the reductions
// behind global-norm clipping.
#include <algorithm>

#include "layers.cuh"

namespace bp::cuda {

__device__ __forceinline__ void adamwElement(float* p, const float* g, float* m, float* v, long i, float lr, float b1,
                                             float b2, float eps, float wd, float c1, float c2, bf16* p16) {
  float gi = g[i];
  float mi = b1 * m[i] + (1.0f - b1) * gi;
  float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  float mhat = mi / c1, vhat = vi / c2;
  const float pn = p[i] - lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
  p[i] = pn;
  if (p16) p16[i] = __float2bfloat16_rn(pn);
}

__global__ void adamwKernel(float* p, const float* g, float* m, float* v, long n, float lr, float b1, float b2,
                            float eps, float wd, float c1, float c2, bf16* p16) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  adamwElement(p, g, m, v, i, lr, b1, b2, eps, wd, c1, c2, p16);
}

__global__ void adamwAllKernel(float* p, const float* g, float* m, float* v, const AdamBlock* blocks, float lr,
                               float b1, float b2, float eps, float wd, float c1, float c2, bf16* p16) {
  const AdamBlock blk = blocks[blockIdx.x];
  const float w = blk.decay ? wd : 0.0f;
  for (long i = blk.start + threadIdx.x; i < blk.end; i += blockDim.x)
    adamwElement(p, g, m, v, i, lr, b1, b2, eps, w, c1, c2, p16);
}

void adamwPlan(std::vector<AdamBlock>& out, const long* offsets, const long* sizes, const bool* decay, int count) {
  out.clear();
  for (int t = 0; t < count; t++)
    for (long s = 0; s < sizes[t]; s += kAdamBlockElems)
      out.push_back(AdamBlock{offsets[t] + s, offsets[t] + std::min(sizes[t], s + kAdamBlockElems), decay[t] ? 1 : 0});
}

void adamwAll(float* p, const float* g, float* m, float* v, const AdamBlock* blocks, int nblocks, float lr, float b1,
              float b2, float eps, float wd, float c1, float c2, cudaStream_t st, bf16* p16) {
  if (nblocks <= 0) return;
  adamwAllKernel<<<nblocks, 256, 0, st>>>(p, g, m, v, blocks, lr, b1, b2, eps, wd, c1, c2, p16);
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

__global__ void scaleKernel(float* x, long n, float s) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= s;
}

__global__ void fillKernel(float* x, long n, float v) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = v;
}

void adamw(float* p, const float* g, float* m, float* v, long n, float lr, float b1, float b2, float eps, float wd,
           float c1, float c2, cudaStream_t st, bf16* p16) {
  if (n <= 0) return;
  adamwKernel<<<blocksFor(n, 256), 256, 0, st>>>(p, g, m, v, n, lr, b1, b2, eps, wd, c1, c2, p16);
  BP_LAUNCHED();
}

void sumSquares(double* acc, const float* x, long n, cudaStream_t st) {
  if (n <= 0) return;
  unsigned blocks = blocksFor(n, 256);
  if (blocks > 1024) blocks = 1024;
  sumSquaresKernel<<<blocks, 256, 0, st>>>(acc, x, n);
  BP_LAUNCHED();
}

void scale(float* x, long n, float s, cudaStream_t st) {
  if (n <= 0) return;
  scaleKernel<<<blocksFor(n, 256), 256, 0, st>>>(x, n, s);
  BP_LAUNCHED();
}

void fill(float* x, long n, float v, cudaStream_t st) {
  if (n <= 0) return;
  fillKernel<<<blocksFor(n, 256), 256, 0, st>>>(x, n, v);
  BP_LAUNCHED();
}

}  // namespace bp::cuda
