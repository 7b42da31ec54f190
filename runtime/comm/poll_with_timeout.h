// The wait loop of every collective (MPI and NCCL communicators): poll until the operation is
// done, giving the CPU back progressively — spin for the first 20 µs (small collectives finish
// there), yield until 20 ms, then sleep 50 µs steps, 1 ms steps past 0.1 s — so oversubscribed
// ranks do not starve each other; past `timeout_s` call `on_timeout(waited_seconds)`, which must
// not return (it aborts the job).
#pragma once

#include <chrono>
#include <thread>

namespace reclm {

template <typename Done, typename OnTimeout>
void poll_with_timeout(Done done, double timeout_s, OnTimeout on_timeout) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  while (!done()) {
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (waited > timeout_s) on_timeout(waited);
    if (waited < 20e-6) continue;
    if (waited < 20e-3) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(waited < 0.1 ? 50 : 1000));
    }
  }
}

}  // namespace reclm
