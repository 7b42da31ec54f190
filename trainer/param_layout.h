// The named layout of the one contiguous parameter buffer (DESIGN.md §5). Gradients, AdamW
// moments and (later) checkpoints and all-reduce buckets walk this same layout. Names are the
// Hugging Face Llama names, so export is a copy, not a translation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace reclm {

enum class ParamKind { kMatrix, kNorm, kEmbedding };

struct ParamEntry {
  std::string name;             // e.g. "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;   // HF shape, e.g. [out_features, in_features]
  int64_t offset;               // in floats from the start of the buffer (64-byte aligned)
  int64_t numel;
  ParamKind kind;
};

// Sizes derived from a resolved ModelConfig.
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

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
};
ModelDims model_dims(const config::ModelConfig& model);

class ParamLayout {
 public:
  explicit ParamLayout(const ModelDims& dims);

  const std::vector<ParamEntry>& entries() const { return entries_; }
  int64_t total_floats() const { return total_; }   // buffer size including alignment padding
  int64_t num_parameters() const;                    // trainable values, no padding
  const ParamEntry& find(const std::string& name) const;  // InternalError if absent

 private:
  void add(std::string name, std::vector<int64_t> shape, ParamKind kind);
  std::vector<ParamEntry> entries_;
  int64_t total_ = 0;
};

}  // namespace reclm
