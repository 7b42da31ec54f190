// Byte-level BPE tokenizer compatible with GPT-2 (Radford et al. 2019, openai/gpt-2 encoder.py)
// and Hugging Face `tokenizers` (model "BPE" with the ByteLevel pre-tokenizer).
//
// Encoding, as GPT-2 does it:
//   1. pre-tokenise with GPT-2's regex (contractions, ` ?letters`, ` ?digits`, ` ?other`,
//      whitespace runs) — PCRE2 in UTF mode with Unicode properties; `\s` is spelled out as the
//      Unicode White_Space set because that is what Python's `regex` module (used by GPT-2)
//      means by it, and PCRE2's \s omits U+0085;
//   2. map each pre-token's bytes to one symbol per byte (GPT-2's bytes_to_unicode: printable
//      bytes stand for themselves, the other 68 for U+0100 + n), so every byte string encodes;
//   3. merge adjacent symbols by merge rank, lowest first, leftmost first among equal ranks.
//
// Invalid UTF-8: GPT-2 works on Python str and never sees it. Here the regex runs with
// PCRE2_MATCH_INVALID_UTF, so invalid sequences never match; each maximal run of bytes between
// matches becomes its own pre-token and is BPE-encoded like any other. Encode therefore accepts
// every byte string and decode(encode(x)) == x for all x (decode returns raw bytes, no
// replacement characters).
//
// Special, item and attribute tokens ([PAD] … [END], <item_N>, <attr_N>) are never produced by
// encode — text that spells "[BOS]" encodes as ordinary text, exactly as GPT-2 treats
// "<|endoftext|>". The data pipeline inserts them by id (token_id); decode prints them by name.
//
// Thread safety: encode/decode may run concurrently on one tokenizer; add_item_tokens and
// add_attribute_tokens may not.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace reclm {

// A contiguous block of token ids: ids [first, first + count).
struct TokenRange {
  int32_t first = 0;
  int32_t count = 0;
};

// "<item_N>": the name of item N's token.
std::string item_token_name(int64_t item);

// GPT-2's bytes_to_unicode: the UTF-8 text of the symbol that stands for byte b in token strings
// (e.g. ' ' -> "Ġ", '\n' -> "Ċ", 'a' -> "a").
const std::string& byte_symbol(uint8_t b);

// Splits text into GPT-2 pre-tokens (views into text, in order, covering all of it).
std::vector<std::string_view> gpt2_pretokenize(std::string_view text);

// A merge rule by token strings, in rank order (rank = position in the list).
struct BpeMerge {
  std::string left, right;
};

class BpeTokenizer {
 public:
  // GPT-2 release files: encoder.json (token -> id) and vocab.bpe (merges, first line
  // "#version: ..."). A missing or malformed file is a UserError naming the file (and, for
  // vocab.bpe, the line).
  static BpeTokenizer load_gpt2(const std::filesystem::path& encoder_json,
                                const std::filesystem::path& vocab_bpe);
  // Hugging Face tokenizer.json with a byte-level BPE model; merges as "a b" or ["a", "b"];
  // added_tokens are kept (decoded by name, never parsed from text).
  static BpeTokenizer load_hf(const std::filesystem::path& tokenizer_json);
  // A directory with tokenizer.json, or else encoder.json + vocab.bpe.
  static BpeTokenizer load_dir(const std::filesystem::path& dir);

  // Builds from base tokens (token strings in byte-symbol form, id = index) and merges in rank
  // order; then appends the reclm specials. `source` names the origin in error messages.
  static BpeTokenizer from_vocab(std::vector<std::string> tokens,
                                 const std::vector<BpeMerge>& merges, const std::string& source);

  // Hugging Face tokenizer.json from memory (e.g. the copy a prepared dataset stores); `name`
  // stands for the text in error messages. Invalid JSON or an unsupported model is a UserError.
  static BpeTokenizer from_hf_json_text(std::string_view text,
                                        const std::string& name = "tokenizer.json");

  // Hugging Face tokenizer.json text (ByteLevel pre-tokenizer and decoder, merges as "a b";
  // specials, item and attribute tokens as added_tokens) so serving stacks can load it. The same
  // tokenizer always gives the same bytes (ids in order), so the text can be fingerprinted.
  std::string to_hf_json() const;
  // Writes to_hf_json() to a file.
  void save_hf(const std::filesystem::path& tokenizer_json) const;

  std::vector<int32_t> encode(std::string_view text) const;
  // Concatenated bytes of the tokens; special, item and other added tokens by name. An id
  // outside the vocabulary is an internal error (ids come from reclm, not from the user).
  std::string decode(std::span<const int32_t> ids) const;

  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t n_merges() const { return static_cast<int32_t>(merge_order_.size()); }
  std::optional<int32_t> find_token(std::string_view token) const;
  // Id of a token that must exist ("[BOS]", "<item_3>", "Ġthe"); an internal error otherwise.
  int32_t token_id(std::string_view token) const;
  // The token's string as stored (byte-symbol form for BPE tokens, the name for added ones).
  const std::string& token_text(int32_t id) const;

  // Appends <item_0> … <item_{n-1}> after everything present and returns their ids. A tokenizer
  // that already carries exactly n item tokens (one reclm exported) returns those; any other
  // existing count is a UserError (the tokenizer belongs to a different catalog).
  TokenRange add_item_tokens(int32_t n_items);
  TokenRange item_tokens() const { return items_; }

  // Appends <attr_0> … <attr_{n-1}> after everything present (items included) and returns their
  // ids; same rules as add_item_tokens (an exported tokenizer carrying exactly n is reused, any
  // other existing count is a UserError).
  TokenRange add_attribute_tokens(int32_t n_attributes);
  TokenRange attribute_tokens() const { return attributes_; }

  BpeTokenizer(const BpeTokenizer& other);
  BpeTokenizer& operator=(const BpeTokenizer& other);
  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;
  ~BpeTokenizer();

 private:
  struct Token {
    std::string text;        // as in the vocabulary file
    bool in_model = true;    // part of the BPE model vocabulary (vs. an added token only)
    bool added = false;      // an added token: decoded by name, saved in added_tokens
    bool special = false;    // HF "special" flag of an added token
    std::string bytes = {};  // what decode emits (filled by build)
  };
  // Slot of the merge table: open addressing on key = left << 32 | right. Flat (one probe, no
  // pointer chase) because std::unordered_map made this lookup a third of encode time.
  struct MergeSlot {
    uint64_t key = ~uint64_t{0};  // empty: no pair of valid ids has this key
    int32_t rank = 0;
    int32_t merged = 0;
  };
  struct WordCache;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using TokenIndex = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

  BpeTokenizer();
  // Turns loaded entries (index = id) into a tokenizer: checks that ids are dense and the
  // vocabulary is byte-level, indexes merges (where(i) names merge i in errors), appends the
  // reclm specials and finds item and attribute tokens already present.
  static BpeTokenizer build(std::vector<std::optional<Token>> entries,
                            const std::vector<BpeMerge>& merges, const std::string& source,
                            const std::function<std::string(size_t)>& where);
  static BpeTokenizer from_hf_json(const nlohmann::json& doc, const std::string& name);
  int32_t append_added_token(std::string text, bool special);
  bool insert_merge(int32_t left, int32_t right, int32_t merged);
  const MergeSlot* find_merge(int32_t left, int32_t right) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;

  std::vector<Token> tokens_;
  TokenIndex index_;
  int32_t byte_ids_[256];
  std::vector<MergeSlot> merge_slots_;  // power-of-two size, at most half full
  std::vector<std::pair<int32_t, int32_t>> merge_order_;
  TokenRange items_;
  TokenRange attributes_;
  // Per-word cache of merge results, bounded: words of at most 128 bytes, at most 2^17 of them
  // (the whole cache is dropped when full — no LRU bookkeeping on the hot path; natural text
  // refills its frequent words at once). Guarded by a mutex; not shared between copies.
  std::unique_ptr<WordCache> cache_;
};

// Learns a byte-level BPE vocabulary from text lines: GPT-2 pre-tokenisation, 256 byte tokens
// (ids in GPT-2's order), then merges until the base vocabulary holds vocab_size tokens (bytes +
// merged tokens; the 8 specials and any items come on top) or no pair occurs min_pair_count
// times. Each step merges the most frequent adjacent pair; ties go to
// the lexicographically smallest (left, right) pair of token strings, so the result depends only
// on the input. Pair counts are updated incrementally (only words containing the merged pair are
// revisited). The reclm specials come after the base vocabulary, as with loaded tokenizers.
BpeTokenizer train_bpe(std::span<const std::string> lines, int32_t vocab_size,
                       int64_t min_pair_count = 2);

}  // namespace reclm
