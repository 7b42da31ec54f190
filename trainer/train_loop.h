// The training loop: batches → forward/backward (with accumulation) → clip → AdamW → log.
// Writes RUN_DIR/config.pbtxt (the effective config) and appends RUN_DIR/metrics.jsonl.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/batch.h"
#include "runtime/config.h"
#include "trainer/model.h"

namespace reclm {

struct TrainResult {
  int64_t steps = 0;             // optimizer steps run (including skipped ones)
  int64_t skipped_steps = 0;     // non-finite steps skipped (train.on_nonfinite = SKIP)
  std::vector<double> losses;    // mean training loss of every step, in order
  std::vector<double> val_losses;
  int64_t num_parameters = 0;
};

// Raised when a non-finite loss or gradient stops the run (train.on_nonfinite = STOP).
class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Optional work the loop runs on the model it trains.
struct TrainHooks {
  // Ranking evaluation (e.g. validation HR/NDCG) every eval.rank_every steps and after the last
  // step; the returned JSON object is appended to metrics.jsonl (kind "rank") and printed.
  std::function<nlohmann::json(Model& model)> rank_eval;
  // One line describing the ranking result for the log.
  std::function<std::string(const nlohmann::json& result)> describe_rank;
};

// Trains from scratch and writes RUN_DIR/model.h5 (trainer/weights_file.h) at the end.
TrainResult train(const Config& config, const BatchSource& source, const TrainHooks& hooks = {});

}  // namespace reclm
