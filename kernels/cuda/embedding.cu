// Embedding forward (gather) and backward (scatter-add) kernels; see embedding.h for the API.
//
// Forward: one warp per token row (grid-stride over tokens; a short row takes a power-of-two
//   share of a warp, so one warp copies several rows), lanes stride over the columns with
//   16-byte loads/stores (float4) when the row and pointers allow it, scalar otherwise;
//   kCopyBatch loads are in flight per lane before their stores.
// Atomic backward: the same row layout, one atomicAdd per element (order varies between runs).
// Deterministic backward: kernels/cuda/sorted_scatter_add.cu.
#include "kernels/cuda/embedding.h"

#include "kernels/cuda/embedding_warps.h"
#include "kernels/cuda/launch_config.h"
#include "kernels/simt/launch.h"

namespace reclm::cuda {
namespace {

using namespace embedding_detail;

constexpr int kCopyBatch = 4;  // row chunks in flight per lane in the forward / atomic kernels

// Rows of a warp-per-row kernel: lanes_per_row lanes (a power of two) share a row, so a warp
// covers 32 / lanes_per_row rows at once. No warp collectives: lanes may diverge freely.
struct WarpRows {
  int64_t first;   // this lane's first row
  int64_t stride;  // rows covered by the whole grid per step
  int sub_lane;    // this lane's index within its row group
};
__device__ __forceinline__ WarpRows warp_rows(int lanes_per_row) {
  const int lane = lane_id();
  const int64_t rows_per_warp = kWarpSize / lanes_per_row;
  return {global_warp() * rows_per_warp + lane / lanes_per_row, grid_warps() * rows_per_warp,
          lane & (lanes_per_row - 1)};
}


// out [n_tokens, vec_dim] = table[ids[t], :] in units of VecT (float or float4).
template <typename VecT>
__global__ void embedding_forward_kernel(VecT* out, const VecT* table, const int32_t* ids,
                                         int64_t n_tokens, int64_t vec_dim, int lanes_per_row) {
  const WarpRows rows = warp_rows(lanes_per_row);
  for (int64_t t = rows.first; t < n_tokens; t += rows.stride) {
    const VecT* src = table + static_cast<int64_t>(ids[t]) * vec_dim;
    VecT* dst = out + t * vec_dim;
    int64_t c = rows.sub_lane;
    for (; c + (kCopyBatch - 1) * lanes_per_row < vec_dim; c += kCopyBatch * lanes_per_row) {
      VecT v[kCopyBatch];  // all loads issued before the first store
      RECLM_UNROLL
      for (int u = 0; u < kCopyBatch; ++u) v[u] = __ldg(src + c + u * lanes_per_row);
      RECLM_UNROLL
      for (int u = 0; u < kCopyBatch; ++u) dst[c + u * lanes_per_row] = v[u];
    }
    for (; c < vec_dim; c += lanes_per_row) dst[c] = __ldg(src + c);
  }
}

// dtable[ids[t], c] += dout[t, c] with float atomics; the result is unused, so this is RED.
__global__ void embedding_backward_atomic_kernel(float* dtable, const float* dout,
                                                 const int32_t* ids, int64_t n_tokens,
                                                 int64_t dim, int lanes_per_row) {
  const WarpRows rows = warp_rows(lanes_per_row);
  for (int64_t t = rows.first; t < n_tokens; t += rows.stride) {
    float* row = dtable + static_cast<int64_t>(ids[t]) * dim;
    const float* grad = dout + t * dim;
    int64_t c = rows.sub_lane;
    for (; c + (kCopyBatch - 1) * lanes_per_row < dim; c += kCopyBatch * lanes_per_row) {
      float g[kCopyBatch];  // all loads issued before the first atomic
      RECLM_UNROLL
      for (int u = 0; u < kCopyBatch; ++u) g[u] = grad[c + u * lanes_per_row];
      RECLM_UNROLL
      for (int u = 0; u < kCopyBatch; ++u) atomicAdd(row + c + u * lanes_per_row, g[u]);
    }
    for (; c < dim; c += lanes_per_row) atomicAdd(row + c, grad[c]);
  }
}

// The forward's launch for rows of `dim` elements of Elem: in 16-byte units (Vec) when whole rows
// are and both pointers are 16-byte aligned, else element by element (Elem).
template <typename Vec, typename Elem>
cudaError_t launch_forward(void* out, const void* table, const int32_t* ids, int64_t n_tokens, int64_t dim,
                           cudaStream_t stream) {
  if (n_tokens <= 0 || dim <= 0) return cudaSuccess;
  constexpr int64_t kPerVec = sizeof(Vec) / sizeof(Elem);
  const bool vec = dim % kPerVec == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(table) % 16 == 0;
  const int64_t vec_dim = vec ? dim / kPerVec : dim;
  const int lanes = detail::lanes_per_row(vec_dim);
  const int64_t warps = (n_tokens * lanes + kWarpSize - 1) / kWarpSize;
  const dim3 grid(grid_stride_blocks(warps, kWarpsPerBlock));
  if (vec) {
    return simt::launch(embedding_forward_kernel<Vec>, grid, dim3(kThreads), 0, stream, static_cast<Vec*>(out),
                        static_cast<const Vec*>(table), ids, n_tokens, vec_dim, lanes);
  }
  return simt::launch(embedding_forward_kernel<Elem>, grid, dim3(kThreads), 0, stream, static_cast<Elem*>(out),
                      static_cast<const Elem*>(table), ids, n_tokens, vec_dim, lanes);
}

}  // namespace

cudaError_t embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n_tokens,
                              int64_t dim, cudaStream_t stream) {
  return launch_forward<float4, float>(out, table, ids, n_tokens, dim, stream);
}

cudaError_t embedding_forward(__nv_bfloat16* out, const __nv_bfloat16* table, const int32_t* ids,
                              int64_t n_tokens, int64_t dim, cudaStream_t stream) {
  // bf16 values are copied, never computed on: moved as their 16-bit patterns
  return launch_forward<uint4, unsigned short>(out, table, ids, n_tokens, dim, stream);
}

cudaError_t embedding_backward(float* dtable, const float* dout, const int32_t* ids,
                               int64_t n_tokens, int64_t vocab, int64_t dim, void* workspace,
                               size_t workspace_bytes, cudaStream_t stream) {
  return detail::sorted_scatter_add(dtable, dout, ids, n_tokens, vocab, dim, nullptr, nullptr,
                                    false, workspace, workspace_bytes, stream);
}

cudaError_t scatter_add_rows(float* dst, const float* src, const int32_t* dst_rows, const int32_t* src_rows,
                             int64_t n, int64_t dst_count, int64_t dim, void* workspace, size_t workspace_bytes,
                             cudaStream_t stream) {
  return detail::sorted_scatter_add(dst, src, dst_rows, n, dst_count, dim, src_rows, nullptr, false, workspace,
                                    workspace_bytes, stream);
}

cudaError_t embedding_backward_atomic(float* dtable, const float* dout, const int32_t* ids,
                                      int64_t n_tokens, int64_t dim, cudaStream_t stream) {
  if (n_tokens <= 0 || dim <= 0) return cudaSuccess;
  const int lanes = detail::lanes_per_row(dim);
  const int64_t warps = (n_tokens * lanes + kWarpSize - 1) / kWarpSize;
  return simt::launch(embedding_backward_atomic_kernel,
                      dim3(grid_stride_blocks(warps, kWarpsPerBlock)), dim3(kThreads), 0, stream,
                      dtable, dout, ids, n_tokens, dim, lanes);
}

}  // namespace reclm::cuda
