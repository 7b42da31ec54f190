// `reclm eval --run DIR [--split test|validation] [--set eval.field=value ...]`: leave-one-out
// ranking over all items with the run's final weights, beside the popularity baseline. Prints a
// table and writes the JSON report (default DIR/eval_<split>.json). Under mpirun the ranks split
// the users and combine their ranks (trainer/evaluator.h): the report equals the one-process
// report, and rank 0 alone prints and writes it. A run trained with runtime.device "cuda" runs the
// item scores' forward on the GPU too (the host scores the items), where this binary has a usable
// GPU backend; otherwise, and for the text modes, everything runs on the CPU.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "kernels/ops.h"
#include "launch/commands.h"
#include "launch/rec_options.h"
#include "runtime/comm/communicator.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "trainer/device_hidden_states.h"
#include "trainer/evaluator.h"
#include "trainer/optimizer.h"

namespace reclm::launch {
namespace {

struct EvalArgs {
  std::string run_dir;
  std::string split;
  std::string out;
  std::vector<std::string> overrides;
};

// Prints the table and writes the JSON report (--out, default RUN/eval_<split>.json).
void write_report(const EvalReport& report, const EvalArgs& args) {
  std::fputs(report.table().c_str(), stdout);
  const std::filesystem::path out =
      args.out.empty() ? std::filesystem::path(args.run_dir) / fmt::format("eval_{}.json", report.split)
                       : std::filesystem::path(args.out);
  const auto tmp = out.string() + ".tmp";
  {
    std::ofstream file(tmp);
    file << report.to_json().dump(2) << "\n";
    RECLM_USER_CHECK(file.good(), "--out: cannot write {}", tmp);
  }
  std::filesystem::rename(tmp, out);
  log_info("report: {}", out.string());
}

// The GPU backend for the item scores' forward with the run's weights, or null (a CPU run, a text
// mode, or no usable GPU backend here: then the CPU evaluates, and says why).
std::unique_ptr<DeviceBackend> eval_device(const TrainedRun& run, const EvalOptions& options, const Communicator& comm) {
  if (run.config.runtime().device() != "cuda" || options.mode != EvalMode::kItemScores) return nullptr;
  const AdamW optimizer(run.model->layout, run.config.optim());  // (upload reads its zero moments)
  try {
    std::unique_ptr<DeviceBackend> device =
        make_device_backend(*run.model, optimizer,
                            {.max_tokens = run.model->acts.max_tokens, .local_rank = comm.local_rank(),
                             .optim = run.config.optim()});
    device->upload(*run.model, optimizer);
    log_info("eval: item scores from the forward on {} (runtime.device \"cuda\")", device->info().name);
    return device;
  } catch (const UserError& e) {
    log_warn("eval: {}; evaluating on the CPU", e.what());
    return nullptr;
  }
}

void run_eval(const EvalArgs& args) {
  std::vector<std::string> overrides = args.overrides;
  if (!args.split.empty()) {
    RECLM_USER_CHECK(args.split == "test" || args.split == "validation",
                     "--split: \"{}\" is not a split (test, validation)", args.split);
    overrides.insert(overrides.begin(), args.split == "test" ? "eval.split=TEST" : "eval.split=VALIDATION");
  }
  TrainedRun run = load_trained_run(args.run_dir, overrides);
  const EvalOptions options = eval_options(run.config);
  const std::unique_ptr<Communicator> comm =
      make_communicator({.timeout_s = run.config.runtime().comm_timeout_s()});
  set_log_rank(comm->rank(), comm->size());
  if (comm->size() > 1) log_info("{}", comm->describe());
  // runtime.threads as in training (results are bitwise reproducible for a fixed count); under
  // mpirun it is per rank.
  ops::set_cpu_threads(run.config.runtime().threads());
  // A rank that fails alone (its own error, or rank 0 unable to write the report) must end the
  // whole job at once: the others would wait in the evaluation's collective until the timeout.
  run_or_abort_job(*comm, [&] {
    const std::unique_ptr<DeviceBackend> device = eval_device(run, options, *comm);
    const HiddenStateSource hidden = device ? device_hidden_states(*device, run.model->acts.max_tokens)
                                            : HiddenStateSource{};
    const EvalReport report = evaluate(*run.model, run.dataset, inference_setup(run.config), options, comm.get(),
                                       device ? &hidden : nullptr);
    if (comm->rank() == 0) write_report(report, args);  // every rank holds the same report
  });
}

}  // namespace

void register_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "HR@K / NDCG@K / MRR of a trained run (full ranking) beside a popularity baseline");
  cmd->add_option("--run", args->run_dir, "Training run directory (config.pbtxt + model.h5)")->required();
  cmd->add_option("--split", args->split, "test (default) or validation");
  cmd->add_option("--out", args->out, "JSON report path (default RUN/eval_<split>.json)");
  cmd->add_option("--set", args->overrides,
                  "Override a config field, e.g. --set eval.exclude_history=false (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  cmd->footer("Options: the `eval` group of configs/reclm.proto (split, mode, ks, exclude_history, "
              "max_users, beam_size, users_per_batch).");
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace reclm::launch
