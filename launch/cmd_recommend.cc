// `reclm recommend --checkpoint RUN_DIR --history "i1 i2 ..." -k 10` (or --histories FILE, one
// history per line): the top-K items with titles and scores. Items are named by the ids of the
// input files (the dataset's item keys).
#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include "launch/commands.h"
#include "launch/rec_options.h"
#include "runtime/errors.h"
#include "trainer/evaluator.h"

namespace reclm::launch {
namespace {

struct RecommendArgs {
  std::string run_dir;
  std::string history;
  std::string histories_file;
  int k = 10;
  bool include_history = false;
  std::vector<std::string> overrides;
};

void run_recommend(const RecommendArgs& args) {
  RECLM_USER_CHECK(args.history.empty() != args.histories_file.empty(),
                   "give exactly one of --history \"i1 i2 ...\" and --histories FILE");
  RECLM_USER_CHECK(args.k > 0, "-k: must be > 0 (got {})", args.k);
  TrainedRun run = load_trained_run(args.run_dir, args.overrides);
  const ItemTable& items = run.dataset.items;
  const auto by_key = item_key_index(items);
  std::vector<std::pair<std::string, std::string>> inputs;  // (where, history text)
  if (!args.history.empty()) {
    inputs.emplace_back("--history", args.history);
  } else {
    std::ifstream file(args.histories_file);
    RECLM_USER_CHECK(file.good(), "--histories: cannot read {}", args.histories_file);
    std::string line;
    for (int n = 1; std::getline(file, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      inputs.emplace_back(fmt::format("{}:{}", args.histories_file, n), line);
    }
  }
  const EvalOptions options = eval_options(run.config);
  const InferenceSetup setup = inference_setup(run.config);
  for (const auto& [where, text] : inputs) {
    const std::vector<int32_t> history = parse_history(text, by_key, where);
    const auto top = recommend(*run.model, run.dataset, setup, options.mode, history, args.k,
                               !args.include_history);
    if (inputs.size() > 1) std::printf("# %s\n", where.c_str());
    std::printf("%-5s %-14s %10s  %s\n", "rank", "item", "score", "title");
    for (size_t r = 0; r < top.size(); ++r) {
      std::printf("%-5zu %-14s %10.4f  %s\n", r + 1, items.keys[top[r].item].c_str(), top[r].score,
                  items.titles[top[r].item].c_str());
    }
  }
}

}  // namespace

void register_recommend_command(CLI::App& app) {
  auto args = std::make_shared<RecommendArgs>();
  CLI::App* cmd = app.add_subcommand("recommend", "Top-K items for given histories");
  cmd->add_option("--checkpoint,--run", args->run_dir, "Training run directory (config.pbtxt + model.h5)")
      ->required();
  cmd->add_option("--history", args->history, "Item ids (as in the input files), oldest first");
  cmd->add_option("--histories", args->histories_file, "File with one history per line");
  cmd->add_option("-k", args->k, "How many items (default 10)");
  cmd->add_flag("--include-history", args->include_history,
                "Allow items already in the history (excluded by default)");
  cmd->add_option("--set", args->overrides, "Override a config field (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  cmd->callback([args] { run_recommend(*args); });
}

}  // namespace reclm::launch
