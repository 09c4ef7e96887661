// LayerNorm: one warp per row. Backward: dinp per row; dw/db summed per block in shared memory, then one
// atomic add per block and column.
#include <type_traits>

#include "layers.cuh"
#include "vec4.cuh"

namespace bp::BP_CUDA_NS {

// The vectorised kernels hold a row as VPL float4s per lane (C = 128 * VPL): calls f(integral_constant<VPL>) for
// the widths they are instantiated for, false for others.
template <class F>
static bool withFloat4sPerLane(int C, F&& f) {
  switch (C) {
    case 128: f(std::integral_constant<int, 1>{}); return true;
    case 256: f(std::integral_constant<int, 2>{}); return true;
    case 384: f(std::integral_constant<int, 3>{}); return true;
    case 512: f(std::integral_constant<int, 4>{}); return true;
    case 640: f(std::integral_constant<int, 5>{}); return true;
    case 768: f(std::integral_constant<int, 6>{}); return true;
    case 1024: f(std::integral_constant<int, 8>{}); return true;
    default: return false;
  }
}

__global__ void lnForwardKernel(float* out, float* mean, float* rstd, const float* inp, const float* w,
                                const float* b, int N, int C, float eps, half16* out16) {
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
  half16* o16 = out16 ? out16 + (long)row * C : nullptr;
  for (int c = lane; c < C; c += 32) {
    const float y = (x[c] - m) * r * w[c] + b[c];
    if (o) o[c] = y;
    if (o16) o16[c] = round16(y);
  }
  if (lane == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = r;
  }
}

// The same, vectorised (the bf16 mode): the row is read once into registers as float4s (lane l owns columns
// 4l + 128k), mean and variance come from registers. Same results up to float summation order.
template <int VPL>
__global__ void lnForwardVecKernel(float* out, float* mean, float* rstd, const float* inp, const float* w,
                                   const float* b, int N, float eps, half16* out16) {
  constexpr int C = 128 * VPL;
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float4* x4 = reinterpret_cast<const float4*>(inp + (long)row * C);
  float4 x[VPL];
  float s = 0.0f;
#pragma unroll
  for (int k = 0; k < VPL; k++) {
    x[k] = x4[lane + 32 * k];
    s += x[k].x + x[k].y + x[k].z + x[k].w;
  }
  const float m = warpSum(s) / C;
  float v = 0.0f;
#pragma unroll
  for (int k = 0; k < VPL; k++) {
    x[k] = make_float4(x[k].x - m, x[k].y - m, x[k].z - m, x[k].w - m);
    v += x[k].x * x[k].x + x[k].y * x[k].y + x[k].z * x[k].z + x[k].w * x[k].w;
  }
  const float r = rsqrtf(warpSum(v) / C + eps);
#pragma unroll
  for (int k = 0; k < VPL; k++) {
    const int c4 = lane + 32 * k;
    const float4 wk = reinterpret_cast<const float4*>(w)[c4], bk = reinterpret_cast<const float4*>(b)[c4];
    const float4 y = make_float4(x[k].x * r * wk.x + bk.x, x[k].y * r * wk.y + bk.y, x[k].z * r * wk.z + bk.z,
                                 x[k].w * r * wk.w + bk.w);
    if (out) reinterpret_cast<float4*>(out + (long)row * C)[c4] = y;
    if (out16) store4(out16 + (long)row * C, c4, y);
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
  BP_DYNAMIC_SHARED(float, sh);
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
  BP_DYNAMIC_SHARED(float, sh);
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

// Vectorised: one warp per row, lane l owning the float4 columns 4l + 128k (k < VPL), so a row's dout and input are
// read once into registers and a lane's weight/bias gradient partials stay in registers across its rows (it always
// sees the same columns); the 8 warps' partials meet in shared memory once per block. C = 128 * VPL.
constexpr int kLnVecWarps = 8, kLnVecRows = 32;
template <int VPL>
__global__ void __launch_bounds__(32 * kLnVecWarps) lnBackwardVecKernel(float* dinp, float* dw, float* db,
                                                                        const float* dout, const float* inp,
                                                                        const float* w, const float* mean,
                                                                        const float* rstd, int N) {
  constexpr int C = 128 * VPL;
  __shared__ float part[kLnVecWarps][C];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float4 wv[VPL], dwAcc[VPL], dbAcc[VPL];
#pragma unroll
  for (int k = 0; k < VPL; k++) {
    wv[k] = reinterpret_cast<const float4*>(w)[lane + 32 * k];
    dwAcc[k] = dbAcc[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  const int r0 = blockIdx.x * kLnVecRows;
  for (int row = r0 + warp; row < min(N, r0 + kLnVecRows); row += kLnVecWarps) {
    const float4* g4 = reinterpret_cast<const float4*>(dout + (long)row * C);
    const float4* x4 = reinterpret_cast<const float4*>(inp + (long)row * C);
    const float m = mean[row], s = rstd[row];
    float4 g[VPL], xn[VPL];
    float a = 0.0f, bsum = 0.0f;
#pragma unroll
    for (int k = 0; k < VPL; k++) {
      g[k] = g4[lane + 32 * k];
      const float4 x = x4[lane + 32 * k];
      xn[k] = make_float4((x.x - m) * s, (x.y - m) * s, (x.z - m) * s, (x.w - m) * s);
      const float4 dn = make_float4(wv[k].x * g[k].x, wv[k].y * g[k].y, wv[k].z * g[k].z, wv[k].w * g[k].w);
      a += dn.x + dn.y + dn.z + dn.w;
      bsum += dn.x * xn[k].x + dn.y * xn[k].y + dn.z * xn[k].z + dn.w * xn[k].w;
    }
    a = warpSum(a) / C;
    bsum = warpSum(bsum) / C;
    float4* dx4 = reinterpret_cast<float4*>(dinp + (long)row * C);
#pragma unroll
    for (int k = 0; k < VPL; k++) {
      float4 d = dx4[lane + 32 * k];
      d.x += (wv[k].x * g[k].x - a - xn[k].x * bsum) * s;
      d.y += (wv[k].y * g[k].y - a - xn[k].y * bsum) * s;
      d.z += (wv[k].z * g[k].z - a - xn[k].z * bsum) * s;
      d.w += (wv[k].w * g[k].w - a - xn[k].w * bsum) * s;
      dx4[lane + 32 * k] = d;
      dwAcc[k].x += xn[k].x * g[k].x;
      dwAcc[k].y += xn[k].y * g[k].y;
      dwAcc[k].z += xn[k].z * g[k].z;
      dwAcc[k].w += xn[k].w * g[k].w;
      dbAcc[k] = add4(dbAcc[k], g[k]);
    }
  }
  // dw, then db: each warp's partials into shared memory, summed per column, one atomic add per block
  for (int pass = 0; pass < 2; pass++) {
#pragma unroll
    for (int k = 0; k < VPL; k++) reinterpret_cast<float4*>(part[warp])[lane + 32 * k] = pass ? dbAcc[k] : dwAcc[k];
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < kLnVecWarps; k++) sum += part[k][c];
      atomicAdd(&(pass ? db : dw)[c], sum);
    }
    __syncthreads();
  }
}

template <int VPL>
static void launchLnBackwardVec(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                                const float* w, const float* mean, const float* rstd, int N, cudaStream_t st) {
  BP_LAUNCH(lnBackwardVecKernel<VPL>, blocksFor(N, kLnVecRows), 32 * kLnVecWarps, 0, st)
  (dinp, dw, db, dout, inp, w, mean, rstd, N);
}

void layernormForward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                      int C, float eps, cudaStream_t st, half16* out16, bool vectorized) {
  if (N <= 0) return;
  if (vectorized && aligned4(out) && aligned4(inp) && aligned4(w) && aligned4(b) &&
      reinterpret_cast<uintptr_t>(out16) % 8 == 0 && withFloat4sPerLane(C, [&](auto vpl) {
        BP_LAUNCH(lnForwardVecKernel<decltype(vpl)::value>, blocksFor(N, 8), 256, 0, st)
        (out, mean, rstd, inp, w, b, N, eps, out16);
      })) {
    BP_LAUNCHED();
    return;
  }
  BP_LAUNCH(lnForwardKernel, blocksFor(N, 8), 256, 0, st)(out, mean, rstd, inp, w, b, N, C, eps, out16);
  BP_LAUNCHED();
}

void layernormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                       const float* mean, const float* rstd, int N, int C, cudaStream_t st, LnBackward kind) {
  if (N <= 0) return;
  if (kind == LnBackward::Vectorized && aligned4(dinp) && aligned4(dout) && aligned4(inp) && aligned4(w) &&
      withFloat4sPerLane(C, [&](auto vpl) {
        launchLnBackwardVec<decltype(vpl)::value>(dinp, dw, db, dout, inp, w, mean, rstd, N, st);
      })) {
    BP_LAUNCHED();
    return;
  }
  // other widths: the per-warp kernel below
  const size_t privateBytes = 2 * kLn2Warps * C * sizeof(float);
  if (kind != LnBackward::SharedAtomics && privateBytes <= 48 * 1024) {
    BP_LAUNCH(lnBackwardPrivateKernel, blocksFor(N, kLn2Rows), 32 * kLn2Warps, privateBytes, st)
    (dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    BP_LAUNCHED();
    return;
  }
  BP_LAUNCH(lnBackwardKernel, blocksFor(N, kLnRowsPerBlock), 256, 2 * C * sizeof(float), st)
  (dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  BP_LAUNCHED();
}

}  // namespace bp::BP_CUDA_NS
