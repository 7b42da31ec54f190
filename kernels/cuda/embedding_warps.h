// Warp-level indexing shared by the embedding kernels (embedding.cu, embedding_bag.cu,
// sorted_scatter_add.cu), on both targets.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda::embedding_detail {

constexpr int kThreads = 256;  // every embedding kernel except the scan
constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = kThreads / kWarpSize;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x) % kWarpSize; }
__device__ __forceinline__ int64_t global_warp() {
  return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
}
__device__ __forceinline__ int64_t grid_warps() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x / kWarpSize;
}

}  // namespace reclm::cuda::embedding_detail
