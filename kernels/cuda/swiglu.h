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

}  // namespace reclm::cuda
