// Item infilling (data/infill_objective.h): explicit small examples of every mask kind, and the
// invariants users rely on checked over many random histories, renderings and draws.
#include "data/infill_objective.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "data/rec_samples.h"
#include "runtime/errors.h"
#include "runtime/rng.h"
#include "thrown_message.h"

namespace reclm {
namespace {

// Layout of the hand-made datasets: text tokens 0..99, specials 100..107, items 108..,
// attributes after the items.
constexpr int32_t kPad = 100, kBos = 101, kMask = 103, kSMask = 104, kGMask = 105, kStart = 106,
                  kEnd = 107;

RecDataset dataset_with_titles(const std::vector<std::vector<int32_t>>& titles,
                               const std::vector<std::vector<int32_t>>& attributes = {},
                               int32_t n_attributes = 0) {
  RecDataset d;
  d.source = "hand-made";
  const auto n = static_cast<int32_t>(titles.size());
  d.items.title_offsets.push_back(0);
  d.items.attr_offsets.push_back(0);
  for (int32_t i = 0; i < n; ++i) {
    d.items.keys.push_back("i" + std::to_string(i));
    d.items.titles.push_back("title " + std::to_string(i));
    d.items.title_tokens.insert(d.items.title_tokens.end(), titles[i].begin(), titles[i].end());
    d.items.title_offsets.push_back(static_cast<int64_t>(d.items.title_tokens.size()));
    if (!attributes.empty()) {
      d.items.attr_ids.insert(d.items.attr_ids.end(), attributes[i].begin(), attributes[i].end());
    }
    d.items.attr_offsets.push_back(static_cast<int64_t>(d.items.attr_ids.size()));
  }
  for (int32_t j = 0; j < n_attributes; ++j)
    d.items.attribute_names.push_back("a" + std::to_string(j));
  d.vocab.text_size = 100;
  d.vocab.special_first = 100;
  d.vocab.items = {108, n};
  d.vocab.attributes = {108 + n, n_attributes};
  d.vocab.vocab_size = 108 + n + n_attributes;
  return d;
}

// Titles [5 6], [7], [8 9 10]: the running example of the header.
RecDataset three_items() { return dataset_with_titles({{5, 6}, {7}, {8, 9, 10}}); }

InfillOptions only(double entity, double sentence, double document, double fraction) {
  InfillOptions o;
  o.entity_weight = entity;
  o.sentence_weight = sentence;
  o.document_weight = document;
  o.mask_fraction = fraction;
  return o;
}

struct Expected {
  std::vector<int32_t> tokens, targets;  // targets: -1 where the weight is 0 (any value)
  std::vector<int32_t> inter, intra;
  int32_t prefix_len;
};

void expect_equal(const Sample& s, const Expected& e) {
  EXPECT_EQ(s.tokens, e.tokens);
  EXPECT_EQ(s.pos_inter, e.inter);
  EXPECT_EQ(s.pos_intra, e.intra);
  EXPECT_EQ(s.prefix_len, e.prefix_len);
  ASSERT_EQ(s.targets.size(), e.targets.size());
  ASSERT_EQ(s.loss_weights.size(), e.targets.size());
  for (size_t i = 0; i < e.targets.size(); ++i) {
    EXPECT_EQ(s.loss_weights[i], e.targets[i] < 0 ? 0.0f : 1.0f) << "position " << i;
    if (e.targets[i] >= 0) {
      EXPECT_EQ(s.targets[i], e.targets[i]) << "position " << i;
    }
  }
}

// Draws the sample of [0 1 2] under many rng keys and checks that the outcomes are exactly
// `expected` (every one seen, nothing else).
void expect_outcomes(const InfillOptions& options, const std::vector<Expected>& expected) {
  const RecDataset d = three_items();
  const std::vector<int32_t> history = {0, 1, 2};
  const RenderOptions text{ItemRendering::kText, false};
  std::map<std::vector<int32_t>, Sample> seen;
  for (uint64_t key = 0; key < 200; ++key) {
    CounterRng rng(7, RngPurpose::kMasking, 0, 0, key);
    Sample s = item_infill_sample(d, history, text, options, true, 64, rng);
    seen.emplace(s.tokens, std::move(s));
  }
  ASSERT_EQ(seen.size(), expected.size());
  for (const Expected& e : expected) {
    const auto it = seen.find(e.tokens);
    ASSERT_NE(it, seen.end()) << "an expected outcome never drawn";
    expect_equal(it->second, e);
  }
}

TEST(ItemInfill, EntityMaskHidesOneWholeItemExample) {
  // k = max(1, round(0.15 · 3)) = 1: any one of the three items.
  expect_outcomes(only(1, 0, 0, 0.15), {{{kBos, kMask, 7, 8, 9, 10, kStart, 5, 6},
                                         {-1, -1, -1, -1, -1, -1, 5, 6, kEnd},
                                         {0, 1, 2, 3, 4, 5, 1, 1, 1},
                                         {0, 0, 1, 1, 2, 3, 1, 2, 3},
                                         6},
                                        {{kBos, 5, 6, kMask, 8, 9, 10, kStart, 7},
                                         {-1, -1, -1, -1, -1, -1, -1, 7, kEnd},
                                         {0, 1, 2, 3, 4, 5, 6, 3, 3},
                                         {0, 1, 2, 0, 1, 2, 3, 1, 2},
                                         7},
                                        {{kBos, 5, 6, 7, kMask, kStart, 8, 9, 10},
                                         {-1, -1, -1, -1, -1, 8, 9, 10, kEnd},
                                         {0, 1, 2, 3, 4, 4, 4, 4, 4},
                                         {0, 1, 2, 1, 0, 1, 2, 3, 4},
                                         5}});
}

TEST(ItemInfill, SentenceMaskHidesRunsInChronologicalOrderExample) {
  // k = round(0.5 · 3) = 2 entities: one run of two, or two runs {0} {2} around the visible 1.
  expect_outcomes(only(0, 1, 0, 0.5), {{{kBos, kSMask, 8, 9, 10, kStart, 5, 6, 7},
                                        {-1, -1, -1, -1, -1, 5, 6, 7, kEnd},
                                        {0, 1, 2, 3, 4, 1, 1, 1, 1},
                                        {0, 0, 1, 2, 3, 1, 2, 3, 4},
                                        5},
                                       {{kBos, 5, 6, kSMask, kStart, 7, 8, 9, 10},
                                        {-1, -1, -1, -1, 7, 8, 9, 10, kEnd},
                                        {0, 1, 2, 3, 3, 3, 3, 3, 3},
                                        {0, 1, 2, 0, 1, 2, 3, 4, 5},
                                        4},
                                       {{kBos, kSMask, 7, kSMask, kStart, 5, 6, kStart, 8, 9, 10},
                                        {-1, -1, -1, -1, 5, 6, kEnd, 8, 9, 10, kEnd},
                                        {0, 1, 2, 3, 1, 1, 1, 3, 3, 3, 3},
                                        {0, 0, 1, 0, 1, 2, 3, 1, 2, 3, 4},
                                        4}});
}

TEST(ItemInfill, DocumentMaskHidesHalfToAllOfTheTailExample) {
  // c uniform in [ceil(3/2), 3] = {2, 3} entities at the tail.
  expect_outcomes(only(0, 0, 1, 0.15), {{{kBos, 5, 6, kGMask, kStart, 7, 8, 9, 10},
                                         {-1, -1, -1, -1, 7, 8, 9, 10, kEnd},
                                         {0, 1, 2, 3, 3, 3, 3, 3, 3},
                                         {0, 1, 2, 0, 1, 2, 3, 4, 5},
                                         4},
                                        {{kBos, kGMask, kStart, 5, 6, 7, 8, 9, 10},
                                         {-1, -1, 5, 6, 7, 8, 9, 10, kEnd},
                                         {0, 1, 1, 1, 1, 1, 1, 1, 1},
                                         {0, 0, 1, 2, 3, 4, 5, 6, 7},
                                         2}});
}

TEST(ItemInfill, OneItemHistoryIsMaskedWhole) {
  const RecDataset d = three_items();
  const std::vector<int32_t> history = {2};
  for (const InfillOptions& o : {only(1, 0, 0, 0.15), only(0, 1, 0, 0.15), only(0, 0, 1, 0.15)}) {
    CounterRng rng(1, RngPurpose::kMasking);
    const Sample s =
        item_infill_sample(d, history, {ItemRendering::kText, false}, o, true, 64, rng);
    EXPECT_EQ(s.prefix_len, 2);
    EXPECT_EQ(s.tokens.size(), 6u);
    EXPECT_EQ(std::vector<int32_t>(s.tokens.begin() + 2, s.tokens.end()),
              (std::vector<int32_t>{kStart, 8, 9, 10}));
  }
}

TEST(ItemInfill, OneDimensionalPositionsRunOverBothParts) {
  const RecDataset d = three_items();
  const std::vector<int32_t> history = {0, 1, 2};
  CounterRng rng_1d(3, RngPurpose::kMasking, 0, 0, 5), rng_2d(3, RngPurpose::kMasking, 0, 0, 5);
  const RenderOptions text{ItemRendering::kText, false};
  const Sample s1 = item_infill_sample(d, history, text, {}, false, 64, rng_1d);
  const Sample s2 = item_infill_sample(d, history, text, {}, true, 64, rng_2d);
  EXPECT_EQ(s1.tokens, s2.tokens);  // positions change nothing else
  EXPECT_EQ(s1.targets, s2.targets);
  EXPECT_EQ(s1.loss_weights, s2.loss_weights);
  EXPECT_EQ(s1.prefix_len, s2.prefix_len);
  EXPECT_TRUE(s1.pos_intra.empty());
  for (int32_t i = 0; i < s1.size(); ++i) EXPECT_EQ(s1.pos_inter[i], i);
}

TEST(ItemInfill, CroppingKeepsTheMostRecentItems) {
  const RecDataset d = three_items();
  const std::vector<int32_t> history = {0, 1, 2};
  // [gMASK]: [BOS] + tokens + mask + [START]. All three items need 1 + 6 + 2 = 9 tokens; the
  // last two 1 + 4 + 2 = 7.
  CounterRng rng(1, RngPurpose::kMasking);
  const Sample s = item_infill_sample(d, history, {ItemRendering::kText, false},
                                      only(0, 0, 1, 0.15), true, 8, rng);
  std::multiset<int32_t> seen(s.tokens.begin(), s.tokens.end());
  EXPECT_EQ(seen.count(5) + seen.count(6), 0u);
  EXPECT_EQ(seen.count(7) + seen.count(8) + seen.count(9) + seen.count(10), 4u);
  EXPECT_LE(s.size(), 8);
}

TEST(ItemInfill, ItemTooLongForTheSegmentIsAUserError) {
  const RecDataset d = three_items();
  const std::vector<int32_t> history = {0, 2};
  CounterRng rng(1, RngPurpose::kMasking);
  const std::string message = thrown_message<UserError>([&] {
    item_infill_sample(d, history, {ItemRendering::kText, false}, {}, true, 5, rng);
  });
  EXPECT_NE(message.find("data.seq_len"), std::string::npos) << message;
  EXPECT_NE(message.find("item 2"), std::string::npos) << message;
}

TEST(ItemInfill, InvalidOptionsAreUserErrors) {
  const RecDataset d = three_items();
  const std::vector<int32_t> history = {0, 1};
  CounterRng rng(1, RngPurpose::kMasking);
  const RenderOptions id{};
  EXPECT_THROW(item_infill_sample(d, history, id, only(0, 0, 0, 0.15), true, 64, rng), UserError);
  EXPECT_THROW(item_infill_sample(d, history, id, only(1, -1, 0, 0.15), true, 64, rng), UserError);
  EXPECT_THROW(item_infill_sample(d, history, id, only(1, 0, 0, 1.5), true, 64, rng), UserError);
}

TEST(ItemInfill, SameKeySameSampleOtherKeysOtherSamples) {
  const RecDataset d = dataset_with_titles(std::vector<std::vector<int32_t>>(20, {1, 2}));
  std::vector<int32_t> history;
  for (int32_t i = 0; i < 20; ++i) history.push_back(i);
  std::set<std::vector<int32_t>> distinct;
  for (uint64_t key = 0; key < 20; ++key) {
    CounterRng a(11, RngPurpose::kMasking, 2, 0, key), b(11, RngPurpose::kMasking, 2, 0, key);
    const Sample sa = item_infill_sample(d, history, {}, {}, true, 256, a);
    const Sample sb = item_infill_sample(d, history, {}, {}, true, 256, b);
    EXPECT_EQ(sa.tokens, sb.tokens);
    EXPECT_EQ(sa.targets, sb.targets);
    EXPECT_EQ(sa.loss_weights, sb.loss_weights);
    EXPECT_EQ(sa.pos_inter, sb.pos_inter);
    EXPECT_EQ(sa.pos_intra, sb.pos_intra);
    EXPECT_EQ(sa.prefix_len, sb.prefix_len);
    distinct.insert(sa.tokens);
  }
  EXPECT_GE(distinct.size(), 15u);
}

// ---- Invariants over many random draws ----------------------------------------------------

int32_t expected_masked(int32_t n, double fraction) {
  return std::clamp(static_cast<int32_t>(std::lround(fraction * n)), 1, n);
}

struct Coverage {  // what the random draws exercised, so the property test cannot pass vacuously
  std::set<int32_t> kinds;
  int cropped = 0, multi_run_smask = 0, whole_gmask = 0, multi_entity_spans = 0;
};

// Checks one sample against the contract of data/infill_objective.h, independently of how the
// implementation builds it: undoing the masks must give back [BOS] + the rendered most recent
// items, every span must be whole entities, Part B must hold each span once in order.
void check_invariants(const RecDataset& d, std::span<const int32_t> history,
                      const RenderOptions& render, const InfillOptions& options, bool positions_2d,
                      int32_t max_tokens, const Sample& s, Coverage& coverage) {
  const int32_t size = s.size();
  ASSERT_LE(size, max_tokens);
  ASSERT_EQ(s.targets.size(), s.tokens.size());
  ASSERT_EQ(s.loss_weights.size(), s.tokens.size());
  ASSERT_EQ(s.pos_inter.size(), s.tokens.size());
  ASSERT_EQ(s.pos_intra.size(), positions_2d ? s.tokens.size() : 0u);
  ASSERT_GE(s.prefix_len, 2);
  ASSERT_LT(s.prefix_len, size);
  ASSERT_EQ(s.tokens[0], kBos);

  // Part A: masks of one kind; no [START]/[END]/[BOS]/[PAD] after position 0; no loss.
  std::vector<int32_t> masks;
  int32_t mask_token = -1;
  for (int32_t i = 0; i < s.prefix_len; ++i) {
    const int32_t t = s.tokens[i];
    EXPECT_EQ(s.loss_weights[i], 0.0f);
    if (t == kMask || t == kSMask || t == kGMask) {
      if (mask_token < 0) mask_token = t;
      ASSERT_EQ(t, mask_token) << "two mask kinds in one sample";
      masks.push_back(i);
    } else if (i > 0) {
      ASSERT_TRUE(t < kPad || t > kEnd) << "special " << t << " in Part A";
    }
  }
  ASSERT_FALSE(masks.empty());
  coverage.kinds.insert(mask_token);

  // Part B: spans [START] t_1 … t_m predicting t_1 … t_m [END], weight 1 everywhere.
  ASSERT_EQ(s.tokens[s.prefix_len], kStart);
  std::vector<std::vector<int32_t>> spans;
  std::vector<int32_t> span_start;
  for (int32_t i = s.prefix_len; i < size; ++i) {
    EXPECT_EQ(s.loss_weights[i], 1.0f);
    if (s.tokens[i] == kStart) {
      spans.emplace_back();
      span_start.push_back(i);
    } else {
      ASSERT_TRUE(s.tokens[i] < kPad || s.tokens[i] > kEnd) << "special in Part B";
      spans.back().push_back(s.tokens[i]);
    }
  }
  ASSERT_EQ(spans.size(), masks.size());
  for (size_t j = 0; j < spans.size(); ++j) {
    ASSERT_FALSE(spans[j].empty());
    for (size_t m = 0; m <= spans[j].size(); ++m) {
      const int32_t at = span_start[j] + static_cast<int32_t>(m);
      EXPECT_EQ(s.targets[at], m < spans[j].size() ? spans[j][m] : kEnd);
      if (positions_2d) {
        EXPECT_EQ(s.pos_inter[at], masks[j]);
        EXPECT_EQ(s.pos_intra[at], static_cast<int32_t>(m) + 1);
      }
    }
  }

  // Undo the masks (the j-th mask gets the j-th span: chronological order).
  std::vector<int32_t> restored;
  std::vector<std::pair<int32_t, int32_t>> hidden;  // [begin, end) in the restored tokens
  std::vector<int32_t> origin(s.prefix_len - 1);    // restored offset of each Part A token
  for (int32_t i = 1, j = 0; i < s.prefix_len; ++i) {
    origin[i - 1] = static_cast<int32_t>(restored.size());
    if (j < static_cast<int32_t>(masks.size()) && masks[j] == i) {
      const auto begin = static_cast<int32_t>(restored.size());
      restored.insert(restored.end(), spans[j].begin(), spans[j].end());
      hidden.emplace_back(begin, static_cast<int32_t>(restored.size()));
      ++j;
    } else {
      restored.push_back(s.tokens[i]);
    }
  }

  // The restored history is the rendering of the most recent n items, n as large as fits.
  int32_t n = 0;
  RenderedItems r;
  for (int32_t k = 1; k <= static_cast<int32_t>(history.size()) && n == 0; ++k) {
    RenderedItems candidate = render_items(d, history.last(k), render);
    if (candidate.tokens == restored) {
      n = k;
      r = std::move(candidate);
    }
  }
  ASSERT_GT(n, 0) << "Part A + Part B do not reconstruct a suffix of the history";
  const bool document = mask_token == kGMask;
  auto bound = [&](int32_t items) {  // the documented cropping budget for `items` entities
    const RenderedItems rr = render_items(d, history.last(items), render);
    const int32_t spans_room = document ? 1 : expected_masked(items, options.mask_fraction);
    return 1 + static_cast<int32_t>(rr.tokens.size()) + 2 * spans_room;
  };
  EXPECT_LE(bound(n), max_tokens);
  if (n < static_cast<int32_t>(history.size())) {
    EXPECT_GT(bound(n + 1), max_tokens) << "cropped more than needed";
    ++coverage.cropped;
  }

  // Spans are unions of whole entities, non-overlapping (by construction of `restored`).
  std::map<int32_t, int32_t> entity_at_begin, entity_at_end;
  for (int32_t e = 0; e < n; ++e) {
    entity_at_begin[r.entities[e].begin] = e;
    entity_at_end[r.entities[e].begin + r.entities[e].length] = e;
  }
  std::vector<std::pair<int32_t, int32_t>> span_entities;  // [first, last] entity
  for (const auto& [begin, end] : hidden) {
    ASSERT_TRUE(entity_at_begin.count(begin)) << "span starts inside an entity";
    ASSERT_TRUE(entity_at_end.count(end)) << "span ends inside an entity";
    span_entities.emplace_back(entity_at_begin[begin], entity_at_end[end]);
  }
  int32_t masked = 0;
  for (const auto& [first, last] : span_entities) {
    masked += last - first + 1;
    if (last > first) ++coverage.multi_entity_spans;
  }
  if (mask_token == kMask) {
    for (const auto& [first, last] : span_entities) EXPECT_EQ(first, last);
    EXPECT_EQ(masked, expected_masked(n, options.mask_fraction));
  } else if (mask_token == kSMask) {
    EXPECT_EQ(masked, expected_masked(n, options.mask_fraction));
    for (size_t j = 1; j < span_entities.size(); ++j) {
      EXPECT_GE(span_entities[j].first, span_entities[j - 1].second + 2) << "adjacent runs";
    }
    if (span_entities.size() > 1) ++coverage.multi_run_smask;
  } else {
    ASSERT_EQ(span_entities.size(), 1u);
    EXPECT_EQ(span_entities[0].second, n - 1);
    EXPECT_GE(2 * masked, n);
    EXPECT_EQ(masks[0], s.prefix_len - 1);
    if (masked == n) ++coverage.whole_gmask;
  }

  // Positions of Part A (2D) or of everything (1D).
  if (!positions_2d) {
    for (int32_t i = 0; i < size; ++i) EXPECT_EQ(s.pos_inter[i], i);
    return;
  }
  EXPECT_EQ(s.pos_intra[0], 0);
  for (int32_t i = 0; i < s.prefix_len; ++i) EXPECT_EQ(s.pos_inter[i], i);
  for (const int32_t m : masks) EXPECT_EQ(s.pos_intra[m], 0);
  for (int32_t i = 1; i < s.prefix_len; ++i) {
    if (std::find(masks.begin(), masks.end(), i) == masks.end()) {
      EXPECT_EQ(s.pos_intra[i], r.intra[origin[i - 1]]) << "intra inside a visible entity";
    }
  }
}

TEST(ItemInfill, InvariantsHoldOverRandomHistoriesRenderingsAndDraws) {
  // 30 items: titles of 0..4 text tokens (0: no title), 0..3 of 5 attributes each.
  CounterRng make(5, RngPurpose::kTest);
  std::vector<std::vector<int32_t>> titles(30), attributes(30);
  for (int32_t i = 0; i < 30; ++i) {
    for (uint64_t k = make.below(5); k > 0; --k)
      titles[i].push_back(static_cast<int32_t>(make.below(100)));
    for (uint64_t k = make.below(4); k > 0; --k)
      attributes[i].push_back(static_cast<int32_t>(make.below(5)));
  }
  const RecDataset d = dataset_with_titles(titles, attributes, 5);
  const ItemRendering renderings[] = {ItemRendering::kId, ItemRendering::kText,
                                      ItemRendering::kIdText};
  Coverage coverage;
  for (uint64_t trial = 0; trial < 500; ++trial) {
    CounterRng pick(9, RngPurpose::kTest, 0, 0, trial);
    std::vector<int32_t> history(1 + pick.below(15));
    for (int32_t& item : history) item = static_cast<int32_t>(pick.below(30));
    const RenderOptions render{renderings[pick.below(3)], pick.below(2) == 1};
    InfillOptions options =
        only(pick.below(3), pick.below(3), pick.below(3), 0.05 + 0.85 * pick.uniform());
    if (options.entity_weight + options.sentence_weight + options.document_weight == 0) {
      options.sentence_weight = 1;
    }
    std::vector<int32_t> last;
    append_item_tokens(d, history.back(), render, last);
    const bool roomy = pick.below(2) == 1;
    const auto max_tokens =
        static_cast<int32_t>(1 + last.size() + 2 + (roomy ? 400 : pick.below(30)));
    const bool positions_2d = pick.below(4) != 0;
    CounterRng rng(21, RngPurpose::kMasking, 0, 0, trial);
    const Sample s = item_infill_sample(d, history, render, options, positions_2d, max_tokens, rng);
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    check_invariants(d, history, render, options, positions_2d, max_tokens, s, coverage);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_EQ(coverage.kinds.size(), 3u);
  EXPECT_GT(coverage.cropped, 20);
  EXPECT_GT(coverage.multi_run_smask, 5);
  EXPECT_GT(coverage.whole_gmask, 5);
  EXPECT_GT(coverage.multi_entity_spans, 20);
}

}  // namespace
}  // namespace reclm
