// AdamW with a bf16 copy of the updated weights (ops.h): the CPU reference of the CUDA kernel's
// bf16 output. Round to nearest even is runtime/dtype.h's f32_to_bf16. Stochastic rounding adds
// 16 random bits below the bf16 mantissa and truncates, so x rounds up with probability equal
// to its distance from the lower neighbour (in units of the bf16 spacing): unbiased. The bits
// come from a counter-based hash of (seed, step, index), not from a generator's state, so a GPU
// thread computes the bits of its element directly and both sides agree exactly.
#include <bit>
#include <cmath>

#include "kernels/ops.h"
#include "runtime/dtype.h"

namespace reclm::ops {

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;  // 2^64 / φ: the splitmix64 increment

uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

uint32_t stochastic_rounding_bits(uint64_t seed, int64_t step, int64_t index) {
  const uint64_t key = splitmix64_mix(seed + static_cast<uint64_t>(step) * kGolden);
  // The top 16 bits of the mix are its best mixed.
  return static_cast<uint32_t>(splitmix64_mix(key + static_cast<uint64_t>(index) * kGolden) >> 48);
}

uint16_t f32_to_bf16_stochastic(float x, uint32_t random16) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  return static_cast<uint16_t>((bits + (random16 & 0xFFFFu)) >> 16);
}

void adamw_update_bf16(float* params, const float* grads, float* m, float* v, int64_t n,
                       const AdamWHyper& hyper, uint16_t* params_bf16, Bf16Rounding rounding,
                       uint64_t seed, int64_t index_base) {
  adamw_update(params, grads, m, v, n, hyper);
  if (rounding == Bf16Rounding::kNearestEven) {
    for (int64_t i = 0; i < n; ++i) params_bf16[i] = f32_to_bf16(params[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      params_bf16[i] = f32_to_bf16_stochastic(
          params[i], stochastic_rounding_bits(seed, hyper.step, index_base + i));
    }
  }
}

}  // namespace reclm::ops
