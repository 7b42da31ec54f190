// The head dims the GPU attention kernels are built for (attention_forward.cu,
// attention_backward.cu instantiate their tiles for each), and their row-stride rule. No CUDA
// types: the config validation reads it too, to refuse other head dims before anything runs.
#pragma once

#include <cstdint>

namespace reclm::cuda {

inline constexpr int64_t kAttentionHeadDims[] = {32, 64, 96, 128};

inline constexpr bool attention_supports_head_dim(int64_t head_dim) {
  for (const int64_t d : kAttentionHeadDims)
    if (d == head_dim) return true;
  return false;
}

// The attention kernels' qkv_row_stride: 0 (q, k, v are separate contiguous arrays), or the
// stride of fused QKV rows in elements, a multiple of 8 (16-byte copies) that holds all the heads.
inline constexpr bool attention_qkv_row_stride_ok(int64_t stride, int64_t n_heads, int64_t n_kv_heads,
                                                  int64_t head_dim) {
  return stride == 0 || (stride > 0 && stride % 8 == 0 && stride >= (n_heads + 2 * n_kv_heads) * head_dim);
}

// "32, 64, 96 or 128", for messages.
inline constexpr const char* kAttentionHeadDimsText = "32, 64, 96 or 128";

}  // namespace reclm::cuda
