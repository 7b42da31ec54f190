// Where the device's step time goes, when asked for (environment RECLM_DEVICE_PROFILE=1): at each
// mark the device is synchronized and the wall time since the previous mark is added to the
// named phase; the backend prints the table at the end of training. Off (the default) a mark
// costs one branch. Synchronizing at every phase removes the overlap of host and device work, so
// a profiled step is a little slower than an unprofiled one; the shares are what to read.
// RECLM_DEVICE_PROFILE=host instead leaves the step alone and reports how much of the time the
// host spent waiting for the device in its blocking calls (device_runtime.h): near 100%, the
// device is the bottleneck and launching kernels faster (CUDA graphs) cannot pay; well below,
// the host's launches and its own work hold the device back.
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
    const std::string mode = env != nullptr ? env : "";
    host_ = mode == "host";
    on_ = !host_ && !mode.empty() && mode != "0";
    last_ = std::chrono::steady_clock::now();
    blocked_at_start_ = host_blocked_ms();
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
    if (host_) {
      const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - last_).count();
      const double blocked = host_blocked_ms() - blocked_at_start_;
      return fmt::format("\n  host waited for the device {:.1f} ms of {:.1f} ms since the plan ({:.1f}%)", blocked,
                         wall, wall > 0 ? 100.0 * blocked / wall : 0.0);
    }
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
  bool host_ = false;  // RECLM_DEVICE_PROFILE=host
  double blocked_at_start_ = 0.0;
  std::chrono::steady_clock::time_point last_;
  std::vector<std::pair<std::string, double>> ms_;
};

}  // namespace reclm::device
