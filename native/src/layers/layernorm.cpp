// LayerNorm over the last dimension (affine), with cached mean and reciprocal std for the backward pass.
#include <algorithm>
#include <cmath>

#include "layers.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bp {

void layernormForward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                      int N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* x = inp + (long)i * C;
    float m = 0.0f;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    float v = 0.0f;
    for (int c = 0; c < C; c++) {
      float t = x[c] - m;
      v += t * t;
    }
    v /= C;
    float s = 1.0f / std::sqrt(v + eps);
    float* o = out + (long)i * C;
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
    if (mean) mean[i] = m;
    if (rstd) rstd[i] = s;
  }
}

void layernormBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                       const float* mean, const float* rstd, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* g = dout + (long)i * C;
    const float* x = inp + (long)i * C;
    float m = mean[i], s = rstd[i];
    float dnormMean = 0.0f, dnormNormMean = 0.0f;
    for (int c = 0; c < C; c++) {
      float norm = (x[c] - m) * s;
      float dnorm = w[c] * g[c];
      dnormMean += dnorm;
      dnormNormMean += dnorm * norm;
    }
    dnormMean /= C;
    dnormNormMean /= C;
    float* dx = dinp + (long)i * C;
    for (int c = 0; c < C; c++) {
      float norm = (x[c] - m) * s;
      float dnorm = w[c] * g[c];
      dx[c] += (dnorm - dnormMean - norm * dnormNormMean) * s;
    }
  }
  // Parameter gradients: each thread owns a column range and sums rows in order (deterministic).
#pragma omp parallel
  {
#ifdef _OPENMP
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
    int nt = 1, t = 0;
#endif
    int chunk = (C + nt - 1) / nt, lo = std::min(C, t * chunk), hi = std::min(C, lo + chunk);
    for (int i = 0; i < N; i++) {
      const float* g = dout + (long)i * C;
      const float* x = inp + (long)i * C;
      float m = mean[i], s = rstd[i];
      for (int c = lo; c < hi; c++) {
        dw[c] += (x[c] - m) * s * g[c];
        db[c] += g[c];
      }
    }
  }
}

}  // namespace bp
