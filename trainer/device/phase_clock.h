// Where the device's step time goes, when asked for (environment RECLM_DEVICE_PROFILE=1): at each
// mark the device is synchronized and the wall time since the previous mark is added to the
// named phase; the backend prints the table at the end of training. Off (the default) a mark
// costs one branch. Synchronizing at every phase removes the overlap of host and device work, so
// a profiled step is a little slower than an unprofiled one; the shares are what to read.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "trainer/device/device_runtime.h"

namespace reclm::device {

class PhaseClock {
 public:
  PhaseClock() {
    const char* env = std::getenv("RECLM_DEVICE_PROFILE");
    on_ = env != nullptr && std::string(env) != "0" && std::string(env) != "";
    last_ = std::chrono::steady_clock::now();
  }
  bool on() const { return on_; }
  void mark(const char* phase) {
    if (!on_) return;
    synchronize();
    const auto now = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
    for (auto& [name, total] : ms_) {
      if (name == phase) {
        total += ms;
        return;
      }
    }
    ms_.emplace_back(phase, ms);
  }
  // One line per phase, the largest first: milliseconds and share of the total.
  std::string report() const {
    if (!on_ || ms_.empty()) return "";
    std::vector<std::pair<std::string, double>> rows = ms_;
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    double total = 0.0;
    for (const auto& row : rows) total += row.second;
    std::string out;
    for (const auto& [name, ms] : rows) out += fmt::format("\n  {:<34} {:>10.1f} ms {:>5.1f}%", name, ms, 100.0 * ms / total);
    return out;
  }

 private:
  bool on_ = false;
  std::chrono::steady_clock::time_point last_;
  std::vector<std::pair<std::string, double>> ms_;
};

}  // namespace reclm::device
