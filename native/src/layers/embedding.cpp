// Token (+ learned position) embedding lookup and its scatter-add backward.
#include <algorithm>
#include <cstring>

#include "layers.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bp {

static const float* overrideRow(const EmbeddingOverride* ov, int token, int d) {
  if (!ov) return nullptr;
  for (int i = 0; i < ov->count; i++)
    if (ov->ids[i] == token) return ov->rows + (long)i * d;
  return nullptr;
}

void embeddingForward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                      const float* wpe, int N, int d, const EmbeddingOverride* ov) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const float* e = overrideRow(ov, tokens[i], d);
    if (!e) e = wte + (long)tokens[i] * d;
    float* o = out + (long)i * d;
    if (wpe) {
      const float* p = wpe + (long)positions[i] * d;
      for (int c = 0; c < d; c++) o[c] = e[c] + p[c];
    } else {
      std::memcpy(o, e, sizeof(float) * d);
    }
  }
}

void embeddingBackward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                       const int32_t* positions, int N, int d, const EmbeddingOverride* ov) {
  // Columns are split across threads so repeated tokens never race and sums keep a fixed order.
#pragma omp parallel
  {
#ifdef _OPENMP
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
    int nt = 1, t = 0;
#endif
    int chunk = (d + nt - 1) / nt, lo = std::min(d, t * chunk), hi = std::min(d, lo + chunk);
    for (int i = 0; i < N; i++) {
      const float* g = dout + (long)i * d;
      if (!overrideRow(ov, tokens[i], d)) {
        float* w = dwte + (long)tokens[i] * d;
        for (int c = lo; c < hi; c++) w[c] += g[c];
      }
      if (dwpe) {
        float* p = dwpe + (long)positions[i] * d;
        for (int c = lo; c < hi; c++) p[c] += g[c];
      }
    }
  }
}

}  // namespace bp
