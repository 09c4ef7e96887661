// The fused Backpack contextualization (native/src/cuda/backpack_flash.cu) on the CPU emulator, through its launch
// code, against a double-precision reference on the same bf16-rounded inputs: the row log-sum-exp of every sense
// and the output o_i = sum_l sum_{j<=i} alpha_l[i,j] C(x_j)_l, on every padded head width (d/k = 16, 24, 40, 48,
// 64, 80), ragged query and key blocks, several column blocks, and the alpha edit of the interventions.
// Tolerances are the attention check's. Each case also runs under the emulator's skews, bit-identical.
// Prints one JSON line per check; exits 1 if any failed.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../../native/src/cuda/layers.cuh"
#include "check_util.h"

namespace {

using namespace bp::cuda;

struct Inputs {
  CtxShape s;
  std::vector<half16> qk16, senses16;
  std::vector<float> qk, senses;  // the same values, widened
  std::vector<uint8_t> keyMask;   // [B][T]
  AlphaEdit edit;                 // keyMask set by the caller
};

struct Result {
  std::vector<float> out, lse;
};

Result reference(const Inputs& in) {
  const CtxShape& s = in.s;
  const int T = s.T, d = s.d, k = s.k, dk = d / k;
  const double scale = 1.0 / std::sqrt((double)dk);
  Result r;
  r.out.assign((long)s.B * T * d, 0.0f);
  r.lse.assign((long)s.B * k * T, 0.0f);
  std::vector<double> a(T), o(d);
  for (int b = 0; b < s.B; b++)
    for (int i = 0; i < T; i++) {
      std::fill(o.begin(), o.end(), 0.0);
      for (int l = 0; l < k; l++) {
        const float* q = in.qk.data() + ((long)b * T + i) * 2 * d + l * dk;
        double mx = -INFINITY;
        for (int j = 0; j <= i; j++) {
          const float* key = in.qk.data() + ((long)b * T + j) * 2 * d + d + l * dk;
          double dot = 0.0;
          for (int c = 0; c < dk; c++) dot += (double)q[c] * key[c];
          a[j] = dot * scale;
          mx = std::max(mx, a[j]);
        }
        double sum = 0.0;
        for (int j = 0; j <= i; j++) sum += std::exp(a[j] - mx);
        r.lse[((long)b * k + l) * T + i] = (float)(mx + std::log(sum));
        for (int j = 0; j <= i; j++) {
          double w = std::exp(a[j] - mx) / sum;
          if (in.edit.keyMask && l == in.edit.sense && in.keyMask[(long)b * T + j]) w *= in.edit.factor;
          const float* sense = in.senses.data() + (((long)b * T + j) * k + l) * d;
          for (int c = 0; c < d; c++) o[c] += w * sense[c];
        }
      }
      for (int c = 0; c < d; c++) r.out[((long)b * T + i) * d + c] = (float)o[c];
    }
  return r;
}

Result fused(const Inputs& in) {
  Result r;
  r.out.assign((long)in.s.B * in.s.T * in.s.d, 0.0f);
  r.lse.assign((long)in.s.B * in.s.k * in.s.T, 0.0f);
  backpackFlashForward(r.out.data(), r.lse.data(), in.qk16.data(), in.senses16.data(), in.s,
                       in.edit.keyMask ? &in.edit : nullptr, nullptr);
  return r;
}

Inputs makeInputs(CtxShape s, bool edit, unsigned seed) {
  Inputs in;
  in.s = s;
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto fill = [&](std::vector<half16>& h, std::vector<float>& f, long n, float sd) {
    h.resize(n);
    f.resize(n);
    for (long i = 0; i < n; i++) {
      h[i] = round16(nd(gen) * sd);
      f[i] = widen16(h[i]);  // the reference sees the rounded inputs
    }
  };
  // query/key entries of sd 1.5 give scores of sd ~1.5 sqrt(d/k) * scale: peaked and flat rows both occur
  fill(in.qk16, in.qk, (long)s.B * s.T * 2 * s.d, 1.5f);
  fill(in.senses16, in.senses, (long)s.B * s.T * s.k * s.d, 1.0f);
  in.keyMask.resize((long)s.B * s.T);
  for (auto& m : in.keyMask) m = gen() % 3 == 0;
  if (edit) in.edit = AlphaEdit{1, 0.25f, in.keyMask.data()};
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  struct Case {
    int B, T, d, k;
    bool edit;
  };
  // d/k = 48 (Small), 40 (Mini), 24 (Micro), 16, 64, 80; T with ragged and several 64-row blocks
  const Case cases[] = {{2, 130, 192, 4, false}, {1, 77, 320, 8, false}, {2, 100, 192, 8, true},
                        {1, 64, 64, 4, false},   {1, 90, 128, 2, false}, {1, 70, 320, 4, true}};
  const int count = check::caseCount(argc, argv, (int)(sizeof cases / sizeof cases[0]));
  check::Report report{"backpack_flash"};
  try {
    for (int c = 0; c < count; c++) {
      const Case& k = cases[c];
      const CtxShape s{k.B, k.T, k.d, k.k, true};
      if (!backpackFlashSupported(s)) throw bp::Error("shape not supported by the fused kernels");
      const Inputs in = makeInputs(s, k.edit, 7 + c);
      char shape[96];
      std::snprintf(shape, sizeof shape, "B=%d T=%d d=%d k=%d d/k=%d%s", k.B, k.T, k.d, k.k, k.d / k.k,
                    k.edit ? " alpha edit" : "");
      const Result ref = reference(in);
      const Result got = fused(in);
      report.line("out", shape, check::relErr(got.out, ref.out), 2e-2);
      report.line("lse", shape, check::relErr(got.lse, ref.lse), 2e-3);
      for (const check::Skew& skew : check::kSkews) {
        const Result other = check::skewed(skew, [&] { return fused(in); });
        report.line(std::string(skew.what) + ": out and lse bit-identical", shape,
                    std::max(check::maxDiff(other.out, got.out), check::maxDiff(other.lse, got.lse)), 0.0);
      }
    }
  } catch (const std::exception& e) {
    report.error(e.what());
  }
  return report.failures ? 1 : 0;
}
