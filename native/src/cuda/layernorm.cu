// LayerNorm: one warp per row. Backward: dinp per row; dw/db summed per block in shared memory, then one
// atomic add per block and column.
#include "layers.cuh"

namespace bp::cuda {

__global__ void lnForwardKernel(float* out, float* mean, float* rstd, const float* inp, const float* w,
                                const float* b, int N, int C, float eps, bf16* out16) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* x = inp + (long)row * C;
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += x[c];
  float m = warpSum(s) / C;
  float v = 0.0f;
  for (int c = lane; c < C; c += 32) {
    float t = x[c] - m;
    v += t * t;
  }
  float r = rsqrtf(warpSum(v) / C + eps);
  float* o = out ? out + (long)row * C : nullptr;
  bf16* o16 = out16 ? out16 + (long)row * C : nullptr;
  for (int c = lane; c < C; c += 32) {
    const float y = (x[c] - m) * r * w[c] + b[c];
    if (o) o[c] = y;
    if (o16) o16[c] = __float2bfloat16_rn(y);
  }
  if (lane == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = r;
  }
}

constexpr int kLnRowsPerBlock = 32;

// blockDim = 256 (8 warps); each block handles kLnRowsPerBlock rows; shared: 2*C floats.
__global__ void lnBackwardKernel(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                                 const float* w, const float* mean, const float* rstd, int N, int C) {
  extern __shared__ float sh[];
  float* sdw = sh;
  float* sdb = sh + C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) sdw[c] = sdb[c] = 0.0f;
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const int r0 = blockIdx.x * kLnRowsPerBlock;
  for (int row = r0 + warp; row < min(N, r0 + kLnRowsPerBlock); row += warps) {
    const float* g = dout + (long)row * C;
    const float* x = inp + (long)row * C;
    float m = mean[row], s = rstd[row];
    float a = 0.0f, bsum = 0.0f;
    for (int c = lane; c < C; c += 32) {
      float norm = (x[c] - m) * s, dn = w[c] * g[c];
      a += dn;
      bsum += dn * norm;
    }
    a = warpSum(a) / C;
    bsum = warpSum(bsum) / C;
    float* dx = dinp + (long)row * C;
    for (int c = lane; c < C; c += 32) {
      float norm = (x[c] - m) * s, dn = w[c] * g[c];
      dx[c] += (dn - a - norm * bsum) * s;
      atomicAdd(&sdw[c], norm * g[c]);
      atomicAdd(&sdb[c], g[c]);
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    atomicAdd(&dw[c], sdw[c]);
    atomicAdd(&db[c], sdb[c]);
  }
}

// Per-warp partial sums: warp w of a block owns rows sdw[w][:], sdb[w][:] of shared memory, so the per-element
// accumulation needs no atomics (a lane always touches the same columns); the warps' rows are added at the end
// and go to global memory with one atomic add per column and block. shared: 2 * kLn2Warps * C floats.
constexpr int kLn2Warps = 4, kLn2Rows = 16;
__global__ void lnBackwardPrivateKernel(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                                        const float* w, const float* mean, const float* rstd, int N, int C) {
  extern __shared__ float sh[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* sdw = sh + (long)warp * C;
  float* sdb = sh + (long)(kLn2Warps + warp) * C;
  for (int c = lane; c < C; c += 32) sdw[c] = sdb[c] = 0.0f;
  const int r0 = blockIdx.x * kLn2Rows;
  for (int row = r0 + warp; row < min(N, r0 + kLn2Rows); row += kLn2Warps) {
    const float* g = dout + (long)row * C;
    const float* x = inp + (long)row * C;
    float m = mean[row], s = rstd[row];
    float a = 0.0f, bsum = 0.0f;
    for (int c = lane; c < C; c += 32) {
      float norm = (x[c] - m) * s, dn = w[c] * g[c];
      a += dn;
      bsum += dn * norm;
    }
    a = warpSum(a) / C;
    bsum = warpSum(bsum) / C;
    float* dx = dinp + (long)row * C;
    for (int c = lane; c < C; c += 32) {
      float norm = (x[c] - m) * s, dn = w[c] * g[c];
      dx[c] += (dn - a - norm * bsum) * s;
      sdw[c] += norm * g[c];
      sdb[c] += g[c];
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float sw = 0.0f, sb = 0.0f;
    for (int k = 0; k < kLn2Warps; k++) {
      sw += sh[(long)k * C + c];
      sb += sh[(long)(kLn2Warps + k) * C + c];
    }
    atomicAdd(&dw[c], sw);
    atomicAdd(&db[c], sb);
  }
}

void layernormForward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                      int C, float eps, cudaStream_t st, bf16* out16) {
  if (N <= 0) return;
  lnForwardKernel<<<blocksFor(N, 8), 256, 0, st>>>(out, mean, rstd, inp, w, b, N, C, eps, out16);
  BP_LAUNCHED();
}

void layernormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                       const float* mean, const float* rstd, int N, int C, cudaStream_t st, bool privateSums) {
  if (N <= 0) return;
  const size_t privateBytes = 2 * kLn2Warps * C * sizeof(float);
  if (privateSums && privateBytes <= 48 * 1024) {
    lnBackwardPrivateKernel<<<blocksFor(N, kLn2Rows), 32 * kLn2Warps, privateBytes, st>>>(dinp, dw, db, dout, inp, w,
                                                                                         mean, rstd, N, C);
    BP_LAUNCHED();
    return;
  }
  lnBackwardKernel<<<blocksFor(N, kLnRowsPerBlock), 256, 2 * C * sizeof(float), st>>>(dinp, dw, db, dout, inp, w,
                                                                                       mean, rstd, N, C);
  BP_LAUNCHED();
}

}  // namespace bp::cuda
