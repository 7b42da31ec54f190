// The .cu file that nvcc compiles for the GPU (tests/simt/run_demo_kernels.cu) is also built by
// g++ for the emulator (reclm_emulated_kernels in tests/simt/CMakeLists.txt) and runs here
// unchanged: a kernel source is written once.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

namespace reclm::simt::demo {
cudaError_t run_demo_kernels();  // tests/simt/run_demo_kernels.cu
}

namespace reclm::simt {
namespace {

TEST(SimtSameSource, CudaSourceBuiltByGxxRunsOnTheEmulator) { EXPECT_EQ(demo::run_demo_kernels(), cudaSuccess); }

}  // namespace
}  // namespace reclm::simt
