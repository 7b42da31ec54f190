// Model weights in HDF5 (model.h5): one float32 dataset per named tensor (Hugging Face Llama
// names, e.g. /model.layers.0.self_attn.q_proj.weight) with its shape, plus root attributes
// format_version, the effective config (text) and the dims. The checkpoint module (issue 4) keeps
// this file as the weights part of a checkpoint; until then `reclm train` writes RUN_DIR/model.h5
// at the end and `reclm eval` / `recommend` read it.
#pragma once

#include <filesystem>
#include <string>

#include "trainer/model.h"

namespace reclm {

inline constexpr int kWeightsFormatVersion = 1;

// Writes PATH.tmp, then renames it over PATH (an existing file survives a failed write).
void save_weights(const std::filesystem::path& path, const Model& model,
                  const std::string& config_text);
// The same from a layout-shaped parameter buffer (e.g. a checkpoint's host snapshot).
void save_weights(const std::filesystem::path& path, const ModelDims& dims,
                  const ParamLayout& layout, const float* params, const std::string& config_text);

// Loads every tensor of model.layout. Missing file/tensor, wrong shape, version mismatch, or a
// file that is not HDF5: UserError naming the file and tensor (exit 2).
void load_weights(const std::filesystem::path& path, Model& model);

struct WeightsLoadOptions {
  // LoRA adapter tensors (ParamKind::kLora) of the model that the file lacks keep their current
  // values instead of being a mismatch: a LoRA fine-tune starting from a full-weights file
  // (`train.init_from: "ckpt:DIR"`). Every base tensor must still be present with its shape.
  bool keep_missing_lora = false;
};
// load_weights with options; the two-argument form is this with the defaults.
void load_weights(const std::filesystem::path& path, Model& model,
                  const WeightsLoadOptions& options);

// The config text stored in a weights file.
std::string read_weights_config(const std::filesystem::path& path);

}  // namespace reclm
