// AdamW over the flat parameter buffer: moments in the same layout, decoupled weight decay per
// tensor kind (matrices and LoRA adapters always; norms and embeddings only when configured),
// global-norm clipping folded into the update as a gradient scale. Only each entry's train range
// [train_begin, train_end) is updated (all of it without LoRA; under LoRA the adapters and the
// new-token embedding rows).
//
// ZeRO-1 (trainer/zero1.h): an AdamW built with a canonical shard range updates only the
// trainable values of that range and keeps moments for it alone ([shard size] floats each, in
// canonical order) — 1/N of the memory. The update of each value is the same arithmetic either
// way, so sharded and plain AdamW agree bitwise given the same gradients.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/config.h"
#include "runtime/tensor.h"
#include "trainer/model.h"
#include "trainer/zero1.h"

namespace reclm {

class AdamW {
 public:
  // The whole layout: moments in the padded parameter layout.
  AdamW(const ParamLayout& layout, const config::OptimConfig& optim);
  // ZeRO-1: only canonical range `shard`; moments [shard.size()] in canonical order.
  AdamW(const ParamLayout& layout, const config::OptimConfig& optim, CanonicalRange shard);

  // L2 norm of the gradient over the train ranges (the whole buffer when nothing is frozen;
  // deterministic, double accumulation).
  static double grad_norm(const Model& model);
  // One update with learning rate `lr`; gradients are scaled by `grad_scale` (clipping).
  // Reads and writes only the values this optimizer owns (sharded: its shard's trainable ones).
  void step(Model& model, float lr, float grad_scale);
  // True when built for a ZeRO-1 shard.
  bool sharded() const { return sharded_; }
  // The canonical range whose moments this optimizer holds: [0, num_parameters) when not sharded.
  CanonicalRange shard() const { return shard_; }
  // Floats in each moment array: ParamLayout::total_floats() (padded layout) or shard().size().
  int64_t moment_floats() const { return moment_floats_; }
  // Updates applied so far (bias correction uses it).
  int64_t steps_taken() const { return steps_; }
  // The moments (moment_floats() each: the padded parameter layout, or the shard in canonical
  // order) and the update count: what a checkpoint saves and a resume restores.
  float* first_moment() const { return static_cast<float*>(m_->data()); }
  float* second_moment() const { return static_cast<float*>(v_->data()); }
  void set_steps_taken(int64_t steps) { steps_ = steps; }
  float weight_decay_for(ParamKind kind) const;

 private:
  config::OptimConfig optim_;
  bool sharded_ = false;
  CanonicalRange shard_;
  std::vector<UpdateSegment> segments_;  // what step() updates
  int64_t moment_floats_ = 0;
  std::shared_ptr<Storage> m_, v_;
  int64_t steps_ = 0;
};

// Clipping coefficient for a gradient of norm `norm`: min(1, max_norm / norm); 1 if disabled.
float clip_coefficient(double norm, float max_norm);

}  // namespace reclm
