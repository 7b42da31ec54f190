// FlashAttention-2 backward over packed variable-length segments (kernels/cuda/attention_backward.cu),
// bf16 in and out, fp32 accumulation. Semantics as ops::attention_backward (kernels/ops.h):
// segment s covers tokens [cu_seqlens[s], cu_seqlens[s+1]); local query i sees key j iff j <= i or
// j < prefix_lens[s] (prefix_lens == nullptr: causal); query head h reads kv head
// h / (n_heads / n_kv_heads).
//   q, out, dout, dq [T, n_heads, head_dim]   k, v, dk, dv [T, n_kv_heads, head_dim]   bf16
//   lse [n_heads, T] fp32: natural-log log-sum-exp of the scaled scores (from the forward)
//   cu_seqlens [n_segments + 1], prefix_lens [n_segments] (or null): int32, device memory
// max_seqlen >= every segment length; n_segments <= 65535 (grid y). head_dim 32, 64, 96 or 128
// (attention_head_dims.h), else cudaErrorInvalidValue. Tensors are 16-byte aligned (16-byte
// copies); the workspace 256-byte aligned (cudaMalloc gives both).
// dq, dk, dv are overwritten. deterministic: no float atomics, results bitwise reproducible: a
// segment of up to segment_block_max_len tokens (0: none; at most kAttentionSegmentBlockMaxLen, or
// kAttentionLongSegmentBlockMaxLen for head_dim <= 64) in one block that also computes its dq,
// longer ones with dq by a separate query-tile kernel; otherwise dq is accumulated with fp32
// atomicAdd in the workspace (segment_block_max_len unused).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/attention_head_dims.h"
#include "kernels/ops.h"
#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// Bytes of device workspace attention_backward needs (D_i = rowsum(dout ∘ out), and the fp32 dq
// accumulator in the non-deterministic mode).
size_t attention_backward_workspace_bytes(const ops::AttentionShape& shape, int64_t n_segments, int64_t max_seqlen,
                                          bool deterministic);

// The longest segment the deterministic mode's one-block path takes by default (its block of 8
// warps holds 128 keys; two blocks per SM at head_dim <= 64).
constexpr int64_t kAttentionSegmentBlockMaxLen = 128;
// The longest it may take at head_dim <= 64: segments of 129 to 256 tokens then go to blocks of 16
// warps holding 256 keys (one per SM), instead of key tiles plus the dq kernel's second pass over
// the scores (14 FLOPs per pair instead of 10).
constexpr int64_t kAttentionLongSegmentBlockMaxLen = 256;

// rows (AttentionQkvRows, attention_head_dims.h): row_stride: dq, dk, dv are written into fused
// rows like q, k, v (dq at the rows' column 0, dk at n_heads·head_dim, dv at
// (n_heads + n_kv_heads)·head_dim), as the trainer's backward GEMM reads them; rope_table: q and k
// are RoPE-rotated by this table, and dq and dk are stored rotated back (RoPE's backward: the
// rotation by −angle, in fp32 before the one rounding to bf16), i.e. as the gradients with
// respect to the unrotated q and k. (q_rotated is the forward's.)

cudaError_t attention_backward(__nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv, const __nv_bfloat16* dout,
                               const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                               const __nv_bfloat16* out, const float* lse, const int32_t* cu_seqlens,
                               const int32_t* prefix_lens, int64_t n_segments, int64_t max_seqlen,
                               const ops::AttentionShape& shape, bool deterministic, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream,
                               int64_t segment_block_max_len = kAttentionSegmentBlockMaxLen,
                               const AttentionQkvRows& rows = {});

}  // namespace reclm::cuda
