// Atomics on the emulator, with blocks on several OS threads so that they really race: a
// shared-then-global histogram, and each of atomicMax/Min/CAS/Exch/Inc/Sub and the 16-bit float
// adds against host loops; atomics as scheduling points (a spin lock progresses, a split
// read-modify-write without it loses updates).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "simt/demo_kernels.h"
#include "simt/simt_test_util.h"

namespace reclm::simt {
namespace {

EmulatorOptions parallel_blocks() {
  EmulatorOptions options = testing::deterministic(5);
  options.worker_threads = 4;
  return options;
}

TEST(SimtAtomics, HistogramMatchesLoop) {
  ScopedEmulatorOptions options(parallel_blocks());
  const int n = 200003, n_bins = 37;
  const std::vector<int> values = testing::random_ints(n, 51, 0, n_bins - 1);
  DeviceBuffer<int> d_values(values);
  DeviceBuffer<unsigned> bins(std::vector<unsigned>(n_bins, 0));
  launch(demo::histogram_kernel, dim3(23), dim3(96), n_bins * sizeof(unsigned), nullptr, d_values.data(), n, bins.data(),
         n_bins);
  std::vector<unsigned> expected(n_bins, 0);
  for (int v : values) ++expected[v];
  EXPECT_EQ(bins.download(), expected);
}

struct AtomicTargets {
  int max_value;
  int min_value;
  unsigned umax_value;
  unsigned long long ull_sum;
  double double_sum;
  int sub_total;
  unsigned or_bits;
  unsigned inc_counter;
  int cas_winner;  // -1 until the first thread swaps in its index
  int exch_count;  // threads that found a nonzero value in `flag` when exchanging
  float flag;
};

__global__ void atomic_targets_kernel(const int* in, int n, AtomicTargets* targets) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;  // no barrier in this kernel: an early return is fine
  atomicMax(&targets->max_value, in[i]);
  atomicMin(&targets->min_value, in[i]);
  atomicMax(&targets->umax_value, static_cast<unsigned>(in[i] + 1000));
  atomicAdd(&targets->ull_sum, static_cast<unsigned long long>(in[i] + 1000));
  atomicAdd(&targets->double_sum, static_cast<double>(in[i]) * 0.5);
  atomicSub(&targets->sub_total, in[i]);
  atomicOr(&targets->or_bits, 1u << (i % 32));
  atomicInc(&targets->inc_counter, 0xffffffffu);
  atomicCAS(&targets->cas_winner, -1, i);
  if (atomicExch(&targets->flag, 1.0f) != 0.0f) atomicAdd(&targets->exch_count, 1);
}

TEST(SimtAtomics, EachAtomicMatchesLoop) {
  ScopedEmulatorOptions options(parallel_blocks());
  const int n = 50001;
  const std::vector<int> in = testing::random_ints(n, 52, -999, 999);
  DeviceBuffer<int> d_in(in);
  DeviceBuffer<AtomicTargets> targets(std::vector<AtomicTargets>{{-1000, 1000, 0, 0, 0.0, 0, 0, 0, -1, 0, 0.0f}});
  launch(atomic_targets_kernel, dim3(testing::blocks_for(n, 128)), dim3(128), 0, nullptr, d_in.data(), n, targets.data());
  const AtomicTargets got = targets.download()[0];
  long long sum = 0;
  double half_sum = 0.0;
  for (int v : in) {
    sum += v;
    half_sum += v * 0.5;
  }
  EXPECT_EQ(got.max_value, *std::max_element(in.begin(), in.end()));
  EXPECT_EQ(got.min_value, *std::min_element(in.begin(), in.end()));
  EXPECT_EQ(got.umax_value, static_cast<unsigned>(*std::max_element(in.begin(), in.end()) + 1000));
  EXPECT_EQ(got.ull_sum, static_cast<unsigned long long>(sum + 1000LL * n));
  EXPECT_NEAR(got.double_sum, half_sum, 1e-6);
  EXPECT_EQ(got.sub_total, -sum);
  EXPECT_EQ(got.or_bits, 0xffffffffu);
  EXPECT_EQ(got.inc_counter, static_cast<unsigned>(n));
  EXPECT_GE(got.cas_winner, 0);
  EXPECT_LT(got.cas_winner, n);
  EXPECT_EQ(got.exch_count, n - 1);  // only the first exchange found 0
}

__global__ void wrapping_inc_kernel(unsigned* counter, unsigned limit, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) atomicInc(counter, limit);
}

TEST(SimtAtomics, AtomicIncWrapsAtItsLimit) {
  const int n = 1000;
  DeviceBuffer<unsigned> counter(std::vector<unsigned>{0});
  launch(wrapping_inc_kernel, dim3(8), dim3(128), 0, nullptr, counter.data(), 6u, n);
  EXPECT_EQ(counter.download()[0], static_cast<unsigned>(n % 7));
}

// sums[k] += x[i] for i % n_sums == k, in bf16 and fp16: every value is a small integer, so
// each partial sum is exact in 16-bit floats and the order of the adds does not matter.
__global__ void half_precision_adds_kernel(const float* x, int n, __nv_bfloat16* bf16_sums, __half* fp16_sums,
                                           int n_sums) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  atomicAdd(&bf16_sums[i % n_sums], __float2bfloat16(x[i]));
  atomicAdd(&fp16_sums[i % n_sums], __float2half(x[i]));
}

TEST(SimtAtomics, SixteenBitFloatAddsMatchLoop) {
  ScopedEmulatorOptions options(parallel_blocks());
  const int n = 3001, n_sums = 5;
  std::vector<float> x(n);
  const std::vector<int> ints = testing::random_ints(n, 53, -3, 3);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(ints[i]);
  DeviceBuffer<float> d_x(x);
  DeviceBuffer<__nv_bfloat16> bf16(std::vector<__nv_bfloat16>(n_sums, __float2bfloat16(0.0f)));
  DeviceBuffer<__half> fp16(std::vector<__half>(n_sums, __float2half(0.0f)));
  launch(half_precision_adds_kernel, dim3(testing::blocks_for(n, 64)), dim3(64), 0, nullptr, d_x.data(), n, bf16.data(),
         fp16.data(), n_sums);
  const std::vector<__nv_bfloat16> got_bf16 = bf16.download();
  const std::vector<__half> got_fp16 = fp16.download();
  for (int k = 0; k < n_sums; ++k) {
    float expected = 0.0f;
    for (int i = k; i < n; i += n_sums) expected += x[i];
    EXPECT_EQ(__bfloat162float(got_bf16[k]), expected) << k;  // |sum| < 256: exact in bf16
    EXPECT_EQ(__half2float(got_fp16[k]), expected) << k;
  }
}

// counts[b] = number of threads of block b that incremented a shared counter with a split
// read-modify-write (a fence between the read and the write lets other threads run there).
// With kLock the increment is guarded by a spin lock on atomicCAS: the spinning threads must
// let the holder finish (atomics are scheduling points). Without it, updates get lost.
template <bool kLock>
__global__ void locked_counter_kernel(int* counts) {
  RECLM_SHARED(int, lock);
  RECLM_SHARED(int, counter);
  if (threadIdx.x == 0) {
    lock = 0;
    counter = 0;
  }
  __syncthreads();
  if (kLock) {
    while (atomicCAS(&lock, 0, 1) != 0) {
    }
  }
  const int seen = counter;
  __threadfence_block();
  counter = seen + 1;
  if (kLock) atomicExch(&lock, 0);
  __syncthreads();
  if (threadIdx.x == 0) counts[blockIdx.x] = counter;
}

TEST(SimtAtomics, SpinLockProgressesAndItsAbsenceLosesUpdates) {
  const unsigned blocks = 3, threads = 96;
  int seeds_losing_updates = 0;
  for (std::uint64_t seed : {1, 2, 3}) {
    ScopedEmulatorOptions options(testing::deterministic(seed));
    DeviceBuffer<int> locked(blocks), unlocked(blocks);
    launch(locked_counter_kernel<true>, dim3(blocks), dim3(threads), 0, nullptr, locked.data());
    launch(locked_counter_kernel<false>, dim3(blocks), dim3(threads), 0, nullptr, unlocked.data());
    for (int count : locked.download()) EXPECT_EQ(count, static_cast<int>(threads)) << "seed " << seed;
    for (int count : unlocked.download()) {
      EXPECT_LE(count, static_cast<int>(threads));
      if (count < static_cast<int>(threads)) ++seeds_losing_updates;
    }
  }
  EXPECT_GE(seeds_losing_updates, 1);
}

}  // namespace
}  // namespace reclm::simt
