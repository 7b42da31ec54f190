#include "data/item_vocab.h"

#include <fmt/ranges.h>
#include <xxhash.h>

#include <iterator>
#include <string_view>
#include <vector>

#include "data/byte_tokenizer.h"
#include "runtime/errors.h"

namespace reclm {
namespace {

uint64_t fingerprint(const std::string& text) { return XXH64(text.data(), text.size(), 0); }

constexpr auto kNumSpecials = static_cast<int32_t>(std::size(kSpecialTokens));

// An empty range sits where the next one starts, so "contiguous" needs no special case.
TokenRange placed(TokenRange range, int32_t at) {
  return range.count == 0 ? TokenRange{at, 0} : range;
}

// The layout a tokenizer with item and attribute tokens implies. `origin` names where the
// tokenizer came from: a tokenizer file can break the layout (extra added tokens between the
// specials and the items, specials missing or out of order), which is the user's input to fix.
VocabLayout layout_of(const BpeTokenizer& t, const std::string& origin) {
  VocabLayout v;
  v.special_first = t.token_id(kSpecialTokens[0]);
  v.text_size = v.special_first;
  for (int32_t k = 0; k < kNumSpecials; ++k)
    RECLM_USER_CHECK(t.token_id(kSpecialTokens[k]) == v.special_first + k,
                     "{}: special token {} has id {}, expected {} (the specials must follow the "
                     "text vocabulary contiguously, in the order {})",
                     origin, kSpecialTokens[k], t.token_id(kSpecialTokens[k]), v.special_first + k,
                     fmt::join(kSpecialTokens, " "));
  v.items = placed(t.item_tokens(), v.special_first + kNumSpecials);
  v.attributes = placed(t.attribute_tokens(), v.items.first + v.items.count);
  v.vocab_size = t.vocab_size();
  RECLM_USER_CHECK(v.items.first == v.special_first + kNumSpecials,
                   "{}: <item_0> has id {}, expected {} right after the specials (the tokenizer "
                   "has other tokens in between)",
                   origin, v.items.first, v.special_first + kNumSpecials);
  RECLM_USER_CHECK(v.attributes.first == v.items.first + v.items.count &&
                       v.attributes.first + v.attributes.count == v.vocab_size,
                   "{}: attribute tokens at [{}, {}) do not directly follow the item tokens "
                   "(ending at {}) and end the vocabulary of {}",
                   origin, v.attributes.first, v.attributes.first + v.attributes.count,
                   v.items.first + v.items.count, v.vocab_size);
  return v;
}

std::vector<std::string> training_lines(const ItemTable& items) {
  std::vector<std::string> lines;
  lines.reserve(items.titles.size() + items.attribute_names.size());
  for (const std::string& title : items.titles)
    if (!title.empty()) lines.push_back(title);
  for (const std::string& name : items.attribute_names) lines.push_back(name);
  return lines;
}

}  // namespace

BpeTokenizer build_item_vocabulary(RecDataset& dataset, const VocabOptions& options) {
  ItemTable& items = dataset.items;
  const int32_t n_items = items.size();
  const auto n_attributes = static_cast<int32_t>(items.attribute_names.size());
  RECLM_CHECK(static_cast<int32_t>(items.titles.size()) == n_items, "{} titles for {} items",
              items.titles.size(), n_items);

  const bool learned = options.tokenizer_dir.empty();
  BpeTokenizer tokenizer = learned ? train_bpe(training_lines(items), options.learned_vocab_size)
                                   : BpeTokenizer::load_dir(options.tokenizer_dir);
  const std::string origin =
      learned ? std::string("tokenizer learned from the item titles") : options.tokenizer_dir;
  tokenizer.add_item_tokens(n_items);
  tokenizer.add_attribute_tokens(n_attributes);
  const VocabLayout layout = layout_of(tokenizer, origin);
  RECLM_CHECK(layout.items.count == n_items && layout.attributes.count == n_attributes,
              "layout has {} items and {} attributes, the catalog {} and {}", layout.items.count,
              layout.attributes.count, n_items, n_attributes);

  items.title_offsets.assign(1, 0);
  items.title_offsets.reserve(n_items + 1);
  items.title_tokens.clear();
  for (const std::string& title : items.titles) {
    // encode never produces specials or added tokens; an empty title gives no tokens.
    const std::vector<int32_t> ids = tokenizer.encode(title);
    for (const int32_t id : ids)
      RECLM_CHECK(id >= 0 && id < layout.text_size, "title token {} outside the text range {}", id,
                  layout.text_size);
    items.title_tokens.insert(items.title_tokens.end(), ids.begin(), ids.end());
    items.title_offsets.push_back(static_cast<int64_t>(items.title_tokens.size()));
  }

  dataset.vocab = layout;
  dataset.tokenizer_json = tokenizer.to_hf_json();
  dataset.tokenizer_fingerprint = fingerprint(dataset.tokenizer_json);
  return tokenizer;
}

BpeTokenizer dataset_tokenizer(const RecDataset& dataset) {
  const std::string& source = dataset.source;
  const uint64_t actual = fingerprint(dataset.tokenizer_json);
  RECLM_USER_CHECK(actual == dataset.tokenizer_fingerprint,
                   "{}: tokenizer_json has fingerprint {:016x} but the dataset records {:016x} "
                   "(the tokenizer was changed after preparation; prepare the dataset again)",
                   source, actual, dataset.tokenizer_fingerprint);
  BpeTokenizer tokenizer =
      BpeTokenizer::from_hf_json_text(dataset.tokenizer_json, source + ": tokenizer_json");
  const VocabLayout layout = layout_of(tokenizer, source + ": tokenizer_json");
  const VocabLayout& stored = dataset.vocab;
  const auto same_range = [](TokenRange a, TokenRange b) {
    return a.count == b.count && (a.count == 0 || a.first == b.first);
  };
  RECLM_USER_CHECK(
      layout.text_size == stored.text_size && layout.special_first == stored.special_first &&
          same_range(layout.items, stored.items) &&
          same_range(layout.attributes, stored.attributes) &&
          layout.vocab_size == stored.vocab_size,
      "{}: the stored tokenizer does not match the vocabulary layout: tokenizer has text {}, "
      "specials at {}, {} items at {}, {} attributes at {}, vocab {}; layout says text {}, "
      "specials at {}, {} items at {}, {} attributes at {}, vocab {}",
      source, layout.text_size, layout.special_first, layout.items.count, layout.items.first,
      layout.attributes.count, layout.attributes.first, layout.vocab_size, stored.text_size,
      stored.special_first, stored.items.count, stored.items.first, stored.attributes.count,
      stored.attributes.first, stored.vocab_size);
  RECLM_USER_CHECK(
      layout.items.count == dataset.items.size() &&
          layout.attributes.count == static_cast<int32_t>(dataset.items.attribute_names.size()),
      "{}: the tokenizer has {} item and {} attribute tokens but the catalog has {} "
      "items and {} attributes",
      source, layout.items.count, layout.attributes.count, dataset.items.size(),
      dataset.items.attribute_names.size());
  return tokenizer;
}

}  // namespace reclm
