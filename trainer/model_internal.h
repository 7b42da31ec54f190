// Pieces shared by model_forward.cc and model_backward.cc; not part of the trainer's API.
#pragma once

#include "kernels/ops.h"
#include "trainer/model.h"

namespace reclm {

void check_batch_fits(const Model& model, const Batch& batch);
const int32_t* intra_positions(const Model& model, const Batch& batch);
ops::AttentionShape attention_shape(const ModelDims& dims, int64_t n_tokens);
// Runs every layer and the final norm, saving what backward needs in model.acts.
void forward_layers(Model& model, const Batch& batch);
// LM head + cross-entropy; with backward, also d_final and the head's weight gradient.
double head_and_loss(Model& model, const Batch& batch, float grad_scale, bool backward);

}  // namespace reclm
