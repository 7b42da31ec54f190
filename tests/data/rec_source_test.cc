#include "data/rec_source.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "data/history_sampling.h"
#include "data/item_vocab.h"
#include "data/prompt_templates.h"
#include "data/synthetic_rec.h"
#include "data/text_lm_sample.h"
#include "runtime/errors.h"
#include "thrown_message.h"

namespace reclm {
namespace {

using Tokens = std::vector<int32_t>;

constexpr int32_t kItemFirst = 108;
constexpr int32_t kBos = 101;
constexpr int32_t kEos = 102;
constexpr int32_t kPad = 100;

// A hand-made dataset, vocabulary laid out as
//   text 0..99 | specials 100..107 | <item_0..59> 108..167 | <attr_0..4> 168..172
// Item i: title tokens {i % 100, (i + 1) % 100, …} of length 1 + i % 3, attribute i % 5.
// User u (40 users): 2 + u % 7 items starting with item u, then u+1, u+2, … (mod 60), so the
// token after [BOS] of an uncropped next-item sample names the user. Users with 3 items
// (u % 7 == 1) have a 1-item training prefix and do not train; users with 2 items train but have
// no validation target.
constexpr int32_t kUsers = 40;
constexpr int32_t kItems = 60;

RecDataset hand_dataset() {
  RecDataset d;
  d.source = "hand";
  d.items.title_offsets = {0};
  d.items.attr_offsets = {0};
  for (int32_t i = 0; i < kItems; ++i) {
    d.items.keys.push_back(fmt::format("i{}", i));
    d.items.titles.push_back(fmt::format("t{}", i));
    for (int32_t k = 0; k < 1 + i % 3; ++k) d.items.title_tokens.push_back((i + k) % 100);
    d.items.title_offsets.push_back(static_cast<int64_t>(d.items.title_tokens.size()));
    d.items.attr_ids.push_back(i % 5);
    d.items.attr_offsets.push_back(static_cast<int64_t>(d.items.attr_ids.size()));
  }
  d.items.attribute_names = {"a", "b", "c", "d", "e"};
  d.users.offsets = {0};
  for (int32_t u = 0; u < kUsers; ++u) {
    d.users.keys.push_back(fmt::format("u{}", u));
    for (int32_t k = 0; k < 2 + u % 7; ++k) d.users.items.push_back((u + k) % kItems);
    d.users.offsets.push_back(static_cast<int64_t>(d.users.items.size()));
  }
  d.vocab.text_size = 100;
  d.vocab.special_first = 100;
  d.vocab.items = {kItemFirst, kItems};
  d.vocab.attributes = {kItemFirst + kItems, 5};
  d.vocab.vocab_size = kItemFirst + kItems + 5;
  return d;
}

std::set<int64_t> expected_training_users() {
  std::set<int64_t> users;
  for (int64_t u = 0; u < kUsers; ++u) {
    if (u % 7 != 1) users.insert(u);
  }
  return users;
}

RecSourceOptions small_options() {
  RecSourceOptions o;
  o.max_seq_len = 64;
  o.micro_batch = 4;
  o.seed = 7;
  return o;
}

// One segment of a batch, for comparisons across batches.
struct Segment {
  Tokens tokens, targets, pos_inter, pos_intra;
  std::vector<float> weights;
  int32_t prefix_len = 0;
  bool operator==(const Segment&) const = default;
};

void PrintTo(const Segment& s, std::ostream* os) {
  *os << "{tokens " << ::testing::PrintToString(s.tokens) << ", prefix " << s.prefix_len << "}";
}

std::vector<Segment> segments(const Batch& b) {
  std::vector<Segment> out;
  for (int64_t s = 0; s < b.n_segments(); ++s) {
    const int32_t lo = b.cu_seqlens[s];
    const int32_t hi = b.cu_seqlens[s + 1];
    Segment seg;
    seg.tokens.assign(b.tokens.begin() + lo, b.tokens.begin() + hi);
    seg.targets.assign(b.targets.begin() + lo, b.targets.begin() + hi);
    seg.pos_inter.assign(b.pos_inter.begin() + lo, b.pos_inter.begin() + hi);
    if (!b.pos_intra.empty()) seg.pos_intra.assign(b.pos_intra.begin() + lo, b.pos_intra.begin() + hi);
    seg.weights.assign(b.loss_weights.begin() + lo, b.loss_weights.begin() + hi);
    seg.prefix_len = b.prefix_lens.empty() ? 0 : b.prefix_lens[s];
    out.push_back(seg);
  }
  return out;
}

void expect_same_batch(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.targets, b.targets);
  EXPECT_EQ(a.loss_weights, b.loss_weights);
  EXPECT_EQ(a.pos_inter, b.pos_inter);
  EXPECT_EQ(a.pos_intra, b.pos_intra);
  EXPECT_EQ(a.cu_seqlens, b.cu_seqlens);
  EXPECT_EQ(a.prefix_lens, b.prefix_lens);
  EXPECT_EQ(a.class_begin, b.class_begin);
  EXPECT_EQ(a.class_count, b.class_count);
}

// ---------------------------------------------------------------------------------------------
// Building blocks: epoch order, history windows, text-LM samples.

TEST(EpochOrder, IsASeededPermutationThatChangesEveryEpoch) {
  const std::vector<int64_t> a = epoch_order(101, 5, 0);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 101; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(a, epoch_order(101, 5, 0));
  EXPECT_NE(a, epoch_order(101, 5, 1));
  EXPECT_NE(a, epoch_order(101, 6, 0));
}

TEST(HistoryWindow, DrawsLongMediumShortTermsAtTenThirtySixtyPercent) {
  std::map<int32_t, int> by_length;
  const int draws = 4000;
  for (int k = 0; k < draws; ++k) {
    CounterRng rng(3, RngPurpose::kTest, 0, 0, static_cast<uint64_t>(k));
    // A long prefix, so that almost every window is whole.
    const HistoryWindow w = sample_history_window(100000, rng);
    ASSERT_GE(w.end, 2);
    ASSERT_LE(w.end, 100000);
    ASSERT_GE(w.begin, 0);
    const int32_t length = w.end - w.begin;
    // The window is the last `length` items before its end point (shorter only at the start).
    if (w.begin > 0) {
      ASSERT_TRUE(length == kLongTermItems || length == kMediumTermItems ||
                  length == kShortTermItems)
          << length;
      ++by_length[length];
    }
  }
  const int full = by_length[50] + by_length[20] + by_length[5];
  EXPECT_NEAR(static_cast<double>(by_length[50]) / full, 0.1, 0.03);
  EXPECT_NEAR(static_cast<double>(by_length[20]) / full, 0.3, 0.04);
  EXPECT_NEAR(static_cast<double>(by_length[5]) / full, 0.6, 0.04);
}

TEST(HistoryWindow, AlwaysHoldsTwoItemsWhenThePrefixHasTwo) {
  for (int k = 0; k < 200; ++k) {
    CounterRng rng(4, RngPurpose::kTest, 0, 0, static_cast<uint64_t>(k));
    const HistoryWindow w = sample_history_window(2, rng);
    EXPECT_EQ(w.begin, 0);
    EXPECT_EQ(w.end, 2);
  }
}

TEST(TextLmSample, TitlesSeparatedByEosWithLossOnEveryNextToken) {
  const RecDataset d = hand_dataset();
  const Tokens items = {1, 3, 2};  // titles {1, 2}, {3}, {2, 3, 4}
  const Sample s = text_lm_sample(d, items, true, 64);
  EXPECT_EQ(s.tokens, (Tokens{kBos, 1, 2, kEos, 3, kEos, 2, 3, 4, kEos}));
  EXPECT_EQ(s.targets, (Tokens{1, 2, kEos, 3, kEos, 2, 3, 4, kEos, kPad}));
  EXPECT_EQ(s.loss_weights, (std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1, 1, 0}));
  EXPECT_EQ(s.pos_inter, (Tokens{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(s.pos_intra, Tokens(10, 0));
  // Cropping keeps the most recent whole titles ...
  EXPECT_EQ(text_lm_sample(d, items, false, 7).tokens, (Tokens{kBos, 3, kEos, 2, 3, 4, kEos}));
  EXPECT_EQ(text_lm_sample(d, items, false, 6).tokens, (Tokens{kBos, 2, 3, 4, kEos}));
  // ... and cuts the last title only when it alone does not fit.
  EXPECT_EQ(text_lm_sample(d, items, false, 3).tokens, (Tokens{kBos, 2, 3}));
}

// ---------------------------------------------------------------------------------------------
// The loader.

TEST(RecSource, BatchesArePureFunctionsOfTheirIndex) {
  const RecDataset d = hand_dataset();
  RecSourceOptions o = small_options();
  o.mix = {1.0, 1.0, 1.0, 0.0};
  o.history_sampling = true;
  o.positions_2d = true;
  o.grad_accum = 2;
  const RecSource a(d, o);
  const RecSource b(d, o);
  expect_same_batch(a.train_batch(5, 1), b.train_batch(5, 1));
  expect_same_batch(a.train_batch(5, 1), a.train_batch(5, 1));
  EXPECT_NE(segments(a.train_batch(5, 1)), segments(a.train_batch(6, 1)));
  EXPECT_NE(segments(a.train_batch(5, 0)), segments(a.train_batch(5, 1)));
  o.seed = 8;
  EXPECT_NE(segments(RecSource(d, o).train_batch(5, 1)), segments(a.train_batch(5, 1)));
}

TEST(RecSource, EveryTrainingUserOncePerEpochInAFreshOrder) {
  const RecDataset d = hand_dataset();
  const std::set<int64_t> want = expected_training_users();
  RecSourceOptions o = small_options();
  o.micro_batch = static_cast<int32_t>(want.size());  // one batch = one epoch
  const RecSource source(d, o);
  std::vector<int64_t> orders[2];
  for (int epoch = 0; epoch < 2; ++epoch) {
    const Batch b = source.train_batch(epoch, 0);
    ASSERT_EQ(b.n_segments(), static_cast<int64_t>(want.size()));
    for (int64_t s = 0; s < b.n_segments(); ++s) {
      ASSERT_EQ(b.tokens[b.cu_seqlens[s]], kBos);
      orders[epoch].push_back(b.tokens[b.cu_seqlens[s] + 1] - kItemFirst);  // the user's id
    }
    EXPECT_EQ(std::set<int64_t>(orders[epoch].begin(), orders[epoch].end()), want)
        << "epoch " << epoch;
  }
  EXPECT_NE(orders[0], orders[1]);
  EXPECT_EQ(source.cursor(1, 0).epoch, 1);
}

TEST(RecSource, TrainingSamplesSeeOnlyTheTrainingPrefix) {
  const RecDataset d = hand_dataset();
  RecSourceOptions o = small_options();
  o.micro_batch = 34;
  const RecSource source(d, o);
  const Batch b = source.train_batch(0, 0);
  for (int64_t s = 0; s < b.n_segments(); ++s) {
    const int64_t user = b.tokens[b.cu_seqlens[s] + 1] - kItemFirst;
    const auto prefix = split_view(d.users, user, Split::kTrain).history;
    Tokens want = {kBos};
    for (const int32_t item : prefix) want.push_back(kItemFirst + item);
    EXPECT_EQ(segments(b)[s].tokens, want) << "user " << user;
  }
}

TEST(RecSource, CursorRestoresTheUninterruptedStream) {
  const RecDataset d = hand_dataset();
  RecSourceOptions o = small_options();
  o.mix = {1.0, 1.0, 1.0, 0.0};
  o.history_sampling = true;
  o.grad_accum = 3;
  const RecSource source(d, o);
  // The cursor is the first global sample of the micro-batch.
  EXPECT_EQ(source.cursor(0, 0).next_sample, 0);
  EXPECT_EQ(source.cursor(2, 1).next_sample, (2 * 3 + 1) * 4);
  EXPECT_EQ(source.cursor(2, 1).epoch, 28 / 34);
  // A checkpoint at step 4 saves cursor(4, 0); a restarted loader resumes from it.
  std::vector<Batch> uninterrupted;
  for (int64_t step = 4; step < 20; ++step) {
    for (int m = 0; m < 3; ++m) uninterrupted.push_back(source.train_batch(step, m));
  }
  const LoaderCursor saved = source.cursor(4, 0);
  const RecSource restarted(d, o);
  expect_same_batch(restarted.batch_at(saved), uninterrupted[0]);
  size_t k = 0;
  for (int64_t step = 4; step < 20; ++step) {
    for (int m = 0; m < 3; ++m) {
      expect_same_batch(restarted.batch_at(restarted.cursor(step, m)), uninterrupted[k]);
      expect_same_batch(restarted.train_batch(step, m), uninterrupted[k]);
      ++k;
    }
  }
}

// What holds across world sizes: the global sample stream is fixed by the seed, and rank r of W
// with micro_batch m takes samples [r·m, (r+1)·m) of the W·m samples that one rank with
// micro_batch W·m gets at the same (step, micro). So the ranks' segments, concatenated in rank
// order, equal the single rank's, and the cursors agree.
TEST(RecSource, RanksSplitTheSingleRankBatchInRankOrder) {
  const RecDataset d = hand_dataset();
  RecSourceOptions one = small_options();
  one.mix = {1.0, 1.0, 1.0, 0.0};
  one.history_sampling = true;
  one.positions_2d = true;
  one.grad_accum = 2;
  one.micro_batch = 6;
  const RecSource single(d, one);
  RecSourceOptions per_rank = one;
  per_rank.micro_batch = 3;
  per_rank.world = 2;
  for (int64_t step : {0, 3, 17}) {
    for (int micro : {0, 1}) {
      std::vector<Segment> joined;
      for (int rank = 0; rank < 2; ++rank) {
        per_rank.rank = rank;
        const RecSource source(d, per_rank);
        EXPECT_EQ(source.cursor(step, micro).next_sample, single.cursor(step, micro).next_sample);
        const auto part = segments(source.train_batch(step, micro));
        joined.insert(joined.end(), part.begin(), part.end());
      }
      EXPECT_EQ(joined, segments(single.train_batch(step, micro)))
          << "step " << step << " micro " << micro;
    }
  }
  for (int index : {0, 5}) {  // held-out batches split the same way (batch 5 wraps around)
    std::vector<Segment> joined;
    for (int rank = 0; rank < 2; ++rank) {
      per_rank.rank = rank;
      const auto part = segments(RecSource(d, per_rank).val_batch(index));
      joined.insert(joined.end(), part.begin(), part.end());
    }
    EXPECT_EQ(joined, segments(single.val_batch(index))) << "validation batch " << index;
  }
}

TEST(RecSource, IdNextItemTrainingRestrictsTheSoftmaxToItemTokens) {
  const RecDataset d = hand_dataset();
  RecSourceOptions o = small_options();
  const Batch b = RecSource(d, o).train_batch(0, 0);
  EXPECT_EQ(b.class_begin, kItemFirst);
  EXPECT_EQ(b.class_count, kItems);
  for (size_t t = 0; t < b.targets.size(); ++t) {
    if (b.loss_weights[t] == 0) continue;
    EXPECT_GE(b.targets[t], b.class_begin);
    EXPECT_LT(b.targets[t], b.class_begin + b.class_count);
  }
  const Batch v = RecSource(d, o).val_batch(0);
  EXPECT_EQ(v.class_begin, kItemFirst);
  EXPECT_EQ(v.class_count, kItems);

  // Attributes that are input only (no loss after the <item> token): still the items alone, in
  // training and validation, and the attribute tokens are there as input.
  RecSourceOptions input_attributes = o;
  input_attributes.render.attributes = true;
  input_attributes.title_loss_weight = 0;
  const RecSource with_attributes(d, input_attributes);
  for (const Batch& a : {with_attributes.train_batch(0, 0), with_attributes.val_batch(0)}) {
    EXPECT_EQ(a.class_begin, kItemFirst);
    EXPECT_EQ(a.class_count, kItems);
    int weighted = 0, attribute_inputs = 0;
    for (size_t t = 0; t < a.targets.size(); ++t) {
      attribute_inputs += a.tokens[t] >= d.vocab.attributes.first;
      if (a.loss_weights[t] == 0) continue;
      ++weighted;
      EXPECT_GE(a.targets[t], a.class_begin);
      EXPECT_LT(a.targets[t], a.class_begin + a.class_count);
    }
    EXPECT_GT(weighted, 0);
    EXPECT_GT(attribute_inputs, 0);
  }

  // Whenever another token could be a weighted target: the whole vocabulary.
  RecSourceOptions attributes = o;
  attributes.render.attributes = true;
  RecSourceOptions text = o;
  text.render.rendering = ItemRendering::kIdText;
  RecSourceOptions infill = o;
  infill.mix.infill = 0.5;
  RecSourceOptions text_lm = o;
  text_lm.mix.text_lm = 0.5;
  for (const RecSourceOptions& other : {attributes, text, infill, text_lm}) {
    const RecSource source(d, other);
    EXPECT_EQ(source.train_batch(0, 0).class_count, 0);
    EXPECT_EQ(source.val_batch(0).class_count, 0);
  }
}

TEST(RecSource, ValidationBatchesPredictOnlyTheHeldOutTargetInUserOrder) {
  const RecDataset d = hand_dataset();
  std::vector<int64_t> val_users;
  for (int64_t u = 0; u < kUsers; ++u) {
    if (2 + u % 7 >= 3) val_users.push_back(u);
  }
  RecSourceOptions o = small_options();
  o.micro_batch = 5;
  const RecSource source(d, o);
  // Batch 7 covers validation users 35.. which wraps past the end of the 34.
  for (int index : {0, 1, 7}) {
    const Batch b = source.val_batch(index);
    ASSERT_EQ(b.n_segments(), 5);
    const auto segs = segments(b);
    for (int i = 0; i < 5; ++i) {
      const int64_t user = val_users[(index * 5 + i) % val_users.size()];
      const SplitView view = split_view(d.users, user, Split::kValidation);
      Tokens want = {kBos};
      for (const int32_t item : view.history) want.push_back(kItemFirst + item);
      want.push_back(kItemFirst + view.target);
      EXPECT_EQ(segs[i].tokens, want) << "user " << user;
      std::vector<float> weights(want.size(), 0.0f);
      weights[want.size() - 2] = 1.0f;  // the position predicting the target
      EXPECT_EQ(segs[i].weights, weights);
      EXPECT_EQ(segs[i].targets[want.size() - 2], kItemFirst + view.target);
    }
  }
  expect_same_batch(source.val_batch(1), source.val_batch(1));
}

TEST(RecSource, SizesAndDescription) {
  const RecDataset d = hand_dataset();
  RecSourceOptions o = small_options();
  o.mix = {1.0, 1.0, 1.0, 0.0};
  o.render.rendering = ItemRendering::kIdText;
  o.max_seq_len = 12;
  o.history_sampling = true;
  const RecSource source(d, o);
  EXPECT_EQ(source.max_batch_tokens(), 4 * 12);
  EXPECT_EQ(source.min_vocab_size(), d.vocab.vocab_size);
  for (int64_t step = 0; step < 30; ++step) {
    const Batch b = source.train_batch(step, 0);
    EXPECT_LE(b.n_tokens(), source.max_batch_tokens());
    for (int64_t s = 0; s < b.n_segments(); ++s) {
      EXPECT_LE(b.cu_seqlens[s + 1] - b.cu_seqlens[s], 12);
    }
  }
  const std::string line = source.describe();
  EXPECT_EQ(line.find('\n'), std::string::npos);
  for (const char* part : {"hand", "40 users", "34 train", "60 items", "next-item 0.33",
                           "infill 0.33", "id+text"}) {
    EXPECT_NE(line.find(part), std::string::npos) << part << " in: " << line;
  }
}

TEST(RecSource, RejectsBadOptionsAsUserErrors) {
  const RecDataset d = hand_dataset();
  RecSourceOptions o = small_options();
  o.mix = {0, 0, 0, 0};
  EXPECT_NE(thrown_message<UserError>([&] { RecSource(d, o); }).find("data.next_item_weight"),
            std::string::npos);
  o = small_options();
  o.held_out_prompts = {"no-such-template"};
  EXPECT_NE(thrown_message<UserError>([&] { RecSource(d, o); }).find("no-such-template"),
            std::string::npos);
  o = small_options();
  o.max_seq_len = 1;
  EXPECT_NE(thrown_message<UserError>([&] { RecSource(d, o); }).find("data.seq_len"),
            std::string::npos);
  RecDataset short_users = hand_dataset();
  short_users.users.offsets = {0, 1, 4};  // user 0: 1 item; user 1: 3 items (1-item prefix)
  short_users.users.items = {0, 1, 2, 3};
  short_users.users.keys = {"a", "b"};
  EXPECT_NE(thrown_message<UserError>([&] { RecSource(short_users, small_options()); })
                .find("hand"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The full mix, with prompts, on a synthetic catalog with a learned tokenizer.

enum class Kind { kNextItem, kInfill, kTextLm, kPrompt };

// Recognises a sample's objective from its shape (ID rendering): infilling has a bidirectional
// prefix; next-item is [BOS] and item tokens only; text LM is text without item tokens; a prompt
// mixes words and item tokens.
Kind kind_of(const Segment& s, const VocabLayout& vocab) {
  if (s.prefix_len > 0) return Kind::kInfill;
  bool items = false, text = false;
  for (size_t i = 1; i < s.tokens.size(); ++i) {
    items |= vocab.is_item_token(s.tokens[i]);
    text |= s.tokens[i] < vocab.text_size;
  }
  if (items && !text) return Kind::kNextItem;
  if (text && !items) return Kind::kTextLm;
  return Kind::kPrompt;
}

TEST(RecSource, ObjectiveMixFrequenciesFollowTheRatios) {
  SyntheticRecOptions so;
  so.n_users = 300;
  so.n_items = 80;
  so.seed = 11;
  RecDataset d = make_synthetic_dataset(so);
  VocabOptions vo;
  vo.learned_vocab_size = 400;
  build_item_vocabulary(d, vo);

  RecSourceOptions o;
  o.mix = {0.4, 0.3, 0.2, 0.1};
  o.max_seq_len = 160;
  o.micro_batch = 100;
  o.history_sampling = true;
  o.held_out_prompts = {prompt_templates().front().name};
  const RecSource source(d, o);
  std::map<Kind, int> counts;
  for (int64_t step = 0; step < 20; ++step) {
    const Batch b = source.train_batch(step, 0);
    for (const Segment& s : segments(b)) {
      const Kind k = kind_of(s, d.vocab);
      ++counts[k];
      // Every sample, whatever its objective, has something to learn.
      float total = 0;
      for (float w : s.weights) total += w;
      EXPECT_GT(total, 0.0f);
    }
  }
  EXPECT_NEAR(counts[Kind::kNextItem] / 2000.0, 0.4, 0.05);
  EXPECT_NEAR(counts[Kind::kInfill] / 2000.0, 0.3, 0.05);
  EXPECT_NEAR(counts[Kind::kTextLm] / 2000.0, 0.2, 0.04);
  EXPECT_NEAR(counts[Kind::kPrompt] / 2000.0, 0.1, 0.03);

  // The same mix in ID+text rendering with 2D positions: every segment fits and carries intra
  // positions.
  RecSourceOptions rich = o;
  rich.render.rendering = ItemRendering::kIdText;
  rich.positions_2d = true;
  rich.micro_batch = 50;
  const RecSource rich_source(d, rich);
  for (int64_t step = 0; step < 4; ++step) {
    const Batch b = rich_source.train_batch(step, 0);
    EXPECT_EQ(b.pos_intra.size(), b.tokens.size());
    EXPECT_LE(b.n_tokens(), rich_source.max_batch_tokens());
    for (int64_t s = 0; s < b.n_segments(); ++s) {
      EXPECT_LE(b.cu_seqlens[s + 1] - b.cu_seqlens[s], rich.max_seq_len);
    }
  }

  // An objective of weight 0 never appears.
  o.mix = {1.0, 0.0, 1.0, 0.0};
  const RecSource no_infill(d, o);
  for (int64_t step = 0; step < 3; ++step) {
    EXPECT_TRUE(no_infill.train_batch(step, 0).prefix_lens.empty());
  }
}

}  // namespace
}  // namespace reclm
