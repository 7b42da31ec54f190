// Reductions on the emulator: a shared-memory tree reduction with barriers and a warp-shuffle
// reduction over a grid-stride loop, against double-precision loops; and the race hunting:
// the same tree reduction without its loop barrier goes wrong under some schedule seed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "simt/demo_kernels.h"
#include "simt/simt_test_util.h"

namespace reclm::simt {
namespace {

using testing::blocks_for;
using testing::deterministic;
using testing::random_floats;

constexpr int kThreads = 256;

std::vector<double> reference_block_sums(const std::vector<float>& x, int block) {
  std::vector<double> sums(blocks_for(x.size(), block), 0.0);
  for (std::size_t i = 0; i < x.size(); ++i) sums[i / block] += x[i];
  return sums;
}

// Runs a block-sum kernel over x and returns the largest |result - reference| over blocks
// (NaN when an output is NaN or was not written).
template <typename Kernel>
double block_sum_error(Kernel kernel, const std::vector<float>& x) {
  const unsigned blocks = blocks_for(x.size(), kThreads);
  DeviceBuffer<float> d_x(x);
  DeviceBuffer<float> d_sums(blocks);  // poisoned: an unwritten sum reads NaN
  EXPECT_EQ(launch(kernel, dim3(blocks), dim3(kThreads), 0, nullptr, d_x.data(), static_cast<int>(x.size()),
                   d_sums.data()),
            cudaSuccess);
  const std::vector<float> sums = d_sums.download();
  const std::vector<double> expected = reference_block_sums(x, kThreads);
  double worst = 0.0;
  for (unsigned b = 0; b < blocks; ++b) {
    const double error = std::fabs(sums[b] - expected[b]);
    if (std::isnan(error)) return error;
    worst = std::max(worst, error);
  }
  return worst;
}

TEST(SimtReductions, BlockTreeReductionMatchesLoopForEverySeed) {
  const std::vector<float> x = random_floats(100003, 11);  // odd: the last block is partial
  for (std::uint64_t seed : {1, 2, 3, 4, 5}) {
    ScopedEmulatorOptions options(deterministic(seed));
    EXPECT_LT(block_sum_error(demo::block_sum_kernel<kThreads>, x), 1e-4) << "seed " << seed;
  }
}

TEST(SimtReductions, LargestBlockOf1024Threads) {
  const std::vector<float> x = random_floats(5 * 1024 - 3, 16);
  const unsigned blocks = blocks_for(x.size(), 1024);
  DeviceBuffer<float> d_x(x), d_sums(blocks);
  launch(demo::block_sum_kernel<1024>, dim3(blocks), dim3(1024), 0, nullptr, d_x.data(), static_cast<int>(x.size()),
         d_sums.data());
  const std::vector<float> sums = d_sums.download();
  const std::vector<double> expected = reference_block_sums(x, 1024);
  for (unsigned b = 0; b < blocks; ++b) EXPECT_NEAR(sums[b], expected[b], 1e-4) << b;
}

TEST(SimtReductions, MissingBarrierGivesWrongSumUnderSomeSeed) {
  const std::vector<float> x = random_floats(kThreads * 3 + 17, 12);
  int wrong_seeds = 0;
  for (std::uint64_t seed : {1, 2, 3, 4, 5}) {
    ScopedEmulatorOptions options(deterministic(seed));
    const double correct = block_sum_error(demo::block_sum_kernel<kThreads>, x);
    const double broken = block_sum_error(demo::block_sum_missing_barrier_kernel<kThreads>, x);
    EXPECT_LT(correct, 1e-4) << "seed " << seed;
    if (!(broken < 1e-4)) ++wrong_seeds;
  }
  EXPECT_GE(wrong_seeds, 1) << "the missing __syncthreads went unnoticed under every seed";
}

// The schedule is a function of the seed: the broken kernel's (wrong) sums replay bit for bit,
// and differ between some pair of seeds.
TEST(SimtReductions, SameSeedReplaysTheSameSchedule) {
  const std::vector<float> x = random_floats(kThreads * 4 + 5, 15);
  const auto broken_sums = [&](std::uint64_t seed) {
    ScopedEmulatorOptions options(deterministic(seed));
    DeviceBuffer<float> d_x(x), d_sums(5);
    launch(demo::block_sum_missing_barrier_kernel<kThreads>, dim3(5), dim3(kThreads), 0, nullptr, d_x.data(),
           static_cast<int>(x.size()), d_sums.data());
    return d_sums.download();
  };
  const std::vector<float> first = broken_sums(21);
  EXPECT_EQ(std::memcmp(first.data(), broken_sums(21).data(), first.size() * sizeof(float)), 0);
  bool differs = false;
  for (std::uint64_t seed : {22, 23, 24}) {
    differs = differs || std::memcmp(first.data(), broken_sums(seed).data(), first.size() * sizeof(float)) != 0;
  }
  EXPECT_TRUE(differs);
}

TEST(SimtReductions, BlocksOnSeveralWorkerThreadsGiveTheSameSums) {
  const std::vector<float> x = random_floats(65537, 13);
  EmulatorOptions options = deterministic(7);
  options.worker_threads = 3;
  ScopedEmulatorOptions scoped(options);
  EXPECT_LT(block_sum_error(demo::block_sum_kernel<kThreads>, x), 1e-4);
}

TEST(SimtReductions, GridStrideWarpShuffleSumMatchesLoop) {
  for (long long n : {1LL, 31LL, 1000LL, 300007LL}) {
    const std::vector<float> x = random_floats(static_cast<std::size_t>(n), 14 + n);
    const unsigned blocks = 37, threads = 128;  // fewer threads than elements: grid-stride
    DeviceBuffer<float> d_x(x);
    DeviceBuffer<float> d_sums(blocks);
    launch(demo::grid_stride_warp_sum_kernel, dim3(blocks), dim3(threads), 0, nullptr, d_x.data(), n, d_sums.data());
    double total = 0.0, expected = 0.0;
    for (float s : d_sums.download()) total += s;
    for (float v : x) expected += v;
    EXPECT_NEAR(total, expected, 1e-3) << "n " << n;
  }
}

}  // namespace
}  // namespace reclm::simt
