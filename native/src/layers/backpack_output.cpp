// Backpack output: o_i = sum over senses l and positions j <= i of alpha_l[i,j] * C(x_j)_l. Per (batch, sense)
// it is a [T,T] x [T,d] product; sense vectors stay in their [B*T][k*d] layout (leading dimension k*d).
#include <algorithm>

#include "../gemm.h"
#include "layers.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bp {

void backpackOutputForward(float* out, const float* alpha, const float* senses, AlphaShape s) {
  const int T = s.T, d = s.d, k = s.k;
  const long TT = (long)T * T;
#ifdef _OPENMP
  const int split = std::max(1, std::min(omp_get_max_threads(), d / 16));
#else
  const int split = 1;
#endif
  const int cw = ((d + split - 1) / split + 15) / 16 * 16;
#pragma omp parallel for schedule(static)
  for (int task = 0; task < s.B * split; task++) {
    int b = task / split, c0 = (task % split) * cw, c1 = std::min(d, c0 + cw);
    if (c1 <= c0) continue;
    for (int l = 0; l < k; l++)
      gemmSerial(false, false, T, c1 - c0, T, 1.0f, alpha + ((long)b * k + l) * TT, T,
                 senses + (long)b * T * k * d + (long)l * d + c0, k * d, l == 0 ? 0.0f : 1.0f,
                 out + (long)b * T * d + c0, d);
  }
}

void backpackOutputBackward(float* dalpha, float* dsenses, const float* dout, const float* alpha,
                            const float* senses, AlphaShape s) {
  const int T = s.T, d = s.d, k = s.k;
  const long TT = (long)T * T;
#pragma omp parallel for schedule(static)
  for (int bl = 0; bl < s.B * k; bl++) {
    int b = bl / k, l = bl % k;
    const float* dO = dout + (long)b * T * d;
    const float* C = senses + (long)b * T * k * d + (long)l * d;
    gemmSerial(false, true, T, T, d, 1.0f, dO, d, C, k * d, 0.0f, dalpha + bl * TT, T);
    gemmSerial(true, false, T, d, T, 1.0f, alpha + bl * TT, T, dO, d, 0.0f,
               dsenses + (long)b * T * k * d + (long)l * d, k * d);
  }
}

}  // namespace bp
