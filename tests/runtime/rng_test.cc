// Philox-4x32-10 against the Random123 known answers, the documented CounterRng counter layout,
// stream independence, and loose distribution checks. Every stream has a fixed seed, so the
// statistical bounds are deterministic: they either always pass or always fail.
#include "runtime/rng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "runtime/errors.h"

namespace reclm {
namespace {

// Random123 kat_vectors, "philox4x32 10" lines (also checked against an independent
// reimplementation of the round function from the SC'11 paper).
TEST(Philox4x32_10, KnownAnswerZeroCounterZeroKey) {
  const PhiloxCounter expected = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), expected);
}

TEST(Philox4x32_10, KnownAnswerAllOnes) {
  const PhiloxCounter expected = {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu};
  EXPECT_EQ(philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                          {0xffffffffu, 0xffffffffu}),
            expected);
}

TEST(Philox4x32_10, KnownAnswerPiDigits) {
  const PhiloxCounter expected = {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
  EXPECT_EQ(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                          {0xa4093822u, 0x299f31d0u}),
            expected);
}

std::vector<uint32_t> first_draws(CounterRng rng, int n) {
  std::vector<uint32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(rng.next_u32());
  return out;
}

// rng.h: draw k is word k % 4 of philox({k / 4, sample, step, purpose << 16 | rank}, seed).
// GPU kernels recompute draws from this layout, so it is a contract, not an implementation detail.
TEST(CounterRng, DrawsFollowTheDocumentedCounterLayout) {
  const uint64_t seed = 0x0123456789abcdefull;
  const uint64_t step = 77;
  const uint32_t rank = 3;
  const uint64_t sample = 12345;
  CounterRng rng(seed, RngPurpose::kMasking, step, rank, sample);
  const PhiloxKey key = {0x89abcdefu, 0x01234567u};
  for (uint32_t k = 0; k < 12; ++k) {
    const PhiloxCounter counter = {k / 4, static_cast<uint32_t>(sample),
                                   static_cast<uint32_t>(step),
                                   (static_cast<uint32_t>(RngPurpose::kMasking) << 16) | rank};
    EXPECT_EQ(rng.next_u32(), philox4x32_10(counter, key)[k % 4]) << "draw " << k;
  }
}

TEST(CounterRng, SameKeyGivesSameStream) {
  const CounterRng a(42, RngPurpose::kInit, 5, 1, 9);
  const CounterRng b(42, RngPurpose::kInit, 5, 1, 9);
  EXPECT_EQ(first_draws(a, 64), first_draws(b, 64));
}

TEST(CounterRng, EachKeyFieldSelectsADifferentStream) {
  const auto base = first_draws(CounterRng(42, RngPurpose::kInit, 5, 1, 9), 16);
  EXPECT_NE(base, first_draws(CounterRng(43, RngPurpose::kInit, 5, 1, 9), 16)) << "seed";
  EXPECT_NE(base, first_draws(CounterRng(42ull | (1ull << 32), RngPurpose::kInit, 5, 1, 9), 16))
      << "seed high word";
  EXPECT_NE(base, first_draws(CounterRng(42, RngPurpose::kMasking, 5, 1, 9), 16)) << "purpose";
  EXPECT_NE(base, first_draws(CounterRng(42, RngPurpose::kInit, 6, 1, 9), 16)) << "step";
  EXPECT_NE(base, first_draws(CounterRng(42, RngPurpose::kInit, 5, 2, 9), 16)) << "rank";
  EXPECT_NE(base, first_draws(CounterRng(42, RngPurpose::kInit, 5, 1, 10), 16)) << "sample";
}

TEST(CounterRng, StreamsDoNotOverlapAcrossSamples) {
  // Sample s + 1 must not be sample s shifted by a block (the sample is not the block index).
  const auto a = first_draws(CounterRng(7, RngPurpose::kTest, 0, 0, 0), 64);
  const auto b = first_draws(CounterRng(7, RngPurpose::kTest, 0, 0, 1), 64);
  for (uint32_t x : b) {
    for (uint32_t y : a) EXPECT_NE(x, y);
  }
}

TEST(CounterRng, RankMustFitSixteenBits) {
  EXPECT_NO_THROW(CounterRng(1, RngPurpose::kTest, 0, 0xFFFF));
  EXPECT_THROW(CounterRng(1, RngPurpose::kTest, 0, 0x10000), InternalError);
}

TEST(CounterRng, UniformIsInUnitIntervalWithMeanAndVarianceOfU01) {
  CounterRng rng(2024, RngPurpose::kTest);
  constexpr int kDraws = 100000;
  double sum = 0.0, sum_sq = 0.0;
  for (int i = 0; i < kDraws; ++i) {
    const float u = rng.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    sum_sq += static_cast<double>(u) * u;
  }
  const double mean = sum / kDraws;
  const double variance = sum_sq / kDraws - mean * mean;
  // Standard error of the mean is sqrt(1/12 / 1e5) ≈ 0.0009; the bounds are ~5 sigma.
  EXPECT_NEAR(mean, 0.5, 0.005);
  EXPECT_NEAR(variance, 1.0 / 12.0, 0.002);
}

TEST(CounterRng, UniformUsesTwentyFourBits) {
  CounterRng rng(3, RngPurpose::kTest);
  CounterRng raw(3, RngPurpose::kTest);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(rng.uniform(), static_cast<float>(raw.next_u32() >> 8) / 16777216.0f);
  }
}

// Pearson chi-square of counts against a uniform expectation.
double chi_square(const std::vector<int64_t>& counts, double expected_each) {
  double chi2 = 0.0;
  for (int64_t c : counts) {
    const double d = static_cast<double>(c) - expected_each;
    chi2 += d * d / expected_each;
  }
  return chi2;
}

TEST(CounterRng, BelowSmallNCoversRangeUniformly) {
  CounterRng rng(11, RngPurpose::kTest);
  constexpr uint64_t n = 7;
  constexpr int kDraws = 70000;
  std::vector<int64_t> counts(n, 0);
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t x = rng.below(n);
    ASSERT_LT(x, n);
    ++counts[x];
  }
  for (int64_t c : counts) EXPECT_GT(c, 0);
  // 6 degrees of freedom: P(chi2 > 40) < 1e-6.
  EXPECT_LT(chi_square(counts, static_cast<double>(kDraws) / n), 40.0);
}

TEST(CounterRng, BelowLargeNUsesAllSixtyFourBits) {
  CounterRng rng(12, RngPurpose::kTest);
  constexpr uint64_t n = (1ull << 33) + 3;
  constexpr int kBuckets = 16;
  constexpr uint64_t kBucketWidth = (n + kBuckets - 1) / kBuckets;  // last bucket 13 shorter
  constexpr int kDraws = 64000;
  std::vector<int64_t> counts(kBuckets, 0);
  int above_2_32 = 0;
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t x = rng.below(n);
    ASSERT_LT(x, n);
    if (x >= (1ull << 32)) ++above_2_32;
    ++counts[x / kBucketWidth];
  }
  for (int64_t c : counts) EXPECT_GT(c, 0);
  // Half of [0, n) lies at or above 2^32.
  EXPECT_NEAR(static_cast<double>(above_2_32) / kDraws, 0.5, 0.02);
  // 15 degrees of freedom: P(chi2 > 60) < 1e-6.
  EXPECT_LT(chi_square(counts, static_cast<double>(kDraws) / kBuckets), 60.0);
}

TEST(CounterRng, BelowEdgeCases) {
  CounterRng rng(13, RngPurpose::kTest);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(rng.below(1), 0u);
  for (int i = 0; i < 100; ++i) EXPECT_LT(rng.below(1ull << 32), 1ull << 32);
  for (int i = 0; i < 100; ++i) EXPECT_LT(rng.below(0xFFFFFFFFull), 0xFFFFFFFFull);
  for (int i = 0; i < 100; ++i) EXPECT_LT(rng.below(UINT64_MAX), UINT64_MAX);
  EXPECT_THROW(rng.below(0), InternalError);
}

// seek(k) continues exactly as a stream that took k draws: at every word of a block (k % 4), at
// block edges, and far into the stream; normal() after seek(2·j) is the stream's normal j.
TEST(CounterRng, SeekContinuesAsTheStreamDrawnInOrder) {
  CounterRng in_order(21, RngPurpose::kInit, 0, 0, 5);
  std::vector<uint32_t> draws(1040);
  for (uint32_t& d : draws) d = in_order.next_u32();
  for (const uint64_t k : {0, 1, 2, 3, 4, 5, 7, 8, 513, 1022, 1023}) {
    CounterRng sought(21, RngPurpose::kInit, 0, 0, 5);
    sought.next_u32();  // (a stream already drawn from: seek repositions it)
    sought.seek(k);
    for (uint64_t i = k; i < k + 8; ++i) ASSERT_EQ(sought.next_u32(), draws[i]) << "seek " << k << ", draw " << i;
  }
  CounterRng normals(21, RngPurpose::kInit, 0, 0, 5);
  std::vector<double> z(9);
  for (double& v : z) v = normals.normal();
  CounterRng sought(21, RngPurpose::kInit, 0, 0, 5);
  sought.seek(2 * 7);
  EXPECT_EQ(sought.normal(), z[7]);
  EXPECT_EQ(sought.normal(), z[8]);

  // far: draw 2^33 + 6 (block 2^31 + 1, word 2) against the block computed directly
  CounterRng far(21, RngPurpose::kInit, 0, 0, 5);
  far.seek((uint64_t{1} << 33) + 6);
  const PhiloxCounter block = philox4x32_10({(1u << 31) + 1, 5, 0, static_cast<uint32_t>(RngPurpose::kInit) << 16},
                                            {21, 0});
  EXPECT_EQ(far.next_u32(), block[2]);
  EXPECT_EQ(far.next_u32(), block[3]);
  EXPECT_THROW(far.seek(uint64_t{1} << 34), InternalError);
}

TEST(CounterRng, NormalHasZeroMeanAndUnitVariance) {
  CounterRng rng(99, RngPurpose::kTest);
  constexpr int kDraws = 100000;
  double sum = 0.0, sum_sq = 0.0;
  int beyond_two_sigma = 0;
  for (int i = 0; i < kDraws; ++i) {
    const double z = rng.normal();
    ASSERT_TRUE(std::isfinite(z));
    sum += z;
    sum_sq += z * z;
    if (std::abs(z) > 2.0) ++beyond_two_sigma;
  }
  const double mean = sum / kDraws;
  const double variance = sum_sq / kDraws - mean * mean;
  // Standard errors: mean 0.0032, variance 0.0045; bounds are ~6 sigma.
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(variance, 1.0, 0.03);
  // P(|z| > 2) = 0.0455 for a standard normal.
  EXPECT_NEAR(static_cast<double>(beyond_two_sigma) / kDraws, 0.0455, 0.005);
}

}  // namespace
}  // namespace reclm
