// Cross-entropy over a class range split into parts (ops.h, vocabulary parallelism): per-part
// row statistics, and dlogits from the combined statistics. With one part holding every class,
// combining is the identity and these give the losses and dlogits of cross_entropy.cc.
#include <cmath>
#include <limits>

#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"

namespace reclm::ops {

void cross_entropy_partial_stats(float* row_max, double* row_sum, double* target_logit,
                                 const float* logits, const int32_t* targets, const float* weights,
                                 int64_t T, int64_t n_classes, int64_t class_begin) {
#pragma omp parallel for schedule(static) if (T * n_classes > (1 << 14))
  for (int64_t t = 0; t < T; ++t) {
    const float* x = logits + t * n_classes;
    float m = -std::numeric_limits<float>::infinity();
    double sum = 0.0, z = 0.0;
    if (weights[t] != 0.0f && n_classes > 0) {
      for (int64_t c = 0; c < n_classes; ++c) m = x[c] > m ? x[c] : m;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < n_classes; ++c) sum += cpu::exp_nonpositive(x[c] - m);
      const int64_t target = static_cast<int64_t>(targets[t]) - class_begin;
      if (target >= 0 && target < n_classes) z = x[target];
    }
    row_max[t] = m;
    row_sum[t] = sum;
    target_logit[t] = z;
  }
}

void cross_entropy_backward_from_stats(float* dlogits, const float* logits, const int32_t* targets,
                                       const float* weights, const float* row_max,
                                       const double* row_sum, int64_t T, int64_t n_classes,
                                       int64_t class_begin, float grad_scale) {
#pragma omp parallel for schedule(static) if (T * n_classes > (1 << 14))
  for (int64_t t = 0; t < T; ++t) {
    const float* x = logits + t * n_classes;
    float* dx = dlogits + t * n_classes;
    const float w = weights[t];
    if (w == 0.0f) {
#pragma omp simd
      for (int64_t c = 0; c < n_classes; ++c) dx[c] = 0.0f;
      continue;
    }
    const double scale = static_cast<double>(grad_scale) * w;
    const float k = static_cast<float>(scale / row_sum[t]);
    const float m = row_max[t];
#pragma omp simd
    for (int64_t c = 0; c < n_classes; ++c) dx[c] = k * cpu::exp_nonpositive(x[c] - m);
    const int64_t target = static_cast<int64_t>(targets[t]) - class_begin;
    if (target >= 0 && target < n_classes) dx[target] -= static_cast<float>(scale);
  }
}

}  // namespace reclm::ops
