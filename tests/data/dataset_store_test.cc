// The prepared-dataset file: exact round trips (unicode, empty strings, empty arrays, optional
// user arrays), atomic replacement, and a UserError naming the object for every kind of bad file.
#include "data/dataset_store.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "data/rec_dataset_expect.h"
#include "runtime/errors.h"
#include "runtime/hdf5_file.h"
#include "scratch_dir.h"
#include "thrown_message.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

class DatasetStore : public ScratchDirTest {};

// Five items (one without attributes, one with an empty title), three users with ratings,
// timestamps and profiles; titles and keys in several scripts.
RecDataset hand_made_dataset() {
  RecDataset d;
  d.items.keys = {"B000", "ü-1", "x", "item 4", "日本"};
  d.items.titles = {"Lip Balm — Rose", "", "Crème brûlée set 🍮", "a", "日本語のタイトル"};
  d.items.attribute_names = {"brand:Acme", "category:Lips", "ñ"};
  d.items.attr_offsets = {0, 2, 2, 3, 6, 7};
  d.items.attr_ids = {0, 1, 2, 1, 2, 0, 0};
  d.items.title_offsets = {0, 3, 3, 7, 8, 10};
  d.items.title_tokens = {17, 299, 0, 5, 6, 7, 8, 9, 250, 251};
  d.users.keys = {"u1", "ü2", "u3"};
  d.users.offsets = {0, 4, 5, 8};
  d.users.items = {0, 2, 4, 1, 3, 4, 4, 0};
  d.users.ratings = {5.0f, 4.5f, 3.0f, 1.0f, 2.0f, 0.5f, -1.25f, 1e-7f};
  d.users.timestamps = {1700000000000, 1700000000001, 1700000000005, 1800000000000, 7,
                        -3, 0, int64_t{1} << 40};
  d.users.profiles = {"likes lipstick", "", "über\tline"};
  d.vocab.text_size = 300;
  d.vocab.special_first = 300;
  d.vocab.items = {308, 5};
  d.vocab.attributes = {313, 3};
  d.vocab.vocab_size = 316;
  d.tokenizer_json = R"({"model": {"type": "BPE"}, "added_tokens": ["<item_0>", "ü"]})";
  d.tokenizer_fingerprint = XXH64(d.tokenizer_json.data(), d.tokenizer_json.size(), 0);
  d.prepare_config = "min_interactions: 5\nsplit: \"leave_one_out\"\n";
  d.source = "hand-made";
  return d;
}

// The catalog, histories, tokenized titles, profiles, vocabulary, tokenizer and provenance.
void expect_same(const RecDataset& a, const RecDataset& b) {
  test::expect_same_items_and_histories(a, b);
  EXPECT_EQ(a.items.title_offsets, b.items.title_offsets);
  EXPECT_EQ(a.items.title_tokens, b.items.title_tokens);
  EXPECT_EQ(a.users.profiles, b.users.profiles);
  EXPECT_EQ(a.vocab.text_size, b.vocab.text_size);
  EXPECT_EQ(a.vocab.special_first, b.vocab.special_first);
  EXPECT_EQ(a.vocab.items.first, b.vocab.items.first);
  EXPECT_EQ(a.vocab.items.count, b.vocab.items.count);
  EXPECT_EQ(a.vocab.attributes.first, b.vocab.attributes.first);
  EXPECT_EQ(a.vocab.attributes.count, b.vocab.attributes.count);
  EXPECT_EQ(a.vocab.vocab_size, b.vocab.vocab_size);
  EXPECT_EQ(a.tokenizer_json, b.tokenizer_json);
  EXPECT_EQ(a.tokenizer_fingerprint, b.tokenizer_fingerprint);
  EXPECT_EQ(a.prepare_config, b.prepare_config);
  EXPECT_EQ(a.source, b.source);
}

// ---- editing a saved file behind reclm's back, with the plain HDF5 API ------------------------

struct RawHdf5File {
  explicit RawHdf5File(const fs::path& path) : id(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) {
    EXPECT_GE(id, 0);
  }
  ~RawHdf5File() { H5Fclose(id); }
  hid_t id;
};

void overwrite_attribute(const fs::path& path, const char* name, hid_t memory_type,
                         const void* value) {
  RawHdf5File file(path);
  const hid_t attribute = H5Aopen(file.id, name, H5P_DEFAULT);
  ASSERT_GE(attribute, 0);
  EXPECT_GE(H5Awrite(attribute, memory_type, value), 0);
  H5Aclose(attribute);
}

template <typename T>
void overwrite_dataset(const fs::path& path, const char* name, hid_t memory_type,
                       const std::vector<T>& values) {
  RawHdf5File file(path);
  const hid_t dataset = H5Dopen2(file.id, name, H5P_DEFAULT);
  ASSERT_GE(dataset, 0);
  EXPECT_GE(H5Dwrite(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  H5Dclose(dataset);
}

// ---- round trips ------------------------------------------------------------------------------

TEST_F(DatasetStore, HandMadeDatasetRoundTripsExactly) {
  const RecDataset original = hand_made_dataset();
  const fs::path path = dir_ / "hand.h5";
  save_dataset(path, original);
  expect_same(load_dataset(path), original);
  EXPECT_FALSE(fs::exists(dir_ / "hand.h5.tmp"));
}

TEST_F(DatasetStore, OptionalUserArraysAreAbsentWhenEmpty) {
  RecDataset original = hand_made_dataset();
  original.users.ratings.clear();
  original.users.timestamps.clear();
  original.users.profiles.clear();
  const fs::path path = dir_ / "no_meta.h5";
  save_dataset(path, original);
  {
    const hdf5::Reader file(path);
    EXPECT_FALSE(file.has_dataset("/users/ratings"));
    EXPECT_FALSE(file.has_dataset("/users/timestamps"));
    EXPECT_FALSE(file.has_dataset("/users/profiles"));
    EXPECT_TRUE(file.has_dataset("/users/items"));
    EXPECT_EQ(file.attribute_string("split"), "leave_one_out");
  }
  expect_same(load_dataset(path), original);
}

TEST_F(DatasetStore, EmptyCatalogAndNoUsersRoundTrip) {
  RecDataset empty;
  empty.items.attr_offsets = {0};
  empty.items.title_offsets = {0};
  empty.users.offsets = {0};
  empty.vocab.text_size = 256;
  empty.vocab.special_first = 256;
  empty.vocab.items = {264, 0};
  empty.vocab.attributes = {264, 0};
  empty.vocab.vocab_size = 264;
  empty.tokenizer_fingerprint = XXH64("", 0, 0);
  const fs::path path = dir_ / "empty.h5";
  save_dataset(path, empty);
  const RecDataset loaded = load_dataset(path);
  expect_same(loaded, empty);
  EXPECT_EQ(loaded.items.size(), 0);
  EXPECT_EQ(loaded.users.size(), 0);
}

// Beauty-sized (12k items, 22k users, ~200k interactions): the chunked, compressed path, whose
// arrays span several chunks, round-trips and stores the id arrays compressed.
TEST_F(DatasetStore, BeautySizedArraysRoundTripCompressed) {
  RecDataset d = hand_made_dataset();
  const int32_t n_items = 12101;
  std::mt19937 gen(5);
  std::uniform_int_distribution<int32_t> item(0, n_items - 1), length(5, 13), token(0, 299);
  d.items = {};
  d.items.attribute_names = {"only"};
  d.items.attr_offsets = {0};
  d.items.title_offsets = {0};
  for (int32_t i = 0; i < n_items; ++i) {
    d.items.keys.push_back(fmt::format("B{}", 1000000 + i));
    d.items.titles.push_back(i % 7 == 0 ? "" : fmt::format("title {}", i));
    d.items.attr_ids.push_back(0);
    d.items.attr_offsets.push_back(i + 1);
    for (int32_t t = length(gen); t > 0; --t) d.items.title_tokens.push_back(token(gen));
    d.items.title_offsets.push_back(static_cast<int64_t>(d.items.title_tokens.size()));
  }
  d.users = {};
  d.users.offsets = {0};
  for (int32_t u = 0; u < 22363; ++u) {
    d.users.keys.push_back(fmt::format("A{}", u));
    for (int32_t k = length(gen) - 4; k > 0; --k) d.users.items.push_back(item(gen));
    d.users.offsets.push_back(static_cast<int64_t>(d.users.items.size()));
  }
  d.users.timestamps.assign(d.users.items.size(), 1400000000);
  d.vocab.items = {308, n_items};
  d.vocab.attributes = {308 + n_items, 1};
  d.vocab.vocab_size = 309 + n_items;
  const fs::path path = dir_ / "big.h5";
  save_dataset(path, d);
  expect_same(load_dataset(path), d);
  // Item ids below 2^16 leave half of every int32's bytes zero: shuffle + deflate halves them.
  RawHdf5File file(path);
  for (const auto& [name, count] : {std::pair{"/users/items", d.users.items.size()},
                                    std::pair{"/items/title_tokens", d.items.title_tokens.size()}}) {
    const hid_t dataset = H5Dopen2(file.id, name, H5P_DEFAULT);
    EXPECT_LT(H5Dget_storage_size(dataset), 4 * count * 6 / 10) << name;
    H5Dclose(dataset);
  }
}

// ---- atomic replacement -----------------------------------------------------------------------

TEST_F(DatasetStore, SavingAgainReplacesTheFile) {
  const fs::path path = dir_ / "data.h5";
  RecDataset first = hand_made_dataset();
  save_dataset(path, first);
  RecDataset second = hand_made_dataset();
  second.source = "second";
  second.users.items[0] = 3;
  save_dataset(path, second);
  expect_same(load_dataset(path), second);
}

TEST_F(DatasetStore, InvalidDatasetIsRefusedBeforeWritingAndOldFileSurvives) {
  const fs::path path = dir_ / "data.h5";
  const RecDataset original = hand_made_dataset();
  save_dataset(path, original);
  RecDataset bad = hand_made_dataset();
  bad.users.items[6] = 5;  // n_items is 5
  const std::string message = thrown_message<UserError>([&] { save_dataset(path, bad); });
  EXPECT_NE(message.find("dataset /users/items"), std::string::npos) << message;
  EXPECT_NE(message.find("item id 5 at position 6"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir_ / "data.h5.tmp"));
  expect_same(load_dataset(path), original);
}

TEST_F(DatasetStore, FailureWhileWritingRemovesTmpAndOldFileSurvives) {
  const fs::path path = dir_ / "data.h5";
  const RecDataset original = hand_made_dataset();
  save_dataset(path, original);
  RecDataset bad = hand_made_dataset();
  bad.users.profiles[2] = std::string("nul\0inside", 10);  // passes the checks, fails the write
  const std::string message = thrown_message<UserError>([&] { save_dataset(path, bad); });
  EXPECT_NE(message.find("dataset /users/profiles: string 2 contains a NUL byte"),
            std::string::npos)
      << message;
  EXPECT_FALSE(fs::exists(dir_ / "data.h5.tmp"));
  expect_same(load_dataset(path), original);
}

TEST_F(DatasetStore, SaveThatCannotCreateTheFileFailsCleanly) {
  const fs::path nowhere = dir_ / "no_such_dir" / "data.h5";
  EXPECT_EQ(thrown_message<UserError>([&] { save_dataset(nowhere, hand_made_dataset()); }),
            nowhere.string() + ": cannot write: directory " + nowhere.parent_path().string() +
                " does not exist");
  // PATH.tmp taken by a directory: HDF5 cannot create the file; PATH stays as it was.
  const fs::path path = dir_ / "data.h5";
  const RecDataset original = hand_made_dataset();
  save_dataset(path, original);
  fs::create_directories(dir_ / "data.h5.tmp" / "occupied");
  const std::string message = thrown_message<UserError>([&] { save_dataset(path, original); });
  EXPECT_EQ(message.rfind(path.string() + ": cannot create " + path.string() + ".tmp", 0), 0u)
      << message;
  expect_same(load_dataset(path), original);
}

// ---- bad files --------------------------------------------------------------------------------

TEST_F(DatasetStore, MissingFileIsAUserError) {
  const fs::path path = dir_ / "absent.h5";
  const std::string message = thrown_message<UserError>([&] { load_dataset(path); });
  EXPECT_EQ(message, path.string() + ": file not found");
}

TEST_F(DatasetStore, NonHdf5FileIsAUserError) {
  const fs::path path = dir_ / "text.h5";
  std::ofstream(path) << "user item item\n1 2 3\n";
  const std::string message = thrown_message<UserError>([&] { load_dataset(path); });
  EXPECT_EQ(message, path.string() + ": not an HDF5 file");
}

TEST_F(DatasetStore, TruncatedFileIsAUserError) {
  const fs::path path = dir_ / "full.h5";
  save_dataset(path, hand_made_dataset());
  const fs::path cut = dir_ / "cut.h5";
  fs::copy_file(path, cut);
  fs::resize_file(cut, fs::file_size(path) / 2);
  const std::string message = thrown_message<UserError>([&] { load_dataset(cut); });
  EXPECT_EQ(message.rfind(cut.string() + ": ", 0), 0u) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST_F(DatasetStore, OtherFormatVersionIsAUserError) {
  const fs::path path = dir_ / "beauty.h5";
  save_dataset(path, hand_made_dataset());
  const int64_t version = 7;
  overwrite_attribute(path, "format_version", H5T_NATIVE_INT64, &version);
  const std::string message = thrown_message<UserError>([&] { load_dataset(path); });
  EXPECT_EQ(message, path.string() +
                         ": dataset format version 7, this reclm reads version 1; re-run reclm "
                         "prepare");
}

TEST_F(DatasetStore, MissingDatasetIsNamed) {
  const fs::path path = dir_ / "data.h5";
  save_dataset(path, hand_made_dataset());
  {
    RawHdf5File file(path);
    EXPECT_GE(H5Ldelete(file.id, "/users/items", H5P_DEFAULT), 0);
  }
  const std::string message = thrown_message<UserError>([&] { load_dataset(path); });
  EXPECT_EQ(message, path.string() + ": dataset /users/items: missing");
}

TEST_F(DatasetStore, OutOfRangeItemIdIsNamed) {
  const fs::path path = dir_ / "data.h5";
  RecDataset d = hand_made_dataset();
  save_dataset(path, d);
  d.users.items[3] = -1;
  overwrite_dataset(path, "/users/items", H5T_NATIVE_INT32, d.users.items);
  const std::string message = thrown_message<UserError>([&] { load_dataset(path); });
  EXPECT_EQ(message, path.string() +
                         ": dataset /users/items: item id -1 at position 3 is not in [0, 5)");
}

TEST_F(DatasetStore, InconsistentOffsetsAndIdsAreNamed) {
  const fs::path path = dir_ / "data.h5";
  const RecDataset d = hand_made_dataset();
  struct Case {
    const char* object;
    std::function<void(RecDataset&)> corrupt;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"/users/offsets", [](RecDataset& x) { x.users.offsets[2] = 3; }, "decreases at entry 2"},
      {"/users/offsets", [](RecDataset& x) { x.users.offsets[0] = 1; }, "starts at 1"},
      {"/items/title_offsets", [](RecDataset& x) { x.items.title_offsets[5] = 9; },
       "ends at 9, but /items/title_tokens holds 10 values"},
      {"/items/attr_ids", [](RecDataset& x) { x.items.attr_ids[1] = 3; },
       "attribute id 3 at position 1 is not in [0, 3)"},
      {"/items/title_tokens", [](RecDataset& x) { x.items.title_tokens[9] = 316; },
       "token id 316 at position 9 is not in [0, 316)"},
  };
  for (const Case& c : cases) {
    save_dataset(path, d);
    RecDataset edited = d;
    c.corrupt(edited);
    const std::string object = c.object;
    if (object == "/items/attr_ids") {
      overwrite_dataset(path, c.object, H5T_NATIVE_INT32, edited.items.attr_ids);
    } else if (object == "/items/title_tokens") {
      overwrite_dataset(path, c.object, H5T_NATIVE_INT32, edited.items.title_tokens);
    } else if (object == "/users/offsets") {
      overwrite_dataset(path, c.object, H5T_NATIVE_INT64, edited.users.offsets);
    } else {
      overwrite_dataset(path, c.object, H5T_NATIVE_INT64, edited.items.title_offsets);
    }
    const std::string message = thrown_message<UserError>([&] { load_dataset(path); });
    EXPECT_NE(message.find(std::string("dataset ") + c.object + ": " + c.expected),
              std::string::npos)
        << message;
  }
}

TEST_F(DatasetStore, MismatchedSizesAndLayoutAreRefused) {
  const fs::path path = dir_ / "data.h5";
  RecDataset titles = hand_made_dataset();
  titles.items.titles.pop_back();
  EXPECT_NE(thrown_message<UserError>([&] { save_dataset(path, titles); })
                .find("dataset /items/titles: 4 entries, but /items/keys has 5"),
            std::string::npos);
  RecDataset overlap = hand_made_dataset();
  overlap.vocab.attributes.first = 310;  // inside the item range
  EXPECT_NE(thrown_message<UserError>([&] { save_dataset(path, overlap); })
                .find("attributes items_first and attributes_first"),
            std::string::npos);
  RecDataset count = hand_made_dataset();
  count.vocab.items.count = 4;
  EXPECT_NE(thrown_message<UserError>([&] { save_dataset(path, count); })
                .find("attribute items_count: 4, but /items/keys holds 5 items"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(DatasetStore, FingerprintMismatchIsAUserError) {
  const fs::path path = dir_ / "data.h5";
  const RecDataset d = hand_made_dataset();
  save_dataset(path, d);
  const uint64_t wrong = d.tokenizer_fingerprint + 1;
  overwrite_attribute(path, "tokenizer_fingerprint", H5T_NATIVE_UINT64, &wrong);
  const std::string message = thrown_message<UserError>([&] { load_dataset(path); });
  EXPECT_EQ(message.rfind(path.string() + ": dataset /tokenizer_json: ", 0), 0u) << message;
  EXPECT_NE(message.find("tokenizer_fingerprint"), std::string::npos) << message;

  RecDataset stale = hand_made_dataset();  // a tokenizer edited after fingerprinting
  stale.tokenizer_json += " ";
  EXPECT_NE(thrown_message<UserError>([&] { save_dataset(dir_ / "stale.h5", stale); })
                .find("tokenizer_fingerprint"),
            std::string::npos);
}

}  // namespace
}  // namespace reclm
