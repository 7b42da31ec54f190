#include "trainer/optimizer.h"

#include <cmath>

#include "kernels/ops.h"

namespace reclm {

AdamW::AdamW(const ParamLayout& layout, const config::OptimConfig& optim)
    : optim_(optim),
      m_(std::make_shared<Storage>(layout.total_floats() * sizeof(float))),
      v_(std::make_shared<Storage>(layout.total_floats() * sizeof(float))) {}

double AdamW::grad_norm(const Model& model) {
  return std::sqrt(ops::sum_of_squares(model.grad_data(), model.layout.total_floats()));
}

float AdamW::weight_decay_for(ParamKind kind) const {
  switch (kind) {
    case ParamKind::kMatrix: return optim_.weight_decay();
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
    const ops::AdamWHyper hyper{lr, optim_.beta1(), optim_.beta2(), optim_.eps(),
                                weight_decay_for(e.kind), steps_, grad_scale};
    ops::adamw_update(model.param_data() + e.offset, model.grad_data() + e.offset, m + e.offset,
                      v + e.offset, e.numel, hyper);
  }
}

float clip_coefficient(double norm, float max_norm) {
  if (max_norm <= 0.0f || norm <= max_norm) return 1.0f;
  return static_cast<float>(max_norm / (norm + 1e-6));
}

}  // namespace reclm
