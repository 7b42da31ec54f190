// Inlinable exponentials for the CPU kernels' hot loops. glibc only offers a vectorised expf
// under -ffast-math; these are plain polynomials the compiler vectorises inside `omp simd`
// loops, accurate to ~1e-7 relative (tests compare every kernel to float64).
#pragma once

#include <bit>
#include <cstdint>

namespace reclm::ops::cpu {

// e^x for x <= 0, exactly 0 below −87 (so −inf gives 0), NaN stays NaN. Cephes expf: x = n·ln2 + r
// with |r| <= ln2/2 (ln2 split in two so n·ln2 is exact), a degree-7 polynomial for e^r, and n
// written into the exponent bits; relative error < 1e-7 (~1.4 ulp) on [−87, 0]. Inlinable, so
// loops that call it vectorise; glibc's vector expf would need -ffast-math.
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
  // A select of two constants, not of e_r itself: under -ftrapping-math gcc will not compute e_r
  // speculatively, and a branch would stop the loop from vectorising.
  const float keep = x < -87.0f ? 0.0f : 1.0f;
  return e_r * std::bit_cast<float>(two_n) * keep;
}

// 2^x for x <= ~0, exactly 0 below −126 (so −inf, i.e. masked, gives 0). Cephes exp2f: round to
// the nearest integer n, a degree-6 polynomial for 2^(x−n) on [−½, ½] (relative error ~2e-7),
// and n goes into the exponent bits. Inlinable, so softmax loops vectorise; glibc's vector exp
// would need -ffast-math.
inline float exp2_nonpositive(float x) {
  const float xc = x < -126.0f ? -126.0f : x;
  const float n = (xc + 12582912.0f) - 12582912.0f;  // adding 1.5·2^23 rounds away the fraction
  const float f = xc - n;
  float p = 1.535336188319500e-4f;
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < -126.0f ? 0.0f : p * two_n;
}

}  // namespace reclm::ops::cpu
