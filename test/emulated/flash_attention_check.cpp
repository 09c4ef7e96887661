// The fused attention kernels of native/src/cuda/flash_attention.cu, run on the CPU emulator (BP_CUDA_EMULATOR=1)
// through their own launch code, against a double-precision reference on the same bf16-rounded inputs: several
// 64-row blocks, ragged last blocks, every instantiated head size, dropout on and off (the mask is the CPU
// backend's hash). Tolerances are the GPU check's (bench/gpu/attention_check.cu). Each case also runs with the
// cp.async copies held back to their wait and with one end of the block's warps running ahead of the others
// (the emulator's skews, which expose a missing wait or __syncthreads), which must not change a single bit.
// Prints one JSON line per check; exits 1 if any failed. The forward kernel variant follows the environment
// knobs, as on the GPU (BACKPACK_CUDA_FLASH_FWD_BLOCKS=4, BACKPACK_CUDA_FLASH_FWD_ROWS=128).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "../../native/src/cuda/layers.cuh"
#include "../../native/src/rng.h"
#include "check_util.h"

namespace {

using namespace bp::cuda;

struct Result {
  std::vector<float> out, lse, dqkv;
};

// Double-precision causal attention forward and backward on packed [q|k|v] rows, dropout on the probabilities.
Result reference(const std::vector<float>& qkv, const std::vector<float>& dout, AttnShape s, Site drop) {
  const int T = s.T, C = s.C, H = s.H, hs = C / H;
  const long ld = 3L * C;
  Result r;
  r.out.assign((long)s.B * T * C, 0.0f);
  r.lse.assign((long)s.B * H * T, 0.0f);
  r.dqkv.assign((long)s.B * T * ld, 0.0f);
  std::vector<double> dq(hs), p(T), keep(T), dk((long)T * hs), dv((long)T * hs);
  for (int b = 0; b < s.B; b++)
    for (int h = 0; h < H; h++) {
      const float* base = qkv.data() + (long)b * T * ld + h * hs;
      auto Q = [&](int i, int c) { return (double)base[(long)i * ld + c]; };
      auto K = [&](int i, int c) { return (double)base[(long)i * ld + C + c]; };
      auto V = [&](int i, int c) { return (double)base[(long)i * ld + 2 * C + c]; };
      std::fill(dk.begin(), dk.end(), 0.0);
      std::fill(dv.begin(), dv.end(), 0.0);
      for (int i = 0; i < T; i++) {
        double mx = -INFINITY;
        for (int j = 0; j <= i; j++) {
          double dot = 0.0;
          for (int c = 0; c < hs; c++) dot += Q(i, c) * K(j, c);
          p[j] = dot * s.scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0.0;
        for (int j = 0; j <= i; j++) sum += std::exp(p[j] - mx);
        for (int j = 0; j <= i; j++) {
          p[j] = std::exp(p[j] - mx) / sum;
          const uint32_t at = drop.offset + (uint32_t)(((long)b * H + h) * T * T + (long)i * T + j);
          keep[j] = drop.p > 0.0f ? (bp::keep16(drop.key, at, bp::keepThreshold16(drop.p)) ? 1.0 / (1.0 - drop.p) : 0.0)
                                  : 1.0;
        }
        r.lse[((long)b * H + h) * T + i] = (float)(mx + std::log(sum));
        const float* dO = dout.data() + ((long)b * T + i) * C + h * hs;
        double D = 0.0;
        for (int c = 0; c < hs; c++) {
          double o = 0.0;
          for (int j = 0; j <= i; j++) o += p[j] * keep[j] * V(j, c);
          r.out[((long)b * T + i) * C + h * hs + c] = (float)o;
          D += o * dO[c];
        }
        std::fill(dq.begin(), dq.end(), 0.0);
        for (int j = 0; j <= i; j++) {
          double dp = 0.0;
          for (int c = 0; c < hs; c++) dp += dO[c] * V(j, c);
          const double dS = p[j] * (keep[j] * dp - D) * s.scale;
          for (int c = 0; c < hs; c++) {
            dq[c] += dS * K(j, c);
            dk[(long)j * hs + c] += dS * Q(i, c);
            dv[(long)j * hs + c] += p[j] * keep[j] * dO[c];
          }
        }
        for (int c = 0; c < hs; c++) r.dqkv[((long)b * T + i) * ld + h * hs + c] = (float)dq[c];
      }
      for (int j = 0; j < T; j++)
        for (int c = 0; c < hs; c++) {
          r.dqkv[((long)b * T + j) * ld + C + h * hs + c] = (float)dk[(long)j * hs + c];
          r.dqkv[((long)b * T + j) * ld + 2 * C + h * hs + c] = (float)dv[(long)j * hs + c];
        }
    }
  return r;
}

enum class Mask { Kept, Recomputed };

// The fused kernels as the model runs them; grad16: dqkv written in bf16 and widened back here.
Result fused(const std::vector<half16>& qkv16, const std::vector<float>& dout, AttnShape s, Site drop, Mask mask,
             bool grad16) {
  const long N = (long)s.B * s.T;
  Result r;
  r.out.assign(N * s.C, 0.0f);
  r.lse.assign((long)s.B * s.H * s.T, 0.0f);
  r.dqkv.assign(N * 3 * s.C, 0.0f);
  std::vector<half16> out16(N * s.C), dout16(N * s.C), dqkv16(N * 3 * s.C);
  std::vector<uint64_t> bits(flashKeepWords(s));
  std::vector<float> scratch(flashBackwardScratchFloats(s) + 4);
  uint64_t* keep = mask == Mask::Kept ? bits.data() : nullptr;
  flashAttentionForward(r.out.data(), out16.data(), r.lse.data(), qkv16.data(), s, drop, keep, nullptr);
  flashAttentionBackward(grad16 ? nullptr : r.dqkv.data(), grad16 ? dqkv16.data() : nullptr, dout.data(), r.out.data(),
                         qkv16.data(), r.lse.data(), s, drop, keep, scratch.data(), dout16.data(), nullptr);
  if (grad16)
    for (size_t i = 0; i < dqkv16.size(); i++) r.dqkv[i] = widen16(dqkv16[i]);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  struct Case {
    int B, T, H, hs;
    float p;
    uint32_t offset;  // the dropout site's offset: odd puts every row's draws across two hashes (keep16)
  };
  const Case cases[] = {{2, 200, 3, 64, 0.1f, 0}, {1, 200, 2, 64, 0.0f, 0}, {1, 130, 2, 80, 0.1f, 0},
                        {3, 77, 4, 16, 0.1f, 0},  {2, 128, 2, 32, 0.0f, 0}, {1, 96, 5, 48, 0.1f, 7}};
  const int count = check::caseCount(argc, argv, (int)(sizeof cases / sizeof cases[0]));
  check::Report report{"flash_attention"};
  try {
    for (int c = 0; c < count; c++) {
      const Case& k = cases[c];
      const AttnShape s{k.B, k.T, k.H * k.hs, k.H, 0.7f / std::sqrt((float)k.hs)};
      const Site drop{k.p, 0x5eed1234u, k.offset};
      if (!flashAttentionSupported(s)) throw bp::Error("shape not supported by the fused kernels");
      const long N = (long)s.B * s.T;
      std::mt19937 gen(11);
      std::normal_distribution<float> nd(0.0f, 1.5f);
      std::vector<half16> qkv16(N * 3 * s.C);
      std::vector<float> qkv(N * 3 * s.C), dout(N * s.C);
      for (size_t i = 0; i < qkv.size(); i++) {
        qkv16[i] = round16(nd(gen));
        qkv[i] = widen16(qkv16[i]);  // the reference sees the rounded inputs
      }
      for (auto& x : dout) x = nd(gen) / 1.5f;
      char shape[96];
      std::snprintf(shape, sizeof shape, "B=%d T=%d H=%d hs=%d dropout=%.1f offset=%u", k.B, k.T, k.H, k.hs, k.p,
                    k.offset);

      const Result ref = reference(qkv, dout, s, drop);
      const Result got = fused(qkv16, dout, s, drop, Mask::Kept, false);
      const long C3 = 3L * s.C;
      auto part = [&](int which) { return [=](size_t i) { return (long)(i % C3) / s.C == which; }; };
      auto all = [](size_t) { return true; };
      report.line("out", shape, check::relErr(got.out, ref.out, all), 2e-2);
      report.line("lse", shape, check::relErr(got.lse, ref.lse, all), 2e-3);
      report.line("dq", shape, check::relErr(got.dqkv, ref.dqkv, part(0)), 3e-2);
      report.line("dk", shape, check::relErr(got.dqkv, ref.dqkv, part(1)), 3e-2);
      report.line("dv", shape, check::relErr(got.dqkv, ref.dqkv, part(2)), 3e-2);

      // the same bits whatever the copies' timing and the order the warps run in, the kept mask or the recomputed
      // one; bf16 = fp32 rounded
      for (const check::Skew& skew : check::kSkews) {
        const Result other = check::skewed(skew, [&] { return fused(qkv16, dout, s, drop, Mask::Kept, false); });
        report.line(std::string(skew.what) + ": out and dqkv bit-identical", shape,
                    std::max(check::maxDiff(other.out, got.out), check::maxDiff(other.dqkv, got.dqkv)), 0.0);
      }
      const Result rec = fused(qkv16, dout, s, drop, Mask::Recomputed, false);
      report.line("dqkv, kept vs recomputed dropout mask", shape, check::maxDiff(rec.dqkv, got.dqkv), 0.0);
      const Result g16 = fused(qkv16, dout, s, drop, Mask::Kept, true);
      std::vector<float> rounded(got.dqkv.size());
      for (size_t i = 0; i < rounded.size(); i++) rounded[i] = widen16(round16(got.dqkv[i]));
      report.line("dqkv written in bf16 vs the fp32 one rounded", shape, check::maxDiff(g16.dqkv, rounded), 0.0);
    }
  } catch (const std::exception& e) {
    report.error(e.what());
  }
  return report.failures ? 1 : 0;
}
