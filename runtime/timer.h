// Wall-clock timing and process memory, for the per-step log.
#pragma once

#include <chrono>

namespace reclm {

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  void restart() { start_ = std::chrono::steady_clock::now(); }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  double milliseconds() const { return seconds() * 1e3; }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Peak resident set size of this process so far, in MiB (getrusage ru_maxrss).
double peak_rss_mib();

}  // namespace reclm
