// Learning-rate schedule: linear warmup, then cosine / linear decay to min_lr_ratio·lr at the
// last step, or constant.
#pragma once

#include <cstdint>

#include "runtime/config.h"

namespace reclm {

// lr for the update of 0-based step `step` out of `total_steps`.
float learning_rate(const config::TrainConfig& train, int64_t step);

}  // namespace reclm
