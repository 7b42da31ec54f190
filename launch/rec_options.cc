#include "launch/rec_options.h"

#include <algorithm>
#include <sstream>

#include "data/dataset_store.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "trainer/param_layout.h"
#include "trainer/weights_file.h"

namespace reclm::launch {

RenderOptions render_options(const Config& config) {
  RenderOptions r;
  switch (config.data().rendering()) {
    case config::DataConfig::ID: r.rendering = ItemRendering::kId; break;
    case config::DataConfig::TEXT: r.rendering = ItemRendering::kText; break;
    case config::DataConfig::ID_TEXT: r.rendering = ItemRendering::kIdText; break;
  }
  r.attributes = config.data().attributes();
  return r;
}

RecSourceOptions rec_source_options(const Config& config) {
  const auto& d = config.data();
  RecSourceOptions o;
  o.render = render_options(config);
  o.mix = {d.next_item_weight(), d.infill_weight(), d.text_lm_weight(), d.prompt_weight()};
  o.infill.entity_weight = d.infill_entity_weight();
  o.infill.sentence_weight = d.infill_sentence_weight();
  o.infill.document_weight = d.infill_document_weight();
  o.infill.mask_fraction = d.infill_mask_fraction();
  o.held_out_prompts.assign(d.held_out_prompts().begin(), d.held_out_prompts().end());
  o.history_sampling = d.history_sampling();
  o.title_loss_weight = d.title_loss_weight();
  o.max_seq_len = d.seq_len();
  o.micro_batch = config.train().micro_batch();
  o.grad_accum = config.train().grad_accum();
  o.val_batches = config.eval().val_batches();
  o.positions_2d = config.model().positions() == config::ModelConfig::POSITIONS_2D;
  o.seed = config.runtime().seed();
  return o;
}

InferenceSetup inference_setup(const Config& config) {
  InferenceSetup s;
  s.render = render_options(config);
  s.positions_2d = config.model().positions() == config::ModelConfig::POSITIONS_2D;
  s.max_seq_len = config.data().seq_len();
  return s;
}

EvalOptions eval_options(const Config& config) {
  const auto& e = config.eval();
  EvalOptions o;
  o.split = e.split() == config::EvalConfig::VALIDATION ? Split::kValidation : Split::kTest;
  switch (e.mode()) {
    case config::EvalConfig::AUTO:
      o.mode = config.data().rendering() == config::DataConfig::TEXT ? EvalMode::kBeamSearch
                                                                     : EvalMode::kItemScores;
      break;
    case config::EvalConfig::ITEM_SCORES: o.mode = EvalMode::kItemScores; break;
    case config::EvalConfig::BEAM_SEARCH: o.mode = EvalMode::kBeamSearch; break;
    case config::EvalConfig::TITLE_LIKELIHOOD: o.mode = EvalMode::kTitleLikelihood; break;
  }
  RECLM_USER_CHECK(!(o.mode == EvalMode::kItemScores &&
                     config.data().rendering() == config::DataConfig::TEXT),
                   "field eval.mode: ITEM_SCORES needs item tokens in the stream; the run renders "
                   "items as TEXT (use BEAM_SEARCH or TITLE_LIKELIHOOD)");
  if (!e.ks().empty()) o.ks.assign(e.ks().begin(), e.ks().end());
  o.exclude_history = e.exclude_history();
  o.max_users = e.max_users();
  o.beam_size = e.beam_size();
  o.users_per_batch = e.users_per_batch();
  o.prompt_template = e.prompt_template();
  return o;
}

RecDataset load_config_dataset(Config& config) {
  RECLM_USER_CHECK(!config.data().dataset().empty(),
                   "field data.dataset: no dataset file given (make one with `reclm prepare`)");
  RecDataset dataset = load_dataset(config.data().dataset());
  if (config.model().vocab_size() == 0) {
    config.mutable_model()->set_vocab_size(dataset.vocab.vocab_size);
  }
  RECLM_USER_CHECK(config.model().vocab_size() >= dataset.vocab.vocab_size,
                   "field model.vocab_size: {} is smaller than the dataset's vocabulary ({}) of {}",
                   config.model().vocab_size(), dataset.vocab.vocab_size, config.data().dataset());
  return dataset;
}

std::unordered_map<std::string, int32_t> item_key_index(const ItemTable& items) {
  std::unordered_map<std::string, int32_t> by_key;
  for (int32_t i = 0; i < items.size(); ++i) by_key.emplace(items.keys[i], i);
  return by_key;
}

std::vector<int32_t> parse_history(const std::string& text,
                                   const std::unordered_map<std::string, int32_t>& by_key,
                                   const std::string& where) {
  std::vector<int32_t> items;
  std::istringstream in(text);
  std::string key;
  while (in >> key) {
    const auto it = by_key.find(key);
    RECLM_USER_CHECK(it != by_key.end(), "{}: item \"{}\" is not in the dataset's catalog", where, key);
    items.push_back(it->second);
  }
  RECLM_USER_CHECK(!items.empty(), "{}: empty history", where);
  return items;
}

int64_t eval_max_tokens(const Config& config, const EvalOptions& options) {
  const int64_t per_segment = config.data().seq_len() + 64;  // history + a generated item
  const int64_t segments = options.mode == EvalMode::kItemScores
                               ? options.users_per_batch
                               : std::max<int64_t>(options.beam_size, options.users_per_batch);
  return per_segment * segments;
}

TrainedRun load_trained_run(const std::filesystem::path& run_dir,
                            const std::vector<std::string>& overrides) {
  const auto config_path = run_dir / "config.pbtxt";
  const auto weights_path = run_dir / "model.h5";
  RECLM_USER_CHECK(std::filesystem::exists(config_path),
                   "{}: not a training run directory (no config.pbtxt)", run_dir.string());
  RECLM_USER_CHECK(std::filesystem::exists(weights_path),
                   "{}: no model.h5 (the run did not finish training?)", run_dir.string());
  TrainedRun run;
  run.config = load_config(config_path.string(), overrides);
  run.dataset = load_config_dataset(run.config);
  const EvalOptions options = eval_options(run.config);
  run.model = std::make_unique<Model>(model_dims(run.config.model()),
                                      eval_max_tokens(run.config, options));
  load_weights(weights_path, *run.model);
  return run;
}

}  // namespace reclm::launch
