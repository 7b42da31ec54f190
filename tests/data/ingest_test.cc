// `reclm prepare` step 1 (data/ingest.h): interaction formats, ordering, filtering, bad input;
// and the split helpers of data/rec_dataset.h. Metadata: ingest_metadata_test.cc.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "data/ingest.h"
#include "data/ingest_lines.h"
#include "data/ingest_test_util.h"
#include "data/rec_dataset.h"
#include "runtime/errors.h"
#include "thrown_message.h"

namespace reclm {
namespace {

using namespace ingest_test;

class Ingest : public TempFiles {};

// ---- line splitting --------------------------------------------------------------------------

TEST(SplitFields, CsvQuotingFollowsRfc4180) {
  std::vector<std::string_view> f;
  std::string scratch;
  EXPECT_EQ(split_fields(R"(a,"b, c","say ""hi""",,"")", ",", true, &f, &scratch), "");
  EXPECT_EQ(f, (std::vector<std::string_view>{"a", "b, c", "say \"hi\"", "", ""}));
  EXPECT_EQ(split_fields(R"(5" nails,x)", ",", true, &f, &scratch), "");  // quote mid-field: text
  EXPECT_EQ(f, (std::vector<std::string_view>{"5\" nails", "x"}));
  EXPECT_EQ(split_fields(R"(a,"open)", ",", true, &f, &scratch), "unterminated quoted field");
  EXPECT_NE(split_fields(R"("a"b,c)", ",", true, &f, &scratch), "");
  // TSV and "::" split literally: a leading quote is part of the title.
  EXPECT_EQ(split_fields("1\t\"quoted\" title", "\t", delimiter_allows_quotes("\t"), &f, &scratch),
            "");
  EXPECT_EQ(f, (std::vector<std::string_view>{"1", "\"quoted\" title"}));
  EXPECT_EQ(split_fields("1::2::5", "::", false, &f, &scratch), "");
  EXPECT_EQ(f, (std::vector<std::string_view>{"1", "2", "5"}));
}

TEST(SplitFields, DelimiterAutoFollowsTheExtension) {
  EXPECT_EQ(resolve_delimiter("auto", "ml-1m/ratings.dat"), "::");
  EXPECT_EQ(resolve_delimiter("auto", "ml-100k/u.data"), "\t");
  EXPECT_EQ(resolve_delimiter("auto", "items.TSV"), "\t");
  EXPECT_EQ(resolve_delimiter("auto", "log.csv"), ",");
  EXPECT_EQ(resolve_delimiter("\\t", "log.csv"), "\t");
  EXPECT_EQ(resolve_delimiter(";", "log.csv"), ";");
}

// ---- interaction inputs ----------------------------------------------------------------------

TEST_F(Ingest, SequenceFileKeepsOrderAndNumbersByFirstAppearance) {
  const std::string path = write("seq.txt", "7 10 11 12\n\n3 12 13\r\n7 14\n9 10");
  IngestReport report;
  const RecDataset d = ingest(sequences(path), &report);
  EXPECT_EQ(report.lines_read, 4);
  EXPECT_EQ(d.users.keys, (Keys{"7", "3", "9"}));
  EXPECT_EQ(history_keys(d, 0), (Keys{"10", "11", "12", "14"}));  // a user's lines continue
  EXPECT_EQ(history_keys(d, 1), (Keys{"12", "13"}));
  EXPECT_EQ(d.items.keys, (Keys{"10", "11", "12", "13", "14"}));  // remap off: first appearance
  EXPECT_EQ(d.users.offsets, (std::vector<int64_t>{0, 4, 6, 7}));
  EXPECT_TRUE(d.users.timestamps.empty());
  EXPECT_TRUE(d.users.ratings.empty());
  EXPECT_TRUE(d.users.profiles.empty());
  EXPECT_EQ(d.items.titles, Keys(5));
  EXPECT_EQ(d.items.attr_offsets, std::vector<int64_t>(6, 0));
  EXPECT_TRUE(d.items.title_offsets.empty());
  EXPECT_TRUE(d.items.title_tokens.empty());
  EXPECT_EQ(report.items_without_title, 5);
  EXPECT_EQ(d.source, path);
  const auto config = nlohmann::json::parse(d.prepare_config);
  EXPECT_EQ(config["sequences"], path);
  EXPECT_EQ(config["remap_items"], false);
}

TEST_F(Ingest, CsvWithHeaderQuotesAndTimestamps) {
  const std::string path = write("log.csv",
                                 "user,item,rating,time\n"
                                 "u1,\"item, one\",5,100\n"
                                 "u1,\"say \"\"hi\"\"\",4.5,50\n"
                                 "u2,\"item, one\",3,10\n"
                                 "u2,\"two\nlines\",2,20\n");
  IngestOptions o = table(path);
  o.table.header = true;
  o.table.rating_column = 2;
  o.table.timestamp_column = 3;
  IngestReport report;
  const RecDataset d = ingest(o, &report);
  EXPECT_EQ(report.lines_read, 4);
  EXPECT_EQ(d.users.keys, (Keys{"u1", "u2"}));
  EXPECT_EQ(history_keys(d, 0), (Keys{"say \"hi\"", "item, one"}));  // by time, not file order
  EXPECT_EQ(history_keys(d, 1), (Keys{"item, one", "two\nlines"}));
  EXPECT_EQ(d.users.ratings, (std::vector<float>{4.5f, 5, 3, 2}));
  EXPECT_EQ(d.users.timestamps, (std::vector<int64_t>{50, 100, 10, 20}));
}

TEST_F(Ingest, MovieLensDatWithMinRating) {
  const std::string path = write("ratings.dat",
                                 "1::1193::5::978300760\n"
                                 "1::661::3::978302109\n"
                                 "1::914::2::978301968\n"
                                 "2::1357::5::978298709\n"
                                 "3::914::1::978297000\n");
  IngestOptions o = table(path);
  o.table.rating_column = 2;
  o.table.timestamp_column = 3;
  o.table.min_rating = 3;
  IngestReport report;
  const RecDataset d = ingest(o, &report);
  EXPECT_EQ(report.below_min_rating, 2);
  EXPECT_EQ(d.users.keys, (Keys{"1", "2"}));  // user 3 only rated low
  EXPECT_EQ(history_keys(d, 0), (Keys{"1193", "661"}));
  EXPECT_EQ(d.items.size(), 3);  // 914 was only rated low: it does not exist
  EXPECT_EQ(d.users.ratings, (std::vector<float>{5, 3, 5}));
  const auto config = nlohmann::json::parse(d.prepare_config);
  EXPECT_EQ(config["delimiter"], "::");
  EXPECT_EQ(config["min_rating"], 3.0);
}

TEST_F(Ingest, UDataSortsChronologicallyWithStableTies) {
  // u.data: user item rating timestamp, tab separated, in no particular order.
  const std::string path = write("u.data",
                                 "196\t242\t3\t300\n"
                                 "186\t302\t3\t200\n"
                                 "196\t377\t1\t100\n"
                                 "196\t51\t2\t300\n"
                                 "196\t346\t1\t200\n"
                                 "196\t474\t4\t300\n");
  IngestOptions o = table(path);
  o.table.rating_column = 2;
  o.table.timestamp_column = 3;
  const RecDataset d = ingest(o, nullptr);
  ASSERT_EQ(d.users.keys, (Keys{"196", "186"}));
  // 100, 200, then the three at 300 in file order.
  EXPECT_EQ(history_keys(d, 0), (Keys{"377", "346", "242", "51", "474"}));
  EXPECT_EQ(d.users.timestamps, (std::vector<int64_t>{100, 200, 300, 300, 300, 200}));
  EXPECT_EQ(d.users.ratings, (std::vector<float>{1, 1, 3, 2, 4, 3}));
}

TEST_F(Ingest, LongHistoriesWithManyTiesStayStable) {
  // Long enough that an unstable sort would reorder ties (small ranges hide it).
  std::string text;
  std::vector<std::pair<int, std::string>> expected;
  for (int i = 0; i < 200; ++i) {
    const int time = (i * 7) % 3;
    text += fmt::format("u\titem{}\t1\t{}\n", i, time);
    expected.emplace_back(time, fmt::format("item{}", i));
  }
  std::stable_sort(expected.begin(), expected.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  IngestOptions o = table(write("u.data", text));
  o.table.timestamp_column = 3;
  const RecDataset d = ingest(o, nullptr);
  Keys want;
  for (const auto& e : expected) want.push_back(e.second);
  EXPECT_EQ(history_keys(d, 0), want);
}

// ---- filtering -------------------------------------------------------------------------------

TEST_F(Ingest, KcoreIteratesUntilStable) {
  // k = 2. Round 1 removes d and e (one interaction each); that leaves u3 and u4 with only c, so
  // round 2 removes them, and with them item c (which had 2 interactions before).
  IngestOptions o = sequences(write("seq.txt", "u1 a b\nu2 a b\nu3 c d\nu4 c e\n"));
  o.kcore = 2;
  IngestReport report;
  const RecDataset d = ingest(o, &report);
  EXPECT_EQ(d.users.keys, (Keys{"u1", "u2"}));
  EXPECT_EQ(d.items.keys, (Keys{"a", "b"}));
  EXPECT_EQ(report.kcore_rounds, 2);
  EXPECT_EQ(report.kcore_dropped_interactions, 4);
  // Already a 2-core: nothing happens.
  o.sequences_path = write("core.txt", "u1 a b\nu2 a b\n");
  IngestReport none;
  ingest(o, &none);
  EXPECT_EQ(none.kcore_rounds, 0);
}

TEST_F(Ingest, DuplicatePolicies) {
  IngestOptions o = sequences(write("seq.txt", "u a b b a c a\nv x\n"));
  const auto run = [&](DuplicatePolicy policy, int64_t* dropped) {
    o.duplicates = policy;
    IngestReport report;
    const RecDataset d = ingest(o, &report);
    *dropped = report.duplicates_dropped;
    return history_keys(d, 0);
  };
  int64_t dropped = -1;
  EXPECT_EQ(run(DuplicatePolicy::kKeepAll, &dropped), (Keys{"a", "b", "b", "a", "c", "a"}));
  EXPECT_EQ(dropped, 0);
  EXPECT_EQ(run(DuplicatePolicy::kDropConsecutive, &dropped), (Keys{"a", "b", "a", "c", "a"}));
  EXPECT_EQ(dropped, 1);
  EXPECT_EQ(run(DuplicatePolicy::kKeepFirst, &dropped), (Keys{"a", "b", "c"}));
  EXPECT_EQ(dropped, 3);
  EXPECT_EQ(run(DuplicatePolicy::kKeepLast, &dropped), (Keys{"b", "c", "a"}));
  EXPECT_EQ(dropped, 3);
}

TEST_F(Ingest, DuplicatePolicyActsInTimeOrderAndCarriesRatings) {
  IngestOptions o = table(write("log.csv", "u,a,1,30\nu,b,2,10\nu,a,3,20\n"));
  o.table.rating_column = 2;
  o.table.timestamp_column = 3;
  o.duplicates = DuplicatePolicy::kKeepLast;
  const RecDataset d = ingest(o, nullptr);
  EXPECT_EQ(history_keys(d, 0), (Keys{"b", "a"}));
  EXPECT_EQ(d.users.ratings, (std::vector<float>{2, 1}));
  EXPECT_EQ(d.users.timestamps, (std::vector<int64_t>{10, 30}));
}

TEST_F(Ingest, RemapIsASeededPermutation) {
  std::string text;
  for (int u = 0; u < 20; ++u) {
    text += fmt::format("user{}", u);
    for (int i = 0; i < 10; ++i) text += fmt::format(" {}", (u * 7 + i * 3) % 50);
    text += '\n';
  }
  IngestOptions o = sequences(write("seq.txt", text));
  const RecDataset plain = ingest(o, nullptr);
  o.remap_items = true;
  o.seed = 1;
  const RecDataset a = ingest(o, nullptr);
  const RecDataset again = ingest(o, nullptr);
  o.seed = 2;
  const RecDataset b = ingest(o, nullptr);
  ASSERT_EQ(a.items.size(), 50);
  Keys sorted_a = a.items.keys;
  Keys sorted_plain = plain.items.keys;
  std::sort(sorted_a.begin(), sorted_a.end());
  std::sort(sorted_plain.begin(), sorted_plain.end());
  EXPECT_EQ(sorted_a, sorted_plain);  // the same items, renumbered
  EXPECT_NE(a.items.keys, plain.items.keys);
  EXPECT_EQ(a.items.keys, again.items.keys);
  EXPECT_EQ(a.users.items, again.users.items);
  EXPECT_NE(a.items.keys, b.items.keys);
  for (int64_t u = 0; u < plain.users.size(); ++u) {
    EXPECT_EQ(history_keys(a, u), history_keys(plain, u));  // histories unchanged as keys
  }
  EXPECT_EQ(a.users.keys, plain.users.keys);
}

// ---- bad input -------------------------------------------------------------------------------

TEST_F(Ingest, MalformedLinesNameFileLineAndText) {
  struct Case {
    std::string file;
    std::string text;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"a.csv", "1,2,3,4\n1,2,3\n", "expected 4 fields"},
      {"b.csv", "1,2,5,100\n1,3,5,yesterday\n", "timestamp (column 3) is not a number"},
      {"c.csv", "1,2,5,100\n1,3,five,100\n", "rating (column 2) is not a number"},
      {"d.csv", "1,2,5,100\n ,3,5,100\n", "empty user id"},
      {"e.csv", "1,2,5,100\n1,\"3,5,100\n", "unterminated quoted field"},
  };
  for (const Case& c : cases) {
    IngestOptions o = table(write(c.file, c.text));
    o.table.rating_column = 2;
    o.table.timestamp_column = 3;
    const std::string message = thrown_message<UserError>([&] { ingest(o, nullptr); });
    EXPECT_NE(message.find(o.table_path + ":2: "), std::string::npos) << message;
    EXPECT_NE(message.find(c.what), std::string::npos) << message;
    const size_t second = c.text.find('\n') + 1;
    const std::string line = c.text.substr(second, c.text.size() - 1 - second);
    EXPECT_NE(message.find(line), std::string::npos) << message;
  }
  const std::string seq = write("seq.txt", "1 2 3\n4\n");
  const std::string message = thrown_message<UserError>([&] { ingest(sequences(seq), nullptr); });
  EXPECT_NE(message.find(seq + ":2: a user with no items: 4"), std::string::npos) << message;
}

TEST_F(Ingest, LongBadLinesAreShortenedInTheMessage) {
  const std::string seq = write("seq.txt", "1 2\n" + std::string(5000, 'x') + "\n");
  const std::string message = thrown_message<UserError>([&] { ingest(sequences(seq), nullptr); });
  EXPECT_LT(message.size(), 400u);
  EXPECT_NE(message.find("xxx..."), std::string::npos) << message;
}

TEST_F(Ingest, SkipBadLinesCountsThem) {
  IngestOptions o = table(write("log.csv", "1,2,100\n1,3\n2,x,abc\n2,4,50\n,5,1\n3,5,7\n"));
  o.table.timestamp_column = 2;
  o.skip_bad_lines = true;
  IngestReport report;
  const RecDataset d = ingest(o, &report);
  EXPECT_EQ(report.bad_lines, 3);
  EXPECT_EQ(report.lines_read, 6);
  EXPECT_EQ(d.users.items.size(), 3u);
  EXPECT_EQ(d.users.keys, (Keys{"1", "2", "3"}));
}

TEST_F(Ingest, InputMistakesAreUserErrors) {
  IngestOptions o = sequences((dir_ / "missing.txt").string());
  EXPECT_NE(thrown_message<UserError>([&] { ingest(o, nullptr); }).find("missing.txt"),
            std::string::npos);
  o.table_path = write("t.csv", "1,2\n");
  EXPECT_NE(thrown_message<UserError>([&] { ingest(o, nullptr); }).find("both"),
            std::string::npos);
  EXPECT_NE(thrown_message<UserError>([&] { ingest(IngestOptions(), nullptr); }).find("neither"),
            std::string::npos);
  o = table(o.table_path);
  o.table.timestamp_column = 5;
  EXPECT_NE(thrown_message<UserError>([&] { ingest(o, nullptr); }).find("timestamp_column is 5"),
            std::string::npos);
  o.table.timestamp_column = -1;
  o.table.min_rating = 4;
  EXPECT_NE(thrown_message<UserError>([&] { ingest(o, nullptr); }).find("no rating_column"),
            std::string::npos);
  o = sequences(write("s.txt", "1 2\n"));
  o.items_path = (dir_ / "no_items.tsv").string();
  EXPECT_NE(thrown_message<UserError>([&] { ingest(o, nullptr); }).find("no_items.tsv"),
            std::string::npos);
  o = sequences(write("s.txt", "1 2\n"));
  o.attributes_path = write("bad.json", "{\"1\": [1,");
  EXPECT_NE(thrown_message<UserError>([&] { ingest(o, nullptr); }).find("bad.json: not valid JSON"),
            std::string::npos);
  o = sequences(write("s.txt", "1 2\n"));
  o.kcore = 3;
  EXPECT_NE(thrown_message<UserError>([&] { ingest(o, nullptr); }).find("no interactions left"),
            std::string::npos);
}

// ---- split -----------------------------------------------------------------------------------

UserSequences users_with_lengths(const std::vector<int>& lengths) {
  UserSequences users;
  users.offsets.push_back(0);
  int32_t next = 100;
  for (int n : lengths) {
    users.keys.push_back(std::to_string(n));
    for (int i = 0; i < n; ++i) users.items.push_back(next++);
    users.offsets.push_back(static_cast<int64_t>(users.items.size()));
  }
  return users;
}

std::vector<int32_t> as_vector(std::span<const int32_t> s) { return {s.begin(), s.end()}; }

TEST(SplitView, LeaveOneOutByHistoryLength) {
  const UserSequences users = users_with_lengths({1, 2, 3, 5});
  // n = 1 and 2: everything trains, no targets.
  for (int64_t u : {0, 1}) {
    EXPECT_EQ(as_vector(split_view(users, u, Split::kTrain).history),
              as_vector(users.history(u)));
    for (Split s : {Split::kValidation, Split::kTest}) {
      const SplitView v = split_view(users, u, s);
      EXPECT_FALSE(v.has_target);
      EXPECT_EQ(v.target, -1);
      EXPECT_TRUE(v.history.empty());
    }
  }
  // n = 3: items 103, 104, 105.
  EXPECT_EQ(as_vector(split_view(users, 2, Split::kTrain).history), (std::vector<int32_t>{103}));
  SplitView v = split_view(users, 2, Split::kValidation);
  EXPECT_TRUE(v.has_target);
  EXPECT_EQ(v.target, 104);
  EXPECT_EQ(as_vector(v.history), (std::vector<int32_t>{103}));
  v = split_view(users, 2, Split::kTest);
  EXPECT_EQ(v.target, 105);
  EXPECT_EQ(as_vector(v.history), (std::vector<int32_t>{103, 104}));
  // n = 5: items 106..110.
  EXPECT_EQ(as_vector(split_view(users, 3, Split::kTrain).history),
            (std::vector<int32_t>{106, 107, 108}));
  v = split_view(users, 3, Split::kValidation);
  EXPECT_EQ(v.target, 109);
  EXPECT_EQ(as_vector(v.history), (std::vector<int32_t>{106, 107, 108}));
  v = split_view(users, 3, Split::kTest);
  EXPECT_EQ(v.target, 110);
  EXPECT_EQ(as_vector(v.history), (std::vector<int32_t>{106, 107, 108, 109}));
}

TEST(SplitView, TrainingItemsExcludeHeldOutItems) {
  const UserSequences users = users_with_lengths({1, 2, 3, 5});
  EXPECT_EQ(training_items(users), (std::vector<int32_t>{100, 101, 102, 103, 106, 107, 108}));
}

TEST(DescribeStatistics, CountsAndDensity) {
  RecDataset d;
  d.users = users_with_lengths({1, 2, 3, 5});
  d.items.keys.resize(20);
  const std::string text = describe_statistics(d);
  EXPECT_NE(text.find("users         4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("items         20\n"), std::string::npos) << text;
  EXPECT_NE(text.find("interactions  11\n"), std::string::npos) << text;
  EXPECT_NE(text.find("2.75 items"), std::string::npos) << text;
  EXPECT_NE(text.find("13.7500%"), std::string::npos) << text;  // 11 / (4 * 20)
}

}  // namespace
}  // namespace reclm
