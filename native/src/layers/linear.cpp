// Fully connected layer y = x W^T + b with W in Linear layout [OC][IC] (Conv1D checkpoints are transposed
// at load/save time, so kernels see one layout).
#include <algorithm>

#include "../gemm.h"
#include "layers.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bp {

void linearForward(float* out, const float* inp, const float* w, const float* b, int N, int IC, int OC) {
  gemm(false, true, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
  if (!b) return;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    float* o = out + (long)i * OC;
    for (int j = 0; j < OC; j++) o[j] += b[j];
  }
}

void linearBackward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w, int N,
                    int IC, int OC, bool accumulate) {
  if (dinp) gemm(false, false, N, IC, OC, 1.0f, dout, OC, w, IC, accumulate ? 1.0f : 0.0f, dinp, IC);
  gemm(true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
  if (!db) return;
#pragma omp parallel
  {
#ifdef _OPENMP
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
    int nt = 1, t = 0;
#endif
    int chunk = (OC + nt - 1) / nt, lo = std::min(OC, t * chunk), hi = std::min(OC, lo + chunk);
    for (int i = 0; i < N; i++) {
      const float* g = dout + (long)i * OC;
      for (int j = lo; j < hi; j++) db[j] += g[j];
    }
  }
}

}  // namespace bp
