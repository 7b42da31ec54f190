// RMSNorm (DESIGN.md §4), one row of `dim` values at a time:
//   rstd = 1 / sqrt(mean(x²) + eps),   y = x · rstd · w
//   x, y, dy, dx [n_rows, dim];  weight, dweight [dim];  rstd [n_rows]
// Backward, with g = dy · w and r = rstd:
//   dx     += r · (g − x · r² · mean(g · x))      (accumulates into the residual gradient)
//   dweight += Σ_rows dy · x · r
// Row reductions (mean(x²), mean(g·x)) are accumulated in double: they are the one place
// where fp32 cancellation over a few thousand columns would show.
//
// dweight is a reduction over rows, so it must not race. Each thread sums its own fixed,
// contiguous block of rows into a private double partial; the partials are then added to
// dweight in thread order. Deterministic for a fixed thread count, and one pass over dy and x.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/ops.h"

namespace reclm::ops {

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* weight, int64_t n_rows,
                     int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (n_rows * dim > (1 << 14))
  for (int64_t row = 0; row < n_rows; ++row) {
    const float* xr = x + row * dim;
    float* yr = y + row * dim;
    double sum_sq = 0.0;
#pragma omp simd reduction(+ : sum_sq)
    for (int64_t c = 0; c < dim; ++c) sum_sq += static_cast<double>(xr[c]) * xr[c];
    const float r = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + eps));
    rstd[row] = r;
#pragma omp simd
    for (int64_t c = 0; c < dim; ++c) yr[c] = xr[c] * r * weight[c];
  }
}

void rmsnorm_backward(float* dx, float* dweight, const float* dy, const float* x,
                      const float* weight, const float* rstd, int64_t n_rows, int64_t dim) {
  const bool parallel = n_rows * dim > (1 << 14);
  const int max_threads = parallel ? omp_get_max_threads() : 1;
  // partial[tid, dim]: this thread's Σ dy · x · r over its row block.
  std::vector<double> partial(static_cast<size_t>(max_threads) * static_cast<size_t>(dim), 0.0);
#pragma omp parallel if (parallel)
  {
    const int64_t n_threads = omp_get_num_threads();
    const int64_t tid = omp_get_thread_num();
    double* acc = partial.data() + tid * dim;
    const int64_t row0 = n_rows * tid / n_threads;
    const int64_t row1 = n_rows * (tid + 1) / n_threads;
    for (int64_t row = row0; row < row1; ++row) {
      const float* xr = x + row * dim;
      const float* dyr = dy + row * dim;
      float* dxr = dx + row * dim;
      const float r = rstd[row];
      double dot = 0.0;  // Σ_c dy · w · x
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < dim; ++c) dot += static_cast<double>(dyr[c] * weight[c]) * xr[c];
      const float coef = static_cast<float>(dot / static_cast<double>(dim)) * r * r;
#pragma omp simd
      for (int64_t c = 0; c < dim; ++c) {
        dxr[c] += r * (dyr[c] * weight[c] - xr[c] * coef);
        acc[c] += static_cast<double>(dyr[c] * xr[c] * r);
      }
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t c = 0; c < dim; ++c) {
      double sum = 0.0;
      for (int64_t t = 0; t < n_threads; ++t) sum += partial[t * dim + c];
      dweight[c] += static_cast<float>(sum);
    }
  }
}

}  // namespace reclm::ops
