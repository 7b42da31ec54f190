// Embedding bags on the GPU (device memory; fp32 table, int32 ids and offsets): one vector per
// item built from several feature tokens. Bag b covers ids[offsets[b] .. offsets[b+1])
// (offsets [n_bags + 1], offsets[0] == 0, non-decreasing, n_ids = offsets[n_bags]).
// Both wrappers equal ops::embedding_bag_forward / ops::embedding_bag_backward bitwise.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"
#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// out[b, :] = Σ_{j in bag b} table[ids[j], :] (kSum) or that sum / count_b (kMean); empty bag: 0.
// out [n_bags, dim], table [vocab, dim]. Sums run in position order from 0.0f.
cudaError_t embedding_bag_forward(float* out, const float* table, const int32_t* ids,
                                  const int32_t* offsets, int64_t n_bags, int64_t dim,
                                  ops::EmbeddingBagMode mode, cudaStream_t stream);

// Scratch bytes embedding_bag_backward needs for n_ids ids.
size_t embedding_bag_backward_workspace_bytes(int64_t n_ids, int64_t vocab);

// dtable[ids[j], :] += g_b for every j of bag b, g_b = dout[b, :] (kSum) or dout[b, :] / count_b
// (kMean); each row accumulates in (bag, position) order, deterministically (the sorted
// scatter-add of embedding_backward, reading the gradient row of each position's bag).
// dout [n_bags, dim]; n_ids must equal offsets[n_bags] (the host sizes the workspace by it).
// Returns cudaErrorInvalidValue when the workspace is too small.
cudaError_t embedding_bag_backward(float* dtable, const float* dout, const int32_t* ids,
                                   const int32_t* offsets, int64_t n_bags, int64_t n_ids,
                                   int64_t vocab, int64_t dim, ops::EmbeddingBagMode mode,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace reclm::cuda
