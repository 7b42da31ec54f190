// Settings of the host SIMT emulator (g++ builds only), read by each launch when it starts.
//
// Defaults come from the environment, so a failing test can be replayed or widened without a
// rebuild:
//   RECLM_SIMT_SEED=<u64>     schedule seed (default 1). Block b of a launch runs its threads in
//                             an order drawn from (seed, b), whatever OS thread runs it.
//   RECLM_SIMT_THREADS=<n>    OS threads that run blocks in parallel (default: the hardware
//                             threads, at most 8). With 1, a launch is fully deterministic; with
//                             more, only the order of atomics between blocks may vary.
#pragma once

#include <cstdint>

namespace reclm::simt {

struct EmulatorOptions {
  std::uint64_t seed = 1;
  int worker_threads = 1;
};

EmulatorOptions emulator_options();
void set_emulator_options(const EmulatorOptions& options);

// Sets the options for one scope (a test) and restores the previous ones after.
class ScopedEmulatorOptions {
 public:
  explicit ScopedEmulatorOptions(const EmulatorOptions& options) : saved_(emulator_options()) {
    set_emulator_options(options);
  }
  ~ScopedEmulatorOptions() { set_emulator_options(saved_); }
  ScopedEmulatorOptions(const ScopedEmulatorOptions&) = delete;
  ScopedEmulatorOptions& operator=(const ScopedEmulatorOptions&) = delete;

 private:
  EmulatorOptions saved_;
};

}  // namespace reclm::simt
