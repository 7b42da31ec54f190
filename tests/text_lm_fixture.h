// Test helper for tests that train end to end: the tiny preset (configs/tiny.pbtxt) and the
// byte-level text source its data fields describe.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/text_lm_source.h"
#include "runtime/config.h"

namespace reclm::test {

// The tiny preset with `overrides` applied, writing its run into `run_dir`.
inline Config tiny_preset_config(const std::filesystem::path& run_dir,
                                 std::vector<std::string> overrides = {}) {
  overrides.push_back("train.run_dir=" + run_dir.string());
  return load_config(std::string(RECLM_SOURCE_DIR) + "/configs/tiny.pbtxt", overrides);
}

// The text source `reclm train` would build from the config's data, train and runtime fields
// (the synthetic corpus when data.text_path is empty).
inline TextLmSource text_lm_source_for(const Config& config) {
  TextLmOptions options;
  options.seq_len = config.data().seq_len();
  options.micro_batch = config.train().micro_batch();
  options.val_fraction = config.data().val_fraction();
  options.seed = config.runtime().seed();
  return make_text_lm_source(config.data().text_path(), config.data().synthetic_bytes(), options);
}

}  // namespace reclm::test
