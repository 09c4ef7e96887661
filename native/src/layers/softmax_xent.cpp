// Tied output head and softmax cross-entropy over all V rows (padding rows take part in the softmax but
// are never targets). Rows are processed in chunks so a [N][V] logits tensor never has to exist in training:
// logits -> loss -> dlogits -> dx, dwte, chunk by chunk.
#include <cmath>
#include <cstring>
#include <new>
#include <vector>

#include "../gemm.h"
#include "../profile.h"
#include "../fastmath.h"
#include "layers.h"

namespace bp {

double headForwardBackward(const HeadArgs& a, long* counted) {
  const int N = a.N, d = a.d, V = a.V;
  const bool backward = a.dx != nullptr;
  long count = 0;
  if (a.targets)
    for (int i = 0; i < N; i++) count += a.targets[i] >= 0;
  if (counted) *counted = count;
  const float dscale = count > 0 ? a.gradScale / (float)count : 0.0f;
  std::vector<double> rowLoss(a.targets ? a.chunk : 0);
  double total = 0.0;
  for (int r0 = 0; r0 < N; r0 += a.chunk) {
    const int n = std::min(a.chunk, N - r0);
    float* L = a.logitsOut ? a.logitsOut + (long)r0 * V : a.scratch;
    {
      BP_PROFILE("head.logits");
      gemm(false, true, n, V, d, 1.0f, a.x + (long)r0 * d, d, a.wte, d, 0.0f, L, V);
    }
    if (!a.targets) continue;
    ScopedTimer softmaxTimer("head.softmax");  // includes the dx/dwte GEMMs below
    float* G = L;
    if (backward && a.logitsOut) {
      G = a.scratch;
      std::memcpy(G, L, sizeof(float) * (long)n * V);
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
      const float* row = L + (long)r * V;
      float* grow = G + (long)r * V;
      const int t = a.targets[r0 + r];
      const float target = t >= 0 ? row[t] : 0.0f;  // read before grow (possibly the same memory) is written
      const float mx = maxOf(row, V);
      float sum = 0.0f;
      if (backward) {
        // exp once: keep exp(row - max) in grow, then scale it into the gradient
        for (int j = 0; j < V; j++) {
          const float e = fastExp(row[j] - mx);
          grow[j] = e;
          sum += e;
        }
      } else {
        for (int j = 0; j < V; j++) sum += fastExp(row[j] - mx);
      }
      const float lse = mx + std::log(sum);
      rowLoss[r] = t >= 0 ? (double)(lse - target) : 0.0;
      if (a.lossPerToken) a.lossPerToken[r0 + r] = (float)rowLoss[r];
      if (backward) {
        if (t < 0) {
          std::memset(grow, 0, sizeof(float) * V);
        } else {
          const float s = dscale / sum;
          for (int j = 0; j < V; j++) grow[j] *= s;
          grow[t] -= dscale;
        }
      }
    }
    for (int r = 0; r < n; r++) total += rowLoss[r];
    if (backward) {
      {
        BP_PROFILE("head.dx");
        gemm(false, false, n, d, V, 1.0f, G, V, a.wte, d, 0.0f, a.dx + (long)r0 * d, d);
      }
      BP_PROFILE("head.dwte");
      gemm(true, false, V, d, n, 1.0f, G, V, a.x + (long)r0 * d, d, 1.0f, a.dwte, d);
    }
  }
  return total;
}

}  // namespace bp
