// BpeTokenizer's core: byte symbols, GPT-2 pre-tokenisation, building the vocabulary and merge
// table, added (special, item, attribute) tokens, encode and decode. Reading and writing GPT-2 and
// Hugging Face files is in bpe_files.cc; learning merges from text is in bpe_train.cc.
#include "data/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <bit>
#include <mutex>

#include "data/byte_tokenizer.h"
#include "runtime/errors.h"

namespace reclm {
namespace {

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

}  // namespace reclm
