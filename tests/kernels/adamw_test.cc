// adamw_update against a float64 transcription of torch.optim.AdamW, plus sum_of_squares and
// scale_inplace (the gradient-clipping pair).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"

namespace reclm::ops {
namespace {

using namespace test_util;

// torch.optim.AdamW._single_tensor_adamw (amsgrad=False), line by line, in double:
//   param.mul_(1 - lr * weight_decay)
//   exp_avg.lerp_(grad, 1 - beta1)
//   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
//   step_size = lr / (1 - beta1 ** step)
//   denom = (exp_avg_sq.sqrt() / sqrt(1 - beta2 ** step)).add_(eps)
//   param.addcdiv_(exp_avg, denom, value=-step_size)
void reference_adamw(std::vector<double>& p, const std::vector<float>& grads,
                     std::vector<double>& m, std::vector<double>& v, const AdamWHyper& hp) {
  const double lr = hp.lr, b1 = hp.beta1, b2 = hp.beta2, eps = hp.eps, wd = hp.weight_decay;
  const double t = static_cast<double>(hp.step);
  const double step_size = lr / (1.0 - std::pow(b1, t));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, t));
  for (size_t i = 0; i < p.size(); ++i) {
    const double g = static_cast<double>(grads[i]) * hp.grad_scale;
    p[i] *= 1.0 - lr * wd;
    m[i] += (1.0 - b1) * (g - m[i]);
    v[i] = b2 * v[i] + (1.0 - b2) * g * g;
    p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
  }
}

TEST(AdamW, SeveralStepsMatchPyTorchFormula) {
  for (float weight_decay : {0.0f, 0.1f}) {
    for (int64_t n : {1, 7, 1000, 40001}) {  // 40001: the threaded path
      const size_t un = static_cast<size_t>(n);
      std::vector<float> p = uniform(un, 1), m(un, 0.0f), v(un, 0.0f);
      std::vector<double> p64(p.begin(), p.end()), m64(un, 0.0), v64(un, 0.0);
      AdamWHyper hp{/*lr=*/1e-2f,  /*beta1=*/0.9f,     /*beta2=*/0.95f,
                    /*eps=*/1e-8f, weight_decay,
                    /*step=*/0,    /*grad_scale=*/0.8f};
      for (int64_t step = 1; step <= 6; ++step) {
        hp.step = step;
        const auto grads = uniform(un, 100 + static_cast<uint32_t>(step), -3.0f, 3.0f);
        adamw_update(p.data(), grads.data(), m.data(), v.data(), n, hp);
        reference_adamw(p64, grads, m64, v64, hp);
        const std::string at = " (wd " + std::to_string(weight_decay) + ", n " + std::to_string(n) +
                               ", step " + std::to_string(step) + ")";
        // fp32 moments: a few ulps relative. Params move by ≤ lr per step, so their fp32
        // error is dominated by rounding of p itself (~1e-7).
        expect_near_all(m, m64, 1e-7, 1e-5, "m" + at);
        expect_near_all(v, v64, 1e-7, 1e-5, "v" + at);
        expect_near_all(p, p64, 1e-6, 1e-6, "params" + at);
      }
    }
  }
}

TEST(AdamW, FirstStepMovesEachParamByLrTimesSign) {
  // At step 1 with zero moments, m̂ = g and √v̂ = |g|: the update is lr · sign(g), plus decay.
  const size_t n = 33;
  const auto p0 = uniform(n, 2);
  const auto grads = uniform(n, 3);
  const AdamWHyper hp{1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, 1, 1.0f};
  std::vector<float> p = p0, m(n, 0.0f), v(n, 0.0f);
  adamw_update(p.data(), grads.data(), m.data(), v.data(), static_cast<int64_t>(n), hp);
  for (size_t i = 0; i < n; ++i) {
    const double want = p0[i] * (1.0 - 1e-3 * 0.05) - 1e-3 * (grads[i] > 0 ? 1.0 : -1.0);
    EXPECT_NEAR(p[i], want, 1e-6) << i;  // fp32 rounding of p ≈ 1
  }
}

TEST(AdamW, GradScaleIsAppliedToGradientsFirst) {
  // Scaling the gradients by s equals passing grad_scale = s (same fp32 product), bitwise.
  const size_t n = 129;
  const float s = 0.3f;
  const auto grads = uniform(n, 4);
  std::vector<float> scaled(n);
  for (size_t i = 0; i < n; ++i) scaled[i] = grads[i] * s;
  std::vector<float> p_a = uniform(n, 5), m_a = uniform(n, 6), v_a = uniform(n, 7, 0.0f, 1.0f);
  std::vector<float> p_b = p_a, m_b = m_a, v_b = v_a;
  const AdamWHyper with_scale{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3, s};
  AdamWHyper without = with_scale;
  without.grad_scale = 1.0f;
  adamw_update(p_a.data(), grads.data(), m_a.data(), v_a.data(), static_cast<int64_t>(n),
               with_scale);
  adamw_update(p_b.data(), scaled.data(), m_b.data(), v_b.data(), static_cast<int64_t>(n), without);
  EXPECT_EQ(p_a, p_b);
  EXPECT_EQ(m_a, m_b);
  EXPECT_EQ(v_a, v_b);
}

TEST(SumOfSquares, MatchesFloat64AndIsDeterministic) {
  for (int64_t n : {0, 1, 7, 129, 100003}) {  // 100003: several chunks, threaded
    const auto x = uniform(static_cast<size_t>(n), 8, -3.0f, 3.0f);
    double want = 0.0;
    for (float xi : x) want += static_cast<double>(xi) * xi;
    const double got = sum_of_squares(x.data(), n);
    // Double accumulation of exact fp32 squares (a float² is exact in double).
    EXPECT_NEAR(got, want, 1e-12 * want) << n;
    EXPECT_EQ(sum_of_squares(x.data(), n), got);  // bitwise across calls
    ScopedThreads one(1);
    EXPECT_EQ(sum_of_squares(x.data(), n), got);  // and across thread counts
  }
}

TEST(ScaleInplace, MultipliesEveryValue) {
  for (int64_t n : {1, 7, 70001}) {
    const auto x = uniform(static_cast<size_t>(n), 9);
    std::vector<float> y = x;
    scale_inplace(y.data(), 0.37f, n);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], x[i] * 0.37f) << i;  // one fp32 mul
  }
}

}  // namespace
}  // namespace reclm::ops
