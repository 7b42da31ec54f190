// The training loop: batches → forward/backward (with accumulation) → clip → AdamW → log.
// Writes RUN_DIR/config.pbtxt (the effective config) and appends RUN_DIR/metrics.jsonl.
#pragma once

#include <cstdint>
#include <vector>

#include "data/batch.h"
#include "runtime/config.h"

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

TrainResult train(const Config& config, const BatchSource& source);

}  // namespace reclm
