#include "trainer/param_layout.h"

#include <fmt/format.h>

#include <algorithm>

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
  d.lora_rank = m.lora().rank();
  d.lora_alpha = m.lora().alpha();
  d.lora_targets = lora_target_mask({m.lora().targets().begin(), m.lora().targets().end()});
  d.lora_train_embeddings = m.lora().train_item_embeddings();
  return d;
}

const char* lora_target_name(LoraTarget target) {
  static constexpr const char* kNames[kNumLoraTargets] = {
      "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return kNames[static_cast<int>(target)];
}

std::string lora_module_path(int64_t layer, LoraTarget target) {
  const bool mlp = target >= LoraTarget::kGate;
  return fmt::format("model.layers.{}.{}.{}", layer, mlp ? "mlp" : "self_attn",
                     lora_target_name(target));
}

uint32_t lora_target_mask(const std::vector<std::string>& names) {
  if (names.empty()) return kAllLoraTargets;
  uint32_t mask = 0;
  for (const std::string& name : names) {
    bool known = false;
    for (int t = 0; t < kNumLoraTargets; ++t) {
      if (name == lora_target_name(static_cast<LoraTarget>(t))) {
        mask |= 1u << t;
        known = true;
      }
    }
    RECLM_CHECK(known, "model.lora.targets: unknown projection \"{}\"", name);
  }
  return mask;
}

int64_t ModelDims::proj_in(LoraTarget t) const {
  switch (t) {
    case LoraTarget::kO: return q_dim();
    case LoraTarget::kDown: return d_ff;
    default: return d_model;
  }
}

int64_t ModelDims::proj_out(LoraTarget t) const {
  switch (t) {
    case LoraTarget::kQ: return q_dim();
    case LoraTarget::kK:
    case LoraTarget::kV: return kv_dim();
    case LoraTarget::kGate:
    case LoraTarget::kUp: return d_ff;
    default: return d_model;
  }
}

ParamLayout::ParamLayout(const ModelDims& d) {
  add_vocab_table("model.embed_tokens.weight", d);
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
  if (!d.tied) add_vocab_table("lm_head.weight", d);
  if (d.has_lora()) {
    const int64_t r = d.lora_rank;
    for (int64_t l = 0; l < d.n_layers; ++l) {
      for (int t = 0; t < kNumLoraTargets; ++t) {
        const auto target = static_cast<LoraTarget>(t);
        if (!d.lora_targets_has(target)) continue;
        const std::string module = lora_module_path(l, target);
        add(module + ".lora_A.weight", {r, d.proj_in(target)}, ParamKind::kLora);
        add(module + ".lora_B.weight", {d.proj_out(target), r}, ParamKind::kLora);
      }
    }
  }
  set_train_ranges(d);
}

void ParamLayout::add(std::string name, std::vector<int64_t> shape, ParamKind kind) {
  const int64_t numel = shape_numel(shape);
  entries_.push_back({std::move(name), std::move(shape), total_, numel, kind, 0, numel,
                      next_init_key_++});
  total_ += (numel + 15) / 16 * 16;  // keep every tensor 64-byte aligned
}

void ParamLayout::add_vocab_table(const std::string& name, const ModelDims& d) {
  if (!d.vocab_parallel()) {
    add(name, {d.vocab, d.d_model}, ParamKind::kEmbedding);
    return;
  }
  const VocabShard& s = d.vocab_shard;
  RECLM_CHECK(s.vocab == d.vocab, "vocabulary shard of {} ids for a vocabulary of {}", s.vocab,
              d.vocab);
  add(name + kReplicatedPiece, {s.n_replicated(), d.d_model}, ParamKind::kEmbedding);
  add(name + kItemsPiece, {s.n_own(), d.d_model}, ParamKind::kEmbedding);
  entries_.back().sharded_rows = true;
  entries_.back().init_key = --next_init_key_ - 1;  // one tensor: both pieces share its key
}

// Without LoRA everything trains. With it only the adapters do, plus (when configured) the
// embedding rows of the new tokens: those rows of the input embedding and of an untied head.
void ParamLayout::set_train_ranges(const ModelDims& d) {
  const int64_t first_new = std::clamp<int64_t>(d.first_new_token, 0, d.vocab);
  for (ParamEntry& e : entries_) {
    e.train_begin = 0;
    e.train_end = e.numel;
    if (!d.has_lora() || e.kind == ParamKind::kLora) continue;
    if (e.kind == ParamKind::kEmbedding && d.lora_train_embeddings) {
      e.train_begin = first_new * d.d_model;
    } else {
      e.train_end = 0;
    }
  }
}

int64_t ParamLayout::num_trainable() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += e.train_end - e.train_begin;
  return n;
}

bool ParamLayout::any_frozen() const {
  for (const auto& e : entries_) {
    if (e.train_begin != 0 || e.train_end != e.numel) return true;
  }
  return false;
}

const ParamEntry* ParamLayout::find_or_null(const std::string& name) const {
  for (const auto& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
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
