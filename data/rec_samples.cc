#include "data/rec_samples.h"

#include "runtime/errors.h"

namespace reclm {

void append_item_tokens(const RecDataset& dataset, int32_t item, const RenderOptions& options,
                        std::vector<int32_t>& out) {
  RECLM_CHECK(item >= 0 && item < dataset.items.size(), "item {} outside the catalog of {}", item,
              dataset.items.size());
  const VocabLayout& vocab = dataset.vocab;
  const bool has_title = !dataset.items.title_tokens.empty() &&
                         !dataset.items.title_of(item).empty();
  switch (options.rendering) {
    case ItemRendering::kId:
      out.push_back(vocab.item_token(item));
      break;
    case ItemRendering::kText:
      if (has_title) {
        const auto title = dataset.items.title_of(item);
        out.insert(out.end(), title.begin(), title.end());
      } else {
        out.push_back(vocab.item_token(item));  // an untitled item still needs a name
      }
      break;
    case ItemRendering::kIdText:
      out.push_back(vocab.item_token(item));
      if (has_title) {
        const auto title = dataset.items.title_of(item);
        out.insert(out.end(), title.begin(), title.end());
      }
      break;
  }
  if (options.attributes && !dataset.items.attr_offsets.empty()) {
    for (const int32_t attr : dataset.items.attributes_of(item)) {
      out.push_back(vocab.attribute_token(attr));
    }
  }
}

RenderedItems render_items(const RecDataset& dataset, std::span<const int32_t> items,
                           const RenderOptions& options) {
  RenderedItems rendered;
  rendered.entities.reserve(items.size());
  for (const int32_t item : items) {
    const auto begin = static_cast<int32_t>(rendered.tokens.size());
    append_item_tokens(dataset, item, options, rendered.tokens);
    const auto length = static_cast<int32_t>(rendered.tokens.size()) - begin;
    rendered.entities.push_back({begin, length, item});
    for (int32_t k = 1; k <= length; ++k) rendered.intra.push_back(k);
  }
  return rendered;
}

namespace {

// Kept suffix of `items` such that [BOS] + their entities fit max_tokens: the most recent items,
// whole. At least the last item must fit; otherwise the configured segment length is too short.
std::span<const int32_t> most_recent_that_fit(const RecDataset& dataset,
                                              std::span<const int32_t> items,
                                              const RenderOptions& options, int32_t max_tokens) {
  std::vector<int32_t> scratch;
  int64_t used = 1;  // [BOS]
  size_t kept = 0;
  for (size_t k = items.size(); k-- > 0;) {
    scratch.clear();
    append_item_tokens(dataset, items[k], options, scratch);
    if (used + static_cast<int64_t>(scratch.size()) > max_tokens) {
      RECLM_USER_CHECK(kept > 0,
                       "{}: item {} renders to {} tokens, which with [BOS] does not fit "
                       "data.seq_len = {}; raise data.seq_len (or shorten the rendering)",
                       dataset.source, items[k], scratch.size(), max_tokens);
      break;
    }
    used += static_cast<int64_t>(scratch.size());
    ++kept;
  }
  return items.subspan(items.size() - kept);
}

// [BOS] e_1 … e_n with next-token targets; weights filled by the caller. The last position has
// no next token: its target is [PAD] with weight 0.
Sample bos_and_entities(const RecDataset& dataset, const RenderedItems& rendered,
                        bool positions_2d) {
  Sample sample;
  const auto n = static_cast<int32_t>(rendered.tokens.size()) + 1;
  sample.tokens.reserve(n);
  sample.tokens.push_back(dataset.vocab.bos());
  sample.tokens.insert(sample.tokens.end(), rendered.tokens.begin(), rendered.tokens.end());
  sample.targets.assign(sample.tokens.begin() + 1, sample.tokens.end());
  sample.targets.push_back(dataset.vocab.pad());
  sample.loss_weights.assign(n, 0.0f);
  sample.pos_inter.resize(n);
  for (int32_t i = 0; i < n; ++i) sample.pos_inter[i] = i;
  if (positions_2d) {
    sample.pos_intra.reserve(n);
    sample.pos_intra.push_back(0);
    sample.pos_intra.insert(sample.pos_intra.end(), rendered.intra.begin(), rendered.intra.end());
  }
  return sample;
}

}  // namespace

Sample next_item_sample(const RecDataset& dataset, std::span<const int32_t> items,
                        const RenderOptions& options, bool positions_2d, int32_t max_tokens,
                        bool only_last, float tail_weight) {
  RECLM_CHECK(!items.empty(), "next_item_sample needs at least one item");
  const auto kept = most_recent_that_fit(dataset, items, options, max_tokens);
  const RenderedItems rendered = render_items(dataset, kept, options);
  Sample sample = bos_and_entities(dataset, rendered, positions_2d);
  // Token j of the rendered items sits at position j + 1 and is the target of position j.
  const size_t first_weighted = only_last ? rendered.entities.size() - 1 : 1;
  // With an ID token first, the rest of the entity (title, attributes) is what tail_weight scales.
  const bool id_first = options.rendering != ItemRendering::kText;
  for (size_t e = first_weighted; e < rendered.entities.size(); ++e) {
    const Entity& entity = rendered.entities[e];
    for (int32_t j = entity.begin; j < entity.begin + entity.length; ++j) {
      sample.loss_weights[j] = id_first && j > entity.begin ? tail_weight : 1.0f;
    }
  }
  return sample;
}

Sample history_prompt(const RecDataset& dataset, std::span<const int32_t> history,
                      const RenderOptions& options, bool positions_2d, int32_t max_tokens) {
  if (history.empty()) {  // a cold-start user: [BOS] alone
    RenderedItems none;
    return bos_and_entities(dataset, none, positions_2d);
  }
  const auto kept = most_recent_that_fit(dataset, history, options, max_tokens);
  return bos_and_entities(dataset, render_items(dataset, kept, options), positions_2d);
}

void append_sample(Batch& batch, const Sample& sample) {
  const size_t n = sample.tokens.size();
  RECLM_CHECK(n > 0, "append_sample: empty sample");
  RECLM_CHECK(sample.targets.size() == n && sample.loss_weights.size() == n &&
                  sample.pos_inter.size() == n,
              "append_sample: sample fields disagree in length ({} tokens, {} targets, {} "
              "weights, {} positions)",
              n, sample.targets.size(), sample.loss_weights.size(), sample.pos_inter.size());
  const bool sample_2d = !sample.pos_intra.empty();
  RECLM_CHECK(!sample_2d || sample.pos_intra.size() == n,
              "append_sample: {} intra positions for {} tokens", sample.pos_intra.size(), n);
  RECLM_CHECK(sample.prefix_len >= 0 && sample.prefix_len <= static_cast<int32_t>(n),
              "append_sample: prefix_len {} outside [0, {}]", sample.prefix_len, n);
  if (batch.cu_seqlens.empty()) batch.cu_seqlens.push_back(0);
  const bool batch_2d = !batch.pos_intra.empty();
  RECLM_CHECK(batch.tokens.empty() || batch_2d == sample_2d,
              "append_sample: mixing 1D and 2D samples in one batch");
  RECLM_CHECK(batch.cu_seqlens.back() == static_cast<int32_t>(batch.tokens.size()),
              "append_sample: batch segments ({}) do not end at its {} tokens",
              batch.cu_seqlens.back(), batch.tokens.size());

  // prefix_lens is either empty (all plain) or one entry per segment.
  const bool with_prefixes = sample.prefix_len > 0 || !batch.prefix_lens.empty();
  if (sample.prefix_len > 0 && batch.prefix_lens.empty()) {
    batch.prefix_lens.assign(static_cast<size_t>(batch.n_segments()), 0);
  }
  if (with_prefixes) {
    RECLM_CHECK(static_cast<int64_t>(batch.prefix_lens.size()) == batch.n_segments(),
                "append_sample: {} prefix lengths for {} segments", batch.prefix_lens.size(),
                batch.n_segments());
    batch.prefix_lens.push_back(sample.prefix_len);
  }

  batch.tokens.insert(batch.tokens.end(), sample.tokens.begin(), sample.tokens.end());
  batch.targets.insert(batch.targets.end(), sample.targets.begin(), sample.targets.end());
  batch.loss_weights.insert(batch.loss_weights.end(), sample.loss_weights.begin(),
                            sample.loss_weights.end());
  batch.pos_inter.insert(batch.pos_inter.end(), sample.pos_inter.begin(), sample.pos_inter.end());
  batch.pos_intra.insert(batch.pos_intra.end(), sample.pos_intra.begin(), sample.pos_intra.end());
  batch.cu_seqlens.push_back(static_cast<int32_t>(batch.tokens.size()));
}

}  // namespace reclm
