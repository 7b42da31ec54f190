// Vocabulary parallelism on the CUDA backend (runtime.vocab_parallel with runtime.device "cuda"):
// the embedding lookup and the LM head's cross-entropy of trainer/vocab_parallel.h, the same
// exchanges and arithmetic, over device buffers (DeviceModel::vp). Ids, targets, weights and the
// per-row softmax statistics (a few numbers per row) go through the host communicator; the rows
// of activations (C values each) through the device one (NCCL on GPUs). Every function is
// collective: every rank calls it once per micro-batch (validation included).
#pragma once

#include <cstdint>

#include "trainer/device/device_model.h"

namespace reclm::device {

// out[T, C] (fp32, room for the job's longest micro-batch) ← the table's rows of this rank's
// tokens (host ids). Keeps the gathered ids for vp_embedding_backward.
void vp_embedding_forward(DeviceModel& dm, const int32_t* tokens, int64_t T, float* out);

// The embedding pieces' gradients += the lookup's, given d_out[T, C] (fp32; its rows up to the
// job's longest micro-batch are zeroed here): this rank's item rows over every rank's tokens, the
// replicated rows over its own tokens. After vp_embedding_forward of the same micro-batch.
void vp_embedding_backward(DeviceModel& dm, const int32_t* tokens, int64_t T, float* d_out);

// Softmax cross-entropy of this rank's R loss rows — their bf16 hidden states in dm.head_h, host
// targets and weights, the weights also in dm.loss_weights — over classes [class_begin,
// class_begin + n_classes). Returns Σ weight·loss over these rows. With backward (grad_scale),
// dm.d_h [R, C] ← ∂loss/∂h (bf16) and the head pieces' gradients accumulate.
double vp_head_and_loss(DeviceModel& dm, int64_t R, const int32_t* targets, const float* weights,
                        int64_t class_begin, int64_t n_classes, float grad_scale, bool backward);

}  // namespace reclm::device
