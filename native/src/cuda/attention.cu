// Causal multi-head attention, one sequence at a time: the H score matrices of a sequence are two strided
// batched tensor-core GEMMs, the causal softmax is one warp per row, and only the row log-sum-exp is kept for
// the backward pass (which recomputes the probabilities), so no [B][H][T][T] tensor outlives a sequence.
// Dropout on the probabilities uses the CPU backend's masks (index (b*H + h)*T*T + i*T + j).
#include "layers.cuh"

namespace bp::cuda {

// Rows (h, i) of one sequence: S -> P (undropped, in place, zeros above the diagonal), Pd (dropped) if pd,
// lse if lseOut.
__global__ void causalSoftmaxKernel(float* S, float* Pd, float* lseOut, int H, int T, long bhBase, float p,
                                    uint32_t key) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= H * T) return;
  int h = row / T, i = row % T;
  float* s = S + (long)row * T;
  float mx = -INFINITY;
  for (int j = lane; j <= i; j += 32) mx = fmaxf(mx, s[j]);
  mx = warpMax(mx);
  float sum = 0.0f;
  for (int j = lane; j <= i; j += 32) sum += __expf(s[j] - mx);
  sum = warpSum(sum);
  float lse = mx + __logf(sum), inv = 1.0f / sum;
  const long TT = (long)T * T;
  const long base = (bhBase + h) * TT + (long)i * T;
  for (int j = lane; j < T; j += 32) {
    float pj = j <= i ? __expf(s[j] - mx) * inv : 0.0f;
    s[j] = pj;
    if (Pd) Pd[(long)row * T + j] = pj * dkeep(p, key, (uint32_t)(base + j));
  }
  if (lseOut && lane == 0) lseOut[(long)h * T + i] = lse;
}

// Recompute P from the saved lse: S -> P in place (and Pd).
__global__ void probsFromLseKernel(float* S, float* Pd, const float* lse, int H, int T, long bhBase, float p,
                                   uint32_t key) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= H * T) return;
  int h = row / T, i = row % T;
  float* s = S + (long)row * T;
  float l = lse[(long)h * T + i];
  const long base = (bhBase + h) * (long)T * T + (long)i * T;
  for (int j = lane; j < T; j += 32) {
    float pj = j <= i ? __expf(s[j] - l) : 0.0f;
    s[j] = pj;
    if (Pd) Pd[(long)row * T + j] = pj * dkeep(p, key, (uint32_t)(base + j));
  }
}

// dPd -> dS in place: g = dPd * mask; dS = P (g - sum(P g)).
__global__ void softmaxBackKernel(float* G, const float* P, int H, int T, long bhBase, float p, uint32_t key) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= H * T) return;
  int h = row / T, i = row % T;
  float* g = G + (long)row * T;
  const float* pr = P + (long)row * T;
  const long base = (bhBase + h) * (long)T * T + (long)i * T;
  float dot = 0.0f;
  for (int j = lane; j <= i; j += 32) {
    float gj = g[j] * dkeep(p, key, (uint32_t)(base + j));
    g[j] = gj;
    dot += pr[j] * gj;
  }
  dot = warpSum(dot);
  for (int j = lane; j < T; j += 32) g[j] = j <= i ? pr[j] * (g[j] - dot) : 0.0f;
}

static unsigned rowBlocks(int rows) { return blocksFor(rows, 8); }

void attentionForward(const Blas& b, float* out, float* lse, const float* qkv, AttnShape s, Site drop, float* scratch) {
  const int T = s.T, C = s.C, H = s.H, hs = C / H;
  const long TT = (long)T * T;
  float* S = scratch;
  float* Pd = drop.p > 0.0f ? scratch + H * TT : nullptr;
  for (int bi = 0; bi < s.B; bi++) {
    const float* q = qkv + (long)bi * T * 3 * C;
    gemmStrided(b, false, true, T, T, hs, s.scale, q, 3 * C, hs, q + C, 3 * C, hs, 0.0f, S, T, TT, H);
    causalSoftmaxKernel<<<rowBlocks(H * T), 256, 0, b.stream>>>(S, Pd, lse + (long)bi * H * T, H, T, (long)bi * H,
                                                                drop.p, drop.key);
    BP_LAUNCHED();
    gemmStrided(b, false, false, T, hs, T, 1.0f, Pd ? Pd : S, T, TT, q + 2 * C, 3 * C, hs, 0.0f,
                out + (long)bi * T * C, C, hs, H);
  }
}

void attentionBackward(const Blas& b, float* dqkv, const float* dout, const float* qkv, const float* lse, AttnShape s,
                       Site drop, float* scratch) {
  const int T = s.T, C = s.C, H = s.H, hs = C / H;
  const long TT = (long)T * T;
  float* P = scratch;
  float* Pd = drop.p > 0.0f ? scratch + H * TT : nullptr;
  float* G = scratch + 2 * H * TT;
  for (int bi = 0; bi < s.B; bi++) {
    const float* q = qkv + (long)bi * T * 3 * C;
    const float* dO = dout + (long)bi * T * C;
    float* dq = dqkv + (long)bi * T * 3 * C;
    gemmStrided(b, false, true, T, T, hs, s.scale, q, 3 * C, hs, q + C, 3 * C, hs, 0.0f, P, T, TT, H);
    probsFromLseKernel<<<rowBlocks(H * T), 256, 0, b.stream>>>(P, Pd, lse + (long)bi * H * T, H, T, (long)bi * H,
                                                               drop.p, drop.key);
    BP_LAUNCHED();
    // dV = Pd^T dO ; dPd = dO V^T
    gemmStrided(b, true, false, T, hs, T, 1.0f, Pd ? Pd : P, T, TT, dO, C, hs, 0.0f, dq + 2 * C, 3 * C, hs, H);
    gemmStrided(b, false, true, T, T, hs, 1.0f, dO, C, hs, q + 2 * C, 3 * C, hs, 0.0f, G, T, TT, H);
    softmaxBackKernel<<<rowBlocks(H * T), 256, 0, b.stream>>>(G, P, H, T, (long)bi * H, drop.p, drop.key);
    BP_LAUNCHED();
    // dQ = scale dS K ; dK = scale dS^T Q
    gemmStrided(b, false, false, T, hs, T, s.scale, G, T, TT, q + C, 3 * C, hs, 0.0f, dq, 3 * C, hs, H);
    gemmStrided(b, true, false, T, hs, T, s.scale, G, T, TT, q, 3 * C, hs, 0.0f, dq + C, 3 * C, hs, H);
  }
}

}  // namespace bp::cuda
