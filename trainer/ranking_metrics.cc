// Ranking metrics: target rank by one counting pass (no sort), exact rank-multiset accumulation.
// Conventions (ties, NaN, history exclusion) are stated in ranking_metrics.h.
#include "trainer/ranking_metrics.h"

#include <algorithm>
#include <cmath>

#include "runtime/errors.h"

namespace reclm {

namespace {

// An item ranks at or above a target scored t iff s > t, s == t, or s is NaN — exactly !(s < t)
// (t is never NaN here). The count includes the target itself.
//   scores [n]
int64_t count_not_below(const float* scores, int64_t n, float t) {
  int64_t count = 0;
#pragma omp simd reduction(+ : count)
  for (int64_t i = 0; i < n; ++i) count += !(scores[i] < t);
  return count;
}

// target_rank on validated ids. Returns −1 for a NaN target score, so it can run inside an
// OpenMP loop (an exception must not escape a parallel region); callers turn −1 into the error.
// `scratch` is reused between calls to avoid an allocation per user.
int64_t rank_validated(const float* scores, int64_t n_items, int32_t target,
                       std::span<const int32_t> excluded, std::vector<int32_t>& scratch) {
  const float t = scores[target];
  if (std::isnan(t)) return -1;
  int64_t rank = count_not_below(scores, n_items, t) - 1;
  if (excluded.empty()) return rank;
  // Histories repeat items; each distinct excluded item is taken out of the count once, and only
  // if it was counted (it ranked at or above the target).
  scratch.assign(excluded.begin(), excluded.end());
  std::sort(scratch.begin(), scratch.end());
  scratch.erase(std::unique(scratch.begin(), scratch.end()), scratch.end());
  for (const int32_t item : scratch) {
    if (item != target && !(scores[item] < t)) --rank;
  }
  return rank;
}

void check_item(int64_t item, int64_t n_items, const char* what) {
  RECLM_CHECK(item >= 0 && item < n_items, "{} item {} outside [0, {})", what, item, n_items);
}

}  // namespace

int64_t target_rank(const float* scores, int64_t n_items, int32_t target,
                    std::span<const int32_t> excluded) {
  check_item(target, n_items, "target");
  for (const int32_t item : excluded) check_item(item, n_items, "excluded");
  std::vector<int32_t> scratch;
  const int64_t rank = rank_validated(scores, n_items, target, excluded, scratch);
  RECLM_CHECK(rank >= 0, "NaN score for target item {}", target);
  return rank;
}

std::vector<int64_t> rank_all(const float* scores, int64_t row_stride, int64_t n_items,
                              std::span<const int32_t> targets, const UserItemLists& excluded) {
  const auto n_users = static_cast<int64_t>(targets.size());
  const bool has_excluded = !excluded.offsets.empty();
  // Everything that can fail except NaN is checked here, serially, before the parallel loop.
  RECLM_CHECK(row_stride == 0 || row_stride >= n_items, "row stride {} < n_items {}", row_stride,
              n_items);
  for (const int32_t target : targets) check_item(target, n_items, "target");
  if (has_excluded) {
    RECLM_CHECK(static_cast<int64_t>(excluded.offsets.size()) == n_users + 1,
                "{} exclusion offsets for {} users", excluded.offsets.size(), n_users);
    for (int64_t u = 0; u < n_users; ++u) {
      const int64_t begin = excluded.offsets[u], end = excluded.offsets[u + 1];
      RECLM_CHECK(0 <= begin && begin <= end &&
                      end <= static_cast<int64_t>(excluded.items.size()),
                  "user {}: exclusion range [{}, {}) outside [0, {})", u, begin, end,
                  excluded.items.size());
      for (int64_t j = begin; j < end; ++j) check_item(excluded.items[j], n_items, "excluded");
    }
  }

  // Each rank depends only on its own row: identical results for any thread count or schedule.
  std::vector<int64_t> ranks(n_users);
#pragma omp parallel if (n_users * n_items > (int64_t{1} << 16))
  {
    std::vector<int32_t> scratch;
#pragma omp for schedule(static)
    for (int64_t u = 0; u < n_users; ++u) {
      std::span<const int32_t> user_excluded;
      if (has_excluded) {
        user_excluded = excluded.items.subspan(excluded.offsets[u],
                                               excluded.offsets[u + 1] - excluded.offsets[u]);
      }
      ranks[u] = rank_validated(scores + u * row_stride, n_items, targets[u], user_excluded,
                                scratch);
    }
  }
  for (int64_t u = 0; u < n_users; ++u) {
    RECLM_CHECK(ranks[u] >= 0, "user {}: NaN score for target item {}", u, targets[u]);
  }
  return ranks;
}

std::vector<float> popularity_scores(std::span<const int32_t> train_items, int64_t n_items) {
  std::vector<int64_t> counts(n_items, 0);
  for (const int32_t item : train_items) {
    check_item(item, n_items, "training");
    ++counts[item];
  }
  // Beyond 2^24 consecutive integers are no longer all representable in float, and two items
  // with different counts could tie.
  constexpr int64_t kExactFloatLimit = int64_t{1} << 24;
  std::vector<float> scores(n_items);
  for (int64_t i = 0; i < n_items; ++i) {
    RECLM_CHECK(counts[i] <= kExactFloatLimit, "item {}: {} interactions, not exact in float", i,
                counts[i]);
    scores[i] = static_cast<float>(counts[i]);
  }
  return scores;
}

void RankingAccumulator::add(int64_t rank) {
  RECLM_CHECK(rank >= 0, "negative rank {}", rank);
  ++count_by_rank_[rank];
  ++n_users_;
}

void RankingAccumulator::add_all(std::span<const int64_t> ranks) {
  for (const int64_t rank : ranks) add(rank);
}

void RankingAccumulator::merge(const RankingAccumulator& other) {
  for (const auto& [rank, count] : other.count_by_rank_) count_by_rank_[rank] += count;
  n_users_ += other.n_users_;
}

RankingResult RankingAccumulator::result(std::span<const int> ks) const {
  RankingResult result;
  result.n_users = n_users_;
  std::vector<int64_t> hits(ks.size(), 0);
  std::vector<double> dcg(ks.size(), 0.0);
  double reciprocal_sum = 0.0;
  for (const int k : ks) RECLM_CHECK(k >= 1, "cutoff K = {} must be >= 1", k);
  // Ascending rank order (the map's), whatever order the ranks arrived in: the sums below are
  // the same floating-point operations for the same multiset.
  for (const auto& [rank, count] : count_by_rank_) {
    const auto n = static_cast<double>(count);
    reciprocal_sum += n / static_cast<double>(rank + 1);
    const double gain = 1.0 / std::log2(static_cast<double>(rank) + 2.0);
    for (size_t j = 0; j < ks.size(); ++j) {
      if (rank < ks[j]) {
        hits[j] += count;
        dcg[j] += n * gain;
      }
    }
  }
  const double users = n_users_ > 0 ? static_cast<double>(n_users_) : 1.0;  // 0/1 = 0 if empty
  for (size_t j = 0; j < ks.size(); ++j) {
    result.at_k.push_back({ks[j], static_cast<double>(hits[j]) / users, dcg[j] / users});
  }
  result.mrr = reciprocal_sum / users;
  return result;
}

}  // namespace reclm
