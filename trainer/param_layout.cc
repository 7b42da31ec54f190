#include "trainer/param_layout.h"

#include <fmt/format.h>

#include "runtime/errors.h"
#include "runtime/tensor.h"

namespace reclm {

ModelDims model_dims(const config::ModelConfig& m) {
  ModelDims d{};
  d.vocab = m.vocab_size();
  d.d_model = m.d_model();
  d.n_layers = m.n_layers();
  d.n_heads = m.n_heads();
  d.n_kv_heads = m.n_kv_heads() > 0 ? m.n_kv_heads() : m.n_heads();
  d.head_dim = m.d_model() / m.n_heads();
  d.d_ff = m.d_ff();
  RECLM_CHECK(d.d_ff > 0, "model.d_ff must be resolved before building the model");
  d.tied = m.tie_embeddings();
  d.positions_2d = m.positions() == config::ModelConfig::POSITIONS_2D;
  d.rope_theta = m.rope_theta();
  d.norm_eps = m.norm_eps();
  return d;
}

ParamLayout::ParamLayout(const ModelDims& d) {
  add("model.embed_tokens.weight", {d.vocab, d.d_model}, ParamKind::kEmbedding);
  for (int64_t l = 0; l < d.n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    add(p + "input_layernorm.weight", {d.d_model}, ParamKind::kNorm);
    add(p + "self_attn.q_proj.weight", {d.q_dim(), d.d_model}, ParamKind::kMatrix);
    add(p + "self_attn.k_proj.weight", {d.kv_dim(), d.d_model}, ParamKind::kMatrix);
    add(p + "self_attn.v_proj.weight", {d.kv_dim(), d.d_model}, ParamKind::kMatrix);
    add(p + "self_attn.o_proj.weight", {d.d_model, d.q_dim()}, ParamKind::kMatrix);
    add(p + "post_attention_layernorm.weight", {d.d_model}, ParamKind::kNorm);
    add(p + "mlp.gate_proj.weight", {d.d_ff, d.d_model}, ParamKind::kMatrix);
    add(p + "mlp.up_proj.weight", {d.d_ff, d.d_model}, ParamKind::kMatrix);
    add(p + "mlp.down_proj.weight", {d.d_model, d.d_ff}, ParamKind::kMatrix);
  }
  add("model.norm.weight", {d.d_model}, ParamKind::kNorm);
  if (!d.tied) add("lm_head.weight", {d.vocab, d.d_model}, ParamKind::kEmbedding);
}

void ParamLayout::add(std::string name, std::vector<int64_t> shape, ParamKind kind) {
  const int64_t numel = shape_numel(shape);
  entries_.push_back({std::move(name), std::move(shape), total_, numel, kind});
  total_ += (numel + 15) / 16 * 16;  // keep every tensor 64-byte aligned
}

int64_t ParamLayout::num_parameters() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += e.numel;
  return n;
}

const ParamEntry& ParamLayout::find(const std::string& name) const {
  for (const auto& e : entries_) {
    if (e.name == name) return e;
  }
  RECLM_CHECK(false, "no parameter named {}", name);
}

}  // namespace reclm
