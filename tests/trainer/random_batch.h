// A small packed batch of random tokens for trainer tests: two causal segments (9 and 11
// tokens), every position with loss weight 1.
#pragma once

#include <cstdint>
#include <random>

#include "data/batch.h"
#include "trainer/param_layout.h"

namespace reclm::test {

inline Batch random_batch(const ModelDims& d, std::mt19937& gen) {
  Batch b;
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(d.vocab) - 1);
  b.cu_seqlens = {0, 9, 20};
  for (int32_t s = 0; s < 2; ++s) {
    for (int32_t i = 0; i < b.cu_seqlens[s + 1] - b.cu_seqlens[s]; ++i) {
      b.tokens.push_back(token(gen));
      b.targets.push_back(token(gen));
      b.loss_weights.push_back(1.0f);
      b.pos_inter.push_back(i);
    }
  }
  return b;
}

}  // namespace reclm::test
