// AdamW over the flat parameter buffer: moments in the same layout, decoupled weight decay per
// tensor kind (matrices and LoRA adapters always; norms and embeddings only when configured),
// global-norm clipping folded into the update as a gradient scale. Only each entry's train range
// [train_begin, train_end) is updated (all of it without LoRA; under LoRA the adapters and the
// new-token embedding rows).
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/config.h"
#include "runtime/tensor.h"
#include "trainer/model.h"

namespace reclm {

class AdamW {
 public:
  AdamW(const ParamLayout& layout, const config::OptimConfig& optim);

  // L2 norm of the gradient over the train ranges (the whole buffer when nothing is frozen;
  // deterministic, double accumulation).
  static double grad_norm(const Model& model);
  // One update with learning rate `lr`; gradients are scaled by `grad_scale` (clipping).
  void step(Model& model, float lr, float grad_scale);
  // Updates applied so far (bias correction uses it).
  int64_t steps_taken() const { return steps_; }
  // The moments, in the parameter layout (ParamLayout::total_floats() floats each), and the
  // update count: what a checkpoint saves and a resume restores.
  float* first_moment() const { return static_cast<float*>(m_->data()); }
  float* second_moment() const { return static_cast<float*>(v_->data()); }
  void set_steps_taken(int64_t steps) { steps_ = steps; }
  float weight_decay_for(ParamKind kind) const;

 private:
  config::OptimConfig optim_;
  std::shared_ptr<Storage> m_, v_;
  int64_t steps_ = 0;
};

// Clipping coefficient for a gradient of norm `norm`: min(1, max_norm / norm); 1 if disabled.
float clip_coefficient(double norm, float max_norm);

}  // namespace reclm
