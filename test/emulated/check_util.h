// Shared by the emulated kernel checks: error measures, the JSON report lines, the emulator's skews and the
// cudaFail the kernels' launch code links against (there is no cudart in these programs).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../../native/src/cuda/common.cuh"
#include "../../native/src/cuda/emulator/emulator.h"

namespace bp::cuda {
[[noreturn]] void cudaFail(cudaError_t e, const char* what, const char* file, int line) {
  throw Error(std::string("CUDA emulator: ") + what + " failed (" + std::to_string((int)e) + ") at " + file + ":" +
              std::to_string(line));
}
}  // namespace bp::cuda

namespace check {

// ||a - ref|| / ||ref|| over the elements pick(i) selects
template <class Pick>
double relErr(const std::vector<float>& a, const std::vector<float>& ref, Pick pick) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); i++) {
    if (!pick(i)) continue;
    const double d = (double)a[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}
inline double relErr(const std::vector<float>& a, const std::vector<float>& ref) {
  return relErr(a, ref, [](size_t) { return true; });
}

// The largest elementwise difference (a NaN anywhere counts as infinite)
inline double maxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); i++) {
    const double d = std::fabs((double)a[i] - b[i]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

struct Report {
  const char* kernel;
  int failures = 0;
  void line(const std::string& what, const std::string& shape, double err, double tol) {
    const bool ok = std::isfinite(err) && err <= tol;
    failures += !ok;
    std::printf(
        "{\"check\":\"emulated\",\"kernel\":\"%s\",\"what\":\"%s (%s)\",\"rel_err\":%.3e,\"tol\":%.1e,"
        "\"ok\":%s}\n",
        kernel, what.c_str(), shape.c_str(), err, tol, ok ? "true" : "false");
    std::fflush(stdout);
  }
  void error(const char* message) {
    failures++;
    std::printf("{\"check\":\"emulated\",\"kernel\":\"%s\",\"error\":\"%s\",\"ok\":false}\n", kernel, message);
  }
};

// The runs besides the default (eager copies, round robin) that must give the same bits: copies landing at their
// wait with the low warps running ahead (a missing wait or __syncthreads shows), and the high warps ahead.
struct Skew {
  bp::emu::CopyMode copies;
  bp::emu::Schedule order;
  const char* what;
};
inline const Skew kSkews[] = {
    {bp::emu::CopyMode::AtWait, bp::emu::Schedule::LowWarpsFirst, "cp.async landing at the wait, low warps first"},
    {bp::emu::CopyMode::Eager, bp::emu::Schedule::HighWarpsFirst, "high warps first"}};

// Runs f under a skew, then restores the default
template <class F>
auto skewed(const Skew& skew, F f) {
  bp::emu::setCopyMode(skew.copies);
  bp::emu::setSchedule(skew.order);
  auto r = f();
  bp::emu::setCopyMode(bp::emu::CopyMode::Eager);
  bp::emu::setSchedule(bp::emu::Schedule::RoundRobin);
  return r;
}

// --cases N: only the first N shapes (the mutation tests need one)
inline int caseCount(int argc, char** argv, int all) {
  if (argc == 3 && std::string(argv[1]) == "--cases") return std::min(all, std::atoi(argv[2]));
  return all;
}

}  // namespace check
