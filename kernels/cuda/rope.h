// Rotary position embedding on the GPU, exactly as ops::rope_forward / ops::rope_backward
// (kernels/ops.h): Hugging Face "rotate_half" pairing, 1D positions or ChatGLM 2D positions.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// x [n_tokens, n_heads, head_dim]. 1D (pos_intra == nullptr): pairs (i, i + head_dim/2) rotate
// by pos_inter[t] · θ^(-2i/head_dim). 2D: the first head_dim/2 values rotate by pos_inter, the
// second by pos_intra, each with pairs (i, i + head_dim/4) and angle pos · θ^(-2i/(head_dim/2)).
// Positions (device memory, [n_tokens]) must be >= 0. out may alias inp.
// cudaErrorInvalidValue if head_dim is not divisible by 2 (1D) or 4 (2D).
cudaError_t rope_forward(float* out, const float* inp, const int32_t* pos_inter, const int32_t* pos_intra,
                         int64_t n_tokens, int64_t n_heads, int64_t head_dim, float theta,
                         cudaStream_t stream);
// dinp = Rᵀ · dout (the rotation by −angle); dinp may alias dout.
cudaError_t rope_backward(float* dinp, const float* dout, const int32_t* pos_inter, const int32_t* pos_intra,
                          int64_t n_tokens, int64_t n_heads, int64_t head_dim, float theta,
                          cudaStream_t stream);

// The GPU trainer's rotation of one layer, bf16, in place, in one launch: the q and k heads of
// the fused QKV projection's rows qkv [T, (n_heads + 2·n_kv_heads) · head_dim] (q heads, then k
// heads, then v heads, which are left as they are); with rotate_q false the k heads only (the
// trainer's attention forward rotates q itself as it loads it, AttentionQkvRows). The attention
// kernels read q, k and v from these rows; the attention backward rotates dq and dk back itself
// (attention_backward.h). The
// rotation is the fp32 kernels' on the exactly widened values, rounded to nearest even as
// convert_f32_to_bf16 rounds: bitwise equal to that composition. `table`: rope_table's (cos, sin)
// of the same tokens, head_dim and positions (two_d: it was made with pos_intra, ChatGLM's
// pairing). cudaErrorInvalidValue if head_dim is not divisible by 2 (1D) or 4 (2D), or table is
// null.
struct QkvHeads {
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  bool two_d = false;
};
cudaError_t rope_qk_forward_bf16(__nv_bfloat16* qkv, const float* table, int64_t n_tokens, const QkvHeads& heads,
                                 cudaStream_t stream, bool rotate_q = true);

// The (cos, sin) the rotations use, for every token of a micro-batch: table [n_tokens, head_dim]
// (fp32, device), per token cos then sin of its head_dim/2 rotary pairs, each exactly the value
// rope_forward / rope_backward compute. rope_qk_forward_bf16 and the attention backward read it
// instead of doing the trig: positions change per micro-batch, not per layer, so the trainer makes
// it once per micro-batch for all 2 · n_layers rotations.
cudaError_t rope_table(float* table, const int32_t* pos_inter, const int32_t* pos_intra, int64_t n_tokens,
                       int64_t head_dim, float theta, cudaStream_t stream);

}  // namespace reclm::cuda
