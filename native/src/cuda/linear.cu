// Fully connected layer y = x W^T + b (W [OC][IC]). fp32/TF32: the bias gradient is a GEMV against a ones vector;
// bf16: it is summed in the pass that prepares the output gradient (prepareGrad16).
#include "gelu.cuh"
#include "layers.cuh"
#include "vec4.cuh"

namespace bp::BP_CUDA_NS {

__global__ void addBiasKernel(float* out, const float* bias, long total, int OC, half16* out16, bool keepFp32) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const float y = out[i] + bias[i % OC];
  if (keepFp32) out[i] = y;
  if (out16) out16[i] = round16(y);
}

__global__ void addBiasKernel4(float4* out, const float4* bias, int n4, int OC4, half16* out16, bool keepFp32) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 y = add4(out[i], bias[i % OC4]);
  if (keepFp32) out[i] = y;
  if (out16) store4(out16, i, y);
}

void addBias(float* out, const float* bias, int N, int OC, cudaStream_t st, half16* out16, bool keepFp32) {
  long total = (long)N * OC;
  if (total <= 0) return;
  if (vec4Fits(total, OC) && aligned4(out) && aligned4(bias) && aligned4(out16)) {
    const int n4 = (int)(total / 4);
    BP_LAUNCH(addBiasKernel4, blocksFor(n4, 256), 256, 0, st)
    (reinterpret_cast<float4*>(out), reinterpret_cast<const float4*>(bias), n4, OC / 4, out16, keepFp32);
  } else {
    BP_LAUNCH(addBiasKernel, blocksFor(total, 256), 256, 0, st)(out, bias, total, OC, out16, keepFp32);
  }
  BP_LAUNCHED();
}

void linearForward(const Blas& b, float* out, const float* inp, const float* w, const float* bias, int N, int IC,
                   int OC) {
  gemm(b, false, true, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
  if (bias) addBias(out, bias, N, OC, b.stream);
}

void linearBackward(const Blas& b, float* dinp, float* dw, float* db, const float* dout, const float* inp,
                    const float* w, int N, int IC, int OC, bool accumulate, const float* ones) {
  if (dinp) gemm(b, false, false, N, IC, OC, 1.0f, dout, OC, w, IC, accumulate ? 1.0f : 0.0f, dinp, IC);
  gemm(b, true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
  // db[1][OC] += ones[1][N] . dout[N][OC]
  if (db) gemm(b, false, false, 1, OC, N, 1.0f, ones, N, dout, OC, 1.0f, db, OC);
}

void linearForward16(const Blas& b, float* out, const half16* inp16, const half16* w16, const float* bias, int N,
                     int IC, int OC) {
  gemm16(b, false, true, N, OC, IC, 1.0f, inp16, IC, w16, IC, 0.0f, out, OC);
  if (bias) addBias(out, bias, N, OC, b.stream);
}

// prepareGrad16: a block is 32 x 8 threads over VW * 32 columns (VW per thread: one coalesced row segment per
// warp) and kGradRows rows, 8 row lanes each summing every 8th row; one atomic add per column and block.
constexpr int kGradRows = 64;

// g = f(src) at element i (row-major index into [N][OC])
__device__ __forceinline__ float gradAt(const float* src, long i, float p, uint32_t key, uint32_t off,
                                        const float* geluPre, const half16* geluPre16) {
  const float x = src[i];
  if (geluPre) return geluGrad(geluPre[i]) * x;
  if (geluPre16) return geluGrad(widen16(geluPre16[i])) * x;
  return p > 0.0f ? x * dkeep(p, key, off + (uint32_t)i) : x;
}

// Four bf16 at p (8-byte aligned) as floats
__device__ __forceinline__ float4 load16x4(const half16* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const float2 lo = widen16x2(*reinterpret_cast<const half16x2*>(&u.x));
  const float2 hi = widen16x2(*reinterpret_cast<const half16x2*>(&u.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}

// GELU's input at elements i..i+3, from fp32 or (the fused-epilogue layers) bf16
__device__ __forceinline__ float4 geluPre4(const float* pre, const half16* pre16, long i) {
  return pre ? *reinterpret_cast<const float4*>(pre + i) : load16x4(pre16 + i);
}

// Adds a block's column totals into db (see prepareGrad16's layout): sum[e] is this thread's partial of column
// (blockIdx.x * 32 + threadIdx.x) * VW + e over its rows; one atomic add per column and block.
template <int VW>
__device__ __forceinline__ void addColumnSums(float* db, const float (&sum)[VW], int OC) {
  __shared__ float part[8][32 * VW + 1];
#pragma unroll
  for (int e = 0; e < VW; e++) part[threadIdx.y][threadIdx.x * VW + e] = sum[e];
  __syncthreads();
  // 32*VW column totals, one thread each (threads of row lanes 0..VW-1)
  const int col = threadIdx.y * 32 + threadIdx.x, c = blockIdx.x * 32 * VW + col;
  if (col < 32 * VW && c < OC) {
    float t = 0.0f;
    for (int y = 0; y < 8; y++) t += part[y][col];
    atomicAdd(&db[c], t);
  }
}

// One block of prepareGrad16's layout: visit(i, sum) for the element index i = r * OC + c0 of each of this
// thread's rows r (c0: its first column; sum: its VW column partials), then the column sums into db (when set).
template <int VW, class Visit>
__device__ __forceinline__ void columnBlock(float* db, int N, int OC, Visit visit) {
  const int c0 = (blockIdx.x * 32 + threadIdx.x) * VW;
  const int r0 = blockIdx.y * kGradRows, r1 = min(N, r0 + kGradRows);
  float sum[VW] = {};
  if (c0 < OC) {
#pragma unroll 4
    for (int r = r0 + threadIdx.y; r < r1; r += 8) visit((long)r * OC + c0, sum);
  }
  if (db) addColumnSums<VW>(db, sum, OC);
}

template <int VW>
__global__ void prepareGradKernel(half16* dout16, float* db, const float* src, int N, int OC, float p, uint32_t key,
                                  uint32_t off, const float* geluPre, const half16* geluPre16) {
  columnBlock<VW>(db, N, OC, [&](long i, float(&sum)[VW]) {
    float g[VW];
    if constexpr (VW == 4) {  // whole float4s: OC % 4 == 0 and aligned rows
      const float4 x = *reinterpret_cast<const float4*>(src + i);
      g[0] = x.x, g[1] = x.y, g[2] = x.z, g[3] = x.w;
      if (geluPre || geluPre16) {
        const float4 z = geluPre4(geluPre, geluPre16, i);
        g[0] *= geluGrad(z.x), g[1] *= geluGrad(z.y), g[2] *= geluGrad(z.z), g[3] *= geluGrad(z.w);
      } else if (p > 0.0f) {
#pragma unroll
        for (int e = 0; e < 4; e++) g[e] *= dkeep(p, key, off + (uint32_t)(i + e));
      }
      store4(dout16 + i, 0, make_float4(g[0], g[1], g[2], g[3]));
    } else {
      g[0] = gradAt(src, i, p, key, off, geluPre, geluPre16);
      dout16[i] = round16(g[0]);
    }
#pragma unroll
    for (int e = 0; e < VW; e++) sum[e] += g[e];
  });
}

// The bias gradient from an output gradient its producer already wrote in bf16: db[c] += sum_r g[r][c].
template <int VW>
__global__ void biasGradKernel(float* db, const half16* g, int N, int OC) {
  columnBlock<VW>(db, N, OC, [&](long i, float(&sum)[VW]) {
    if constexpr (VW == 4) {
      const float4 x = load16x4(g + i);
      sum[0] += x.x, sum[1] += x.y, sum[2] += x.z, sum[3] += x.w;
    } else {
      sum[0] += widen16(g[i]);
    }
  });
}

void biasGradFrom16(float* db, const half16* g, int N, int OC, cudaStream_t st) {
  if (N <= 0 || OC <= 0) return;
  const dim3 block(32, 8);
  const int rowBlocks = (N + kGradRows - 1) / kGradRows;
  if (OC % 4 == 0 && reinterpret_cast<uintptr_t>(g) % 8 == 0)
    BP_LAUNCH(biasGradKernel<4>, dim3((OC + 127) / 128, rowBlocks), block, 0, st)(db, g, N, OC);
  else
    BP_LAUNCH(biasGradKernel<1>, dim3((OC + 31) / 32, rowBlocks), block, 0, st)(db, g, N, OC);
  BP_LAUNCHED();
}

void prepareGrad16(half16* dout16, float* db, const float* src, int N, int OC, Site drop, const float* geluPre,
                   const half16* geluPre16, cudaStream_t st) {
  if (N <= 0 || OC <= 0) return;
  const dim3 block(32, 8);
  const int rowBlocks = (N + kGradRows - 1) / kGradRows;
  const bool vec = vec4Fits((long)N * OC, OC) && aligned4(src) && aligned4(geluPre) &&
                   reinterpret_cast<uintptr_t>(geluPre16) % 8 == 0 && reinterpret_cast<uintptr_t>(dout16) % 8 == 0;
  if (vec) {
    BP_LAUNCH(prepareGradKernel<4>, dim3((OC + 127) / 128, rowBlocks), block, 0, st)
    (dout16, db, src, N, OC, drop.p, drop.key, drop.offset, geluPre, geluPre16);
  } else {
    BP_LAUNCH(prepareGradKernel<1>, dim3((OC + 31) / 32, rowBlocks), block, 0, st)
    (dout16, db, src, N, OC, drop.p, drop.key, drop.offset, geluPre, geluPre16);
  }
  BP_LAUNCHED();
}

void linearBackward16(const Blas& b, float* dinp, float* dw, const half16* dout16, const half16* inp16,
                      const half16* w16, int N, int IC, int OC, bool accumulate) {
  if (dinp) gemm16(b, false, false, N, IC, OC, 1.0f, dout16, OC, w16, IC, accumulate ? 1.0f : 0.0f, dinp, IC);
  gemm16(b, true, false, OC, IC, N, 1.0f, dout16, OC, inp16, IC, 1.0f, dw, IC);
}

}  // namespace bp::BP_CUDA_NS
