// LoRA in the CPU model: what a fine-tuning run relies on. A fresh adapter changes nothing; a
// trained one equals its merged weights; only adapters and new-token embedding rows train; the
// layout keeps every base tensor where the plain model has it. (The finite-difference checks of
// the adapters' gradients are in model_gradcheck_test.cc, beside the base model's.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "runtime/config.h"
#include "trainer/lora.h"
#include "trainer/model.h"
#include "trainer/optimizer.h"
#include "trainer/random_batch.h"
#include "trainer/tiny_dims.h"

namespace reclm {
namespace {

constexpr int64_t kFirstNewToken = 30;  // tiny vocabulary 37: rows 30..36 are "new" tokens

ModelDims lora_dims(bool tied, int64_t rank, uint32_t targets = kAllLoraTargets) {
  ModelDims d = test::tiny_model_dims({.tied = tied});
  d.lora_rank = rank;
  d.lora_alpha = 8.0f;
  d.lora_targets = rank > 0 ? targets : 0;
  d.first_new_token = kFirstNewToken;
  return d;
}

void randomize_adapters(Model& model, std::mt19937& gen) {
  std::normal_distribution<float> normal(0.0f, 0.2f);
  for (const ParamEntry& e : lora_adapter_entries(model)) {
    for (int64_t j = 0; j < e.numel; ++j) model.param_data()[e.offset + j] = normal(gen);
  }
}

std::vector<float> tensor(const Model& model, const ParamEntry& e) {
  return {model.param_data() + e.offset, model.param_data() + e.offset + e.numel};
}

TEST(LoraLayout, BaseEntriesKeepTheirPlaceAndAdaptersUsePeftNames) {
  const ParamLayout plain(lora_dims(false, 0));
  const ParamLayout lora(lora_dims(false, 4, (1u << 0) | (1u << 6)));  // q_proj, down_proj
  ASSERT_EQ(lora.entries().size(), plain.entries().size() + 2 * 2 * 2);  // 2 layers × 2 × (A, B)
  for (size_t i = 0; i < plain.entries().size(); ++i) {
    EXPECT_EQ(lora.entries()[i].name, plain.entries()[i].name);
    EXPECT_EQ(lora.entries()[i].offset, plain.entries()[i].offset) << plain.entries()[i].name;
  }
  const ParamEntry& qa = lora.find("model.layers.1.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(qa.shape, (std::vector<int64_t>{4, 24}));  // [r, in]
  EXPECT_EQ(qa.kind, ParamKind::kLora);
  EXPECT_EQ(lora.find("model.layers.0.mlp.down_proj.lora_B.weight").shape,
            (std::vector<int64_t>{24, 4}));  // [out, r]
  EXPECT_EQ(lora.find("model.layers.0.mlp.down_proj.lora_A.weight").shape,
            (std::vector<int64_t>{4, 40}));
  EXPECT_EQ(lora.find_or_null("model.layers.0.self_attn.k_proj.lora_A.weight"), nullptr);
  EXPECT_FALSE(plain.any_frozen());
  EXPECT_TRUE(lora.any_frozen());
}

TEST(LoraLayout, TrainRangesFreezeBaseAndKeepNewTokenRows) {
  const ParamLayout plain(lora_dims(false, 0));
  for (const ParamEntry& e : plain.entries()) {
    EXPECT_EQ(e.train_begin, 0) << e.name;
    EXPECT_EQ(e.train_end, e.numel) << e.name;
  }
  const ParamLayout lora(lora_dims(false, 2));
  const int64_t C = 24;
  for (const ParamEntry& e : lora.entries()) {
    switch (e.kind) {
      case ParamKind::kLora:
        EXPECT_EQ(e.train_end - e.train_begin, e.numel) << e.name;
        break;
      case ParamKind::kEmbedding:  // embed_tokens and the untied lm_head
        EXPECT_EQ(e.train_begin, kFirstNewToken * C) << e.name;
        EXPECT_EQ(e.train_end, e.numel) << e.name;
        break;
      default:
        EXPECT_TRUE(e.frozen()) << e.name;
    }
  }
  ModelDims no_embed = lora_dims(true, 2);
  no_embed.lora_train_embeddings = false;
  EXPECT_TRUE(ParamLayout(no_embed).find("model.embed_tokens.weight").frozen());
}

TEST(LoraLayout, ModelDimsReadTheLoraConfig) {
  config::ModelConfig m;
  m.set_vocab_size(37);
  m.set_d_model(24);
  m.set_n_layers(1);
  m.set_n_heads(4);
  m.set_d_ff(40);
  EXPECT_FALSE(model_dims(m).has_lora());
  m.mutable_lora()->set_rank(8);
  ModelDims d = model_dims(m);
  EXPECT_EQ(d.lora_rank, 8);
  EXPECT_EQ(d.lora_targets, kAllLoraTargets) << "empty targets = all seven";
  EXPECT_FLOAT_EQ(d.lora_scale(), 16.0f / 8.0f);
  EXPECT_TRUE(d.lora_train_embeddings);
  m.mutable_lora()->add_targets("v_proj");
  m.mutable_lora()->add_targets("up_proj");
  m.mutable_lora()->set_alpha(4.0f);
  d = model_dims(m);
  EXPECT_EQ(d.lora_targets, (1u << 2) | (1u << 5));
  EXPECT_TRUE(d.lora_targets_has(LoraTarget::kV));
  EXPECT_FALSE(d.lora_targets_has(LoraTarget::kQ));
  EXPECT_FLOAT_EQ(d.lora_scale(), 0.5f);
}

// (d) B = 0 at init: the adapted model computes bitwise what the base model does, and the base
// tensors are drawn exactly as without LoRA.
TEST(Lora, FreshAdapterLeavesTheBaseModelUnchanged) {
  std::mt19937 gen(5);
  const ModelDims plain_dims = lora_dims(true, 0);
  const Batch batch = test::random_batch(plain_dims, gen);
  Model plain(plain_dims, batch.n_tokens()), lora(lora_dims(true, 4), batch.n_tokens());
  init_weights(plain, 3, 0.3f);
  init_weights(lora, 3, 0.3f);
  for (const ParamEntry& e : plain.layout.entries()) {
    EXPECT_EQ(tensor(plain, e), tensor(lora, lora.layout.find(e.name))) << e.name;
  }
  for (const ParamEntry& e : lora_adapter_entries(lora)) {
    const std::vector<float> values = tensor(lora, e);
    const bool is_b = e.name.ends_with("lora_B.weight");
    double sq = 0.0;
    for (float v : values) sq += double{v} * v;
    if (is_b) {
      EXPECT_EQ(sq, 0.0) << e.name;
    } else {  // A ~ N(0, 1/in): the mean square is near 1/in
      const double in = static_cast<double>(e.shape[1]);
      EXPECT_NEAR(sq / e.numel, 1.0 / in, 0.5 / in) << e.name;
    }
  }
  EXPECT_EQ(forward_loss(plain, batch), forward_loss(lora, batch));
}

// (b) A trained adapter equals its merged weights, through the hidden states and the loss.
TEST(Lora, MergedWeightsComputeTheSameModel) {
  for (const bool tied : {true, false}) {
    std::mt19937 gen(9);
    const ModelDims dims = lora_dims(tied, 3, (1u << 0) | (1u << 1) | (1u << 3) | (1u << 4) | (1u << 6));
    const Batch batch = test::random_batch(dims, gen);
    Model lora(dims, batch.n_tokens());
    init_weights(lora, 4, 0.3f);
    randomize_adapters(lora, gen);
    Model merged(without_lora(dims), batch.n_tokens());
    const std::vector<float> weights = merge_lora(lora);
    ASSERT_EQ(static_cast<int64_t>(weights.size()), merged.layout.total_floats());
    std::memcpy(merged.param_data(), weights.data(), weights.size() * sizeof(float));
    // The adapters really matter: the merged q_proj differs from the base one.
    const ParamEntry& q = merged.layout.find("model.layers.0.self_attn.q_proj.weight");
    EXPECT_NE(tensor(merged, q), tensor(lora, lora.layout.find(q.name)));

    const double lora_loss = forward_loss(lora, batch);
    const double merged_loss = forward_loss(merged, batch);
    EXPECT_NEAR(lora_loss, merged_loss, 1e-5 * std::fabs(merged_loss)) << "tied " << tied;
    forward_hidden(lora, batch);
    forward_hidden(merged, batch);
    const int64_t n = batch.n_tokens() * dims.d_model;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(lora.acts.final_normed[i], merged.acts.final_normed[i], 2e-4f) << i;
    }
  }
}

// (e) Frozen base matrices get no gradient at all; the adapters and embeddings do.
TEST(Lora, FrozenBaseMatricesGetNoGradient) {
  std::mt19937 gen(2);
  const ModelDims dims = lora_dims(false, 2);
  const Batch batch = test::random_batch(dims, gen);
  Model model(dims, batch.n_tokens());
  init_weights(model, 1, 0.3f);
  randomize_adapters(model, gen);
  zero_grads(model);
  forward_backward(model, batch, 1.0f);
  for (const ParamEntry& e : model.layout.entries()) {
    double sq = 0.0;
    for (int64_t j = 0; j < e.numel; ++j) sq += std::pow(model.grad_data()[e.offset + j], 2);
    if (e.kind == ParamKind::kMatrix) {
      EXPECT_EQ(sq, 0.0) << e.name;
    } else if (e.kind == ParamKind::kLora || e.kind == ParamKind::kEmbedding) {
      EXPECT_GT(sq, 0.0) << e.name;
    }
  }
}

// (c) AdamW moves only what trains: adapters and the new-token embedding rows; base matrices,
// norms and the text-token rows stay bitwise where they were. Clipping ignores frozen gradients.
TEST(Lora, AdamWUpdatesOnlyAdaptersAndNewTokenRows) {
  for (const bool tied : {true, false}) {
    std::mt19937 gen(17);
    const ModelDims dims = lora_dims(tied, 2);
    const Batch batch = test::random_batch(dims, gen);
    Model model(dims, batch.n_tokens());
    init_weights(model, 8, 0.3f);
    const std::vector<float> before(model.param_data(), model.param_data() + model.layout.total_floats());
    config::OptimConfig optim;
    optim.set_decay_norms(true);
    optim.set_decay_embeddings(true);  // decay would move frozen values, were they updated
    AdamW adamw(model.layout, optim);
    for (int step = 0; step < 2; ++step) {
      zero_grads(model);
      forward_backward(model, batch, 0.05f);
      adamw.step(model, 1e-2f, 1.0f);
    }
    for (const ParamEntry& e : model.layout.entries()) {
      const float* now = model.param_data() + e.offset;
      const float* was = before.data() + e.offset;
      int64_t changed_frozen = 0, changed_trained = 0;
      for (int64_t j = 0; j < e.numel; ++j) {
        const bool trains = j >= e.train_begin && j < e.train_end;
        const bool changed = now[j] != was[j];
        (trains ? changed_trained : changed_frozen) += changed;
      }
      EXPECT_EQ(changed_frozen, 0) << e.name << " tied " << tied;
      // B starts at 0 and gets a gradient at once; A follows on the second step.
      if (!e.frozen()) {
        EXPECT_GT(changed_trained, 0) << e.name << " tied " << tied;
      }
    }
    const ParamEntry& embed = model.layout.find("model.embed_tokens.weight");
    EXPECT_EQ(embed.train_begin, kFirstNewToken * dims.d_model);

    // Gradients of frozen values do not count toward the clipping norm.
    zero_grads(model);
    forward_backward(model, batch, 0.05f);
    const double norm = AdamW::grad_norm(model);
    EXPECT_GT(norm, 0.0);
    model.grad_data()[model.layout.find("model.norm.weight").offset] = 1e6f;
    model.grad_data()[embed.offset] = 1e6f;  // text-token row 0
    EXPECT_EQ(AdamW::grad_norm(model), norm);
  }
}

}  // namespace
}  // namespace reclm
