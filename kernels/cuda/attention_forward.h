// FlashAttention-2 forward over packed variable-length segments (kernels/cuda/attention_forward.cu),
// bf16 in and out, fp32 accumulation. Semantics as ops::attention_forward (kernels/ops.h):
// segment s covers tokens [cu_seqlens[s], cu_seqlens[s+1]); local query i sees key j iff j <= i or
// j < prefix_lens[s] (prefix_lens == nullptr: causal; prefix = segment length: bidirectional);
// query head h reads kv head h / (n_heads / n_kv_heads).
//   q, out [T, n_heads, head_dim]   k, v [T, n_kv_heads, head_dim]   bf16
//   lse [n_heads, T] fp32: natural-log log-sum-exp of the scaled scores (saved for the backward)
//   cu_seqlens [n_segments + 1], prefix_lens [n_segments] (or null): int32, device memory
// max_seqlen >= every segment length (it sizes the grid). head_dim 32, 64, 96 or 128
// (attention_head_dims.h), n_kv_heads dividing n_heads, else cudaErrorInvalidValue. q/k/v/out
// 16-byte aligned (cudaMalloc gives it).
// out and lse are overwritten for every token of every segment.
#pragma once

#include <cstdint>

#include "kernels/cuda/attention_head_dims.h"
#include "kernels/ops.h"
#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// rows (AttentionQkvRows, attention_head_dims.h): row_stride: q, k, v are the heads of fused QKV
// rows, as the trainer's fused projection writes them (out stays [T, n_heads, head_dim]);
// rope_table: q is read as the projection wrote it and rotated by RoPE in registers (bitwise as
// rope_qk_forward_bf16 rotates), and the rotated q is written to rows.q_rotated (required then;
// may be q: each q row is read and written by one warp), for the backward; k must be rotated
// already (rope_qk_forward_bf16 with rotate_q false).
// heads_per_block: query heads of a kv group that one block computes over one copy of the K/V
// tiles: 0 picks (2 when n_heads / n_kv_heads is even, else 1); 1, or 2 with an even ratio, forces
// it (else cudaErrorInvalidValue). The results are the same bits either way; the choice is for
// speed (bench/gpu/attention_forward_cases.cu times both).
cudaError_t attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                              const __nv_bfloat16* v, const int32_t* cu_seqlens, const int32_t* prefix_lens,
                              int64_t n_segments, int64_t max_seqlen, const ops::AttentionShape& shape,
                              cudaStream_t stream, int heads_per_block = 0, const AttentionQkvRows& rows = {});

}  // namespace reclm::cuda
