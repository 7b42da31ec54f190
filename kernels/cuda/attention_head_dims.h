// The head dims the GPU attention kernels are built for (attention_forward.cu,
// attention_backward.cu instantiate their tiles for each). No CUDA types: the config validation
// reads it too, to refuse other head dims before anything runs.
#pragma once

#include <cstdint>

namespace reclm::cuda {

inline constexpr int64_t kAttentionHeadDims[] = {32, 64, 96, 128};

inline constexpr bool attention_supports_head_dim(int64_t head_dim) {
  for (const int64_t d : kAttentionHeadDims)
    if (d == head_dim) return true;
  return false;
}

// "32, 64, 96 or 128", for messages.
inline constexpr const char* kAttentionHeadDimsText = "32, 64, 96 or 128";

}  // namespace reclm::cuda
