// Embedding bags: one vector per item built from several feature tokens (DESIGN.md §4).
//   forward:  out[b, :] = Σ_{j in bag b} table[ids[j], :]   (/ count_b for kMean; empty bag = 0)
//   backward: dtable[ids[j], :] += g_b for every j of bag b,  g_b = dout[b, :] (/ count_b)
// Bag b covers positions [offsets[b], offsets[b+1]).
//
// The exact float order is part of the contract (the CUDA kernels equal this bitwise):
//   forward sums a bag's rows in position order starting from 0.0f, then divides by the count;
//   backward adds g_b = dout[b, c] / count_b (a division, not a multiply by the reciprocal) to
//   each row in (bag, position) order.
// Backward threading follows embedding_backward: each thread owns a slice of the columns and
// walks every bag in order, so no two threads touch one dtable element and the result does not
// depend on the thread count.
#include <omp.h>

#include <algorithm>

#include "kernels/ops.h"

namespace reclm::ops {

void embedding_bag_forward(float* out, const float* table, const int32_t* ids,
                           const int32_t* offsets, int64_t n_bags, int64_t dim,
                           EmbeddingBagMode mode) {
  const int64_t n_ids = n_bags > 0 ? offsets[n_bags] : 0;
#pragma omp parallel for schedule(static) if ((n_ids + n_bags) * dim > (1 << 15))
  for (int64_t b = 0; b < n_bags; ++b) {
    float* dst = out + b * dim;
    std::fill(dst, dst + dim, 0.0f);
    for (int64_t j = offsets[b]; j < offsets[b + 1]; ++j) {
      const float* row = table + static_cast<int64_t>(ids[j]) * dim;
#pragma omp simd
      for (int64_t c = 0; c < dim; ++c) dst[c] += row[c];
    }
    const int32_t count = offsets[b + 1] - offsets[b];
    if (mode == EmbeddingBagMode::kMean && count > 0) {
      const float divisor = static_cast<float>(count);
#pragma omp simd
      for (int64_t c = 0; c < dim; ++c) dst[c] /= divisor;
    }
  }
}

void embedding_bag_backward(float* dtable, const float* dout, const int32_t* ids,
                            const int32_t* offsets, int64_t n_bags, int64_t dim,
                            EmbeddingBagMode mode) {
  const int64_t n_ids = n_bags > 0 ? offsets[n_bags] : 0;
  // Column slices are whole 64-byte cache lines (16 floats) so threads never share a line.
  constexpr int64_t kLine = 16;
  const int64_t n_lines = (dim + kLine - 1) / kLine;
#pragma omp parallel if (n_ids * dim > (1 << 15))
  {
    const int64_t n_threads = omp_get_num_threads();
    const int64_t tid = omp_get_thread_num();
    const int64_t c0 = std::min(dim, n_lines * tid / n_threads * kLine);
    const int64_t c1 = std::min(dim, n_lines * (tid + 1) / n_threads * kLine);
    for (int64_t b = 0; b < n_bags && c0 < c1; ++b) {
      const float* grad = dout + b * dim;
      const int32_t count = offsets[b + 1] - offsets[b];
      const bool mean = mode == EmbeddingBagMode::kMean;
      const float divisor = static_cast<float>(count);
      for (int64_t j = offsets[b]; j < offsets[b + 1]; ++j) {
        float* row = dtable + static_cast<int64_t>(ids[j]) * dim;
        if (mean) {
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) row[c] += grad[c] / divisor;
        } else {
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) row[c] += grad[c];
        }
      }
    }
  }
}

}  // namespace reclm::ops
