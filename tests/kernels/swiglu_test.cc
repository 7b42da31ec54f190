// swiglu_forward / swiglu_backward against float64 and central finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"

namespace reclm::ops {
namespace {

using namespace test_util;

double reference_swiglu(double g, double u) { return g / (1.0 + std::exp(-g)) * u; }

TEST(SwiGlu, ForwardMatchesFloat64) {
  for (int64_t n : {1, 7, 129, 20001}) {  // 20001: the threaded path
    const auto gate = uniform(static_cast<size_t>(n), 1, -8.0f, 8.0f);
    const auto up = uniform(static_cast<size_t>(n), 2, -2.0f, 2.0f);
    std::vector<double> want(gate.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = reference_swiglu(gate[i], up[i]);
    std::vector<float> out(gate.size(), kNaN);
    swiglu_forward(out.data(), gate.data(), up.data(), n);
    // fp32 expf and three roundings: a few ulps of |out| ≤ 16.
    expect_near_all(out, want, 1e-6, 1e-6, "out");
  }
}

TEST(SwiGlu, BackwardMatchesFiniteDifferences) {
  for (int64_t n : {1, 7, 129, 20001}) {
    const auto gate = uniform(static_cast<size_t>(n), 3, -8.0f, 8.0f);
    const auto up = uniform(static_cast<size_t>(n), 4, -2.0f, 2.0f);
    const auto r = uniform(static_cast<size_t>(n), 5, -1.0f, 1.0f);  // dout = dL/dout
    // Elementwise, so ∂L/∂gate[i] only involves element i.
    const double h = 1e-6;
    std::vector<double> fd_gate(gate.size()), fd_up(up.size());
    for (size_t i = 0; i < gate.size(); ++i) {
      const double g = gate[i], u = up[i];
      fd_gate[i] = r[i] * (reference_swiglu(g + h, u) - reference_swiglu(g - h, u)) / (2 * h);
      fd_up[i] = r[i] * (reference_swiglu(g, u + h) - reference_swiglu(g, u - h)) / (2 * h);
    }
    std::vector<float> dgate(gate.size(), kNaN), dup(up.size(), kNaN);  // both overwritten
    swiglu_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n);
    // fp32 elementwise with one expf, values ≤ ~20 in magnitude.
    expect_near_all(dgate, fd_gate, 1e-6, 1e-5, "dgate");
    expect_near_all(dup, fd_up, 1e-6, 1e-5, "dup");
  }
}

TEST(SwiGlu, ExtremeGatesStayFinite) {
  // σ(g) = 1 / (1 + e^−g): e^−g overflows to inf for g ≪ 0 and must give 0, not NaN.
  const std::vector<float> gate = {-1000.0f, -100.0f, -88.0f, 88.0f, 100.0f, 1000.0f};
  const std::vector<float> up(gate.size(), 1.5f), dout(gate.size(), 0.5f);
  std::vector<float> out(gate.size(), kNaN), dgate(gate.size(), kNaN), dup(gate.size(), kNaN);
  const int64_t n = static_cast<int64_t>(gate.size());
  swiglu_forward(out.data(), gate.data(), up.data(), n);
  swiglu_backward(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n);
  for (size_t i = 0; i < gate.size(); ++i) {
    EXPECT_TRUE(std::isfinite(out[i]) && std::isfinite(dgate[i]) && std::isfinite(dup[i])) << i;
    const double g = gate[i];
    const double want_out = g > 0 ? g * 1.5 : 0.0;  // silu(g) → g or 0 at these magnitudes
    EXPECT_NEAR(out[i], want_out, 1e-6 * std::abs(want_out) + 1e-30) << i;
    EXPECT_NEAR(dgate[i], g > 0 ? 0.75 : 0.0, 1e-6) << i;
  }
}

}  // namespace
}  // namespace reclm::ops
