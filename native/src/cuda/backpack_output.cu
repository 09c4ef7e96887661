// Backpack output o_i = sum_l sum_{j<=i} alpha_l[i,j] C(x_j)_l. With alpha of a sequence laid out [i][(j,l)]
// and its sense vectors [(j,l)][d] (their natural [T][k*d] layout), the sum over positions AND senses is one
// GEMM of depth T*k. Weights exist one sequence at a time; the backward pass recomputes them.
#include "layers.cuh"

namespace bp::cuda {

__global__ void scaleSensesKernel(float* out, const float* senses, const float* scale, long total, int d) {
  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < total) out[i] = senses[i] * scale[i / d];
}

void scaleSenses(float* out, const float* senses, const float* scale, int N, int k, int d, cudaStream_t st) {
  long total = (long)N * k * d;
  if (total <= 0) return;
  scaleSensesKernel<<<blocksFor(total, 256), 256, 0, st>>>(out, senses, scale, total, d);
  BP_LAUNCHED();
}

void backpackForward(const Blas& b, float* out, float* lse, const float* qk, const float* senses, CtxShape s,
                     float* scratch, const AlphaEdit* edit, float* alphaOutHost) {
  const int T = s.T, d = s.d, k = s.k;
  const long kTT = (long)k * T * T, kd = (long)k * d;
  float* scores = scratch;
  float* alpha = scratch + kTT;
  for (int bi = 0; bi < s.B; bi++) {
    alphaSequence(b, alpha, lse, qk, bi, s, scores, edit);
    gemm(b, false, false, T, d, T * k, 1.0f, alpha, T * k, senses + (long)bi * T * kd, d, 0.0f, out + (long)bi * T * d,
         d);
    if (alphaOutHost) {
      alphaToHeadMajor(scores, alpha, s, b.stream);
      BP_CUDA(cudaMemcpyAsync(alphaOutHost + bi * kTT, scores, sizeof(float) * kTT, cudaMemcpyDeviceToHost, b.stream));
      BP_CUDA(cudaStreamSynchronize(b.stream));
    }
  }
}

void backpackBackward(const Blas& b, float* dqk, float* dsenses, const float* dout, const float* qk,
                      const float* senses, const float* lse, CtxShape s, float* scratch) {
  const int T = s.T, d = s.d, k = s.k;
  const long kTT = (long)k * T * T, kd = (long)k * d;
  float* scores = scratch;
  float* alpha = scratch + kTT;
  float* dalpha = scratch + 2 * kTT;
  float* dS = scratch + 3 * kTT;
  float* lseTmp = const_cast<float*>(lse);  // recomputation rewrites the same values
  for (int bi = 0; bi < s.B; bi++) {
    alphaSequence(b, alpha, lseTmp, qk, bi, s, scores, nullptr);
    const float* dO = dout + (long)bi * T * d;
    const float* C = senses + (long)bi * T * kd;
    // dalpha[T][T*k] = dO C^T ; dC[T*k][d] = alpha^T dO
    gemm(b, false, true, T, T * k, d, 1.0f, dO, d, C, d, 0.0f, dalpha, T * k);
    gemm(b, true, false, T * k, d, T, 1.0f, alpha, T * k, dO, d, 0.0f, dsenses + (long)bi * T * kd, d);
    alphaSequenceBackward(b, dqk, dalpha, qk, alpha, bi, s, dS);
  }
}

}  // namespace bp::cuda
