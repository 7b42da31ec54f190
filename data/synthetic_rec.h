// `reclm prepare --synthetic`: a deterministic demo catalog and user histories with structure a
// recommender can learn — so the quickstart needs no download and learnability is testable.
//
// Catalog: items are spread evenly over categories (latent tastes) in a seeded random order, and
// within a category popularity falls as 1/rank (Zipf). Titles read "<brand> <adjective> <category
// noun> <variant>" ("Dune matte shampoo 100 ml") from small word lists, unique per item, and every
// title of a category shares its noun, so the text carries the category. Attributes are
// "category:<noun>" (attribute id = category id, ids 0..n_categories−1), "brand:<Brand>" and
// "price:budget|mid|premium" (mostly the brand's band), three per item in that order.
//
// Users: a taste mixture over 1–3 categories (the first the strongest) and sequential habits:
// with probability habit_probability the next item is the previous item's fixed "next" item (a
// purchase routine; chains mostly stay in the category), otherwise it is drawn from the tastes
// with the popularity skew (no immediate repeat). Ratings are whole stars 1–5, high for liked
// categories; timestamps are Unix seconds, strictly increasing per user. The first n_items users
// start at distinct items, so every item is used whenever n_users ≥ n_items.
//
// Everything is a pure function of the options (Philox, RngPurpose::kSyntheticRec): the catalog
// has one stream and every user its own, so the first k users are the same for any n_users ≥ k.
// The default size (2000 users × 500 items, ~35k interactions) takes a few milliseconds.
#pragma once

#include <cstdint>

#include "data/rec_dataset.h"

namespace reclm {

struct SyntheticRecOptions {
  int64_t n_users = 2000;
  int32_t n_items = 500;
  int32_t n_categories = 12;
  int32_t min_history = 5;   // history lengths uniform in [min_history, max_history]; ≥ 3
                             // gives every user a validation and a test item
  int32_t max_history = 30;
  double habit_probability = 0.5;  // chance the next item follows the previous item's chain
  uint64_t seed = 1234;
};

// Items (keys "item<N>", titles, attributes) and users (keys "user<N>", chronological items with
// ratings and timestamps, no profiles), ids already dense; source "synthetic", prepare_config the
// options as JSON; no tokens (data/item_vocab.h adds them). Options out of range (n_items < 2 or
// < n_categories, n_categories > 216, min_history < 1 or > max_history, habit_probability outside
// [0, 1], …) are a UserError naming the option.
RecDataset make_synthetic_dataset(const SyntheticRecOptions& options);

}  // namespace reclm
