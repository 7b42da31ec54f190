// `reclm prepare` step 1 (data/ingest.h): item and user metadata matched to the interactions,
// and the real S3-Rec Beauty files when they are present.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "data/ingest.h"
#include "data/ingest_test_util.h"
#include "runtime/errors.h"
#include "shared_data.h"
#include "thrown_message.h"

namespace reclm {
namespace {

using namespace ingest_test;
namespace fs = std::filesystem;

class IngestMetadata : public TempFiles {};

TEST_F(IngestMetadata, ItemsTsvAutoTakesFirstColumnAsIdAndLastAsTitle) {
  const std::string seq = write("seq.txt", "u1 1 2 3\nu2 3 4\n");
  IngestOptions o = sequences(seq);
  o.items_path = write("items.tsv",
                       "s3rec_item_id\tasin\ttext\n"
                       "1\tB01\tnail polish\n"
                       "2\tB02\t\"quoted\" balm\n"
                       "3\tB03\t\n"  // empty text: falls back to the asin
                       "99\tB99\tnot in the data\n");
  IngestReport report;
  const RecDataset d = ingest(o, &report);
  EXPECT_EQ(d.items.titles[item_id(d, "1")], "nail polish");
  EXPECT_EQ(d.items.titles[item_id(d, "2")], "\"quoted\" balm");
  EXPECT_EQ(d.items.titles[item_id(d, "3")], "B03");
  EXPECT_EQ(d.items.titles[item_id(d, "4")], "");
  EXPECT_EQ(report.metadata_unmatched, 1);
  EXPECT_EQ(report.items_without_title, 1);

  o.item_id_field = "asin";  // named fields: ids no longer match
  o.item_title_field = "text";
  IngestReport named;
  ingest(o, &named);
  EXPECT_EQ(named.metadata_unmatched, 4);
  o.item_id_field = "s3rec_item_id";
  EXPECT_EQ(ingest(o, nullptr).items.titles[item_id(d, "3")], "");  // no fallback when named
  o.item_title_field = "name";
  const std::string message = thrown_message<UserError>([&] { ingest(o, nullptr); });
  EXPECT_NE(message.find("\"name\" is not a column"), std::string::npos) << message;
  EXPECT_NE(message.find("s3rec_item_id, asin, text"), std::string::npos) << message;
}

TEST_F(IngestMetadata, ItemsCsvWithTitleColumnQuotesAndByteOrderMark) {
  IngestOptions o = sequences(write("seq.txt", "u1 a b\n"));
  // The title column is found by name despite the BOM of a spreadsheet export before it.
  o.items_path = write("items.csv", "\xEF\xBB\xBFTitle,brand,ID\n\"Soap, lavender\",acme,a\nTea,zen,b\n");
  const RecDataset d = ingest(o, nullptr);
  EXPECT_EQ(d.items.titles[item_id(d, "a")], "Soap, lavender");
  EXPECT_EQ(d.items.titles[item_id(d, "b")], "Tea");
}

TEST_F(IngestMetadata, ItemsJsonJsonlAndAttributes) {
  const std::string seq = write("seq.txt", "u1 10 20 30\n");
  IngestOptions o = sequences(seq);
  o.items_path = write("items.jsonl",
                       "{\"id\": 10, \"title\": \"Lipstick\", \"attributes\": [\"red\", \"matte\"]}\n"
                       "{\"item_id\": \"20\", \"name\": \"Mascara\"}\n"
                       "\n"
                       "{\"id\": \"77\", \"title\": \"elsewhere\"}\n");
  o.attributes_path = write("attrs.json", R"({"10": ["red", 5], "30": [12, 5], "88": [1]})");
  IngestReport report;
  RecDataset d = ingest(o, &report);
  EXPECT_EQ(d.items.titles[item_id(d, "10")], "Lipstick");
  EXPECT_EQ(d.items.titles[item_id(d, "20")], "Mascara");
  EXPECT_EQ(report.metadata_unmatched, 2);  // item 77 and attributes of 88
  // Names sorted in byte order (not all integers); an item's own order kept, without repeats.
  EXPECT_EQ(d.items.attribute_names, (Keys{"12", "5", "matte", "red"}));
  EXPECT_EQ(attribute_names_of(d, item_id(d, "10")), (Keys{"red", "matte", "5"}));
  EXPECT_EQ(attribute_names_of(d, item_id(d, "20")), Keys{});
  EXPECT_EQ(attribute_names_of(d, item_id(d, "30")), (Keys{"12", "5"}));
  ASSERT_EQ(d.items.attr_offsets.size(), 4u);

  // A .json array of records, and a .json object id → record / title.
  o.attributes_path = "";
  o.items_path = write("a.json", R"([{"asin": "30", "title": "Blush"}, {"id": 10, "title": "L"}])");
  d = ingest(o, nullptr);
  EXPECT_EQ(d.items.titles[item_id(d, "30")], "Blush");
  EXPECT_EQ(d.items.titles[item_id(d, "10")], "L");
  o.items_path = write("o.json", R"({"20": "Mascara", "30": {"title": "Blush", "attributes": [3]}})");
  d = ingest(o, nullptr);
  EXPECT_EQ(d.items.titles[item_id(d, "20")], "Mascara");
  EXPECT_EQ(attribute_names_of(d, item_id(d, "30")), Keys{"3"});
}

TEST_F(IngestMetadata, IntegerAttributesSortNumerically) {
  IngestOptions o = sequences(write("seq.txt", "u1 1 2\n"));
  o.attributes_path = write("attrs.json", R"({"1": [10, 9], "2": [100, 9]})");
  const RecDataset d = ingest(o, nullptr);
  EXPECT_EQ(d.items.attribute_names, (Keys{"9", "10", "100"}));
  EXPECT_EQ(attribute_names_of(d, item_id(d, "2")), (Keys{"100", "9"}));
}

TEST_F(IngestMetadata, UserProfilesFromTsv) {
  IngestOptions o = sequences(write("seq.txt", "1 a\n2 b\n3 c\n"));
  o.users_path = write("users.tsv", "user_id\tage\tgender\n2\t24\tF\n1\t\tM\n9\t30\tM\n");
  IngestReport report;
  RecDataset d = ingest(o, &report);
  EXPECT_EQ(d.users.profiles, (Keys{"gender: M", "age: 24; gender: F", ""}));
  EXPECT_EQ(report.metadata_unmatched, 1);
  o.users_path = write("bio.csv", "id,bio\n3,\"likes tea, hates coffee\"\n");
  d = ingest(o, nullptr);
  EXPECT_EQ(d.users.profiles, (Keys{"", "", "likes tea, hates coffee"}));
}

// ---- the real Beauty data --------------------------------------------------------------------

TEST(IngestBeauty, MatchesThePublishedStatistics) {
  const fs::path dir = kSharedDataDir / "beauty";
  if (!fs::exists(dir / "Beauty.txt")) GTEST_SKIP() << "no Beauty data at " << dir;
  IngestOptions o;
  o.sequences_path = (dir / "Beauty.txt").string();
  o.items_path = (dir / "items.tsv").string();
  o.attributes_path = (dir / "Beauty_item2attributes.json").string();
  o.progress = false;
  IngestReport report;
  const RecDataset d = ingest(o, &report);
  EXPECT_EQ(d.users.size(), 22363);
  EXPECT_EQ(d.items.size(), 12101);
  EXPECT_EQ(d.users.items.size(), 198502u);
  EXPECT_EQ(report.bad_lines, 0);
  EXPECT_EQ(report.metadata_unmatched, 0);
  EXPECT_EQ(report.items_without_title, 0);
  for (int32_t i = 0; i < d.items.size(); ++i) EXPECT_FALSE(d.items.titles[i].empty()) << i;
  EXPECT_EQ(d.items.titles[item_id(d, "1")], "nail lacquer simmer and shimmer");
  EXPECT_EQ(d.items.titles[item_id(d, "10205")], "B001LTVF7G");  // empty text: the asin
  EXPECT_EQ(history_keys(d, 0), (Keys{"1", "2", "3", "4", "5"}));
  // Remapped: item "1" is unlikely to stay id 0, and ids are a permutation of [0, n).
  std::vector<int32_t> seen(d.items.size(), 0);
  for (int32_t item : d.users.items) seen[item] = 1;
  EXPECT_EQ(std::accumulate(seen.begin(), seen.end(), 0), d.items.size());

  std::ifstream in(o.attributes_path);
  const auto attributes = nlohmann::json::parse(in);
  std::set<int64_t> distinct;
  ASSERT_EQ(d.items.attr_offsets.size(), 12102u);
  std::unordered_map<std::string, int32_t> id_of;
  for (int32_t i = 0; i < d.items.size(); ++i) id_of[d.items.keys[i]] = i;
  for (const auto& [key, list] : attributes.items()) {
    Keys expected;
    for (const auto& a : list) {
      // An item's attributes are a set in listed order (Beauty lists a few twice).
      const std::string name = std::to_string(a.get<int64_t>());
      if (std::find(expected.begin(), expected.end(), name) == expected.end()) {
        expected.push_back(name);
      }
      distinct.insert(a.get<int64_t>());
    }
    ASSERT_EQ(id_of.count(key), 1u) << key;
    EXPECT_EQ(attribute_names_of(d, id_of[key]), expected) << key;
  }
  ASSERT_EQ(d.items.attribute_names.size(), distinct.size());
  EXPECT_EQ(d.items.attribute_names.front(), std::to_string(*distinct.begin()));
  EXPECT_EQ(d.items.attribute_names.back(), std::to_string(*distinct.rbegin()));
}

}  // namespace
}  // namespace reclm
