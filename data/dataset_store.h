// One HDF5 file per prepared dataset (`reclm prepare` writes it; train/eval/recommend/info read it).
//
// Layout (format version kDatasetFormatVersion, checked on load):
//   /items/keys, /items/titles, /items/attribute_names      variable-length UTF-8 strings
//   /items/attr_offsets, /items/title_offsets                int64
//   /items/attr_ids, /items/title_tokens                     int32
//   /users/keys (strings), /users/offsets (int64), /users/items (int32)
//   /users/ratings (float32), /users/timestamps (int64), /users/profiles (strings) — optional:
//     absent when the vector is empty
//   /tokenizer_json   a scalar variable-length string (a dataset rather than an attribute
//                     because it can be several MB)
//   root attributes:
//     format_version (int64), split ("leave_one_out"), source, prepare_config (strings),
//     tokenizer_fingerprint (uint64: XXH64 of tokenizer_json, seed 0), and the vocab layout as
//     int64: text_size, special_first, items_first, items_count, attributes_first,
//     attributes_count, vocab_size.
// Integer arrays of 4096+ values are chunked with shuffle + deflate level 1 (ids compress
// several-fold; decompressing Beauty takes milliseconds). Zero-length arrays are zero-size
// datasets. Any HDF5 reader (h5py: f["/users/items"][:]) can read the file.
//
// Writing goes to PATH.tmp and is renamed over PATH at the end, so an interrupted prepare never
// leaves a half file under the final name and an existing dataset stays intact until then.
#pragma once

#include <filesystem>

#include "data/rec_dataset.h"

namespace reclm {

inline constexpr int kDatasetFormatVersion = 1;

// Checks the dataset with the same consistency rules as load_dataset (a UserError naming the
// object, nothing written) and then writes it atomically. Strings holding a NUL byte cannot be
// stored (UserError).
void save_dataset(const std::filesystem::path& path, const RecDataset& dataset);

// A missing file, a file that is not HDF5 or is truncated, a missing dataset/attribute, a format
// version other than kDatasetFormatVersion, inconsistent sizes or offsets (CSR offsets start at
// 0, never decrease and end at the array's size; n_items = keys = titles = offsets − 1), ids out
// of range (item ids < n_items, attribute ids < n_attributes, title tokens < vocab_size), vocab
// layout ranges that overlap or leave [0, vocab_size), or a tokenizer whose fingerprint does not
// match: a UserError naming the file and the object, e.g.
// "beauty.h5: dataset /users/items: item id 12101 at position 7 is not in [0, 12101)" (exit 2).
RecDataset load_dataset(const std::filesystem::path& path);

}  // namespace reclm
