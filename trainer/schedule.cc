#include "trainer/schedule.h"

#include <algorithm>
#include <cmath>

namespace reclm {

float learning_rate(const config::TrainConfig& train, int64_t step) {
  const double peak = train.lr();
  const int64_t warmup = train.warmup_steps();
  if (step < warmup) return static_cast<float>(peak * static_cast<double>(step + 1) / warmup);
  if (train.schedule() == config::TrainConfig::CONSTANT) return static_cast<float>(peak);
  const double floor = peak * train.min_lr_ratio();
  const int64_t decay_steps = std::max<int64_t>(1, train.steps() - 1 - warmup);
  const double progress = std::clamp(static_cast<double>(step - warmup) / decay_steps, 0.0, 1.0);
  if (train.schedule() == config::TrainConfig::LINEAR) {
    return static_cast<float>(peak - (peak - floor) * progress);
  }
  return static_cast<float>(floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace reclm
