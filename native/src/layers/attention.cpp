// Causal multi-head self-attention (GPT-2): per (batch, head) the score matrix is one GEMM, the causal
// softmax runs row by row, and dropout on the probabilities uses a recomputable counter-based mask.
#include <cmath>
#include <cstring>

#include "../gemm.h"
#include "../rng.h"
#include "../fastmath.h"
#include "layers.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bp {

static inline int threadId() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Row-wise causal softmax of S (in place), entries j > i set to 0.
static void causalSoftmax(float* S, int T) {
  for (int i = 0; i < T; i++) {
    float* row = S + (long)i * T;
    float mx = row[0];
    for (int j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j <= i; j++) {
      row[j] = fastExp(row[j] - mx);
      sum += row[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j <= i; j++) row[j] *= inv;
    for (int j = i + 1; j < T; j++) row[j] = 0.0f;
  }
}

// P' = P * mask / (1-p) for the (b,h) block starting at element `base` of the probs tensor.
static void droppedProbs(float* dst, const float* P, int T, long base, DropoutSite drop) {
  float keep = 1.0f / (1.0f - drop.p);
  for (int i = 0; i < T; i++)
    for (int j = 0; j < T; j++) {
      long idx = (long)i * T + j;
      dst[idx] = (j <= i && uniform01(drop.key, (uint32_t)(base + idx)) >= drop.p) ? P[idx] * keep : 0.0f;
    }
}

void attentionForward(float* out, float* probs, const float* qkv, AttentionShape s, DropoutSite drop,
                      float* scratch) {
  const int T = s.T, C = s.C, H = s.H, hs = C / H;
  const long TT = (long)T * T;
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < s.B * s.H; bh++) {
    int b = bh / H, h = bh % H;
    const float* q = qkv + (long)b * T * 3 * C + h * hs;
    const float* k = q + C;
    const float* v = q + 2 * C;
    float* P = probs + bh * TT;
    gemmSerial(false, true, T, T, hs, s.scale, q, 3 * C, k, 3 * C, 0.0f, P, T);
    causalSoftmax(P, T);
    const float* Pd = P;
    if (drop.active()) {
      float* buf = scratch + threadId() * 2 * TT;
      droppedProbs(buf, P, T, bh * TT, drop);
      Pd = buf;
    }
    gemmSerial(false, false, T, hs, T, 1.0f, Pd, T, v, 3 * C, 0.0f, out + (long)b * T * C + h * hs, C);
  }
}

void attentionBackward(float* dqkv, const float* dout, const float* qkv, const float* probs, AttentionShape s,
                       DropoutSite drop, float* scratch) {
  const int T = s.T, C = s.C, H = s.H, hs = C / H;
  const long TT = (long)T * T;
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < s.B * s.H; bh++) {
    int b = bh / H, h = bh % H;
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
    const float* Pd = P;
    if (drop.active()) {
      droppedProbs(buf, P, T, bh * TT, drop);
      Pd = buf;
    }
    gemmSerial(true, false, T, hs, T, 1.0f, Pd, T, dO, C, 0.0f, dv, 3 * C);
    gemmSerial(false, true, T, T, hs, 1.0f, dO, C, v, 3 * C, 0.0f, dP, T);
    float keep = drop.active() ? 1.0f / (1.0f - drop.p) : 1.0f;
    for (int i = 0; i < T; i++) {
      float* g = dP + (long)i * T;
      const float* p = P + (long)i * T;
      if (drop.active())
        for (int j = 0; j <= i; j++)
          g[j] = uniform01(drop.key, (uint32_t)(bh * TT + (long)i * T + j)) >= drop.p ? g[j] * keep : 0.0f;
      float dot = 0.0f;
      for (int j = 0; j <= i; j++) dot += p[j] * g[j];
      for (int j = 0; j <= i; j++) g[j] = p[j] * (g[j] - dot);
      for (int j = i + 1; j < T; j++) g[j] = 0.0f;
    }
    gemmSerial(false, false, T, hs, T, s.scale, dP, T, k, 3 * C, 0.0f, dq, 3 * C);
    gemmSerial(true, false, T, hs, T, s.scale, dP, T, q, 3 * C, 0.0f, dk, 3 * C);
  }
}

}  // namespace bp
