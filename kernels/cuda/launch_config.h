// Launch shapes shared by the kernels in kernels/cuda (both targets: nvcc and the emulator).
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// Blocks for a grid-stride loop over n elements with `threads` per block: enough to cover n once,
// capped (each thread then loops), at least 1.
inline unsigned grid_stride_blocks(int64_t n, int threads, int64_t max_blocks = 8192) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks));
}

}  // namespace reclm::cuda
