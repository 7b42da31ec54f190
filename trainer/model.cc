#include "trainer/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/errors.h"
#include "runtime/rng.h"

namespace reclm {

ModelTensors model_tensors(float* base, const ParamLayout& layout, const ModelDims& dims) {
  const auto at = [&](const std::string& name) { return base + layout.find(name).offset; };
  ModelTensors t{};
  const auto pieces = [&](const std::string& name) {
    return ShardedRows{at(name + kReplicatedPiece), at(name + kItemsPiece)};
  };
  if (dims.vocab_parallel()) {
    t.embed_rows = pieces("model.embed_tokens.weight");
    t.head_rows = dims.tied ? t.embed_rows : pieces("lm_head.weight");
  } else {
    t.embed = at("model.embed_tokens.weight");
  }
  for (int64_t l = 0; l < dims.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerTensors layer{};
    layer.input_norm = at(p + "input_layernorm.weight");
    layer.wq = at(p + "self_attn.q_proj.weight");
    layer.wk = at(p + "self_attn.k_proj.weight");
    layer.wv = at(p + "self_attn.v_proj.weight");
    layer.wo = at(p + "self_attn.o_proj.weight");
    layer.post_norm = at(p + "post_attention_layernorm.weight");
    layer.w_gate = at(p + "mlp.gate_proj.weight");
    layer.w_up = at(p + "mlp.up_proj.weight");
    layer.w_down = at(p + "mlp.down_proj.weight");
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const auto target = static_cast<LoraTarget>(t);
      if (!dims.lora_targets_has(target)) continue;
      const std::string module = lora_module_path(l, target);
      layer.lora_a[t] = at(module + ".lora_A.weight");
      layer.lora_b[t] = at(module + ".lora_B.weight");
    }
    t.layers.push_back(layer);
  }
  t.final_norm = at("model.norm.weight");
  t.lm_head = dims.tied || dims.vocab_parallel() ? t.embed : at("lm_head.weight");
  return t;
}

namespace {

// Hands out 64-byte-aligned float slices of one arena; a first pass with a null base counts.
class ArenaCarver {
 public:
  explicit ArenaCarver(float* base) : base_(base) {}
  float* take(int64_t n) {
    float* p = base_ == nullptr ? nullptr : base_ + used_;
    used_ += (n + 15) / 16 * 16;
    return p;
  }
  std::vector<float*> take_each(int64_t count, int64_t n) {
    std::vector<float*> v;
    for (int64_t i = 0; i < count; ++i) v.push_back(take(n));
    return v;
  }
  int64_t used() const { return used_; }

 private:
  float* base_;
  int64_t used_ = 0;
};

void carve_activations(Activations& a, const ModelDims& d, int64_t T, float* base) {
  ArenaCarver c(base);
  const int64_t L = d.n_layers, C = d.d_model, F = d.d_ff;
  a.residual = c.take_each(L + 1, T * C);
  a.residual_mid = c.take_each(L, T * C);
  a.norm1 = c.take_each(L, T * C);
  a.norm2 = c.take_each(L, T * C);
  a.rstd1 = c.take_each(L, T);
  a.rstd2 = c.take_each(L, T);
  a.q = c.take_each(L, T * d.q_dim());
  a.k = c.take_each(L, T * d.kv_dim());
  a.v = c.take_each(L, T * d.kv_dim());
  a.attn = c.take_each(L, T * d.q_dim());
  a.lse = c.take_each(L, d.n_heads * T);
  a.gate = c.take_each(L, T * F);
  a.up = c.take_each(L, T * F);
  a.act = c.take_each(L, T * F);
  a.final_normed = c.take(T * C);
  a.final_rstd = c.take(T);
  a.logits = c.take(a.head_chunk * d.vocab);
  a.losses = c.take(T);
  a.d_residual = c.take(T * C);
  a.d_normed = c.take(T * C);
  a.d_final = c.take(T * C);
  a.dq = c.take(T * d.q_dim());
  a.dk = c.take(T * d.kv_dim());
  a.dv = c.take(T * d.kv_dim());
  a.d_attn = c.take(T * d.q_dim());
  a.d_gate = c.take(T * F);
  a.d_up = c.take(T * F);
  a.d_act = c.take(T * F);
  a.lora_u.assign(L, {});
  if (d.has_lora()) {
    for (int64_t l = 0; l < L; ++l) {
      for (int t = 0; t < kNumLoraTargets; ++t) {
        if (d.lora_targets_has(static_cast<LoraTarget>(t))) a.lora_u[l][t] = c.take(T * d.lora_rank);
      }
    }
    a.d_lora_u = c.take(T * d.lora_rank);
  }
  if (base == nullptr) {
    a.arena = std::make_shared<Storage>(static_cast<size_t>(c.used()) * sizeof(float));
    carve_activations(a, d, T, static_cast<float*>(a.arena->data()));
  }
}

}  // namespace

Model::Model(const ModelDims& d, int64_t max_tokens) : dims(d), layout(d) {
  RECLM_CHECK(max_tokens > 0, "max_tokens {}", max_tokens);
  param_storage = std::make_shared<Storage>(layout.total_floats() * sizeof(float));
  grad_storage = std::make_shared<Storage>(layout.total_floats() * sizeof(float));
  params = model_tensors(param_data(), layout, dims);
  grads = model_tensors(grad_data(), layout, dims);
  acts.max_tokens = max_tokens;
  // Logits are computed for a chunk of tokens at a time: ~4M floats (16 MiB) at most, so a
  // 50k-token vocabulary never needs a [T, V] matrix.
  acts.head_chunk = std::max<int64_t>(1, std::min<int64_t>(max_tokens, (int64_t{1} << 22) / d.vocab));
  carve_activations(acts, dims, max_tokens, nullptr);
  acts.zero_positions.assign(max_tokens, 0);
  acts.loss_rows.reserve(max_tokens);  // no allocation inside a step
  acts.loss_targets.reserve(max_tokens);
  acts.loss_weights.reserve(max_tokens);
  if (!d.vocab_parallel()) {  // (vocabulary parallelism excludes LoRA: the head trains)
    head_trains = !layout.find(d.tied ? "model.embed_tokens.weight" : "lm_head.weight").frozen();
  }
}

namespace {

// p[j] = std · normal (first + j) of the tensor's stream (seed, kInit, key), j < n: the values
// drawing the stream in order gives, made in pieces on all threads (CounterRng::seek: normal i
// starts at draw 2·i). gpu_350m's 349M draws take seconds on one core.
void fill_normal(float* p, int64_t n, uint64_t seed, uint64_t key, double std, int64_t first = 0) {
  constexpr int64_t kPiece = int64_t{1} << 16;
#pragma omp parallel for schedule(static) if (n > kPiece)
  for (int64_t begin = 0; begin < n; begin += kPiece) {
    CounterRng rng(seed, RngPurpose::kInit, 0, 0, key);
    rng.seek(2 * static_cast<uint64_t>(first + begin));
    const int64_t end = std::min(n, begin + kPiece);
    for (int64_t j = begin; j < end; ++j) p[j] = static_cast<float>(rng.normal() * std);
  }
}

// A vocabulary-table piece (vocabulary parallelism): the rows it holds of the [V, C] tensor the
// unsharded layout would draw with the same key, so both start from the same weights.
void init_table_piece(const ParamEntry& e, const ModelDims& d, uint64_t seed, double std, float* p) {
  const VocabShard& s = d.vocab_shard;
  const int64_t C = d.d_model;
  std::vector<int64_t> ids;  // the full tensor's rows this piece keeps, in order
  for (int64_t id = 0; id < d.vocab; ++id) {
    if (e.sharded_rows ? s.owns(id) : !s.is_item(id)) ids.push_back(id);
  }
  const auto rows = static_cast<int64_t>(ids.size());
#pragma omp parallel for schedule(static) if (rows * C > (int64_t{1} << 16))
  for (int64_t row = 0; row < rows; ++row) fill_normal(p + row * C, C, seed, e.init_key, std, ids[row] * C);
}

}  // namespace

void init_weights(Model& model, uint64_t seed, float init_std) {
  const auto& entries = model.layout.entries();
  const double out_scale = 1.0 / std::sqrt(2.0 * static_cast<double>(model.dims.n_layers));
  for (const ParamEntry& e : entries) {
    float* p = model.param_data() + e.offset;
    if (e.kind == ParamKind::kNorm) {
      for (int64_t j = 0; j < e.numel; ++j) p[j] = 1.0f;
      continue;
    }
    if (e.kind == ParamKind::kLora) {
      const bool is_b = e.name.ends_with(".lora_B.weight");
      if (is_b) {
        for (int64_t j = 0; j < e.numel; ++j) p[j] = 0.0f;  // B = 0: the adapter starts as a no-op
        continue;
      }
      // A [r, in] as PEFT's default (Kaiming-uniform) has it in scale: std ~ 1/sqrt(in).
      fill_normal(p, e.numel, seed, e.init_key, 1.0 / std::sqrt(static_cast<double>(e.shape[1])));
      continue;
    }
    if (model.dims.vocab_parallel() && e.kind == ParamKind::kEmbedding) {
      init_table_piece(e, model.dims, seed, init_std, p);
      continue;
    }
    const bool output_proj = e.name.find("o_proj") != std::string::npos ||
                             e.name.find("down_proj") != std::string::npos;
    fill_normal(p, e.numel, seed, e.init_key, init_std * (output_proj ? out_scale : 1.0));
  }
}

void zero_grads(Model& model) {
  std::memset(model.grad_data(), 0, model.layout.total_floats() * sizeof(float));
}

}  // namespace reclm
