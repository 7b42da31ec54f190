// Token embedding lookup and its gradient (DESIGN.md §4).
//   forward:  out[t, :] = table[ids[t], :]          out [n_tokens, dim], table [vocab, dim]
//   backward: dtable[ids[t], :] += dout[t, :]       dtable [vocab, dim], dout [n_tokens, dim]
//
// The backward is a scatter-add: two tokens with the same id hit the same row, so a plain
// parallel loop over tokens would race. Instead each thread owns a slice of the embedding
// *columns* and walks every token in order. A given dtable element is then only ever touched by
// one thread, summed in token order — the result is bitwise identical for any thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "kernels/ops.h"

namespace reclm::ops {

void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n_tokens,
                       int64_t dim) {
#pragma omp parallel for schedule(static) if (n_tokens * dim > (1 << 15))
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::memcpy(out + t * dim, table + static_cast<int64_t>(ids[t]) * dim,
                static_cast<size_t>(dim) * sizeof(float));
  }
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n_tokens,
                        int64_t dim) {
  // Column slices are whole 64-byte cache lines (16 floats) so threads never share a line.
  constexpr int64_t kLine = 16;
  const int64_t n_lines = (dim + kLine - 1) / kLine;
#pragma omp parallel if (n_tokens * dim > (1 << 15))
  {
    const int64_t n_threads = omp_get_num_threads();
    const int64_t tid = omp_get_thread_num();
    const int64_t c0 = std::min(dim, n_lines * tid / n_threads * kLine);
    const int64_t c1 = std::min(dim, n_lines * (tid + 1) / n_threads * kLine);
    for (int64_t t = 0; t < n_tokens && c0 < c1; ++t) {
      float* row = dtable + static_cast<int64_t>(ids[t]) * dim;
      const float* grad = dout + t * dim;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) row[c] += grad[c];
    }
  }
}

}  // namespace reclm::ops
