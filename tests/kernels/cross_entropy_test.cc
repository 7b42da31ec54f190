// Fused softmax cross-entropy over a class range: losses vs float64 log-softmax, dlogits vs
// finite differences of the loss, plus the edge cases the trainer relies on (ignored rows,
// in-place gradient, class offset, huge logits, bad targets).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm::ops {
namespace {

using namespace test_util;

// A batch: T rows over classes [class_begin, class_begin + n_classes). Every third row is
// ignored (weight 0, target −100 as a data loader would write it); the rest have random
// weights and random in-range targets.
struct Batch {
  int64_t T, n_classes, class_begin;
  std::vector<float> logits, weights;
  std::vector<int32_t> targets;
};

Batch make_batch(int64_t T, int64_t n_classes, int64_t class_begin, float scale, uint32_t seed) {
  Batch b{T,
          n_classes,
          class_begin,
          uniform(static_cast<size_t>(T * n_classes), seed, -scale, scale),
          uniform(static_cast<size_t>(T), seed + 1, 0.25f, 2.0f),
          {}};
  std::mt19937 rng(seed + 2);
  std::uniform_int_distribution<int64_t> cls(class_begin, class_begin + n_classes - 1);
  for (int64_t t = 0; t < T; ++t) {
    if (t % 3 == 2) {
      b.weights[t] = 0.0f;
      b.targets.push_back(-100);
    } else {
      b.targets.push_back(static_cast<int32_t>(cls(rng)));
    }
  }
  return b;
}

// weights[t] · (logsumexp(x) − x[target]) for one row, in double.
double reference_row_loss(const double* x, int64_t n, int64_t target_local, double weight) {
  if (weight == 0.0) return 0.0;
  double max = x[0];
  for (int64_t c = 1; c < n; ++c) max = std::max(max, x[c]);
  double sum = 0.0;
  for (int64_t c = 0; c < n; ++c) sum += std::exp(x[c] - max);
  return weight * (max + std::log(sum) - x[target_local]);
}

std::vector<double> reference_losses(const Batch& b) {
  std::vector<double> losses(static_cast<size_t>(b.T));
  std::vector<double> row(static_cast<size_t>(b.n_classes));
  for (int64_t t = 0; t < b.T; ++t) {
    for (int64_t c = 0; c < b.n_classes; ++c) row[c] = b.logits[t * b.n_classes + c];
    losses[t] =
        reference_row_loss(row.data(), b.n_classes, b.targets[t] - b.class_begin, b.weights[t]);
  }
  return losses;
}

struct Case {
  int64_t T, n_classes, class_begin;
};

TEST(CrossEntropy, LossMatchesFloat64LogSoftmax) {
  // 1031 classes span several of the kernel's 512-wide online-softmax chunks.
  for (const Case& k : {Case{1, 24, 0}, Case{7, 130, 1000}, Case{33, 1031, 5}, Case{129, 96, 0},
                        Case{129, 130, 32000}}) {
    const Batch b = make_batch(k.T, k.n_classes, k.class_begin, 8.0f, 1);
    const auto want = reference_losses(b);
    double want_sum = 0.0;
    for (double l : want) want_sum += l;

    std::vector<float> losses(static_cast<size_t>(k.T), kNaN);
    const double sum = cross_entropy_forward(losses.data(), b.logits.data(), b.targets.data(),
                                             b.weights.data(), k.T, k.n_classes, k.class_begin);
    // Losses are O(10): fp32 exp/max with a double sum → ~1e-6 relative.
    expect_near_all(losses, want, 1e-5, 1e-6, "losses (forward only)");
    EXPECT_NEAR(sum, want_sum, 1e-5 * (1.0 + std::abs(want_sum)));

    std::vector<float> losses_fb(static_cast<size_t>(k.T), kNaN);
    std::vector<float> dlogits(b.logits.size(), kNaN);
    const double sum_fb = cross_entropy_forward_backward(
        dlogits.data(), losses_fb.data(), b.logits.data(), b.targets.data(), b.weights.data(), k.T,
        k.n_classes, k.class_begin, 1.0f);
    EXPECT_EQ(losses_fb, losses);  // same arithmetic with or without the gradient
    EXPECT_EQ(sum_fb, sum);
  }
}

TEST(CrossEntropy, GradientMatchesFiniteDifferences) {
  const float grad_scale = 0.37f;  // e.g. 1 / (tokens in the batch)
  for (const Case& k : {Case{1, 24, 0}, Case{7, 1031, 17}, Case{33, 130, 1000}}) {
    const Batch b = make_batch(k.T, k.n_classes, k.class_begin, 8.0f, 2);
    // ∂(grad_scale · Σ losses)/∂logits[t, c]: only row t's loss depends on row t's logits.
    std::vector<double> fd(b.logits.size());
    std::vector<double> row(static_cast<size_t>(k.n_classes));
    for (int64_t t = 0; t < k.T; ++t) {
      for (int64_t c = 0; c < k.n_classes; ++c) row[c] = b.logits[t * k.n_classes + c];
      const int64_t target = b.targets[t] - k.class_begin;
      auto row_loss = [&] {
        return reference_row_loss(row.data(), k.n_classes, target, b.weights[t]);
      };
      for (int64_t c = 0; c < k.n_classes; ++c)
        fd[t * k.n_classes + c] = grad_scale * central_difference(row[c], row_loss);
    }
    std::vector<float> losses(static_cast<size_t>(k.T), kNaN);
    std::vector<float> dlogits(b.logits.size(), kNaN);  // overwritten, ignored rows included
    cross_entropy_forward_backward(dlogits.data(), losses.data(), b.logits.data(), b.targets.data(),
                                   b.weights.data(), k.T, k.n_classes, k.class_begin, grad_scale);
    // Softmax probabilities ≤ 1 in fp32; the difference quotient of an O(10) loss carries
    // ~1e-9 of float64 rounding.
    expect_near_all(dlogits, fd, 2e-7, 1e-5, "dlogits");
  }
}

TEST(CrossEntropy, ZeroWeightRowsHaveNoLossAndNoGradient) {
  const Batch b = make_batch(9, 130, 50, 8.0f, 3);
  std::vector<float> losses(9, kNaN), dlogits(b.logits.size(), kNaN);
  cross_entropy_forward_backward(dlogits.data(), losses.data(), b.logits.data(), b.targets.data(),
                                 b.weights.data(), 9, 130, 50, 1.0f);
  for (int64_t t = 2; t < 9; t += 3) {  // make_batch zeroes every third row's weight
    ASSERT_EQ(b.weights[t], 0.0f);
    EXPECT_EQ(losses[t], 0.0f);
    for (int64_t c = 0; c < 130; ++c) ASSERT_EQ(dlogits[t * 130 + c], 0.0f) << t << "," << c;
  }
  // A zero-weight row may even hold non-finite logits (e.g. padding) without effect.
  std::vector<float> logits = b.logits;
  logits[2 * 130 + 7] = kNaN;
  const double with_nan = cross_entropy_forward(losses.data(), logits.data(), b.targets.data(),
                                                b.weights.data(), 9, 130, 50);
  const double without = cross_entropy_forward(losses.data(), b.logits.data(), b.targets.data(),
                                               b.weights.data(), 9, 130, 50);
  EXPECT_EQ(with_nan, without);
}

TEST(CrossEntropy, InPlaceGradientMatchesOutOfPlace) {
  const Batch b = make_batch(33, 1031, 3, 8.0f, 4);
  std::vector<float> losses(33, kNaN), dlogits(b.logits.size(), kNaN);
  const double sum =
      cross_entropy_forward_backward(dlogits.data(), losses.data(), b.logits.data(),
                                     b.targets.data(), b.weights.data(), 33, 1031, 3, 0.5f);
  std::vector<float> in_place = b.logits, losses_ip(33, kNaN);
  const double sum_ip =
      cross_entropy_forward_backward(in_place.data(), losses_ip.data(), in_place.data(),
                                     b.targets.data(), b.weights.data(), 33, 1031, 3, 0.5f);
  EXPECT_EQ(in_place, dlogits);
  EXPECT_EQ(losses_ip, losses);
  EXPECT_EQ(sum_ip, sum);
}

TEST(CrossEntropy, LargeLogitsStayFinite) {
  for (float scale : {80.0f, 1000.0f}) {
    Batch b = make_batch(7, 130, 0, scale, 5);
    b.logits[0 * 130 + b.targets[0]] = scale;   // confident and right: loss ≈ 0
    b.logits[1 * 130 + b.targets[1]] = -scale;  // confident and wrong: loss ≈ 2 · scale
    const auto want = reference_losses(b);
    std::vector<float> losses(7, kNaN), dlogits(b.logits.size(), kNaN);
    cross_entropy_forward_backward(dlogits.data(), losses.data(), b.logits.data(), b.targets.data(),
                                   b.weights.data(), 7, 130, 0, 1.0f);
    // Relative to the logit scale: fp32 max-subtracted logits are exact to ~1e-7 · scale.
    expect_near_all(losses, want, 1e-6 * scale, 1e-6, "losses");
    for (float d : dlogits) ASSERT_TRUE(std::isfinite(d));
    // Each weighted row of dlogits sums to 0 (softmax sums to 1, minus the one-hot).
    for (int64_t t = 0; t < 7; ++t) {
      double row_sum = 0.0;
      for (int64_t c = 0; c < 130; ++c) row_sum += dlogits[t * 130 + c];
      EXPECT_NEAR(row_sum, 0.0, 1e-5) << t;
    }
  }
}

TEST(CrossEntropy, TargetOutsideRangeWithWeightIsAnError) {
  Batch b = make_batch(4, 24, 100, 1.0f, 6);
  std::vector<float> losses(4), dlogits(b.logits.size());
  for (int32_t bad : {99, 124, -100}) {
    b.targets[1] = bad;  // row 1 has a nonzero weight
    EXPECT_THROW(
        cross_entropy_forward_backward(dlogits.data(), losses.data(), b.logits.data(),
                                       b.targets.data(), b.weights.data(), 4, 24, 100, 1.0f),
        InternalError)
        << bad;
    EXPECT_THROW(cross_entropy_forward(losses.data(), b.logits.data(), b.targets.data(),
                                       b.weights.data(), 4, 24, 100),
                 InternalError)
        << bad;
  }
}

}  // namespace
}  // namespace reclm::ops

namespace reclm::ops {
namespace {

// The vocabulary-parallel pieces: a class range split into three uneven parts, each part's
// statistics merged as the ranks would (max, then rescaled sums), must give the losses of the
// float64 reference, and each part's dlogits from the merged statistics must equal the
// single-part kernel's dlogits for those columns.
TEST(CrossEntropyPartial, SplitRangeMatchesTheWholeRange) {
  const Batch b = make_batch(37, 301, 1000, 8.0f, 5);
  const float grad_scale = 0.37f;
  const int64_t cuts[] = {0, 97, 98, 301};  // parts [0, 97), [97, 98), [98, 301)
  const int64_t T = b.T, N = b.n_classes;
  std::vector<float> row_max(T, -std::numeric_limits<float>::infinity());
  std::vector<double> row_sum(T, 0.0), target_logit(T, 0.0);
  std::vector<std::vector<float>> parts;
  for (int p = 0; p < 3; ++p) {
    const int64_t lo = cuts[p], n = cuts[p + 1] - cuts[p];
    std::vector<float> part(static_cast<size_t>(T * n));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < n; ++c) part[t * n + c] = b.logits[t * N + lo + c];
    std::vector<float> m(T, kNaN);
    std::vector<double> s(T, -1.0), z(T, -1.0);
    cross_entropy_partial_stats(m.data(), s.data(), z.data(), part.data(), b.targets.data(),
                                b.weights.data(), T, n, b.class_begin + lo);
    for (int64_t t = 0; t < T; ++t) {  // merge, as vocab_parallel.cc does across ranks
      target_logit[t] += z[t];
      if (b.weights[t] == 0.0f) {
        EXPECT_EQ(s[t], 0.0);
        continue;
      }
      const float top = std::max(row_max[t], m[t]);
      row_sum[t] = row_sum[t] * std::exp(double(row_max[t]) - top) + s[t] * std::exp(double(m[t]) - top);
      row_max[t] = top;
    }
    parts.push_back(std::move(part));
  }
  const std::vector<double> want = reference_losses(b);
  for (int64_t t = 0; t < T; ++t) {
    const double loss = b.weights[t] == 0.0f
                            ? 0.0
                            : b.weights[t] * (row_max[t] + std::log(row_sum[t]) - target_logit[t]);
    EXPECT_NEAR(loss, want[t], 1e-5 * (1.0 + std::abs(want[t]))) << "row " << t;
  }
  std::vector<float> whole(b.logits.size(), kNaN), losses(T);
  cross_entropy_forward_backward(whole.data(), losses.data(), b.logits.data(), b.targets.data(),
                                 b.weights.data(), T, N, b.class_begin, grad_scale);
  for (int p = 0; p < 3; ++p) {
    const int64_t lo = cuts[p], n = cuts[p + 1] - cuts[p];
    std::vector<float> d(parts[p].size(), kNaN);
    cross_entropy_backward_from_stats(d.data(), parts[p].data(), b.targets.data(), b.weights.data(),
                                      row_max.data(), row_sum.data(), T, n, b.class_begin + lo,
                                      grad_scale);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < n; ++c)
        ASSERT_NEAR(d[t * n + c], whole[t * N + lo + c], 1e-6) << "part " << p << " row " << t << " class " << c;
  }
}

}  // namespace
}  // namespace reclm::ops
