// ops::dropout: inverted dropout with a regenerated counter-based mask.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/ops.h"

namespace reclm {
namespace {

std::vector<float> random_values(int64_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(0.5f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

TEST(Dropout, KeepsAboutOneMinusRateAndScalesTheKept) {
  const int64_t n = 100003;  // odd: the last Philox block is partial
  const float rate = 0.3f;
  const std::vector<float> in = random_values(n, 1);
  std::vector<float> out(n, NAN);
  ops::dropout(out.data(), in.data(), n, rate, 11, 7, 3);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(out[i] == 0.0f || std::fabs(out[i] - in[i] / (1 - rate)) <= 1e-6f * out[i]) << i;
    kept += out[i] != 0.0f;
  }
  // Binomial(n, 0.7): standard deviation ≈ 145; 5 sigma.
  EXPECT_NEAR(static_cast<double>(kept), 0.7 * n, 725.0);
}

TEST(Dropout, SameKeySameMaskInPlaceAndAnyThreadCount) {
  const int64_t n = 70001;
  const std::vector<float> in = random_values(n, 2);
  std::vector<float> a(n), b = in;
  ops::set_cpu_threads(1);
  ops::dropout(a.data(), in.data(), n, 0.5f, 5, 9, 1);
  ops::set_cpu_threads(2);
  ops::dropout(b.data(), b.data(), n, 0.5f, 5, 9, 1);  // in place
  EXPECT_EQ(a, b);
  std::vector<float> other_stream(n), other_site(n);
  ops::dropout(other_stream.data(), in.data(), n, 0.5f, 5, 10, 1);
  ops::dropout(other_site.data(), in.data(), n, 0.5f, 5, 9, 2);
  EXPECT_NE(a, other_stream);
  EXPECT_NE(a, other_site);
}

TEST(Dropout, BackwardWithTheSameKeyIsTheSameLinearMap) {
  // d/dx Σ g·dropout(x) = dropout(g) with the same key: check <g, D x> == <D g, x>.
  const int64_t n = 4099;
  const std::vector<float> x = random_values(n, 3), g = random_values(n, 4);
  std::vector<float> dx(n), dg(n);
  ops::dropout(dx.data(), x.data(), n, 0.2f, 8, 1, 0);
  ops::dropout(dg.data(), g.data(), n, 0.2f, 8, 1, 0);
  double lhs = 0, rhs = 0;
  for (int64_t i = 0; i < n; ++i) {
    lhs += static_cast<double>(g[i]) * dx[i];
    rhs += static_cast<double>(dg[i]) * x[i];
  }
  EXPECT_NEAR(lhs, rhs, 1e-9 * std::fabs(lhs));
}

}  // namespace
}  // namespace reclm
