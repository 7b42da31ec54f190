#include "data/ingest_filter.h"

#include <algorithm>
#include <numeric>

#include "runtime/errors.h"
#include "runtime/rng.h"

namespace reclm {

namespace {

// Keeps the interactions with keep[i] != 0, in order, and rebuilds the offsets.
void keep_only(Histories* h, const std::vector<uint8_t>& keep) {
  int64_t out = 0;
  int64_t begin = 0;
  for (int64_t u = 0; u < h->n_users(); ++u) {
    const int64_t end = h->offsets[u + 1];
    for (int64_t i = begin; i < end; ++i) {
      if (!keep[i]) continue;
      h->items[out] = h->items[i];
      if (!h->timestamps.empty()) h->timestamps[out] = h->timestamps[i];
      if (!h->ratings.empty()) h->ratings[out] = h->ratings[i];
      ++out;
    }
    begin = end;
    h->offsets[u + 1] = out;
  }
  h->items.resize(out);
  if (!h->timestamps.empty()) h->timestamps.resize(out);
  if (!h->ratings.empty()) h->ratings.resize(out);
}

}  // namespace

Histories group_chronologically(RawInteractions& raw) {
  const auto n_users = static_cast<int64_t>(raw.user_keys.size());
  const int64_t n = raw.size();
  Histories h;
  h.n_items = static_cast<int32_t>(raw.item_keys.size());
  // Counting sort by user: stable, so each user's interactions stay in file order.
  h.offsets.assign(n_users + 1, 0);
  for (int32_t u : raw.users) ++h.offsets[u + 1];
  std::partial_sum(h.offsets.begin(), h.offsets.end(), h.offsets.begin());
  std::vector<int64_t> order(n);
  {
    std::vector<int64_t> next(h.offsets.begin(), h.offsets.end() - 1);
    for (int64_t i = 0; i < n; ++i) order[next[raw.users[i]]++] = i;
  }
  if (!raw.timestamps.empty()) {
    const auto& ts = raw.timestamps;
    const auto earlier = [&ts](int64_t a, int64_t b) { return ts[a] < ts[b]; };
    for (int64_t u = 0; u < n_users; ++u) {
      const auto first = order.begin() + h.offsets[u];
      const auto last = order.begin() + h.offsets[u + 1];
      if (!std::is_sorted(first, last, earlier)) std::stable_sort(first, last, earlier);
    }
  }
  h.items.resize(n);
  for (int64_t i = 0; i < n; ++i) h.items[i] = raw.items[order[i]];
  if (!raw.timestamps.empty()) {
    h.timestamps.resize(n);
    for (int64_t i = 0; i < n; ++i) h.timestamps[i] = raw.timestamps[order[i]];
  }
  if (!raw.ratings.empty()) {
    h.ratings.resize(n);
    for (int64_t i = 0; i < n; ++i) h.ratings[i] = raw.ratings[order[i]];
  }
  // The flat arrays are consumed; the keys stay for assemble_dataset.
  raw.users = {};
  raw.items = {};
  raw.timestamps = {};
  raw.ratings = {};
  return h;
}

int64_t apply_duplicate_policy(Histories* h, DuplicatePolicy policy) {
  if (policy == DuplicatePolicy::kKeepAll) return 0;
  const auto n = static_cast<int64_t>(h->items.size());
  std::vector<uint8_t> keep(n, 1);
  // seen_by[item] == u + 1: user u already kept this item (one array for all users, no clearing).
  std::vector<int64_t> seen_by(policy == DuplicatePolicy::kDropConsecutive ? 0 : h->n_items, 0);
  for (int64_t u = 0; u < h->n_users(); ++u) {
    const int64_t begin = h->offsets[u];
    const int64_t end = h->offsets[u + 1];
    switch (policy) {
      case DuplicatePolicy::kDropConsecutive:
        for (int64_t i = begin + 1; i < end; ++i) keep[i] = h->items[i] != h->items[i - 1];
        break;
      case DuplicatePolicy::kKeepFirst:
        for (int64_t i = begin; i < end; ++i) {
          keep[i] = seen_by[h->items[i]] != u + 1;
          seen_by[h->items[i]] = u + 1;
        }
        break;
      case DuplicatePolicy::kKeepLast:
        for (int64_t i = end - 1; i >= begin; --i) {
          keep[i] = seen_by[h->items[i]] != u + 1;
          seen_by[h->items[i]] = u + 1;
        }
        break;
      case DuplicatePolicy::kKeepAll:
        break;
    }
  }
  const int64_t kept = std::count(keep.begin(), keep.end(), uint8_t{1});
  if (kept != n) keep_only(h, keep);
  return n - kept;
}

void kcore_filter(Histories* h, int k, IngestReport* report) {
  if (k <= 1) return;
  std::vector<int64_t> item_count(h->n_items);
  for (;;) {
    std::fill(item_count.begin(), item_count.end(), 0);
    for (int32_t item : h->items) ++item_count[item];
    std::vector<uint8_t> keep(h->items.size(), 1);
    int64_t removed = 0;
    for (int64_t u = 0; u < h->n_users(); ++u) {
      const int64_t begin = h->offsets[u];
      const int64_t end = h->offsets[u + 1];
      const bool user_too_small = end - begin < k;
      for (int64_t i = begin; i < end; ++i) {
        if (user_too_small || item_count[h->items[i]] < k) {
          keep[i] = 0;
          ++removed;
        }
      }
    }
    if (removed == 0) return;
    keep_only(h, keep);
    ++report->kcore_rounds;
    report->kcore_dropped_interactions += removed;
  }
}

void assemble_dataset(Histories&& h, std::vector<std::string>&& user_keys,
                      std::vector<std::string>&& item_keys, bool remap, uint64_t seed,
                      RecDataset* dataset) {
  RECLM_CHECK(static_cast<int64_t>(user_keys.size()) == h.n_users() &&
                  static_cast<int32_t>(item_keys.size()) == h.n_items,
              "keys do not match the histories");
  // Items that still occur, in first-appearance (= interned id) order.
  std::vector<uint8_t> occurs(h.n_items, 0);
  for (int32_t item : h.items) occurs[item] = 1;
  std::vector<int32_t> new_id(h.n_items, -1);
  int32_t n_items = 0;
  for (int32_t item = 0; item < h.n_items; ++item) {
    if (occurs[item]) new_id[item] = n_items++;
  }
  if (remap) {
    // Fisher–Yates over the first-appearance ranks.
    std::vector<int32_t> permutation(n_items);
    std::iota(permutation.begin(), permutation.end(), 0);
    CounterRng rng(seed, RngPurpose::kDataPrepare);
    for (int32_t i = n_items - 1; i > 0; --i) {
      std::swap(permutation[i], permutation[static_cast<int32_t>(rng.below(i + 1))]);
    }
    for (int32_t& id : new_id) {
      if (id >= 0) id = permutation[id];
    }
  }
  ItemTable& items = dataset->items;
  items.keys.assign(n_items, std::string());
  for (int32_t item = 0; item < h.n_items; ++item) {
    if (new_id[item] >= 0) items.keys[new_id[item]] = std::move(item_keys[item]);
  }

  UserSequences& users = dataset->users;
  users = UserSequences();
  users.offsets.push_back(0);
  for (int64_t u = 0; u < h.n_users(); ++u) {
    if (h.offsets[u + 1] == h.offsets[u]) continue;
    users.keys.push_back(std::move(user_keys[u]));
    users.offsets.push_back(h.offsets[u + 1]);
  }
  users.items = std::move(h.items);
  for (int32_t& item : users.items) item = new_id[item];
  users.timestamps = std::move(h.timestamps);
  users.ratings = std::move(h.ratings);
}

}  // namespace reclm
