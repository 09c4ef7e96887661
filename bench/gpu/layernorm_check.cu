// `harness layernorm`: the vectorised LayerNorm kernels the bf16 mode runs against the scalar forward and the
// per-warp backward (their fallbacks for other widths), at the widths the tiny parity models never reach (every
// C = 128 * k they have, a ragged last block of rows), the backward accumulating into non-zero dinp/dw/db as the
// model does; then both backward kernels' time at the Small shape.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "../../native/src/cuda/layers.cuh"
#include "check_util.cuh"

namespace bp::BP_CUDA_NS {
namespace {

struct DeviceBuf {
  float* p = nullptr;
  explicit DeviceBuf(const std::vector<float>& h) {
    BP_CUDA(cudaMalloc(&p, sizeof(float) * std::max<size_t>(1, h.size())));
    BP_CUDA(cudaMemcpy(p, h.data(), sizeof(float) * h.size(), cudaMemcpyHostToDevice));
  }
  ~DeviceBuf() { cudaFree(p); }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
  std::vector<float> pull(size_t n) const {
    std::vector<float> h(n);
    BP_CUDA(cudaMemcpy(h.data(), p, sizeof(float) * n, cudaMemcpyDeviceToHost));
    return h;
  }
};

using check::relErr;

struct Result {
  std::vector<float> dinp, dw, db;
  double ms = 0.0;
};

// One kind's backward from the same starting values (timed over `reps` further calls when reps > 0)
Result run(LnBackward kind, int N, int C, const std::vector<float>& dinp0, const std::vector<float>& dw0,
           const std::vector<float>& db0, const DeviceBuf& dout, const DeviceBuf& inp, const DeviceBuf& w,
           const DeviceBuf& mean, const DeviceBuf& rstd, int reps) {
  DeviceBuf dinp(dinp0), dw(dw0), db(db0);
  auto once = [&] { layernormBackward(dinp.p, dw.p, db.p, dout.p, inp.p, w.p, mean.p, rstd.p, N, C, nullptr, kind); };
  once();
  BP_CUDA(cudaDeviceSynchronize());
  Result r{dinp.pull(dinp0.size()), dw.pull(dw0.size()), db.pull(db0.size())};
  if (reps > 0) r.ms = check::meanMs(once, reps, nullptr);
  return r;
}

}  // namespace

// Returns the number of failed checks; prints one JSON line per check and per timing.
int layernormCheck() {
  int failures = 0;
  struct Case {
    int N, C, reps;
  };
  const Case cases[] = {{1000, 128, 0}, {1000, 384, 0}, {777, 640, 0}, {1000, 768, 0}, {513, 1024, 0},
                        {8192, 768, 50}};
  for (const Case& k : cases) {
    std::mt19937 gen(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    auto fill = [&](size_t n, float scale, float shift) {
      std::vector<float> v(n);
      for (auto& x : v) x = nd(gen) * scale + shift;
      return v;
    };
    const long NC = (long)k.N * k.C;
    // one parity line per compared output of a vectorised kernel (`pass`: forward or backward)
    auto report = [&](const char* pass, const char* what, double err) {
      const bool ok = std::isfinite(err) && err <= 1e-5;
      failures += !ok;
      std::printf("{\"check\":\"parity\",\"arch\":\"layernorm\",\"precision\":\"fp32\",\"what\":\"vectorised %s %s "
                  "(N=%d C=%d)\",\"rel_err\":%.3e,\"tol\":1e-05,\"ok\":%s}\n",
                  pass, what, k.N, k.C, err, ok ? "true" : "false");
    };
    const DeviceBuf dout(fill(NC, 1.0f, 0.0f)), inp(fill(NC, 2.0f, 0.5f)), w(fill(k.C, 0.2f, 1.0f)),
        b(fill(k.C, 0.1f, 0.0f));
    // mean and rstd as the forward pass leaves them
    std::vector<float> none((size_t)NC);
    DeviceBuf out(none), mean(std::vector<float>(k.N)), rstd(std::vector<float>(k.N));
    layernormForward(out.p, mean.p, rstd.p, inp.p, w.p, b.p, k.N, k.C, 1e-5f, nullptr);
    {  // the vectorised forward (the bf16 mode's) against the scalar one
      DeviceBuf outV(none), meanV(std::vector<float>(k.N)), rstdV(std::vector<float>(k.N));
      layernormForward(outV.p, meanV.p, rstdV.p, inp.p, w.p, b.p, k.N, k.C, 1e-5f, nullptr, nullptr, true);
      report("forward", "out", relErr(outV.pull(NC), out.pull(NC)));
      report("forward", "mean", relErr(meanV.pull(k.N), mean.pull(k.N)));
      report("forward", "rstd", relErr(rstdV.pull(k.N), rstd.pull(k.N)));
    }
    const auto dinp0 = fill(NC, 0.5f, 0.0f), dw0 = fill(k.C, 1.0f, 0.0f), db0 = fill(k.C, 1.0f, 0.0f);
    const Result ref = run(LnBackward::WarpPrivate, k.N, k.C, dinp0, dw0, db0, dout, inp, w, mean, rstd, k.reps);
    const Result vec = run(LnBackward::Vectorized, k.N, k.C, dinp0, dw0, db0, dout, inp, w, mean, rstd, k.reps);
    report("backward", "dinp", relErr(vec.dinp, ref.dinp));
    report("backward", "dw", relErr(vec.dw, ref.dw));
    report("backward", "db", relErr(vec.db, ref.db));
    if (k.reps > 0)
      std::printf("{\"check\":\"layernorm-time\",\"shape\":\"N=%d C=%d\",\"vectorised_ms\":%.4f,\"per_warp_ms\":%.4f,"
                  "\"speedup\":%.2f}\n",
                  k.N, k.C, vec.ms, ref.ms, ref.ms / vec.ms);
    std::fflush(stdout);
  }
  return failures;
}

}  // namespace bp::BP_CUDA_NS
