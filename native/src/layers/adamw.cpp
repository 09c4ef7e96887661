// AdamW (decoupled weight decay, bias-corrected) and the reductions used for global-norm clipping.
#include <algorithm>
#include <cmath>
#include <vector>

#include "layers.h"

namespace bp {

void adamwUpdate(float* params, const float* grads, float* m, float* v, long n, const AdamWArgs& a, bool decay) {
  const float c1 = 1.0f - (float)std::pow((double)a.beta1, (double)a.step);
  const float c2 = 1.0f - (float)std::pow((double)a.beta2, (double)a.step);
  const float wd = decay ? a.weightDecay : 0.0f;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    float g = grads[i];
    float mi = a.beta1 * m[i] + (1.0f - a.beta1) * g;
    float vi = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float mhat = mi / c1, vhat = vi / c2;
    params[i] -= a.lr * (mhat / (std::sqrt(vhat) + a.eps) + wd * params[i]);
  }
}

// Fixed blocks summed in order, so the result does not depend on the thread count.
double sumSquares(const float* x, long n) {
  const long block = 1 << 16;
  const long nb = (n + block - 1) / block;
  std::vector<double> part(nb, 0.0);
#pragma omp parallel for schedule(static)
  for (long b = 0; b < nb; b++) {
    double s = 0.0;
    for (long i = b * block, e = std::min(n, (b + 1) * block); i < e; i++) s += (double)x[i] * x[i];
    part[b] = s;
  }
  double total = 0.0;
  for (double p : part) total += p;
  return total;
}

void scale(float* x, long n, float s) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) x[i] *= s;
}

}  // namespace bp
