// sum_of_squares (kernels/cuda/grad_norm.cu) against ops::sum_of_squares, on the emulator (emu)
// and a GPU (gpu). Both sum in double in different orders: tolerance 1e-12 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/cuda/grad_norm.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"
#if !defined(__CUDACC__)
#include "kernels/simt/emulator_options.h"
#endif

namespace reclm::cuda {
namespace {

using ops::test_util::uniform;

// Runs the kernel on x[offset, offset + n) of a device copy of host (offset shifts the
// alignment); the workspace starts poisoned.
double device_sum_of_squares(const std::vector<float>& host, int64_t offset, int64_t n) {
  simt::DeviceBuffer<float> x(host);
  simt::DeviceBuffer<double> workspace(static_cast<size_t>(sum_of_squares_workspace_doubles(n)));
  simt::DeviceBuffer<double> result(1);
  EXPECT_EQ(sum_of_squares(result.data(), x.data() + offset, n, workspace.data(), nullptr), cudaSuccess);
  simt::device_synchronize();
  return result.download()[0];
}

TEST(CudaGradNorm, MatchesCpuForOddSizesAndAlignments) {
  // Sizes around the vector width and the block's reach, plus one spanning many blocks.
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{3}, int64_t{5}, int64_t{2047}, int64_t{2053},
                    int64_t{1000003}}) {
    for (int64_t offset : {int64_t{0}, int64_t{1}, int64_t{3}}) {
      const std::vector<float> host = uniform(static_cast<size_t>(n + offset), static_cast<uint32_t>(n + 7 * offset), -3.0f, 3.0f);
      const double want = ops::sum_of_squares(host.data() + offset, n);
      const double got = device_sum_of_squares(host, offset, n);
      EXPECT_NEAR(got, want, 1e-12 * want) << "n " << n << " offset " << offset;
      if (n == 1000003) std::printf("sum_of_squares n %lld offset %lld: relative error %.2e\n",
                                    static_cast<long long>(n), static_cast<long long>(offset),
                                    std::abs(got - want) / want);
      if (n > 0) {
        EXPECT_GT(got, 0.0);
      }
    }
  }
}

TEST(CudaGradNorm, LargeValuesDoNotLosePrecision) {
  // fp32 squares of 1e18 overflow (3e38 max): the kernel must square in double.
  std::vector<float> host = uniform(70001, 11, 1e18f, 2e19f);
  const double want = ops::sum_of_squares(host.data(), 70001);
  const double got = device_sum_of_squares(host, 0, 70001);
  EXPECT_TRUE(std::isfinite(got));
  EXPECT_NEAR(got, want, 1e-12 * want);
}

// Bitwise the same for repeated runs and (on the emulator) schedules and worker threads.
TEST(CudaGradNorm, BitwiseReproducible) {
  const int64_t n = 600011;
  const std::vector<float> host = uniform(static_cast<size_t>(n), 5, -1.0f, 1.0f);
  const double first = device_sum_of_squares(host, 0, n);
  for (int run = 0; run < 3; ++run) {
#if !defined(__CUDACC__)
    simt::ScopedEmulatorOptions options({static_cast<uint64_t>(17 + run), 1 + run});
#endif
    const double again = device_sum_of_squares(host, 0, n);
    EXPECT_EQ(std::memcmp(&first, &again, sizeof(double)), 0) << first << " vs " << again;
  }
}

// Segments of odd sizes and alignments (one empty) inside one device buffer: the sum of the
// segments' CPU sums of squares (1e-12 relative), and bitwise reproducible.
TEST(CudaGradNorm, SegmentsMatchCpu) {
  const std::vector<int64_t> begin = {1, 2000, 2000, 7003, 300000};
  const std::vector<int64_t> sizes = {1995, 0, 5001, 200001, 3};
  const std::vector<float> host = uniform(300003, 23, -2.0f, 2.0f);
  simt::DeviceBuffer<float> x(host);
  std::vector<const float*> segments;
  double want = 0.0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    segments.push_back(x.data() + begin[k]);
    want += ops::sum_of_squares(host.data() + begin[k], sizes[k]);
  }
  const int n_segments = static_cast<int>(sizes.size());
  simt::DeviceBuffer<double> workspace(
      static_cast<size_t>(sum_of_squares_segments_workspace_doubles(sizes.data(), n_segments)));
  simt::DeviceBuffer<double> result(1);
  double first = 0.0;
  for (int run = 0; run < 2; ++run) {
    ASSERT_EQ(sum_of_squares_segments(result.data(), segments.data(), sizes.data(), n_segments, workspace.data(),
                                      nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const double got = result.download()[0];
    EXPECT_NEAR(got, want, 1e-12 * want);
    if (run == 0) {
      first = got;
    } else {
      EXPECT_EQ(std::memcmp(&first, &got, sizeof(double)), 0);
    }
  }
}

// The sum a block's fixed tree (warp butterflies, then the 16 warps' sums in order) makes of
// values held one per thread, as the final pass adds the segments' slots.
double block_tree_sum(const std::vector<double>& values) {
  std::vector<double> lanes(512, 0.0);
  for (size_t t = 0; t < values.size(); ++t) lanes[t] = 0.0 + values[t];
  double total = 0.0;
  for (int warp = 0; warp < 16; ++warp) {
    double* v = lanes.data() + 32 * warp;
    for (int offset = 16; offset > 0; offset /= 2) {
      double next[32];
      for (int lane = 0; lane < 32; ++lane) next[lane] = v[lane] + v[lane ^ offset];
      std::memcpy(v, next, sizeof(next));
    }
    total += v[0];
  }
  return total;
}

// However many segments one launch takes, each segment is summed exactly as sum_of_squares sums
// it alone, and the segments' sums are added in one fixed tree: the trainer's stage-wise norm is
// the same bits however its tensors are grouped. Segments of odd sizes and alignments, empty and
// vector-free ones among them, the workspace poisoned; 9 segments (a layer's tensors: one group)
// and 37 (three groups).
TEST(CudaGradNorm, SegmentsAreEachSummedAsAloneThenAddedInAFixedTree) {
  for (const int n_segments : {9, 37}) {
    std::vector<int64_t> begin, sizes;
    int64_t at = 0;
    for (int k = 0; k < n_segments; ++k) {
      const int64_t shape[] = {70001, 0, 3, 1029, 5, 200003, 2, 4096, 1};
      const int64_t n = shape[k % 9] + 13 * k;
      at += k % 4;  // (shifts each segment's alignment)
      begin.push_back(at);
      sizes.push_back(n);
      at += n;
    }
    std::vector<float> host = uniform(static_cast<size_t>(at), static_cast<uint32_t>(n_segments), -2.0f, 2.0f);
    for (int k = 0; k < n_segments; ++k) {  // magnitudes 1e-3 to 1e3: the order the sums are added in shows
      const float scale = std::pow(10.0f, static_cast<float>(k % 7 - 3));
      for (int64_t i = 0; i < sizes[k]; ++i) host[static_cast<size_t>(begin[k] + i)] *= scale;
    }
    simt::DeviceBuffer<float> x(host);
    std::vector<const float*> segments;
    std::vector<double> alone;
    double cpu = 0.0;
    for (int k = 0; k < n_segments; ++k) {
      segments.push_back(x.data() + begin[k]);
      alone.push_back(device_sum_of_squares(host, begin[k], sizes[k]));
      cpu += ops::sum_of_squares(host.data() + begin[k], sizes[k]);
    }
    const double want = block_tree_sum(alone);
    simt::DeviceBuffer<double> workspace(std::vector<double>(
        static_cast<size_t>(sum_of_squares_segments_workspace_doubles(sizes.data(), n_segments)), std::nan("")));
    simt::DeviceBuffer<double> result(std::vector<double>{std::nan("")});
    ASSERT_EQ(sum_of_squares_segments(result.data(), segments.data(), sizes.data(), n_segments, workspace.data(),
                                      nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const double got = result.download()[0];
    EXPECT_EQ(std::memcmp(&got, &want, sizeof(double)), 0) << n_segments << " segments: " << got << " vs " << want;
    EXPECT_NEAR(got, cpu, 1e-12 * cpu);
  }
}

}  // namespace
}  // namespace reclm::cuda
