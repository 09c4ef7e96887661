// Causal multi-head attention, a chunk of sequences at a time: the score matrices of every (sequence, head) of the
// chunk come from one batched tensor-core GEMM, the causal softmax is one warp per row, and only the row
// log-sum-exp is kept for the backward pass (which recomputes the probabilities), so no [B][H][T][T] tensor
// outlives a chunk.
// Dropout on the probabilities uses the CPU backend's masks (keep16 of index (b*H + h)*T*T + i*T + j).
#include <algorithm>

#include "layers.cuh"

namespace bp::BP_CUDA_NS {

// Rows (h, i) of one sequence: S -> P (undropped, in place, zeros above the diagonal), Pd (dropped) if pd,
// lse if lseOut. Mixed precision (Pd16 non-null): only the dropped probabilities are written, in bf16.
__global__ void causalSoftmaxKernel(float* S, float* Pd, float* lseOut, int H, int T, long bhBase, float p,
                                    uint32_t key, uint32_t off, half16* Pd16) {
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
    if (Pd16) {
      Pd16[(long)row * T + j] = round16(pj * dkeepAttention(p, key, off + (uint32_t)(base + j)));
      continue;
    }
    s[j] = pj;
    if (Pd) Pd[(long)row * T + j] = pj * dkeepAttention(p, key, off + (uint32_t)(base + j));
  }
  if (lseOut && lane == 0) lseOut[(long)h * T + i] = lse;
}

// Recompute P from the saved lse: S -> P in place (and Pd; in mixed precision Pd16, the dropped P in bf16).
__global__ void probsFromLseKernel(float* S, float* Pd, const float* lse, int H, int T, long bhBase, float p,
                                   uint32_t key, uint32_t off, half16* Pd16) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= H * T) return;
  int h = row / T, i = row % T;
  float* s = S + (long)row * T;
  float l = lse[(long)h * T + i];
  const long base = (bhBase + h) * (long)T * T + (long)i * T;
  for (int j = lane; j < T; j += 32) {
    float pj = j <= i ? __expf(s[j] - l) : 0.0f;
    s[j] = pj;
    if (Pd) Pd[(long)row * T + j] = pj * dkeepAttention(p, key, off + (uint32_t)(base + j));
    if (Pd16) Pd16[(long)row * T + j] = round16(pj * dkeepAttention(p, key, off + (uint32_t)(base + j)));
  }
}

// dPd -> dS in place: g = dPd * mask; dS = P (g - sum(P g)). Mixed precision: dS goes to dS16 (bf16) instead.
__global__ void softmaxBackKernel(float* G, const float* P, int H, int T, long bhBase, float p, uint32_t key,
                                  uint32_t off, half16* dS16) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= H * T) return;
  int h = row / T, i = row % T;
  float* g = G + (long)row * T;
  const float* pr = P + (long)row * T;
  const long base = (bhBase + h) * (long)T * T + (long)i * T;
  float dot = 0.0f;
  for (int j = lane; j <= i; j += 32) {
    float gj = g[j] * dkeepAttention(p, key, off + (uint32_t)(base + j));
    g[j] = gj;
    dot += pr[j] * gj;
  }
  dot = warpSum(dot);
  for (int j = lane; j < T; j += 32) {
    const float ds = j <= i ? pr[j] * (g[j] - dot) : 0.0f;
    if (dS16)
      dS16[(long)row * T + j] = round16(ds);
    else
      g[j] = ds;
  }
}

static unsigned rowBlocks(long rows) { return blocksFor(rows, 8); }

// Pointer arrays of one chunk: matrix (b, h) of a [B*T][ld] tensor starts at base + b*T*ld + h*hs.
static const float** rowsOf(const float** slot, const float* base, int T, long ld, int hs, int H, int n,
                            cudaStream_t st) {
  fillPointers(slot, base, (long)T * ld, hs, H, n * H, st);
  return slot;
}
static const float** tilesOf(const float** slot, const float* base, long TT, int count, cudaStream_t st) {
  fillPointers(slot, base, TT, 0, 1, count, st);
  return slot;
}

// Mixed precision. The pointer arrays are filled once per call for the whole batch (A = B*H matrices; chunk b0
// uses the slice from b0*H) and the score tiles once for a full chunk (M = seqs*H), so a chunk costs only its
// products and softmax: small chunks whose T x T scratch stays in L2 remain cheap to launch.
// Chunk scratch: S [M][T][T] fp32, then the dropped probabilities in bf16 (where the fp32 path keeps Pd).
// Pointer slots: Q, K, V, O [A each], Pd16 tiles, S tiles [M each].
static void attentionForward16(const Blas& b, float* out, float* lse, const half16* qkv16, AttnShape s, Site drop,
                               AttnWork w) {
  const int T = s.T, C = s.C, H = s.H, hs = C / H, A = s.B * H, M = w.seqs * H;
  const long TT = (long)T * T, ld3 = 3L * C;
  const half16** p16 = reinterpret_cast<const half16**>(w.ptrs);
  float* S = w.scratch;
  half16* Pd16 = reinterpret_cast<half16*>(w.scratch + (long)M * TT);
  fillPointers(p16, qkv16, T * ld3, hs, H, A, b.stream);
  fillPointers(p16 + A, qkv16 + C, T * ld3, hs, H, A, b.stream);
  fillPointers(p16 + 2 * A, qkv16 + 2 * C, T * ld3, hs, H, A, b.stream);
  fillPointers(w.ptrs + 3 * A, out, (long)T * C, hs, H, A, b.stream);
  fillPointers(p16 + 4 * A, Pd16, TT, 0, 1, M, b.stream);
  fillPointers(w.ptrs + 4 * A + M, S, TT, 0, 1, M, b.stream);
  const half16* const* Pt = p16 + 4 * A;
  float* const* St = (float* const*)(w.ptrs + 4 * A + M);
  for (int b0 = 0; b0 < s.B; b0 += w.seqs) {
    const int n = std::min(w.seqs, s.B - b0), cnt = n * H, o = b0 * H;
    gemmBatched16(b, false, true, T, T, hs, s.scale, p16 + o, 3 * C, p16 + A + o, 3 * C, 0.0f, St, T, cnt);
    BP_LAUNCH(causalSoftmaxKernel, rowBlocks((long)cnt * T), 256, 0, b.stream)
    (S, nullptr, lse + (long)b0 * H * T, cnt, T, (long)b0 * H, drop.p, drop.key, drop.offset, Pd16);
    BP_LAUNCHED();
    gemmBatched16(b, false, false, T, hs, T, 1.0f, Pt, T, p16 + 2 * A + o, 3 * C, 0.0f,
                  (float* const*)(w.ptrs + 3 * A + o), C, cnt);
  }
}

// Mixed precision backward (pointer arrays as in the forward pass). Chunk scratch: P fp32 | bf16 region (the
// dropped P for dV, then dS) | G fp32, each M*T*T. Pointer slots: Q, K, V, dO (bf16), dQ, dK, dV [A each],
// P, bf16, G tiles [M each].
static void attentionBackward16(const Blas& b, float* dqkv, const float* dout, const half16* qkv16, const float* lse,
                                AttnShape s, Site drop, AttnWork w, half16* dout16) {
  const int T = s.T, C = s.C, H = s.H, hs = C / H, A = s.B * H, M = w.seqs * H;
  const long TT = (long)T * T, ld3 = 3L * C;
  const half16** p16 = reinterpret_cast<const half16**>(w.ptrs);
  float* P = w.scratch;
  half16* R16 = reinterpret_cast<half16*>(w.scratch + (long)M * TT);
  float* G = w.scratch + 2L * M * TT;
  toHalf16(dout16, dout, (long)s.B * T * C, b.stream);
  fillPointers(p16, qkv16, T * ld3, hs, H, A, b.stream);                        // Q
  fillPointers(p16 + A, qkv16 + C, T * ld3, hs, H, A, b.stream);                // K
  fillPointers(p16 + 2 * A, qkv16 + 2 * C, T * ld3, hs, H, A, b.stream);        // V
  fillPointers(p16 + 3 * A, dout16, (long)T * C, hs, H, A, b.stream);           // dO
  fillPointers(w.ptrs + 4 * A, dqkv, T * ld3, hs, H, A, b.stream);              // dQ
  fillPointers(w.ptrs + 5 * A, dqkv + C, T * ld3, hs, H, A, b.stream);          // dK
  fillPointers(w.ptrs + 6 * A, dqkv + 2 * C, T * ld3, hs, H, A, b.stream);      // dV
  fillPointers(w.ptrs + 7 * A, P, TT, 0, 1, M, b.stream);                       // P tiles
  fillPointers(p16 + 7 * A + M, R16, TT, 0, 1, M, b.stream);                    // Pd16, later dS16
  fillPointers(w.ptrs + 7 * A + 2 * M, G, TT, 0, 1, M, b.stream);               // G tiles
  float* const* Pt = (float* const*)(w.ptrs + 7 * A);
  const half16* const* Rt = p16 + 7 * A + M;
  float* const* Gt = (float* const*)(w.ptrs + 7 * A + 2 * M);
  for (int b0 = 0; b0 < s.B; b0 += w.seqs) {
    const int n = std::min(w.seqs, s.B - b0), cnt = n * H, o = b0 * H;
    const half16* const* Q = p16 + o;
    const half16* const* K = p16 + A + o;
    const half16* const* V = p16 + 2 * A + o;
    const half16* const* dO = p16 + 3 * A + o;
    float* const* dQ = (float* const*)(w.ptrs + 4 * A + o);
    float* const* dK = (float* const*)(w.ptrs + 5 * A + o);
    float* const* dV = (float* const*)(w.ptrs + 6 * A + o);
    gemmBatched16(b, false, true, T, T, hs, s.scale, Q, 3 * C, K, 3 * C, 0.0f, Pt, T, cnt);
    BP_LAUNCH(probsFromLseKernel, rowBlocks((long)cnt * T), 256, 0, b.stream)
    (P, nullptr, lse + (long)b0 * H * T, cnt, T, (long)b0 * H, drop.p, drop.key, drop.offset, R16);
    BP_LAUNCHED();
    // dV = Pd^T dO ; dPd = dO V^T
    gemmBatched16(b, true, false, T, hs, T, 1.0f, Rt, T, dO, C, 0.0f, dV, 3 * C, cnt);
    gemmBatched16(b, false, true, T, T, hs, 1.0f, dO, C, V, 3 * C, 0.0f, Gt, T, cnt);
    BP_LAUNCH(softmaxBackKernel, rowBlocks((long)cnt * T), 256, 0, b.stream)
    (G, P, cnt, T, (long)b0 * H, drop.p, drop.key, drop.offset, R16);
    BP_LAUNCHED();
    // dQ = scale dS K ; dK = scale dS^T Q
    gemmBatched16(b, false, false, T, hs, T, s.scale, Rt, T, K, 3 * C, 0.0f, dQ, 3 * C, cnt);
    gemmBatched16(b, true, false, T, hs, T, s.scale, Rt, T, Q, 3 * C, 0.0f, dK, 3 * C, cnt);
  }
}

void attentionForward(const Blas& b, float* out, float* lse, const float* qkv, AttnShape s, Site drop, AttnWork w,
                      const half16* qkv16, half16* out16) {
  if (qkv16 && w.flash) {
    flashAttentionForward(out, out16, lse, qkv16, s, drop, w.keepBits, b.stream);
    return;
  }
  if (qkv16) {
    attentionForward16(b, out, lse, qkv16, s, drop, w);
    if (out16) toHalf16(out16, out, (long)s.B * s.T * s.C, b.stream);
    return;
  }
  const int T = s.T, C = s.C, H = s.H, hs = C / H;
  const long TT = (long)T * T;
  for (int b0 = 0; b0 < s.B; b0 += w.seqs) {
    const int n = std::min(w.seqs, s.B - b0), cnt = n * H;
    float* S = w.scratch;
    float* Pd = drop.p > 0.0f ? w.scratch + (long)cnt * TT : nullptr;
    const float* q = qkv + (long)b0 * T * 3 * C;
    const float** Q = rowsOf(w.ptrs, q, T, 3 * C, hs, H, n, b.stream);
    const float** K = rowsOf(w.ptrs + cnt, q + C, T, 3 * C, hs, H, n, b.stream);
    const float** V = rowsOf(w.ptrs + 2 * cnt, q + 2 * C, T, 3 * C, hs, H, n, b.stream);
    const float** Sp = tilesOf(w.ptrs + 3 * cnt, Pd ? Pd : S, TT, cnt, b.stream);
    const float** Sraw = tilesOf(w.ptrs + 4 * cnt, S, TT, cnt, b.stream);
    const float** O = rowsOf(w.ptrs + 5 * cnt, out + (long)b0 * T * C, T, C, hs, H, n, b.stream);
    gemmBatched(b, false, true, T, T, hs, s.scale, Q, 3 * C, K, 3 * C, 0.0f, (float* const*)Sraw, T, cnt);
    BP_LAUNCH(causalSoftmaxKernel, rowBlocks((long)cnt * T), 256, 0, b.stream)
    (S, Pd, lse + (long)b0 * H * T, cnt, T, (long)b0 * H, drop.p, drop.key, drop.offset, nullptr);
    BP_LAUNCHED();
    gemmBatched(b, false, false, T, hs, T, 1.0f, Sp, T, V, 3 * C, 0.0f, (float* const*)O, C, cnt);
  }
  if (out16) toHalf16(out16, out, (long)s.B * T * C, b.stream);
}

void attentionBackward(const Blas& b, float* dqkv, const float* dout, const float* out, const float* qkv,
                       const float* lse, AttnShape s, Site drop, AttnWork w, const half16* qkv16, half16* dout16,
                       half16* dqkv16) {
  if (qkv16 && w.flash) {
    flashAttentionBackward(dqkv, dqkv16, dout, out, qkv16, lse, s, drop, w.keepBits, w.scratch, dout16, b.stream);
    return;
  }
  check(!dqkv16, "attention: a bf16 gradient output needs the fused kernels");
  if (qkv16) {
    attentionBackward16(b, dqkv, dout, qkv16, lse, s, drop, w, dout16);
    return;
  }
  const int T = s.T, C = s.C, H = s.H, hs = C / H;
  const long TT = (long)T * T;
  for (int b0 = 0; b0 < s.B; b0 += w.seqs) {
    const int n = std::min(w.seqs, s.B - b0), cnt = n * H;
    float* P = w.scratch;
    float* Pd = drop.p > 0.0f ? w.scratch + (long)cnt * TT : nullptr;
    float* G = w.scratch + 2L * cnt * TT;
    const float* q = qkv + (long)b0 * T * 3 * C;
    float* dq = dqkv + (long)b0 * T * 3 * C;
    const float** Q = rowsOf(w.ptrs, q, T, 3 * C, hs, H, n, b.stream);
    const float** K = rowsOf(w.ptrs + cnt, q + C, T, 3 * C, hs, H, n, b.stream);
    const float** V = rowsOf(w.ptrs + 2 * cnt, q + 2 * C, T, 3 * C, hs, H, n, b.stream);
    const float** Pp = tilesOf(w.ptrs + 3 * cnt, P, TT, cnt, b.stream);
    const float** PdP = tilesOf(w.ptrs + 4 * cnt, Pd ? Pd : P, TT, cnt, b.stream);
    const float** Gp = tilesOf(w.ptrs + 5 * cnt, G, TT, cnt, b.stream);
    const float** dO = rowsOf(w.ptrs + 6 * cnt, dout + (long)b0 * T * C, T, C, hs, H, n, b.stream);
    const float** dQ = rowsOf(w.ptrs + 7 * cnt, dq, T, 3 * C, hs, H, n, b.stream);
    const float** dK = rowsOf(w.ptrs + 8 * cnt, dq + C, T, 3 * C, hs, H, n, b.stream);
    const float** dV = rowsOf(w.ptrs + 9 * cnt, dq + 2 * C, T, 3 * C, hs, H, n, b.stream);
    gemmBatched(b, false, true, T, T, hs, s.scale, Q, 3 * C, K, 3 * C, 0.0f, (float* const*)Pp, T, cnt);
    BP_LAUNCH(probsFromLseKernel, rowBlocks((long)cnt * T), 256, 0, b.stream)
    (P, Pd, lse + (long)b0 * H * T, cnt, T, (long)b0 * H, drop.p, drop.key, drop.offset, nullptr);
    BP_LAUNCHED();
    // dV = Pd^T dO ; dPd = dO V^T
    gemmBatched(b, true, false, T, hs, T, 1.0f, PdP, T, dO, C, 0.0f, (float* const*)dV, 3 * C, cnt);
    gemmBatched(b, false, true, T, T, hs, 1.0f, dO, C, V, 3 * C, 0.0f, (float* const*)Gp, T, cnt);
    BP_LAUNCH(softmaxBackKernel, rowBlocks((long)cnt * T), 256, 0, b.stream)
    (G, P, cnt, T, (long)b0 * H, drop.p, drop.key, drop.offset, nullptr);
    BP_LAUNCHED();
    // dQ = scale dS K ; dK = scale dS^T Q
    gemmBatched(b, false, false, T, hs, T, s.scale, Gp, T, K, 3 * C, 0.0f, (float* const*)dQ, 3 * C, cnt);
    gemmBatched(b, true, false, T, hs, T, s.scale, Gp, T, Q, 3 * C, 0.0f, (float* const*)dK, 3 * C, cnt);
  }
}

}  // namespace bp::BP_CUDA_NS
