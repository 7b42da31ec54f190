#include "checkpoint/init_from.h"

#include <filesystem>
#include <optional>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/hf_import.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "trainer/weights_file.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

constexpr const char* kWeightsFile = "model.h5";

// A step directory holds model.h5 itself; a checkpoint root names its newest step in `latest`.
fs::path checkpoint_weights(const std::string& spec, const fs::path& dir) {
  std::error_code ec;
  RECLM_USER_CHECK(fs::is_directory(dir, ec), "train.init_from \"{}\": {} is not a directory",
                   spec, dir.string());
  if (fs::exists(dir / kWeightsFile, ec)) return dir / kWeightsFile;
  const std::optional<fs::path> latest = latest_checkpoint(dir);
  RECLM_USER_CHECK(latest.has_value(),
                   "train.init_from \"{}\": {} holds neither {} (a step_* checkpoint directory) nor "
                   "a `latest` file (a checkpoint root)",
                   spec, dir.string(), kWeightsFile);
  RECLM_USER_CHECK(fs::exists(*latest / kWeightsFile, ec),
                   "train.init_from \"{}\": {} (named by {}) has no {}", spec, latest->string(),
                   (dir / "latest").string(), kWeightsFile);
  return *latest / kWeightsFile;
}

}  // namespace

void init_model_from(const std::string& spec, Model& model, const RecDataset* dataset) {
  if (spec.empty()) return;
  const auto starts = [&](const char* prefix) { return spec.rfind(prefix, 0) == 0; };
  if (starts("hf:") && spec.size() > 3) {
    const fs::path dir = spec.substr(3);
    std::error_code ec;
    RECLM_USER_CHECK(fs::is_directory(dir, ec), "train.init_from \"{}\": {} is not a directory",
                     spec, dir.string());
    import_hf_weights(dir, model, dataset);
    return;
  }
  if (starts("ckpt:") && spec.size() > 5) {
    const fs::path weights = checkpoint_weights(spec, spec.substr(5));
    WeightsLoadOptions options;
    options.keep_missing_lora = true;
    load_weights(weights, model, options);
    log_info("init from {}: weights loaded{}", weights.string(),
             model.dims.has_lora() ? " (LoRA adapters the file lacks keep their init)" : "");
    return;
  }
  throw_user_error("train.init_from: \"{}\" must be \"hf:DIR\" or \"ckpt:DIR\"", spec);
}

}  // namespace reclm
