// embedding_bag_forward / embedding_bag_backward (kernels/cpu/embedding_bag.cc) against a plain
// float64 loop, the transpose identity <forward(table), dout> == <table, backward(dout)>, and
// thread-count independence.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"

namespace reclm::ops {
namespace {

using namespace test_util;

// offsets [n_bags + 1] for bags of 0..max_size ids (some empty), drawn by mt19937(seed).
std::vector<int32_t> random_offsets(int64_t n_bags, int32_t max_size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> size(0, max_size);
  std::vector<int32_t> offsets(static_cast<size_t>(n_bags + 1), 0);
  for (int64_t b = 0; b < n_bags; ++b) offsets[b + 1] = offsets[b] + size(rng);
  return offsets;
}

constexpr EmbeddingBagMode kModes[] = {EmbeddingBagMode::kSum, EmbeddingBagMode::kMean};

TEST(EmbeddingBag, ForwardMatchesFloat64Loop) {
  const int32_t vocab = 37;
  for (EmbeddingBagMode mode : kModes) {
    for (int64_t n_bags : {1, 5, 131}) {
      for (int64_t dim : {1, 3, 64, 130}) {
        const auto offsets = random_offsets(n_bags, 9, 21);
        const auto ids = random_ints(offsets.back(), vocab - 1, 22);
        const auto table = uniform(static_cast<size_t>(vocab * dim), 23);
        std::vector<float> out(static_cast<size_t>(n_bags * dim), kNaN);
        embedding_bag_forward(out.data(), table.data(), ids.data(), offsets.data(), n_bags, dim,
                              mode);
        std::vector<double> want(out.size(), 0.0);
        for (int64_t b = 0; b < n_bags; ++b) {
          const int32_t count = offsets[b + 1] - offsets[b];
          for (int64_t c = 0; c < dim; ++c) {
            double sum = 0.0;
            for (int32_t j = offsets[b]; j < offsets[b + 1]; ++j) sum += table[ids[j] * dim + c];
            if (mode == EmbeddingBagMode::kMean && count > 0) sum /= count;
            want[b * dim + c] = sum;
          }
        }
        // fp32 sums of <= 9 values in [-1, 1]: a few ulps of ~3.
        expect_near_all(out, want, 1e-5, 1e-6, "bag out");
      }
    }
  }
}

TEST(EmbeddingBag, EmptyBagGivesZeros) {
  const int64_t dim = 5;
  const std::vector<int32_t> offsets = {0, 0, 2, 2};  // bags 0 and 2 are empty
  const std::vector<int32_t> ids = {1, 0};
  const auto table = uniform(2 * dim, 24);
  for (EmbeddingBagMode mode : kModes) {
    std::vector<float> out(3 * dim, kNaN);
    embedding_bag_forward(out.data(), table.data(), ids.data(), offsets.data(), 3, dim, mode);
    for (int64_t c = 0; c < dim; ++c) {
      EXPECT_EQ(out[c], 0.0f);
      EXPECT_EQ(out[2 * dim + c], 0.0f);
      const float sum = table[dim + c] + table[c];
      EXPECT_EQ(out[dim + c], mode == EmbeddingBagMode::kMean ? sum / 2.0f : sum);
    }
  }
}

TEST(EmbeddingBag, BackwardMatchesFloat64LoopAndLeavesUntouchedRows) {
  const int32_t vocab = 300;  // more rows than ids: many rows stay untouched
  for (EmbeddingBagMode mode : kModes) {
    for (int64_t dim : {1, 3, 64}) {
      const int64_t n_bags = 47;
      const auto offsets = random_offsets(n_bags, 6, 25);
      const auto ids = random_ints(offsets.back(), vocab / 3, 26);  // rows > vocab/3 untouched
      const auto dout = uniform(static_cast<size_t>(n_bags * dim), 27);
      const auto init = uniform(static_cast<size_t>(vocab * dim), 28);
      std::vector<double> want(init.begin(), init.end());
      for (int64_t b = 0; b < n_bags; ++b) {
        const int32_t count = offsets[b + 1] - offsets[b];
        for (int32_t j = offsets[b]; j < offsets[b + 1]; ++j)
          for (int64_t c = 0; c < dim; ++c)
            want[ids[j] * dim + c] +=
                mode == EmbeddingBagMode::kMean ? dout[b * dim + c] / double(count)
                                                : double(dout[b * dim + c]);
      }
      std::vector<float> got = init;
      embedding_bag_backward(got.data(), dout.data(), ids.data(), offsets.data(), n_bags, dim,
                             mode);
      // fp32 accumulation of ~6 terms of magnitude <= 1 onto a value in [-1, 1].
      expect_near_all(got, want, 1e-5, 1e-6, "dtable");
      for (size_t i = (vocab / 3 + 1) * dim; i < got.size(); ++i)
        ASSERT_EQ(std::memcmp(&got[i], &init[i], sizeof(float)), 0) << "untouched row changed at " << i;
    }
  }
}

// Backward is the transpose of forward: <forward(table), dout> == <table, backward(dout)>.
TEST(EmbeddingBag, BackwardIsTransposeOfForward) {
  const int32_t vocab = 23;  // fewer rows than ids: rows repeat within and across bags
  const int64_t n_bags = 61, dim = 17;
  for (EmbeddingBagMode mode : kModes) {
    const auto offsets = random_offsets(n_bags, 8, 29);
    const auto ids = random_ints(offsets.back(), vocab - 1, 30);
    const auto table = uniform(static_cast<size_t>(vocab * dim), 31);
    const auto dout = uniform(static_cast<size_t>(n_bags * dim), 32);
    std::vector<float> out(static_cast<size_t>(n_bags * dim), kNaN);
    embedding_bag_forward(out.data(), table.data(), ids.data(), offsets.data(), n_bags, dim, mode);
    std::vector<float> dtable(table.size(), 0.0f);
    embedding_bag_backward(dtable.data(), dout.data(), ids.data(), offsets.data(), n_bags, dim,
                           mode);
    double lhs = 0.0, rhs = 0.0, scale = 0.0;
    for (size_t i = 0; i < out.size(); ++i) {
      lhs += double(out[i]) * dout[i];
      scale += std::abs(double(out[i]) * dout[i]);
    }
    for (size_t i = 0; i < table.size(); ++i) rhs += double(table[i]) * dtable[i];
    // Both sides are fp32 sums of <= 8 terms before the float64 dot: relative ~1e-6.
    EXPECT_NEAR(lhs, rhs, 1e-5 * scale) << (mode == EmbeddingBagMode::kMean ? "mean" : "sum");
  }
}

TEST(EmbeddingBag, BackwardIsDeterministicAcrossThreadCounts) {
  const int32_t vocab = 7;
  const int64_t n_bags = 1001, dim = 96;
  const auto offsets = random_offsets(n_bags, 5, 33);
  const auto ids = random_ints(offsets.back(), vocab - 1, 34);
  const auto dout = uniform(static_cast<size_t>(n_bags * dim), 35);
  const auto init = uniform(static_cast<size_t>(vocab * dim), 36);
  for (EmbeddingBagMode mode : kModes) {
    std::vector<float> a = init, b = init;
    embedding_bag_backward(a.data(), dout.data(), ids.data(), offsets.data(), n_bags, dim, mode);
    {
      ScopedThreads one(1);
      embedding_bag_backward(b.data(), dout.data(), ids.data(), offsets.data(), n_bags, dim, mode);
    }
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  }
}

}  // namespace
}  // namespace reclm::ops
