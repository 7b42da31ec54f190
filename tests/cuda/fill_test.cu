// fill_f32 (kernels/cuda/fill.cu) on the emulator (label emu) and on a GPU (label gpu): the
// smallest example of a kernel test written once for both.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cuda/fill.h"
#include "kernels/simt/device_memory.h"

namespace reclm::cuda {
namespace {

// Every element of odd sizes (not multiples of the block), and nothing past n: the buffer is
// poisoned (NaN) beyond it and must stay so.
TEST(CudaFill, WritesExactlyTheFirstNElements) {
  for (int64_t n : {int64_t{1}, int64_t{255}, int64_t{257}, int64_t{100003}}) {
    simt::DeviceBuffer<float> out(static_cast<size_t>(n + 7));
    ASSERT_EQ(fill_f32(out.data(), 1.5f, n, nullptr), cudaSuccess);
    simt::device_synchronize();
    const std::vector<float> host = out.download();
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(host[i], 1.5f) << "element " << i << " of " << n;
    for (int64_t i = n; i < n + 7; ++i) EXPECT_TRUE(std::isnan(host[i])) << "wrote past n at " << i;
  }
}

}  // namespace
}  // namespace reclm::cuda
