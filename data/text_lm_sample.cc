#include "data/text_lm_sample.h"

#include <algorithm>

#include "runtime/errors.h"

namespace reclm {

Sample text_lm_sample(const RecDataset& dataset, std::span<const int32_t> items,
                      bool positions_2d, int32_t max_tokens) {
  RECLM_CHECK(max_tokens >= 2, "text LM sample needs room for [BOS] and one token");
  const ItemTable& table = dataset.items;
  Sample sample;
  if (table.title_tokens.empty()) return sample;

  // Walk back from the most recent item while whole titles (+ [EOS]) fit.
  int64_t used = 1;  // [BOS]
  size_t first = items.size();
  bool cut_last = false;
  for (size_t k = items.size(); k-- > 0;) {
    const auto length = static_cast<int64_t>(table.title_of(items[k]).size());
    if (length == 0) {
      first = k;
      continue;
    }
    if (used + length + 1 > max_tokens) {
      cut_last = used == 1;  // nothing kept yet: keep the head of this title
      if (cut_last) first = k;
      break;
    }
    used += length + 1;
    first = k;
  }

  const VocabLayout& vocab = dataset.vocab;
  sample.tokens.push_back(vocab.bos());
  for (size_t k = first; k < items.size(); ++k) {
    const auto title = table.title_of(items[k]);
    if (title.empty()) continue;
    sample.tokens.insert(sample.tokens.end(), title.begin(), title.end());
    sample.tokens.push_back(vocab.eos());
  }
  if (sample.tokens.size() == 1) return {};  // no titles at all
  if (cut_last) sample.tokens.resize(static_cast<size_t>(max_tokens));

  const auto n = static_cast<int32_t>(sample.tokens.size());
  sample.targets.assign(sample.tokens.begin() + 1, sample.tokens.end());
  sample.targets.push_back(vocab.pad());
  sample.loss_weights.assign(static_cast<size_t>(n), 1.0f);
  sample.loss_weights.back() = 0.0f;
  sample.pos_inter.resize(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) sample.pos_inter[i] = i;
  if (positions_2d) sample.pos_intra.assign(static_cast<size_t>(n), 0);
  return sample;
}

}  // namespace reclm
