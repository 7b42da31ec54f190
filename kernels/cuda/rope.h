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

// The GPU trainer's forms, bf16 in and out around the same fp32 rotation: the input widened
// exactly, the output rounded to nearest even as convert_f32_to_bf16 rounds; bitwise equal to
// that composition with the fp32 kernels. The strided side is q or k inside the rows of the
// fused QKV projection ([T, q_dim + 2·kv_dim]): forward reads inp rows of inp_stride values and
// writes out contiguous [T, n_heads, head_dim]; backward reads dout contiguous and writes dinp
// rows of dinp_stride values (0: contiguous). In place only with equal strides.
cudaError_t rope_forward_bf16(__nv_bfloat16* out, const __nv_bfloat16* inp, const int32_t* pos_inter,
                              const int32_t* pos_intra, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                              float theta, cudaStream_t stream, int64_t inp_stride = 0,
                              const float* table = nullptr);
cudaError_t rope_backward_bf16(__nv_bfloat16* dinp, const __nv_bfloat16* dout, const int32_t* pos_inter,
                               const int32_t* pos_intra, int64_t n_tokens, int64_t n_heads, int64_t head_dim,
                               float theta, cudaStream_t stream, int64_t dinp_stride = 0,
                               const float* table = nullptr);

// The (cos, sin) the rotations use, for every token of a micro-batch: table [n_tokens, head_dim]
// (fp32, device), per token cos then sin of its head_dim/2 rotary pairs, each exactly the value
// the kernels above compute. Passed as `table` to rope_forward_bf16 / rope_backward_bf16 (with
// the same positions, head_dim and theta), it replaces their trig: bitwise the same outputs.
// Positions change per micro-batch, not per layer, so the trainer makes it once per micro-batch.
cudaError_t rope_table(float* table, const int32_t* pos_inter, const int32_t* pos_intra, int64_t n_tokens,
                       int64_t head_dim, float theta, cudaStream_t stream);

}  // namespace reclm::cuda
