// rmsnorm_forward / rmsnorm_backward against a float64 reference and finite differences of
// L = Σ r · y. The backward accumulates into dx (the residual stream) and into dweight.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"

namespace reclm::ops {
namespace {

using namespace test_util;

constexpr float kEps = 1e-5f;

// One row in double: y = x · rstd · w; returns rstd.
double reference_row(double* y, const double* x, const double* w, int64_t dim) {
  double sum_sq = 0.0;
  for (int64_t c = 0; c < dim; ++c) sum_sq += x[c] * x[c];
  const double rstd = 1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + kEps);
  for (int64_t c = 0; c < dim; ++c) y[c] = x[c] * rstd * w[c];
  return rstd;
}

// Σ_c r[c] · y[c] for one row.
double reference_row_loss(const double* x, const double* w, const float* r, int64_t dim) {
  std::vector<double> y(static_cast<size_t>(dim));
  reference_row(y.data(), x, w, dim);
  double loss = 0.0;
  for (int64_t c = 0; c < dim; ++c) loss += r[c] * y[c];
  return loss;
}

struct Case {
  int64_t n_rows, dim;
};

TEST(RmsNorm, ForwardMatchesFloat64) {
  for (int64_t n_rows : {1, 7, 33, 129}) {
    for (int64_t dim : {24, 96, 130}) {
      const auto x = uniform(static_cast<size_t>(n_rows * dim), 1, -2.0f, 2.0f);
      const auto w = uniform(static_cast<size_t>(dim), 2, 0.5f, 1.5f);
      std::vector<double> x64(x.begin(), x.end()), w64(w.begin(), w.end());
      std::vector<double> want_y(x.size()), want_rstd(static_cast<size_t>(n_rows));
      for (int64_t row = 0; row < n_rows; ++row)
        want_rstd[row] = reference_row(&want_y[row * dim], &x64[row * dim], w64.data(), dim);
      std::vector<float> y(x.size(), kNaN), rstd(static_cast<size_t>(n_rows), kNaN);
      rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n_rows, dim, kEps);
      // fp32 products of a double-accumulated rstd: a few ulps.
      expect_near_all(rstd, want_rstd, 0.0, 1e-6, "rstd");
      expect_near_all(y, want_y, 1e-6, 1e-6, "y");
    }
  }
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  for (const Case& k : {Case{1, 24}, Case{7, 96}, Case{33, 130}, Case{129, 130}}) {
    const int64_t n_rows = k.n_rows, dim = k.dim;
    const auto x = uniform(static_cast<size_t>(n_rows * dim), 3, -2.0f, 2.0f);
    const auto w = uniform(static_cast<size_t>(dim), 4, 0.5f, 1.5f);
    const auto r = uniform(x.size(), 5);  // dy = dL/dy
    std::vector<double> x64(x.begin(), x.end()), w64(w.begin(), w.end());

    // Finite differences. x[row, c] only moves row `row`'s loss; weight[c] moves every row's.
    std::vector<double> fd_x(x.size()), fd_w(w.size(), 0.0);
    for (int64_t row = 0; row < n_rows; ++row) {
      double* xr = &x64[row * dim];
      const float* rr = &r[row * dim];
      auto row_loss = [&] { return reference_row_loss(xr, w64.data(), rr, dim); };
      for (int64_t c = 0; c < dim; ++c) fd_x[row * dim + c] = central_difference(xr[c], row_loss);
      for (int64_t c = 0; c < dim; ++c) fd_w[c] += central_difference(w64[c], row_loss);
    }

    std::vector<float> y(x.size(), kNaN), rstd(static_cast<size_t>(n_rows), kNaN);
    rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n_rows, dim, kEps);
    // dx accumulates: start from a random residual gradient.
    const auto dx0 = uniform(x.size(), 6);
    std::vector<float> dx = dx0, dweight(w.size(), 0.0f);
    rmsnorm_backward(dx.data(), dweight.data(), r.data(), x.data(), w.data(), rstd.data(), n_rows,
                     dim);
    std::vector<double> want_dx(x.size());
    for (size_t i = 0; i < x.size(); ++i) want_dx[i] = dx0[i] + fd_x[i];
    // fp32 elementwise math with double row sums; dweight sums ≤ 129 rows in double.
    expect_near_all(dx, want_dx, 2e-5, 1e-5, "dx");
    expect_near_all(dweight, fd_w, 2e-5, 1e-5, "dweight");

    // Both accumulate: a second call adds the same gradients again.
    rmsnorm_backward(dx.data(), dweight.data(), r.data(), x.data(), w.data(), rstd.data(), n_rows,
                     dim);
    for (size_t i = 0; i < x.size(); ++i) want_dx[i] = dx0[i] + 2 * fd_x[i];
    std::vector<double> want_dw2(fd_w.size());
    for (size_t i = 0; i < fd_w.size(); ++i) want_dw2[i] = 2 * fd_w[i];
    expect_near_all(dx, want_dx, 4e-5, 1e-5, "dx after two calls");
    expect_near_all(dweight, want_dw2, 4e-5, 1e-5, "dweight after two calls");
  }
}

TEST(RmsNorm, BackwardIsDeterministic) {
  // Threaded path: dweight is reduced over row blocks, which must not depend on timing.
  const int64_t n_rows = 1031, dim = 130;
  const auto x = uniform(static_cast<size_t>(n_rows * dim), 7);
  const auto w = uniform(static_cast<size_t>(dim), 8);
  const auto dy = uniform(x.size(), 9);
  std::vector<float> y(x.size()), rstd(static_cast<size_t>(n_rows));
  rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n_rows, dim, kEps);
  std::vector<float> dx_a(x.size(), 0.0f), dx_b(x.size(), 0.0f);
  std::vector<float> dw_a(w.size(), 0.0f), dw_b(w.size(), 0.0f);
  rmsnorm_backward(dx_a.data(), dw_a.data(), dy.data(), x.data(), w.data(), rstd.data(), n_rows,
                   dim);
  rmsnorm_backward(dx_b.data(), dw_b.data(), dy.data(), x.data(), w.data(), rstd.data(), n_rows,
                   dim);
  EXPECT_EQ(0, std::memcmp(dx_a.data(), dx_b.data(), dx_a.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(dw_a.data(), dw_b.data(), dw_a.size() * sizeof(float)));
}

}  // namespace
}  // namespace reclm::ops
