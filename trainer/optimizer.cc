#include "trainer/optimizer.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "kernels/step_guard.h"

namespace reclm {

AdamW::AdamW(const ParamLayout& layout, const config::OptimConfig& optim)
    : optim_(optim),
      shard_{0, layout.num_parameters()},
      segments_(layout_update_segments(layout)),
      moment_floats_(layout.total_floats()),
      m_(std::make_shared<Storage>(moment_floats_ * sizeof(float))),
      v_(std::make_shared<Storage>(moment_floats_ * sizeof(float))) {}

AdamW::AdamW(const ParamLayout& layout, const config::OptimConfig& optim, CanonicalRange shard)
    : optim_(optim),
      sharded_(true),
      shard_(shard),
      segments_(shard_update_segments(layout, shard)),
      moment_floats_(shard.size()),
      // At least one float, so the moment pointers are valid even for an empty shard.
      m_(std::make_shared<Storage>(std::max<int64_t>(moment_floats_, 1) * sizeof(float))),
      v_(std::make_shared<Storage>(std::max<int64_t>(moment_floats_, 1) * sizeof(float))) {}

double AdamW::grad_norm(const Model& model) {
  // Without frozen values: the whole buffer in one pass (padding holds zeros), as always.
  if (!model.layout.any_frozen())
    return std::sqrt(ops::sum_of_squares(model.grad_data(), model.layout.total_floats()));
  // With them: only what trains, so gradients of frozen values never affect clipping.
  double sum = 0.0;
  for (const ParamEntry& e : model.layout.entries()) {
    if (e.frozen()) continue;
    sum += ops::sum_of_squares(model.grad_data() + e.offset + e.train_begin,
                               e.train_end - e.train_begin);
  }
  return std::sqrt(sum);
}

float AdamW::weight_decay_for(ParamKind kind) const {
  switch (kind) {
    case ParamKind::kMatrix:
    case ParamKind::kLora: return optim_.weight_decay();
    case ParamKind::kNorm: return optim_.decay_norms() ? optim_.weight_decay() : 0.0f;
    case ParamKind::kEmbedding: return optim_.decay_embeddings() ? optim_.weight_decay() : 0.0f;
  }
  return 0.0f;
}

void AdamW::step(Model& model, float lr, float grad_scale) {
  ++steps_;
  float* m = static_cast<float*>(m_->data());
  float* v = static_cast<float*>(v_->data());
  // Frozen values are in no segment: they keep their weights and zero moments.
  for (const UpdateSegment& s : segments_) {
    const ops::AdamWHyper hyper{lr, optim_.beta1(), optim_.beta2(), optim_.eps(),
                                weight_decay_for(s.kind), steps_, grad_scale};
    ops::adamw_update(model.param_data() + s.param_offset, model.grad_data() + s.param_offset,
                      m + s.moment_offset, v + s.moment_offset, s.count, hyper);
  }
}

float clip_coefficient(double norm, float max_norm) {
  return ops::clip_coefficient(norm, max_norm);  // (the device's queued steps compute it too)
}

}  // namespace reclm
