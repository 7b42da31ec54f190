#include "data/dataset_store.h"

#include <xxhash.h>

#include <limits>

#include "data/byte_tokenizer.h"
#include "runtime/errors.h"
#include "runtime/hdf5_file.h"

namespace reclm {
namespace {

constexpr const char* kSplitLeaveOneOut = "leave_one_out";

uint64_t fingerprint_of(const std::string& text) { return XXH64(text.data(), text.size(), 0); }

// ---- consistency (checked before writing and after reading) -----------------------------------

// A CSR offset array: `rows` + 1 entries, 0 first, never decreasing, `values` last.
void check_offsets(const std::string& file, const char* name, const std::vector<int64_t>& offsets,
                   size_t rows, const char* rows_name, size_t values, const char* values_name) {
  RECLM_USER_CHECK(offsets.size() == rows + 1,
                   "{}: dataset {}: {} entries, expected {} (one more than the {} entries of {})",
                   file, name, offsets.size(), rows + 1, rows, rows_name);
  RECLM_USER_CHECK(offsets.front() == 0, "{}: dataset {}: starts at {}, expected 0", file, name,
                   offsets.front());
  for (size_t i = 1; i < offsets.size(); ++i) {
    RECLM_USER_CHECK(offsets[i] >= offsets[i - 1], "{}: dataset {}: decreases at entry {} ({} < {})",
                     file, name, i, offsets[i], offsets[i - 1]);
  }
  RECLM_USER_CHECK(offsets.back() == static_cast<int64_t>(values),
                   "{}: dataset {}: ends at {}, but {} holds {} values", file, name,
                   offsets.back(), values_name, values);
}

void check_ids_below(const std::string& file, const char* name, const std::vector<int32_t>& ids,
                     int64_t limit, const char* what) {
  for (size_t i = 0; i < ids.size(); ++i) {
    RECLM_USER_CHECK(ids[i] >= 0 && ids[i] < limit,
                     "{}: dataset {}: {} {} at position {} is not in [0, {})", file, name, what,
                     ids[i], i, limit);
  }
}

void check_same_size(const std::string& file, const char* name, size_t size, const char* other,
                     size_t other_size) {
  RECLM_USER_CHECK(size == other_size, "{}: dataset {}: {} entries, but {} has {}", file, name,
                   size, other, other_size);
}

// Text, specials, items and attributes occupy disjoint ranges inside [0, vocab_size), and the
// item/attribute ranges have one token per item/attribute.
void check_vocab_layout(const std::string& file, const RecDataset& d) {
  const VocabLayout& v = d.vocab;
  struct Range {
    const char* attribute;
    int64_t first, count;
  };
  const Range ranges[] = {
      {"text_size", 0, v.text_size},
      {"special_first", v.special_first, static_cast<int64_t>(std::size(kSpecialTokens))},
      {"items_first", v.items.first, v.items.count},
      {"attributes_first", v.attributes.first, v.attributes.count}};
  for (const Range& r : ranges) {
    RECLM_USER_CHECK(r.first >= 0 && r.count >= 0 && r.first + r.count <= v.vocab_size,
                     "{}: attribute {}: tokens [{}, {}) are not inside [0, vocab_size = {})", file,
                     r.attribute, r.first, r.first + r.count, v.vocab_size);
  }
  for (size_t i = 0; i < std::size(ranges); ++i) {
    for (size_t j = i + 1; j < std::size(ranges); ++j) {
      const Range& a = ranges[i];
      const Range& b = ranges[j];
      const bool overlap = a.count > 0 && b.count > 0 && a.first < b.first + b.count &&
                           b.first < a.first + a.count;
      RECLM_USER_CHECK(!overlap, "{}: attributes {} and {}: token ranges [{}, {}) and [{}, {}) overlap",
                       file, a.attribute, b.attribute, a.first, a.first + a.count, b.first,
                       b.first + b.count);
    }
  }
  RECLM_USER_CHECK(v.items.count == d.items.size(),
                   "{}: attribute items_count: {}, but /items/keys holds {} items", file,
                   v.items.count, d.items.size());
  RECLM_USER_CHECK(v.attributes.count == static_cast<int64_t>(d.items.attribute_names.size()),
                   "{}: attribute attributes_count: {}, but /items/attribute_names holds {}", file,
                   v.attributes.count, d.items.attribute_names.size());
}

void check_consistency(const std::string& file, const RecDataset& d) {
  const ItemTable& items = d.items;
  const size_t n_items = items.keys.size();
  check_same_size(file, "/items/titles", items.titles.size(), "/items/keys", n_items);
  check_offsets(file, "/items/attr_offsets", items.attr_offsets, n_items, "/items/keys",
                items.attr_ids.size(), "/items/attr_ids");
  check_offsets(file, "/items/title_offsets", items.title_offsets, n_items, "/items/keys",
                items.title_tokens.size(), "/items/title_tokens");
  check_ids_below(file, "/items/attr_ids", items.attr_ids,
                  static_cast<int64_t>(items.attribute_names.size()), "attribute id");
  check_vocab_layout(file, d);
  check_ids_below(file, "/items/title_tokens", items.title_tokens, d.vocab.vocab_size, "token id");

  const UserSequences& users = d.users;
  check_offsets(file, "/users/offsets", users.offsets, users.keys.size(), "/users/keys",
                users.items.size(), "/users/items");
  check_ids_below(file, "/users/items", users.items, static_cast<int64_t>(n_items), "item id");
  if (!users.ratings.empty()) {
    check_same_size(file, "/users/ratings", users.ratings.size(), "/users/items",
                    users.items.size());
  }
  if (!users.timestamps.empty()) {
    check_same_size(file, "/users/timestamps", users.timestamps.size(), "/users/items",
                    users.items.size());
  }
  if (!users.profiles.empty()) {
    check_same_size(file, "/users/profiles", users.profiles.size(), "/users/keys",
                    users.keys.size());
  }
  const uint64_t actual = fingerprint_of(d.tokenizer_json);
  RECLM_USER_CHECK(actual == d.tokenizer_fingerprint,
                   "{}: dataset /tokenizer_json: its XXH64 is {:#018x}, but attribute "
                   "tokenizer_fingerprint says {:#018x} (tokenizer changed or file edited)",
                   file, actual, d.tokenizer_fingerprint);
}

// ---- reading helpers --------------------------------------------------------------------------

int32_t int32_attribute(const hdf5::Reader& file, const std::string& name) {
  const int64_t value = file.attribute_int64(name);
  RECLM_USER_CHECK(value >= std::numeric_limits<int32_t>::min() &&
                       value <= std::numeric_limits<int32_t>::max(),
                   "{}: attribute {}: {} does not fit a 32-bit token id", file.file_name(), name,
                   value);
  return static_cast<int32_t>(value);
}

template <typename Read>
auto read_optional(const hdf5::Reader& file, const std::string& name, Read read)
    -> decltype(read(name)) {
  if (!file.has_dataset(name)) return {};
  return read(name);
}

}  // namespace

void save_dataset(const std::filesystem::path& path, const RecDataset& d) {
  check_consistency(path.string(), d);
  using hdf5::Compression;
  hdf5::write_file_atomically(path, [&](hdf5::Writer& w) {
    const ItemTable& items = d.items;
    w.write_strings("/items/keys", items.keys);
    w.write_strings("/items/titles", items.titles);
    w.write_strings("/items/attribute_names", items.attribute_names);
    w.write("/items/attr_offsets", items.attr_offsets, Compression::kDeflate);
    w.write("/items/attr_ids", items.attr_ids, Compression::kDeflate);
    w.write("/items/title_offsets", items.title_offsets, Compression::kDeflate);
    w.write("/items/title_tokens", items.title_tokens, Compression::kDeflate);

    const UserSequences& users = d.users;
    w.write_strings("/users/keys", users.keys);
    w.write("/users/offsets", users.offsets, Compression::kDeflate);
    w.write("/users/items", users.items, Compression::kDeflate);
    if (!users.ratings.empty()) w.write("/users/ratings", users.ratings, Compression::kDeflate);
    if (!users.timestamps.empty()) {
      w.write("/users/timestamps", users.timestamps, Compression::kDeflate);
    }
    if (!users.profiles.empty()) w.write_strings("/users/profiles", users.profiles);

    w.write_string("/tokenizer_json", d.tokenizer_json);
    w.set_attribute("format_version", int64_t{kDatasetFormatVersion});
    w.set_attribute("split", std::string_view(kSplitLeaveOneOut));
    w.set_attribute("source", std::string_view(d.source));
    w.set_attribute("prepare_config", std::string_view(d.prepare_config));
    w.set_attribute_u64("tokenizer_fingerprint", d.tokenizer_fingerprint);
    w.set_attribute("text_size", int64_t{d.vocab.text_size});
    w.set_attribute("special_first", int64_t{d.vocab.special_first});
    w.set_attribute("items_first", int64_t{d.vocab.items.first});
    w.set_attribute("items_count", int64_t{d.vocab.items.count});
    w.set_attribute("attributes_first", int64_t{d.vocab.attributes.first});
    w.set_attribute("attributes_count", int64_t{d.vocab.attributes.count});
    w.set_attribute("vocab_size", int64_t{d.vocab.vocab_size});
  });
}

RecDataset load_dataset(const std::filesystem::path& path) {
  const hdf5::Reader file(path);
  const std::string& name = file.file_name();
  RECLM_USER_CHECK(file.has_attribute("format_version"),
                   "{}: attribute format_version: missing (not a reclm dataset? make one with "
                   "reclm prepare)",
                   name);
  const int64_t version = file.attribute_int64("format_version");
  RECLM_USER_CHECK(version == kDatasetFormatVersion,
                   "{}: dataset format version {}, this reclm reads version {}; re-run reclm "
                   "prepare",
                   name, version, kDatasetFormatVersion);
  const std::string split = file.attribute_string("split");
  RECLM_USER_CHECK(split == kSplitLeaveOneOut, "{}: attribute split: \"{}\", expected \"{}\"",
                   name, split, kSplitLeaveOneOut);

  RecDataset d;
  ItemTable& items = d.items;
  items.keys = file.read_strings("/items/keys");
  items.titles = file.read_strings("/items/titles");
  items.attribute_names = file.read_strings("/items/attribute_names");
  items.attr_offsets = file.read_int64("/items/attr_offsets");
  items.attr_ids = file.read_int32("/items/attr_ids");
  items.title_offsets = file.read_int64("/items/title_offsets");
  items.title_tokens = file.read_int32("/items/title_tokens");

  UserSequences& users = d.users;
  users.keys = file.read_strings("/users/keys");
  users.offsets = file.read_int64("/users/offsets");
  users.items = file.read_int32("/users/items");
  users.ratings = read_optional(file, "/users/ratings",
                                [&](const std::string& n) { return file.read_float32(n); });
  users.timestamps = read_optional(file, "/users/timestamps",
                                   [&](const std::string& n) { return file.read_int64(n); });
  users.profiles = read_optional(file, "/users/profiles",
                                 [&](const std::string& n) { return file.read_strings(n); });

  d.tokenizer_json = file.read_string("/tokenizer_json");
  d.tokenizer_fingerprint = file.attribute_u64("tokenizer_fingerprint");
  d.source = file.attribute_string("source");
  d.prepare_config = file.attribute_string("prepare_config");
  d.vocab.text_size = int32_attribute(file, "text_size");
  d.vocab.special_first = int32_attribute(file, "special_first");
  d.vocab.items.first = int32_attribute(file, "items_first");
  d.vocab.items.count = int32_attribute(file, "items_count");
  d.vocab.attributes.first = int32_attribute(file, "attributes_first");
  d.vocab.attributes.count = int32_attribute(file, "attributes_count");
  d.vocab.vocab_size = int32_attribute(file, "vocab_size");

  check_consistency(name, d);
  return d;
}

}  // namespace reclm
