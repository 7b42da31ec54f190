// fill_f32: out[i] = value. The first CUDA kernel: it proves the nvcc plumbing (architectures,
// flags, resource report) in CI; the trainer's GPU backend uses it to poison and clear buffers.
#include <cuda_runtime.h>

#include <cstdint>

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
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  fill_f32_kernel<<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), kThreads, 0, stream>>>(out, value, n);
  return cudaGetLastError();
}

}  // namespace reclm::cuda
