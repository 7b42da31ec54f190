// Metadata inputs of `reclm prepare`: item titles and attributes, user profiles, matched to the
// items and users that survived filtering. The formats and "auto" rules are documented in
// data/ingest.h. Internal to data/ingest*.cc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/ingest.h"
#include "data/ingest_lines.h"
#include "data/rec_dataset.h"

namespace reclm {

// Metadata per final item id, gathered before the attribute vocabulary is built.
struct ItemMetadata {
  std::vector<std::string> titles;                   // [n_items]
  std::vector<std::vector<std::string>> attributes;  // [n_items] attribute names, listed order
};

// `items` maps a key to its final item id (KeyInterner filled in item id order).
void read_item_metadata(const IngestOptions& options, const KeyInterner& items,
                        ItemMetadata* metadata, BadLines& bad_lines, IngestReport* report);

// JSON object item id → [attribute, ...]; attributes may be numbers or strings (kept as text).
void read_item_attributes(const std::string& path, const KeyInterner& items,
                          ItemMetadata* metadata, BadLines& bad_lines, IngestReport* report);

// Titles and attributes into the item table. Attribute ids are dense in sorted order of the
// names (numeric order when every name is an integer, as in Beauty_item2attributes.json; byte
// order otherwise), counting only attributes of items in the dataset; an item's attributes keep
// their listed order without repeats. attr_offsets always has n_items + 1 entries.
void fill_item_table(ItemMetadata&& metadata, ItemTable* table);

// User metadata table with a header: the id is the column named "id" or "user_id" (any case),
// else the first column. Profile text: with two columns the other cell; otherwise
// "column: value" for each non-empty cell, joined by "; ". Users without a row get "".
std::vector<std::string> read_user_profiles(const std::string& path, const KeyInterner& users,
                                            bool progress, BadLines& bad_lines,
                                            IngestReport* report);

}  // namespace reclm
