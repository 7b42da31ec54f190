#include "trainer/model_flops.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace reclm {

int64_t visible_attention_pairs(const Batch& batch) {
  int64_t pairs = 0;
  for (int64_t s = 0; s < batch.n_segments(); ++s) {
    const int64_t L = batch.cu_seqlens[s + 1] - batch.cu_seqlens[s];
    const int64_t p = batch.prefix_lens.empty() ? 0 : std::min<int64_t>(batch.prefix_lens[s], L);
    // queries i < p see the p prefix keys; the others see i + 1 keys
    pairs += p * p + (L * (L + 1) - p * (p + 1)) / 2;
  }
  return pairs;
}

StepFlops training_flops(const ModelDims& d, const Batch& batch) {
  const double T = static_cast<double>(batch.n_tokens());
  double projection_weights = 0.0;  // per layer
  for (int t = 0; t < kNumLoraTargets; ++t) {
    const auto target = static_cast<LoraTarget>(t);
    projection_weights += static_cast<double>(d.proj_in(target)) * d.proj_out(target);
    if (d.lora_targets_has(target)) {
      projection_weights += static_cast<double>(d.lora_rank) * (d.proj_in(target) + d.proj_out(target));
    }
  }
  int64_t loss_rows = 0;
  for (float w : batch.loss_weights) loss_rows += w != 0.0f;
  const int64_t classes = batch.class_count > 0 ? batch.class_count : d.vocab - batch.class_begin;
  constexpr double kTrainingMultiple = 3.0;  // forward + backward (2 × forward)
  StepFlops f;
  f.projections = kTrainingMultiple * 2.0 * projection_weights * T * d.n_layers;
  f.attention = kTrainingMultiple * 4.0 * d.n_heads * d.head_dim *
                static_cast<double>(visible_attention_pairs(batch)) * d.n_layers;
  f.head = kTrainingMultiple * 2.0 * d.d_model * static_cast<double>(classes) * loss_rows;
  return f;
}

double peak_bf16_tflops(const std::string& device_name) {
  // Dense (not sparse) bf16 tensor-core peaks from the vendors' data sheets, SXM parts where both
  // exist; the first matching name wins, so longer names come first.
  static const std::vector<std::pair<std::string, double>> kPeaks = {
      {"H100 PCIe", 756.0}, {"H100", 989.0}, {"H200", 989.0}, {"H800", 989.0}, {"GH200", 989.0},
      {"B200", 2250.0},     {"A100", 312.0}, {"A800", 312.0}, {"L40S", 362.0}, {"L4", 121.0},
      {"A10", 125.0},
  };
  for (const auto& [name, tflops] : kPeaks) {
    if (device_name.find(name) != std::string::npos) return tflops;
  }
  return 0.0;
}

}  // namespace reclm
