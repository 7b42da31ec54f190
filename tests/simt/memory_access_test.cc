// Memory access patterns on the emulator: bf16 loads and stores with a 2D grid of 2D blocks,
// 16-byte float4 loads with a scalar tail, and grid-stride loops over odd sizes. Outputs start
// poisoned (NaN), so an element a kernel skips fails the comparison.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "simt/demo_kernels.h"
#include "simt/simt_test_util.h"

namespace reclm::simt {
namespace {

TEST(SimtMemoryAccess, Bf16ScaleBiasOver2dGrid) {
  const int rows = 45, cols = 77;  // neither a multiple of the 16 x 8 block
  const float scale = 1.75f;
  const std::vector<float> values = testing::random_floats(rows * cols, 61, -4.0f, 4.0f);
  const std::vector<float> bias = testing::random_floats(cols, 62);
  std::vector<__nv_bfloat16> x(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) x[i] = __float2bfloat16(values[i]);
  DeviceBuffer<__nv_bfloat16> d_x(x), d_y(x.size());
  DeviceBuffer<float> d_bias(bias);
  const dim3 block(16, 8), grid((cols + 15) / 16, (rows + 7) / 8);
  launch(demo::bf16_scale_bias_kernel, grid, block, block.x * sizeof(float), nullptr, d_x.data(), rows, cols,
         d_bias.data(), scale, d_y.data());
  const std::vector<__nv_bfloat16> y = d_y.download();
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const float expected = __bfloat162float(x[r * cols + c]) * scale + bias[c];
      const float got = __bfloat162float(y[r * cols + c]);
      // bf16 keeps 8 significant bits: one rounding of the result, relative error <= 2^-8.
      ASSERT_NEAR(got, expected, std::fabs(expected) * 0x1p-8f + 1e-6f) << r << "," << c;
    }
  }
}

TEST(SimtMemoryAccess, Float4AxpyWithScalarTailOverOddSizes) {
  for (int n : {1, 3, 4, 5, 1023, 100001}) {
    const float a = -0.625f;
    const std::vector<float> x = testing::random_floats(n, 63 + n), y0 = testing::random_floats(n, 64 + n);
    DeviceBuffer<float> d_x(x), d_y(y0);
    launch(demo::float4_axpy_kernel, dim3(13), dim3(64), 0, nullptr, a, d_x.data(), d_y.data(), n);
    const std::vector<float> y = d_y.download();
    for (int i = 0; i < n; ++i) ASSERT_EQ(y[i], std::fma(a, x[i], y0[i])) << "n " << n << " i " << i;
  }
}

TEST(SimtMemoryAccess, AsyncStagedScaleOverOddSizes) {
  for (int n : {3, 256, 1001}) {
    const std::vector<float> x = testing::random_floats(n, 65 + n);
    DeviceBuffer<float> d_x(x), d_y(n);
    const unsigned threads = 64;
    launch(demo::async_staged_scale_kernel, dim3(testing::blocks_for(n, 4 * threads)), dim3(threads),
           4 * threads * sizeof(float), nullptr, d_x.data(), n, -1.5f, d_y.data());
    const std::vector<float> y = d_y.download();
    for (int i = 0; i < n; ++i) ASSERT_EQ(y[i], -1.5f * x[i]) << "n " << n << " i " << i;
  }
}

// out[i] = index triple of the thread that wrote it, for a 3D grid of 3D blocks: checks the
// built-in variables and CUDA's linear thread order (x fastest).
struct WrittenBy {
  unsigned tx, ty, tz, bx, by, bz;
};

__global__ void record_indices_kernel(WrittenBy* out) {
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[block * threads + thread] = {threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z};
}

TEST(SimtMemoryAccess, BuiltInIndicesCoverA3dGridOnce) {
  const dim3 grid(3, 2, 2), block(5, 3, 2);
  const unsigned threads = block.x * block.y * block.z, blocks = grid.x * grid.y * grid.z;
  DeviceBuffer<WrittenBy> out(threads * blocks);
  launch(record_indices_kernel, grid, block, 0, nullptr, out.data());
  const std::vector<WrittenBy> got = out.download();
  for (unsigned i = 0; i < got.size(); ++i) {
    const unsigned b = i / threads, t = i % threads;
    EXPECT_EQ(got[i].tx, t % block.x);
    EXPECT_EQ(got[i].ty, t / block.x % block.y);
    EXPECT_EQ(got[i].tz, t / (block.x * block.y));
    EXPECT_EQ(got[i].bx, b % grid.x);
    EXPECT_EQ(got[i].by, b / grid.x % grid.y);
    EXPECT_EQ(got[i].bz, b / (grid.x * grid.y));
  }
}

}  // namespace
}  // namespace reclm::simt
