// AdamW (Loshchilov & Hutter) with the update rule of PyTorch's torch.optim.AdamW
// (amsgrad=False, maximize=False), plus the two reductions the trainer needs around it
// (gradient norm for clipping, rescaling).
//
// For each value, with g = grad · grad_scale and t = hyper.step (1-based):
//   p ← p · (1 − lr · wd)                              decoupled weight decay, applied first
//   m ← β1 · m + (1 − β1) · g
//   v ← β2 · v + (1 − β2) · g²
//   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)
// i.e.  p ← p − lr · (m̂ / (√v̂ + eps) + wd · p_old),  m̂ = m / (1 − β1^t),  √v̂ = √v / √(1 − β2^t),
// with PyTorch's association (eps is added to the bias-corrected √v̂, not to √v). The bias
// corrections are computed once in double, as PyTorch does on the host; the rest is fp32.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ops.h"

namespace reclm::ops {

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                  const AdamWHyper& hyper) {
  const double t = static_cast<double>(hyper.step);
  const float step_size = static_cast<float>(hyper.lr / (1.0 - std::pow(hyper.beta1, t)));
  const float sqrt_bc2 = static_cast<float>(std::sqrt(1.0 - std::pow(hyper.beta2, t)));
  const float decay = 1.0f - hyper.lr * hyper.weight_decay;
  const float beta1 = hyper.beta1;
  const float beta2 = hyper.beta2;
  const float eps = hyper.eps;
  const float grad_scale = hyper.grad_scale;
  // Memory-bound once vectorised; note gcc keeps a scalar sqrtf call in this loop (for errno)
  // unless the target is built with -fno-math-errno.
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i] * grad_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * decay - step_size * mi / (std::sqrt(vi) / sqrt_bc2 + eps);
  }
}

double sum_of_squares(const float* x, int64_t n) {
  // Fixed-size chunks, each summed in double, then the chunk sums added in chunk order: the
  // summation order depends only on n, so the result is bitwise the same for any thread count.
  constexpr int64_t kChunk = 1 << 14;
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> chunk_sum(static_cast<size_t>(n_chunks));
#pragma omp parallel for schedule(static) if (n_chunks > 1)
  for (int64_t k = 0; k < n_chunks; ++k) {
    const int64_t i1 = std::min(n, (k + 1) * kChunk);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = k * kChunk; i < i1; ++i) s += static_cast<double>(x[i]) * x[i];
    chunk_sum[k] = s;
  }
  double total = 0.0;
  for (int64_t k = 0; k < n_chunks; ++k) total += chunk_sum[k];
  return total;
}

void scale_inplace(float* x, float factor, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

}  // namespace reclm::ops
