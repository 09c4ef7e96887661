// GELU, tanh approximation ("gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#include <cmath>

#include "../fastmath.h"
#include "layers.h"

namespace bp {

static const float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)

void geluForward(float* out, const float* inp, long n) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + fastTanh(kGeluScale * (x + 0.044715f * x * x * x)));
  }
}

void geluBackward(float* dinp, const float* inp, const float* dout, long n) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    float x = inp[i];
    float u = kGeluScale * (x + 0.044715f * x * x * x);
    float th = fastTanh(u);
    float sech2 = 1.0f - th * th;
    float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluScale * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] = grad * dout[i];
  }
}

}  // namespace bp
