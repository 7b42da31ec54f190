// Ranking metrics of `reclm eval`: hand-computed HR/NDCG/MRR, pessimistic ties, NaN handling,
// history exclusion, K beyond the catalogue, order-independent accumulation, a sort-based
// reference on random cases, and the popularity baseline.
#include "trainer/ranking_metrics.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>

#include "runtime/errors.h"

namespace reclm {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

const RankingAtK& at(const RankingResult& result, int k) {
  for (const RankingAtK& row : result.at_k) {
    if (row.k == k) return row;
  }
  throw std::runtime_error("no K in result");
}

TEST(RankMetrics, HandComputedRanksAndMetrics) {
  // One score row shared by three users (row_stride 0), items 0..7:
  const std::vector<float> scores = {0.1f, 0.9f, 0.4f, 0.7f, 0.2f, 0.0f, 0.3f, 0.5f};
  // Descending: item 1 (.9), 3 (.7), 7 (.5), 2 (.4), 6 (.3), 4 (.2), 0 (.1), 5 (0).
  // Targets 1, 7, 0 sit at ranks 0, 2, 6.
  const std::vector<int32_t> targets = {1, 7, 0};
  const std::vector<int64_t> ranks = rank_all(scores.data(), 0, 8, targets, {});
  EXPECT_EQ(ranks, (std::vector<int64_t>{0, 2, 6}));

  RankingAccumulator acc;
  acc.add_all(ranks);
  const std::vector<int> ks = {1, 5, 10, 20};
  const RankingResult r = acc.result(ks);
  EXPECT_EQ(r.n_users, 3);
  ASSERT_EQ(r.at_k.size(), 4u);
  EXPECT_EQ(r.at_k[0].k, 1);
  // gains 1/log2(rank+2): rank 0 → 1, rank 2 → 1/log2 4 = 1/2, rank 6 → 1/log2 8 = 1/3.
  // HR@1 = 1/3 (rank 0 only);          NDCG@1 = 1/3
  // HR@5 = 2/3 (ranks 0, 2);           NDCG@5 = (1 + 1/2)/3 = 1/2
  // HR@10 = HR@20 = 1;                 NDCG@10 = NDCG@20 = (1 + 1/2 + 1/3)/3 = 11/18
  // MRR = (1/1 + 1/3 + 1/7)/3 = (31/21)/3 = 31/63
  EXPECT_DOUBLE_EQ(at(r, 1).hit_rate, 1.0 / 3);
  EXPECT_DOUBLE_EQ(at(r, 1).ndcg, 1.0 / 3);
  EXPECT_DOUBLE_EQ(at(r, 5).hit_rate, 2.0 / 3);
  EXPECT_DOUBLE_EQ(at(r, 5).ndcg, 0.5);
  EXPECT_DOUBLE_EQ(at(r, 10).hit_rate, 1.0);
  EXPECT_DOUBLE_EQ(at(r, 10).ndcg, 11.0 / 18);
  EXPECT_DOUBLE_EQ(at(r, 20).ndcg, 11.0 / 18);
  EXPECT_DOUBLE_EQ(r.mrr, 31.0 / 63);

  // The same users with their own rows (row_stride = n_items) give the same ranks.
  std::vector<float> per_user;
  for (int u = 0; u < 3; ++u) per_user.insert(per_user.end(), scores.begin(), scores.end());
  EXPECT_EQ(rank_all(per_user.data(), 8, 8, targets, {}), ranks);
}

TEST(RankMetrics, KLargerThanCatalogue) {
  // 3 items, ranks 0, 1, 2: every user is inside K = 20.
  // HR@20 = 1; NDCG@20 = (1 + 1/log2 3 + 1/log2 4)/3; MRR = (1 + 1/2 + 1/3)/3 = 11/18.
  RankingAccumulator acc;
  for (int32_t target = 0; target < 3; ++target) {
    const std::vector<float> scores = {3.0f, 2.0f, 1.0f};
    acc.add(target_rank(scores.data(), 3, target));
  }
  const std::vector<int> ks = {20, 2};
  const RankingResult r = acc.result(ks);
  EXPECT_EQ(r.at_k[0].k, 20);  // requested order kept
  EXPECT_DOUBLE_EQ(r.at_k[0].hit_rate, 1.0);
  EXPECT_DOUBLE_EQ(r.at_k[0].ndcg, (1.0 + 1.0 / std::log2(3.0) + 0.5) / 3);
  EXPECT_DOUBLE_EQ(r.at_k[1].hit_rate, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.mrr, 11.0 / 18);
}

TEST(RankMetrics, EmptyAndInvalid) {
  const RankingAccumulator empty;
  const std::vector<int> ks = {10};
  const RankingResult r = empty.result(ks);
  EXPECT_EQ(r.n_users, 0);
  EXPECT_EQ(r.at_k[0].hit_rate, 0.0);
  EXPECT_EQ(r.mrr, 0.0);
  const std::vector<int> zero_k = {0};
  EXPECT_THROW(empty.result(zero_k), InternalError);
  RankingAccumulator acc;
  EXPECT_THROW(acc.add(-1), InternalError);
  const std::vector<float> scores = {1.0f, 2.0f};
  EXPECT_THROW(target_rank(scores.data(), 2, 2), InternalError);
  const std::vector<int32_t> bad_history = {5};
  EXPECT_THROW(target_rank(scores.data(), 2, 0, bad_history), InternalError);
}

TEST(RankTies, ConstantScoresRankLast) {
  // A constant model ties every item: the target goes behind all n_items − 1 others.
  const std::vector<float> scores(7, 0.25f);
  for (int32_t target = 0; target < 7; ++target) {
    EXPECT_EQ(target_rank(scores.data(), 7, target), 6);
  }
  RankingAccumulator acc;
  acc.add(6);
  const std::vector<int> ks = {1, 5, 6, 7};
  const RankingResult r = acc.result(ks);
  EXPECT_EQ(at(r, 6).hit_rate, 0.0);  // no credit below the whole catalogue
  EXPECT_EQ(at(r, 7).hit_rate, 1.0);
}

TEST(RankTies, PartialTiesCountOtherItemsOnly) {
  // Item 1 ties items 2, 3 (score 2) with nothing above: rank = 0 greater + 2 equal others = 2,
  // wherever the target sits among the tied ids. Item 0 (score 1): 3 greater → rank 3.
  const std::vector<float> scores = {1.0f, 2.0f, 2.0f, 2.0f, 0.0f};
  EXPECT_EQ(target_rank(scores.data(), 5, 1), 2);
  EXPECT_EQ(target_rank(scores.data(), 5, 3), 2);
  EXPECT_EQ(target_rank(scores.data(), 5, 0), 3);
  EXPECT_EQ(target_rank(scores.data(), 5, 4), 4);
  // −0 == +0, and +inf ties +inf.
  const std::vector<float> zeros = {-0.0f, 0.0f, kInf, kInf};
  EXPECT_EQ(target_rank(zeros.data(), 4, 0), 3);
  EXPECT_EQ(target_rank(zeros.data(), 4, 2), 1);
}

TEST(RankTies, NaNOthersRankAboveNaNTargetIsError) {
  // Item 1 is NaN: counted above the target, like a tie.
  const std::vector<float> scores = {0.5f, kNaN, 0.1f};
  EXPECT_EQ(target_rank(scores.data(), 3, 0), 1);
  EXPECT_EQ(target_rank(scores.data(), 3, 2), 2);
  EXPECT_THROW(target_rank(scores.data(), 3, 1), InternalError);
  // Inside rank_all (OpenMP loop) the error still surfaces, naming the first bad user.
  const std::vector<int32_t> targets = {0, 1, 2};
  try {
    rank_all(scores.data(), 0, 3, targets, {});
    FAIL() << "expected InternalError";
  } catch (const InternalError& e) {
    EXPECT_NE(std::string(e.what()).find("user 1"), std::string::npos) << e.what();
  }
}

TEST(RankExclusion, HistoryItemsLeaveTheRanking) {
  const std::vector<float> scores = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f};
  EXPECT_EQ(target_rank(scores.data(), 5, 3), 3);
  // Excluding 0 and 2 (repeated, as histories do) removes two items above; 4 is below anyway.
  const std::vector<int32_t> history = {0, 2, 0, 4, 2};
  EXPECT_EQ(target_rank(scores.data(), 5, 3, history), 1);
  // The target is never excluded, even when it is in the history (a repeat purchase).
  const std::vector<int32_t> with_target = {3, 1};
  EXPECT_EQ(target_rank(scores.data(), 5, 3, with_target), 2);
  // A NaN history item is excluded like any other.
  const std::vector<float> nan_scores = {kNaN, 0.8f, 0.7f};
  const std::vector<int32_t> nan_history = {0};
  EXPECT_EQ(target_rank(nan_scores.data(), 3, 2, nan_history), 1);
}

TEST(RankExclusion, RankAllUsesPerUserListsAndOffsetSlices) {
  // Two users share a row. CSR lists for users A, B, C; the batch is users B, C only, passed as
  // a slice of the offsets with absolute indices into the full item array.
  const std::vector<float> scores = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f};
  const std::vector<int32_t> items = {4, /*B:*/ 0, 1, /*C:*/ 1, 1, 3};
  const std::vector<int64_t> offsets = {0, 1, 3, 6};
  const UserItemLists batch{std::span(offsets).subspan(1), items};
  const std::vector<int32_t> targets = {4, 2};
  // B: target 4 (rank 4), 0 and 1 excluded → 2.  C: target 2 (rank 2), 1 excluded, 3 below → 1.
  EXPECT_EQ(rank_all(scores.data(), 0, 5, targets, batch), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(rank_all(scores.data(), 0, 5, targets, {}), (std::vector<int64_t>{4, 2}));
  const UserItemLists wrong_count{std::span(offsets), items};
  EXPECT_THROW(rank_all(scores.data(), 0, 5, targets, wrong_count), InternalError);
}

TEST(RankingAccumulator, MergeEqualsSingleAccumulationBitwise) {
  std::mt19937 rng(7);
  std::vector<int64_t> ranks(5000);
  for (int64_t& r : ranks) r = std::geometric_distribution<int64_t>(0.01)(rng);
  const std::vector<int> ks = {1, 5, 10, 20};

  RankingAccumulator whole;
  whole.add_all(ranks);
  const RankingResult expected = whole.result(ks);

  // Shuffled order, split into uneven parts, merged right to left: the same bits.
  std::shuffle(ranks.begin(), ranks.end(), rng);
  std::vector<RankingAccumulator> parts(7);
  for (size_t i = 0; i < ranks.size(); ++i) parts[(i * i) % 7].add(ranks[i]);
  RankingAccumulator merged;
  for (int p = 6; p >= 0; --p) merged.merge(parts[p]);
  const RankingResult got = merged.result(ks);

  EXPECT_EQ(got.n_users, expected.n_users);
  EXPECT_EQ(got.mrr, expected.mrr);
  for (size_t j = 0; j < ks.size(); ++j) {
    EXPECT_EQ(got.at_k[j].hit_rate, expected.at_k[j].hit_rate);
    EXPECT_EQ(got.at_k[j].ndcg, expected.at_k[j].ndcg);
  }
}

// Reference: sort all non-excluded items — NaN first, then by descending score, the target after
// every item it ties — and take the target's position.
int64_t sorted_rank(const std::vector<float>& scores, int32_t target,
                    const std::vector<int32_t>& history) {
  std::vector<int32_t> order;
  for (int32_t i = 0; i < static_cast<int32_t>(scores.size()); ++i) {
    if (i == target || std::find(history.begin(), history.end(), i) == history.end()) {
      order.push_back(i);
    }
  }
  auto key = [&](int32_t i) {
    const bool nan = std::isnan(scores[i]);
    return std::make_tuple(nan ? 0 : 1, nan ? 0.0 : -static_cast<double>(scores[i]),
                           i == target ? 1 : 0, i);
  };
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return key(a) < key(b); });
  return std::find(order.begin(), order.end(), target) - order.begin();
}

TEST(RankRandom, MatchesSortReferenceAndThreadCountInvariant) {
  const int saved_threads = omp_get_max_threads();
  std::mt19937 rng(2024);
  std::uniform_int_distribution<int> small(0, 4);  // integer scores: many ties
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  for (int trial = 0; trial < 40; ++trial) {
    const int n_items = 1 + trial * 7 % 97;
    const int n_users = 1 + trial % 13;
    std::vector<float> scores(static_cast<size_t>(n_users) * n_items);
    const bool tie_heavy = trial % 2 == 0;
    for (float& s : scores) {
      const double c = coin(rng);
      s = c < 0.03 ? kNaN : c < 0.05 ? kInf : tie_heavy ? static_cast<float>(small(rng)) : normal(rng);
    }
    std::vector<int32_t> targets(n_users), items;
    std::vector<int64_t> offsets = {0};
    std::uniform_int_distribution<int32_t> item(0, n_items - 1);
    for (int u = 0; u < n_users; ++u) {
      targets[u] = item(rng);
      float& t = scores[static_cast<size_t>(u) * n_items + targets[u]];
      if (std::isnan(t)) t = 1.0f;
      const int h = std::uniform_int_distribution<int>(0, 6)(rng);
      for (int j = 0; j < h; ++j) items.push_back(item(rng));
      offsets.push_back(static_cast<int64_t>(items.size()));
    }
    const UserItemLists histories{offsets, items};

    for (const bool exclude : {false, true}) {
      const UserItemLists lists = exclude ? histories : UserItemLists{};
      omp_set_num_threads(1);
      const std::vector<int64_t> one = rank_all(scores.data(), n_items, n_items, targets, lists);
      omp_set_num_threads(3);
      const std::vector<int64_t> three = rank_all(scores.data(), n_items, n_items, targets, lists);
      EXPECT_EQ(one, three);

      RankingAccumulator acc;
      double hr10 = 0, ndcg10 = 0, mrr = 0;  // reference means, summed per user in double
      for (int u = 0; u < n_users; ++u) {
        const std::vector<float> row(scores.begin() + static_cast<int64_t>(u) * n_items,
                                     scores.begin() + static_cast<int64_t>(u + 1) * n_items);
        std::vector<int32_t> history;
        if (exclude) history.assign(items.begin() + offsets[u], items.begin() + offsets[u + 1]);
        const int64_t expected = sorted_rank(row, targets[u], history);
        ASSERT_EQ(one[u], expected) << "trial " << trial << " user " << u;
        acc.add(one[u]);
        hr10 += expected < 10;
        ndcg10 += expected < 10 ? 1.0 / std::log2(expected + 2.0) : 0.0;
        mrr += 1.0 / (expected + 1.0);
      }
      const std::vector<int> ks = {10};
      const RankingResult r = acc.result(ks);
      EXPECT_NEAR(r.at_k[0].hit_rate, hr10 / n_users, 1e-12);
      EXPECT_NEAR(r.at_k[0].ndcg, ndcg10 / n_users, 1e-12);
      EXPECT_NEAR(r.mrr, mrr / n_users, 1e-12);
    }
  }
  omp_set_num_threads(saved_threads);
}

TEST(RankRandom, ParallelRankAllEqualsSerialTargetRank) {
  // Big enough (64 users × 3001 items) that rank_all really runs its OpenMP loop.
  const int saved_threads = omp_get_max_threads();
  const int n_users = 64, n_items = 3001;
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> level(0, 50);  // ~60 items per score level: ties everywhere
  std::uniform_int_distribution<int32_t> item(0, n_items - 1);
  std::vector<float> scores(static_cast<size_t>(n_users) * n_items);
  for (float& s : scores) s = static_cast<float>(level(rng)) * 0.5f;
  std::vector<int32_t> targets(n_users), items;
  std::vector<int64_t> offsets = {0};
  for (int u = 0; u < n_users; ++u) {
    targets[u] = item(rng);
    for (int j = 0; j < 40; ++j) items.push_back(item(rng));
    offsets.push_back(static_cast<int64_t>(items.size()));
  }
  const UserItemLists histories{offsets, items};
  omp_set_num_threads(4);
  const std::vector<int64_t> parallel = rank_all(scores.data(), n_items, n_items, targets,
                                                 histories);
  omp_set_num_threads(saved_threads);
  for (int u = 0; u < n_users; ++u) {
    const std::span<const int32_t> history(items.data() + offsets[u], 40);
    EXPECT_EQ(parallel[u], target_rank(scores.data() + static_cast<size_t>(u) * n_items,
                                       n_items, targets[u], history));
  }
}

TEST(PopularityBaseline, CountsTrainingInteractionsAndRanksPessimistically) {
  // Training log over 5 items: item 2 ×4, item 0 ×3, items 1 and 4 ×1, item 3 never.
  const std::vector<int32_t> train = {2, 2, 0, 4, 2, 1, 0, 2, 0};
  const std::vector<float> scores = popularity_scores(train, 5);
  EXPECT_EQ(scores, (std::vector<float>{3, 1, 4, 0, 1}));

  // Held-out targets 2, 0, 4, 3 → ranks 0, 1, 3 (above it: items 2, 0; tied: item 1), 4.
  // Items 1 and 4 tie; either one as target gets rank 3, so item ids never break ties.
  const std::vector<int32_t> targets = {2, 0, 4, 3};
  const std::vector<int64_t> ranks = rank_all(scores.data(), 0, 5, targets, {});
  EXPECT_EQ(ranks, (std::vector<int64_t>{0, 1, 3, 4}));
  EXPECT_EQ(target_rank(scores.data(), 5, 1), 3);

  // HR@1 = 1/4, HR@2 = 2/4; NDCG@2 = (1 + 1/log2 3)/4; MRR = (1 + 1/2 + 1/4 + 1/5)/4 = 0.4875.
  RankingAccumulator acc;
  acc.add_all(ranks);
  const std::vector<int> ks = {1, 2};
  const RankingResult r = acc.result(ks);
  EXPECT_DOUBLE_EQ(at(r, 1).hit_rate, 0.25);
  EXPECT_DOUBLE_EQ(at(r, 2).hit_rate, 0.5);
  EXPECT_DOUBLE_EQ(at(r, 2).ndcg, (1.0 + 1.0 / std::log2(3.0)) / 4);
  EXPECT_DOUBLE_EQ(r.mrr, 0.4875);

  // With history exclusion: the user whose target is item 4 had bought item 2 → rank 2.
  const std::vector<int32_t> history = {2};
  EXPECT_EQ(target_rank(scores.data(), 5, 4, history), 2);

  const std::vector<int32_t> bad = {5};
  EXPECT_THROW(popularity_scores(bad, 5), InternalError);
}

}  // namespace
}  // namespace reclm
