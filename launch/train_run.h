// What `reclm train` sets up around the training loop (trainer/train_loop.h): the config (from
// --config, or from the checkpoint being resumed), `--resume auto|DIR`, train.init_from and the
// checkpoint saver.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/rec_dataset.h"
#include "runtime/config.h"
#include "trainer/train_loop.h"

namespace reclm::launch {

// --resume: "" (no resume), "auto" (the newest checkpoint under checkpoint.dir, if any), or a
// checkpoint directory (a step_* directory, or a checkpoint root whose `latest` names one).
// Returns the step directory to resume from; nullopt for "" and for "auto" with no checkpoint.
// A DIR holding no checkpoint is a UserError naming it.
std::optional<std::filesystem::path> resolve_resume(const std::string& resume,
                                                    const Config& config);

// The config of a `reclm train` run: --config FILE + --set overrides, or — resuming from an
// explicit checkpoint directory without --config — the checkpoint's own config + overrides.
// With train.init_from "hf:DIR" the architecture fields come from DIR/config.json.
Config train_config(const std::string& config_path, const std::vector<std::string>& overrides,
                    const std::string& resume);

// Installs restore (resume, else init_from) and the checkpoint saver's after_step/finish into
// `hooks`. The returned object owns the saver and must outlive the train() call.
std::shared_ptr<void> install_run_hooks(TrainHooks& hooks, const Config& config,
                                        const std::optional<std::filesystem::path>& resume_dir,
                                        const RecDataset* dataset, const std::string& data_source);

}  // namespace reclm::launch
