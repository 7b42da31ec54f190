// The small model shapes the trainer tests build (gradient checks, weights files, evaluation):
// one place that fills a ModelDims, so a new field gets a value in every test at once.
#pragma once

#include <cstdint>

#include "trainer/param_layout.h"

namespace reclm::test {

struct TinyShape {
  int64_t vocab = 37;
  int64_t d_model = 24;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t head_dim = 8;
  int64_t d_ff = 40;
  bool tied = true;
  bool positions_2d = false;
};

inline ModelDims tiny_model_dims(const TinyShape& s) {
  ModelDims d{};
  d.vocab = s.vocab;
  d.d_model = s.d_model;
  d.n_layers = 2;
  d.n_heads = s.n_heads;
  d.n_kv_heads = s.n_kv_heads;
  d.head_dim = s.head_dim;
  d.d_ff = s.d_ff;
  d.tied = s.tied;
  d.positions_2d = s.positions_2d;
  d.rope_theta = 10000.0f;
  d.norm_eps = 1e-5f;
  return d;
}

}  // namespace reclm::test
