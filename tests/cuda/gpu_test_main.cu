// main() of cuda_kernels_gpu_test (the kernel tests built by nvcc): runs them on GPU 0, or says
// why not and exits 0, so a machine without a GPU reports the test as skipped.
#include <gtest/gtest.h>

#include <cstdio>

#include <cuda_runtime.h>

int main(int argc, char** argv) {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device (%s)\n",
                status != cudaSuccess ? cudaGetErrorString(status) : "none found");
    return 0;
  }
  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  std::printf("CUDA kernels on GPU 0: %s (sm_%d%d)\n", properties.name, properties.major, properties.minor);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
