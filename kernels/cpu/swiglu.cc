// SwiGLU gating of the MLP (DESIGN.md §1), elementwise over n values:
//   out = silu(gate) · up,   silu(g) = g · σ(g),   σ(g) = 1 / (1 + e^(−g))
//   dgate = dout · up · σ(g) · (1 + g · (1 − σ(g))),   dup = dout · silu(g)    (overwrite)
// σ is evaluated from e = e^(−|g|) ∈ (0, 1] as 1/(1 + e) for g >= 0 and e/(1 + e) for g < 0:
// nothing overflows, large |g| saturates cleanly to 0 or 1, and the exp is the inlinable
// polynomial below, so these memory-bound loops vectorise instead of calling scalar expf.
#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/ops.h"

namespace reclm::ops {

namespace {

// e^x for x <= 0, exactly 0 below −87, NaN stays NaN. Cephes expf: x = n·ln2 + r with
// |r| <= ln2/2 (ln2 split in two so n·ln2 is exact), a degree-7 polynomial for e^r (relative
// error ~1e-7), n written into the exponent bits. (cross_entropy.cc carries the same function.)
inline float exp_nonpositive(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  const float z = xc * 1.44269504088896341f + 12582912.0f;  // + 1.5·2^23 rounds to an integer
  const float n = z - 12582912.0f;
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e_r = p * r * r + r + 1.0f;
  // z's low mantissa bits hold n (biased by 0x4B400000); unsigned arithmetic keeps this defined.
  const uint32_t two_n = (std::bit_cast<uint32_t>(z) - 0x4B400000u + 127u) << 23;
  return x < -87.0f ? 0.0f : e_r * std::bit_cast<float>(two_n);
}

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
