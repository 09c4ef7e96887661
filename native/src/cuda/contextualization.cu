// Backpack contextualization weights alpha_l = causal softmax(Q_l K_l^T / sqrt(d/k)), one sequence at a time.
// Alpha is written in the mixing layout [i][j][l] so the output is a single GEMM against the sense vectors
// viewed as [(j,l)][d] (see backpack_output.cu).
#include "layers.cuh"

namespace bp::cuda {

// Rows (l, i): scores [l][i][j] -> alpha[(i*T + j)*k + l], lse[l][i].
__global__ void alphaSoftmaxKernel(float* alpha, float* lse, const float* S, int k, int T, AlphaEdit edit,
                                   const uint8_t* keyMask) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= k * T) return;
  int l = row / T, i = row % T;
  const float* s = S + (long)row * T;
  float mx = -INFINITY;
  for (int j = lane; j <= i; j += 32) mx = fmaxf(mx, s[j]);
  mx = warpMax(mx);
  float sum = 0.0f;
  for (int j = lane; j <= i; j += 32) sum += __expf(s[j] - mx);
  sum = warpSum(sum);
  float inv = 1.0f / sum;
  const bool edited = keyMask && l == edit.sense;
  for (int j = lane; j < T; j += 32) {
    float a = j <= i ? __expf(s[j] - mx) * inv : 0.0f;
    if (edited && keyMask[j]) a *= edit.factor;
    alpha[((long)i * T + j) * k + l] = a;
  }
  if (lane == 0) lse[(long)l * T + i] = mx + __logf(sum);
}

// Rows (l, i): dS[l][i][j] = a (g - sum_j a g), with a, g in the [i][j][l] layout.
__global__ void alphaBackKernel(float* dS, const float* alpha, const float* dalpha, int k, int T) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= k * T) return;
  int l = row / T, i = row % T;
  float dot = 0.0f;
  for (int j = lane; j <= i; j += 32) {
    long at = ((long)i * T + j) * k + l;
    dot += alpha[at] * dalpha[at];
  }
  dot = warpSum(dot);
  float* o = dS + (long)row * T;
  for (int j = lane; j < T; j += 32) {
    long at = ((long)i * T + j) * k + l;
    o[j] = j <= i ? alpha[at] * (dalpha[at] - dot) : 0.0f;
  }
}

__global__ void alphaTransposeKernel(float* out, const float* alpha, int k, int T) {
  long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;  // over (i, j, l)
  long total = (long)T * T * k;
  if (idx >= total) return;
  int l = idx % k;
  long ij = idx / k;
  out[(long)l * T * T + ij] = alpha[idx];
}

void alphaSequence(const Blas& b, float* alpha, float* lse, const float* qk, int seq, CtxShape s, float* scores,
                   const AlphaEdit* edit) {
  const int T = s.T, d = s.d, k = s.k, hs = d / k;
  const long TT = (long)T * T;
  const float scale = 1.0f / sqrtf((float)hs);
  const float* q = qk + (long)seq * T * 2 * d;
  gemmStrided(b, false, true, T, T, hs, scale, q, 2 * d, hs, q + d, 2 * d, hs, 0.0f, scores, T, TT, k);
  AlphaEdit e = edit ? *edit : AlphaEdit{};
  const uint8_t* mask = edit && edit->keyMask && edit->sense >= 0 ? edit->keyMask + (long)seq * T : nullptr;
  alphaSoftmaxKernel<<<blocksFor((long)k * T, 8), 256, 0, b.stream>>>(alpha, lse + (long)seq * k * T, scores, k, T, e,
                                                                    mask);
  BP_LAUNCHED();
}

void alphaSequenceBackward(const Blas& b, float* dqk, const float* dalpha, const float* qk, const float* alpha,
                           int seq, CtxShape s, float* dS) {
  const int T = s.T, d = s.d, k = s.k, hs = d / k;
  const long TT = (long)T * T;
  const float scale = 1.0f / sqrtf((float)hs);
  alphaBackKernel<<<blocksFor((long)k * T, 8), 256, 0, b.stream>>>(dS, alpha, dalpha, k, T);
  BP_LAUNCHED();
  const float* q = qk + (long)seq * T * 2 * d;
  float* dq = dqk + (long)seq * T * 2 * d;
  gemmStrided(b, false, false, T, hs, T, scale, dS, T, TT, q + d, 2 * d, hs, 0.0f, dq, 2 * d, hs, k);
  gemmStrided(b, true, false, T, hs, T, scale, dS, T, TT, q, 2 * d, hs, 0.0f, dq + d, 2 * d, hs, k);
}

void alphaToHeadMajor(float* out, const float* alpha, CtxShape s, cudaStream_t st) {
  long total = (long)s.T * s.T * s.k;
  alphaTransposeKernel<<<blocksFor(total, 256), 256, 0, st>>>(out, alpha, s.k, s.T);
  BP_LAUNCHED();
}

}  // namespace bp::cuda
