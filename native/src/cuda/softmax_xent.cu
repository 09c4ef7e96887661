// Tied output head + softmax cross-entropy over all V rows, in row chunks (padding rows take part in the
// softmax but are never targets). Per chunk: logits GEMM (bf16 logits in mixed-precision training, else fp32) ->
// one block per row computes max, log-sum-exp and the loss, and in training the dlogits (in place in fp32, into
// a bf16 gather buffer in mixed mode) -> two GEMMs give dx and dwte.
#include "layers.cuh"
#include "vec4.cuh"

namespace bp::BP_CUDA_NS {

__device__ float blockReduce(float v, bool isMax, float* sh) {
  v = isMax ? warpMax(v) : warpSum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float r = lane < warps ? sh[lane] : (isMax ? -INFINITY : 0.0f);
  r = isMax ? warpMax(r) : warpSum(r);
  return r;
}

// L16 (optional, training): dlogits go to L16 in bf16 instead of L (the bf16 dx/dwte GEMMs read only L16).
// online: max and sum of exponentials in one pass over the row (running max, rescaled sum), one read of the
// logits fewer; the bf16 mode uses it, fp32/TF32 keep the two-pass order their parity was measured with.
__global__ void xentKernel(float* L, const int32_t* targets, float* loss, int V, bool backward, float dscale,
                           half16* L16, bool online) {
  __shared__ float sh[32];
  const int r = blockIdx.x;
  float* row = L + (long)r * V;
  float mx = -INFINITY, sum = 0.0f;
  if (online) {
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
      const float x = row[j];
      if (x > mx) {
        sum = sum * __expf(mx - x) + 1.0f;
        mx = x;
      } else {
        sum += __expf(x - mx);
      }
    }
    const float m = blockReduce(mx, true, sh);
    sum = blockReduce(mx == -INFINITY ? 0.0f : sum * __expf(mx - m), false, sh);
    mx = m;
  } else {
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = blockReduce(mx, true, sh);
    for (int j = threadIdx.x; j < V; j += blockDim.x) sum += __expf(row[j] - mx);
    sum = blockReduce(sum, false, sh);
  }
  const int t = targets[r];
  const float lse = mx + __logf(sum);
  __syncthreads();
  if (threadIdx.x == 0) loss[r] = t >= 0 ? lse - row[t] : 0.0f;
  __syncthreads();
  if (!backward) return;
  const float inv = 1.0f / sum;
  half16* row16 = L16 ? L16 + (long)r * V : nullptr;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    const float g = t < 0 ? 0.0f : (__expf(row[j] - mx) * inv - (j == t ? 1.0f : 0.0f)) * dscale;
    if (row16)
      row16[j] = round16(g);
    else
      row[j] = g;
  }
}

// The bf16 mode's row kernel when a whole row fits in registers (V <= 4 * kXentThreads * kXentVecs, V % 4 == 0):
// the logits are read from memory once (four per load), max, sum and the dlogits all come from registers. Same
// results as the online kernel up to float summation order. Logit: float, or half16 where training wrote the
// logits in bf16 (half the bytes through DRAM twice: the product's store and this kernel's load).
constexpr int kXentThreads = 512, kXentVecs = 25;
__device__ __forceinline__ float widen(float x) { return x; }
__device__ __forceinline__ float widen(half16 x) { return widen16(x); }
template <class Logit>
__global__ void __launch_bounds__(kXentThreads) xentRegisterKernel(const Logit* L, const int32_t* targets,
                                                                     float* loss, int V, bool backward, float dscale,
                                                                     half16* L16) {
  __shared__ float sh[32];
  const int r = blockIdx.x, V4 = V / 4;
  const Logit* row = L + (long)r * V;
  float4 x[kXentVecs];
  float mx = -INFINITY;
#pragma unroll
  for (int k = 0; k < kXentVecs; k++) {
    const int i = threadIdx.x + k * kXentThreads;
    x[k] = i < V4 ? load4(row, i) : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
    mx = fmaxf(mx, fmaxf(fmaxf(x[k].x, x[k].y), fmaxf(x[k].z, x[k].w)));
  }
  mx = blockReduce(mx, true, sh);
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kXentVecs; k++)
    sum += __expf(x[k].x - mx) + __expf(x[k].y - mx) + __expf(x[k].z - mx) + __expf(x[k].w - mx);
  sum = blockReduce(sum, false, sh);
  const int t = targets[r];
  if (threadIdx.x == 0) loss[r] = t >= 0 ? mx + __logf(sum) - widen(row[t]) : 0.0f;
  if (!backward) return;
  const float inv = 1.0f / sum;
#pragma unroll
  for (int k = 0; k < kXentVecs; k++) {
    const int i = threadIdx.x + k * kXentThreads;
    if (i >= V4) break;
    float g[4] = {x[k].x, x[k].y, x[k].z, x[k].w};
#pragma unroll
    for (int e = 0; e < 4; e++)
      g[e] = t < 0 ? 0.0f : (__expf(g[e] - mx) * inv - (4 * i + e == t ? 1.0f : 0.0f)) * dscale;
    store4(L16 + (long)r * V, i, make_float4(g[0], g[1], g[2], g[3]));
  }
}

void headForwardBackward(const Blas& b, const HeadArgs& a) {
  const int N = a.N, d = a.d, V = a.V;
  const bool mixed = a.x16 != nullptr;
  const bool registerRows = mixed && V % 4 == 0 && V <= 4 * kXentThreads * kXentVecs;
  // Training (dlogits wanted, logits not) writes the logits in bf16 as well, as autocast does: the fp32 logits
  // are the largest tensor of a step, written once and read once.
  const bool logits16 = a.logits16 && registerRows && a.dx && !a.logitsHost;
  // (the bf16 logits take the first half of the fp32 chunk's scratch)
  half16* L16in = reinterpret_cast<half16*>(a.scratch);
  int g0 = 0;  // first row of the bf16 dlogits gathered in scratch16 and not yet multiplied out
  for (int r0 = 0; r0 < N; r0 += a.chunk) {
    const int n = std::min(a.chunk, N - r0);
    float* L = a.scratch;
    if (logits16)
      gemm16to16(b, false, true, n, V, d, a.x16 + (long)r0 * d, d, a.wte16, d, L16in, V);
    else if (mixed)
      gemm16(b, false, true, n, V, d, 1.0f, a.x16 + (long)r0 * d, d, a.wte16, d, 0.0f, L, V);
    else
      gemm(b, false, true, n, V, d, 1.0f, a.x + (long)r0 * d, d, a.wte, d, 0.0f, L, V);
    if (a.logitsHost) {
      BP_CUDA(cudaMemcpyAsync(a.logitsHost + (long)r0 * V, L, sizeof(float) * (long)n * V, cudaMemcpyDeviceToHost,
                              b.stream));
      BP_CUDA(cudaStreamSynchronize(b.stream));
    }
    if (!a.targets) continue;
    half16* L16 = mixed && a.dx ? a.scratch16 + (long)(r0 - g0) * V : nullptr;
    if (logits16)
      BP_LAUNCH(xentRegisterKernel<half16>, n, kXentThreads, 0, b.stream)
      (L16in, a.targets + r0, a.lossPerToken + r0, V, true, a.dscale, L16);
    else if (registerRows)
      BP_LAUNCH(xentRegisterKernel<float>, n, kXentThreads, 0, b.stream)
      (L, a.targets + r0, a.lossPerToken + r0, V, a.dx != nullptr, a.dscale, L16);
    else
      BP_LAUNCH(xentKernel, n, 512, 0, b.stream)
      (L, a.targets + r0, a.lossPerToken + r0, V, a.dx != nullptr, a.dscale, L16, mixed);
    BP_LAUNCHED();
    if (a.dx && mixed) {
      const int end = r0 + n, rows = end - g0;
      if (end < N && rows + a.chunk <= a.rows16) continue;  // room for the next chunk: keep gathering
      gemm16(b, false, false, rows, d, V, 1.0f, a.scratch16, V, a.wte16, d, 0.0f, a.dx + (long)g0 * d, d);
      gemm16(b, true, false, V, d, rows, 1.0f, a.scratch16, V, a.x16 + (long)g0 * d, d, 1.0f, a.dwte, d);
      g0 = end;
    } else if (a.dx) {
      gemm(b, false, false, n, d, V, 1.0f, L, V, a.wte, d, 0.0f, a.dx + (long)r0 * d, d);
      gemm(b, true, false, V, d, n, 1.0f, L, V, a.x + (long)r0 * d, d, 1.0f, a.dwte, d);
    }
  }
}

}  // namespace bp::BP_CUDA_NS
