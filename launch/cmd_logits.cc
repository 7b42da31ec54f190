// `reclm logits --run RUN_DIR (--tokens "12 7 4051" | --history "item3 item17")
//  [--positions all|last] [--out FILE.json]`: the trained model's raw next-token logits for one
// sequence, as JSON {"tokens": [...], "positions": [...], "logits": [[V floats] per position]}.
//
// Why it exists: a client that loads the Hugging Face export (tests/python/
// check_hf_transformers.py) compares its logits with these, number for number. The sequence is
// one plain-causal segment with 1D positions 0..n-1 — exactly what a LlamaForCausalLM computes
// for input_ids of one row. --history builds the same input `reclm recommend` feeds the model in
// item-score mode ([BOS] then the rendered items, cropped to data.seq_len; 2D runs get their
// intra positions as recommend does); --tokens feeds the ids as given (on a 2D run with intra
// positions 0, i.e. only the inter half of RoPE moves).
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/ops.h"
#include "launch/commands.h"
#include "launch/rec_options.h"
#include "runtime/atomic_file.h"
#include "runtime/errors.h"

namespace reclm::launch {
namespace {

struct LogitsArgs {
  std::string run_dir;
  std::string tokens;
  std::string history;
  std::string positions = "all";
  std::string out;
  std::vector<std::string> overrides;
};

// "12 7 4051" → ids, each in [0, vocab).
std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    int64_t id = -1;
    size_t used = 0;
    try {
      id = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    RECLM_USER_CHECK(used == word.size(), "--tokens: \"{}\" is not a token id (an integer)", word);
    RECLM_USER_CHECK(id >= 0 && id < vocab, "--tokens: token id {} is outside the model's vocabulary [0, {})",
                     id, vocab);
    ids.push_back(static_cast<int32_t>(id));
  }
  RECLM_USER_CHECK(!ids.empty(), "--tokens: no token ids given");
  return ids;
}

// One segment, plain causal, positions 0..n-1, no loss.
Sample plain_sequence(const std::vector<int32_t>& ids) {
  Sample s;
  s.tokens = ids;
  s.targets.assign(ids.size(), 0);
  s.loss_weights.assign(ids.size(), 0.0f);
  for (int32_t p = 0; p < static_cast<int32_t>(ids.size()); ++p) s.pos_inter.push_back(p);
  return s;
}

void run_logits(const LogitsArgs& args) {
  RECLM_USER_CHECK(args.tokens.empty() != args.history.empty(),
                   "give exactly one of --tokens \"ID ID ...\" and --history \"ITEM ITEM ...\"");
  RECLM_USER_CHECK(args.positions == "all" || args.positions == "last",
                   "--positions: \"{}\" is not one of all, last", args.positions);
  TrainedRun run = load_trained_run(args.run_dir, args.overrides);
  Model& model = *run.model;
  const int64_t V = model.dims.vocab;
  const int64_t C = model.dims.d_model;

  Sample sample;
  if (!args.tokens.empty()) {
    sample = plain_sequence(parse_token_ids(args.tokens, V));
  } else {
    const std::vector<int32_t> history =
        parse_history(args.history, item_key_index(run.dataset.items), "--history");
    const InferenceSetup setup = inference_setup(run.config);
    sample = history_prompt(run.dataset, history, setup.render, setup.positions_2d,
                            setup.max_seq_len);
  }
  const int64_t T = sample.size();
  RECLM_USER_CHECK(T <= model.acts.max_tokens,
                   "--tokens: {} tokens do not fit one forward of this run's model ({} tokens)", T,
                   model.acts.max_tokens);
  Batch batch;
  append_sample(batch, sample);
  forward_hidden(model, batch);

  // logits [rows, V] = final_normed[first_row:] [rows, C] · lm_headᵀ
  const int64_t first_row = args.positions == "last" ? T - 1 : 0;
  const int64_t rows = T - first_row;
  std::vector<float> logits(rows * V);
  ops::linear_forward(logits.data(), model.acts.final_normed + first_row * C, model.params.lm_head,
                      rows, C, V);

  nlohmann::json out;
  out["tokens"] = sample.tokens;
  out["positions"] = nlohmann::json::array();
  out["logits"] = nlohmann::json::array();
  for (int64_t r = 0; r < rows; ++r) {
    out["positions"].push_back(first_row + r);
    out["logits"].push_back(std::vector<float>(logits.begin() + r * V, logits.begin() + (r + 1) * V));
  }
  const std::string text = out.dump() + "\n";
  if (args.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return;
  }
  replace_file_atomically(args.out, [&](const std::filesystem::path& tmp) {
    std::ofstream file(tmp, std::ios::binary);
    RECLM_USER_CHECK(file.good(), "--out: cannot write {}", tmp.string());
    file << text;
    file.close();
    RECLM_USER_CHECK(file.good(), "--out: error writing {}", tmp.string());
  });
}

}  // namespace

void register_logits_command(CLI::App& app) {
  auto args = std::make_shared<LogitsArgs>();
  CLI::App* cmd =
      app.add_subcommand("logits", "Raw next-token logits of a trained run for one sequence (JSON)");
  cmd->add_option("--run,--checkpoint", args->run_dir,
                  "Training run directory (config.pbtxt + model.h5)")
      ->required();
  cmd->add_option("--tokens", args->tokens, "Token ids, space-separated (positions 0..n-1)");
  cmd->add_option("--history", args->history,
                  "Item ids (as in the input files), oldest first: the input `reclm recommend` feeds");
  cmd->add_option("--positions", args->positions,
                  "all (one row of logits per token, default) or last");
  cmd->add_option("--out", args->out, "Write the JSON here instead of stdout");
  cmd->add_option("--set", args->overrides, "Override a config field (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  cmd->callback([args] { run_logits(*args); });
}

}  // namespace reclm::launch
