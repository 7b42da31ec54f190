// Inverted dropout on the GPU, bitwise as ops::dropout (kernels/cpu/dropout.cc): element i is kept
// iff u_i >= rate, where u_i is word i % 4 of philox4x32_10(counter = {i / 4, site, rng_stream
// folded to 32 bits, kDropout << 16}, key = seed) with its top 24 bits as a float in [0, 1); kept
// values are scaled by 1 / (1 − rate). The mask is regenerated, never stored, so the forward, the
// backward (the same call on the gradient) and the CPU all agree.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// The key of one dropout site: which draws, at what rate.
struct DropoutKey {
  float rate = 0.0f;        // in [0, 1), else cudaErrorInvalidValue
  uint64_t seed = 0;
  uint64_t rng_stream = 0;  // e.g. the global micro-batch index (ops::dropout's `stream`)
  uint32_t site = 0;        // trainer/model_internal.h dropout_site
};

// out[n] = dropout(in); out may alias in.
cudaError_t dropout(float* out, const float* in, int64_t n, const DropoutKey& key, cudaStream_t stream);
// out[n] = skip + dropout(branch): a residual branch added to the stream (ops::dropout then
// ops::residual_forward, the product rounded before the add); out may alias skip or branch.
cudaError_t dropout_add(float* out, const float* skip, const float* branch, int64_t n, const DropoutKey& key,
                        cudaStream_t stream);
// out[n] (bf16) = dropout(in) rounded to nearest even as convert_f32_to_bf16: the GPU trainer's
// gradient at a branch output, the next GEMM's input.
cudaError_t dropout_bf16(__nv_bfloat16* out, const float* in, int64_t n, const DropoutKey& key,
                         cudaStream_t stream);
// A bf16 residual stream's forms (runtime.bf16_residual), each value rounded once to nearest even
// as convert_f32_to_bf16 would round the fp32 form's result on the widened inputs: the stream's
// gradient through a mask (out may alias in), and a branch added to the stream (out may alias skip).
cudaError_t dropout_bf16(__nv_bfloat16* out, const __nv_bfloat16* in, int64_t n, const DropoutKey& key,
                         cudaStream_t stream);
cudaError_t dropout_add(__nv_bfloat16* out, const __nv_bfloat16* skip, const float* branch, int64_t n,
                        const DropoutKey& key, cudaStream_t stream);

}  // namespace reclm::cuda
