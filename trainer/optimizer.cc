#include "trainer/optimizer.h"

#include <cmath>

#include "kernels/ops.h"

namespace reclm {

AdamW::AdamW(const ParamLayout& layout, const config::OptimConfig& optim)
    : optim_(optim),
      m_(std::make_shared<Storage>(layout.total_floats() * sizeof(float))),
      v_(std::make_shared<Storage>(layout.total_floats() * sizeof(float))) {}

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
  for (const ParamEntry& e : model.layout.entries()) {
    if (e.frozen()) continue;  // frozen values keep their weights and zero moments
    const ops::AdamWHyper hyper{lr, optim_.beta1(), optim_.beta2(), optim_.eps(),
                                weight_decay_for(e.kind), steps_, grad_scale};
    const int64_t at = e.offset + e.train_begin;
    ops::adamw_update(model.param_data() + at, model.grad_data() + at, m + at, v + at,
                      e.train_end - e.train_begin, hyper);
  }
}

float clip_coefficient(double norm, float max_norm) {
  if (max_norm <= 0.0f || norm <= max_norm) return 1.0f;
  return static_cast<float>(max_norm / (norm + 1e-6));
}

}  // namespace reclm
