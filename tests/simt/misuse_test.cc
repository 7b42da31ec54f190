// Misuse a GPU would hang or fault on fails loudly on the emulator: a __syncthreads not reached
// by every thread, launch configurations out of range, device intrinsics outside a kernel. An
// error leaves the emulator usable. Also the counting barriers (__syncthreads_count/and/or).
#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "simt/simt_test_util.h"
#include "thrown_message.h"

namespace reclm::simt {
namespace {

// The classic bug: out-of-range threads return before a barrier the others wait at.
__global__ void early_return_before_barrier_kernel(const float* in, float* out, int n) {
  RECLM_SHARED(float, staged, [64]);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  staged[threadIdx.x] = in[i];
  __syncthreads();
  out[i] = staged[(threadIdx.x + 1) % blockDim.x];
}

TEST(SimtMisuse, BarrierNotReachedByExitedThreadsThrows) {
  DeviceBuffer<float> in(std::vector<float>(100, 1.0f)), out(100);
  const std::string message = thrown_message<InternalError>(
      [&] { launch(early_return_before_barrier_kernel, dim3(2), dim3(64), 0, nullptr, in.data(), out.data(), 100); });
  EXPECT_NE(message.find("block (1,0,0) is stuck"), std::string::npos) << message;
  EXPECT_NE(message.find("28 of 64 threads exited, 36 wait at __syncthreads"), std::string::npos) << message;
  EXPECT_NE(message.find("must be reached by every thread"), std::string::npos) << message;
}

// Threads wait at two different barriers: a deadlock between a warp and the block.
__global__ void barrier_against_shuffle_kernel(int* out) {
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  }
}

TEST(SimtMisuse, BarrierAgainstWaitingWarpThrows) {
  DeviceBuffer<int> out(64);
  const std::string message =
      thrown_message<InternalError>([&] { launch(barrier_against_shuffle_kernel, dim3(1), dim3(64), 0, nullptr, out.data()); });
  EXPECT_NE(message.find("is stuck"), std::string::npos) << message;
  EXPECT_NE(message.find("wait in __shfl_sync(mask=0xffffffff)"), std::string::npos) << message;
}

__global__ void noop_kernel(int* out) { out[0] = 1; }

TEST(SimtMisuse, LaunchConfigurationOutOfRangeThrows) {
  DeviceBuffer<int> out(1);
  EXPECT_NE(thrown_message<InternalError>([&] { launch(noop_kernel, dim3(1), dim3(1025), 0, nullptr, out.data()); })
                .find("1025 threads"),
            std::string::npos);
  EXPECT_NE(thrown_message<InternalError>([&] { launch(noop_kernel, dim3(1), dim3(32, 32, 2), 0, nullptr, out.data()); })
                .find("2048 threads"),
            std::string::npos);
  EXPECT_NE(thrown_message<InternalError>([&] { launch(noop_kernel, dim3(1), dim3(1, 1, 65), 0, nullptr, out.data()); })
                .find("z <= 64"),
            std::string::npos);
  EXPECT_NE(thrown_message<InternalError>([&] { launch(noop_kernel, dim3(0), dim3(32), 0, nullptr, out.data()); })
                .find("gridDim (0,1,1)"),
            std::string::npos);
  EXPECT_NE(thrown_message<InternalError>([&] { launch(noop_kernel, dim3(1, 65536), dim3(32), 0, nullptr, out.data()); })
                .find("out of range"),
            std::string::npos);
}

TEST(SimtMisuse, IntrinsicsOutsideAKernelThrow) {
  EXPECT_NE(thrown_message<InternalError>([] { __syncthreads(); }).find("outside a kernel"), std::string::npos);
  EXPECT_THROW((void)threadIdx.x, InternalError);
  EXPECT_THROW((void)__shfl_sync(0xffffffffu, 1, 0), InternalError);
}

__global__ void throwing_kernel(int* out, int bad_block) {
  if (static_cast<int>(blockIdx.x) == bad_block && threadIdx.x == 3) throw std::runtime_error("kernel gave up");
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

TEST(SimtMisuse, KernelExceptionReachesTheLauncherAndTheEmulatorStaysUsable) {
  EmulatorOptions options = testing::deterministic(1);
  options.worker_threads = 2;
  ScopedEmulatorOptions scoped(options);
  DeviceBuffer<int> out(64 * 8);
  EXPECT_EQ(thrown_message<std::runtime_error>(
                [&] { launch(throwing_kernel, dim3(8), dim3(64), 0, nullptr, out.data(), 5); }),
            "kernel gave up");
  // The suspended fibers of the failed block were unwound and their stacks returned.
  launch(throwing_kernel, dim3(8), dim3(64), 0, nullptr, out.data(), -1);
  for (int v : out.download()) EXPECT_EQ(v, 1);
}

__global__ void trapping_kernel(int* out) {
  if (blockIdx.x == 2 && threadIdx.x == 9) __trap();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

TEST(SimtMisuse, TrapThrowsNamingTheThread) {
  DeviceBuffer<int> out(4 * 32);
  const std::string message =
      thrown_message<InternalError>([&] { launch(trapping_kernel, dim3(4), dim3(32), 0, nullptr, out.data()); });
  EXPECT_NE(message.find("thread (9,0,0) of block (2,0,0) called __trap()"), std::string::npos) << message;
}

// counts[b] = number of threads with odd input; all_odd/any_odd from the and/or barriers.
__global__ void counting_barriers_kernel(const int* in, int* counts, int* all_positive, int* any_negative) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int odd = __syncthreads_count(in[i] % 2 != 0);
  const int all = __syncthreads_and(in[i] > 0);
  const int any = __syncthreads_or(in[i] < 0);
  if (threadIdx.x == blockDim.x - 1) {
    counts[blockIdx.x] = odd;
    all_positive[blockIdx.x] = all;
    any_negative[blockIdx.x] = any;
  }
}

TEST(SimtBarriers, CountingBarriersMatchLoops) {
  const unsigned blocks = 6, threads = 50;
  std::vector<int> in = testing::random_ints(blocks * threads, 41, 1, 1000);
  in[2 * threads + 7] = -4;  // block 2: one negative
  for (unsigned t = 0; t < threads; ++t) in[4 * threads + t] = 2 * static_cast<int>(t) + 1;  // block 4: all odd
  DeviceBuffer<int> d_in(in), counts(blocks), all(blocks), any(blocks);
  launch(counting_barriers_kernel, dim3(blocks), dim3(threads), 0, nullptr, d_in.data(), counts.data(), all.data(),
         any.data());
  const std::vector<int> c = counts.download(), a = all.download(), n = any.download();
  for (unsigned b = 0; b < blocks; ++b) {
    int odd = 0, positive = 1, negative = 0;
    for (unsigned t = 0; t < threads; ++t) {
      const int v = in[b * threads + t];
      odd += v % 2 != 0;
      positive &= v > 0;
      negative |= v < 0;
    }
    EXPECT_EQ(c[b], odd) << b;
    EXPECT_EQ(a[b], positive) << b;
    EXPECT_EQ(n[b], negative) << b;
  }
  EXPECT_EQ(c[4], static_cast<int>(threads));
  EXPECT_EQ(n[2], 1);
}

}  // namespace
}  // namespace reclm::simt
