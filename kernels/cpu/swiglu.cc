// SwiGLU gating of the MLP (DESIGN.md §1), elementwise over n values:
//   out = silu(gate) · up,   silu(g) = g · σ(g),   σ(g) = 1 / (1 + e^(−g))
//   dgate = dout · up · σ(g) · (1 + g · (1 − σ(g))),   dup = dout · silu(g)    (overwrite)
// σ is evaluated from e = e^(−|g|) ∈ (0, 1] as 1/(1 + e) for g >= 0 and e/(1 + e) for g < 0:
// nothing overflows, large |g| saturates cleanly to 0 or 1, and the exp is the inlinable
// polynomial below, so these memory-bound loops vectorise instead of calling scalar expf.
#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"

namespace reclm::ops {

namespace {

using cpu::exp_nonpositive;

inline float sigmoid(float g) {
  const float e = exp_nonpositive(-std::abs(g));
  return (g >= 0.0f ? 1.0f : e) / (1.0f + e);
}

}  // namespace

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 14))
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g * sigmoid(g) * up[i];
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 14))
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float s = sigmoid(g);
    const float d = dout[i];
    dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] = d * g * s;
  }
}

}  // namespace reclm::ops
