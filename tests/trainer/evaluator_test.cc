// `reclm eval` / `reclm recommend` end to end on hand-made datasets and tiny random models:
// batched item scoring equals a one-user-at-a-time double reference, history exclusion removes
// exactly the history items that outranked the target, the text modes agree with each other,
// and the report carries what a reader needs.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "eval_test_util.h"
#include "runtime/errors.h"
#include "trainer/beam_search.h"
#include "trainer/evaluator.h"
#include "trainer/title_trie.h"

namespace reclm {
namespace {

// Every cutoff 1..n: the HR@K curve pins the multiset of ranks exactly, so equal reports mean
// equal ranks, not just equal averages.
std::vector<int> all_ks(int n) {
  std::vector<int> ks(n);
  std::iota(ks.begin(), ks.end(), 1);
  return ks;
}

void expect_same(const RankingResult& a, const RankingResult& b, const char* what) {
  EXPECT_EQ(a.n_users, b.n_users) << what;
  ASSERT_EQ(a.at_k.size(), b.at_k.size()) << what;
  for (size_t i = 0; i < a.at_k.size(); ++i) {
    EXPECT_EQ(a.at_k[i].k, b.at_k[i].k) << what;
    EXPECT_DOUBLE_EQ(a.at_k[i].hit_rate, b.at_k[i].hit_rate) << what << " HR@" << a.at_k[i].k;
    EXPECT_DOUBLE_EQ(a.at_k[i].ndcg, b.at_k[i].ndcg) << what << " NDCG@" << a.at_k[i].k;
  }
  EXPECT_DOUBLE_EQ(a.mrr, b.mrr) << what;
}

// Reference ranks of every user with a target: each history forwarded alone, every item's logit
// in double, rank counted by hand — without exclusion, or minus the distinct history items (other
// than the target) that scored at or above the target.
struct ReferenceRanks {
  RankingAccumulator model, popularity;
};
ReferenceRanks reference_item_ranks(Model& model, const RecDataset& dataset,
                                    const InferenceSetup& setup, Split split, bool exclude,
                                    int64_t max_users) {
  const int32_t n_items = dataset.items.size();
  std::vector<float> pop(n_items, 0.0f);
  for (const int32_t item : training_items(dataset.users)) pop[item] += 1;
  ReferenceRanks ref;
  int64_t taken = 0;
  for (int64_t u = 0; u < dataset.users.size(); ++u) {
    const SplitView view = split_view(dataset.users, u, split);
    if (!view.has_target) continue;
    if (max_users > 0 && taken == max_users) break;
    ++taken;
    const Sample prompt = history_prompt(dataset, view.history, setup.render, setup.positions_2d,
                                         setup.max_seq_len);
    const auto logits = test::naive_logits(model, prompt).back();
    std::vector<float> scores(n_items);
    for (int32_t i = 0; i < n_items; ++i) scores[i] = static_cast<float>(logits[58 + i]);
    for (const auto* s : {&scores, &pop}) {
      const float t = (*s)[view.target];
      int64_t rank = 0;
      for (int32_t i = 0; i < n_items; ++i) rank += i != view.target && (*s)[i] >= t;
      if (exclude) {
        const std::set<int32_t> history(view.history.begin(), view.history.end());
        for (const int32_t h : history) rank -= h != view.target && (*s)[h] >= t;
      }
      (s == &scores ? ref.model : ref.popularity).add(rank);
    }
  }
  return ref;
}

InferenceSetup setup_for(ItemRendering rendering, bool positions_2d) {
  InferenceSetup setup;
  setup.render = {rendering, false};
  setup.positions_2d = positions_2d;
  setup.max_seq_len = 24;  // long histories are cut to their most recent items
  return setup;
}

EvalOptions quiet_options(EvalMode mode, Split split, bool exclude, int n_items) {
  EvalOptions options;
  options.mode = mode;
  options.split = split;
  options.exclude_history = exclude;
  options.ks = all_ks(n_items);
  options.progress = false;
  return options;
}

TEST(Evaluate, ItemScoresEqualOneUserAtATimeReference) {
  const RecDataset dataset = test::random_dataset(30, 25, 3);
  for (const bool positions_2d : {false, true}) {
    for (const ItemRendering rendering : {ItemRendering::kId, ItemRendering::kIdText}) {
      const InferenceSetup setup = setup_for(rendering, positions_2d);
      Model model = test::tiny_model(dataset, positions_2d, 512);
      for (const Split split : {Split::kValidation, Split::kTest}) {
        EvalOptions options = quiet_options(EvalMode::kItemScores, split, false, 30);
        options.users_per_batch = 7;
        const EvalReport report = evaluate(model, dataset, setup, options);
        const ReferenceRanks ref = reference_item_ranks(model, dataset, setup, split, false, 0);
        ASSERT_GT(report.n_users, 10);
        EXPECT_EQ(report.n_users, ref.model.n_users());
        expect_same(report.model, ref.model.result(options.ks), "model");
        expect_same(report.popularity, ref.popularity.result(options.ks), "popularity");

        // A 30-token arena holds one history at a time: batches shrink, ranks do not change.
        Model narrow = test::copy_with_arena(model, 30);
        options.users_per_batch = 64;
        expect_same(evaluate(narrow, dataset, setup, options).model, report.model, "narrow arena");

        options.max_users = 5;  // the first five users with a target
        const EvalReport first5 = evaluate(model, dataset, setup, options);
        EXPECT_EQ(first5.n_users, 5);
        expect_same(first5.model,
                    reference_item_ranks(model, dataset, setup, split, false, 5).model.result(options.ks),
                    "max_users");
      }
    }
  }
}

TEST(Evaluate, ExcludeHistoryDropsExactlyTheHistoryItemsAboveTheTarget) {
  const RecDataset dataset = test::random_dataset(20, 30, 8);  // long histories over 20 items
  const InferenceSetup setup = setup_for(ItemRendering::kId, false);
  Model model = test::tiny_model(dataset, false, 512, 4);
  EvalOptions options = quiet_options(EvalMode::kItemScores, Split::kTest, true, 20);
  const EvalReport excluded = evaluate(model, dataset, setup, options);
  const ReferenceRanks ref = reference_item_ranks(model, dataset, setup, Split::kTest, true, 0);
  expect_same(excluded.model, ref.model.result(options.ks), "model");
  expect_same(excluded.popularity, ref.popularity.result(options.ks), "popularity");
  EXPECT_TRUE(excluded.exclude_history);

  options.exclude_history = false;
  const EvalReport included = evaluate(model, dataset, setup, options);
  EXPECT_FALSE(included.exclude_history);
  // Excluding only ever lifts targets, and here it lifts some.
  EXPECT_GT(excluded.model.mrr, included.model.mrr);
  EXPECT_GT(excluded.popularity.mrr, included.popularity.mrr);
  for (size_t i = 0; i < options.ks.size(); ++i) {
    EXPECT_GE(excluded.model.at_k[i].hit_rate, included.model.at_k[i].hit_rate);
  }
}

TEST(Evaluate, WideBeamSearchEqualsTitleLikelihood) {
  const RecDataset dataset = test::make_dataset(
      test::prefix_titles(), {{0, 3, 6, 1}, {8, 2, 9}, {2, 2, 9, 4, 1}, {5, 7, 3, 0}, {1, 1, 1},
                              {6, 4, 2, 0, 8}, {9, 8}});
  const InferenceSetup setup = setup_for(ItemRendering::kText, true);
  Model model = test::tiny_model(dataset, true, 256);
  for (const bool exclude : {false, true}) {
    EvalOptions options = quiet_options(EvalMode::kTitleLikelihood, Split::kTest, exclude, 10);
    options.users_per_batch = 4;
    const EvalReport title = evaluate(model, dataset, setup, options);
    options.mode = EvalMode::kBeamSearch;
    options.beam_size = 10;
    const EvalReport beam = evaluate(model, dataset, setup, options);
    EXPECT_EQ(title.n_users, 6);
    expect_same(beam.model, title.model, "beam vs title likelihood");
    expect_same(beam.popularity, title.popularity, "popularity");
    EXPECT_EQ(beam.mode, "beam_search");
    EXPECT_EQ(title.mode, "title_likelihood");
  }
}

// A narrow beam ranks the items it found by score; a target it never found ranks last
// (n_items − 1, less the excluded history items).
TEST(Evaluate, BeamSearchRanksUnfoundTargetsLast) {
  const RecDataset dataset = test::make_dataset(
      test::prefix_titles(), {{0, 3, 6, 1}, {8, 2, 9}, {2, 2, 9, 4, 1}, {5, 7, 3, 0}, {1, 1, 1},
                              {6, 4, 2, 0, 8}, {3, 6, 7, 2}, {4, 0, 5}});
  const InferenceSetup setup = setup_for(ItemRendering::kText, false);
  Model model = test::tiny_model(dataset, false, 256, 9);
  const TitleTrie trie(item_token_sequences(dataset, setup.render));
  for (const bool exclude : {false, true}) {
    EvalOptions options = quiet_options(EvalMode::kBeamSearch, Split::kValidation, exclude, 10);
    options.beam_size = 2;
    const EvalReport report = evaluate(model, dataset, setup, options);
    RankingAccumulator expected;
    int unfound = 0;
    for (int64_t u = 0; u < dataset.users.size(); ++u) {
      const SplitView view = split_view(dataset.users, u, Split::kValidation);
      if (!view.has_target) continue;
      const Sample prompt = history_prompt(dataset, view.history, setup.render, false, 24);
      const auto found = constrained_beam_search(model, trie, std::span<const Sample>(&prompt, 1), 2)[0];
      const std::set<int32_t> history(view.history.begin(), view.history.end());
      const auto skip = [&](int32_t item) {
        return exclude && item != view.target && history.count(item) > 0;
      };
      const auto hit = std::find_if(found.begin(), found.end(),
                                    [&](const ScoredItem& s) { return s.item == view.target; });
      int64_t rank = 0;
      if (hit == found.end()) {
        ++unfound;
        rank = 9;
        for (const int32_t h : history) rank -= skip(h);
      } else {
        for (const ScoredItem& s : found) {
          rank += s.item != view.target && !skip(s.item) &&
                  static_cast<float>(s.logprob) >= static_cast<float>(hit->logprob);
        }
      }
      expected.add(rank);
    }
    EXPECT_GT(unfound, 0) << "the case must exercise unfound targets";
    expect_same(report.model, expected.result(options.ks), "beam ranks");
  }
}

TEST(EvalReport, TableAndJsonCarryEverything) {
  const RecDataset dataset = test::random_dataset(15, 12, 5);
  Model model = test::tiny_model(dataset, false, 256);
  EvalOptions options;
  options.ks = {1, 5, 10};
  options.progress = false;
  const EvalReport report = evaluate(model, dataset, setup_for(ItemRendering::kId, false), options);
  const std::string table = report.table();
  for (const char* needle : {"split test", "mode item_scores", "users", "history items excluded",
                             "HR@1", "HR@5", "HR@10", "NDCG@1", "NDCG@10", "MRR", "model",
                             "popularity", "ratio"}) {
    EXPECT_NE(table.find(needle), std::string::npos) << needle << " missing from\n" << table;
  }
  EXPECT_NE(table.find(fmt::format("{} users", report.n_users)), std::string::npos);
  EXPECT_NE(table.find(fmt::format("{:.4f}", report.model.at_k[2].hit_rate)), std::string::npos);

  const nlohmann::json j = report.to_json();
  EXPECT_EQ(j.at("split"), "test");
  EXPECT_EQ(j.at("mode"), "item_scores");
  EXPECT_EQ(j.at("exclude_history"), true);
  EXPECT_EQ(j.at("n_users"), report.n_users);
  EXPECT_EQ(j.at("ks"), nlohmann::json({1, 5, 10}));
  EXPECT_TRUE(j.contains("seconds"));
  EXPECT_DOUBLE_EQ(j.at("model").at("HR@10").get<double>(), report.model.at_k[2].hit_rate);
  EXPECT_DOUBLE_EQ(j.at("model").at("NDCG@5").get<double>(), report.model.at_k[1].ndcg);
  EXPECT_DOUBLE_EQ(j.at("model").at("MRR").get<double>(), report.model.mrr);
  EXPECT_DOUBLE_EQ(j.at("popularity").at("HR@1").get<double>(), report.popularity.at_k[0].hit_rate);
  EXPECT_DOUBLE_EQ(j.at("popularity").at("MRR").get<double>(), report.popularity.mrr);
  ASSERT_GT(report.popularity.mrr, 0);
  EXPECT_DOUBLE_EQ(j.at("ratio").at("MRR").get<double>(), report.model.mrr / report.popularity.mrr);

  EvalReport empty = report;  // popularity 0 → no ratio, never a division by zero
  empty.popularity.at_k[0].hit_rate = 0;
  EXPECT_TRUE(empty.to_json().at("ratio").at("HR@1").is_null());
}

TEST(Evaluate, RejectsTrainSplitAndBadOptions) {
  const RecDataset dataset = test::random_dataset(10, 5, 1);
  Model model = test::tiny_model(dataset, false, 128);
  const InferenceSetup setup = setup_for(ItemRendering::kId, false);
  EvalOptions options;
  options.progress = false;
  options.split = Split::kTrain;
  EXPECT_THROW(evaluate(model, dataset, setup, options), UserError);
  options.split = Split::kTest;
  options.ks = {0};
  EXPECT_THROW(evaluate(model, dataset, setup, options), UserError);
}

class Recommend : public ::testing::TestWithParam<EvalMode> {};

TEST_P(Recommend, TopKDistinctSortedAndHistoryExcludedWhenAsked) {
  const EvalMode mode = GetParam();
  const RecDataset dataset = test::make_dataset(test::prefix_titles(), {});
  const bool id_mode = mode == EvalMode::kItemScores;
  const InferenceSetup setup = setup_for(id_mode ? ItemRendering::kId : ItemRendering::kText, true);
  Model model = test::tiny_model(dataset, true, 256, 21);
  const std::vector<int32_t> history = {0, 3, 3, 8};
  const int k = 4;
  for (const bool exclude : {false, true}) {
    const auto recs = recommend(model, dataset, setup, mode, history, k, exclude);
    ASSERT_EQ(recs.size(), static_cast<size_t>(k));
    std::set<int32_t> items;
    for (size_t r = 0; r < recs.size(); ++r) {
      EXPECT_TRUE(items.insert(recs[r].item).second) << "duplicate item " << recs[r].item;
      if (r > 0) {
        EXPECT_GE(recs[r - 1].score, recs[r].score);
      }
      if (exclude) {
        EXPECT_EQ(std::count(history.begin(), history.end(), recs[r].item), 0) << recs[r].item;
      }
    }
    // Scores are what the mode says: the item's logit, or its title log-likelihood.
    const Sample prompt = history_prompt(dataset, history, setup.render, true, 24);
    if (id_mode) {
      const auto logits = test::naive_logits(model, prompt).back();
      for (const Recommendation& r : recs) EXPECT_NEAR(r.score, logits[58 + r.item], 1e-4);
      // The best item overall (or outside the history) comes first.
      int32_t best = -1;
      for (int32_t i = 0; i < dataset.items.size(); ++i) {
        if (exclude && std::count(history.begin(), history.end(), i)) continue;
        if (best < 0 || logits[58 + i] > logits[58 + best]) best = i;
      }
      EXPECT_EQ(recs[0].item, best);
    } else {
      const ItemTokenSequences seqs = item_token_sequences(dataset, setup.render);
      for (const Recommendation& r : recs) {
        EXPECT_NEAR(r.score, test::naive_entity_loglikelihood(model, prompt, seqs.of(r.item)), 1e-4);
      }
    }
  }
  const auto all = recommend(model, dataset, setup, mode, history, 100, true);
  EXPECT_EQ(all.size(), 7u);  // 10 items less the 3 distinct history items
  if (mode == EvalMode::kTitleLikelihood) {  // exhaustive scoring: the top 4 are the best 4
    const auto top = recommend(model, dataset, setup, mode, history, k, true);
    for (int r = 0; r < k; ++r) EXPECT_EQ(top[r].item, all[r].item);
  }
  // Six distinct history items leave exactly four to recommend; all four must come back.
  const std::vector<int32_t> long_history = {0, 1, 2, 3, 4, 6, 2};
  const auto rest = recommend(model, dataset, setup, mode, long_history, k, true);
  std::set<int32_t> rest_items;
  for (const Recommendation& r : rest) rest_items.insert(r.item);
  EXPECT_EQ(rest_items, (std::set<int32_t>{5, 7, 8, 9}));
  EXPECT_THROW(recommend(model, dataset, setup, mode, std::vector<int32_t>{99}, k, true), UserError);
}

INSTANTIATE_TEST_SUITE_P(Modes, Recommend,
                         ::testing::Values(EvalMode::kItemScores, EvalMode::kBeamSearch,
                                           EvalMode::kTitleLikelihood),
                         [](const auto& info) { return std::string(eval_mode_name(info.param)); });

}  // namespace
}  // namespace reclm
