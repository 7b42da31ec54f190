// LoRA adapters after training: folding them into the base weights (a plain Llama model for
// export and serving) and listing them (PEFT adapter export). The adapters themselves live in
// the parameter layout (param_layout.h) and run inside the model's forward and backward.
#pragma once

#include <vector>

#include "trainer/model.h"

namespace reclm {

// The same dims without LoRA: the layout a merged model has.
ModelDims without_lora(const ModelDims& dims);

// The weights of `lora_model` with every adapter folded in, W' = W + scale·B·A (fp32), in the
// layout of ParamLayout(without_lora(lora_model.dims)) (total_floats() floats; padding zero).
// Every other tensor is copied as it is. The model must have LoRA (InternalError otherwise).
std::vector<float> merge_lora(const Model& lora_model);

// The adapter tensors (ParamKind::kLora) of a model's layout, in layout order; empty without LoRA.
std::vector<ParamEntry> lora_adapter_entries(const Model& model);

}  // namespace reclm
