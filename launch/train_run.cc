#include "launch/train_run.h"

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/checkpoint_saver.h"
#include "checkpoint/hf_import.h"
#include "checkpoint/init_from.h"
#include "checkpoint/train_checkpoint.h"
#include "runtime/comm/communicator.h"
#include "runtime/errors.h"
#include "runtime/logging.h"

namespace reclm::launch {

namespace fs = std::filesystem;

std::optional<fs::path> resolve_resume(const std::string& resume, const Config& config) {
  if (resume.empty()) return std::nullopt;
  if (resume == "auto") {
    const fs::path root = checkpoint_root(config);
    std::optional<fs::path> latest = latest_checkpoint(root);
    if (!latest) log_info("--resume auto: no checkpoint under {}; starting from step 0", root.string());
    return latest;
  }
  const fs::path dir = resume;
  if (fs::exists(dir / "manifest.pb")) return dir;
  if (fs::exists(dir / "latest")) return latest_checkpoint(dir);
  throw_user_error("--resume {}: not a checkpoint (no manifest.pb) nor a checkpoint root (no latest)",
                   resume);
}

Config train_config(const std::string& config_path, const std::vector<std::string>& overrides,
                    const std::string& resume) {
  Config config;
  if (config_path.empty() && !resume.empty() && resume != "auto") {
    const std::optional<fs::path> dir = resolve_resume(resume, Config());
    config = read_manifest(*dir).config();
    for (const std::string& assignment : overrides) apply_override(config, assignment);
    resolve_config(config);
    validate_config(config);
    log_info("config: the checkpoint's own ({})", (*dir / "manifest.pbtxt").string());
  } else {
    config = load_config(config_path, overrides);
  }
  const std::string& init = config.train().init_from();
  if (init.rfind("hf:", 0) == 0) {
    apply_hf_architecture(init.substr(3), config.mutable_model());
    validate_config(config);
  }
  return config;
}

std::shared_ptr<void> install_run_hooks(TrainHooks& hooks, const Config& config,
                                        const std::optional<fs::path>& resume_dir,
                                        const RecDataset* dataset, const std::string& data_source) {
  if (resume_dir) {
    hooks.restore = [config, dir = *resume_dir](Model& model, AdamW& optimizer,
                                                TrainProgress& progress) {
      restore_checkpoint(dir, config, model, optimizer, progress);
    };
  } else if (!config.train().init_from().empty()) {
    hooks.restore = [spec = config.train().init_from(), dataset](Model& model, AdamW&,
                                                                 TrainProgress&) {
      init_model_from(spec, model, dataset);
    };
  }
  if (dataset != nullptr) hooks.first_new_token = dataset->vocab.text_size;
  // Every rank restores (a ZeRO-1 rank only its optimizer shard). Plain data parallelism: rank 0
  // alone saves (all state is replicated). ZeRO-1: every rank saves its shard, cooperatively.
  const int world = hooks.comm != nullptr ? hooks.comm->size() : 1;
  const bool cooperative = config.optim().zero1() && world > 1;
  if (config.checkpoint().every() <= 0 ||
      (!cooperative && hooks.comm != nullptr && hooks.comm->rank() != 0))
    return nullptr;
  auto saver = std::make_shared<CheckpointSaver>(config, data_source, world,
                                                 cooperative ? hooks.comm : nullptr);
  hooks.after_step = [saver](const Model& model, const AdamW& optimizer,
                             const TrainProgress& progress, bool last) {
    saver->after_step(model, optimizer, progress, last);
  };
  hooks.finish = [saver] { saver->finish(); };
  return saver;
}

}  // namespace reclm::launch
