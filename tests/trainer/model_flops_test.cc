// Model FLOPs (trainer/model_flops.h) counted by hand for small batches.
#include "trainer/model_flops.h"

#include <gtest/gtest.h>

#include "trainer/tiny_dims.h"

namespace reclm {
namespace {

Batch segments(std::vector<int32_t> lengths, std::vector<int32_t> prefixes = {}) {
  Batch b;
  b.cu_seqlens = {0};
  for (int32_t len : lengths) {
    for (int32_t i = 0; i < len; ++i) {
      b.tokens.push_back(1);
      b.targets.push_back(2);
      b.loss_weights.push_back(i % 2 == 0 ? 1.0f : 0.0f);  // every other row has a loss
      b.pos_inter.push_back(i);
    }
    b.cu_seqlens.push_back(b.cu_seqlens.back() + len);
  }
  b.prefix_lens = std::move(prefixes);
  return b;
}

TEST(ModelFlops, VisiblePairsFollowTheMask) {
  EXPECT_EQ(visible_attention_pairs(segments({4})), 1 + 2 + 3 + 4);            // causal
  EXPECT_EQ(visible_attention_pairs(segments({4}, {2})), 2 + 2 + 3 + 4);       // prefix 2
  EXPECT_EQ(visible_attention_pairs(segments({4}, {4})), 16);                  // bidirectional
  EXPECT_EQ(visible_attention_pairs(segments({4}, {9})), 16);                  // prefix past the end
  EXPECT_EQ(visible_attention_pairs(segments({1, 3}, {0, 1})), 1 + (1 + 2 + 3));
  EXPECT_EQ(visible_attention_pairs(segments({3, 2})), 6 + 3);
}

// tiny dims: C 24, 4 heads × 8, 2 kv heads, F 40, vocab 37, 2 layers.
TEST(ModelFlops, TrainingStepIsThreeTimesTheForwardProducts) {
  const ModelDims d = test::tiny_model_dims({});
  const Batch b = segments({5, 2});  // 7 tokens, 4 with a loss, 15 + 3 = 18 visible pairs
  const StepFlops f = training_flops(d, b);
  const double per_token_layer = 2.0 * (24 * 32 + 2 * 24 * 16 + 32 * 24 + 3 * 24 * 40);
  EXPECT_DOUBLE_EQ(f.projections, 3.0 * per_token_layer * 7 * 2);
  EXPECT_DOUBLE_EQ(f.attention, 3.0 * 4.0 * 4 * 8 * 18 * 2);
  EXPECT_DOUBLE_EQ(f.head, 3.0 * 2.0 * 24 * 37 * 4);
  EXPECT_DOUBLE_EQ(f.total(), f.projections + f.attention + f.head);

  Batch items = b;  // an item softmax over 10 classes
  items.class_begin = 20;
  items.class_count = 10;
  EXPECT_DOUBLE_EQ(training_flops(d, items).head, 3.0 * 2.0 * 24 * 10 * 4);

  ModelDims lora = d;  // rank-2 adapters on q and down: 2·r·(in + out) more per token and layer
  lora.lora_rank = 2;
  lora.lora_targets = (1u << 0) | (1u << 6);
  EXPECT_DOUBLE_EQ(training_flops(lora, b).projections - f.projections,
                   3.0 * 2.0 * (2 * (24 + 32) + 2 * (40 + 24)) * 7 * 2);
}

TEST(ModelFlops, PeakTableMatchesDeviceNames) {
  EXPECT_EQ(peak_bf16_tflops("NVIDIA H100 80GB HBM3"), 989.0);
  EXPECT_EQ(peak_bf16_tflops("NVIDIA H100 PCIe"), 756.0);
  EXPECT_EQ(peak_bf16_tflops("NVIDIA H200"), 989.0);
  EXPECT_EQ(peak_bf16_tflops("NVIDIA A100-SXM4-80GB"), 312.0);
  EXPECT_EQ(peak_bf16_tflops("NVIDIA L40S"), 362.0);
  EXPECT_EQ(peak_bf16_tflops("NVIDIA L4"), 121.0);
  EXPECT_EQ(peak_bf16_tflops("NVIDIA A10"), 125.0);
  EXPECT_EQ(peak_bf16_tflops("Some Future GPU"), 0.0);
}

}  // namespace
}  // namespace reclm
