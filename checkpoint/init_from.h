// `train.init_from`: where a run's weights start when not from a random init (configs/reclm.proto
// TrainConfig.init_from, docs/pretrained.md). Optimizer state and step always start fresh.
#pragma once

#include <string>

#include "data/rec_dataset.h"
#include "trainer/model.h"

namespace reclm {

// Overwrites `model`'s parameters (already randomly initialised) according to `spec`:
//   ""          nothing (the random init stays)
//   "hf:DIR"    import_hf_weights(DIR, model, dataset) (checkpoint/hf_import.h); the caller has
//               applied apply_hf_architecture(DIR, …) to the model config before building it
//   "ckpt:DIR"  the weights (model.h5) of one of our checkpoints: DIR is a step_* directory
//               holding model.h5, or a checkpoint root whose `latest` names one. Base tensors and
//               architecture must match the model exactly (every mismatch listed, exit 2); LoRA
//               adapters the file lacks keep their init, so a LoRA fine-tune can start from a
//               full-weights checkpoint.
// Any other spec, or a DIR that is neither form, is a UserError naming train.init_from.
// `dataset` may be null (text LM); only hf: uses it.
void init_model_from(const std::string& spec, Model& model, const RecDataset* dataset);

}  // namespace reclm
