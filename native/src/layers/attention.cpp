// Causal multi-head self-attention (GPT-2). Per (batch, head), GEMMs run over row blocks of kBlock queries
// against only the keys they can see (j < end of the block), which skips most of the masked upper triangle.
// The causal softmax runs row by row; dropout on the probabilities keeps its mask (one byte per probability)
// from the forward pass for the backward pass.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../fastmath.h"
#include "../gemm.h"
#include "../rng.h"
#include "layers.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bp {

static const int kBlock = 64;

static inline int threadId() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Row-wise causal softmax of rows [i0, i1) of S (in place), entries j > i set to 0.
static void causalSoftmax(float* S, int T, int i0, int i1) {
  for (int i = i0; i < i1; i++) {
    float* row = S + (long)i * T;
    const float mx = maxOf(row, i + 1);
    float sum = 0.0f;
    for (int j = 0; j <= i; j++) {
      row[j] = fastExp(row[j] - mx);
      sum += row[j];
    }
    const float inv = 1.0f / sum;
    for (int j = 0; j <= i; j++) row[j] *= inv;
    std::memset(row + i + 1, 0, sizeof(float) * (T - i - 1));
  }
}

// Dropout mask of one (batch, head) block: keep[i*T + j] for j <= i, drawn from element index base + i*T + j
// (keep16: the attention site's 16-bit draws, one hash for each even index and the odd one after it).
static void drawMask(uint8_t* keep, int T, long base, DropoutSite drop) {
  const uint32_t threshold = keepThreshold16(drop.p);
  for (int i = 0; i < T; i++) {
    uint8_t* row = keep + (long)i * T;
    const uint32_t first = (uint32_t)(base + (long)i * T);  // element j's index is first + j (mod 2^32)
    int j = 0;
    if (first & 1u) row[j++] = keep16(drop.key, first, threshold);  // the high half of its pair
    for (; j + 1 <= i; j += 2) {  // first + j is even here
      const uint32_t h = hash32(drop.key, (first + j) >> 1);
      row[j] = (h & 0xffffu) >= threshold;
      row[j + 1] = (h >> 16) >= threshold;
    }
    if (j <= i) {  // a last even index without its pair
      row[j] = keep16(drop.key, first + j, threshold);
      j++;
    }
    std::memset(row + j, 0, T - j);
  }
}

// dst = P * keep / (1 - p)
static void applyMask(float* dst, const float* P, const uint8_t* keep, long n, float scale) {
  for (long e = 0; e < n; e++) dst[e] = keep[e] ? P[e] * scale : 0.0f;
}

void attentionForward(float* out, float* probs, const float* qkv, AttentionShape s, DropoutSite drop,
                      uint8_t* mask, float* scratch) {
  const int T = s.T, C = s.C, H = s.H, hs = C / H;
  const long TT = (long)T * T;
  const MatmulPrecision prec = currentMatmulPrecision();  // the pool threads follow the caller
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < s.B * s.H; bh++) {
    const int b = bh / H, h = bh % H;
    const float* q = qkv + (long)b * T * 3 * C + h * hs;
    const float* k = q + C;
    const float* v = q + 2 * C;
    float* P = probs + bh * TT;
    float* o = out + (long)b * T * C + h * hs;
    const float* Pd = P;
    for (int i0 = 0; i0 < T; i0 += kBlock) {
      const int i1 = std::min(T, i0 + kBlock);
      gemmSerial(prec, false, true, i1 - i0, i1, hs, s.scale, q + (long)i0 * 3 * C, 3 * C, k, 3 * C, 0.0f, P + (long)i0 * T, T);
      causalSoftmax(P, T, i0, i1);
    }
    if (drop.active()) {
      uint8_t* keep = mask + bh * TT;
      drawMask(keep, T, bh * TT, drop);
      float* buf = scratch + threadId() * 2 * TT;
      applyMask(buf, P, keep, TT, 1.0f / (1.0f - drop.p));
      Pd = buf;
    }
    for (int i0 = 0; i0 < T; i0 += kBlock) {
      const int i1 = std::min(T, i0 + kBlock);
      gemmSerial(prec, false, false, i1 - i0, hs, i1, 1.0f, Pd + (long)i0 * T, T, v, 3 * C, 0.0f, o + (long)i0 * C, C);
    }
  }
}

void attentionBackward(float* dqkv, const float* dout, const float* qkv, const float* probs, AttentionShape s,
                       DropoutSite drop, const uint8_t* mask, float* scratch) {
  const int T = s.T, C = s.C, H = s.H, hs = C / H;
  const long TT = (long)T * T;
  const float keepScale = drop.active() ? 1.0f / (1.0f - drop.p) : 1.0f;
  const MatmulPrecision prec = currentMatmulPrecision();  // the pool threads follow the caller
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < s.B * s.H; bh++) {
    const int b = bh / H, h = bh % H;
    const float* q = qkv + (long)b * T * 3 * C + h * hs;
    const float* k = q + C;
    const float* v = q + 2 * C;
    float* dq = dqkv + (long)b * T * 3 * C + h * hs;
    float* dk = dq + C;
    float* dv = dq + 2 * C;
    const float* dO = dout + (long)b * T * C + h * hs;
    const float* P = probs + bh * TT;
    float* buf = scratch + threadId() * 2 * TT;
    float* dP = buf + TT;
    const uint8_t* keep = drop.active() ? mask + bh * TT : nullptr;
    const float* Pd = P;
    if (keep) {
      applyMask(buf, P, keep, TT, keepScale);
      Pd = buf;
    }
    // dV[j] = sum over queries i >= j of P'[i,j] dO[i]: key blocks against the queries that see them
    for (int j0 = 0; j0 < T; j0 += kBlock) {
      const int j1 = std::min(T, j0 + kBlock);
      gemmSerial(prec, true, false, j1 - j0, hs, T - j0, 1.0f, Pd + (long)j0 * T + j0, T, dO + (long)j0 * C, C, 0.0f,
                 dv + (long)j0 * 3 * C, 3 * C);
    }
    for (int i0 = 0; i0 < T; i0 += kBlock) {
      const int i1 = std::min(T, i0 + kBlock);
      gemmSerial(prec, false, true, i1 - i0, i1, hs, 1.0f, dO + (long)i0 * C, C, v, 3 * C, 0.0f, dP + (long)i0 * T, T);
      for (int i = i0; i < i1; i++) {
        float* g = dP + (long)i * T;
        const float* p = P + (long)i * T;
        if (keep) {
          const uint8_t* m = keep + (long)i * T;
          for (int j = 0; j <= i; j++) g[j] = m[j] ? g[j] * keepScale : 0.0f;
        }
        float dot = 0.0f;
        for (int j = 0; j <= i; j++) dot += p[j] * g[j];
        for (int j = 0; j <= i; j++) g[j] = p[j] * (g[j] - dot);
        std::memset(g + i + 1, 0, sizeof(float) * (T - i - 1));
      }
      gemmSerial(prec, false, false, i1 - i0, hs, i1, s.scale, dP + (long)i0 * T, T, k, 3 * C, 0.0f, dq + (long)i0 * 3 * C,
                 3 * C);
    }
    for (int j0 = 0; j0 < T; j0 += kBlock) {
      const int j1 = std::min(T, j0 + kBlock);
      gemmSerial(prec, true, false, j1 - j0, hs, T - j0, s.scale, dP + (long)j0 * T + j0, T, q + (long)j0 * 3 * C, 3 * C,
                 0.0f, dk + (long)j0 * 3 * C, 3 * C);
    }
  }
}

}  // namespace bp
