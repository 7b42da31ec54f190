// The step guard (kernels/step_guard.h) on the device: a micro-batch's loss added to the step's,
// and the norm, clipping coefficient and finite check after the last micro-batch. One thread
// each: a few dozen doubles, in the host's order, so the values are the host trainer's bits.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"
#include "kernels/step_guard.h"

namespace reclm::cuda {

// guard->loss_sum = (first ? 0 : guard->loss_sum) + Σ sums[0, n) (ops::step_guard_add_loss).
cudaError_t step_guard_add_loss(ops::StepGuard* guard, const double* sums, int64_t n, bool first,
                                cudaStream_t stream);

// ops::step_guard_finish on the device: ids[0, n_ids) (device memory) index parts.
cudaError_t step_guard_finish(ops::StepGuard* guard, const double* parts, const int32_t* ids, int n_ids,
                              double total_weight, float max_norm, cudaStream_t stream);

}  // namespace reclm::cuda
