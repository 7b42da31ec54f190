// init_weights draws each tensor from its own counter-based stream (seed, kInit, init_key) in
// pieces on all threads (CounterRng::seek). The values must be those of the stream drawn in
// order, one normal per float, whatever the thread count: a checkpoint's step 0, the CPU and GPU
// backends and every rank start from the same weights.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/rng.h"
#include "trainer/model.h"
#include "trainer/tiny_dims.h"

namespace reclm {
namespace {

TEST(InitWeights, PiecesOnAllThreadsGiveTheStreamDrawnInOrder) {
  // Tensors of several pieces (65,536 floats each): the table 3001 × 64, gate/up 1100 × 64.
  const ModelDims dims = test::tiny_model_dims(
      {.vocab = 3001, .d_model = 64, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16, .d_ff = 1100, .tied = false});
  const uint64_t seed = 23;
  const float init_std = 0.02f;
  Model model(dims, 8);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(3);
  init_weights(model, seed, init_std);
  omp_set_num_threads(threads);
  int64_t checked = 0;
  for (const ParamEntry& e : model.layout.entries()) {
    const float* p = model.param_data() + e.offset;
    if (e.kind == ParamKind::kNorm) {
      for (int64_t j = 0; j < e.numel; ++j) ASSERT_EQ(p[j], 1.0f) << e.name;
      continue;
    }
    const bool output_proj =
        e.name.find("o_proj") != std::string::npos || e.name.find("down_proj") != std::string::npos;
    const double std = init_std * (output_proj ? 1.0 / std::sqrt(2.0 * static_cast<double>(dims.n_layers)) : 1.0);
    CounterRng in_order(seed, RngPurpose::kInit, 0, 0, e.init_key);
    for (int64_t j = 0; j < e.numel; ++j) {
      const float want = static_cast<float>(in_order.normal() * std);
      ASSERT_EQ(std::memcmp(&p[j], &want, sizeof(float)), 0) << e.name << "[" << j << "]: " << p[j] << " vs " << want;
    }
    checked += e.numel;
  }
  EXPECT_GT(checked, 3 * 65536);

  Model one_thread(dims, 8);
  omp_set_num_threads(1);
  init_weights(one_thread, seed, init_std);
  omp_set_num_threads(threads);
  EXPECT_EQ(std::memcmp(one_thread.param_data(), model.param_data(), model.layout.total_floats() * sizeof(float)), 0);
}

}  // namespace
}  // namespace reclm
