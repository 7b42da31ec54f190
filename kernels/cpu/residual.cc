// Residual add: out[n] = a[n] + b[n]. out may alias a or b (elementwise, read before write).
#include "kernels/ops.h"

namespace reclm::ops {

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace reclm::ops
