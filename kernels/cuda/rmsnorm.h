// RMSNorm on the GPU, optionally fused with the residual add that feeds it (DESIGN.md §4).
// References: ops::residual_forward then ops::rmsnorm_forward; ops::rmsnorm_backward.
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// The longest row the kernels take: a row is held in registers between its two passes.
inline constexpr int64_t kRmsnormMaxDim = 8192;

// x = a + b (b != nullptr: residual_out = x, the new residual stream; it may alias a or b) or
// x = a (b == nullptr: residual_out is ignored and may be nullptr). Then
//   y = x · rstd · weight,   rstd[row] = 1 / sqrt(mean(x[row]²) + eps)   (saved for backward)
// y, a, b, residual_out [n_rows, dim]; weight [dim]; rstd [n_rows]. a and b are read once.
// cudaErrorInvalidValue for dim outside [1, kRmsnormMaxDim] or b without residual_out.
cudaError_t rmsnorm_forward(float* y, float* rstd, float* residual_out, const float* a, const float* b,
                            const float* weight, int64_t n_rows, int64_t dim, float eps, cudaStream_t stream);

// Floats of the workspace rmsnorm_backward needs for these sizes (per-row-group dweight partials).
int64_t rmsnorm_backward_workspace_floats(int64_t n_rows, int64_t dim);

// dx += ∂L/∂x (accumulates: dx is the residual stream's gradient), dweight += ∂L/∂weight.
// dx, dy, x [n_rows, dim]; weight, dweight [dim]; rstd [n_rows] from the forward;
// workspace: rmsnorm_backward_workspace_floats(n_rows, dim) floats, overwritten.
// dweight is deterministic on a given device: fixed row partitions summed in a fixed order,
// no atomics. dx_bf16 (optional, [n_rows, dim]): also gets the updated dx rounded to bf16, as
// convert_f32_to_bf16 would round it afterwards (the GPU trainer's next GEMM input).
// accumulate_dweight false: dweight = ∂L/∂weight, its old values not read (the bits of += onto
// zeros; the GPU trainer's first micro-batch after AdamW, linear_backward_bf16's dweight =).
cudaError_t rmsnorm_backward(float* dx, float* dweight, float* workspace, const float* dy, const float* x,
                             const float* weight, const float* rstd, int64_t n_rows, int64_t dim,
                             cudaStream_t stream, __nv_bfloat16* dx_bf16 = nullptr, bool accumulate_dweight = true);

// The GPU trainer's forms, the bf16 side fused in: rmsnorm_forward_bf16 writes y as bf16 (rounded
// to nearest even, as convert_f32_to_bf16); rmsnorm_backward_bf16 reads dy as bf16 (widened
// exactly). Bitwise equal to the fp32 functions composed with those conversions; the same
// workspace. y / dy: 8-byte alignment for the vector path.
cudaError_t rmsnorm_forward_bf16(__nv_bfloat16* y, float* rstd, float* residual_out, const float* a,
                                 const float* b, const float* weight, int64_t n_rows, int64_t dim, float eps,
                                 cudaStream_t stream);
cudaError_t rmsnorm_backward_bf16(float* dx, float* dweight, float* workspace, const __nv_bfloat16* dy,
                                  const float* x, const float* weight, const float* rstd, int64_t n_rows,
                                  int64_t dim, cudaStream_t stream, __nv_bfloat16* dx_bf16 = nullptr,
                                  bool accumulate_dweight = true);

// A bf16 residual stream's forms (runtime.bf16_residual): x is bf16 (widened exactly), with no
// fused add, and backward's dx is the stream's bf16 gradient: dx_out = bf16(dx_in + ∂L/∂x), the
// sum in fp32 and rounded once (dx_in null: zeros; dx_in may alias dx_out). Each is bitwise the
// fp32 function on the widened inputs composed with convert_f32_to_bf16 of its bf16 output.
// rmsnorm_forward's form writes fp32 y (forward_hidden's hidden states). x, y, dy, dx: 8-byte
// alignment for the vector path.
cudaError_t rmsnorm_forward_bf16(__nv_bfloat16* y, float* rstd, const __nv_bfloat16* x, const float* weight,
                                 int64_t n_rows, int64_t dim, float eps, cudaStream_t stream);
cudaError_t rmsnorm_forward(float* y, float* rstd, const __nv_bfloat16* x, const float* weight, int64_t n_rows,
                            int64_t dim, float eps, cudaStream_t stream);
cudaError_t rmsnorm_backward_bf16(__nv_bfloat16* dx_out, const __nv_bfloat16* dx_in, float* dweight,
                                  float* workspace, const __nv_bfloat16* dy, const __nv_bfloat16* x,
                                  const float* weight, const float* rstd, int64_t n_rows, int64_t dim,
                                  cudaStream_t stream, bool accumulate_dweight = true);

}  // namespace reclm::cuda
