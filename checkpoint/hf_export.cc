// See hf_export.h. The parameter layout already uses Hugging Face Llama names and shapes, so the
// weights are a copy; the work here is the metadata around them and the atomic directory swap.
#include "checkpoint/hf_export.h"

#include <fmt/format.h>
#include <stdlib.h>

#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "checkpoint/safetensors.h"
#include "data/item_vocab.h"
#include "runtime/errors.h"
#include "trainer/lora.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

// A float config value as the decimal a person wrote (1e-05, not 9.99999974737875e-06).
double shortest_decimal(float value) { return std::stod(fmt::format("{}", value)); }

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary);
  file << text;
  file.flush();
  RECLM_USER_CHECK(file.good(), "{}: cannot write", path.string());
}

// Tabs and newlines would break the TSV's columns; a title is display text, so spaces do.
std::string tsv_field(std::string text) {
  for (char& c : text)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return text;
}

std::string item_map_tsv(const RecDataset& dataset, const BpeTokenizer& tokenizer) {
  std::string out = "item_id\ttoken_id\ttoken\ttitle\n";
  for (int32_t item = 0; item < dataset.items.size(); ++item) {
    const int32_t token = dataset.vocab.item_token(item);
    const std::vector<int32_t> ids{token};
    const std::string title = item < static_cast<int32_t>(dataset.items.titles.size())
                                  ? dataset.items.titles[item]
                                  : std::string();
    out += fmt::format("{}\t{}\t{}\t{}\n", tsv_field(dataset.items.keys[item]), token,
                       tokenizer.decode(ids), tsv_field(title));
  }
  return out;
}

// The base model's tensors under their HF names: never an adapter tensor (a stock loader would
// not know it). `merged` (LoRA, merged export) holds the weights in the non-LoRA layout.
std::vector<SafetensorsEntry> weight_entries(const Model& model, const std::vector<float>* merged,
                                             DType dtype) {
  std::vector<SafetensorsEntry> entries;
  if (merged != nullptr) {
    const ParamLayout base(without_lora(model.dims));
    for (const ParamEntry& p : base.entries())
      entries.push_back({p.name, p.shape, merged->data() + p.offset, dtype});
    return entries;
  }
  for (const ParamEntry& p : model.layout.entries()) {
    if (p.kind == ParamKind::kLora) continue;
    entries.push_back({p.name, p.shape, model.param_data() + p.offset, dtype});
  }
  return entries;
}

// PEFT's key for an adapter tensor: the PeftModel wraps the LlamaForCausalLM as base_model.model.
std::vector<SafetensorsEntry> adapter_entries(const Model& model, DType dtype) {
  std::vector<SafetensorsEntry> entries;
  for (const ParamEntry& p : lora_adapter_entries(model))
    entries.push_back({"base_model.model." + p.name, p.shape, model.param_data() + p.offset, dtype});
  return entries;
}

// The 2D rotary rule of kernels/cpu/rope.cc, for readers of config.json.
std::string rope_2d_note(const ModelDims& dims) {
  const int64_t block = dims.head_dim / 2;
  return fmt::format(
      "Not standard Llama RoPE. Each head (head_dim {0}) is split into two rotary blocks of {1} "
      "dims: dims [0, {1}) rotate by the inter position (token/entity index), dims [{1}, {0}) by "
      "the intra position (index inside a blank-infilled span, 0 elsewhere). Within a block "
      "element i pairs with i + {2} (rotate_half inside the block) and rotates by "
      "pos * rope_theta^(-2i/{1}). Stock Llama loaders apply 1D RoPE over the whole head and "
      "will not reproduce this model.",
      dims.head_dim, block, block / 2);
}

// mkdtemp beside `out` (same filesystem, so the final rename is atomic).
fs::path make_temp_dir(const fs::path& out) {
  std::string pattern = out.string() + ".tmp-XXXXXX";
  RECLM_USER_CHECK(mkdtemp(pattern.data()) != nullptr, "{}: cannot create a directory beside it",
                   out.string());
  // mkdtemp makes it private (0700); an exported model is meant to be shared like any directory.
  fs::permissions(pattern, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
  return pattern;
}

void write_directory(const fs::path& dir, const Model& model, const RecDataset& dataset,
                     const Config& config, DType dtype, LoraExport lora) {
  const BpeTokenizer tokenizer = dataset_tokenizer(dataset);
  const VocabLayout& vocab = dataset.vocab;
  const nlohmann::json hf_config =
      hf_llama_config(model.dims, vocab, config.model().max_seq_len(), dtype);
  write_text(dir / "config.json", hf_config.dump(2) + "\n");
  const nlohmann::json generation = {{"_from_model_config", true},
                                     {"bos_token_id", vocab.bos()},
                                     {"eos_token_id", vocab.eos()},
                                     {"pad_token_id", vocab.pad()}};
  write_text(dir / "generation_config.json", generation.dump(2) + "\n");
  std::vector<float> merged;
  if (lora == LoraExport::kMerged) merged = merge_lora(model);
  write_safetensors(dir / "model.safetensors",
                    weight_entries(model, lora == LoraExport::kMerged ? &merged : nullptr, dtype),
                    {{"format", "pt"}, {"producer", "reclm export"}});
  if (lora == LoraExport::kPeft) {
    fs::create_directory(dir / "adapter");
    write_text(dir / "adapter" / "adapter_config.json",
               peft_adapter_config(model.dims).dump(2) + "\n");
    write_safetensors(dir / "adapter" / "adapter_model.safetensors", adapter_entries(model, dtype),
                      {{"format", "pt"}, {"producer", "reclm export"}});
  }
  tokenizer.save_hf(dir / "tokenizer.json");
  write_text(dir / "item_map.tsv", item_map_tsv(dataset, tokenizer));
  write_text(dir / "reclm_config.pbtxt", config_to_text(config));
}

}  // namespace

nlohmann::json hf_llama_config(const ModelDims& dims, const VocabLayout& vocab, int64_t max_seq_len,
                               DType dtype) {
  RECLM_CHECK(dtype == DType::kF32 || dtype == DType::kBF16, "export dtype {}", dtype_name(dtype));
  nlohmann::json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", dims.vocab},
      {"hidden_size", dims.d_model},
      {"intermediate_size", dims.d_ff},
      {"num_hidden_layers", dims.n_layers},
      {"num_attention_heads", dims.n_heads},
      {"num_key_value_heads", dims.n_kv_heads},
      {"head_dim", dims.head_dim},
      {"max_position_embeddings", max_seq_len},
      {"rms_norm_eps", shortest_decimal(dims.norm_eps)},
      {"rope_theta", shortest_decimal(dims.rope_theta)},
      {"tie_word_embeddings", dims.tied},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"torch_dtype", dtype == DType::kF32 ? "float32" : "bfloat16"},
      {"bos_token_id", vocab.bos()},
      {"eos_token_id", vocab.eos()},
      {"pad_token_id", vocab.pad()},
      {"use_cache", true},
  };
  if (dims.positions_2d) {
    j["reclm_positions"] = "2d";
    j["reclm_rope_2d"] = rope_2d_note(dims);
  }
  return j;
}

nlohmann::json peft_adapter_config(const ModelDims& dims) {
  RECLM_CHECK(dims.has_lora(), "peft_adapter_config: the model has no LoRA adapters");
  nlohmann::json targets = nlohmann::json::array();
  for (int t = 0; t < kNumLoraTargets; ++t) {
    const auto target = static_cast<LoraTarget>(t);
    if (dims.lora_targets_has(target)) targets.push_back(lora_target_name(target));
  }
  return {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", ".."},
      {"r", dims.lora_rank},
      {"lora_alpha", shortest_decimal(dims.lora_alpha)},
      {"lora_dropout", 0.0},
      {"target_modules", targets},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"use_rslora", false},
      {"modules_to_save", nullptr},
  };
}

void export_hf(const fs::path& out_dir, const Model& model, const RecDataset& dataset,
               const Config& config, const HfExportOptions& options) {
  LoraExport lora = options.lora;
  if (lora == LoraExport::kAuto) {
    lora = model.dims.has_lora() ? LoraExport::kMerged : LoraExport::kAuto;
  } else {
    RECLM_USER_CHECK(model.dims.has_lora(),
                     "--lora: the run has no LoRA adapters (model.lora.rank is 0); export it "
                     "without --lora");
  }
  RECLM_CHECK(model.dims.vocab >= dataset.vocab.vocab_size,
              "model vocabulary {} smaller than the dataset's {}", model.dims.vocab,
              dataset.vocab.vocab_size);
  // "out/" names the directory "out": drop the empty last component before adding ".tmp-…".
  const fs::path out = out_dir.has_filename() ? out_dir : out_dir.parent_path();
  RECLM_USER_CHECK(!out.empty(), "--out: empty path");
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  if (exists) {
    RECLM_USER_CHECK(fs::is_directory(out, ec), "{}: exists and is not a directory", out.string());
    RECLM_USER_CHECK(options.force || fs::is_empty(out, ec),
                     "{}: directory is not empty (use --force to replace it)", out.string());
  }
  if (out.has_parent_path()) {
    fs::create_directories(out.parent_path(), ec);
    RECLM_USER_CHECK(!ec, "{}: cannot create: {}", out.parent_path().string(), ec.message());
  }
  const fs::path tmp = make_temp_dir(out);
  try {
    write_directory(tmp, model, dataset, config, options.dtype, lora);
    if (exists) fs::remove_all(out);
    fs::rename(tmp, out);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw UserError(fmt::format("{}: {}", out.string(), e.what()));
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace reclm
