// Inverted dropout with a regenerated mask (see ops.h). Element i's draw is word i % 4 of
// philox(counter = {i / 4, site, stream, kDropout << 16}, key = seed), so forward and backward
// (and a GPU kernel) agree without storing the mask, and any thread count gives the same result.
#include "kernels/ops.h"
#include "runtime/errors.h"
#include "runtime/rng.h"

namespace reclm::ops {

void dropout(float* out, const float* in, int64_t n, float rate, uint64_t seed, uint64_t stream,
             uint32_t site) {
  RECLM_CHECK(rate >= 0.0f && rate < 1.0f, "dropout rate {} outside [0, 1)", rate);
  const PhiloxKey key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const uint32_t stream32 = static_cast<uint32_t>(stream ^ (stream >> 32));
  const uint32_t purpose = static_cast<uint32_t>(RngPurpose::kDropout) << 16;
  const float scale = 1.0f / (1.0f - rate);
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t b = 0; b < blocks; ++b) {
    const PhiloxCounter r = philox4x32_10({static_cast<uint32_t>(b), site, stream32, purpose}, key);
    for (int64_t j = 0; j < 4 && 4 * b + j < n; ++j) {
      const float u = static_cast<float>(r[j] >> 8) * (1.0f / 16777216.0f);
      const int64_t i = 4 * b + j;
      out[i] = u >= rate ? in[i] * scale : 0.0f;
    }
  }
}

}  // namespace reclm::ops
