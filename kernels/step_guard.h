// A training step's loss, gradient norm, clipping coefficient and non-finite check, computed where
// the step runs. The device trainer's queued steps (runtime.queued_steps) keep them on the GPU:
// the AdamW kernel reads the clipping coefficient and skips the update of a non-finite step there,
// so the host can queue the next step before it reads the last one's loss and norm. The host
// trainer computes the same values with the same functions (trainer/optimizer.cc), so the two
// agree to the bit: every step below is one IEEE double operation in a fixed order (sqrt and
// division are correctly rounded on both), and the conversion to float is the last.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__host__)  // CUDA headers (nvcc, or the SIMT emulator's g++ build)
#define RECLM_HOST_DEVICE __host__ __device__
#else
#define RECLM_HOST_DEVICE
#endif

namespace reclm::ops {

struct StepGuard {
  double loss_sum = 0.0;   // Σ weight·loss over the step's micro-batches, in their order
  double grad_norm = 0.0;  // √ of the gradient's Σ x², summed part by part in order
  float clip = 1.0f;       // the gradients' factor in the update (clip_coefficient)
  int32_t finite = 1;      // 0: the loss or the norm is not finite, and the update is skipped
};

// max_norm / (norm + 1e-6) when norm exceeds max_norm (> 0), else 1.
RECLM_HOST_DEVICE inline float clip_coefficient(double norm, float max_norm) {
  if (max_norm <= 0.0f || norm <= max_norm) return 1.0f;
  return static_cast<float>(max_norm / (norm + 1e-6));
}

// The step's mean loss (Σ weight·loss / Σ weight; 0 without weight) and its norm are finite.
RECLM_HOST_DEVICE inline bool step_is_finite(double loss_sum, double total_weight, double norm) {
  const double loss = total_weight > 0.0 ? loss_sum / total_weight : 0.0;
  return std::isfinite(loss) && std::isfinite(norm);
}

// A micro-batch's Σ weight·loss from its n partial sums, added in order onto the step's (first:
// onto zero), as the host adds the micro-batches' losses.
RECLM_HOST_DEVICE inline void step_guard_add_loss(StepGuard& g, const double* sums, int64_t n, bool first) {
  double micro = 0.0;
  for (int64_t i = 0; i < n; ++i) micro += sums[i];
  g.loss_sum = (first ? 0.0 : g.loss_sum) + micro;
}

// The norm from the gradient's parts' Σ x² (parts[ids[0]], parts[ids[1]], ... in that order),
// then the clipping coefficient and the finite check.
RECLM_HOST_DEVICE inline void step_guard_finish(StepGuard& g, const double* parts, const int32_t* ids, int n_ids,
                                                double total_weight, float max_norm) {
  double squares = 0.0;
  for (int i = 0; i < n_ids; ++i) squares += parts[ids[i]];
  g.grad_norm = std::sqrt(squares);
  g.clip = clip_coefficient(g.grad_norm, max_norm);
  g.finite = step_is_finite(g.loss_sum, total_weight, g.grad_norm) ? 1 : 0;
}

}  // namespace reclm::ops
