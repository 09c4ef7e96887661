// Backpack contextualization weights: alpha_l = causal softmax(Q_l K_l^T / sqrt(d/k)) per sense l, from the
// packed [Q | K] projection of the Transformer output. No value projection, no dropout.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../gemm.h"
#include "../fastmath.h"
#include "layers.h"

namespace bp {

static const int kBlock = 64;  // query rows per GEMM block (skips most of the masked triangle)

static void causalSoftmaxRows(float* S, int T) {
  for (int i = 0; i < T; i++) {
    float* row = S + (long)i * T;
    const float mx = maxOf(row, i + 1);
    float sum = 0.0f;
    for (int j = 0; j <= i; j++) {
      row[j] = fastExp(row[j] - mx);
      sum += row[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j <= i; j++) row[j] *= inv;
    std::memset(row + i + 1, 0, sizeof(float) * (T - i - 1));
  }
}

void alphaForward(float* alpha, const float* qk, AlphaShape s, float*) {
  const int T = s.T, d = s.d, hs = d / s.k;
  const float scale = 1.0f / std::sqrt((float)hs);
  const long TT = (long)T * T;
  const MatmulPrecision prec = currentMatmulPrecision();  // the pool threads follow the caller
#pragma omp parallel for schedule(static)
  for (int bl = 0; bl < s.B * s.k; bl++) {
    int b = bl / s.k, l = bl % s.k;
    const float* q = qk + (long)b * T * 2 * d + l * hs;
    const float* k = q + d;
    float* A = alpha + bl * TT;
    // row blocks of queries against the keys they can see
    for (int i0 = 0; i0 < T; i0 += kBlock) {
      const int i1 = std::min(T, i0 + kBlock);
      gemmSerial(prec, false, true, i1 - i0, i1, hs, scale, q + (long)i0 * 2 * d, 2 * d, k, 2 * d, 0.0f, A + (long)i0 * T, T);
    }
    causalSoftmaxRows(A, T);
  }
}

void alphaApplyScale(float* alpha, AlphaShape s, const AlphaScale& sc) {
  if (sc.sense < 0 || sc.sense >= s.k || !sc.keyMask) return;
  const int T = s.T;
  for (int b = 0; b < s.B; b++) {
    float* A = alpha + ((long)b * s.k + sc.sense) * T * T;
    const uint8_t* m = sc.keyMask + (long)b * T;
    for (int i = 0; i < T; i++)
      for (int j = 0; j <= i; j++)
        if (m[j]) A[(long)i * T + j] *= sc.factor;
  }
}

void alphaBackward(float* dqk, float* dalpha, const float* qk, const float* alpha, AlphaShape s) {
  const int T = s.T, d = s.d, hs = d / s.k;
  const float scale = 1.0f / std::sqrt((float)hs);
  const long TT = (long)T * T;
  const MatmulPrecision prec = currentMatmulPrecision();  // the pool threads follow the caller
#pragma omp parallel for schedule(static)
  for (int bl = 0; bl < s.B * s.k; bl++) {
    int b = bl / s.k, l = bl % s.k;
    const float* q = qk + (long)b * T * 2 * d + l * hs;
    const float* k = q + d;
    float* dq = dqk + (long)b * T * 2 * d + l * hs;
    float* dk = dq + d;
    const float* A = alpha + bl * TT;
    float* G = dalpha + bl * TT;
    for (int i = 0; i < T; i++) {
      float* g = G + (long)i * T;
      const float* p = A + (long)i * T;
      float dot = 0.0f;
      for (int j = 0; j <= i; j++) dot += p[j] * g[j];
      for (int j = 0; j <= i; j++) g[j] = p[j] * (g[j] - dot);
      for (int j = i + 1; j < T; j++) g[j] = 0.0f;
    }
    for (int i0 = 0; i0 < T; i0 += kBlock) {
      const int i1 = std::min(T, i0 + kBlock);
      gemmSerial(prec, false, false, i1 - i0, hs, i1, scale, G + (long)i0 * T, T, k, 2 * d, 0.0f, dq + (long)i0 * 2 * d, 2 * d);
    }
    for (int j0 = 0; j0 < T; j0 += kBlock) {
      const int j1 = std::min(T, j0 + kBlock);
      gemmSerial(prec, true, false, j1 - j0, hs, T - j0, scale, G + (long)j0 * T + j0, T, q + (long)j0 * 2 * d, 2 * d, 0.0f,
                 dk + (long)j0 * 2 * d, 2 * d);
    }
  }
}

}  // namespace bp
