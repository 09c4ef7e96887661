// `harness attention`: the fused attention kernels (flash_attention.cu) against the batched-GEMM path of
// attention.cu on shapes the tiny parity models never reach (several 64-row blocks, ragged last block, every
// instantiated head size, dropout on and off), then the time of one forward + backward, and of the forward alone, at the Small shape (dropout 0.1 and 0).
// Reference: the fp32-operand batched path with strict fp32 GEMMs; the bf16 batched path is measured against the
// same reference, so the fused kernels' error can be read beside the error bf16 operands cause anyway.
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../../native/src/cuda/layers.cuh"
#include "check_util.cuh"

namespace bp::BP_CUDA_NS {
namespace {

template <class T>
struct Buf {
  T* p = nullptr;
  explicit Buf(long n) { BP_CUDA(cudaMalloc(&p, sizeof(T) * std::max(1L, n))); }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
};

std::vector<float> pull(const float* d, long n) {
  std::vector<float> h(n);
  BP_CUDA(cudaMemcpy(h.data(), d, sizeof(float) * n, cudaMemcpyDeviceToHost));
  return h;
}

using check::relErr;

struct Run {  // one path's outputs
  std::vector<float> out, lse, dqkv;
  double ms = 0.0, forwardMs = 0.0;  // forward + backward, forward alone
};

// Flash: the fused kernels with the dropout mask kept as bits between the passes (as the model runs them);
// FlashRecompute: the same without the bits (the backward kernels hash the mask again); FlashGrad16: as Flash,
// with dqkv written in bf16 (BACKPACK_CUDA_GRAD16), widened back to fp32 here.
enum class Path { Fp32, Batched16, Flash, FlashRecompute, FlashGrad16 };

Run runPath(Path path, const Blas& blas, const float* qkv, const half16* qkv16, const float* dout, AttnShape s,
            Site drop, int timedReps) {
  const long N = (long)s.B * s.T, TT = (long)s.T * s.T;
  Buf<float> out(N * s.C), lse((long)s.B * s.H * s.T), dqkv(N * 3 * s.C);
  Buf<half16> out16(N * s.C), dout16(N * s.C), dqkv16(N * 3 * s.C);
  const bool fused = path != Path::Fp32 && path != Path::Batched16;
  const int seqs = fused ? s.B : 1;
  Buf<float> scratch(fused ? flashBackwardScratchFloats(s) : (long)seqs * 3 * s.H * TT);
  Buf<const float*> ptrs(10L * s.B * s.H);
  Buf<uint64_t> bits(flashKeepWords(s));
  AttnWork w{seqs, scratch.p, ptrs.p, fused, path == Path::FlashRecompute ? nullptr : bits.p};
  const half16* q16 = path == Path::Fp32 ? nullptr : qkv16;
  auto forward = [&] { attentionForward(blas, out.p, lse.p, qkv, s, drop, w, q16, q16 ? out16.p : nullptr); };
  auto once = [&] {
    forward();
    attentionBackward(blas, dqkv.p, dout, out.p, qkv, lse.p, s, drop, w, q16, q16 ? dout16.p : nullptr,
                      path == Path::FlashGrad16 ? dqkv16.p : nullptr);
  };
  once();
  BP_CUDA(cudaStreamSynchronize(blas.stream));
  Run r;
  r.out = pull(out.p, N * s.C);
  r.lse = pull(lse.p, (long)s.B * s.H * s.T);
  if (path == Path::FlashGrad16) {
    std::vector<half16> h(N * 3 * s.C);
    BP_CUDA(cudaMemcpy(h.data(), dqkv16.p, sizeof(half16) * h.size(), cudaMemcpyDeviceToHost));
    r.dqkv.resize(h.size());
    for (size_t i = 0; i < h.size(); i++) r.dqkv[i] = widen16(h[i]);
  } else {
    r.dqkv = pull(dqkv.p, N * 3 * s.C);
  }
  if (timedReps > 0) {
    r.ms = check::meanMs(once, timedReps, blas.stream);
    r.forwardMs = check::meanMs(forward, timedReps, blas.stream);
  }
  return r;
}

}  // namespace

// Returns the number of failed checks; prints one JSON line per check and per timing.
int attentionCheck() {
  Blas blas;
  if (cublasCreate(&blas.handle) != CUBLAS_STATUS_SUCCESS) throw Error("cuBLAS: cannot create a handle");
  BP_CUDA(cudaStreamCreate(&blas.stream));
  cublasSetStream(blas.handle, blas.stream);
  int failures = 0;
  struct Case {
    int B, T, H, hs;
    float p;
    int reps;
  };
  const Case cases[] = {{2, 200, 3, 64, 0.1f, 0}, {2, 200, 3, 64, 0.0f, 0}, {1, 130, 2, 80, 0.1f, 0},
                        {3, 77, 4, 16, 0.1f, 0},  {2, 128, 2, 32, 0.0f, 0}, {2, 96, 16, 48, 0.1f, 0},
                        {16, 512, 12, 64, 0.1f, 20}, {16, 512, 12, 64, 0.0f, 20}};
  for (const Case& k : cases) {
    AttnShape s{k.B, k.T, k.H * k.hs, k.H, 0.7f / std::sqrt((float)k.hs)};
    const Site drop{k.p, 0x5eed1234u};
    const long N = (long)s.B * s.T;
    std::mt19937 gen(11);
    std::normal_distribution<float> nd(0.0f, 1.5f);
    std::vector<float> hq(N * 3 * s.C), hd(N * s.C);
    for (auto& x : hq) x = nd(gen);
    for (auto& x : hd) x = nd(gen) / 1.5f;
    Buf<float> qkv(N * 3 * s.C), dout(N * s.C);
    Buf<half16> qkv16(N * 3 * s.C);
    BP_CUDA(cudaMemcpy(qkv.p, hq.data(), sizeof(float) * hq.size(), cudaMemcpyHostToDevice));
    BP_CUDA(cudaMemcpy(dout.p, hd.data(), sizeof(float) * hd.size(), cudaMemcpyHostToDevice));
    toHalf16(qkv16.p, qkv.p, N * 3 * s.C, blas.stream);
    // The reference sees the bf16-rounded inputs, so only the kernels' own arithmetic differs.
    Buf<float> qkvR(N * 3 * s.C);
    {
      std::vector<float> r(hq.size());
      std::vector<half16> h16(hq.size());
      BP_CUDA(cudaMemcpy(h16.data(), qkv16.p, sizeof(half16) * h16.size(), cudaMemcpyDeviceToHost));
      for (size_t i = 0; i < r.size(); i++) r[i] = widen16(h16[i]);
      BP_CUDA(cudaMemcpy(qkvR.p, r.data(), sizeof(float) * r.size(), cudaMemcpyHostToDevice));
    }
    if (!flashAttentionSupported(s)) throw Error("attention check: shape not supported by the fused kernels");
    blas.compute = CUBLAS_COMPUTE_32F_PEDANTIC;
    const Run ref = runPath(Path::Fp32, blas, qkvR.p, nullptr, dout.p, s, drop, 0);
    blas.compute = CUBLAS_COMPUTE_32F_FAST_16BF;
    const Run bat = runPath(Path::Batched16, blas, qkvR.p, qkv16.p, dout.p, s, drop, k.reps);
    const Run fla = runPath(Path::Flash, blas, qkvR.p, qkv16.p, dout.p, s, drop, k.reps);
    const Run rec = runPath(Path::FlashRecompute, blas, qkvR.p, qkv16.p, dout.p, s, drop, 0);
    const Run g16 = runPath(Path::FlashGrad16, blas, qkvR.p, qkv16.p, dout.p, s, drop, 0);
    const long C3 = 3L * s.C;
    auto part = [&](int which) { return [=](size_t i) { return (long)(i % C3) / s.C == which; }; };
    auto all = [](size_t) { return true; };
    struct Item {
      const char* what;
      double flash, batched, tol;
    };
    const Item items[] = {
        {"out", relErr(fla.out, ref.out, all), relErr(bat.out, ref.out, all), 2e-2},
        {"lse", relErr(fla.lse, ref.lse, all), relErr(bat.lse, ref.lse, all), 2e-3},
        {"dq", relErr(fla.dqkv, ref.dqkv, part(0)), relErr(bat.dqkv, ref.dqkv, part(0)), 3e-2},
        {"dk", relErr(fla.dqkv, ref.dqkv, part(1)), relErr(bat.dqkv, ref.dqkv, part(1)), 3e-2},
        {"dv", relErr(fla.dqkv, ref.dqkv, part(2)), relErr(bat.dqkv, ref.dqkv, part(2)), 3e-2},
    };
    // the kept mask and the recomputed one are the same bits: identical gradients
    auto maxDiff = [](const std::vector<float>& a, const std::vector<float>& b) {
      double m = 0.0;
      for (size_t i = 0; i < a.size(); i++) m = std::max(m, (double)std::fabs(a[i] - b[i]));
      return m;
    };
    const double maskDiff = maxDiff(rec.dqkv, fla.dqkv);
    // the bf16 gradient output is the fp32 one rounded to nearest, element for element
    std::vector<float> rounded(fla.dqkv.size());
    for (size_t i = 0; i < rounded.size(); i++) rounded[i] = widen16(round16(fla.dqkv[i]));
    const double grad16Diff = maxDiff(g16.dqkv, rounded);
    char shape[96];
    std::snprintf(shape, sizeof shape, "B=%d T=%d H=%d hs=%d dropout=%.1f", k.B, k.T, k.H, k.hs, k.p);
    for (const Item& it : items) {
      const bool ok = std::isfinite(it.flash) && it.flash <= it.tol;
      failures += !ok;
      std::printf("{\"check\":\"parity\",\"arch\":\"attention\",\"precision\":\"bf16\",\"what\":\"fused %s (%s)\","
                  "\"rel_err\":%.3e,\"tol\":%.1e,\"ok\":%s,\"batched_bf16_rel_err\":%.3e}\n",
                  it.what, shape, it.flash, it.tol, ok ? "true" : "false", it.batched);
    }
    failures += maskDiff != 0.0;
    std::printf("{\"check\":\"parity\",\"arch\":\"attention\",\"precision\":\"bf16\",\"what\":\"fused dqkv, kept vs "
                "recomputed dropout mask (%s)\",\"rel_err\":%.3e,\"tol\":0,\"ok\":%s}\n",
                shape, maskDiff, maskDiff == 0.0 ? "true" : "false");
    failures += grad16Diff != 0.0;
    std::printf(
        "{\"check\":\"parity\",\"arch\":\"attention\",\"precision\":\"bf16\",\"what\":\"fused dqkv written in bf16 "
        "vs the fp32 one rounded (%s)\",\"rel_err\":%.3e,\"tol\":0,\"ok\":%s}\n",
        shape, grad16Diff, grad16Diff == 0.0 ? "true" : "false");
    if (k.reps > 0) {
      // the forward kernel's experiment knobs, when a run sets them (flash_attention.cu)
      const char* blocks = std::getenv("BACKPACK_CUDA_FLASH_FWD_BLOCKS");
      const char* rows = std::getenv("BACKPACK_CUDA_FLASH_FWD_ROWS");
      // the forward pass's causal FLOPs: QK^T and PV over the T(T+1)/2 (query, key) pairs of every head
      const double flops = 4.0 * s.B * s.H * (s.T * (s.T + 1.0) / 2.0) * k.hs;
      std::printf("{\"check\":\"attention-time\",\"shape\":\"%s\",\"fused_ms\":%.3f,\"batched_bf16_ms\":%.3f,"
                  "\"speedup\":%.2f,\"fused_forward_ms\":%.4f,\"fused_forward_tflops\":%.1f,"
                  "\"batched_bf16_forward_ms\":%.4f,\"flash_fwd_blocks\":%d,\"flash_fwd_rows\":%d}\n",
                  shape, fla.ms, bat.ms, bat.ms / fla.ms, fla.forwardMs, flops / (fla.forwardMs * 1e9), bat.forwardMs,
                  blocks ? std::atoi(blocks) : 0, rows ? std::atoi(rows) : 0);
    }
    std::fflush(stdout);
  }
  cublasDestroy(blas.handle);
  cudaStreamDestroy(blas.stream);
  return failures;
}

}  // namespace bp::BP_CUDA_NS
