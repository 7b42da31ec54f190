// Config → the option structs of the data and evaluation libraries (which know nothing of
// protobuf), shared by `train`, `eval` and `recommend`, and loading a trained run back.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/rec_dataset.h"
#include "data/rec_source.h"
#include "runtime/config.h"
#include "trainer/evaluator.h"
#include "trainer/model.h"

namespace reclm::launch {

RenderOptions render_options(const Config& config);
RecSourceOptions rec_source_options(const Config& config);
InferenceSetup inference_setup(const Config& config);
// eval group → EvalOptions; AUTO mode resolved from the rendering.
EvalOptions eval_options(const Config& config);

// Loads data.dataset and, when model.vocab_size is 0, sets it to the dataset's vocabulary.
RecDataset load_config_dataset(Config& config);

// A finished training run: RUN_DIR/config.pbtxt (+ overrides, e.g. eval.*) and RUN_DIR/model.h5,
// with its dataset and a model sized for `max_tokens` tokens per forward.
struct TrainedRun {
  Config config;
  RecDataset dataset;
  std::unique_ptr<Model> model;
};
TrainedRun load_trained_run(const std::filesystem::path& run_dir,
                            const std::vector<std::string>& overrides);

// Item key (the id in the input files) → item id, for reading histories typed by a user.
std::unordered_map<std::string, int32_t> item_key_index(const ItemTable& items);
// "k1 k2 ..." (whitespace-separated item keys, oldest first) → item ids. An unknown key or an
// empty history is a UserError naming `where` (e.g. "--history" or "FILE:LINE").
std::vector<int32_t> parse_history(const std::string& text,
                                   const std::unordered_map<std::string, int32_t>& by_key,
                                   const std::string& where);

// Tokens per forward an evaluation needs with these options.
int64_t eval_max_tokens(const Config& config, const EvalOptions& options);

}  // namespace reclm::launch
