// Model FLOPs of a training step, counted from the model's shapes and the batch itself (packed
// segments, masks, the softmax's class range): the numerator of MFU (model FLOPs utilisation) and
// of the "model TFLOP/s" the trainer logs. Only matrix products count (elementwise work is not
// model FLOPs), each multiply-add as 2, and backward as twice forward (the usual convention,
// PaLM appendix B), so a training step is 3 × forward:
//   projections   2 · (q + k + v + o + gate + up + down weights) per token per layer
//                 (+ LoRA adapters: 2 · r · (in + out) per adapted projection)
//   attention     2 · 2 · n_heads · head_dim per visible (query, key) pair per layer
//                 (Q·Kᵀ and P·V; visible pairs follow the batch's causal/prefix masks exactly)
//   LM head       2 · d_model · classes per row with a loss weight (the batch's class range)
// Frozen weights (LoRA) still cost their forward and input-gradient products, and their skipped
// weight gradient is not subtracted: the count is the model's, not the implementation's.
#pragma once

#include <cstdint>
#include <string>

#include "data/batch.h"
#include "trainer/param_layout.h"

namespace reclm {

struct StepFlops {
  double projections = 0.0;
  double attention = 0.0;
  double head = 0.0;
  double total() const { return projections + attention + head; }
};

// Visible (query, key) pairs of one packed batch: for a segment of length L with prefix p,
// query i sees max(i + 1, min(p, L)) keys (ops.h's mask; no prefix = causal).
int64_t visible_attention_pairs(const Batch& batch);

// Forward-and-backward FLOPs of one micro-batch.
StepFlops training_flops(const ModelDims& dims, const Batch& batch);

// Dense bf16 tensor-core peak in TFLOP/s of a GPU named like cudaGetDeviceProperties().name
// ("NVIDIA H100 80GB HBM3"), from a small table (A100, H100, H200, L40S, ...); 0 when unknown.
double peak_bf16_tflops(const std::string& device_name);

}  // namespace reclm
