// Helpers for the SIMT emulator tests: fresh random inputs, and the options a test runs under.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/simt/cuda_compat.h"
#include "kernels/simt/emulator_options.h"
#include "runtime/errors.h"

namespace reclm::simt::testing {

// Uniform in [lo, hi), never all zeros; a fresh seed per call site keeps inputs independent.
inline std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(n);
  for (float& v : values) v = dist(rng);
  return values;
}

inline std::vector<int> random_ints(std::size_t n, std::uint64_t seed, int lo, int hi) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int> values(n);
  for (int& v : values) v = dist(rng);
  return values;
}

// One worker thread and a given schedule seed: a deterministic launch.
inline EmulatorOptions deterministic(std::uint64_t seed) {
  EmulatorOptions options;
  options.seed = seed;
  options.worker_threads = 1;
  return options;
}

inline unsigned blocks_for(std::size_t n, unsigned threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

}  // namespace reclm::simt::testing
