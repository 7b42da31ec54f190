// Test helper shared by the data tests: field-by-field comparison of two RecDatasets, so that a
// failure names the field that differs.
#pragma once

#include <gtest/gtest.h>

#include "data/rec_dataset.h"

namespace reclm::test {

// The item catalog (keys, titles, attributes) and the users' interaction histories (keys, items,
// ratings, timestamps); not the tokenized titles, profiles, vocabulary or provenance.
inline void expect_same_items_and_histories(const RecDataset& a, const RecDataset& b) {
  EXPECT_EQ(a.items.keys, b.items.keys);
  EXPECT_EQ(a.items.titles, b.items.titles);
  EXPECT_EQ(a.items.attribute_names, b.items.attribute_names);
  EXPECT_EQ(a.items.attr_offsets, b.items.attr_offsets);
  EXPECT_EQ(a.items.attr_ids, b.items.attr_ids);
  EXPECT_EQ(a.users.keys, b.users.keys);
  EXPECT_EQ(a.users.offsets, b.users.offsets);
  EXPECT_EQ(a.users.items, b.users.items);
  EXPECT_EQ(a.users.ratings, b.users.ratings);
  EXPECT_EQ(a.users.timestamps, b.users.timestamps);
}

}  // namespace reclm::test
