// Coarse phase timers for tuning: BACKPACK_PROFILE=1 prints wall seconds per phase to stderr at exit.
#pragma once
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace bp {

class Profile {
 public:
  static Profile& get() {
    static Profile p;
    return p;
  }
  bool enabled() const { return enabled_; }
  void add(const char* name, double s) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = totals_[name];
    e.first += s;
    e.second++;
  }
  ~Profile() {
    if (!enabled_ || totals_.empty()) return;
    double all = 0;
    for (auto& [k, v] : totals_) all += v.first;
    std::fprintf(stderr, "backpack profile (wall seconds):\n");
    for (auto& [k, v] : totals_) std::fprintf(stderr, "  %-28s %9.3f s  %5.1f%%  (%ld calls)\n", k.c_str(), v.first, 100 * v.first / all, v.second);
  }

 private:
  Profile() : enabled_(std::getenv("BACKPACK_PROFILE") != nullptr) {}
  bool enabled_;
  std::mutex mu_;
  std::map<std::string, std::pair<double, long>> totals_;
};

struct ScopedTimer {
  const char* name;
  std::chrono::steady_clock::time_point t0;
  explicit ScopedTimer(const char* n) : name(n), t0(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() {
    if (Profile::get().enabled())
      Profile::get().add(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
};

}  // namespace bp

#define BP_CAT2(a, b) a##b
#define BP_CAT(a, b) BP_CAT2(a, b)
#define BP_PROFILE(name) ::bp::ScopedTimer BP_CAT(bpTimer_, __LINE__)(name)
