// The training loop: batches → forward/backward (with accumulation) → clip → AdamW → log.
// Several ranks: gradients all-reduced (trainer/data_parallel.h) or, with optim.zero1,
// reduce-scattered to the ranks' optimizer shards and the parameters all-gathered (trainer/zero1.h).
// Writes RUN_DIR/config.pbtxt (the effective config) and appends RUN_DIR/metrics.jsonl.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/batch.h"
#include "runtime/config.h"
#include "trainer/evaluator.h"
#include "trainer/model.h"

namespace reclm {

struct TrainResult {
  int64_t steps = 0;             // optimizer steps completed (including skipped ones)
  int64_t skipped_steps = 0;     // non-finite steps skipped (train.on_nonfinite = SKIP)
  int64_t first_step = 0;        // steps completed before this call (a resumed run's start)
  std::vector<double> losses;    // mean training loss of every step run by this call, in order
  std::vector<double> val_losses;
  int64_t num_parameters = 0;
};

// Raised when a non-finite loss or gradient stops the run (train.on_nonfinite = STOP).
class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class AdamW;
class Communicator;

// Where a run stands between two optimizer steps: what a checkpoint records beside the weights
// and the optimizer, and what a resume restores.
struct TrainProgress {
  int64_t step = 0;           // optimizer steps completed; the next one has index `step`
  int64_t tokens_seen = 0;    // training tokens consumed
  int64_t skipped_steps = 0;  // non-finite steps skipped (counted in `step`)
  double last_lr = 0.0;       // learning rate of the last step taken
};

// Optional work the loop runs on the model it trains.
struct TrainHooks {
  // After the random init, before the first step: load pretrained weights (init_from) or a whole
  // checkpoint (resume: weights, optimizer state and progress). Training starts at progress.step.
  // Under ZeRO-1 (optim.zero1 with several ranks) the optimizer holds only this rank's shard
  // (AdamW::sharded()); after_step then runs on every rank, which save together.
  std::function<void(Model& model, AdamW& optimizer, TrainProgress& progress)> restore;
  // After every optimizer step (e.g. save a checkpoint); `last` on the run's final step.
  std::function<void(const Model& model, const AdamW& optimizer, const TrainProgress& progress,
                     bool last)>
      after_step;
  // Once the loop is done, before the final weights are written (e.g. wait for a pending save).
  std::function<void()> finish;
  // The ranks of a data-parallel job (null: one process). Every rank calls train(); rank 0 alone
  // writes the run directory, metrics, logs and final weights.
  Communicator* comm = nullptr;
  // Embedding rows from this index on are new to a pretrained model (items, attributes, special
  // tokens): under LoRA they are the rows that train (model.lora.train_item_embeddings).
  int64_t first_new_token = 0;
  // The dataset's item tokens [item_begin, item_end): the rows runtime.vocab_parallel shards over
  // the ranks. Empty without item tokens (text data).
  int64_t item_begin = 0;
  int64_t item_end = 0;
  // Ranking evaluation (e.g. validation HR/NDCG) every eval.rank_every steps and after the last
  // step; the returned JSON object is appended to metrics.jsonl (kind "rank") and printed.
  // `hidden`: with runtime.device "cuda", the device's forward for item scores (evaluator.h),
  // else null.
  std::function<nlohmann::json(Model& model, const HiddenStateSource* hidden)> rank_eval;
  // One line describing the ranking result for the log.
  std::function<std::string(const nlohmann::json& result)> describe_rank;
};

// Whether a checkpoint is due once `steps_done` optimizer steps are complete: every
// checkpoint.every steps and after the last (`last`); never with checkpoint.every <= 0.
inline bool checkpoint_due(const Config& config, int64_t steps_done, bool last) {
  const int every = config.checkpoint().every();
  return every > 0 && (steps_done % every == 0 || last);
}

// Trains (from the random init, or from what hooks.restore loads) and writes RUN_DIR/model.h5
// (trainer/weights_file.h) at the end.
TrainResult train(const Config& config, const BatchSource& source, const TrainHooks& hooks = {});

}  // namespace reclm
