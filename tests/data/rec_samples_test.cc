#include "data/rec_samples.h"

#include <gtest/gtest.h>

#include <vector>

#include "runtime/errors.h"
#include "thrown_message.h"

namespace reclm {
namespace {

using Tokens = std::vector<int32_t>;

// A hand-made catalog of 4 items, vocabulary laid out as
//   text 0..99 | specials 100..107 ([BOS] = 101, [PAD] = 100) | <item_0..3> 108..111 |
//   <attr_0..2> 112..114
// Titles: item 0 "1 2", item 1 "3", item 2 none, item 3 "4 5 6".
// Attributes: item 0 {0}, item 1 {}, item 2 {1, 0}, item 3 {2}.
RecDataset tiny_catalog() {
  RecDataset d;
  d.source = "tiny";
  d.items.keys = {"a", "b", "c", "d"};
  d.items.titles = {"one two", "three", "", "four five six"};
  d.items.title_offsets = {0, 2, 3, 3, 6};
  d.items.title_tokens = {1, 2, 3, 4, 5, 6};
  d.items.attr_offsets = {0, 1, 1, 3, 4};
  d.items.attr_ids = {0, 1, 0, 2};
  d.items.attribute_names = {"x", "y", "z"};
  d.vocab.text_size = 100;
  d.vocab.special_first = 100;
  d.vocab.items = {108, 4};
  d.vocab.attributes = {112, 3};
  d.vocab.vocab_size = 115;
  return d;
}

constexpr int32_t kBos = 101;
constexpr int32_t kPad = 100;

RenderOptions rendering(ItemRendering r, bool attributes = false) {
  RenderOptions o;
  o.rendering = r;
  o.attributes = attributes;
  return o;
}

std::vector<float> floats(std::initializer_list<float> v) { return v; }

void expect_entities(const RenderedItems& r, const std::vector<Entity>& want) {
  ASSERT_EQ(r.entities.size(), want.size());
  for (size_t e = 0; e < want.size(); ++e) {
    EXPECT_EQ(r.entities[e].begin, want[e].begin) << "entity " << e;
    EXPECT_EQ(r.entities[e].length, want[e].length) << "entity " << e;
    EXPECT_EQ(r.entities[e].item, want[e].item) << "entity " << e;
  }
}

TEST(RenderItems, IdModeIsOneItemTokenPerEntity) {
  const RecDataset d = tiny_catalog();
  const Tokens items = {0, 3, 2};
  const RenderedItems r = render_items(d, items, rendering(ItemRendering::kId));
  EXPECT_EQ(r.tokens, (Tokens{108, 111, 110}));
  EXPECT_EQ(r.intra, (Tokens{1, 1, 1}));
  expect_entities(r, {{0, 1, 0}, {1, 1, 3}, {2, 1, 2}});
}

TEST(RenderItems, TextModeUsesTitlesAndFallsBackToTheIdTokenForUntitledItems) {
  const RecDataset d = tiny_catalog();
  const Tokens items = {0, 3, 2};
  const RenderedItems r = render_items(d, items, rendering(ItemRendering::kText));
  EXPECT_EQ(r.tokens, (Tokens{1, 2, 4, 5, 6, 110}));
  EXPECT_EQ(r.intra, (Tokens{1, 2, 1, 2, 3, 1}));
  expect_entities(r, {{0, 2, 0}, {2, 3, 3}, {5, 1, 2}});
}

TEST(RenderItems, IdTextModePutsTheIdTokenBeforeTheTitle) {
  const RecDataset d = tiny_catalog();
  const Tokens items = {0, 3, 2};
  const RenderedItems r = render_items(d, items, rendering(ItemRendering::kIdText));
  EXPECT_EQ(r.tokens, (Tokens{108, 1, 2, 111, 4, 5, 6, 110}));
  EXPECT_EQ(r.intra, (Tokens{1, 2, 3, 1, 2, 3, 4, 1}));
  expect_entities(r, {{0, 3, 0}, {3, 4, 3}, {7, 1, 2}});
}

TEST(RenderItems, AttributesFollowInsideTheSameEntity) {
  const RecDataset d = tiny_catalog();
  const Tokens items = {0, 1, 2};
  const RenderedItems r = render_items(d, items, rendering(ItemRendering::kId, true));
  EXPECT_EQ(r.tokens, (Tokens{108, 112, 109, 110, 113, 112}));
  EXPECT_EQ(r.intra, (Tokens{1, 2, 1, 1, 2, 3}));
  expect_entities(r, {{0, 2, 0}, {2, 1, 1}, {3, 3, 2}});

  Tokens one;
  append_item_tokens(d, 3, rendering(ItemRendering::kText, true), one);
  EXPECT_EQ(one, (Tokens{4, 5, 6, 114}));
}

TEST(NextItemSample, TargetsAreNextTokensWeightedFromTheSecondItemOn) {
  const RecDataset d = tiny_catalog();
  const Tokens items = {0, 1, 3};
  const Sample s = next_item_sample(d, items, rendering(ItemRendering::kText), false, 64);
  EXPECT_EQ(s.tokens, (Tokens{kBos, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s.targets, (Tokens{1, 2, 3, 4, 5, 6, kPad}));
  // Targets 1, 2 belong to the first item (nothing to predict it from); 3 and 4 5 6 carry loss.
  EXPECT_EQ(s.loss_weights, floats({0, 0, 1, 1, 1, 1, 0}));
  EXPECT_EQ(s.pos_inter, (Tokens{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(s.pos_intra.empty());
  EXPECT_EQ(s.prefix_len, 0);
}

TEST(NextItemSample, TwoDimensionalPositionsCountWithinEachEntity) {
  const RecDataset d = tiny_catalog();
  const Tokens items = {0, 1, 3};
  const Sample s = next_item_sample(d, items, rendering(ItemRendering::kText), true, 64);
  EXPECT_EQ(s.pos_inter, (Tokens{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s.pos_intra, (Tokens{0, 1, 2, 1, 1, 2, 3}));
  EXPECT_EQ(s.loss_weights, floats({0, 0, 1, 1, 1, 1, 0}));
}

TEST(NextItemSample, OnlyLastWeightsTheLastItemAlone) {
  const RecDataset d = tiny_catalog();
  const Tokens items = {0, 1, 3};
  const Sample s = next_item_sample(d, items, rendering(ItemRendering::kText), false, 64, true);
  EXPECT_EQ(s.loss_weights, floats({0, 0, 0, 1, 1, 1, 0}));

  const Sample id = next_item_sample(d, items, rendering(ItemRendering::kId), false, 64, true);
  EXPECT_EQ(id.tokens, (Tokens{kBos, 108, 109, 111}));
  EXPECT_EQ(id.targets[2], 111);
  EXPECT_EQ(id.loss_weights, floats({0, 0, 1, 0}));
}

TEST(NextItemSample, TailWeightScalesTheTokensAfterTheIdTokenOnly) {
  const RecDataset d = tiny_catalog();
  const std::vector<int32_t> items = {1, 0};
  // ID_TEXT: [BOS] <1> 3 <0> 1 2 — item 0's <item> token keeps weight 1, its title gets 0.25.
  const Sample s = next_item_sample(d, items, rendering(ItemRendering::kIdText), false, 64, false, 0.25f);
  EXPECT_EQ(s.tokens, (Tokens{kBos, 109, 3, 108, 1, 2}));
  EXPECT_EQ(s.loss_weights, floats({0, 0, 1, 0.25f, 0.25f, 0}));
  // TEXT rendering has no ID token: the title is the item, all of it keeps weight 1.
  const Sample t = next_item_sample(d, items, rendering(ItemRendering::kText), false, 64, false, 0.25f);
  EXPECT_EQ(t.loss_weights, floats({0, 1, 1, 0}));
}

TEST(NextItemSample, CroppingKeepsTheMostRecentWholeItems) {
  const RecDataset d = tiny_catalog();
  const Tokens items = {0, 1, 3};
  const RenderOptions text = rendering(ItemRendering::kText);
  // 5 tokens: [BOS] + item 1 (1) + item 3 (3); item 0 (2 more) would not fit.
  const Sample five = next_item_sample(d, items, text, false, 5);
  EXPECT_EQ(five.tokens, (Tokens{kBos, 3, 4, 5, 6}));
  EXPECT_EQ(five.loss_weights, floats({0, 1, 1, 1, 0}));
  // 6 tokens: still cannot take item 0 whole, so it is dropped rather than split.
  EXPECT_EQ(next_item_sample(d, items, text, false, 6).tokens, five.tokens);
  // 4 tokens: the last item alone, nothing to predict it from.
  const Sample four = next_item_sample(d, items, text, false, 4);
  EXPECT_EQ(four.tokens, (Tokens{kBos, 4, 5, 6}));
  EXPECT_EQ(four.loss_weights, floats({0, 0, 0, 0}));
  // 3 tokens cannot hold the last item: a user error that names the setting.
  const std::string message =
      thrown_message<UserError>([&] { next_item_sample(d, items, text, false, 3); });
  EXPECT_NE(message.find("data.seq_len"), std::string::npos) << message;
}

TEST(HistoryPrompt, RendersTheHistoryWithoutLoss) {
  const RecDataset d = tiny_catalog();
  const Tokens history = {2, 0};
  const Sample s = history_prompt(d, history, rendering(ItemRendering::kIdText), true, 64);
  EXPECT_EQ(s.tokens, (Tokens{kBos, 110, 108, 1, 2}));
  EXPECT_EQ(s.pos_intra, (Tokens{0, 1, 1, 2, 3}));
  EXPECT_EQ(s.pos_inter, (Tokens{0, 1, 2, 3, 4}));
  EXPECT_EQ(s.loss_weights, floats({0, 0, 0, 0, 0}));
  // Cropped like training: only what fits, most recent first.
  EXPECT_EQ(history_prompt(d, history, rendering(ItemRendering::kIdText), false, 4).tokens,
            (Tokens{kBos, 108, 1, 2}));
  // A user without history still gets a prompt: [BOS].
  EXPECT_EQ(history_prompt(d, {}, rendering(ItemRendering::kId), false, 8).tokens, Tokens{kBos});
}

Sample plain_sample(int32_t n, int32_t first_token, bool two_d) {
  Sample s;
  for (int32_t i = 0; i < n; ++i) {
    s.tokens.push_back(first_token + i);
    s.targets.push_back(first_token + i + 1);
    s.loss_weights.push_back(1.0f);
    s.pos_inter.push_back(i);
    if (two_d) s.pos_intra.push_back(i % 2);
  }
  return s;
}

TEST(AppendSample, PacksSegmentsBackToBack) {
  Batch batch;
  append_sample(batch, plain_sample(3, 10, false));
  append_sample(batch, plain_sample(2, 20, false));
  EXPECT_EQ(batch.tokens, (Tokens{10, 11, 12, 20, 21}));
  EXPECT_EQ(batch.targets, (Tokens{11, 12, 13, 21, 22}));
  EXPECT_EQ(batch.pos_inter, (Tokens{0, 1, 2, 0, 1}));
  EXPECT_EQ(batch.cu_seqlens, (Tokens{0, 3, 5}));
  EXPECT_TRUE(batch.prefix_lens.empty());
  EXPECT_TRUE(batch.pos_intra.empty());
  EXPECT_EQ(batch.n_segments(), 2);
}

TEST(AppendSample, PrefixLengthsAppearWithTheFirstPrefixAndCoverEverySegment) {
  Batch batch;
  append_sample(batch, plain_sample(3, 10, true));
  Sample infill = plain_sample(4, 30, true);
  infill.prefix_len = 2;
  append_sample(batch, infill);
  EXPECT_EQ(batch.prefix_lens, (Tokens{0, 2}));
  append_sample(batch, plain_sample(1, 50, true));
  EXPECT_EQ(batch.prefix_lens, (Tokens{0, 2, 0}));
  EXPECT_EQ(batch.cu_seqlens, (Tokens{0, 3, 7, 8}));
  EXPECT_EQ(batch.pos_intra, (Tokens{0, 1, 0, 0, 1, 0, 1, 0}));

  Batch starts_with_prefix;
  append_sample(starts_with_prefix, infill);
  EXPECT_EQ(starts_with_prefix.prefix_lens, Tokens{2});
  append_sample(starts_with_prefix, plain_sample(1, 50, true));
  EXPECT_EQ(starts_with_prefix.prefix_lens, (Tokens{2, 0}));
}

TEST(AppendSample, RefusesToMixOneAndTwoDimensionalSamples) {
  Batch batch;
  append_sample(batch, plain_sample(3, 10, false));
  EXPECT_THROW(append_sample(batch, plain_sample(2, 20, true)), InternalError);
  Batch two_d;
  append_sample(two_d, plain_sample(3, 10, true));
  EXPECT_THROW(append_sample(two_d, plain_sample(2, 20, false)), InternalError);
}

}  // namespace
}  // namespace reclm
