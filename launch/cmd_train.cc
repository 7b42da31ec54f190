// `reclm train --config X.pbtxt [--set path=value ...] [--resume auto|DIR] [--init-from hf:DIR]`: train on a prepared
// recommendation dataset (data.dataset, the objectives of DESIGN.md §1) or, without one, a text
// corpus; checkpoints, resume and init_from are set up by launch/train_run.h.
#include <fmt/format.h>

#include "data/rec_source.h"
#include "data/text_lm_source.h"
#include "launch/commands.h"
#include "launch/rec_options.h"
#include "launch/train_run.h"
#include "runtime/comm/communicator.h"
#include "runtime/config.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "trainer/evaluator.h"
#include "trainer/train_loop.h"

namespace reclm::launch {
namespace {

void train_text_lm(Config config, const std::string& resume, Communicator& comm) {
  TextLmOptions options;
  options.rank = comm.rank();
  options.world = comm.size();
  options.seq_len = config.data().seq_len();
  options.micro_batch = config.train().micro_batch();
  options.val_fraction = config.data().val_fraction();
  options.seed = config.runtime().seed();
  const TextLmSource source =
      make_text_lm_source(config.data().text_path(), config.data().synthetic_bytes(), options);
  if (config.model().vocab_size() == 0) {
    config.mutable_model()->set_vocab_size(static_cast<int32_t>(source.min_vocab_size()));
  }
  TrainHooks hooks;
  hooks.comm = &comm;
  const auto keep = install_run_hooks(hooks, config, resolve_resume(resume, config), nullptr,
                                      source.describe());
  train(config, source, hooks);
}

void train_recommender(Config config, const std::string& resume, Communicator& comm) {
  const RecDataset dataset = load_config_dataset(config);
  RecSourceOptions source_options = rec_source_options(config);
  source_options.rank = comm.rank();
  source_options.world = comm.size();
  const RecSource source(dataset, source_options);
  TrainHooks hooks;
  hooks.comm = &comm;
  if (config.eval().rank_every() > 0) {
    EvalOptions options = eval_options(config);
    options.split = Split::kValidation;
    options.max_users = config.eval().rank_users();
    options.progress = false;
    const InferenceSetup setup = inference_setup(config);
    // The evaluation runs on the training model, whose activation arena holds micro_batch ·
    // seq_len tokens: at least one whole history, and item-score batches shrink to fit.
    options.users_per_batch = static_cast<int32_t>(std::max<int64_t>(
        1, std::min<int64_t>(options.users_per_batch,
                             source.max_batch_tokens() / (config.data().seq_len() + 64))));
    // Every rank calls this at the same step; each scores its share of the users (evaluator.h).
    hooks.rank_eval = [&dataset, setup, options, comm = &comm](Model& model, const HiddenStateSource* hidden) {
      return evaluate(model, dataset, setup, options, comm, hidden).to_json();
    };
    hooks.describe_rank = [](const nlohmann::json& r) {
      std::string line = "validation";
      for (const char* name : {"HR@10", "NDCG@10", "MRR"}) {
        if (r["model"].contains(name)) line += fmt::format(" {} {:.4f}", name, r["model"][name].get<double>());
      }
      return line + fmt::format(" ({} users)", r["n_users"].get<int64_t>());
    };
  }
  const auto keep = install_run_hooks(hooks, config, resolve_resume(resume, config), &dataset,
                                      source.describe());
  train(config, source, hooks);
}

struct TrainArgs : ConfigArgs {
  std::string resume;
  std::string init_from;
};

}  // namespace

void register_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model from a config (runtime.device: cpu, or cuda on a GPU)");
  add_config_options(cmd, args.get());
  cmd->add_option("--resume", args->resume,
                  "Continue a run from a checkpoint: 'auto' (the newest under checkpoint.dir; "
                  "start fresh if none) or a checkpoint directory (then --config is optional)");
  cmd->add_option("--init-from", args->init_from,
                  "Start from pretrained weights: hf:DIR (a Hugging Face Llama directory) or "
                  "ckpt:DIR (one of our checkpoints); same as --set train.init_from=...");
  cmd->callback([args] {
    std::vector<std::string> overrides = args->overrides;
    if (!args->init_from.empty()) overrides.push_back("train.init_from=" + args->init_from);
    const Config config = train_config(args->path, overrides, args->resume);
    const std::unique_ptr<Communicator> comm =
        make_communicator({.timeout_s = config.runtime().comm_timeout_s()});
    set_log_rank(comm->rank(), comm->size());
    if (comm->size() > 1) log_info("{}", comm->describe());
    run_or_abort_job(*comm, [&] {
      if (config.data().dataset().empty()) {
        train_text_lm(config, args->resume, *comm);
      } else {
        train_recommender(config, args->resume, *comm);
      }
    });
  });
}

}  // namespace reclm::launch
