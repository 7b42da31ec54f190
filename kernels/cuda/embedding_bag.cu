// Embedding bag kernels; see embedding_bag.h for the API.
//
// Forward: one warp per bag (grid-stride over bags); each lane owns 1 or 4 columns (float4 when
//   dim % 4 == 0 and the pointers are 16-byte aligned) and sums the bag's table rows for them in
//   position order from 0, then divides by the count for kMean: the CPU reference's exact order.
// Backward: each position j learns its bag (bag_of[j], one thread per bag fills its range), then
//   detail::sorted_scatter_add (sorted_scatter_add.cu) sorts the positions stably by id and lets one warp
//   per (row, column chunk) add the rows' gradients in position order = (bag, position) order.
#include "kernels/cuda/embedding_bag.h"

#include "kernels/cuda/embedding.h"
#include "kernels/cuda/launch_config.h"
#include "kernels/simt/launch.h"

// Unrolling by 4 lets nvcc issue several independent loads before their uses (RECLM_UNROLL, full
// unrolling, in cuda_compat.h); g++ has no such pragma.
#if defined(__CUDACC__)
#define RECLM_EMBEDDING_BAG_UNROLL4 _Pragma("unroll 4")
#else
#define RECLM_EMBEDDING_BAG_UNROLL4
#endif

namespace reclm::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = kThreads / kWarpSize;
constexpr int kBagUnroll = 8;  // table rows in flight per lane

// out [n_bags, vec_dim] in units of VecT (float or float4).
template <typename VecT>
__global__ void embedding_bag_forward_kernel(VecT* out, const VecT* table, const int32_t* ids,
                                             const int32_t* offsets, int64_t n_bags,
                                             int64_t vec_dim, bool mean, int lanes_per_row) {
  // lanes_per_row lanes (a power of two) share a bag: a warp covers 32 / lanes_per_row bags.
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t bags_per_warp = kWarpSize / lanes_per_row;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarpSize * bags_per_warp;
  const int sub_lane = lane & (lanes_per_row - 1);
  for (int64_t b = warp * bags_per_warp + lane / lanes_per_row; b < n_bags; b += stride) {
    const int32_t first = offsets[b];
    const int32_t last = offsets[b + 1];
    const float count = static_cast<float>(last - first);
    for (int64_t c = sub_lane; c < vec_dim; c += lanes_per_row) {
      VecT acc{};
      // kBagUnroll rows in flight, added in position order. Past the bag's end the index is
      // clamped to its last row, so every load is unconditional (no branch splits the batch)
      // and only the additions are predicated.
      for (int32_t j = first; j < last; j += kBagUnroll) {
        VecT row[kBagUnroll];
        RECLM_UNROLL
        for (int u = 0; u < kBagUnroll; ++u) {
          const int32_t jj = j + u < last ? j + u : last - 1;
          row[u] = __ldg(table + static_cast<int64_t>(ids[jj]) * vec_dim + c);
        }
        RECLM_UNROLL
        for (int u = 0; u < kBagUnroll; ++u) {
          if (j + u < last) detail::add_to(acc, row[u]);
        }
      }
      if (mean && last > first) detail::divide_by(acc, count);
      out[b * vec_dim + c] = acc;
    }
  }
}

// bag_of[j] = b for every j in [offsets[b], offsets[b+1]).
__global__ void bag_of_position_kernel(const int32_t* offsets, int64_t n_bags, int32_t* bag_of) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < n_bags;
       b += stride) {
    for (int32_t j = offsets[b]; j < offsets[b + 1]; ++j) bag_of[j] = static_cast<int32_t>(b);
  }
}

size_t bag_of_bytes(int64_t n_ids) {  // rounded up to 16 bytes: the rest stays aligned
  const int64_t n = n_ids > 0 ? n_ids : 0;
  return static_cast<size_t>((n + 3) / 4 * 4) * sizeof(int32_t);
}

}  // namespace

cudaError_t embedding_bag_forward(float* out, const float* table, const int32_t* ids,
                                  const int32_t* offsets, int64_t n_bags, int64_t dim,
                                  ops::EmbeddingBagMode mode, cudaStream_t stream) {
  if (n_bags <= 0 || dim <= 0) return cudaSuccess;
  const bool mean = mode == ops::EmbeddingBagMode::kMean;
  const bool vec4 = detail::can_use_float4(dim, out, table);
  const int64_t vec_dim = vec4 ? dim / 4 : dim;
  const int lanes = detail::lanes_per_row(vec_dim);
  const int64_t warps = (n_bags * lanes + kWarpSize - 1) / kWarpSize;
  const dim3 grid(grid_stride_blocks(warps, kWarpsPerBlock));
  if (vec4) {
    return simt::launch(embedding_bag_forward_kernel<float4>, grid, dim3(kThreads), 0, stream,
                        reinterpret_cast<float4*>(out), reinterpret_cast<const float4*>(table), ids,
                        offsets, n_bags, vec_dim, mean, lanes);
  }
  return simt::launch(embedding_bag_forward_kernel<float>, grid, dim3(kThreads), 0, stream, out,
                      table, ids, offsets, n_bags, vec_dim, mean, lanes);
}

size_t embedding_bag_backward_workspace_bytes(int64_t n_ids, int64_t vocab) {
  return bag_of_bytes(n_ids) + embedding_backward_workspace_bytes(n_ids, vocab);
}

cudaError_t embedding_bag_backward(float* dtable, const float* dout, const int32_t* ids,
                                   const int32_t* offsets, int64_t n_bags, int64_t n_ids,
                                   int64_t vocab, int64_t dim, ops::EmbeddingBagMode mode,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (n_bags <= 0 || n_ids <= 0 || dim <= 0) return cudaSuccess;
  if (workspace == nullptr || workspace_bytes < embedding_bag_backward_workspace_bytes(n_ids, vocab))
    return cudaErrorInvalidValue;
  int32_t* bag_of = static_cast<int32_t*>(workspace);
  const cudaError_t status =
      simt::launch(bag_of_position_kernel, dim3(grid_stride_blocks(n_bags, kThreads)),
                   dim3(kThreads), 0, stream, offsets, n_bags, bag_of);
  if (status != cudaSuccess) return status;
  return detail::sorted_scatter_add(dtable, dout, ids, n_ids, vocab, dim, bag_of, offsets,
                                    mode == ops::EmbeddingBagMode::kMean,
                                    static_cast<char*>(workspace) + bag_of_bytes(n_ids),
                                    workspace_bytes - bag_of_bytes(n_ids), stream);
}

}  // namespace reclm::cuda
