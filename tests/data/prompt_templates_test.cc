// P5-style prompt templates (data/prompt_templates.h): template names, the text a prompt reads as,
// loss only on the answer, direct-recommendation candidates, cropping, and the inference prompt.
#include "data/prompt_templates.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "runtime/errors.h"
#include "runtime/rng.h"
#include "thrown_message.h"

namespace reclm {
namespace {

constexpr int32_t kItems = 100;

// A catalog of 100 titled items and three users (ratings optional) over a small BPE vocabulary
// learned here, laid out as `reclm prepare` does: text, the 8 specials, then the item tokens.
struct Fixture {
  BpeTokenizer tokenizer;
  RecDataset dataset;
};

Fixture make_fixture(bool with_ratings) {
  const std::vector<std::string> words = {"Red",   "Gentle", "Matte", "Shampoo", "Lipstick",
                                          "Cream", "Soft",   "Brush", "Night",   "Serum"};
  std::vector<std::string> titles;
  for (int32_t i = 0; i < kItems; ++i) {
    titles.push_back(words[i % 10] + " " + words[(i * 3 + 1) % 10] + " " + std::to_string(i));
  }
  std::vector<std::string> lines = titles;
  lines.push_back("Customer has bought in this order. What will the customer buy next?");
  Fixture f{train_bpe(lines, 320), {}};
  const int32_t text_size = f.tokenizer.vocab_size() - 8;  // train_bpe appends the 8 specials
  const TokenRange items = f.tokenizer.add_item_tokens(kItems);

  RecDataset& d = f.dataset;
  d.source = "prompt fixture";
  d.vocab.text_size = text_size;
  d.vocab.special_first = text_size;
  d.vocab.items = items;
  d.vocab.attributes = {items.first + items.count, 0};
  d.vocab.vocab_size = items.first + items.count;
  d.items.title_offsets.push_back(0);
  d.items.attr_offsets.assign(kItems + 1, 0);
  for (int32_t i = 0; i < kItems; ++i) {
    d.items.keys.push_back("item" + std::to_string(i));
    d.items.titles.push_back(titles[i]);
    const std::vector<int32_t> ids = f.tokenizer.encode(titles[i]);
    d.items.title_tokens.insert(d.items.title_tokens.end(), ids.begin(), ids.end());
    d.items.title_offsets.push_back(static_cast<int64_t>(d.items.title_tokens.size()));
  }
  // user0: items 0..84 (so few items are left for candidates); user1: 3 7 9 12; user2: 30 31.
  d.users.keys = {"user0", "user1", "user2"};
  d.users.offsets.push_back(0);
  for (int32_t i = 0; i < 85; ++i) d.users.items.push_back(i);
  d.users.offsets.push_back(85);
  for (int32_t i : {3, 7, 9, 12}) d.users.items.push_back(i);
  d.users.offsets.push_back(89);
  for (int32_t i : {30, 31}) d.users.items.push_back(i);
  d.users.offsets.push_back(91);
  if (with_ratings) d.users.ratings.assign(d.users.items.size(), 4.0f);
  return f;
}

const Fixture& fixture() {
  static const Fixture f = make_fixture(true);
  return f;
}

constexpr RenderOptions kIds{ItemRendering::kId, false};
constexpr RenderOptions kTitles{ItemRendering::kText, false};

Sample sample_of(const std::string& name, int64_t user, std::vector<int32_t> history,
                 int32_t target, const RenderOptions& render, bool positions_2d = false,
                 int32_t max_tokens = 1024, uint64_t key = 0, float rating = 4.0f,
                 const Fixture& f = fixture()) {
  CounterRng rng(3, RngPurpose::kDataSample, 0, 0, key);
  return prompt_sample(f.dataset, f.tokenizer, find_prompt_template(name), user, history, target,
                       rating, render, positions_2d, max_tokens, rng);
}

std::vector<int32_t> weighted_targets(const Sample& s) {
  std::vector<int32_t> out;
  for (int32_t i = 0; i < s.size(); ++i) {
    EXPECT_TRUE(s.loss_weights[i] == 0.0f || s.loss_weights[i] == 1.0f);
    if (s.loss_weights[i] != 0.0f) out.push_back(s.targets[i]);
  }
  return out;
}

std::vector<int32_t> entity(int32_t item, const RenderOptions& render) {
  std::vector<int32_t> out;
  append_item_tokens(fixture().dataset, item, render, out);
  return out;
}

TEST(PromptTemplates, NamesAreUniqueFoundAndEveryFamilyHasWordings) {
  std::set<std::string> names;
  int per_family[3] = {0, 0, 0};
  for (const PromptTemplate& t : prompt_templates()) {
    EXPECT_TRUE(names.insert(t.name).second) << "duplicate " << t.name;
    EXPECT_EQ(&find_prompt_template(t.name), &t);
    ++per_family[static_cast<int>(t.family)];
  }
  EXPECT_GE(per_family[static_cast<int>(PromptFamily::kSequential)], 2);
  EXPECT_GE(per_family[static_cast<int>(PromptFamily::kDirect)], 2);
  EXPECT_GE(per_family[static_cast<int>(PromptFamily::kRating)], 1);
}

TEST(PromptTemplates, UnknownNameIsAUserErrorListingTheNames) {
  const std::string message = thrown_message<UserError>([] { find_prompt_template("seq-99"); });
  EXPECT_NE(message.find("seq-99"), std::string::npos) << message;
  for (const PromptTemplate& t : prompt_templates()) {
    EXPECT_NE(message.find(t.name), std::string::npos) << message;
  }
}

TEST(PromptTemplates, SequentialPromptReadsAsTheWordingWithEntities) {
  const Sample s = sample_of("seq-1", 1, {3, 7}, 9, kIds);
  EXPECT_EQ(fixture().tokenizer.decode(s.tokens),
            "[BOS]Customer user1 has bought <item_3>, <item_7> in this order. What will the "
            "customer buy next?\n<item_9>");
  const Sample t = sample_of("seq-1", 1, {3, 7}, 9, kTitles);
  EXPECT_EQ(fixture().tokenizer.decode(t.tokens),
            "[BOS]Customer user1 has bought " + fixture().dataset.items.titles[3] + ", " +
                fixture().dataset.items.titles[7] +
                " in this order. What will the customer buy next?\n" +
                fixture().dataset.items.titles[9]);
}

TEST(PromptTemplates, LossCoversExactlyTheAnswerEntity) {
  for (const PromptTemplate& t : prompt_templates()) {
    if (t.family == PromptFamily::kRating) continue;
    for (const RenderOptions& render :
         {kIds, kTitles, RenderOptions{ItemRendering::kIdText, false}}) {
      SCOPED_TRACE(t.name);
      const Sample s = sample_of(t.name, 1, {3, 7, 9}, 12, render);
      const std::vector<int32_t> answer = entity(12, render);
      EXPECT_EQ(weighted_targets(s), answer);
      // The weighted positions are the last |answer| ones before the final token, which ends
      // the answer and predicts nothing.
      const auto n = static_cast<int32_t>(s.size()), m = static_cast<int32_t>(answer.size());
      for (int32_t i = 0; i < n; ++i) {
        EXPECT_EQ(s.loss_weights[i], i >= n - 1 - m && i < n - 1 ? 1.0f : 0.0f) << i;
      }
      EXPECT_EQ(std::vector<int32_t>(s.tokens.end() - m, s.tokens.end()), answer);
      EXPECT_EQ(s.tokens[0], fixture().dataset.vocab.bos());
      EXPECT_EQ(s.prefix_len, 0);
    }
  }
}

TEST(PromptTemplates, RatingAnswerIsTheRatingTextThenEos) {
  const BpeTokenizer& tok = fixture().tokenizer;
  for (const PromptTemplate& t : prompt_templates()) {
    if (t.family != PromptFamily::kRating) continue;
    for (const float rating : {4.0f, 4.5f}) {
      const Sample s = sample_of(t.name, 1, {3, 7}, 9, kIds, false, 1024, 0, rating);
      std::vector<int32_t> answer = weighted_targets(s);
      ASSERT_FALSE(answer.empty());
      EXPECT_EQ(answer.back(), fixture().dataset.vocab.eos());
      answer.pop_back();
      EXPECT_EQ(tok.decode(answer), rating == 4.0f ? "4" : "4.5");
      EXPECT_NE(tok.decode(s.tokens).find("<item_9>"), std::string::npos) << "rated item shown";
    }
  }
}

TEST(PromptTemplates, RatingTemplateWithoutRatingsIsAnInternalError) {
  const Fixture f = make_fixture(false);
  EXPECT_THROW(sample_of("rating-1", 1, {3}, 7, kIds, false, 1024, 0, 4.0f, f), InternalError);
}

// The candidate list of a direct prompt rendered with ids: the <item_N> between the last
// "customer: " ... "?" of direct-1.
std::vector<int32_t> candidates_of(const Sample& s) {
  const std::string text = fixture().tokenizer.decode(s.tokens);
  const size_t begin = text.find("customer: "), end = text.rfind("?\n");
  EXPECT_NE(begin, std::string::npos);
  const std::string list = text.substr(begin, end - begin);
  std::vector<int32_t> items;
  const std::regex item_re("<item_([0-9]+)>");
  for (auto it = std::sregex_iterator(list.begin(), list.end(), item_re);
       it != std::sregex_iterator(); ++it) {
    items.push_back(std::stoi((*it)[1]));
  }
  return items;
}

TEST(PromptTemplates, DirectCandidatesHoldTheTargetAndNothingTheUserHad) {
  const auto whole = fixture().dataset.users.history(1);
  std::set<std::vector<int32_t>> orders;
  std::set<ptrdiff_t> target_places;  // shuffled: the answer is not always in the same place
  for (uint64_t key = 0; key < 10; ++key) {
    const Sample s = sample_of("direct-1", 1, {3, 7}, 9, kIds, false, 1024, key);
    const std::vector<int32_t> c = candidates_of(s);
    target_places.insert(std::find(c.begin(), c.end(), 9) - c.begin());
    ASSERT_EQ(c.size(), 20u);
    EXPECT_EQ(std::count(c.begin(), c.end(), 9), 1);
    EXPECT_EQ(std::set<int32_t>(c.begin(), c.end()).size(), 20u) << "duplicate candidates";
    for (const int32_t item : c) {
      if (item != 9) {
        EXPECT_EQ(std::count(whole.begin(), whole.end(), item), 0) << item;
      }
    }
    EXPECT_EQ(weighted_targets(s), entity(9, kIds));
    orders.insert(c);
  }
  EXPECT_GE(orders.size(), 8u);
  EXPECT_GE(target_places.size(), 4u);
}

TEST(PromptTemplates, DirectCandidatesShrinkWhenFewItemsAreLeft) {
  // user0 had items 0..84 of 100: 15 never-had items remain, all of them candidates.
  const Sample s = sample_of("direct-1", 0, {20, 21, 22}, 84, kIds, false, 1024, 4);
  std::vector<int32_t> c = candidates_of(s);
  std::sort(c.begin(), c.end());
  std::vector<int32_t> expected = {84};
  for (int32_t i = 85; i < kItems; ++i) expected.push_back(i);
  EXPECT_EQ(c, expected);
}

TEST(PromptTemplates, SameKeySameSample) {
  for (const PromptTemplate& t : prompt_templates()) {
    const Sample a = sample_of(t.name, 1, {3, 7}, 9, kTitles, true, 1024, 5);
    const Sample b = sample_of(t.name, 1, {3, 7}, 9, kTitles, true, 1024, 5);
    EXPECT_EQ(a.tokens, b.tokens) << t.name;
    EXPECT_EQ(a.targets, b.targets);
    EXPECT_EQ(a.loss_weights, b.loss_weights);
    EXPECT_EQ(a.pos_intra, b.pos_intra);
  }
}

TEST(PromptTemplates, PositionsAreRunningAndIntraCountsInsideEntities) {
  const Fixture& f = fixture();
  const RenderOptions id_text{ItemRendering::kIdText, false};
  for (const PromptTemplate& t : prompt_templates()) {
    SCOPED_TRACE(t.name);
    const Sample one = sample_of(t.name, 1, {3, 7}, 9, id_text, false);
    EXPECT_TRUE(one.pos_intra.empty());
    for (int32_t i = 0; i < one.size(); ++i) EXPECT_EQ(one.pos_inter[i], i);

    const Sample s = sample_of(t.name, 1, {3, 7}, 9, id_text, true);
    EXPECT_EQ(s.tokens, one.tokens);
    ASSERT_EQ(s.pos_intra.size(), s.tokens.size());
    for (int32_t i = 0; i < s.size(); ++i) EXPECT_EQ(s.pos_inter[i], i);
    // With id+title rendering each entity starts at its item token: intra 1 there, then
    // 2..len+1 over the title; 0 on every other token.
    int32_t entities = 0;
    for (int32_t i = 0; i < s.size();) {
      if (!f.dataset.vocab.is_item_token(s.tokens[i])) {
        EXPECT_EQ(s.pos_intra[i], 0) << i;
        ++i;
        continue;
      }
      const auto length =
          static_cast<int32_t>(entity(s.tokens[i] - f.dataset.vocab.items.first, id_text).size());
      for (int32_t j = 0; j < length; ++j) EXPECT_EQ(s.pos_intra[i + j], j + 1) << i + j;
      i += length;
      ++entities;
    }
    // 2 history items + the answer (sequential), the 20 candidates and the answer (direct), or
    // the rated item (rating, whose answer is text).
    EXPECT_EQ(entities, 2 + (t.family == PromptFamily::kDirect ? 21 : 1));
  }
}

TEST(PromptTemplates, CroppingKeepsTheMostRecentHistoryThenFails) {
  const BpeTokenizer& tok = fixture().tokenizer;
  const Sample full = sample_of("seq-2", 0, {1, 2, 3, 4, 5, 6}, 7, kIds);
  // Each history item costs 3 tokens (its id, "," and " "): 4 tokens less drop two items.
  const Sample cropped = sample_of("seq-2", 0, {1, 2, 3, 4, 5, 6}, 7, kIds, false, full.size() - 4);
  const std::string text = tok.decode(cropped.tokens);
  EXPECT_LE(cropped.size(), full.size() - 4);
  EXPECT_EQ(text.find("<item_1>"), std::string::npos) << text;
  EXPECT_EQ(text.find("<item_2>"), std::string::npos) << text;
  EXPECT_NE(text.find("<item_3>, <item_4>, <item_5>, <item_6>"), std::string::npos) << text;
  EXPECT_EQ(weighted_targets(cropped), entity(7, kIds));

  const std::string message = thrown_message<UserError>([&] {
    sample_of("seq-2", 0, {1, 2}, 7, kIds, false, 10);
  });
  EXPECT_NE(message.find("data.seq_len"), std::string::npos) << message;
  EXPECT_NE(message.find("seq-2"), std::string::npos) << message;
}

TEST(PromptTemplates, EvalPromptIsTheTrainingPromptUpToTheAnswer) {
  const Fixture& f = fixture();
  for (const PromptTemplate& t : prompt_templates()) {
    if (t.family != PromptFamily::kSequential) {
      EXPECT_THROW(sequential_prompt_for_eval(f.dataset, f.tokenizer, t, 1, std::vector{3, 7},
                                              kTitles, true, 1024),
                   UserError);
      continue;
    }
    const Sample train = sample_of(t.name, 1, {3, 7}, 9, kTitles, true);
    const Sample eval = sequential_prompt_for_eval(f.dataset, f.tokenizer, t, 1, std::vector{3, 7},
                                                   kTitles, true, 1024);
    const auto answer = static_cast<int32_t>(entity(9, kTitles).size());
    ASSERT_EQ(eval.size(), train.size() - answer);
    EXPECT_TRUE(std::equal(eval.tokens.begin(), eval.tokens.end(), train.tokens.begin()));
    EXPECT_TRUE(std::equal(eval.pos_intra.begin(), eval.pos_intra.end(), train.pos_intra.begin()));
    for (const float w : eval.loss_weights) EXPECT_EQ(w, 0.0f);
  }
}

}  // namespace
}  // namespace reclm
