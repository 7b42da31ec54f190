// `reclm prepare`, step 1: raw interaction logs + item/user metadata → a RecDataset (no tokens
// yet; data/item_vocab.h adds them).
//
// Inputs (exactly one of sequences / table, the rest optional):
//   sequences  one user per line, `user item item ...`, oldest first (S3-Rec/SASRec style, e.g.
//              Beauty.txt); spaces or tabs. A user on several lines continues their sequence; a
//              line with a user but no items is malformed.
//   table      one interaction per line with a column mapping (user, item, optional timestamp,
//              optional rating); delimiter "auto" by extension ("::" for .dat, tab for
//              .tsv/.tab/.data, "," otherwise), "\t"/"tab", or any literal string; optional
//              header row. MovieLens ratings.dat is `user::item::rating::timestamp`, u.data is
//              `user\titem\trating\ttimestamp`. CSV-like files (a one-character delimiter other than
//              tab/space) honour RFC 4180 quoting: "a, b", "say ""hi""", line breaks inside quotes;
//              TSV and "::" are split literally. Every line must have as many fields as the first.
//              Timestamps are integers (decimals are rounded down); ratings are numbers.
//   items      item metadata: .json (an array of records, or one object id → record or
//              id → "title"), .jsonl/.ndjson (a record per line; a record is {"id"/"item_id"/"asin",
//              "title"/"name", "attributes": [...]}), or a TSV/CSV table with a header row.
//              Table "auto" rule: the id is the column named "id" or "item_id" (any case), else
//              the first column; the title is the column named "title" (any case), else, row by
//              row, the last non-empty cell other than the id. S3-Rec's items.tsv
//              (`s3rec_item_id asin idgenrec_text_id`) thus takes the text, or the asin for the one
//              item whose text is empty. Named fields must exist. The first row for an item wins.
//   attributes JSON object item id → [attribute, ...] (Beauty_item2attributes.json); attribute
//              values may be integers or strings and are kept as text in attribute_names.
//   users      user metadata, TSV/CSV with a header: the id column ("id"/"user_id", else the
//              first) and the rest as the profile text: the other cell when there are two columns,
//              else "column: value; column: value" over the non-empty cells.
//
// Processing order: parse → sort each user's interactions by timestamp (stable: ties keep file
// order) → duplicate policy → k-core filter (repeat until every user and item has ≥ k
// interactions) → users with no interactions left are dropped → item ids remapped (seeded random
// permutation drawn from CounterRng(seed, RngPurpose::kDataPrepare) by default; first-appearance
// order when remap_items is false) → users numbered in first-appearance order. Ratings and
// timestamps are kept when the input has them (empty vectors otherwise).
//
// Items: titles from the metadata ("" without); attribute ids are dense in sorted order of the
// attribute names (numeric order when every name is an integer, byte order otherwise), counting
// only attributes of items in the dataset; an item's attributes keep their listed order without
// repeats; attr_offsets always has n_items + 1 entries. title_offsets/title_tokens stay empty.
//
// Errors: a malformed line is a UserError "FILE:LINE: what is wrong: <the line, cut at ~200
// bytes>" (exit 2; in a .json file "FILE: element N" or "FILE: item "ID"" stands for FILE:LINE).
// With skip_bad_lines it is counted instead, the first 5 are printed as warnings, and the count
// is reported. A missing file, a column mapping that does not fit the table, min_rating without a
// rating column, or nothing left after filtering are UserErrors too. Metadata for items (or
// users) that are not in the interactions is ignored (counted).
//
// Speed (measured on a busy 2-core box): Beauty with its metadata ~0.1–0.2 s; a 20M-line table
// ~15 s of CPU and ~1 GB. Inputs over 50 MB show a progress bar over bytes read.
#pragma once

#include <cstdint>
#include <string>

#include "data/rec_dataset.h"

namespace reclm {

enum class DuplicatePolicy {
  kKeepAll,          // every interaction stays (repeat purchases are signal)
  kDropConsecutive,  // a user's immediate repeat of the same item is dropped
  kKeepFirst,        // only a user's first interaction with an item stays
  kKeepLast,         // only a user's last interaction with an item stays
};

struct TableFormat {
  std::string delimiter = "auto";  // "auto": "::" for .dat, "\t" for .tsv/.tab/.data, else ","
  bool header = false;             // first line names the columns (then skipped)
  // 0-based column indices; -1 = absent. (user and item are required.)
  int user_column = 0;
  int item_column = 1;
  int rating_column = -1;
  int timestamp_column = -1;
  double min_rating = 0;  // interactions with a rating below this are dropped (implicit feedback)
};

struct IngestOptions {
  std::string sequences_path;  // exactly one of sequences_path / table_path
  std::string table_path;
  TableFormat table;
  std::string items_path;       // optional item metadata
  std::string item_id_field = "auto";    // column/key of the item id ("auto": see the top)
  std::string item_title_field = "auto"; // column/key of the title ("auto": see the top)
  std::string attributes_path;  // optional JSON id → [attributes]
  std::string users_path;       // optional user metadata
  int kcore = 0;                // 0 or 1 = no filter
  DuplicatePolicy duplicates = DuplicatePolicy::kKeepAll;
  bool remap_items = true;      // seeded random permutation of item ids (P5's leak, docs)
  uint64_t seed = 1234;
  bool skip_bad_lines = false;
  bool progress = true;         // progress bar on inputs over 50 MB (stderr; plain lines when
                                // stderr is not a terminal)
};

struct IngestReport {
  int64_t lines_read = 0;           // non-blank lines of the interaction file (not the header)
  int64_t bad_lines = 0;            // skipped (skip_bad_lines) — otherwise the first one throws
  int64_t duplicates_dropped = 0;
  int64_t below_min_rating = 0;
  int64_t kcore_rounds = 0;         // filtering rounds that removed something
  int64_t kcore_dropped_interactions = 0;
  int64_t metadata_unmatched = 0;   // item/attribute/user metadata rows for ids not in the data
  int64_t items_without_title = 0;  // items of the dataset whose title is ""
};

// Reads and processes the inputs. The result has items (keys, titles, attributes), users and
// `source` (the interaction file) / `prepare_config` (the options used, one JSON line) set;
// title_tokens, vocab and tokenizer are left empty. `report` may be null.
RecDataset ingest(const IngestOptions& options, IngestReport* report);

}  // namespace reclm
