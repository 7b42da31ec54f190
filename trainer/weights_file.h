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

// Loads every tensor of model.layout. Missing file/tensor, wrong shape, version mismatch, or a
// file that is not HDF5: UserError naming the file and tensor (exit 2).
void load_weights(const std::filesystem::path& path, Model& model);

// The config text stored in a weights file.
std::string read_weights_config(const std::filesystem::path& path);

}  // namespace reclm
