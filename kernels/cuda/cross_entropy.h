// Fused softmax cross-entropy over one class range on a GPU (ops::cross_entropy_* in
// kernels/ops.h, reference kernels/cpu/cross_entropy.cc and cross_entropy_partial.cc): losses and
// dlogits in one kernel, no probability matrix.
//   logits, dlogits [T, n_classes] (device): scores of classes [class_begin, class_begin + n_classes)
//   targets (absolute class ids), weights, losses [T] (device)
// A row whose weight is 0 gets loss 0 and dlogits 0. A row with a non-zero weight whose target
// lies outside the range gets loss NaN (the CPU op throws; validate targets on the host).
#pragma once

#include <cstdint>

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

// losses[t] = w·(lse − logit of the target) (float), dlogits[t] = grad_scale·w·(softmax − onehot);
// dlogits may alias logits. row_loss_workspace: T doubles (the per-row losses in double).
// loss_sum (device, may be nullptr): Σ_t row losses, summed in double in a fixed order.
// row_stride: values from one row of logits/dlogits to the next (0 = n_classes; >= n_classes,
// else cudaErrorInvalidValue): the GPU backend pads odd class counts to a multiple of 8 so the
// GEMMs around the loss get 16-byte aligned rows.
cudaError_t cross_entropy_forward_backward(float* dlogits, float* losses, double* loss_sum,
                                           double* row_loss_workspace, const float* logits,
                                           const int32_t* targets, const float* weights, int64_t T,
                                           int64_t n_classes, int64_t class_begin, float grad_scale,
                                           cudaStream_t stream, int64_t row_stride = 0);

// The GPU trainer's form: the same, with dlogits written as bf16 (rounded to nearest even, as
// convert_f32_to_bf16) at the same row_stride, in a separate buffer; bitwise equal to
// cross_entropy_forward_backward followed by that conversion. Columns [n_classes, row_stride) of
// dlogits are set to zero (the backend's GEMMs run over the padded class count).
cudaError_t cross_entropy_forward_backward_bf16(__nv_bfloat16* dlogits, float* losses, double* loss_sum,
                                                double* row_loss_workspace, const float* logits,
                                                const int32_t* targets, const float* weights, int64_t T,
                                                int64_t n_classes, int64_t class_begin, float grad_scale,
                                                cudaStream_t stream, int64_t row_stride = 0);

// bf16 logits (the GPU trainer's LM head writes them, as PyTorch autocast does): the same with
// the logits widened exactly to fp32 first, so bitwise equal to cross_entropy_forward_backward_bf16
// on those fp32 values; the softmax, the losses and their sum are fp32/double as there. dlogits may
// be the logits' buffer (in place: each value read before it is overwritten). Rows of up to 65,536
// classes whose dlogits are in place (or at the logits' 8-byte phase) are held in registers and
// read once, the next row's loads in flight while one is reduced when rows start 16-byte aligned
// (as the trainer's padded rows do); others are read twice (cross_entropy.cu).
cudaError_t cross_entropy_forward_backward_bf16(__nv_bfloat16* dlogits, float* losses, double* loss_sum,
                                                double* row_loss_workspace, const __nv_bfloat16* logits,
                                                const int32_t* targets, const float* weights, int64_t T,
                                                int64_t n_classes, int64_t class_begin, float grad_scale,
                                                cudaStream_t stream, int64_t row_stride = 0);
// The same, each row in registers but one row per block, without the pipeline (a block waits for
// its row's loads): cudaErrorNotSupported where rows are not held in registers. And always reading
// each row twice. Both bitwise equal: the forms the tests and the benchmark compare against.
cudaError_t cross_entropy_forward_backward_bf16_one_row_per_block(
    __nv_bfloat16* dlogits, float* losses, double* loss_sum, double* row_loss_workspace, const __nv_bfloat16* logits,
    const int32_t* targets, const float* weights, int64_t T, int64_t n_classes, int64_t class_begin, float grad_scale,
    cudaStream_t stream, int64_t row_stride = 0);
cudaError_t cross_entropy_forward_backward_bf16_two_pass(__nv_bfloat16* dlogits, float* losses, double* loss_sum,
                                                         double* row_loss_workspace, const __nv_bfloat16* logits,
                                                         const int32_t* targets, const float* weights, int64_t T,
                                                         int64_t n_classes, int64_t class_begin, float grad_scale,
                                                         cudaStream_t stream, int64_t row_stride = 0);
// Forward only: the same losses and loss_sum, logits untouched (fp32 or bf16 logits).
cudaError_t cross_entropy_forward(float* losses, double* loss_sum, double* row_loss_workspace,
                                  const float* logits, const int32_t* targets, const float* weights,
                                  int64_t T, int64_t n_classes, int64_t class_begin,
                                  cudaStream_t stream, int64_t row_stride = 0);
cudaError_t cross_entropy_forward(float* losses, double* loss_sum, double* row_loss_workspace,
                                  const __nv_bfloat16* logits, const int32_t* targets, const float* weights,
                                  int64_t T, int64_t n_classes, int64_t class_begin, cudaStream_t stream,
                                  int64_t row_stride = 0);

// Vocabulary-parallel pieces, as ops::cross_entropy_partial_stats / _backward_from_stats:
// row_max [T] (−inf for weight-0 rows or n_classes 0), row_sum [T] = Σ exp(x − row_max),
// target_logit [T] (0 when the target is in another part). row_stride as above.
cudaError_t cross_entropy_partial_stats(float* row_max, double* row_sum, double* target_logit,
                                        const float* logits, const int32_t* targets,
                                        const float* weights, int64_t T, int64_t n_classes,
                                        int64_t class_begin, cudaStream_t stream, int64_t row_stride = 0);
// dlogits = grad_scale·w·(exp(x − row_max)/row_sum − onehot in this part); may alias logits.
// row_stride as above; padding columns are not written.
cudaError_t cross_entropy_backward_from_stats(float* dlogits, const float* logits,
                                              const int32_t* targets, const float* weights,
                                              const float* row_max, const double* row_sum,
                                              int64_t T, int64_t n_classes, int64_t class_begin,
                                              float grad_scale, cudaStream_t stream, int64_t row_stride = 0);
// The GPU trainer's form (vocabulary parallelism on the device): dlogits as bf16 in a separate
// buffer, bitwise cross_entropy_backward_from_stats followed by convert_f32_to_bf16, with the
// padding columns [n_classes, row_stride) set to zero (as cross_entropy_forward_backward_bf16).
cudaError_t cross_entropy_backward_from_stats_bf16(__nv_bfloat16* dlogits, const float* logits,
                                                   const int32_t* targets, const float* weights,
                                                   const float* row_max, const double* row_sum, int64_t T,
                                                   int64_t n_classes, int64_t class_begin, float grad_scale,
                                                   cudaStream_t stream, int64_t row_stride = 0);

}  // namespace reclm::cuda
