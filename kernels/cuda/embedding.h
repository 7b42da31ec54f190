// Token embedding lookup and its gradient on the GPU (device memory; fp32 table, int32 ids).
// Each wrapper equals its CPU reference in kernels/ops.h: forward and the deterministic backward
// bitwise; the atomic backward within fp32 reordering (see embedding_backward_atomic).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// out[t, :] = table[ids[t], :]        out [n_tokens, dim], table [vocab, dim], ids in [0, vocab)
// 16-byte gathers when dim % 4 == 0 and out/table are 16-byte aligned; scalar otherwise.
cudaError_t embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n_tokens,
                              int64_t dim, cudaStream_t stream);

// The same lookup on a bf16 table: a row gather of bf16 values, bit for bit (the GPU trainer's
// LM head gathers its rows' bf16 hidden states with it, and scatters their gradients back by a
// gather through the inverse map). 16-byte gathers when dim % 8 == 0 and out/table are 16-byte
// aligned; 2-byte ones otherwise.
cudaError_t embedding_forward(__nv_bfloat16* out, const __nv_bfloat16* table, const int32_t* ids,
                              int64_t n_tokens, int64_t dim, cudaStream_t stream);

// Scratch bytes embedding_backward needs for n_tokens ids (vocab is accepted so the contract may
// grow with it; today the size depends on n_tokens only). Any 4-byte-aligned device buffer of
// at least this size; it may be reused across calls on one stream.
size_t embedding_backward_workspace_bytes(int64_t n_tokens, int64_t vocab);

// dtable[ids[t], :] += dout[t, :], deterministic and equal to ops::embedding_backward bitwise:
// a stable radix sort of the ids (token order kept within equal ids) groups the tokens of each
// row; then one warp per (row, column chunk) adds that row's dout rows in token order to its
// starting value. No float atomics; bitwise identical across runs. n_tokens < 2^31.
// Returns cudaErrorInvalidValue when the workspace is smaller than
// embedding_backward_workspace_bytes(n_tokens, vocab).
cudaError_t embedding_backward(float* dtable, const float* dout, const int32_t* ids,
                               int64_t n_tokens, int64_t vocab, int64_t dim, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream);

// dst[dst_rows[p], :] += src[src_rows[p], :] for p in [0, n): the same deterministic sum as
// embedding_backward (positions in order within each destination row), with the source rows
// picked by index. dst [dst_count, dim], dst_rows in [0, dst_count). A lookup into a zeroed
// destination, each row hit once, is exact: a row copy by index pairs (vocabulary parallelism's
// sharded lookups). workspace: embedding_backward_workspace_bytes(n, dst_count) bytes.
cudaError_t scatter_add_rows(float* dst, const float* src, const int32_t* dst_rows, const int32_t* src_rows,
                             int64_t n, int64_t dst_count, int64_t dim, void* workspace, size_t workspace_bytes,
                             cudaStream_t stream);

// The same sum with one float atomicAdd per element: faster, no workspace, but the order of the
// additions into a repeated row varies from run to run (differences of a few fp32 ulps of the
// row's running sum; rows hit by a single token are exact).
cudaError_t embedding_backward_atomic(float* dtable, const float* dout, const int32_t* ids,
                                      int64_t n_tokens, int64_t dim, cudaStream_t stream);

namespace detail {

// The deterministic scatter-add behind embedding_backward and embedding_bag_backward.
// Position p in [0, n_ids) adds its gradient row to dtable[ids[p], :], rows in position order:
//   bag_of == nullptr: gradient row p of dout (embedding_backward);
//   otherwise:         gradient row bag_of[p] of dout, divided elementwise by the bag's size
//                      offsets[b + 1] - offsets[b] when mean (embedding_bag_backward).
// workspace: at least embedding_backward_workspace_bytes(n_ids, vocab) bytes.
cudaError_t sorted_scatter_add(float* dtable, const float* dout, const int32_t* ids, int64_t n_ids,
                               int64_t vocab, int64_t dim, const int32_t* bag_of,
                               const int32_t* offsets, bool mean, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream);

// Elementwise helpers for the scalar (float) and 16-byte (float4) kernel paths.
__host__ __device__ __forceinline__ void add_to(float& acc, float x) { acc += x; }
__host__ __device__ __forceinline__ void add_to(float4& acc, const float4& x) {
  acc.x += x.x;
  acc.y += x.y;
  acc.z += x.z;
  acc.w += x.w;
}
__host__ __device__ __forceinline__ void divide_by(float& v, float d) { v /= d; }
__host__ __device__ __forceinline__ void divide_by(float4& v, float d) {
  v.x /= d;
  v.y /= d;
  v.z /= d;
  v.w /= d;
}
// Lanes that share one row in the warp-per-row kernels: the smallest power of two >= the row's
// vector count, at most 32, so short rows (dim 64 as float4: 16 lanes) do not idle half a warp.
inline int lanes_per_row(int64_t vec_dim) {
  int lanes = 32;
  while (lanes > 1 && lanes / 2 >= vec_dim) lanes /= 2;
  return lanes;
}

// 16-byte path allowed: dim a multiple of 4 and every pointer 16-byte aligned.
inline bool can_use_float4(int64_t dim, const void* a, const void* b) {
  return dim % 4 == 0 && reinterpret_cast<uintptr_t>(a) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(b) % 16 == 0;
}

}  // namespace detail
}  // namespace reclm::cuda
