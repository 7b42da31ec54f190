// The head dims the GPU attention kernels are built for (attention_forward.cu,
// attention_backward.cu instantiate their tiles for each), and the fused-rows layout they take
// (AttentionQkvRows). No CUDA types: the config validation reads it too, to refuse other head
// dims before anything runs.
#pragma once

#include <cstdint>

namespace reclm::cuda {

inline constexpr int64_t kAttentionHeadDims[] = {32, 64, 96, 128};

inline constexpr bool attention_supports_head_dim(int64_t head_dim) {
  for (const int64_t d : kAttentionHeadDims)
    if (d == head_dim) return true;
  return false;
}

// AttentionQkvRows::row_stride's rule: 0 (q, k, v are separate contiguous arrays), or the stride
// of fused QKV rows in elements, a multiple of 8 (16-byte copies) that holds all the heads.
inline constexpr bool attention_qkv_row_stride_ok(int64_t stride, int64_t n_heads, int64_t n_kv_heads,
                                                  int64_t head_dim) {
  return stride == 0 || (stride > 0 && stride % 8 == 0 && stride >= (n_heads + 2 * n_kv_heads) * head_dim);
}

// Where the attention kernels read q, k, v (and the backward writes dq, dk, dv), and the RoPE they
// apply: the trainer's fused layout (attention_forward.h, attention_backward.h for each side).
//   row_stride: 0 (separate contiguous arrays [T, heads, head_dim]), or q, k, v are the heads of
//     fused QKV rows this many elements apart (attention_qkv_row_stride_ok): q at the rows' column
//     0, k at n_heads·head_dim, v at (n_heads + n_kv_heads)·head_dim;
//   rope_table: null, or the micro-batch's RoPE (cos, sin) table (cuda::rope_table: [T, head_dim],
//     made with pos_intra when rope_two_d); needs head_dim divisible by 16 (1D) or 32 (2D), as
//     every supported head_dim is;
//   q_rotated: the forward with a rope_table reads q unrotated, rotates it, and writes the
//     rotated q here (rows like q's; may be q itself), where the backward reads it.
struct AttentionQkvRows {
  int64_t row_stride = 0;
  const float* rope_table = nullptr;
  bool rope_two_d = false;
  void* q_rotated = nullptr;  // bf16 (no CUDA types in this header)
};

// "32, 64, 96 or 128", for messages.
inline constexpr const char* kAttentionHeadDimsText = "32, 64, 96 or 128";

}  // namespace reclm::cuda
