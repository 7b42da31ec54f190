// Helpers shared by the kernel tests (tests/kernels/*_test.cc): seeded random inputs, the
// float-vs-float64 comparison, an OpenMP thread-count scope and central finite differences.
// Not named `testing`: inside reclm::ops that would hide GoogleTest's ::testing.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace reclm::ops::test_util {

// Poison for outputs a kernel must overwrite: an unwritten element fails every comparison.
inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// n floats drawn from U(lo, hi) by mt19937(seed).
inline std::vector<float> uniform(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// n ints drawn uniformly from [0, max] (inclusive) by mt19937(seed): token ids, positions.
inline std::vector<int32_t> random_ints(int64_t n, int32_t max, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, max);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& x : v) x = dist(rng);
  return v;
}

// |got − want| ≤ atol + rtol·|want| everywhere (NaN fails); reports the first mismatch.
inline void expect_near_all(const std::vector<float>& got, const std::vector<double>& want,
                            double atol, double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= atol + rtol * std::abs(want[i]))) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
      return;
    }
  }
}

// Sets the OpenMP thread count for a scope and restores the previous one on exit.
struct ScopedThreads {
  explicit ScopedThreads(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ScopedThreads() { omp_set_num_threads(saved); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;
  int saved;
};

// (loss() at x + h − loss() at x − h) / 2h, moving x in place (loss() must read it) and restoring it.
template <typename Loss>
double central_difference(double& x, Loss&& loss, double h = 1e-6) {
  const double x0 = x;
  x = x0 + h;
  const double lp = loss();
  x = x0 - h;
  const double lm = loss();
  x = x0;
  return (lp - lm) / (2 * h);
}

// central_difference of loss() with respect to every element of x, in order.
template <typename Loss>
std::vector<double> finite_differences(std::vector<double>& x, Loss&& loss, double h = 1e-6) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) grad[i] = central_difference(x[i], loss, h);
  return grad;
}

}  // namespace reclm::ops::test_util
