// Backpack output: o_i = sum over senses l and positions j <= i of alpha_l[i,j] * C(x_j)_l. Per (batch, sense)
// it is a [T,T] x [T,d] product; sense vectors stay in their [B*T][k*d] layout (leading dimension k*d).
#include <algorithm>

#include "../gemm.h"
#include "layers.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bp {

static const int kBlock = 64;  // rows per GEMM block (skips most of the causal upper triangle)

void backpackOutputForward(float* out, const float* alpha, const float* senses, AlphaShape s) {
  const int T = s.T, d = s.d, k = s.k;
  const long TT = (long)T * T;
#ifdef _OPENMP
  const int split = std::max(1, std::min(omp_get_max_threads(), d / 16));
#else
  const int split = 1;
#endif
  const int cw = ((d + split - 1) / split + 15) / 16 * 16;
  const MatmulPrecision prec = currentMatmulPrecision();  // the pool threads follow the caller
#pragma omp parallel for schedule(static)
  for (int task = 0; task < s.B * split; task++) {
    int b = task / split, c0 = (task % split) * cw, c1 = std::min(d, c0 + cw);
    if (c1 <= c0) continue;
    for (int l = 0; l < k; l++)
      for (int i0 = 0; i0 < T; i0 += kBlock) {  // query rows see keys j < i1 only
        const int i1 = std::min(T, i0 + kBlock);
        gemmSerial(prec, false, false, i1 - i0, c1 - c0, i1, 1.0f, alpha + ((long)b * k + l) * TT + (long)i0 * T, T,
                   senses + (long)b * T * k * d + (long)l * d + c0, k * d, l == 0 ? 0.0f : 1.0f,
                   out + ((long)b * T + i0) * d + c0, d);
      }
  }
}

void backpackOutputBackward(float* dalpha, float* dsenses, const float* dout, const float* alpha,
                            const float* senses, AlphaShape s) {
  const int T = s.T, d = s.d, k = s.k;
  const long TT = (long)T * T;
  const MatmulPrecision prec = currentMatmulPrecision();  // the pool threads follow the caller
#pragma omp parallel for schedule(static)
  for (int bl = 0; bl < s.B * k; bl++) {
    int b = bl / k, l = bl % k;
    const float* dO = dout + (long)b * T * d;
    const float* C = senses + (long)b * T * k * d + (long)l * d;
    // dalpha rows i only need keys j <= i (the rest is never read); dC[j] sums queries i >= j
    for (int i0 = 0; i0 < T; i0 += kBlock) {
      const int i1 = std::min(T, i0 + kBlock);
      gemmSerial(prec, false, true, i1 - i0, i1, d, 1.0f, dO + (long)i0 * d, d, C, k * d, 0.0f, dalpha + bl * TT + (long)i0 * T, T);
    }
    for (int j0 = 0; j0 < T; j0 += kBlock) {
      const int j1 = std::min(T, j0 + kBlock);
      gemmSerial(prec, true, false, j1 - j0, d, T - j0, 1.0f, alpha + bl * TT + (long)j0 * T + j0, T, dO + (long)j0 * d, d, 0.0f,
                 dsenses + ((long)b * T + j0) * k * d + (long)l * d, k * d);
    }
  }
}

}  // namespace bp
