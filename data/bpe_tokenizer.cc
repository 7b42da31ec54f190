#include "data/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "data/byte_tokenizer.h"
#include "runtime/errors.h"

namespace reclm {
namespace {

using nlohmann::json;

std::string utf8_encode(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// GPT-2 bytes_to_unicode: bytes that print ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves,
// the rest become U+0100 + n in byte order, so no token string holds a space or control char.
struct ByteSymbols {
  std::string symbol[256];
  int16_t byte_of[0x144];  // code point -> byte, -1 where no byte maps to it
  ByteSymbols() {
    std::fill(std::begin(byte_of), std::end(byte_of), int16_t{-1});
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool prints = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = prints ? b : 256 + n++;
      symbol[b] = utf8_encode(cp);
      byte_of[cp] = static_cast<int16_t>(b);
    }
  }
};
const ByteSymbols& byte_symbols() {
  static const ByteSymbols symbols;
  return symbols;
}

// Inverse of the byte mapping for one token string (valid UTF-8: it came from JSON or from
// byte symbols). Characters outside the mapping (possible in added tokens) are kept as UTF-8.
std::string symbols_to_bytes(std::string_view text) {
  const ByteSymbols& bs = byte_symbols();
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < len && i + k < text.size(); ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    if (cp < 0x144 && bs.byte_of[cp] >= 0) {
      out.push_back(static_cast<char>(bs.byte_of[cp]));
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

// GPT-2's pattern with Python-regex `\s` (Unicode White_Space) spelled out; see the header.
constexpr std::string_view kWhiteSpace = R"(\t\n\x0B\f\r\x{85}\p{Z})";

struct Gpt2Regex {
  pcre2_code* code = nullptr;
  bool jit = false;
  Gpt2Regex() {
    const std::string ws(kWhiteSpace);
    const std::string pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + ws +
                                "\\p{L}\\p{N}]+|[" + ws + "]+(?![^" + ws + "])|[" + ws + "]+";
    int error = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                         PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    RECLM_CHECK(code != nullptr, "GPT-2 regex does not compile (PCRE2 error {} at {})", error,
                offset);
    jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // falls back to the interpreter
  }
  ~Gpt2Regex() { pcre2_code_free(code); }
};
const Gpt2Regex& gpt2_regex() {
  static const Gpt2Regex regex;
  return regex;
}

// Match data is per thread so concurrent encodes share the compiled pattern only.
struct MatchData {
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(gpt2_regex().code, nullptr);
  ~MatchData() { pcre2_match_data_free(data); }
};

// Calls emit(piece) for consecutive pieces covering text: regex matches, and the runs of invalid
// UTF-8 between them (which the regex skips under PCRE2_MATCH_INVALID_UTF).
template <typename Emit>
void for_each_pretoken(std::string_view text, Emit&& emit) {
  const Gpt2Regex& regex = gpt2_regex();
  thread_local MatchData match;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t covered = 0;
  while (covered < text.size()) {
    int rc = PCRE2_ERROR_JIT_STACKLIMIT;
    if (regex.jit)
      rc = pcre2_jit_match(regex.code, subject, text.size(), covered, 0, match.data, nullptr);
    // The interpreter without JIT, or should the JIT's 32 KiB stack ever run out (not seen even
    // on 5 MB runs; the interpreter backtracks on the heap).
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc =
          pcre2_match(regex.code, subject, text.size(), covered, PCRE2_NO_JIT, match.data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    RECLM_CHECK(rc > 0, "PCRE2 match failed with error {}", rc);
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.data);
    const size_t start = ovector[0], end = ovector[1];
    RECLM_CHECK(end > start && start >= covered, "empty pre-token at byte {}", start);
    if (start > covered) emit(text.substr(covered, start - covered));
    emit(text.substr(start, end - start));
    covered = end;
  }
  if (covered < text.size()) emit(text.substr(covered));
}

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  RECLM_USER_CHECK(in.good(), "{}: cannot open ({})", path.string(), std::strerror(errno));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw_user_error("{}: not valid JSON: {}", path.string(), e.what());
  }
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

std::string item_token_name(int64_t item) { return fmt::format("<item_{}>", item); }

namespace {

std::string attribute_token_name(int64_t attr) { return fmt::format("<attr_{}>", attr); }

// The run of tokens name(0), name(1), … at consecutive ids, as a tokenizer reclm exported carries
// them; {0, 0} when name(0) is absent.
TokenRange find_token_run(const BpeTokenizer& t, std::string (*name)(int64_t)) {
  const auto first = t.find_token(name(0));
  if (!first) return {};
  TokenRange run{*first, 1};
  for (;;) {
    const auto next = t.find_token(name(run.count));
    if (!next || *next != *first + run.count) return run;
    ++run.count;
  }
}

}  // namespace

const std::string& byte_symbol(uint8_t b) { return byte_symbols().symbol[b]; }

std::vector<std::string_view> gpt2_pretokenize(std::string_view text) {
  std::vector<std::string_view> pieces;
  for_each_pretoken(text, [&](std::string_view piece) { pieces.push_back(piece); });
  return pieces;
}

// ---- construction -----------------------------------------------------------------------------

struct BpeTokenizer::WordCache {
  static constexpr size_t kMaxCachedWords = 1 << 17;
  static constexpr size_t kMaxCachedWordBytes = 128;  // long runs are rare; keep them out
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
};

BpeTokenizer::BpeTokenizer() : cache_(std::make_unique<WordCache>()) {}
BpeTokenizer::~BpeTokenizer() = default;
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;
BpeTokenizer::BpeTokenizer(const BpeTokenizer& other)
    : tokens_(other.tokens_),
      index_(other.index_),
      merge_slots_(other.merge_slots_),
      merge_order_(other.merge_order_),
      items_(other.items_),
      attributes_(other.attributes_),
      cache_(std::make_unique<WordCache>()) {
  std::copy(std::begin(other.byte_ids_), std::end(other.byte_ids_), byte_ids_);
}
BpeTokenizer& BpeTokenizer::operator=(const BpeTokenizer& other) {
  if (this != &other) *this = BpeTokenizer(other);
  return *this;
}

BpeTokenizer BpeTokenizer::build(std::vector<std::optional<Token>> entries,
                                 const std::vector<BpeMerge>& merges, const std::string& source,
                                 const std::function<std::string(size_t)>& where) {
  BpeTokenizer t;
  t.tokens_.reserve(entries.size() + std::size(kSpecialTokens));
  t.index_.reserve(entries.size() + std::size(kSpecialTokens));
  for (size_t id = 0; id < entries.size(); ++id) {
    RECLM_USER_CHECK(entries[id].has_value(), "{}: no token has id {} (ids must run 0..{})", source,
                     id, entries.size() - 1);
    Token token = std::move(*entries[id]);
    token.bytes = token.added ? token.text : symbols_to_bytes(token.text);
    const auto [it, inserted] = t.index_.emplace(token.text, static_cast<int32_t>(id));
    RECLM_USER_CHECK(inserted, "{}: token '{}' has two ids, {} and {}", source, token.text,
                     it->second, id);
    t.tokens_.push_back(std::move(token));
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = t.index_.find(byte_symbol(static_cast<uint8_t>(b)));
    RECLM_USER_CHECK(it != t.index_.end(),
                     "{}: not a byte-level BPE vocabulary: no token for byte 0x{:02X} ('{}')",
                     source, b, byte_symbol(static_cast<uint8_t>(b)));
    t.byte_ids_[b] = it->second;
  }

  t.merge_slots_.resize(std::bit_ceil(std::max<size_t>(16, 2 * merges.size())));
  t.merge_order_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const BpeMerge& m = merges[i];
    const std::string parts[3] = {m.left, m.right, m.left + m.right};
    int32_t ids[3];
    for (int k = 0; k < 3; ++k) {
      const auto it = t.index_.find(parts[k]);
      RECLM_USER_CHECK(it != t.index_.end() && t.tokens_[it->second].in_model,
                       "{}: merge '{} {}': token '{}' is not in the vocabulary", where(i), m.left,
                       m.right, parts[k]);
      ids[k] = it->second;
    }
    // A repeated merge keeps its first (lowest) rank, as a rank-ordered search would.
    if (t.insert_merge(ids[0], ids[1], ids[2])) t.merge_order_.emplace_back(ids[0], ids[1]);
  }

  for (std::string_view name : kSpecialTokens) {
    const auto it = t.index_.find(name);
    if (it == t.index_.end()) {
      t.append_added_token(std::string(name), /*special=*/true);
    } else {  // already there (a tokenizer reclm saved): decode it by name from now on
      Token& token = t.tokens_[it->second];
      token.added = token.special = true;
      token.bytes = token.text;
    }
  }
  t.items_ = find_token_run(t, item_token_name);
  t.attributes_ = find_token_run(t, attribute_token_name);
  return t;
}

static size_t merge_slot_index(uint64_t key, size_t n_slots) {
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & (n_slots - 1);
}

// Returns false for a pair already present. Rank = insertion order.
bool BpeTokenizer::insert_merge(int32_t left, int32_t right, int32_t merged) {
  const uint64_t key = pair_key(left, right);
  const size_t mask = merge_slots_.size() - 1;
  for (size_t i = merge_slot_index(key, merge_slots_.size());; i = (i + 1) & mask) {
    if (merge_slots_[i].key == key) return false;
    if (merge_slots_[i].key == MergeSlot{}.key) {
      merge_slots_[i] = {key, static_cast<int32_t>(merge_order_.size()), merged};
      return true;
    }
  }
}

const BpeTokenizer::MergeSlot* BpeTokenizer::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  const size_t mask = merge_slots_.size() - 1;
  for (size_t i = merge_slot_index(key, merge_slots_.size());; i = (i + 1) & mask) {
    if (merge_slots_[i].key == key) return &merge_slots_[i];
    if (merge_slots_[i].key == MergeSlot{}.key) return nullptr;
  }
}

BpeTokenizer BpeTokenizer::from_vocab(std::vector<std::string> tokens,
                                      const std::vector<BpeMerge>& merges,
                                      const std::string& source) {
  std::vector<std::optional<Token>> entries(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) entries[id] = Token{std::move(tokens[id])};
  return build(std::move(entries), merges, source,
               [&](size_t i) { return fmt::format("{}: merge {}", source, i); });
}

int32_t BpeTokenizer::append_added_token(std::string text, bool special) {
  const auto id = static_cast<int32_t>(tokens_.size());
  const auto [it, inserted] = index_.emplace(text, id);
  RECLM_USER_CHECK(inserted, "token '{}' is already in the vocabulary (id {})", text, it->second);
  tokens_.push_back(Token{text, false, true, special, text});
  return id;
}

TokenRange BpeTokenizer::add_item_tokens(int32_t n_items) {
  RECLM_CHECK(n_items >= 0, "negative item count {}", n_items);
  if (items_.count == n_items) return items_;
  RECLM_USER_CHECK(items_.count == 0,
                   "the tokenizer already has {} item tokens but the catalog has {} items",
                   items_.count, n_items);
  items_.first = vocab_size();
  for (int32_t i = 0; i < n_items; ++i) append_added_token(item_token_name(i), /*special=*/false);
  items_.count = n_items;
  return items_;
}

TokenRange BpeTokenizer::add_attribute_tokens(int32_t n_attributes) {
  RECLM_CHECK(n_attributes >= 0, "negative attribute count {}", n_attributes);
  if (attributes_.count == n_attributes) return attributes_;
  RECLM_USER_CHECK(
      attributes_.count == 0,
      "the tokenizer already has {} attribute tokens but the catalog has {} attributes",
      attributes_.count, n_attributes);
  attributes_.first = vocab_size();
  for (int32_t i = 0; i < n_attributes; ++i)
    append_added_token(attribute_token_name(i), /*special=*/false);
  attributes_.count = n_attributes;
  return attributes_;
}

std::optional<int32_t> BpeTokenizer::find_token(std::string_view token) const {
  const auto it = index_.find(token);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

int32_t BpeTokenizer::token_id(std::string_view token) const {
  const auto id = find_token(token);
  RECLM_CHECK(id.has_value(), "token '{}' is not in the vocabulary", token);
  return *id;
}

const std::string& BpeTokenizer::token_text(int32_t id) const {
  RECLM_CHECK(id >= 0 && id < vocab_size(), "token id {} outside the vocabulary of {}", id,
              vocab_size());
  return tokens_[id].text;
}

// ---- encode / decode --------------------------------------------------------------------------

// Merges one pre-token's byte symbols, lowest rank first and leftmost first among equal ranks
// (what GPT-2's repeated "merge every occurrence of the best pair" computes): symbols form a
// linked list, candidate pairs sit in a min-heap and are checked when popped, O(n log n) even
// for long runs such as a megabyte of spaces.
void BpeTokenizer::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_ids_[static_cast<uint8_t>(word[0])]);
    return;
  }
  const bool cacheable = word.size() <= WordCache::kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_->mutex);
    const auto it = cache_->words.find(word);
    if (it != cache_->words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }

  struct Symbol {
    int32_t id, prev, next;  // prev/next: neighbour index or -1; id -1 once merged away
  };
  struct Candidate {
    int32_t rank, pos;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  // Scratch reused across words: a cache miss then costs no allocation.
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;  // min-heap via std::push_heap/pop_heap
  const auto n = static_cast<int32_t>(word.size());
  symbols.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i)
    symbols[i] = {byte_ids_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
  const auto push_pair = [&](int32_t pos) {
    if (pos < 0 || symbols[pos].next < 0) return;
    const MergeSlot* merge = find_merge(symbols[pos].id, symbols[symbols[pos].next].id);
    if (merge == nullptr) return;
    heap.push_back({merge->rank, pos});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = symbols[c.pos];
    if (left.id < 0 || left.next < 0) continue;
    const MergeSlot* merge = find_merge(left.id, symbols[left.next].id);
    if (merge == nullptr || merge->rank != c.rank) continue;  // stale candidate
    Symbol& right = symbols[left.next];
    left.id = merge->merged;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.pos;
    push_pair(left.prev);
    push_pair(c.pos);
  }
  const size_t begin = out.size();
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);

  if (cacheable) {
    std::lock_guard lock(cache_->mutex);
    if (cache_->words.size() >= WordCache::kMaxCachedWords) cache_->words.clear();
    cache_->words.emplace(std::string(word), std::vector<int32_t>(out.begin() + begin, out.end()));
  }
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  for_each_pretoken(text, [&](std::string_view word) { bpe_word(word, ids); });
  return ids;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  for (const int32_t id : ids) {
    RECLM_CHECK(id >= 0 && id < vocab_size(), "token id {} outside the vocabulary of {}", id,
                vocab_size());
    text.append(tokens_[id].bytes);
  }
  return text;
}

// ---- files ------------------------------------------------------------------------------------

namespace {

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
