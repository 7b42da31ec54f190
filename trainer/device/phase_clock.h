// Where the device's step time goes, when asked for (environment RECLM_DEVICE_PROFILE=1): each
// mark records a point on the compute stream (device_runtime.h StreamPoint: a CUDA event), and
// the device time between one point and the next is added to the named phase. Nothing waits, so
// the profiled step runs at full speed; a phase's time is the device's time from the previous
// mark to its own, including any time the device sat idle waiting for the host to launch the
// phase's work. The points are read at the start of each step (the previous step's ended with
// the gradient norm's copy, so they are reached) and at the report.
// RECLM_DEVICE_PROFILE=host instead reports how much of the time the host spent waiting for the
// device in its blocking calls (device_runtime.h): near 100%, the device is the bottleneck and
// launching kernels faster (CUDA graphs) cannot pay; well below, the host's launches and its own
// work hold the device back.
// Both leave out the first step: its time holds the set-up (cuBLASLt's algorithm choice, the
// kernels' first loading), not what a step costs. Off (the default) a mark costs one branch.
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
    restart_host_clock();
  }
  bool on() const { return on_; }
  // The stream the marks are recorded on (the plan's compute stream).
  void attach(cudaStream_t stream) { stream_ = stream; }

  void mark(const char* phase) {
    if (!on_) return;
    record(phase);
    // (a training step adds up its points at the next step's start; forward-only work, as in
    // evaluation, has no step start, so the points are added up here once there are many)
    if (used_ >= kMaxPending) add_up_marked(/*pending=*/1);
  }
  // The phase of the clock's own reading of its points (the host's time in add_up, while the
  // device may sit idle): its own line, so that it does not inflate the phase after it.
  static constexpr const char* kReadingPhase = "profile: reading its marks";
  // A training micro-batch begins (the time since the last mark is the host's and the optimizer's,
  // or on another stream `phase`). At the second, everything so far (the first step and its
  // set-up) is dropped. only_reached: add up only the points the device has passed, without
  // waiting (a side stream may still run the previous step's work: side_stream.h).
  void step_started(const char* phase = "other (host, optimizer)", bool only_reached = false) {
    if (!on_ && !host_) return;
    mark(phase);
    if (on_) {  // the previous step's points (its last one: the optimizer may still run)
      size_t reached = used_;
      if (only_reached) {
        reached = 0;
        while (reached < used_ && points_[reached].reached()) ++reached;
      }
      add_up_marked(/*pending=*/std::max<size_t>(used_ - reached, 1));
    }
    if (++steps_ != 2) return;
    restart_host_clock();
    for (auto& row : ms_) row.second = 0.0;
  }

  // One line per phase, the largest first: milliseconds and share of the total.
  std::string report() {
    const std::string steps = steps_ >= 2 ? fmt::format("micro-batches 2-{} (the first, with the set-up, left out)",
                                                        steps_)
                                          : std::string("the first micro-batch only (with the set-up)");
    if (host_) {
      const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - host_start_).count();
      const double blocked = host_blocked_ms() - blocked_at_start_;
      return fmt::format("\n  host waited for the device {:.1f} ms of {:.1f} ms ({:.1f}%) over {}", blocked,
                         wall, wall > 0 ? 100.0 * blocked / wall : 0.0, steps);
    }
    if (!on_) return "";
    add_up(/*pending=*/0);
    std::vector<std::pair<std::string, double>> rows = ms_;
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    double total = 0.0;
    for (const auto& row : rows) total += row.second;
    const int64_t counted = std::max<int64_t>(steps_ - 1, 1);
    std::string out = fmt::format("\n  device time {:.1f} ms over {}: {:.2f} ms per micro-batch", total, steps,
                                  total / static_cast<double>(counted));
    for (const auto& [name, ms] : rows) out += fmt::format("\n  {:<34} {:>10.1f} ms {:>5.1f}%", name, ms, 100.0 * ms / total);
    return out;
  }

 private:
  void record(const char* phase) {
    if (used_ == points_.size()) points_.emplace_back();
    points_[used_].record(stream_);
    phases_.resize(used_ + 1);
    phases_[used_] = phase_index(phase);
    ++used_;
  }
  void add_up_marked(size_t pending) {
    add_up(pending);
    record(kReadingPhase);
  }
  size_t phase_index(const char* phase) {
    for (size_t i = 0; i < ms_.size(); ++i)
      if (ms_[i].first == phase) return i;
    ms_.emplace_back(phase, 0.0);
    return ms_.size() - 1;
  }
  // Adds the time between consecutive recorded points to their phases, except for the last
  // `pending` intervals (their points may not be reached yet, and reading them would wait for the
  // device); the points still needed stay recorded.
  void add_up(size_t pending) {
    if (used_ <= pending + 1) return;
    const size_t resolved_end = used_ - pending;  // the intervals ending at points [1, resolved_end)
    for (size_t i = 1; i < resolved_end; ++i) ms_[phases_[i]].second += points_[i].ms_since(points_[i - 1]);
    const size_t keep_from = resolved_end - 1;
    for (size_t i = keep_from; i < used_; ++i) {
      std::swap(points_[i - keep_from], points_[i]);
      phases_[i - keep_from] = phases_[i];
    }
    used_ -= keep_from;
  }
  void restart_host_clock() {
    host_start_ = std::chrono::steady_clock::now();
    blocked_at_start_ = host_blocked_ms();
  }

  static constexpr size_t kMaxPending = 4096;
  bool on_ = false;
  bool host_ = false;  // RECLM_DEVICE_PROFILE=host
  cudaStream_t stream_ = nullptr;
  int64_t steps_ = 0;
  std::vector<StreamPoint> points_;  // points_[0, used_) recorded and not yet added up
  std::vector<size_t> phases_;       // the phase of each recorded point (index into ms_)
  size_t used_ = 0;
  std::vector<std::pair<std::string, double>> ms_;
  std::chrono::steady_clock::time_point host_start_;
  double blocked_at_start_ = 0.0;
};

}  // namespace reclm::device
