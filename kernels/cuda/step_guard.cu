// The step guard's two kernels: one thread each runs kernels/step_guard.h's host function on
// device memory (the host's additions, in the host's order: the same bits).
#include "kernels/cuda/step_guard.h"

#include "kernels/simt/launch.h"

namespace reclm::cuda {

namespace {

__global__ void step_guard_add_loss_kernel(ops::StepGuard* guard, const double* sums, int64_t n, bool first) {
  if (threadIdx.x == 0 && blockIdx.x == 0) ops::step_guard_add_loss(*guard, sums, n, first);
}

__global__ void step_guard_finish_kernel(ops::StepGuard* guard, const double* parts, const int32_t* ids, int n_ids,
                                         double total_weight, float max_norm) {
  if (threadIdx.x == 0 && blockIdx.x == 0) ops::step_guard_finish(*guard, parts, ids, n_ids, total_weight, max_norm);
}

}  // namespace

cudaError_t step_guard_add_loss(ops::StepGuard* guard, const double* sums, int64_t n, bool first,
                                cudaStream_t stream) {
  if (guard == nullptr || n < 0 || (n > 0 && sums == nullptr)) return cudaErrorInvalidValue;
  return simt::launch(step_guard_add_loss_kernel, dim3(1), dim3(1), 0, stream, guard, sums, n, first);
}

cudaError_t step_guard_finish(ops::StepGuard* guard, const double* parts, const int32_t* ids, int n_ids,
                              double total_weight, float max_norm, cudaStream_t stream) {
  if (guard == nullptr || n_ids < 0 || (n_ids > 0 && (parts == nullptr || ids == nullptr))) {
    return cudaErrorInvalidValue;
  }
  return simt::launch(step_guard_finish_kernel, dim3(1), dim3(1), 0, stream, guard, parts, ids, n_ids, total_weight,
                      max_norm);
}

}  // namespace reclm::cuda
