// train_bpe: learns byte-level BPE merges from text (declared in data/bpe_tokenizer.h).
//
// Algorithm (Sennrich et al. 2016, byte-level as GPT-2): count pre-tokens once; keep every
// distinct word as a symbol sequence with its count, the count of every adjacent symbol pair, and
// for each pair the words it occurs in. Each step takes the best pair from a max-heap (stale
// entries are skipped when popped), rewrites only the words that contain it, and applies the
// pair-count differences of those words. Cost per step is proportional to the words touched, not
// to the corpus.
#include <algorithm>
#include <queue>
#include <unordered_map>

#include "data/bpe_tokenizer.h"
#include "runtime/errors.h"

namespace reclm {
namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t left_of(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t right_of(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t count = 0;
};

}  // namespace

BpeTokenizer train_bpe(std::span<const std::string> lines, int32_t vocab_size,
                       int64_t min_pair_count) {
  RECLM_USER_CHECK(vocab_size >= 256, "BPE vocab_size {} is below the 256 byte tokens", vocab_size);

  // Base tokens: the 256 byte symbols ordered by code point, which is GPT-2's id order.
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_symbol(static_cast<uint8_t>(b)));
  std::sort(tokens.begin(), tokens.end());  // std::string orders bytes unsigned: code-point order
  std::unordered_map<std::string, int32_t> token_ids;
  for (size_t id = 0; id < tokens.size(); ++id)
    token_ids.emplace(tokens[id], static_cast<int32_t>(id));
  int32_t byte_ids[256];
  for (int b = 0; b < 256; ++b) byte_ids[b] = token_ids.at(byte_symbol(static_cast<uint8_t>(b)));

  // Distinct words with their counts, keyed by views into `lines`.
  std::unordered_map<std::string_view, int32_t> word_index;
  std::vector<Word> words;
  for (const std::string& line : lines) {
    for (std::string_view piece : gpt2_pretokenize(line)) {
      const auto [it, inserted] = word_index.emplace(piece, static_cast<int32_t>(words.size()));
      if (inserted) {
        Word w;
        for (char c : piece) w.symbols.push_back(byte_ids[static_cast<uint8_t>(c)]);
        words.push_back(std::move(w));
      }
      ++words[it->second].count;
    }
  }

  std::unordered_map<uint64_t, int64_t> pair_counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;  // may hold stale/duplicate words
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t key = pair_key(s[i], s[i + 1]);
      pair_counts[key] += words[w].count;
      pair_words[key].push_back(static_cast<int32_t>(w));
    }
  }

  // Max-heap on (count, then the smaller (left, right) token strings) — the deterministic order.
  struct Candidate {
    int64_t count;
    uint64_t pair;
  };
  const auto lower_priority = [&tokens](const Candidate& a, const Candidate& b) {
    if (a.count != b.count) return a.count < b.count;
    const std::string& al = tokens[left_of(a.pair)];
    const std::string& bl = tokens[left_of(b.pair)];
    if (al != bl) return al > bl;
    return tokens[right_of(a.pair)] > tokens[right_of(b.pair)];
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower_priority)> heap(
      lower_priority);
  for (const auto& [pair, count] : pair_counts) heap.push({count, pair});

  std::vector<BpeMerge> merges;
  std::vector<int64_t> visited(words.size(), -1);  // merge step that last rewrote each word
  std::unordered_map<uint64_t, int64_t> delta;
  std::vector<int32_t> merged_symbols;
  while (static_cast<int32_t>(tokens.size()) < vocab_size && !heap.empty()) {
    const Candidate best = heap.top();
    heap.pop();
    const auto current = pair_counts.find(best.pair);
    if (current == pair_counts.end() || current->second != best.count) continue;  // stale
    if (best.count < min_pair_count) break;

    const int32_t left = left_of(best.pair), right = right_of(best.pair);
    std::string merged_text = tokens[left] + tokens[right];
    // Two merge paths can spell the same string ("ab"+"c", "a"+"bc"); it stays one token.
    const auto [merged_it, is_new] =
        token_ids.emplace(merged_text, static_cast<int32_t>(tokens.size()));
    const int32_t merged = merged_it->second;
    merges.push_back({tokens[left], tokens[right]});
    if (is_new) tokens.push_back(std::move(merged_text));

    const auto step = static_cast<int64_t>(merges.size());
    const std::vector<int32_t> affected = std::move(pair_words[best.pair]);
    delta.clear();
    for (const int32_t w : affected) {
      if (visited[w] == step) continue;
      visited[w] = step;
      Word& word = words[w];
      const auto& s = word.symbols;
      merged_symbols.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
          merged_symbols.push_back(merged);
          ++i;
        } else {
          merged_symbols.push_back(s[i]);
        }
      }
      if (merged_symbols.size() == s.size()) continue;  // stale entry: pair no longer here
      for (size_t i = 0; i + 1 < s.size(); ++i) delta[pair_key(s[i], s[i + 1])] -= word.count;
      for (size_t i = 0; i + 1 < merged_symbols.size(); ++i) {
        const uint64_t key = pair_key(merged_symbols[i], merged_symbols[i + 1]);
        delta[key] += word.count;
        // Pairs without the new token were already listed for this word.
        if (merged_symbols[i] == merged || merged_symbols[i + 1] == merged)
          pair_words[key].push_back(w);
      }
      word.symbols.swap(merged_symbols);
    }
    for (const auto& [pair, change] : delta) {
      if (change == 0) continue;
      int64_t& count = pair_counts[pair];
      count += change;
      if (count > 0) {
        heap.push({count, pair});
      } else {
        pair_counts.erase(pair);
        pair_words.erase(pair);
      }
    }
  }
  return BpeTokenizer::from_vocab(std::move(tokens), merges, "trained BPE vocabulary");
}

}  // namespace reclm
