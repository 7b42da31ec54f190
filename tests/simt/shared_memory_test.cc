// Shared memory on the emulator: static (RECLM_SHARED) and dynamic (RECLM_DYNAMIC_SHARED)
// shared memory start every block poisoned, so a read of a value this block never wrote gives
// NaN; the dynamic size is checked against the kernel's limit.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "simt/simt_test_util.h"
#include "thrown_message.h"

namespace reclm::simt {
namespace {

using testing::deterministic;

// out[b * blockDim + t] = what shared slot t held before this block wrote it; then the block
// writes the slot (so, without re-poisoning, the next block on this OS thread would read it).
__global__ void read_static_shared_before_writing_kernel(float* out) {
  RECLM_SHARED(float, slots, [128]);
  const int t = threadIdx.x;
  out[blockIdx.x * blockDim.x + t] = slots[t];
  __syncthreads();
  slots[t] = static_cast<float>(blockIdx.x * 1000 + t);
}

__global__ void read_dynamic_shared_before_writing_kernel(float* out) {
  RECLM_DYNAMIC_SHARED(float, slots);
  const int t = threadIdx.x;
  out[blockIdx.x * blockDim.x + t] = slots[t];
  __syncthreads();
  slots[t] = static_cast<float>(blockIdx.x * 1000 + t);
}

// Correct use of both kinds in one kernel: out[i] = in[i] + in[reversed i within the block],
// through a static tile and a dynamic one (blockDim.x floats), with a scalar shared flag.
__global__ void reverse_add_kernel(const float* in, float* out) {
  RECLM_SHARED(float, tile, [64]);
  RECLM_SHARED(int, block_flag);
  RECLM_DYNAMIC_SHARED(float, reversed);
  const int t = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + t;
  if (t == 0) block_flag = static_cast<int>(blockIdx.x);
  tile[t] = in[i];
  reversed[blockDim.x - 1 - t] = in[i];
  __syncthreads();
  out[i] = tile[t] + reversed[t] + static_cast<float>(block_flag - static_cast<int>(blockIdx.x));
}

template <typename Kernel>
std::vector<float> run_reader(Kernel kernel, unsigned blocks, std::size_t shared_bytes) {
  DeviceBuffer<float> out(blocks * 128);
  out.upload(std::vector<float>(blocks * 128, 0.0f));  // the kernel must overwrite every 0
  launch(kernel, dim3(blocks), dim3(128), shared_bytes, nullptr, out.data());
  return out.download();
}

TEST(SimtSharedMemory, StaticSharedIsPoisonedAtEveryBlockStart) {
  ScopedEmulatorOptions options(deterministic(3));  // one OS thread runs all blocks in turn
  const std::vector<float> seen = run_reader(read_static_shared_before_writing_kernel, 5, 0);
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_TRUE(std::isnan(seen[i])) << "element " << i << ": " << seen[i];
}

TEST(SimtSharedMemory, DynamicSharedIsPoisonedAtEveryBlockStart) {
  ScopedEmulatorOptions options(deterministic(4));
  const std::vector<float> seen = run_reader(read_dynamic_shared_before_writing_kernel, 5, 128 * sizeof(float));
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_TRUE(std::isnan(seen[i])) << "element " << i << ": " << seen[i];
}

TEST(SimtSharedMemory, StaticAndDynamicSharedTogether) {
  const unsigned blocks = 7, threads = 64;
  const std::vector<float> in = testing::random_floats(blocks * threads, 21);
  DeviceBuffer<float> d_in(in), d_out(in.size());
  launch(reverse_add_kernel, dim3(blocks), dim3(threads), threads * sizeof(float), nullptr, d_in.data(), d_out.data());
  const std::vector<float> out = d_out.download();
  for (unsigned b = 0; b < blocks; ++b) {
    for (unsigned t = 0; t < threads; ++t) {
      EXPECT_EQ(out[b * threads + t], in[b * threads + t] + in[b * threads + threads - 1 - t]) << b << "," << t;
    }
  }
}

TEST(SimtSharedMemory, DynamicSharedOverTheLimitThrows) {
  DeviceBuffer<float> out(128);
  const std::string message = thrown_message<InternalError>([&] {
    launch(read_dynamic_shared_before_writing_kernel, dim3(1), dim3(128), 48 * 1024 + 1, nullptr, out.data());
  });
  EXPECT_NE(message.find("49153 bytes of dynamic shared memory"), std::string::npos) << message;
}

__global__ void large_dynamic_shared_kernel(float* out) {
  RECLM_DYNAMIC_SHARED(float, big);  // 100 KiB
  const int n = 100 * 1024 / 4;
  for (int i = threadIdx.x; i < n; i += blockDim.x) big[i] = static_cast<float>(i);
  __syncthreads();
  float sum = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) sum += big[n - 1 - i];
  out[threadIdx.x] = sum;
}

TEST(SimtSharedMemory, OptInRaisesTheDynamicSharedLimit) {
  DeviceBuffer<float> out(128);
  // The limit is per kernel and process-wide: start from the default, whatever ran before.
  ASSERT_EQ(set_max_dynamic_shared_bytes(large_dynamic_shared_kernel, 48 * 1024), cudaSuccess);
  EXPECT_THROW(launch(large_dynamic_shared_kernel, dim3(1), dim3(128), 100 * 1024, nullptr, out.data()), InternalError);
  ASSERT_EQ(set_max_dynamic_shared_bytes(large_dynamic_shared_kernel, 100 * 1024), cudaSuccess);
  launch(large_dynamic_shared_kernel, dim3(1), dim3(128), 100 * 1024, nullptr, out.data());
  const std::vector<float> sums = out.download();
  const int n = 100 * 1024 / 4;
  for (int t = 0; t < 128; ++t) {
    double expected = 0.0;
    for (int i = t; i < n; i += 128) expected += n - 1 - i;
    EXPECT_NEAR(sums[t], expected, 1e-6 * expected) << t;
  }
  EXPECT_THROW(set_max_dynamic_shared_bytes(large_dynamic_shared_kernel, 228 * 1024), InternalError);
}

}  // namespace
}  // namespace reclm::simt
