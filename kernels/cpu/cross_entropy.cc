// Fused softmax cross-entropy over one class range (DESIGN.md §1: full softmax over the item
// tokens), forward and backward without a probability matrix.
//   logits, dlogits [T, n_classes]: scores of classes [class_begin, class_begin + n_classes)
//   targets, weights, losses [T];   with lse = log Σ_c exp(logits[t, c]):
//   losses[t]  = weights[t] · (lse − logits[t, targets[t] − class_begin])
//   dlogits[t] = grad_scale · weights[t] · (softmax(logits[t]) − onehot)
//
// Per row: one read pass computes the max-subtracted sum online, chunk by chunk (each chunk's
// max first, then rescale the running sum if the max grew), so every exp has argument ≤ 0 and
// logits of ±80 or more stay finite; the sum is accumulated in double. A second pass writes
// dlogits = grad_scale · w / Σ · exp(x − max), reading each logit before overwriting it, so
// dlogits may alias logits. The chunk stays in L1 between its max and its exp loop.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm::ops {

namespace {

using cpu::exp_nonpositive;

constexpr int64_t kChunk = 512;

struct RowSoftmax {
  float max;   // max_c x[c]
  double sum;  // Σ_c exp(x[c] − max)
};

RowSoftmax row_softmax_stats(const float* x, int64_t n) {
  RowSoftmax st{-std::numeric_limits<float>::infinity(), 0.0};
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t c1 = std::min(n, c0 + kChunk);
    float chunk_max = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : chunk_max)
    for (int64_t c = c0; c < c1; ++c) chunk_max = x[c] > chunk_max ? x[c] : chunk_max;
    if (chunk_max > st.max) {
      st.sum *= std::exp(static_cast<double>(st.max) - chunk_max);  // exp(−inf) = 0 at start
      st.max = chunk_max;
    }
    const float m = st.max;
    double chunk_sum = 0.0;
#pragma omp simd reduction(+ : chunk_sum)
    for (int64_t c = c0; c < c1; ++c) chunk_sum += exp_nonpositive(x[c] - m);
    st.sum += chunk_sum;
  }
  return st;
}

// Targets are checked up front, serially: an exception must not escape an OpenMP region.
void check_targets(const int32_t* targets, const float* weights, int64_t T, int64_t n_classes,
                   int64_t class_begin) {
  for (int64_t t = 0; t < T; ++t) {
    if (weights[t] == 0.0f) continue;
    const int64_t local = static_cast<int64_t>(targets[t]) - class_begin;
    RECLM_CHECK(local >= 0 && local < n_classes,
                "cross-entropy: token {} has target {} outside the class range [{}, {}) with "
                "weight {}",
                t, targets[t], class_begin, class_begin + n_classes, weights[t]);
  }
}

// dlogits == nullptr: forward only.
double cross_entropy(float* dlogits, float* losses, const float* logits, const int32_t* targets,
                     const float* weights, int64_t T, int64_t n_classes, int64_t class_begin,
                     float grad_scale) {
  check_targets(targets, weights, T, n_classes, class_begin);
  std::vector<double> row_loss(static_cast<size_t>(T));
#pragma omp parallel for schedule(static) if (T * n_classes > (1 << 14))
  for (int64_t t = 0; t < T; ++t) {
    const float* x = logits + t * n_classes;
    float* dx = dlogits != nullptr ? dlogits + t * n_classes : nullptr;
    const float w = weights[t];
    if (w == 0.0f) {
      row_loss[t] = 0.0;
      losses[t] = 0.0f;
      if (dx != nullptr) {
#pragma omp simd
        for (int64_t c = 0; c < n_classes; ++c) dx[c] = 0.0f;
      }
      continue;
    }
    const int64_t target = static_cast<int64_t>(targets[t]) - class_begin;
    const double target_logit = x[target];  // read before an in-place dlogits overwrites it
    const RowSoftmax st = row_softmax_stats(x, n_classes);
    const double lse = static_cast<double>(st.max) + std::log(st.sum);
    row_loss[t] = static_cast<double>(w) * (lse - target_logit);
    losses[t] = static_cast<float>(row_loss[t]);
    if (dx != nullptr) {
      const double scale = static_cast<double>(grad_scale) * w;
      const float k = static_cast<float>(scale / st.sum);
      const float m = st.max;
#pragma omp simd
      for (int64_t c = 0; c < n_classes; ++c) dx[c] = k * exp_nonpositive(x[c] - m);
      dx[target] -= static_cast<float>(scale);
    }
  }
  double total = 0.0;  // token order, so the sum does not depend on the thread count
  for (int64_t t = 0; t < T; ++t) total += row_loss[t];
  return total;
}

}  // namespace

double cross_entropy_forward_backward(float* dlogits, float* losses, const float* logits,
                                      const int32_t* targets, const float* weights, int64_t T,
                                      int64_t n_classes, int64_t class_begin, float grad_scale) {
  return cross_entropy(dlogits, losses, logits, targets, weights, T, n_classes, class_begin,
                       grad_scale);
}

double cross_entropy_forward(float* losses, const float* logits, const int32_t* targets,
                             const float* weights, int64_t T, int64_t n_classes,
                             int64_t class_begin) {
  return cross_entropy(nullptr, losses, logits, targets, weights, T, n_classes, class_begin, 0.0f);
}

}  // namespace reclm::ops
