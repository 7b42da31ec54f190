#include "launch/train_run.h"

#include <optional>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/checkpoint_saver.h"
#include "checkpoint/hf_import.h"
#include "checkpoint/init_from.h"
#include "checkpoint/train_checkpoint.h"
#include "runtime/comm/communicator.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "trainer/optimizer.h"
#include "trainer/vocab_tables.h"

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
    validate_config_from(config, (*dir / "manifest.pbtxt").string(), overrides);
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

namespace {

// Vocabulary parallelism: at each save step every rank sends its item rows (weights and AdamW
// moments) to rank 0, which saves the assembled unsharded state like a single process — so the
// checkpoint resumes on any number of ranks, with or without vocabulary parallelism. Rank 0
// holds one unsharded copy (3× the parameters) while it is taken.
std::shared_ptr<void> install_vocab_parallel_saver(TrainHooks& hooks, const Config& config,
                                                   const std::string& data_source) {
  Communicator& comm = *hooks.comm;
  std::shared_ptr<CheckpointSaver> saver;
  if (comm.rank() == 0) saver = std::make_shared<CheckpointSaver>(config, data_source, comm.size());
  hooks.after_step = [saver, &comm, config](const Model& model, const AdamW& optimizer,
                                             const TrainProgress& progress, bool last) {
    if (!checkpoint_due(config, progress.step, last)) {
      // Not a save step: the saver only reports a background save that has finished.
      if (saver) saver->after_step(model, optimizer, progress, last);
      return;
    }
    std::optional<Model> whole;
    std::optional<AdamW> whole_optimizer;
    if (saver) {
      whole.emplace(unsharded_dims(model.dims), 1);
      whole_optimizer.emplace(whole->layout, config.optim());
      whole_optimizer->set_steps_taken(optimizer.steps_taken());
    }
    gather_unsharded(comm, model.dims, model.param_data(), saver ? whole->param_data() : nullptr);
    gather_unsharded(comm, model.dims, optimizer.first_moment(),
                     saver ? whole_optimizer->first_moment() : nullptr);
    gather_unsharded(comm, model.dims, optimizer.second_moment(),
                     saver ? whole_optimizer->second_moment() : nullptr);
    if (saver) saver->after_step(*whole, *whole_optimizer, progress, last);
  };
  hooks.finish = [saver] {
    if (saver) saver->finish();
  };
  return saver;
}

}  // namespace

std::shared_ptr<void> install_run_hooks(TrainHooks& hooks, const Config& config,
                                        const std::optional<fs::path>& resume_dir,
                                        const RecDataset* dataset, const std::string& data_source) {
  // Under vocabulary parallelism checkpoints and pretrained weights hold whole tables: each rank
  // loads them into an unsharded copy and keeps its rows.
  if (resume_dir) {
    hooks.restore = [config, dir = *resume_dir](Model& model, AdamW& optimizer,
                                                TrainProgress& progress) {
      if (!model.dims.vocab_parallel()) {
        restore_checkpoint(dir, config, model, optimizer, progress);
        return;
      }
      Model whole(unsharded_dims(model.dims), 1);
      AdamW whole_optimizer(whole.layout, config.optim());
      restore_checkpoint(dir, config, whole, whole_optimizer, progress);
      slice_unsharded(model.dims, whole.param_data(), model.param_data());
      slice_unsharded(model.dims, whole_optimizer.first_moment(), optimizer.first_moment());
      slice_unsharded(model.dims, whole_optimizer.second_moment(), optimizer.second_moment());
      optimizer.set_steps_taken(whole_optimizer.steps_taken());
    };
  } else if (!config.train().init_from().empty()) {
    hooks.restore = [spec = config.train().init_from(), dataset](Model& model, AdamW&,
                                                                 TrainProgress&) {
      if (!model.dims.vocab_parallel()) {
        init_model_from(spec, model, dataset);
        return;
      }
      Model whole(unsharded_dims(model.dims), 1);
      init_model_from(spec, whole, dataset);
      slice_unsharded(model.dims, whole.param_data(), model.param_data());
    };
  }
  if (dataset != nullptr) {
    hooks.first_new_token = dataset->vocab.text_size;
    hooks.item_begin = dataset->vocab.items.first;
    hooks.item_end = dataset->vocab.items.first + dataset->vocab.items.count;
  }
  // Every rank restores (a ZeRO-1 rank only its optimizer shard). Plain data parallelism: rank 0
  // alone saves (all state is replicated). ZeRO-1: every rank saves its shard, cooperatively.
  const int world = hooks.comm != nullptr ? hooks.comm->size() : 1;
  const bool cooperative = config.optim().zero1() && world > 1;
  if (config.checkpoint().every() > 0 && config.runtime().vocab_parallel() && world > 1) {
    return install_vocab_parallel_saver(hooks, config, data_source);
  }
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
