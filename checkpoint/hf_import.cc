// See hf_import.h. Two halves: config.json → the architecture fields (refusing what we would not
// compute identically), and safetensors → the parameter buffer (checking everything before
// writing anything, so a refused import leaves the model as it was).
#include "checkpoint/hf_import.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/hf_vocab_rows.h"
#include "checkpoint/hf_weight_files.h"
#include "data/item_vocab.h"
#include "runtime/errors.h"
#include "runtime/logging.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- config.json ---------------------------------------------------------------------------

// Typed access to config.json fields; each refusal names the file and the field.
class ConfigJson {
 public:
  explicit ConfigJson(const fs::path& path) : file_(path.string()) {
    std::ifstream in(path, std::ios::binary);
    RECLM_USER_CHECK(in.good(), "{}: cannot open ({}); an hf: directory needs its config.json",
                     file_, std::strerror(errno));
    try {
      doc_ = json::parse(in);
    } catch (const json::exception& e) {
      throw_user_error("{}: not valid JSON: {}", file_, e.what());
    }
    RECLM_USER_CHECK(doc_.is_object(), "{}: expected a JSON object", file_);
  }

  const std::string& file() const { return file_; }
  bool present(const char* key) const { return doc_.contains(key); }  // null included
  bool has(const char* key) const { return doc_.contains(key) && !doc_[key].is_null(); }
  const json& raw(const char* key) const { return doc_[key]; }

  // A positive integer that fits an int32 (our config fields are int32).
  int32_t positive_int(const char* key) const {
    RECLM_USER_CHECK(has(key), "{}: field {}: missing", file_, key);
    const json& v = doc_[key];
    RECLM_USER_CHECK(v.is_number_integer() && v.get<int64_t>() > 0 &&
                         v.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
                     "{}: field {}: {} is not a positive integer", file_, key, v.dump());
    return static_cast<int32_t>(v.get<int64_t>());
  }
  double number(const json& v, const std::string& key, double fallback) const {
    if (v.is_null()) return fallback;
    RECLM_USER_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 0,
                     "{}: field {}: {} is not a positive number", file_, key, v.dump());
    return v.get<double>();
  }
  double number(const char* key, double fallback) const {
    return number(has(key) ? doc_[key] : json(), key, fallback);
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    RECLM_USER_CHECK(doc_[key].is_boolean(), "{}: field {}: {} is not true or false", file_, key,
                     doc_[key].dump());
    return doc_[key].get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    RECLM_USER_CHECK(doc_[key].is_string(), "{}: field {}: {} is not a string", file_, key,
                     doc_[key].dump());
    return doc_[key].get<std::string>();
  }

 private:
  std::string file_;
  json doc_;
};

// Model families whose Hugging Face implementation is exactly our network. Mistral is Llama
// plus an optional sliding attention window; Qwen2 is refused because its q/k/v projections
// always carry biases (no config flag says so), which our layout has no place for.
void check_model_family(const ConfigJson& c, const config::ModelConfig& model) {
  const std::string type = c.string("model_type", "");
  RECLM_USER_CHECK(type != "qwen2" && type != "qwen2_moe",
                   "{}: field model_type: \"{}\" has biases on q_proj/k_proj/v_proj, which reclm's "
                   "Llama network does not compute; use a Llama or Mistral model",
                   c.file(), type);
  RECLM_USER_CHECK(type == "llama" || type == "mistral",
                   "{}: field model_type: \"{}\" is not supported; reclm imports Llama-architecture "
                   "models (model_type \"llama\" or \"mistral\")",
                   c.file(), type.empty() ? std::string("(missing)") : type);
  if (c.has("architectures")) {
    const json& archs = c.raw("architectures");
    RECLM_USER_CHECK(archs.is_array(), "{}: field architectures: expected a list", c.file());
    for (const json& a : archs) {
      RECLM_USER_CHECK(a == "LlamaForCausalLM" || a == "MistralForCausalLM",
                       "{}: field architectures: {} is not supported (LlamaForCausalLM or "
                       "MistralForCausalLM)",
                       c.file(), a.dump());
    }
  }
  if (type == "mistral") {
    // HF MistralConfig's default window is 4096; null means full attention. A window at least as
    // long as our longest sequence never masks anything, so the math is Llama's.
    const int64_t window = !c.present("sliding_window") ? 4096
                           : c.has("sliding_window")      ? c.positive_int("sliding_window")
                                                          : 0;
    RECLM_USER_CHECK(window == 0 || window >= model.max_seq_len(),
                     "{}: field sliding_window: {} is shorter than model.max_seq_len {}; reclm has "
                     "no sliding-window attention (lower model.max_seq_len to at most {})",
                     c.file(), window, model.max_seq_len(), window);
  }
}

// Everything besides the sizes that changes the function computed.
void check_same_math(const ConfigJson& c) {
  const std::string act = c.string("hidden_act", "silu");
  RECLM_USER_CHECK(act == "silu",
                   "{}: field hidden_act: \"{}\" is not supported; reclm's MLP is SwiGLU (silu)",
                   c.file(), act);
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    RECLM_USER_CHECK(!c.boolean(key, false),
                     "{}: field {}: true is not supported; reclm's projections have no biases",
                     c.file(), key);
  }
  RECLM_USER_CHECK(!c.has("rope_scaling"),
                   "{}: field rope_scaling: {} is not supported; reclm applies plain RoPE, so a "
                   "model trained with scaled RoPE would compute something else",
                   c.file(), c.has("rope_scaling") ? c.raw("rope_scaling").dump() : "");
  if (c.has("rope_parameters")) {  // transformers ≥ 5 spelling of rope_theta + rope_scaling
    const json& rope = c.raw("rope_parameters");
    const std::string type = rope.is_object() && rope.contains("rope_type") &&
                                     rope["rope_type"].is_string()
                                 ? rope["rope_type"].get<std::string>()
                                 : "default";
    RECLM_USER_CHECK(rope.is_object() && type == "default",
                     "{}: field rope_parameters: {} is not supported; reclm applies plain RoPE "
                     "(rope_type \"default\")",
                     c.file(), rope.dump());
  }
}

// ---- weights -------------------------------------------------------------------------------

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

bool readable_as_float(const std::string& dtype) {
  return dtype == "F32" || dtype == "BF16" || dtype == "F16" || dtype == "F64";
}

// Every reason the files cannot fill the model's base tensors, one line each. With `any_rows`,
// embedding matrices (embed_tokens, lm_head) may have any number of rows of the right width.
std::vector<std::string> weight_problems(const HfWeightFiles& files, const Model& model,
                                         bool any_rows) {
  std::vector<std::string> lines;
  for (const ParamEntry& entry : model.layout.entries()) {
    if (entry.kind == ParamKind::kLora) continue;
    if (!files.contains(entry.name)) {
      lines.push_back(fmt::format("{}: missing", entry.name));
      continue;
    }
    const SafetensorsFile& file = files.file(entry.name);
    const std::vector<int64_t>& shape = file.shape(entry.name);
    const bool rows_free = any_rows && entry.kind == ParamKind::kEmbedding;
    const bool fits = rows_free ? shape.size() == 2 && shape[0] > 0 && shape[1] == entry.shape[1]
                                : shape == entry.shape;
    if (!fits) {
      lines.push_back(fmt::format("{}: shape {} in the file, {} in the model", entry.name,
                                  shape_text(shape),
                                  rows_free ? fmt::format("[any, {}]", entry.shape[1])
                                            : shape_text(entry.shape)));
    }
    if (!readable_as_float(file.dtype(entry.name))) {
      lines.push_back(fmt::format("{}: dtype {}, expected F32, BF16 or F16", entry.name,
                                  file.dtype(entry.name)));
    }
  }
  if (any_rows && lines.empty() && !model.dims.tied) {
    const auto rows = [&](const char* name) { return files.file(name).shape(name)[0]; };
    if (rows("model.embed_tokens.weight") != rows("lm_head.weight")) {
      lines.push_back(fmt::format("lm_head.weight: {} rows, model.embed_tokens.weight {}",
                                  rows("lm_head.weight"), rows("model.embed_tokens.weight")));
    }
  }
  return lines;
}

std::span<float> param_span(const Model& model, const ParamEntry& entry) {
  return {model.param_data() + entry.offset, static_cast<size_t>(entry.numel)};
}

// The tensors of the files this import does not use, logged so a surprise is visible.
void log_ignored(const HfWeightFiles& files, const Model& model) {
  std::vector<std::string> ignored;
  for (const std::string& name : files.names()) {
    const ParamEntry* entry = model.layout.find_or_null(name);
    if (entry == nullptr || entry->kind == ParamKind::kLora) ignored.push_back(name);
  }
  if (ignored.empty()) return;
  const size_t shown = std::min<size_t>(ignored.size(), 8);
  log_info("hf import: ignoring {} tensor(s) of {} that the model does not use: {}{}{}",
           ignored.size(), files.description(),
           fmt::join(ignored.begin(), ignored.begin() + static_cast<std::ptrdiff_t>(shown), ", "),
           ignored.size() > shown ? ", ..." : "",
           model.dims.tied && files.contains("lm_head.weight")
               ? " (lm_head.weight: the model ties its head to the embedding)"
               : "");
}

}  // namespace

void apply_hf_architecture(const fs::path& dir, config::ModelConfig* model) {
  RECLM_CHECK(model != nullptr, "apply_hf_architecture: null model config");
  ConfigJson c(dir / "config.json");
  check_model_family(c, *model);
  check_same_math(c);

  const int32_t d_model = c.positive_int("hidden_size");
  const int32_t n_heads = c.positive_int("num_attention_heads");
  RECLM_USER_CHECK(d_model % n_heads == 0,
                   "{}: field hidden_size: {} is not divisible by num_attention_heads {}",
                   c.file(), d_model, n_heads);
  if (c.has("head_dim")) {
    const int32_t head_dim = c.positive_int("head_dim");
    RECLM_USER_CHECK(head_dim == d_model / n_heads,
                     "{}: field head_dim: {} differs from hidden_size / num_attention_heads = {}; "
                     "reclm's heads are hidden_size / num_attention_heads wide",
                     c.file(), head_dim, d_model / n_heads);
  }
  // Absent: LlamaConfig means plain multi-head attention, MistralConfig its default of 8.
  const int32_t n_kv_heads = c.has("num_key_value_heads") ? c.positive_int("num_key_value_heads")
                             : c.string("model_type", "") == "mistral" ? 8
                                                                       : n_heads;
  RECLM_USER_CHECK(n_heads % n_kv_heads == 0,
                   "{}: field num_key_value_heads: {} does not divide num_attention_heads {}",
                   c.file(), n_kv_heads, n_heads);
  const double rope_theta =
      c.has("rope_parameters") && c.raw("rope_parameters").contains("rope_theta")
          ? c.number(c.raw("rope_parameters")["rope_theta"], "rope_parameters.rope_theta", 10000)
          : c.number("rope_theta", 10000);
  const std::string positions = c.string("reclm_positions", "1d");
  RECLM_USER_CHECK(positions == "1d" || positions == "2d",
                   "{}: field reclm_positions: \"{}\", expected \"1d\" or \"2d\"", c.file(),
                   positions);

  model->set_d_model(d_model);
  model->set_n_layers(c.positive_int("num_hidden_layers"));
  model->set_n_heads(n_heads);
  model->set_n_kv_heads(n_kv_heads);
  model->set_d_ff(c.positive_int("intermediate_size"));
  model->set_rope_theta(static_cast<float>(rope_theta));
  model->set_norm_eps(static_cast<float>(c.number("rms_norm_eps", 1e-6)));  // LlamaConfig's
  model->set_tie_embeddings(c.boolean("tie_word_embeddings", false));
  model->set_positions(positions == "2d" ? config::ModelConfig::POSITIONS_2D
                                         : config::ModelConfig::POSITIONS_1D);
  const auto from = [&](const char* key) { return c.has(key) ? key : "default"; };
  log_info(
      "hf import: architecture from {}: d_model {} (hidden_size), n_layers {} "
      "(num_hidden_layers), n_heads {} (num_attention_heads), n_kv_heads {} ({}), d_ff {} "
      "(intermediate_size), rope_theta {} ({}), norm_eps {} ({}), tie_embeddings {} ({}), "
      "positions {}",
      c.file(), model->d_model(), model->n_layers(), model->n_heads(), model->n_kv_heads(),
      from("num_key_value_heads"), model->d_ff(), model->rope_theta(),
      c.has("rope_parameters") ? "rope_parameters" : from("rope_theta"), model->norm_eps(),
      from("rms_norm_eps"), model->tie_embeddings(), from("tie_word_embeddings"),
      positions == "2d" ? "2D (reclm_positions)" : "1D");
}

void import_hf_weights(const fs::path& dir, Model& model, const RecDataset* dataset) {
  const HfWeightFiles files = HfWeightFiles::open(dir);
  const std::vector<std::string> problems = weight_problems(files, model, dataset != nullptr);
  RECLM_USER_CHECK(problems.empty(),
                   "{}: the pretrained weights do not fit this model ({} problems):\n  {}",
                   files.description(), problems.size(), fmt::join(problems, "\n  "));

  // Without a dataset the embedding is copied like any tensor and must match exactly (checked
  // above); with one, rows are matched by token string. Plan first: its refusals (another
  // tokenizer) must come before anything is written.
  std::optional<BpeTokenizer> tokenizer;
  VocabRowPlan plan;
  if (dataset != nullptr) {
    RECLM_USER_CHECK(model.dims.vocab >= dataset->vocab.vocab_size,
                     "field model.vocab_size: {} is smaller than dataset {}'s vocabulary ({})",
                     model.dims.vocab, dataset->source, dataset->vocab.vocab_size);
    tokenizer = dataset_tokenizer(*dataset);
    const int64_t rows =
        files.file("model.embed_tokens.weight").shape("model.embed_tokens.weight")[0];
    plan = plan_vocab_rows(read_hf_vocabulary(dir / "tokenizer.json"), *tokenizer, *dataset,
                           rows, dir);
  }

  int64_t loaded = 0;
  std::map<std::string, int64_t> dtypes;  // stored dtype → tensors, for the summary
  VocabRowCounts counts;
  for (const ParamEntry& entry : model.layout.entries()) {
    if (entry.kind == ParamKind::kLora) continue;  // adapters start as initialised
    const SafetensorsFile& file = files.file(entry.name);
    ++dtypes[file.dtype(entry.name)];
    ++loaded;
    if (dataset == nullptr || entry.kind != ParamKind::kEmbedding) {
      file.read_f32_into(entry.name, param_span(model, entry));
      continue;
    }
    const std::vector<float> pretrained = file.read_f32(entry.name);
    counts = fill_vocab_rows(plan, pretrained, model.dims.d_model, *dataset, *tokenizer,
                             model.param_data() + entry.offset);
  }
  log_ignored(files, model);
  std::vector<std::string> dtype_text;
  for (const auto& [dtype, n] : dtypes) dtype_text.push_back(fmt::format("{} {}", n, dtype));
  log_info("hf import: {} tensors loaded from {} ({}){}", loaded, files.description(),
           fmt::join(dtype_text, ", "),
           model.dims.has_lora() ? "; LoRA adapters keep their initialisation" : "");
  if (dataset != nullptr) {
    log_info(
        "hf import: embedding rows of {}: {} copied by token string, {} items initialised as the "
        "mean of their title-token rows, {} attributes as the mean of their name-token rows, {} "
        "(specials, {} text tokens missing from the pretrained vocabulary, untitled items) as the "
        "mean of the text rows",
        dataset->source, counts.copied, counts.title_mean, counts.name_mean, counts.text_mean,
        plan.missing_text);
  }
}

}  // namespace reclm
