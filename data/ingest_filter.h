// The processing half of `reclm prepare` step 1 (data/ingest.h): interactions in file order →
// chronological per-user histories → duplicate policy → k-core → dense, remapped ids.
// Internal to data/ingest*.cc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/ingest.h"
#include "data/ingest_interactions.h"
#include "data/rec_dataset.h"

namespace reclm {

// Every user's interactions in CSR form, still in the interned ids of RawInteractions. Users
// whose interactions are all filtered out keep an empty range until assemble_dataset.
struct Histories {
  std::vector<int64_t> offsets;     // [n_users + 1]
  std::vector<int32_t> items;       // [n]
  std::vector<int64_t> timestamps;  // [n] or empty
  std::vector<float> ratings;       // [n] or empty
  int32_t n_items = 0;              // size of the interned item id space

  int64_t n_users() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

// Groups by user and orders each user's interactions by timestamp, stably (ties keep file order;
// without timestamps file order is the order). Consumes the interaction arrays of `raw`.
Histories group_chronologically(RawInteractions& raw);

// Applies the policy per user, in chronological order; returns how many interactions it dropped.
int64_t apply_duplicate_policy(Histories* histories, DuplicatePolicy policy);

// Removes interactions of users or items with fewer than k interactions, repeatedly, until every
// remaining user and item has at least k (removing an item can push a user below k and back).
// Fills report->kcore_rounds (rounds that removed something) and kcore_dropped_interactions.
void kcore_filter(Histories* histories, int k, IngestReport* report);

// The final ids: users with no interactions are dropped, users keep first-appearance order, items
// that still occur get dense ids in first-appearance order or, with `remap`, a permutation of
// those drawn from CounterRng(seed, RngPurpose::kDataPrepare). Fills dataset->users (keys,
// offsets, items, ratings, timestamps) and dataset->items.keys.
void assemble_dataset(Histories&& histories, std::vector<std::string>&& user_keys,
                      std::vector<std::string>&& item_keys, bool remap, uint64_t seed,
                      RecDataset* dataset);

}  // namespace reclm
