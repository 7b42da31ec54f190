// Pieces shared by model_forward.cc and model_backward.cc; not part of the trainer's API.
#pragma once

#include "kernels/ops.h"
#include "trainer/model.h"

namespace reclm {

void check_batch_fits(const Model& model, const Batch& batch);
// What every layer's forward and backward read from a batch.
struct BatchGeometry {
  int64_t T;                   // tokens
  const int32_t* prefix_lens;  // per segment; null = plain causal
  const int32_t* pos_inter;    // [T]
  const int32_t* pos_intra;    // [T]; null for 1D positions
  ops::AttentionShape attention;
};
BatchGeometry batch_geometry(const Model& model, const Batch& batch);
// Dropout site ids: the embedding (layer −1) and each layer's attention (0) and MLP (1) branch.
inline uint32_t dropout_site(int64_t layer, int branch) {
  return static_cast<uint32_t>(2 * (layer + 1) + branch);
}
// One projection's LoRA adapter in one layer: A [r, in], B [out, r] (parameters or gradients,
// per `tensors`) and the saved u = scale·(x·Aᵀ) [T, r]. a == nullptr: no adapter there.
struct LoraSite {
  float* a = nullptr;
  float* b = nullptr;
  float* u = nullptr;
  int64_t rank = 0;
  float scale = 0.0f;
  int64_t in = 0, out = 0;
};
LoraSite lora_site(const Model& model, const ModelTensors& tensors, int64_t layer, LoraTarget target);
// y[T, out] += scale·(x·Aᵀ)·Bᵀ, saving u. No-op without an adapter.
void lora_forward(float* y, const float* x, const LoraSite& site, int64_t T);
// Runs every layer and the final norm, saving what backward needs in model.acts.
void forward_layers(Model& model, const Batch& batch);
// LM head + cross-entropy; with backward, also d_final and the head's weight gradient.
double head_and_loss(Model& model, const Batch& batch, float grad_scale, bool backward);

}  // namespace reclm
