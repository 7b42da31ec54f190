// A kernel source as kernels/cuda/*.cu will be: demonstration kernels (tests/simt/demo_kernels.h)
// and a host function that launches them. nvcc compiles it in CUDA builds (compile only on CI:
// no GPU); reclm_emulated_kernels compiles the same file with g++ for the emulator, and
// same_source_test.cc runs it there.
#include <vector>

#include "simt/demo_kernels.h"

namespace reclm::simt::demo {

// Runs each demonstration kernel once on small inputs; returns the first launch error.
cudaError_t run_demo_kernels() {
  const int n = 1000;
  DeviceBuffer<float> x(std::vector<float>(n, 1.0f)), y(std::vector<float>(n, 2.0f)), sums(8);
  DeviceBuffer<int> values(std::vector<int>(n, 3));
  DeviceBuffer<unsigned> bins(std::vector<unsigned>(16, 0u));
  DeviceBuffer<__nv_bfloat16> x16(std::vector<__nv_bfloat16>(n, __float2bfloat16(0.5f))), y16(n);
  cudaError_t status = launch(block_sum_kernel<256>, dim3(4), dim3(256), 0, nullptr, x.data(), n, sums.data());
  if (status == cudaSuccess)
    status = launch(block_sum_missing_barrier_kernel<256>, dim3(4), dim3(256), 0, nullptr, x.data(), n, sums.data());
  if (status == cudaSuccess)
    status = launch(grid_stride_warp_sum_kernel, dim3(3), dim3(128), 0, nullptr, x.data(), static_cast<long long>(n),
                    sums.data());
  if (status == cudaSuccess)
    status = launch(histogram_kernel, dim3(3), dim3(96), 16 * sizeof(unsigned), nullptr, values.data(), n, bins.data(), 16);
  if (status == cudaSuccess)
    status = launch(bf16_scale_bias_kernel, dim3(3, 4), dim3(16, 8), 16 * sizeof(float), nullptr, x16.data(), 25, 40,
                    x.data(), 2.0f, y16.data());
  if (status == cudaSuccess)
    status = launch(gemm_bf16_mma_kernel, dim3(2, 1), dim3(32), 0, nullptr, x16.data(), x16.data(), y.data(), 16, 32);
  if (status == cudaSuccess)
    status = launch(async_staged_scale_kernel, dim3(4), dim3(64), 4 * 64 * sizeof(float), nullptr, x.data(), n, 3.0f,
                    y.data());
  if (status == cudaSuccess) status = launch(float4_axpy_kernel, dim3(4), dim3(64), 0, nullptr, 0.5f, x.data(), y.data(), n);
  device_synchronize();
  return status;
}

}  // namespace reclm::simt::demo
