// The named layout of the one contiguous parameter buffer (DESIGN.md §5). Gradients, AdamW
// moments and (later) checkpoints and all-reduce buckets walk this same layout. Names are the
// Hugging Face Llama names, so export is a copy, not a translation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/config.h"
#include "trainer/vocab_shard.h"

namespace reclm {

// kLora: a LoRA adapter matrix (lora_A [r, in] or lora_B [out, r]); decays like kMatrix.
enum class ParamKind { kMatrix, kNorm, kEmbedding, kLora };

struct ParamEntry {
  std::string name;             // e.g. "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;   // HF shape, e.g. [out_features, in_features]
  int64_t offset;               // in floats from the start of the buffer (64-byte aligned)
  int64_t numel;
  ParamKind kind;
  // The floats of this tensor the optimizer updates: [train_begin, train_end) within it.
  // [0, numel) without LoRA; under LoRA the base weights are frozen ([0, 0)) and embeddings
  // train only their new-token rows (ParamLayout's constructor says which).
  int64_t train_begin = 0;
  int64_t train_end = 0;
  // The tensor's index in the layout without vocabulary parallelism (keys its random init, so
  // a sharded model starts from exactly the unsharded weights).
  int init_key = 0;
  // Vocabulary parallelism splits the embedding (and an untied head) into two entries:
  // "<name>@replicated" [V − n_items, C] (rows outside the item block) and "<name>@items"
  // [n_own, C] (this rank's item rows; sharded_rows). A sharded entry's gradient is complete for
  // the job (never all-reduced) and its squared norm is summed over the ranks.
  bool sharded_rows = false;
  bool frozen() const { return train_end <= train_begin; }
};
inline constexpr const char* kReplicatedPiece = "@replicated";
inline constexpr const char* kItemsPiece = "@items";

// The projections LoRA can adapt, in the order of ModelDims::lora_targets' bits.
enum class LoraTarget { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLoraTargets = 7;
inline constexpr uint32_t kAllLoraTargets = (1u << kNumLoraTargets) - 1;
// Hugging Face module name: "q_proj", ..., "down_proj".
const char* lora_target_name(LoraTarget target);
// "model.layers.{layer}.self_attn.q_proj" / "model.layers.{layer}.mlp.gate_proj" (no ".weight").
std::string lora_module_path(int64_t layer, LoraTarget target);
// Bit mask of model.lora.targets names (empty = all seven). Unknown names: InternalError
// (validate_config rejects them first).
uint32_t lora_target_mask(const std::vector<std::string>& names);

// Sizes derived from a resolved ModelConfig (LoRA fields included; first_new_token stays 0).
struct ModelDims {
  int64_t vocab;
  int64_t d_model;    // C
  int64_t n_layers;   // L
  int64_t n_heads;    // NH
  int64_t n_kv_heads; // NKV
  int64_t head_dim;   // HD = C / NH
  int64_t d_ff;       // F
  bool tied;
  bool positions_2d;
  float rope_theta;
  float norm_eps;
  // LoRA (model.lora): rank 0 = off, every weight trains. With rank > 0 each targeted projection
  // gets adapters A [r, in], B [out, r] and the base weights freeze.
  int64_t lora_rank = 0;
  float lora_alpha = 16.0f;
  uint32_t lora_targets = 0;         // bit (1 << LoraTarget) per adapted projection
  bool lora_train_embeddings = true; // embedding rows >= first_new_token train under LoRA
  // Embedding rows >= this are tokens a pretrained model never saw (items, attributes,
  // specials); set from the dataset by the train loop. 0 = every row counts as new.
  int64_t first_new_token = 0;
  // Vocabulary parallelism (runtime.vocab_parallel, trainer/vocab_parallel.h): the item rows this
  // rank holds; no item block (the default) = off, every rank holds every row.
  VocabShard vocab_shard{};
  bool vocab_parallel() const { return vocab_shard.n_items() > 0; }

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  bool has_lora() const { return lora_rank > 0; }
  bool lora_targets_has(LoraTarget t) const {
    return has_lora() && (lora_targets >> static_cast<int>(t) & 1u) != 0;
  }
  float lora_scale() const { return lora_alpha / static_cast<float>(lora_rank); }
  // A projection's weight shape [out, in].
  int64_t proj_in(LoraTarget t) const;
  int64_t proj_out(LoraTarget t) const;
};
ModelDims model_dims(const config::ModelConfig& model);

// The layout: base entries first (embed, layers, final norm, untied head) in an order that does
// not depend on LoRA, so base offsets and init draws are those of the non-LoRA layout; then, with
// LoRA, per layer and targeted projection "<module>.lora_A.weight" [r, in] and
// "<module>.lora_B.weight" [out, r] (PEFT's names without the "base_model.model." prefix).
class ParamLayout {
 public:
  explicit ParamLayout(const ModelDims& dims);

  const std::vector<ParamEntry>& entries() const { return entries_; }
  int64_t total_floats() const { return total_; }   // buffer size including alignment padding
  int64_t num_parameters() const;                    // values (frozen included), no padding
  int64_t num_trainable() const;                     // values the optimizer updates
  const ParamEntry& find(const std::string& name) const;  // InternalError if absent
  const ParamEntry* find_or_null(const std::string& name) const;
  // True when some value of the buffer does not train (a LoRA layout).
  bool any_frozen() const;

 private:
  void add(std::string name, std::vector<int64_t> shape, ParamKind kind);
  // A vocabulary table [V, C]: one entry, or its two pieces under vocabulary parallelism.
  void add_vocab_table(const std::string& name, const ModelDims& d);
  int next_init_key_ = 0;
  void set_train_ranges(const ModelDims& dims);
  std::vector<ParamEntry> entries_;
  int64_t total_ = 0;
};

}  // namespace reclm
