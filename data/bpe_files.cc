// BpeTokenizer's file formats: GPT-2 release files (encoder.json + vocab.bpe) and Hugging Face
// tokenizer.json, read into the entries BpeTokenizer::build checks, and written back out.
// Everything about merging, encoding and the vocabulary itself lives in bpe_tokenizer.cc.
#include "data/bpe_tokenizer.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/errors.h"

namespace reclm {
namespace {

using nlohmann::json;

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  RECLM_USER_CHECK(in.good(), "{}: cannot open ({})", path.string(), std::strerror(errno));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw_user_error("{}: not valid JSON: {}", path.string(), e.what());
  }
}

// Places `text` at `id`, refusing ids that are negative, huge or taken.
template <typename Token>
void place_token(std::vector<std::optional<Token>>& entries, const json& id_value, Token token,
                 const std::string& where) {
  RECLM_USER_CHECK(id_value.is_number_integer() && id_value.get<int64_t>() >= 0 &&
                       id_value.get<int64_t>() < (int64_t{1} << 24),
                   "{}: token '{}' has id {}, expected an integer in [0, 2^24)", where, token.text,
                   id_value.dump());
  const auto id = id_value.get<size_t>();
  if (id >= entries.size()) entries.resize(id + 1);
  RECLM_USER_CHECK(!entries[id].has_value(), "{}: id {} is used by both '{}' and '{}'", where, id,
                   entries[id]->text, token.text);
  entries[id] = std::move(token);
}

}  // namespace

BpeTokenizer BpeTokenizer::load_gpt2(const std::filesystem::path& encoder_json,
                                     const std::filesystem::path& vocab_bpe) {
  const std::string encoder_name = encoder_json.string(), merges_name = vocab_bpe.string();
  const json encoder = read_json(encoder_json);
  RECLM_USER_CHECK(encoder.is_object() && !encoder.empty(),
                   "{}: expected a JSON object mapping token strings to ids", encoder_name);
  std::vector<std::optional<Token>> entries;
  entries.reserve(encoder.size());
  for (const auto& [text, id] : encoder.items())
    place_token(entries, id, Token{text}, encoder_name);

  std::ifstream in(vocab_bpe, std::ios::binary);
  RECLM_USER_CHECK(in.good(), "{}: cannot open ({})", merges_name, std::strerror(errno));
  std::vector<BpeMerge> merges;
  std::vector<size_t> lines;  // line number of each merge, for errors
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (number == 1 && line.starts_with("#"))) continue;  // "#version: 0.2"
    const size_t space = line.find(' ');
    RECLM_USER_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                         line.find(' ', space + 1) == std::string::npos,
                     "{}:{}: expected a merge 'left right', got '{}'", merges_name, number, line);
    merges.push_back({line.substr(0, space), line.substr(space + 1)});
    lines.push_back(number);
  }
  RECLM_USER_CHECK(!in.bad(), "{}: read error", merges_name);
  return build(std::move(entries), merges, encoder_name,
               [&](size_t i) { return fmt::format("{}:{}", merges_name, lines[i]); });
}

BpeTokenizer BpeTokenizer::load_hf(const std::filesystem::path& tokenizer_json) {
  const std::string name = tokenizer_json.string();
  const json doc = read_json(tokenizer_json);
  try {
    return from_hf_json(doc, name);
  } catch (const json::exception& e) {  // a field of the wrong JSON type
    throw_user_error("{}: {}", name, e.what());
  }
}

BpeTokenizer BpeTokenizer::from_hf_json_text(std::string_view text, const std::string& name) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    throw_user_error("{}: not valid JSON: {}", name, e.what());
  }
  try {
    return from_hf_json(doc, name);
  } catch (const json::exception& e) {  // a field of the wrong JSON type
    throw_user_error("{}: {}", name, e.what());
  }
}

BpeTokenizer BpeTokenizer::from_hf_json(const nlohmann::json& doc, const std::string& name) {
  RECLM_USER_CHECK(doc.is_object() && doc.contains("model") && doc["model"].is_object(),
                   "{}: no \"model\" object (not a Hugging Face tokenizer.json)", name);
  const json& model = doc["model"];
  const auto string_or = [](const json& j, const char* key, const char* fallback) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>()
                                                 : std::string(fallback);
  };
  // Refuse what would silently give other ids than the file's own tokenizer: another model, a
  // normalizer, a pre-tokenizer other than GPT-2's ByteLevel, subword affixes.
  const std::string type = string_or(model, "type", "BPE");
  RECLM_USER_CHECK(type == "BPE", "{}: model.type is \"{}\"; reclm reads byte-level BPE only", name,
                   type);
  RECLM_USER_CHECK(!doc.contains("normalizer") || doc["normalizer"].is_null(),
                   "{}: normalizer {} is not supported (byte-level BPE has none)", name,
                   doc.value("normalizer", json()).dump());
  if (doc.contains("pre_tokenizer") && !doc["pre_tokenizer"].is_null()) {
    const json& pre = doc["pre_tokenizer"];
    RECLM_USER_CHECK(string_or(pre, "type", "") == "ByteLevel" &&
                         !pre.value("add_prefix_space", false) && pre.value("use_regex", true),
                     "{}: pre_tokenizer {} is not supported; reclm implements GPT-2's (ByteLevel, "
                     "add_prefix_space false, use_regex true)",
                     name, pre.dump());
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    RECLM_USER_CHECK(string_or(model, key, "").empty(), "{}: model.{} is not supported", name, key);
  RECLM_USER_CHECK(!model.value("ignore_merges", false), "{}: model.ignore_merges is not supported",
                   name);
  RECLM_USER_CHECK(model.contains("vocab") && model["vocab"].is_object(),
                   "{}: model.vocab must be an object mapping token strings to ids", name);
  RECLM_USER_CHECK(model.contains("merges") && model["merges"].is_array(),
                   "{}: model.merges must be an array", name);

  std::vector<std::optional<Token>> entries;
  entries.reserve(model["vocab"].size() + 64);
  for (const auto& [text, id] : model["vocab"].items())
    place_token(entries, id, Token{text}, name + ": model.vocab");
  std::unordered_map<std::string, size_t> vocab_ids;
  for (size_t id = 0; id < entries.size(); ++id)
    if (entries[id]) vocab_ids.emplace(entries[id]->text, id);
  if (doc.contains("added_tokens") && doc["added_tokens"].is_array()) {
    for (const json& added : doc["added_tokens"]) {
      RECLM_USER_CHECK(added.is_object() && added.contains("id") && added.contains("content") &&
                           added["content"].is_string(),
                       "{}: added_tokens entry {} needs \"id\" and \"content\"", name,
                       added.dump());
      Token token{added["content"].get<std::string>(), false, true, added.value("special", false)};
      const auto in_vocab = vocab_ids.find(token.text);
      if (in_vocab == vocab_ids.end()) {
        place_token(entries, added["id"], std::move(token), name + ": added_tokens");
        continue;
      }
      RECLM_USER_CHECK(added["id"] == json(in_vocab->second),
                       "{}: added token '{}' has id {} but model.vocab gives it {}", name,
                       token.text, added["id"].dump(), in_vocab->second);
      entries[in_vocab->second]->added = true;
      entries[in_vocab->second]->special = token.special;
    }
  }
  std::vector<BpeMerge> merges;
  merges.reserve(model["merges"].size());
  for (size_t i = 0; i < model["merges"].size(); ++i) {
    const json& m = model["merges"][i];
    if (m.is_string()) {
      const auto& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space != std::string::npos && space > 0 && space + 1 < s.size() &&
          s.find(' ', space + 1) == std::string::npos) {
        merges.push_back({s.substr(0, space), s.substr(space + 1)});
        continue;
      }
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back({m[0].get<std::string>(), m[1].get<std::string>()});
      continue;
    }
    throw_user_error("{}: model.merges[{}] is {}; expected \"left right\" or [\"left\", \"right\"]",
                     name, i, m.dump());
  }
  return build(std::move(entries), merges, name,
               [&](size_t i) { return fmt::format("{}: model.merges[{}]", name, i); });
}

BpeTokenizer BpeTokenizer::load_dir(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "tokenizer.json")) return load_hf(dir / "tokenizer.json");
  RECLM_USER_CHECK(std::filesystem::exists(dir / "encoder.json"),
                   "{}: no tokenizer.json or encoder.json + vocab.bpe", dir.string());
  return load_gpt2(dir / "encoder.json", dir / "vocab.bpe");
}

// Written by hand rather than as one nlohmann object: its objects are sorted maps, which would
// list the vocabulary by string instead of by id, and ordered_json inserts in O(n).
std::string BpeTokenizer::to_hf_json() const {
  const auto quote = [](const std::string& s) { return json(s).dump(); };
  std::string out = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": [";
  bool first = true;
  for (size_t id = 0; id < tokens_.size(); ++id) {
    if (!tokens_[id].added) continue;
    out += fmt::format(
        "{}\n    {{\"id\": {}, \"content\": {}, \"single_word\": false, \"lstrip\": false, "
        "\"rstrip\": false, \"normalized\": false, \"special\": {}}}",
        first ? "" : ",", id, quote(tokens_[id].text), tokens_[id].special);
    first = false;
  }
  out += "\n  ],\n  \"normalizer\": null,\n";
  out +=
      "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
      "\"trim_offsets\": true, \"use_regex\": true},\n";
  out += "  \"post_processor\": null,\n";
  out +=
      "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, "
      "\"trim_offsets\": true, \"use_regex\": true},\n";
  out +=
      "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
      "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
      "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"vocab\": {";
  first = true;
  for (size_t id = 0; id < tokens_.size(); ++id) {
    if (!tokens_[id].in_model) continue;
    out += fmt::format("{}\n      {}: {}", first ? "" : ",", quote(tokens_[id].text), id);
    first = false;
  }
  out += "\n    },\n    \"merges\": [";
  for (size_t i = 0; i < merge_order_.size(); ++i) {
    // Byte-level token strings never contain ' ' (it maps to 'Ġ'), so "left right" is unambiguous
    // and readable by every tokenizers version.
    const auto [left, right] = merge_order_[i];
    out += fmt::format("{}\n      {}", i ? "," : "",
                       quote(tokens_[left].text + " " + tokens_[right].text));
  }
  out += "\n    ]\n  }\n}\n";
  return out;
}

void BpeTokenizer::save_hf(const std::filesystem::path& tokenizer_json) const {
  const std::string out = to_hf_json();
  std::ofstream file(tokenizer_json, std::ios::binary | std::ios::trunc);
  RECLM_USER_CHECK(file.good(), "{}: cannot write ({})", tokenizer_json.string(),
                   std::strerror(errno));
  file << out;
  file.close();
  RECLM_USER_CHECK(file.good(), "{}: write failed", tokenizer_json.string());
}

}  // namespace reclm
