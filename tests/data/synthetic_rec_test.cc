#include "data/synthetic_rec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "data/rec_dataset_expect.h"
#include "runtime/errors.h"
#include "thrown_message.h"

namespace reclm {
namespace {

// Leave-one-out split written out here (the protocol of data/rec_dataset.h) so the test checks
// the data itself: training prefix [0, n−2), test history [0, n−1), test target item n−1.
struct LeaveOneOut {
  std::vector<std::span<const int32_t>> train;
  std::vector<int32_t> test_last;    // last item of the test history
  std::vector<int32_t> test_target;  // the held-out item
};

LeaveOneOut leave_one_out(const UserSequences& users) {
  LeaveOneOut split;
  for (int64_t u = 0; u < users.size(); ++u) {
    const std::span<const int32_t> h = users.history(u);
    if (h.size() < 3) continue;
    split.train.push_back(h.first(h.size() - 2));
    split.test_last.push_back(h[h.size() - 2]);
    split.test_target.push_back(h.back());
  }
  return split;
}

struct HitRates {
  double successor = 0;   // predict the most frequent training successor of the last item
  double popularity = 0;  // predict the most frequent training item
};

// HR@1 of two model-free predictors on the test split: the first can only win through
// sequential habits, the second is the popularity baseline of `reclm eval`.
HitRates hit_rates_at_1(const RecDataset& d) {
  const LeaveOneOut split = leave_one_out(d.users);
  const int32_t n_items = d.items.size();
  std::vector<int64_t> count(n_items, 0);
  std::vector<std::map<int32_t, int64_t>> successors(n_items);
  for (const auto& prefix : split.train) {
    for (size_t t = 0; t < prefix.size(); ++t) {
      ++count[prefix[t]];
      if (t + 1 < prefix.size()) ++successors[prefix[t]][prefix[t + 1]];
    }
  }
  const auto popular =
      static_cast<int32_t>(std::max_element(count.begin(), count.end()) - count.begin());
  int64_t successor_hits = 0, popularity_hits = 0;
  for (size_t k = 0; k < split.test_target.size(); ++k) {
    int32_t guess = popular;
    int64_t best = 0;
    for (const auto& [next, n] : successors[split.test_last[k]])
      if (n > best) best = n, guess = next;
    successor_hits += guess == split.test_target[k];
    popularity_hits += popular == split.test_target[k];
  }
  const auto n = static_cast<double>(split.test_target.size());
  return {successor_hits / n, popularity_hits / n};
}

void expect_same(const RecDataset& a, const RecDataset& b) {
  test::expect_same_items_and_histories(a, b);
  EXPECT_EQ(a.prepare_config, b.prepare_config);
}

TEST(SyntheticRec, SameSeedSameDataOtherSeedOtherData) {
  const SyntheticRecOptions options;
  const RecDataset a = make_synthetic_dataset(options);
  expect_same(a, make_synthetic_dataset(options));
  SyntheticRecOptions other = options;
  other.seed = options.seed + 1;
  const RecDataset b = make_synthetic_dataset(other);
  EXPECT_NE(a.users.items, b.users.items);
  EXPECT_NE(a.items.titles, b.items.titles);
  EXPECT_NE(a.items.attr_ids, b.items.attr_ids);
}

TEST(SyntheticRec, FewerUsersAreAPrefixOfMoreUsers) {
  // Each user has its own random stream, so growing n_users never changes existing users.
  SyntheticRecOptions small;
  small.n_users = 100;
  const RecDataset a = make_synthetic_dataset(small);
  const RecDataset b = make_synthetic_dataset(SyntheticRecOptions{});
  EXPECT_EQ(a.items.titles, b.items.titles);
  ASSERT_EQ(a.users.size(), 100);
  const auto n = static_cast<size_t>(a.users.offsets.back());
  EXPECT_EQ(a.users.items, std::vector<int32_t>(b.users.items.begin(), b.users.items.begin() + n));
}

TEST(SyntheticRec, ShapesIdsLengthsAndKeys) {
  SyntheticRecOptions options;
  options.n_users = 700;
  options.n_items = 300;
  options.n_categories = 7;
  options.min_history = 3;
  options.max_history = 9;
  const RecDataset d = make_synthetic_dataset(options);
  EXPECT_EQ(d.source, "synthetic");
  ASSERT_EQ(d.items.size(), 300);
  EXPECT_EQ(d.items.keys[17], "item17");
  ASSERT_EQ(d.users.size(), 700);
  EXPECT_EQ(d.users.keys[42], "user42");
  ASSERT_EQ(d.users.offsets.size(), 701u);
  EXPECT_EQ(d.users.offsets.front(), 0);
  EXPECT_EQ(static_cast<size_t>(d.users.offsets.back()), d.users.items.size());
  EXPECT_EQ(d.users.ratings.size(), d.users.items.size());
  EXPECT_EQ(d.users.timestamps.size(), d.users.items.size());
  EXPECT_TRUE(d.users.profiles.empty());
  EXPECT_TRUE(d.items.title_tokens.empty()) << "tokens are item_vocab's job";

  std::vector<int64_t> uses(300, 0);
  std::set<int64_t> lengths;
  for (int64_t u = 0; u < d.users.size(); ++u) {
    const auto h = d.users.history(u);
    ASSERT_GE(h.size(), 3u);  // leave-one-out possible for everyone
    ASSERT_LE(h.size(), 9u);
    lengths.insert(static_cast<int64_t>(h.size()));
    const int64_t begin = d.users.offsets[u];
    for (size_t t = 0; t < h.size(); ++t) {
      ASSERT_GE(h[t], 0);
      ASSERT_LT(h[t], 300);
      ++uses[h[t]];
      const float r = d.users.ratings[begin + t];
      ASSERT_TRUE(r >= 1 && r <= 5 && r == static_cast<int>(r)) << r;
      if (t > 0) {
        ASSERT_LT(d.users.timestamps[begin + t - 1], d.users.timestamps[begin + t]);
      }
    }
  }
  EXPECT_EQ(lengths.size(), 7u) << "lengths spread over [min_history, max_history]";
  EXPECT_EQ(std::count(uses.begin(), uses.end(), 0), 0) << "every item is used";

  const nlohmann::json config = nlohmann::json::parse(d.prepare_config);
  EXPECT_EQ(config["n_items"], 300);
  EXPECT_EQ(config["max_history"], 9);
  EXPECT_EQ(config["seed"], 1234);
}

TEST(SyntheticRec, TitlesAndAttributesCarryTheCategory) {
  const RecDataset d = make_synthetic_dataset(SyntheticRecOptions{});
  const ItemTable& items = d.items;
  EXPECT_EQ(std::set<std::string>(items.titles.begin(), items.titles.end()).size(),
            items.titles.size())
      << "titles identify items";
  ASSERT_EQ(items.attr_offsets.size(), static_cast<size_t>(items.size()) + 1);
  std::map<std::string, int> items_per_category;
  for (int32_t i = 0; i < items.size(); ++i) {
    const auto attrs = items.attributes_of(i);
    ASSERT_EQ(attrs.size(), 3u);
    for (int32_t a : attrs) ASSERT_LT(static_cast<size_t>(a), items.attribute_names.size());
    const std::string& category = items.attribute_names[attrs[0]];
    ASSERT_TRUE(category.starts_with("category:")) << category;
    EXPECT_TRUE(items.attribute_names[attrs[1]].starts_with("brand:"));
    EXPECT_TRUE(items.attribute_names[attrs[2]].starts_with("price:"));
    // "<brand> <adjective> <category noun> <variant>": the title names the category.
    const std::string noun = category.substr(9);
    EXPECT_NE(items.titles[i].find(" " + noun + " "), std::string::npos)
        << items.titles[i] << " / " << category;
    const std::string brand = items.attribute_names[attrs[1]].substr(6);
    EXPECT_TRUE(items.titles[i].starts_with(brand + " ")) << items.titles[i];
    ++items_per_category[category];
  }
  ASSERT_EQ(items_per_category.size(), 12u);
  for (const auto& [category, n] : items_per_category) EXPECT_NEAR(n, 500 / 12, 1) << category;
}

TEST(SyntheticRec, UsersStayWithinAFewTastes) {
  const RecDataset d = make_synthetic_dataset(SyntheticRecOptions{});
  double covered = 0;
  for (int64_t u = 0; u < d.users.size(); ++u) {
    std::map<int32_t, int> per_category;
    for (int32_t item : d.users.history(u)) ++per_category[d.items.attributes_of(item)[0]];
    std::vector<int> counts;
    for (const auto& [c, n] : per_category) counts.push_back(n);
    std::sort(counts.rbegin(), counts.rend());
    int top3 = 0;
    for (size_t k = 0; k < std::min<size_t>(3, counts.size()); ++k) top3 += counts[k];
    covered += static_cast<double>(top3) / d.users.history(u).size();
  }
  // Uniform draws over 12 categories would put ~40% of a history in its 3 largest categories.
  EXPECT_GT(covered / d.users.size(), 0.75);
}

TEST(SyntheticRec, HabitsBeatPopularityWithoutAModel) {
  const HitRates habits = hit_rates_at_1(make_synthetic_dataset(SyntheticRecOptions{}));
  std::cout << "[ info ] HR@1 successor " << habits.successor << ", popularity "
            << habits.popularity << "\n";
  EXPECT_GT(habits.popularity, 0.0);
  EXPECT_GT(habits.successor, 0.3);
  EXPECT_GE(habits.successor, 3 * habits.popularity);

  // Without habits the successor predictor loses its edge: the signal is the chains.
  SyntheticRecOptions no_habits;
  no_habits.habit_probability = 0;
  const HitRates random = hit_rates_at_1(make_synthetic_dataset(no_habits));
  std::cout << "[ info ] without habits: HR@1 successor " << random.successor << ", popularity "
            << random.popularity << "\n";
  EXPECT_LT(random.successor, habits.successor / 2);
}

TEST(SyntheticRec, GeneratesTheDefaultSizeQuickly) {
  const auto start = std::chrono::steady_clock::now();
  const RecDataset d = make_synthetic_dataset(SyntheticRecOptions{});
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ info ] 2000 users x 500 items: " << d.users.items.size() << " interactions in "
            << ms << " ms\n";
  EXPECT_LT(ms, 1000) << "meant to take well under 100 ms";
}

TEST(SyntheticRec, BadOptionsAreUserErrorsNamingTheField) {
  const auto message = [](auto change) {
    SyntheticRecOptions options;
    change(options);
    return thrown_message<UserError>([&] { make_synthetic_dataset(options); });
  };
  EXPECT_NE(message([](auto& o) { o.n_items = 1; }).find("n_items"), std::string::npos);
  EXPECT_NE(message([](auto& o) { o.n_items = 5; }).find("n_categories"), std::string::npos);
  EXPECT_NE(message([](auto& o) { o.n_users = 0; }).find("n_users"), std::string::npos);
  EXPECT_NE(message([](auto& o) { o.min_history = 8, o.max_history = 4; }).find("min_history"),
            std::string::npos);
  EXPECT_NE(message([](auto& o) { o.habit_probability = 1.5; }).find("habit_probability"),
            std::string::npos);
  EXPECT_NE(message([](auto& o) { o.n_categories = 100000; }).find("n_categories"),
            std::string::npos);
}

TEST(SyntheticRec, TinyCatalogsStillWork) {
  SyntheticRecOptions options;
  options.n_items = 2;
  options.n_categories = 1;
  options.n_users = 5;
  options.min_history = options.max_history = 4;
  const RecDataset d = make_synthetic_dataset(options);
  EXPECT_EQ(d.users.items.size(), 20u);
  for (int32_t item : d.users.items) EXPECT_TRUE(item == 0 || item == 1);
}

}  // namespace
}  // namespace reclm
