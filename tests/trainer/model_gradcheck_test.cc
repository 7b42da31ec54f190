// The whole model's backward against central finite differences of its forward loss.
// Per parameter tensor, the analytic directional derivative g·u along a random direction u is
// compared with (L(p + h·u) − L(p − h·u)) / 2h. A direction (rather than single coordinates)
// makes the check sensitive to every element while keeping fp32 round-off averaged out.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "runtime/errors.h"
#include "trainer/model.h"
#include "trainer/tiny_dims.h"

namespace reclm {
namespace {

struct GradCase {
  const char* name;
  bool tied;
  bool positions_2d;
  int n_kv_heads;
  bool with_prefix;
  float dropout = 0.0f;  // > 0: fixed masks (same key in every forward), so the loss is smooth
  int lora_rank = 0;     // > 0: LoRA adapters (random non-zero B) on `lora_targets`
  uint32_t lora_targets = kAllLoraTargets;
};

ModelDims tiny_dims(const GradCase& c) {
  ModelDims d = test::tiny_model_dims({.n_kv_heads = c.n_kv_heads, .tied = c.tied,
                                       .positions_2d = c.positions_2d});
  d.lora_rank = c.lora_rank;
  d.lora_alpha = 4.5f;  // scale 1.5 at rank 3: the adapters visibly change every output
  d.lora_targets = c.lora_rank > 0 ? c.lora_targets : 0;
  d.first_new_token = 30;
  return d;
}

// Three packed segments of ragged lengths, random tokens, some positions without loss.
Batch ragged_batch(const ModelDims& d, bool with_prefix, std::mt19937& gen) {
  const std::vector<int32_t> lengths = {7, 1, 12};
  Batch b;
  b.cu_seqlens = {0};
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(d.vocab) - 1);
  for (int32_t len : lengths) {
    for (int32_t i = 0; i < len; ++i) {
      b.tokens.push_back(token(gen));
      b.targets.push_back(token(gen));
      b.loss_weights.push_back(i % 5 == 3 ? 0.0f : 1.0f + 0.25f * (i % 3));
      b.pos_inter.push_back(i);
      b.pos_intra.push_back(d.positions_2d ? (i % 4) : 0);
    }
    b.cu_seqlens.push_back(b.cu_seqlens.back() + len);
    if (with_prefix) b.prefix_lens.push_back(len / 2);
  }
  if (!d.positions_2d) b.pos_intra.clear();
  return b;
}

class ModelGradCheck : public ::testing::TestWithParam<GradCase> {};

TEST_P(ModelGradCheck, EveryTensorMatchesFiniteDifferences) {
  const GradCase c = GetParam();
  const ModelDims dims = tiny_dims(c);
  std::mt19937 gen(42);
  const Batch batch = ragged_batch(dims, c.with_prefix, gen);
  Model model(dims, batch.n_tokens());
  init_weights(model, 7, 0.3f);  // large init: non-trivial attention patterns and activations
  for (const ParamEntry& e : model.layout.entries()) {  // norms away from 1, so they matter
    if (e.kind != ParamKind::kNorm) continue;
    std::uniform_real_distribution<float> around_one(0.5f, 1.5f);
    for (int64_t j = 0; j < e.numel; ++j) model.param_data()[e.offset + j] = around_one(gen);
  }
  // A trained-looking adapter: B away from zero. A is shrunk from its init std 1/sqrt(in) to
  // the base tensors' scale: with few elements per adapter, a step of length h along A or B
  // otherwise moves q/k so far that the O(h²) truncation exceeds the tolerance.
  for (const ParamEntry& e : model.layout.entries()) {
    if (e.kind != ParamKind::kLora) continue;
    float* p = model.param_data() + e.offset;
    const bool is_b = e.name.ends_with("lora_B.weight");
    std::normal_distribution<float> normal(0.0f, 0.3f);
    for (int64_t j = 0; j < e.numel; ++j) p[j] = is_b ? normal(gen) : 0.3f * p[j];
  }
  model.dropout = {c.dropout, c.dropout > 0.0f, 99, 5};
  zero_grads(model);
  const float grad_scale = 0.1f;
  forward_backward(model, batch, grad_scale);

  const double h = 1e-2;
  for (const ParamEntry& e : model.layout.entries()) {
    float* p = model.param_data() + e.offset;
    const float* g = model.grad_data() + e.offset;
    if (dims.has_lora() && e.kind == ParamKind::kMatrix) {  // frozen: weight gradient skipped
      int64_t nonzero = 0;
      for (int64_t j = 0; j < e.numel; ++j) nonzero += g[j] != 0.0f;
      EXPECT_EQ(nonzero, 0) << c.name << ": frozen " << e.name << " got a gradient";
      continue;
    }
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> u(e.numel);
    double u_norm = 0.0;
    for (double& x : u) {
      x = normal(gen);
      u_norm += x * x;
    }
    for (double& x : u) x /= std::sqrt(u_norm);  // unit direction: a step of length h in total
    double analytic = 0.0;
    for (int64_t j = 0; j < e.numel; ++j) analytic += g[j] * u[j];
    std::vector<float> saved(p, p + e.numel);
    auto loss_at = [&](double step) {
      for (int64_t j = 0; j < e.numel; ++j) p[j] = static_cast<float>(saved[j] + step * u[j]);
      return grad_scale * forward_loss(model, batch);
    };
    const auto central = [&](double step) { return (loss_at(step) - loss_at(-step)) / (2 * step); };
    // Richardson extrapolation (4·D(h) − D(2h)) / 3 cancels the O(h²) truncation of the central
    // difference. An adapter has few elements, so each moves far and the loss curves visibly
    // along it; but the plain D(h) of a norm weight was off by 0.88 of the bound too (layer 0's
    // input norm, tied_1d_causal_mha), and by 1.04 with OpenBLAS's SSE3 kernels, which it picks on
    // CPUs it does not know (2026-11-27: family 6 model 207). With the extrapolation the worst
    // tensor is at 0.64 of the bound (AVX2 kernels) and 0.59 (SSE3).
    const double numeric = (4 * central(h) - central(2 * h)) / 3;
    std::copy(saved.begin(), saved.end(), p);
    // fp32 forward: the extrapolation's O(h⁴) truncation plus ~1e-7 relative round-off of the
    // loss amplified by ~1/h; the directional derivatives here are 1e-2..1, agreement is ~1e-4
    // relative.
    if (std::getenv("RECLM_GRADCHECK_VERBOSE")) std::printf("%-50s %+.6e %+.6e\n", e.name.c_str(), analytic, numeric);
    EXPECT_NEAR(analytic, numeric, 3e-5 + 2e-3 * std::fabs(numeric))
        << c.name << ": " << e.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Variants, ModelGradCheck,
    ::testing::Values(GradCase{"tied_1d_causal_mha", true, false, 4, false},
                      GradCase{"untied_2d_prefix_gqa", false, true, 2, true},
                      GradCase{"tied_1d_prefix_mqa", true, false, 1, true},
                      GradCase{"untied_2d_gqa_dropout", false, true, 2, true, 0.3f},
                      // LoRA: adapters, norms and embeddings (the input gradient through every
                      // adapted layer reaches embed_tokens) against finite differences.
                      GradCase{"lora_all_targets_tied_1d", true, false, 2, false, 0.0f, 3},
                      GradCase{"lora_qvo_down_untied_2d_dropout", false, true, 2, true, 0.3f, 3,
                               (1u << 0) | (1u << 2) | (1u << 3) | (1u << 6)}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Model, ForwardLossEqualsForwardBackwardLoss) {
  const ModelDims dims = tiny_dims({"", false, true, 2, true});
  std::mt19937 gen(3);
  const Batch batch = ragged_batch(dims, true, gen);
  Model model(dims, 64);
  init_weights(model, 1, 0.02f);
  zero_grads(model);
  const double a = forward_backward(model, batch, 1.0f);
  const double b = forward_loss(model, batch);
  EXPECT_EQ(a, b);
  EXPECT_GT(a, 0.0);
}

TEST(Model, InitIsDeterministicAndKeyedBySeed) {
  const ModelDims dims = tiny_dims({"", true, false, 4, false});
  Model a(dims, 8), b(dims, 8), c(dims, 8);
  init_weights(a, 5, 0.02f);
  init_weights(b, 5, 0.02f);
  init_weights(c, 6, 0.02f);
  const size_t bytes = a.layout.total_floats() * sizeof(float);
  EXPECT_EQ(0, std::memcmp(a.param_data(), b.param_data(), bytes));
  EXPECT_NE(0, std::memcmp(a.param_data(), c.param_data(), bytes));
  const ParamEntry& norm = a.layout.find("model.norm.weight");
  EXPECT_EQ(a.param_data()[norm.offset], 1.0f);
}

// Dropout is on only while enabled, changes the loss when on, and never touches forward_hidden.
TEST(Model, DropoutOnlyWhenEnabledAndKeyedByStream) {
  const GradCase c{"d", true, false, 4, false};
  const ModelDims dims = tiny_dims(c);
  std::mt19937 gen(3);
  const Batch batch = ragged_batch(dims, false, gen);
  Model model(dims, batch.n_tokens());
  init_weights(model, 7, 0.3f);
  const double plain = forward_loss(model, batch);
  model.dropout = {0.5f, false, 1, 1};
  EXPECT_EQ(forward_loss(model, batch), plain);
  model.dropout.enabled = true;
  const double dropped = forward_loss(model, batch);
  EXPECT_NE(dropped, plain);
  EXPECT_EQ(forward_loss(model, batch), dropped);  // same key, same masks
  model.dropout.stream = 2;
  EXPECT_NE(forward_loss(model, batch), dropped);
  forward_hidden(model, batch);
  std::vector<float> hidden(model.acts.final_normed, model.acts.final_normed + batch.n_tokens() * dims.d_model);
  model.dropout.enabled = false;
  forward_hidden(model, batch);
  EXPECT_EQ(0, std::memcmp(hidden.data(), model.acts.final_normed, hidden.size() * sizeof(float)));
}

TEST(ParamLayout, HuggingFaceNamesShapesAndAlignment) {
  const ModelDims dims = tiny_dims({"", false, false, 2, false});
  const ParamLayout layout(dims);
  const ParamEntry& k = layout.find("model.layers.1.self_attn.k_proj.weight");
  EXPECT_EQ(k.shape, (std::vector<int64_t>{16, 24}));  // NKV·HD = 2·8 rows, C columns
  EXPECT_EQ(layout.find("lm_head.weight").shape, (std::vector<int64_t>{37, 24}));
  int64_t expected = 37 * 24 * 2 + 24;  // embed + lm_head + final norm
  expected += 2 * (24 + 32 * 24 + 16 * 24 * 2 + 24 * 32 + 24 + 40 * 24 * 2 + 24 * 40);
  EXPECT_EQ(layout.num_parameters(), expected);
  for (const ParamEntry& e : layout.entries()) EXPECT_EQ(e.offset % 16, 0) << e.name;
  const ParamLayout tied(tiny_dims({"", true, false, 2, false}));
  EXPECT_THROW(tied.find("lm_head.weight"), InternalError);
}

}  // namespace
}  // namespace reclm
