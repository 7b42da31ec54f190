// AdamW over the flat fp32 parameter buffer (ops::adamw_update on a GPU), optionally writing a
// bf16 copy of the updated weights in the same pass (ops::adamw_update_bf16).
#pragma once

#include <cstdint>

#include "kernels/ops.h"
#include "kernels/simt/cuda_compat.h"
#include "kernels/step_guard.h"

namespace reclm::cuda {

// In place on n values of device memory: params, m, v (fp32) updated from grads · grad_scale
// with ops::adamw_update's arithmetic (same formula and association; results agree to a few
// ulp, the difference being where each compiler fuses multiply-adds). Any alignment; 16-byte
// aligned buffers take the float4 path.
cudaError_t adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                         const ops::AdamWHyper& hyper, cudaStream_t stream);

// adamw_update, plus params_bf16[i] (bf16 bits) = the updated params[i] rounded as
// ops::adamw_update_bf16 does: to nearest even, or stochastically with the random bits of
// ops::stochastic_rounding_bits(seed, hyper.step, index_base + i) — bitwise equal to the CPU
// rounding of the same fp32 value.
// guard (device memory, or null): the step's guard (kernels/step_guard.h), read when the kernel
// runs: its clip replaces hyper.grad_scale, and when it is not finite nothing is written.
cudaError_t adamw_update_bf16(float* params, const float* grads, float* m, float* v, int64_t n,
                              const ops::AdamWHyper& hyper, uint16_t* params_bf16,
                              ops::Bf16Rounding rounding, uint64_t seed, int64_t index_base,
                              cudaStream_t stream, const ops::StepGuard* guard = nullptr);

}  // namespace reclm::cuda
