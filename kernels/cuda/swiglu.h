// SwiGLU gating on the GPU, as ops::swiglu_forward / ops::swiglu_backward (kernels/ops.h).
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// out = silu(gate) · up over n values; silu(g) = g · σ(g). out may alias gate or up.
cudaError_t swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t stream);
// dgate = dout · up · σ(g) · (1 + g · (1 − σ(g))),  dup = dout · silu(g)   (both overwritten;
// either may alias dout, gate or up).
cudaError_t swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                            int64_t n, cudaStream_t stream);

// The GPU trainer's forms, with the bf16 sides fused in (one pass instead of three):
// swiglu_forward_bf16: out (bf16) = swiglu_forward rounded to nearest even, as
// convert_f32_to_bf16 rounds it. swiglu_backward_bf16: dout is bf16 (widened exactly), dgate
// and dup are written as bf16 (rounded likewise). Bitwise equal to those compositions.
cudaError_t swiglu_forward_bf16(__nv_bfloat16* out, const float* gate, const float* up, int64_t n,
                                cudaStream_t stream);
cudaError_t swiglu_backward_bf16(__nv_bfloat16* dgate, __nv_bfloat16* dup, const __nv_bfloat16* dout,
                                 const float* gate, const float* up, int64_t n, cudaStream_t stream);
// The same with gate and up in bf16 too (the GPU trainer's: its gate/up GEMMs write bf16):
// bitwise equal to the fp32 kernels on the exactly widened inputs, rounded likewise.
cudaError_t swiglu_forward_bf16(__nv_bfloat16* out, const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n,
                                cudaStream_t stream);
cudaError_t swiglu_backward_bf16(__nv_bfloat16* dgate, __nv_bfloat16* dup, const __nv_bfloat16* dout,
                                 const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n, cudaStream_t stream);

}  // namespace reclm::cuda
