// linear_forward / linear_backward (OpenBLAS sgemm) against a float64 reference and finite
// differences of the scalar loss L = Σ r · out.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"

namespace reclm::ops {
namespace {

using namespace test_util;

struct Shape {
  int64_t T, C, OC;
};

// out[T, OC] = inp[T, C] · W[OC, C]ᵀ in double.
std::vector<double> reference_forward(const std::vector<double>& inp, const std::vector<double>& w,
                                      const Shape& s) {
  std::vector<double> out(static_cast<size_t>(s.T * s.OC), 0.0);
  for (int64_t t = 0; t < s.T; ++t)
    for (int64_t o = 0; o < s.OC; ++o) {
      double acc = 0.0;
      for (int64_t c = 0; c < s.C; ++c) acc += inp[t * s.C + c] * w[o * s.C + c];
      out[t * s.OC + o] = acc;
    }
  return out;
}

double reference_loss(const std::vector<double>& inp, const std::vector<double>& w,
                      const std::vector<float>& r, const Shape& s) {
  const auto out = reference_forward(inp, w, s);
  double loss = 0.0;
  for (size_t i = 0; i < out.size(); ++i) loss += r[i] * out[i];
  return loss;
}

TEST(Linear, ForwardMatchesFloat64) {
  for (const Shape& s :
       {Shape{1, 24, 7}, Shape{7, 96, 33}, Shape{33, 130, 24}, Shape{129, 96, 130}}) {
    const auto inp = uniform(static_cast<size_t>(s.T * s.C), 1);
    const auto w = uniform(static_cast<size_t>(s.OC * s.C), 2);
    const auto want = reference_forward({inp.begin(), inp.end()}, {w.begin(), w.end()}, s);
    std::vector<float> out(want.size(), kNaN);
    linear_forward(out.data(), inp.data(), w.data(), s.T, s.C, s.OC);
    // fp32 dot products of ≤ 130 terms in [-1, 1]: error ≲ C · 2^-24 · Σ|terms| ≲ 1e-4.
    expect_near_all(out, want, 1e-4, 1e-5, "out");

    // accumulate_out adds onto what is there.
    const auto prev = uniform(want.size(), 3);
    std::vector<float> acc = prev;
    linear_forward(acc.data(), inp.data(), w.data(), s.T, s.C, s.OC, /*accumulate_out=*/true);
    std::vector<double> want_acc(want.size());
    for (size_t i = 0; i < want.size(); ++i) want_acc[i] = prev[i] + want[i];
    expect_near_all(acc, want_acc, 1e-4, 1e-5, "out (accumulated)");
  }
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  for (const Shape& s : {Shape{1, 24, 7}, Shape{7, 33, 24}, Shape{33, 24, 13}}) {
    const auto inp = uniform(static_cast<size_t>(s.T * s.C), 4);
    const auto w = uniform(static_cast<size_t>(s.OC * s.C), 5);
    const auto r = uniform(static_cast<size_t>(s.T * s.OC), 6);  // dout = dL/dout
    std::vector<double> inp64(inp.begin(), inp.end()), w64(w.begin(), w.end());
    auto loss = [&] { return reference_loss(inp64, w64, r, s); };
    const auto fd_inp = finite_differences(inp64, loss);
    const auto fd_w = finite_differences(w64, loss);

    std::vector<float> dinp(inp.size(), kNaN);   // activation gradient: overwritten
    std::vector<float> dweight(w.size(), 0.0f);  // parameter gradient: accumulated
    linear_backward(dinp.data(), dweight.data(), r.data(), inp.data(), w.data(), s.T, s.C, s.OC,
                    /*accumulate_dinp=*/false);
    // fp32 sums of ≤ 33 products in [-1, 1] vs a float64 difference quotient.
    expect_near_all(dinp, fd_inp, 1e-5, 1e-4, "dinp");
    expect_near_all(dweight, fd_w, 1e-5, 1e-4, "dweight");

    // Second call: dweight accumulates to 2×, dinp (not accumulating) is overwritten again,
    // and with accumulate_dinp it adds onto what is there.
    linear_backward(dinp.data(), dweight.data(), r.data(), inp.data(), w.data(), s.T, s.C, s.OC,
                    false);
    std::vector<double> fd_w2(fd_w.size());
    for (size_t i = 0; i < fd_w.size(); ++i) fd_w2[i] = 2 * fd_w[i];
    expect_near_all(dinp, fd_inp, 1e-5, 1e-4, "dinp after second call");
    expect_near_all(dweight, fd_w2, 2e-5, 1e-4, "dweight after two calls");
    linear_backward(dinp.data(), nullptr, r.data(), inp.data(), w.data(), s.T, s.C, s.OC, true);
    std::vector<double> fd_inp2(fd_inp.size());
    for (size_t i = 0; i < fd_inp.size(); ++i) fd_inp2[i] = 2 * fd_inp[i];
    expect_near_all(dinp, fd_inp2, 2e-5, 1e-4, "dinp accumulated");
  }
}

TEST(Linear, BackwardLargeMatchesFloat64) {
  // Large enough for OpenBLAS's blocked, threaded path: dinp = dout · W, dweight = doutᵀ · inp.
  const Shape s{129, 130, 96};
  const auto inp = uniform(static_cast<size_t>(s.T * s.C), 7);
  const auto w = uniform(static_cast<size_t>(s.OC * s.C), 8);
  const auto dout = uniform(static_cast<size_t>(s.T * s.OC), 9);
  std::vector<double> want_dinp(inp.size(), 0.0), want_dw(w.size(), 0.0);
  for (int64_t t = 0; t < s.T; ++t)
    for (int64_t o = 0; o < s.OC; ++o)
      for (int64_t c = 0; c < s.C; ++c) {
        want_dinp[t * s.C + c] += static_cast<double>(dout[t * s.OC + o]) * w[o * s.C + c];
        want_dw[o * s.C + c] += static_cast<double>(dout[t * s.OC + o]) * inp[t * s.C + c];
      }
  std::vector<float> dinp(inp.size(), kNaN), dweight(w.size(), 0.0f);
  linear_backward(dinp.data(), dweight.data(), dout.data(), inp.data(), w.data(), s.T, s.C, s.OC,
                  false);
  // fp32 sums of ≤ 129 products in [-1, 1].
  expect_near_all(dinp, want_dinp, 1e-4, 1e-5, "dinp");
  expect_near_all(dweight, want_dw, 1e-4, 1e-5, "dweight");
}

TEST(Linear, BackwardNullOutputsAreSkipped) {
  const Shape s{7, 24, 33};
  const auto inp = uniform(static_cast<size_t>(s.T * s.C), 10);
  const auto w = uniform(static_cast<size_t>(s.OC * s.C), 11);
  const auto dout = uniform(static_cast<size_t>(s.T * s.OC), 12);
  std::vector<float> dinp_both(inp.size(), kNaN), dw_both(w.size(), 0.0f);
  linear_backward(dinp_both.data(), dw_both.data(), dout.data(), inp.data(), w.data(), s.T, s.C,
                  s.OC, false);
  // Frozen weight: only dinp.
  std::vector<float> dinp_only(inp.size(), kNaN);
  linear_backward(dinp_only.data(), nullptr, dout.data(), inp.data(), w.data(), s.T, s.C, s.OC,
                  false);
  EXPECT_EQ(dinp_only, dinp_both);
  // Input needs no gradient (e.g. the first layer's input): only dweight.
  std::vector<float> dw_only(w.size(), 0.0f);
  linear_backward(nullptr, dw_only.data(), dout.data(), inp.data(), w.data(), s.T, s.C, s.OC,
                  false);
  EXPECT_EQ(dw_only, dw_both);
}

}  // namespace
}  // namespace reclm::ops
