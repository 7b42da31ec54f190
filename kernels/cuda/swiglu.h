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

// The GPU trainer's form, bf16 throughout: gate_up [rows, 2·cols] is one GEMM's output, each row
// its gate values then its up values (the gate and up projections' weights are adjacent, so one
// GEMM computes both); out [rows, cols] = silu(gate) · up. Backward reads dout [rows, cols] and
// writes dgate_up [rows, 2·cols] in the same paired layout (the input of the one backward GEMM).
// Bitwise equal to swiglu_forward / swiglu_backward on the exactly widened values, each output
// rounded to nearest even as convert_f32_to_bf16 rounds it. dgate_up may alias gate_up.
cudaError_t swiglu_forward_bf16(__nv_bfloat16* out, const __nv_bfloat16* gate_up, int64_t rows, int64_t cols,
                                cudaStream_t stream);
cudaError_t swiglu_backward_bf16(__nv_bfloat16* dgate_up, const __nv_bfloat16* dout, const __nv_bfloat16* gate_up,
                                 int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace reclm::cuda
