// ingest(): the order of the steps and the options record; the steps live in
// ingest_interactions.cc (parsing), ingest_filter.cc (ordering, duplicates, k-core, ids) and
// ingest_metadata.cc (titles, attributes, profiles).
#include "data/ingest.h"

#include <nlohmann/json.hpp>

#include "data/ingest_filter.h"
#include "data/ingest_interactions.h"
#include "data/ingest_lines.h"
#include "data/ingest_metadata.h"
#include "runtime/errors.h"

namespace reclm {

namespace {

const char* duplicate_policy_name(DuplicatePolicy policy) {
  switch (policy) {
    case DuplicatePolicy::kKeepAll: return "keep_all";
    case DuplicatePolicy::kDropConsecutive: return "drop_consecutive";
    case DuplicatePolicy::kKeepFirst: return "keep_first";
    case DuplicatePolicy::kKeepLast: return "keep_last";
  }
  return "?";
}

// The options that shaped the data, as one JSON line (only the table fields for table input,
// only metadata paths that were given).
std::string options_record(const IngestOptions& o) {
  nlohmann::ordered_json j;
  if (!o.sequences_path.empty()) {
    j["sequences"] = o.sequences_path;
  } else {
    j["table"] = o.table_path;
    j["delimiter"] = resolve_delimiter(o.table.delimiter, o.table_path);
    j["header"] = o.table.header;
    j["user_column"] = o.table.user_column;
    j["item_column"] = o.table.item_column;
    j["rating_column"] = o.table.rating_column;
    j["timestamp_column"] = o.table.timestamp_column;
    j["min_rating"] = o.table.min_rating;
  }
  if (!o.items_path.empty()) {
    j["items"] = o.items_path;
    j["item_id_field"] = o.item_id_field;
    j["item_title_field"] = o.item_title_field;
  }
  if (!o.attributes_path.empty()) j["attributes"] = o.attributes_path;
  if (!o.users_path.empty()) j["users"] = o.users_path;
  j["kcore"] = o.kcore;
  j["duplicates"] = duplicate_policy_name(o.duplicates);
  j["remap_items"] = o.remap_items;
  j["seed"] = o.seed;
  j["skip_bad_lines"] = o.skip_bad_lines;
  return j.dump();
}

}  // namespace

RecDataset ingest(const IngestOptions& options, IngestReport* report) {
  IngestReport local_report;
  if (report == nullptr) report = &local_report;
  *report = IngestReport();
  const bool has_sequences = !options.sequences_path.empty();
  const bool has_table = !options.table_path.empty();
  RECLM_USER_CHECK(has_sequences != has_table,
                   "prepare needs exactly one interaction input, a sequence file or a table "
                   "(got {})",
                   has_sequences ? "both" : "neither");
  RECLM_USER_CHECK(options.kcore >= 0, "kcore must be >= 0 (got {})", options.kcore);
  const std::string& source = has_sequences ? options.sequences_path : options.table_path;
  BadLines bad_lines(options.skip_bad_lines, &report->bad_lines);

  RawInteractions raw =
      has_sequences
          ? read_sequence_file(options.sequences_path, options.progress, bad_lines, report)
          : read_interaction_table(options.table_path, options.table, options.progress, bad_lines,
                                   report);
  Histories histories = group_chronologically(raw);
  report->duplicates_dropped = apply_duplicate_policy(&histories, options.duplicates);
  kcore_filter(&histories, options.kcore, report);

  RecDataset dataset;
  assemble_dataset(std::move(histories), std::move(raw.user_keys), std::move(raw.item_keys),
                   options.remap_items, options.seed, &dataset);
  RECLM_USER_CHECK(dataset.users.size() > 0,
                   "{}: no interactions left (read {} lines, {} malformed, {} below min_rating, "
                   "{} removed by the {}-core filter)",
                   source, report->lines_read, report->bad_lines, report->below_min_rating,
                   report->kcore_dropped_interactions, options.kcore);

  const int32_t n_items = dataset.items.size();
  KeyInterner item_ids;  // key → final item id
  for (const auto& key : dataset.items.keys) item_ids.intern(key);
  ItemMetadata metadata;
  metadata.titles.resize(n_items);
  metadata.attributes.resize(n_items);
  if (!options.items_path.empty()) {
    read_item_metadata(options, item_ids, &metadata, bad_lines, report);
  }
  if (!options.attributes_path.empty()) {
    read_item_attributes(options.attributes_path, item_ids, &metadata, bad_lines, report);
  }
  fill_item_table(std::move(metadata), &dataset.items);
  for (const auto& title : dataset.items.titles) report->items_without_title += title.empty();

  if (!options.users_path.empty()) {
    KeyInterner user_ids;
    for (const auto& key : dataset.users.keys) user_ids.intern(key);
    dataset.users.profiles =
        read_user_profiles(options.users_path, user_ids, options.progress, bad_lines, report);
  }
  dataset.source = source;
  dataset.prepare_config = options_record(options);
  return dataset;
}

}  // namespace reclm
