// fill_f32: out[i] = value. The simplest kernel: it proves the plumbing (nvcc architectures,
// flags, resource report; the emulated build and its test) and the GPU backend uses it to poison
// and clear buffers.
#include "kernels/cuda/fill.h"

#include "kernels/cuda/launch_config.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {

// Grid-stride loop: any grid size covers any n.
__global__ void fill_f32_kernel(float* out, float value, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = value;
  }
}

cudaError_t fill_f32(float* out, float value, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int kThreads = 256;
  return simt::launch(fill_f32_kernel, dim3(grid_stride_blocks(n, kThreads)), dim3(kThreads), 0, stream,
                      out, value, n);
}

}  // namespace reclm::cuda
