// Ranking metrics of `reclm eval` (issue 3): leave-one-out, full ranking over all items, no
// negative sampling — each evaluated user has one held-out target item and a score for every item.
//
//   rank     = 0-based position of the target; ties and NaNs counted pessimistically (below)
//   HR@K     = mean over users of [rank < K]
//   NDCG@K   = mean of [rank < K] / log2(rank + 2)   (one relevant item, so IDCG = 1)
//   MRR      = mean of 1 / (rank + 1)                 (over the full ranking, no cutoff)
//
// Ties: rank = #{i : s_i > s_t} + #{i ≠ t : s_i == s_t}, i.e. the target is placed after every
// item it ties with. Any kinder rule pays for not telling items apart: an optimistic rule gives a
// constant scorer (a collapsed model, saturated logits) HR@K = 1, and random tie-breaking gives it
// ≈ K/n_items; coarse scores (bf16 logits tie often) would be flattered the same way. The
// pessimistic rule gives a constant scorer rank n_items − 1 and no credit, makes every reported
// number a lower bound, and makes the rank independent of item ids and of sort stability.
//
// NaN: a NaN target score is an internal error (the model produced garbage; no number we could
// report would mean anything). A NaN score of another item counts as ranking above the target,
// for the same reason as ties: broken scores must never earn credit.
//
// History exclusion: published tables differ. S3-Rec's full-ranking code sets the scores of the
// user's earlier items to 0 before taking the top 20 (a de-facto exclusion, and the Beauty
// protocol most later tables copied); P5's generative evaluation ranks every item. Excluding
// raises HR/NDCG, so `reclm eval` makes it an option and its report says which was used.
// Unlike S3-Rec, the target itself is never excluded, even when it also appears in the history:
// a repeat purchase is a legitimate hit, and excluding it would leave the user unrankable.
//
// Cost: one pass over the scores per user, no sort — O(n_items + h log h) for h history items.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace reclm {

// Per-user item lists in CSR form: user u's items are items[offsets[u] .. offsets[u+1]).
// Offsets are absolute indices into `items`, so a batch of users may pass a slice of a larger
// offsets array with the whole items array. Empty offsets = no user excludes anything.
struct UserItemLists {
  std::span<const int64_t> offsets;  // [n_users + 1], or empty
  std::span<const int32_t> items;    // item ids in [0, n_items); any order, repeats allowed
};

// Rank of item `target` among scores [n_items], skipping the items in `excluded` (except the
// target). The result is in [0, n_items − 1 − #distinct excluded non-target items].
int64_t target_rank(const float* scores, int64_t n_items, int32_t target,
                    std::span<const int32_t> excluded = {});

// Ranks of many users, OpenMP over users; each rank depends only on its own row, so the result
// is identical for any thread count.
//   scores  row u at scores + u·row_stride, [n_items] each. row_stride = n_items for per-user
//           scores [n_users, n_items]; row_stride = 0 when all users share one row (popularity).
//   targets [n_users];  excluded: per-user lists (or empty: nothing excluded)
//   returns [n_users] ranks
std::vector<int64_t> rank_all(const float* scores, int64_t row_stride, int64_t n_items,
                              std::span<const int32_t> targets, const UserItemLists& excluded);

// Popularity baseline: score of item i = number of times i occurs in `train_items` (the training
// interactions only, never the held-out ones). Ties between equally popular items are then
// resolved by target_rank's pessimistic rule, which does not depend on item ids, so the baseline
// is deterministic. Counts are exact in float up to 2^24 per item (checked).
//   train_items [n_interactions], ids in [0, n_items);  returns [n_items]
std::vector<float> popularity_scores(std::span<const int32_t> train_items, int64_t n_items);

struct RankingAtK {
  int k = 0;
  double hit_rate = 0;  // HR@K
  double ndcg = 0;      // NDCG@K
};

struct RankingResult {
  int64_t n_users = 0;           // users added; metrics are 0 when there are none
  std::vector<RankingAtK> at_k;  // one per requested K, in the requested order
  double mrr = 0;
};

// Accumulates ranks and reports means. It keeps the exact multiset of ranks (a count per
// distinct rank; at most min(n_users, n_items) entries) and computes every mean from it in
// ascending rank order at result() time. Guarantee: result() is a function of the multiset of
// ranks alone — bitwise identical whatever the order of add() calls, however users were split
// across threads or processes, and however the parts were merged. K is chosen at result() time,
// so parts never have to agree on it.
class RankingAccumulator {
 public:
  void add(int64_t rank);  // rank ≥ 0
  void add_all(std::span<const int64_t> ranks);
  void merge(const RankingAccumulator& other);
  int64_t n_users() const { return n_users_; }
  // rank → users at that rank; what a multi-process eval sends to be merged.
  const std::map<int64_t, int64_t>& count_by_rank() const { return count_by_rank_; }
  // ks: cutoffs ≥ 1, any order; a K above n_items is allowed (HR@K is then 1).
  RankingResult result(std::span<const int> ks) const;

 private:
  std::map<int64_t, int64_t> count_by_rank_;
  int64_t n_users_ = 0;
};

}  // namespace reclm
