// Fixtures of the Hugging Face import tests: a small dataset with attributes and an untitled item,
// tiny model dims a config.json can describe, and a hand-made "pretrained" Llama directory
// (text-only vocabulary in a shuffled order, two safetensors shards + index) with knobs to break it.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/hf_import.h"
#include "checkpoint/safetensors.h"
#include "data/item_vocab.h"
#include "data/synthetic_rec.h"
#include "scratch_dir.h"
#include "trainer/tiny_dims.h"

namespace reclm::test {

namespace fs = std::filesystem;
using nlohmann::json;

// A catalog of 20 items with attributes, item 3 untitled, and a learned BPE of ~300 tokens.
inline RecDataset small_dataset() {
  SyntheticRecOptions options;
  options.n_users = 30;
  options.n_items = 20;
  options.n_categories = 4;
  options.min_history = 3;
  options.max_history = 6;
  RecDataset d = make_synthetic_dataset(options);
  d.items.titles[3].clear();
  VocabOptions vocab;
  vocab.learned_vocab_size = 300;
  build_item_vocabulary(d, vocab);
  return d;
}

// d_model 32 = 4 heads × 8, as a config.json can describe it (head_dim = hidden / heads; 2D
// positions need head_dim % 4 == 0).
inline ModelDims dims_for(int64_t vocab, bool tied, bool positions_2d = false) {
  return test::tiny_model_dims({.vocab = vocab,
                                .d_model = 32,
                                .n_heads = 4,
                                .n_kv_heads = 2,
                                .head_dim = 8,
                                .d_ff = 40,
                                .tied = tied,
                                .positions_2d = positions_2d});
}

// The dims a config.json gives, with the dataset's vocabulary as `reclm train` would set it.
inline ModelDims imported_dims(const fs::path& dir, int64_t vocab) {
  config::ModelConfig model;
  apply_hf_architecture(dir, &model);
  model.set_vocab_size(static_cast<int32_t>(vocab));
  return model_dims(model);
}

inline std::span<const float> tensor(const Model& m, const std::string& name) {
  const ParamEntry& e = m.layout.find(name);
  return {m.param_data() + e.offset, static_cast<size_t>(e.numel)};
}
inline std::span<const float> row(const Model& m, const std::string& name, int64_t r) {
  return tensor(m, name).subspan(static_cast<size_t>(r * m.dims.d_model),
                                 static_cast<size_t>(m.dims.d_model));
}

inline void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

class HfImport : public ScratchDirTest {};

// ---- a hand-made "pretrained" directory with a text-only vocabulary --------------------------

// What to break in the directory write_pretrained makes.
struct PretrainedSpec {
  std::set<std::string> drop_tensors = {};
  std::string flatten_tensor = {};  // written 1-D instead of its shape
  json config_patch = json::object();
  int drop_text_tokens = 0;         // text tokens of the dataset left out of tokenizer.json
  std::string shard_override = {};  // index.json points every tensor of shard 2 here
};

// A Llama directory whose vocabulary is the dataset's text tokens in a shuffled order plus two
// tokens of its own, weights in two shards (and a rotary inv_freq buffer, as old exports have).
// `source` holds the weights with the pretrained vocabulary order; `hf_id[t]` is the pretrained
// id of the dataset's text token t (-1 when dropped).
struct Pretrained {
  std::unique_ptr<Model> source;
  std::vector<int64_t> hf_id;
};

inline Pretrained write_pretrained(const fs::path& dir, const RecDataset& d,
                                   const PretrainedSpec& spec = {}) {
  fs::create_directories(dir);
  const BpeTokenizer tokenizer = dataset_tokenizer(d);
  const int32_t text = d.vocab.text_size;
  std::vector<int64_t> order(static_cast<size_t>(text) + 2);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(11));
  Pretrained p;
  p.hf_id.assign(static_cast<size_t>(text), -1);
  json vocab = json::object();
  for (int32_t t = spec.drop_text_tokens; t < text; ++t) {
    p.hf_id[static_cast<size_t>(t)] = order[static_cast<size_t>(t)];
    vocab[tokenizer.token_text(t)] = order[static_cast<size_t>(t)];
  }
  vocab["Ġzzzz"] = order[static_cast<size_t>(text)];
  const json tokenizer_json = {
      {"version", "1.0"},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
      {"added_tokens",
       {{{"id", order[static_cast<size_t>(text) + 1]}, {"content", "<s>"}, {"special", true}}}}};
  write_text(dir / "tokenizer.json", tokenizer_json.dump());

  json config = {{"architectures", {"LlamaForCausalLM"}},
                 {"model_type", "llama"},
                 {"hidden_size", 32},
                 {"intermediate_size", 40},
                 {"num_hidden_layers", 2},
                 {"num_attention_heads", 4},
                 {"num_key_value_heads", 2},
                 {"rms_norm_eps", 1e-5},
                 {"rope_theta", 10000.0},
                 {"hidden_act", "silu"},
                 {"rope_scaling", nullptr},
                 {"tie_word_embeddings", false},
                 {"vocab_size", text + 2}};
  config.merge_patch(spec.config_patch);
  write_text(dir / "config.json", config.dump(2));

  p.source = std::make_unique<Model>(dims_for(text + 2, /*tied=*/false), 8);
  init_weights(*p.source, 5, 0.3f);
  std::vector<SafetensorsEntry> shards[2];
  const auto& entries = p.source->layout.entries();
  for (size_t i = 0; i < entries.size(); ++i) {
    const ParamEntry& e = entries[i];
    if (spec.drop_tensors.contains(e.name)) continue;
    const std::vector<int64_t> shape =
        e.name == spec.flatten_tensor ? std::vector<int64_t>{e.numel} : e.shape;
    shards[i < entries.size() / 2 ? 0 : 1].push_back(
        {e.name, shape, p.source->param_data() + e.offset, DType::kF32});
  }
  static const float inv_freq[3] = {1.0f, 0.1f, 0.01f};
  shards[1].push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", {3}, inv_freq});
  json weight_map = json::object();
  for (int s = 0; s < 2; ++s) {
    const std::string name = fmt::format("model-0000{}-of-00002.safetensors", s + 1);
    write_safetensors(dir / name, shards[s], {{"format", "pt"}});
    for (const SafetensorsEntry& e : shards[s])
      weight_map[e.name] = s == 1 && !spec.shard_override.empty() ? spec.shard_override : name;
  }
  write_text(dir / "model.safetensors.index.json",
             json({{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}).dump(2));
  return p;
}
}  // namespace reclm::test
