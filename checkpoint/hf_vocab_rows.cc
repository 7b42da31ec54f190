#include "checkpoint/hf_vocab_rows.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "runtime/errors.h"

namespace reclm {
namespace {

using nlohmann::json;

// Σ rows / n in double (a title of a few tokens, or 50k text rows, without float drift).
class RowMean {
 public:
  explicit RowMean(int64_t d_model) : sum_(static_cast<size_t>(d_model), 0.0) {}
  void add(const float* row) {
    for (size_t c = 0; c < sum_.size(); ++c) sum_[c] += row[c];
    ++count_;
  }
  int64_t count() const { return count_; }
  void write(float* row) const {
    for (size_t c = 0; c < sum_.size(); ++c)
      row[c] = static_cast<float>(sum_[c] / static_cast<double>(count_));
  }

 private:
  std::vector<double> sum_;
  int64_t count_ = 0;
};

void add_vocab_entry(HfVocabulary& vocab, const std::string& token, const json& id) {
  RECLM_USER_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0,
                   "{}: token '{}' has id {}, expected a non-negative integer", vocab.source, token,
                   id.dump());
  vocab.ids.emplace(token, id.get<int64_t>());  // model.vocab first: it wins over added_tokens
}

}  // namespace

HfVocabulary read_hf_vocabulary(const std::filesystem::path& tokenizer_json) {
  HfVocabulary vocab;
  vocab.source = tokenizer_json.string();
  std::ifstream in(tokenizer_json, std::ios::binary);
  RECLM_USER_CHECK(in.good(),
                   "{}: cannot open ({}); an hf: import with a dataset needs the model's tokenizer "
                   "to match the dataset's tokens to pretrained rows",
                   vocab.source, std::strerror(errno));
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::exception& e) {
    throw_user_error("{}: not valid JSON: {}", vocab.source, e.what());
  }
  RECLM_USER_CHECK(doc.is_object() && doc.contains("model") && doc["model"].is_object() &&
                       doc["model"].contains("vocab"),
                   "{}: no \"model\".\"vocab\" (not a Hugging Face tokenizer.json)", vocab.source);
  const json& model_vocab = doc["model"]["vocab"];
  if (model_vocab.is_object()) {
    for (const auto& [token, id] : model_vocab.items()) add_vocab_entry(vocab, token, id);
  } else if (model_vocab.is_array()) {  // Unigram: [[piece, score], ...], id = position
    for (size_t i = 0; i < model_vocab.size(); ++i) {
      const json& entry = model_vocab[i];
      RECLM_USER_CHECK(entry.is_array() && !entry.empty() && entry[0].is_string(),
                       "{}: model.vocab[{}] is {}, expected [piece, score]", vocab.source, i,
                       entry.dump());
      add_vocab_entry(vocab, entry[0].get<std::string>(), json(i));
    }
  } else {
    throw_user_error("{}: model.vocab must be an object or a list", vocab.source);
  }
  if (doc.contains("added_tokens") && doc["added_tokens"].is_array()) {
    for (const json& added : doc["added_tokens"]) {
      RECLM_USER_CHECK(added.is_object() && added.contains("id") && added.contains("content") &&
                           added["content"].is_string(),
                       "{}: added_tokens entry {} needs \"id\" and \"content\"", vocab.source,
                       added.dump());
      add_vocab_entry(vocab, added["content"].get<std::string>(), added["id"]);
    }
  }
  RECLM_USER_CHECK(!vocab.ids.empty(), "{}: the vocabulary is empty", vocab.source);
  return vocab;
}

VocabRowPlan plan_vocab_rows(const HfVocabulary& vocab, const BpeTokenizer& tokenizer,
                             const RecDataset& dataset, int64_t pretrained_rows,
                             const std::filesystem::path& model_dir) {
  const VocabLayout& layout = dataset.vocab;
  VocabRowPlan plan;
  plan.pretrained_row.assign(static_cast<size_t>(layout.vocab_size), -1);
  std::vector<std::string> missing_examples, out_of_range;
  for (int32_t t = 0; t < layout.vocab_size; ++t) {
    const std::string& text = tokenizer.token_text(t);
    const auto found = vocab.ids.find(text);
    if (found == vocab.ids.end()) {
      if (t < layout.text_size) {
        ++plan.missing_text;
        if (missing_examples.size() < 8) missing_examples.push_back("'" + text + "'");
      }
      continue;
    }
    if (found->second >= pretrained_rows) {
      out_of_range.push_back(fmt::format("'{}' (id {})", text, found->second));
      continue;
    }
    plan.pretrained_row[static_cast<size_t>(t)] = found->second;
    ++plan.copied;
  }
  RECLM_USER_CHECK(out_of_range.empty(),
                   "{}: {} tokens have ids beyond the {} rows of model.embed_tokens.weight, e.g. {}",
                   vocab.source, out_of_range.size(), pretrained_rows,
                   out_of_range.front());
  // 1%: a few tokens a model's tokenizer.json lacks are tolerable (they get the mean row); more
  // means the dataset's token ids belong to another tokenizer, and the text rows would be noise.
  RECLM_USER_CHECK(
      plan.missing_text * 100 <= layout.text_size,
      "{}: {} of the {} text tokens of dataset {} are not in this model's vocabulary (e.g. {}): "
      "the dataset was prepared with a different tokenizer. Prepare it with the model's "
      "tokenizer: `reclm prepare ... --tokenizer {}` (prepare.tokenizer), then train again",
      vocab.source, plan.missing_text, layout.text_size, dataset.source,
      fmt::join(missing_examples, ", "), model_dir.string());
  return plan;
}

VocabRowCounts fill_vocab_rows(const VocabRowPlan& plan, std::span<const float> pretrained,
                               int64_t d_model, const RecDataset& dataset,
                               const BpeTokenizer& tokenizer, float* ours) {
  const VocabLayout& layout = dataset.vocab;
  const auto row = [&](int32_t t) { return ours + static_cast<int64_t>(t) * d_model; };
  VocabRowCounts counts;
  RowMean text_mean(d_model);
  for (int32_t t = 0; t < layout.vocab_size; ++t) {
    const int64_t source = plan.pretrained_row[static_cast<size_t>(t)];
    if (source < 0) continue;
    RECLM_CHECK((source + 1) * d_model <= static_cast<int64_t>(pretrained.size()),
                "pretrained row {} beyond the matrix", source);
    std::copy_n(pretrained.data() + source * d_model, d_model, row(t));
    ++counts.copied;
    if (t < layout.text_size) text_mean.add(row(t));
  }
  RECLM_CHECK(text_mean.count() > 0, "no text row was copied (plan_vocab_rows allows this?)");
  const auto is_new = [&](int32_t t) { return plan.pretrained_row[static_cast<size_t>(t)] < 0; };
  const auto fill_text_mean = [&](int32_t t) {
    text_mean.write(row(t));
    ++counts.text_mean;
  };
  // Text tokens first: titles and names below may use them.
  for (int32_t t = 0; t < layout.text_size; ++t)
    if (is_new(t)) fill_text_mean(t);
  for (int32_t k = 0; k < layout.items.first - layout.special_first; ++k)
    if (is_new(layout.special_first + k)) fill_text_mean(layout.special_first + k);
  const auto fill_mean_of = [&](int32_t t, std::span<const int32_t> tokens, int64_t& counter) {
    if (tokens.empty()) return fill_text_mean(t);
    RowMean mean(d_model);
    for (const int32_t token : tokens) {
      RECLM_CHECK(token >= 0 && token < layout.text_size, "token {} outside the text range",
                  token);
      mean.add(row(token));
    }
    mean.write(row(t));
    ++counter;
  };
  for (int32_t item = 0; item < layout.items.count; ++item) {
    const int32_t t = layout.item_token(item);
    if (is_new(t)) fill_mean_of(t, dataset.items.title_of(item), counts.title_mean);
  }
  for (int32_t attr = 0; attr < layout.attributes.count; ++attr) {
    const int32_t t = layout.attribute_token(attr);
    if (!is_new(t)) continue;
    const std::vector<int32_t> name_tokens =
        attr < static_cast<int32_t>(dataset.items.attribute_names.size())
            ? tokenizer.encode(dataset.items.attribute_names[static_cast<size_t>(attr)])
            : std::vector<int32_t>{};
    fill_mean_of(t, name_tokens, counts.name_mean);
  }
  return counts;
}

}  // namespace reclm
