// cp.async on the emulator: tiles staged with 16-byte async copies (zero-filled past the end of
// odd-sized inputs) sum right after a wait and a barrier; without the wait the tile is still
// poison; wait_group N leaves exactly the N most recent groups in flight; misuse throws.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/simt/async_copy.h"
#include "simt/simt_test_util.h"
#include "thrown_message.h"

namespace reclm::simt {
namespace {

constexpr int kThreads = 64;  // each thread stages 4 floats: a 256-float tile per block

// sums[b] = sum of x over block b's 256 elements ∩ [0, n); x 16-byte aligned.
template <bool kWaitForCopies>
__global__ void staged_tile_sum_kernel(const float* x, int n, float* sums) {
  RECLM_SHARED(float, tile, [4 * kThreads]);
  const int t = threadIdx.x;
  const int first = (blockIdx.x * kThreads + t) * 4;
  const int valid = min(max(n - first, 0), 4);
  cp_async_16_zfill(&tile[4 * t], valid > 0 ? x + first : x, valid * 4);
  cp_async_commit();
  if (kWaitForCopies) cp_async_wait<0>();
  __syncthreads();
  if (t == 0) {
    float sum = 0.0f;
    for (int i = 0; i < 4 * kThreads; ++i) sum += tile[i];
    sums[blockIdx.x] = sum;
  }
}

template <bool kWaitForCopies>
std::vector<float> staged_sums(const std::vector<float>& x) {
  const unsigned blocks = testing::blocks_for(x.size(), 4 * kThreads);
  DeviceBuffer<float> d_x(x), d_sums(blocks);
  launch(staged_tile_sum_kernel<kWaitForCopies>, dim3(blocks), dim3(kThreads), 0, nullptr, d_x.data(),
         static_cast<int>(x.size()), d_sums.data());
  return d_sums.download();
}

TEST(SimtAsyncCopy, StagedTilesSumRightAfterTheWait) {
  const std::vector<float> x = testing::random_floats(1001, 101);  // last chunk: 1 of 4 floats
  const std::vector<float> sums = staged_sums<true>(x);
  for (std::size_t b = 0; b < sums.size(); ++b) {
    double expected = 0.0;
    for (std::size_t i = b * 256; i < std::min(x.size(), (b + 1) * 256); ++i) expected += x[i];
    EXPECT_NEAR(sums[b], expected, 1e-4) << b;
  }
}

TEST(SimtAsyncCopy, MissingWaitReadsPoison) {
  const std::vector<float> x = testing::random_floats(1001, 102);
  for (float sum : staged_sums<false>(x)) EXPECT_TRUE(std::isnan(sum)) << sum;
}

// Two commit groups per thread: after wait_group 1 the first group has landed and the second
// not yet (emulator: still poison); after wait_group 0 both have.
__global__ void two_groups_kernel(const float* x, float* first_after_wait1, float* second_after_wait1,
                                  float* second_after_wait0) {
  RECLM_SHARED(float, first, [4 * 32]);
  RECLM_SHARED(float, second, [4 * 32]);
  const int t = threadIdx.x;
  cp_async_16(&first[4 * t], x + 4 * t);
  cp_async_commit();
  cp_async_16(&second[4 * t], x + 128 + 4 * t);
  cp_async_commit();
  cp_async_wait<1>();
  first_after_wait1[t] = first[4 * t + 1];  // a thread sees its own copies after its wait
  second_after_wait1[t] = second[4 * t + 1];
  cp_async_wait<0>();
  second_after_wait0[t] = second[4 * t + 1];
}

TEST(SimtAsyncCopy, WaitGroupLeavesTheMostRecentGroupsInFlight) {
  const std::vector<float> x = testing::random_floats(256, 103);
  DeviceBuffer<float> d_x(x), a(32), b(32), c(32);
  launch(two_groups_kernel, dim3(1), dim3(32), 0, nullptr, d_x.data(), a.data(), b.data(), c.data());
  const std::vector<float> first = a.download(), in_flight = b.download(), second = c.download();
  for (int t = 0; t < 32; ++t) {
    EXPECT_EQ(first[t], x[4 * t + 1]) << t;
    EXPECT_TRUE(std::isnan(in_flight[t])) << t;
    EXPECT_EQ(second[t], x[128 + 4 * t + 1]) << t;
  }
}

__global__ void async_copy_to_global_kernel(const float* x, float* y) {
  cp_async_16(y + 4 * threadIdx.x, x + 4 * threadIdx.x);
  cp_async_wait_all();
}

__global__ void misaligned_async_copy_kernel(const float* x, float* /*unused*/) {
  RECLM_SHARED(float, tile, [4 * 32 + 4]);
  cp_async_16(&tile[4 * threadIdx.x + 1], x + 4 * threadIdx.x);
  cp_async_wait_all();
}

TEST(SimtAsyncCopy, MisuseThrows) {
  DeviceBuffer<float> x(std::vector<float>(256, 1.0f)), y(256);
  EXPECT_NE(thrown_message<InternalError>([&] {
              launch(async_copy_to_global_kernel, dim3(1), dim3(32), 0, nullptr, x.data(), y.data());
            }).find("is not the block's shared memory"),
            std::string::npos);
  EXPECT_NE(thrown_message<InternalError>([&] {
              launch(misaligned_async_copy_kernel, dim3(1), dim3(32), 0, nullptr, x.data(), y.data());
            }).find("must be 16-byte aligned"),
            std::string::npos);
}

}  // namespace
}  // namespace reclm::simt
