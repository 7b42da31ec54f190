// Interaction inputs of `reclm prepare` (data/ingest.h) parsed into one flat list in file order:
// per-user sequence files and delimited interaction tables. Ids are interned as strings, dense in
// first-appearance order. Internal to data/ingest*.cc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/ingest.h"
#include "data/ingest_lines.h"

namespace reclm {

struct RawInteractions {
  std::vector<std::string> user_keys;  // [n_users] key of each dense user id (first appearance)
  std::vector<std::string> item_keys;  // [n_items] likewise for items
  std::vector<int32_t> users;          // [n] one entry per interaction, in file order
  std::vector<int32_t> items;          // [n]
  std::vector<int64_t> timestamps;     // [n], or empty when the input has no timestamps
  std::vector<float> ratings;          // [n], or empty when the input has no ratings

  int64_t size() const { return static_cast<int64_t>(users.size()); }
};

// `user item item ...` per line, oldest first, whitespace separated. A user on several lines
// continues their sequence. A line with a user but no items is malformed.
RawInteractions read_sequence_file(const std::string& path, bool progress, BadLines& bad_lines,
                                   IngestReport* report);

// One interaction per record with the column mapping of `format`. Every record must have as many
// fields as the first (the header when there is one). Ratings below format.min_rating are
// dropped before their ids are interned, so an item only ever rated low does not exist.
RawInteractions read_interaction_table(const std::string& path, const TableFormat& format,
                                       bool progress, BadLines& bad_lines, IngestReport* report);

}  // namespace reclm
