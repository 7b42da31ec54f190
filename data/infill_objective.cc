#include "data/infill_objective.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/errors.h"

namespace reclm {

namespace {

enum class MaskKind { kEntity, kSentence, kDocument };

// A masked span: `count` consecutive entities starting at entity `first` (indices into the
// rendered, cropped history).
struct Span {
  int32_t first = 0;
  int32_t count = 0;
};

MaskKind draw_mask_kind(const InfillOptions& options, CounterRng& rng) {
  const double e = options.entity_weight, s = options.sentence_weight, d = options.document_weight;
  RECLM_USER_CHECK(e >= 0 && s >= 0 && d >= 0 && e + s + d > 0,
                   "data.infill_entity_weight / infill_sentence_weight / infill_document_weight "
                   "must be >= 0 with a positive sum (got {} / {} / {})",
                   e, s, d);
  const double u = rng.uniform() * (e + s + d);  // < e + s + d, so a zero weight is never drawn
  if (u < e) return MaskKind::kEntity;
  if (u < e + s) return MaskKind::kSentence;
  return MaskKind::kDocument;
}

// Entities hidden by [MASK] / [sMASK] spans in a history of n entities: round(fraction·n),
// at least one (a sample with nothing to predict is wasted) and at most all of them.
int32_t masked_entity_count(int32_t n, double fraction) {
  const auto k = static_cast<int32_t>(std::lround(fraction * n));
  return std::clamp(k, 1, n);
}

// Most spans a kind can produce on n entities: what cropping must leave room for (each span
// costs a mask token in Part A and a [START] in Part B on top of its entities' tokens).
int32_t max_spans(MaskKind kind, int32_t n, double fraction) {
  return kind == MaskKind::kDocument ? 1 : masked_entity_count(n, fraction);
}

// m distinct values of [0, universe), ascending (partial Fisher–Yates).
std::vector<int32_t> choose_sorted(int32_t universe, int32_t m, CounterRng& rng) {
  RECLM_CHECK(m >= 0 && m <= universe, "cannot choose {} of {}", m, universe);
  std::vector<int32_t> pool(universe);
  for (int32_t i = 0; i < universe; ++i) pool[i] = i;
  for (int32_t i = 0; i < m; ++i) {
    const auto j = i + static_cast<int32_t>(rng.below(static_cast<uint64_t>(universe - i)));
    std::swap(pool[i], pool[j]);
  }
  pool.resize(m);
  std::sort(pool.begin(), pool.end());
  return pool;
}

// [MASK]: k entities chosen uniformly, each its own span (neighbours stay separate spans).
std::vector<Span> entity_spans(int32_t n, int32_t k, CounterRng& rng) {
  std::vector<Span> spans;
  for (const int32_t e : choose_sorted(n, k, rng)) spans.push_back({e, 1});
  return spans;
}

// [sMASK]: k entities in s runs (s uniform in [1, min(k, n−k+1)]). Run lengths are a uniform
// random composition of k into s parts; the runs go into s distinct gaps among the n−k visible
// entities, so two runs are always separated by at least one visible entity (otherwise they
// would be one run).
std::vector<Span> sentence_spans(int32_t n, int32_t k, CounterRng& rng) {
  const int32_t visible = n - k;
  const auto s =
      1 + static_cast<int32_t>(rng.below(static_cast<uint64_t>(std::min(k, visible + 1))));
  std::vector<int32_t> cuts = choose_sorted(k - 1, s - 1, rng);  // cut after element c+1
  std::vector<int32_t> lengths;
  int32_t previous = 0;
  for (const int32_t c : cuts) {
    lengths.push_back(c + 1 - previous);
    previous = c + 1;
  }
  lengths.push_back(k - previous);
  const std::vector<int32_t> gaps = choose_sorted(visible + 1, s, rng);  // gap g: before visible g

  std::vector<Span> spans;
  int32_t entity = 0;
  size_t run = 0;
  for (int32_t g = 0; g <= visible; ++g) {
    if (run < gaps.size() && gaps[run] == g) {
      spans.push_back({entity, lengths[run]});
      entity += lengths[run];
      ++run;
    }
    if (g < visible) ++entity;  // the visible entity after gap g
  }
  RECLM_CHECK(entity == n && run == gaps.size(), "sMASK layout covers {} of {} entities", entity,
              n);
  return spans;
}

// [gMASK]: the last c entities, c uniform in [ceil(n/2), n] — 50–100% of the history, all of it
// when n = 1 (then Part A is [BOS][gMASK] and Part B generates the whole history).
std::vector<Span> document_span(int32_t n, CounterRng& rng) {
  const int32_t half = (n + 1) / 2;
  const auto c = half + static_cast<int32_t>(rng.below(static_cast<uint64_t>(n - half + 1)));
  return {Span{n - c, c}};
}

// The most recent items whose infilling sample surely fits max_tokens: [BOS] + their tokens +
// two tokens (mask, [START]) per possible span, plus one [END] target per span that costs no
// position. The bound grows with every item added, so the first item that breaks it stops.
std::span<const int32_t> most_recent_that_fit(const RecDataset& dataset,
                                              std::span<const int32_t> items,
                                              const RenderOptions& render, MaskKind kind,
                                              double fraction, int32_t max_tokens) {
  std::vector<int32_t> scratch;
  int64_t item_tokens = 0;
  int32_t kept = 0;
  for (size_t k = items.size(); k-- > 0;) {
    scratch.clear();
    append_item_tokens(dataset, items[k], render, scratch);
    const int64_t with_item = item_tokens + static_cast<int64_t>(scratch.size());
    const int64_t needed = 1 + with_item + 2 * int64_t{max_spans(kind, kept + 1, fraction)};
    if (needed > max_tokens) {
      RECLM_USER_CHECK(kept > 0,
                       "{}: item {} renders to {} tokens; its infilling sample ([BOS], mask, "
                       "[START] and the item) needs {} tokens, more than data.seq_len = {}; "
                       "raise data.seq_len (or shorten the rendering)",
                       dataset.source, items[k], scratch.size(), needed, max_tokens);
      break;
    }
    item_tokens = with_item;
    ++kept;
  }
  return items.subspan(items.size() - static_cast<size_t>(kept));
}

}  // namespace

Sample item_infill_sample(const RecDataset& dataset, std::span<const int32_t> items,
                          const RenderOptions& render, const InfillOptions& options,
                          bool positions_2d, int32_t max_tokens, CounterRng& rng) {
  RECLM_CHECK(!items.empty(), "item_infill_sample needs at least one item");
  RECLM_USER_CHECK(options.mask_fraction >= 0 && options.mask_fraction <= 1,
                   "data.infill_mask_fraction must lie in [0, 1] (got {})", options.mask_fraction);
  const MaskKind kind = draw_mask_kind(options, rng);
  const auto kept =
      most_recent_that_fit(dataset, items, render, kind, options.mask_fraction, max_tokens);
  const RenderedItems rendered = render_items(dataset, kept, render);
  const auto n = static_cast<int32_t>(rendered.entities.size());

  std::vector<Span> spans;
  int32_t mask_token = dataset.vocab.mask();
  switch (kind) {
    case MaskKind::kEntity:
      spans = entity_spans(n, masked_entity_count(n, options.mask_fraction), rng);
      break;
    case MaskKind::kSentence:
      spans = sentence_spans(n, masked_entity_count(n, options.mask_fraction), rng);
      mask_token = dataset.vocab.smask();
      break;
    case MaskKind::kDocument:
      spans = document_span(n, rng);
      mask_token = dataset.vocab.gmask();
      break;
  }

  Sample sample;
  auto push = [&](int32_t token, int32_t target, float weight, int32_t inter, int32_t intra) {
    sample.tokens.push_back(token);
    sample.targets.push_back(target);
    sample.loss_weights.push_back(weight);
    sample.pos_inter.push_back(inter);
    sample.pos_intra.push_back(intra);
  };
  const int32_t pad = dataset.vocab.pad();

  // Part A: [BOS], visible entities and one mask token per span; no loss (its last position
  // would predict the first [START], which is given, not predicted).
  push(dataset.vocab.bos(), pad, 0.0f, 0, 0);
  std::vector<int32_t> mask_positions;
  size_t next_span = 0;
  for (int32_t e = 0; e < n;) {
    if (next_span < spans.size() && spans[next_span].first == e) {
      mask_positions.push_back(sample.size());
      push(mask_token, pad, 0.0f, sample.size(), 0);
      e += spans[next_span].count;
      ++next_span;
      continue;
    }
    const Entity& entity = rendered.entities[e];
    for (int32_t j = 0; j < entity.length; ++j) {
      push(rendered.tokens[entity.begin + j], pad, 0.0f, sample.size(), j + 1);
    }
    ++e;
  }
  sample.prefix_len = sample.size();

  // Part B: per span, in history order, [START] t_1 … t_m predicting t_1 … t_m [END], all at
  // the mask's inter position. No position predicts a [START]: the one before it predicts [END].
  for (size_t j = 0; j < spans.size(); ++j) {
    const Entity& first = rendered.entities[spans[j].first];
    const Entity& last = rendered.entities[spans[j].first + spans[j].count - 1];
    const int32_t begin = first.begin, end = last.begin + last.length;
    const int32_t inter = mask_positions[j];
    push(dataset.vocab.start(), rendered.tokens[begin], 1.0f, inter, 1);
    for (int32_t t = begin; t < end; ++t) {
      const int32_t target = t + 1 < end ? rendered.tokens[t + 1] : dataset.vocab.end();
      push(rendered.tokens[t], target, 1.0f, inter, t - begin + 2);
    }
  }
  RECLM_CHECK(sample.size() <= max_tokens, "infilling sample of {} tokens exceeds {}",
              sample.size(), max_tokens);

  if (!positions_2d) {  // 1D: a plain running position over Parts A and B
    for (int32_t i = 0; i < sample.size(); ++i) sample.pos_inter[i] = i;
    sample.pos_intra.clear();
  }
  return sample;
}

}  // namespace reclm
