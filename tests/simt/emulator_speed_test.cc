// The emulator is fast enough for kernel tests over a few hundred thousand elements: one
// elementwise launch and one block reduction (9 barriers per thread) over 300,000 elements each
// finish well under a second. Prints the measured rate (Melem/s) for the record.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "simt/demo_kernels.h"
#include "simt/simt_test_util.h"

namespace reclm::simt {
namespace {

__global__ void scale_kernel(const float* x, float a, float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i];
}

template <typename Launch>
double seconds_for(Launch&& run) {
  const auto start = std::chrono::steady_clock::now();
  run();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(SimtEmulatorSpeed, ThreeHundredThousandElementsWellUnderASecond) {
  const int n = 300001;
  const std::vector<float> x = testing::random_floats(n, 71);
  DeviceBuffer<float> d_x(x), d_y(n), d_sums(testing::blocks_for(n, 256));
  const unsigned blocks = testing::blocks_for(n, 256);
  launch(scale_kernel, dim3(blocks), dim3(256), 0, nullptr, d_x.data(), 2.0f, d_y.data(), n);  // warm the stack pool
  const double elementwise = seconds_for(
      [&] { launch(scale_kernel, dim3(blocks), dim3(256), 0, nullptr, d_x.data(), 2.0f, d_y.data(), n); });
  const double reduction = seconds_for([&] {
    launch(demo::block_sum_kernel<256>, dim3(blocks), dim3(256), 0, nullptr, d_x.data(), n, d_sums.data());
  });
  const std::vector<float> y = d_y.download();
  for (int i = 0; i < n; ++i) ASSERT_EQ(y[i], 2.0f * x[i]) << i;
  std::printf("simt emulator, %d worker threads: elementwise %.1f Melem/s (%.1f ms), block reduction %.1f Melem/s (%.1f ms)\n",
              emulator_options().worker_threads, n / elementwise * 1e-6, elementwise * 1e3, n / reduction * 1e-6,
              reduction * 1e3);
  // Measured on 2 cores: ~10 ms and ~100 ms. The bound leaves room for a loaded CI machine.
  EXPECT_LT(elementwise, 1.0);
  EXPECT_LT(reduction, 1.0);
}

}  // namespace
}  // namespace reclm::simt
