// out[i] = value for i < n (device memory). Poisons and clears buffers of the GPU backend.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

cudaError_t fill_f32(float* out, float value, int64_t n, cudaStream_t stream);

}  // namespace reclm::cuda
