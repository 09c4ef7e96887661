// Coarse phase timers for tuning: BACKPACK_PROFILE=1 prints wall seconds per phase to stderr at exit.
#pragma once
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <time.h>

namespace bp {

class Profile {
 public:
  static Profile& get() {
    static Profile p;
    return p;
  }
  bool enabled() const { return enabled_; }
  void add(const char* name, double s, double cpu) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = totals_[name];
    e.wall += s;
    e.cpu += cpu;
    e.calls++;
  }
  static double cpuNow() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
  ~Profile() {
    if (!enabled_ || totals_.empty()) return;
    double all = 0;
    for (auto& [k, v] : totals_) all += v.cpu;
    std::fprintf(stderr, "backpack profile (wall seconds, process CPU seconds):\n");
    for (auto& [k, v] : totals_)
      std::fprintf(stderr, "  %-28s %9.3f s wall %9.3f s cpu %5.1f%%  (%ld calls)\n", k.c_str(), v.wall, v.cpu, 100 * v.cpu / all, v.calls);
  }

 private:
  Profile() : enabled_(std::getenv("BACKPACK_PROFILE") != nullptr) {}
  bool enabled_;
  std::mutex mu_;
  struct Entry {
    double wall = 0, cpu = 0;
    long calls = 0;
  };
  std::map<std::string, Entry> totals_;
};

struct ScopedTimer {
  const char* name;
  std::chrono::steady_clock::time_point t0;
  double c0;
  explicit ScopedTimer(const char* n)
      : name(n), t0(std::chrono::steady_clock::now()), c0(Profile::get().enabled() ? Profile::cpuNow() : 0) {}
  ~ScopedTimer() {
    if (Profile::get().enabled())
      Profile::get().add(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                         Profile::cpuNow() - c0);
  }
};

}  // namespace bp

#define BP_CAT2(a, b) a##b
#define BP_CAT(a, b) BP_CAT2(a, b)
#define BP_PROFILE(name) ::bp::ScopedTimer BP_CAT(bpTimer_, __LINE__)(name)
