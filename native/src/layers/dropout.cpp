// Inverted dropout with counter-based masks: element i of a site is kept when uniform(key, i) >= p.
#include "../rng.h"
#include "layers.h"

namespace bp {

static inline float keepScale(DropoutSite s, long i) {
  return uniform01(s.key, (uint32_t)i) >= s.p ? 1.0f / (1.0f - s.p) : 0.0f;
}

void dropoutForward(float* x, long n, DropoutSite s) {
  if (!s.active()) return;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) x[i] *= keepScale(s, i);
}

void dropoutBackward(float* dx, long n, DropoutSite s) { dropoutForward(dx, n, s); }

void residualDropoutForward(float* out, const float* base, const float* branch, long n, DropoutSite s) {
  if (!s.active()) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) out[i] = base[i] + branch[i];
    return;
  }
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) out[i] = base[i] + branch[i] * keepScale(s, i);
}

}  // namespace bp
