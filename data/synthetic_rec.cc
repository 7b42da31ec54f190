#include "data/synthetic_rec.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_set>

#include "runtime/errors.h"
#include "runtime/rng.h"

namespace reclm {
namespace {

// Word lists of the generated titles. Small on purpose: titles repeat words across items, so a
// tokenizer learns them and the text carries the category signal through the shared noun.
constexpr std::string_view kNouns[] = {
    "serum",      "lipstick", "shampoo",     "sunscreen", "moisturizer", "mascara",
    "cleanser",   "perfume",  "conditioner", "toner",     "eyeliner",    "lotion",
    "foundation", "blush",    "concealer",   "primer",    "exfoliator",  "deodorant",
    "balm",       "mist",     "nail polish", "hair gel",  "face mask",   "powder"};
// Categories beyond the nouns reuse them with a qualifier ("night serum").
constexpr std::string_view kQualifiers[] = {"night",   "travel", "kids",      "men's",
                                            "organic", "sport",  "sensitive", "vegan"};
constexpr std::string_view kBrands[] = {"Lumina", "Verde", "Aurelle", "Kaya",    "Norda", "Solene",
                                        "Belmor", "Orlo",  "Mirae",   "Fenwick", "Calla", "Dune",
                                        "Oaken",  "Sora",  "Pellia",  "Rhea"};
constexpr std::string_view kAdjectives[] = {
    "gentle", "hydrating", "matte", "radiant",    "daily",      "intense", "soothing",
    "velvet", "fresh",     "silky", "nourishing", "clarifying", "bright",  "pure",
    "rich",   "light",     "deep",  "smooth",     "bold",       "calming"};
constexpr std::string_view kVariants[] = {"mini",        "30 ml",           "50 ml", "100 ml",
                                          "travel size", "refill",          "duo",   "classic",
                                          "original",    "limited edition", "set",   "value pack"};
constexpr std::string_view kPriceBands[] = {"budget", "mid", "premium"};

constexpr int32_t kMaxCategories =
    static_cast<int32_t>(std::size(kNouns) * (1 + std::size(kQualifiers)));
constexpr double kZipfExponent = 1.0;        // popularity of the k-th item of a category ∝ 1/k
constexpr double kChainSameCategory = 0.75;  // a routine mostly stays within a category
constexpr double kPriceFollowsBrand = 0.8;   // a brand's items mostly share its price band

// Streams of the generator (RngPurpose::kSyntheticRec): the catalog, then one per user, so a
// user's history does not depend on how many users come after it.
constexpr uint64_t kCatalogStep = 0;
constexpr uint64_t kUserStep = 1;

std::string category_noun(int32_t category) {
  const auto n = static_cast<int32_t>(std::size(kNouns));
  const std::string_view noun = kNouns[category % n];
  if (category < n) return std::string(noun);
  return fmt::format("{} {}", kQualifiers[category / n - 1], noun);
}

template <typename T, size_t N>
const T& pick(const T (&list)[N], CounterRng& rng) {
  return list[rng.below(N)];
}

void check_options(const SyntheticRecOptions& o) {
  RECLM_USER_CHECK(o.n_users >= 1, "synthetic dataset: n_users must be >= 1 (got {})", o.n_users);
  RECLM_USER_CHECK(o.n_categories >= 1 && o.n_categories <= kMaxCategories,
                   "synthetic dataset: n_categories must be in [1, {}] (got {})", kMaxCategories,
                   o.n_categories);
  RECLM_USER_CHECK(o.n_items >= 2 && o.n_items >= o.n_categories,
                   "synthetic dataset: n_items must be >= 2 and >= n_categories ({}) (got {})",
                   o.n_categories, o.n_items);
  RECLM_USER_CHECK(o.min_history >= 1 && o.max_history >= o.min_history,
                   "synthetic dataset: need 1 <= min_history <= max_history (got {} and {})",
                   o.min_history, o.max_history);
  RECLM_USER_CHECK(o.max_history <= 100000,
                   "synthetic dataset: max_history must be <= 100000 (got {})", o.max_history);
  RECLM_USER_CHECK(o.habit_probability >= 0 && o.habit_probability <= 1,
                   "synthetic dataset: habit_probability must be in [0, 1] (got {})",
                   o.habit_probability);
}

// The latent structure the histories are drawn from.
struct Catalog {
  std::vector<int32_t> category;                // [n_items]
  std::vector<std::vector<int32_t>> members;    // [n_categories] items, most popular first
  std::vector<std::vector<double>> cumulative;  // [n_categories] Zipf CDF over members
  std::vector<int32_t> next;                    // [n_items] the routine's next item (≠ itself)
  std::vector<int32_t> first_item_order;        // permutation: user u < n_items starts there
  std::vector<float> quality;                   // [n_items] in [-0.5, 0.5), shifts ratings
};

std::vector<int32_t> random_permutation(int32_t n, CounterRng& rng) {
  std::vector<int32_t> perm(n);
  for (int32_t i = 0; i < n; ++i) perm[i] = i;
  for (int32_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
  return perm;
}

// Fills items (keys, titles, attributes) and returns the structure behind them.
Catalog make_catalog(const SyntheticRecOptions& o, CounterRng& rng, ItemTable& items) {
  Catalog c;
  const int32_t n = o.n_items;
  // Categories are balanced and scattered over the ids; the order within a category is its
  // popularity rank (random, so popularity does not follow the ids either).
  c.category.resize(n);
  c.members.resize(o.n_categories);
  const std::vector<int32_t> order = random_permutation(n, rng);
  for (int32_t k = 0; k < n; ++k) {
    const int32_t category = k % o.n_categories;
    c.category[order[k]] = category;
    c.members[category].push_back(order[k]);
  }
  for (const auto& members : c.members) {
    std::vector<double> cdf(members.size());
    double total = 0;
    for (size_t rank = 0; rank < members.size(); ++rank)
      cdf[rank] = total += 1.0 / std::pow(static_cast<double>(rank + 1), kZipfExponent);
    c.cumulative.push_back(std::move(cdf));
  }
  c.next.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    const auto& same = c.members[c.category[i]];
    int32_t next = i;
    while (next == i) {  // terminates: n >= 2, and a single-member category falls through
      next = same.size() > 1 && rng.uniform() < kChainSameCategory
                 ? same[rng.below(same.size())]
                 : static_cast<int32_t>(rng.below(n));
    }
    c.next[i] = next;
  }
  c.first_item_order = random_permutation(n, rng);
  c.quality.resize(n);
  for (float& q : c.quality) q = rng.uniform() - 0.5f;

  // Attributes: every category first (ids = category ids), then brands and price bands in order
  // of first use.
  std::vector<std::string>& names = items.attribute_names;
  for (int32_t k = 0; k < o.n_categories; ++k) names.push_back("category:" + category_noun(k));
  const auto attribute_id = [&names](const std::string& name) {
    const auto it = std::find(names.begin(), names.end(), name);
    if (it != names.end()) return static_cast<int32_t>(it - names.begin());
    names.push_back(name);
    return static_cast<int32_t>(names.size() - 1);
  };

  std::unordered_set<std::string> titles;
  items.keys.reserve(n);
  items.titles.reserve(n);
  items.attr_offsets.assign(1, 0);
  for (int32_t i = 0; i < n; ++i) {
    const auto brand = static_cast<int32_t>(rng.below(std::size(kBrands)));
    // Titles are unique: redraw adjective and variant on a clash, number the rare leftover.
    std::string title;
    for (int attempt = 0; attempt < 16 && (title.empty() || titles.count(title)); ++attempt)
      title = fmt::format("{} {} {} {}", kBrands[brand], pick(kAdjectives, rng),
                          category_noun(c.category[i]), pick(kVariants, rng));
    for (int k = 2; titles.count(title); ++k) title = fmt::format("{} {}", title, k);
    titles.insert(title);

    const size_t band = rng.uniform() < kPriceFollowsBrand ? brand % std::size(kPriceBands)
                                                           : rng.below(std::size(kPriceBands));
    items.attr_ids.push_back(c.category[i]);
    items.attr_ids.push_back(attribute_id(fmt::format("brand:{}", kBrands[brand])));
    items.attr_ids.push_back(attribute_id(fmt::format("price:{}", kPriceBands[band])));
    items.attr_offsets.push_back(static_cast<int64_t>(items.attr_ids.size()));
    items.keys.push_back(fmt::format("item{}", i));
    items.titles.push_back(std::move(title));
  }
  return c;
}

// A user's taste mixture: 1–3 distinct categories with positive weights.
struct Tastes {
  std::array<int32_t, 3> category{};
  std::array<double, 3> weight{};
  int count = 0;
  double total = 0;

  double affinity(int32_t cat) const {  // weight relative to the strongest taste, 0 if none
    double own = 0, best = 0;
    for (int k = 0; k < count; ++k) {
      if (category[k] == cat) own = weight[k];
      best = std::max(best, weight[k]);
    }
    return own / best;
  }
};

Tastes draw_tastes(int32_t primary, int32_t n_categories, CounterRng& rng) {
  Tastes t;
  const int wanted = 1 + static_cast<int>(rng.below(std::min(3, n_categories)));
  t.category[t.count] = primary;
  t.weight[t.count++] = 1.0 + rng.uniform();  // the primary taste is the strongest
  while (t.count < wanted) {
    const auto cat = static_cast<int32_t>(rng.below(n_categories));
    if (std::find(t.category.begin(), t.category.begin() + t.count, cat) !=
        t.category.begin() + t.count)
      continue;
    t.category[t.count] = cat;
    t.weight[t.count++] = 0.2 + 0.8 * rng.uniform();
  }
  for (int k = 0; k < t.count; ++k) t.total += t.weight[k];
  return t;
}

// A category by taste weight, then an item of it by its Zipf popularity.
int32_t draw_from_tastes(const Catalog& c, const Tastes& t, CounterRng& rng) {
  double u = rng.uniform() * t.total;
  int k = 0;
  while (k + 1 < t.count && u >= t.weight[k]) u -= t.weight[k++];
  const int32_t cat = t.category[k];
  const std::vector<double>& cdf = c.cumulative[cat];
  const double x = rng.uniform() * cdf.back();
  const size_t rank =
      std::min<size_t>(std::upper_bound(cdf.begin(), cdf.end(), x) - cdf.begin(), cdf.size() - 1);
  return c.members[cat][rank];
}

// One user's history (appended to users.items/ratings/timestamps).
void make_user(const SyntheticRecOptions& o, const Catalog& c, int64_t user, UserSequences& users) {
  CounterRng rng(o.seed, RngPurpose::kSyntheticRec, kUserStep, 0, static_cast<uint64_t>(user));
  // The first n_items users start at distinct items, so every item is used once there are at
  // least as many users as items; later users start from a random primary taste.
  const bool covers = user < o.n_items;
  const int32_t start = covers ? c.first_item_order[user] : -1;
  const int32_t primary =
      covers ? c.category[start] : static_cast<int32_t>(rng.below(o.n_categories));
  const Tastes tastes = draw_tastes(primary, o.n_categories, rng);
  const auto length =
      o.min_history + static_cast<int32_t>(rng.below(o.max_history - o.min_history + 1));

  // Unix seconds: a start within a year of 2020-09-13, then gaps of an hour to a month.
  int64_t time = 1'600'000'000 + static_cast<int64_t>(rng.below(365 * 86400));
  int32_t prev = -1;
  for (int32_t t = 0; t < length; ++t) {
    int32_t item;
    if (t == 0 && covers) {
      item = start;
    } else if (prev >= 0 && rng.uniform() < o.habit_probability) {
      item = c.next[prev];
    } else {
      item = draw_from_tastes(c, tastes, rng);
      // No immediate repeat of a taste draw (a few tries: a tiny catalog may have no other item).
      for (int attempt = 0; attempt < 8 && item == prev; ++attempt)
        item = draw_from_tastes(c, tastes, rng);
    }
    // Stars: liked categories rate high, others low; the item's quality and noise shift it.
    const double stars =
        1.5 + 3.0 * tastes.affinity(c.category[item]) + c.quality[item] + (rng.uniform() - 0.5);
    users.items.push_back(item);
    users.ratings.push_back(static_cast<float>(std::clamp(std::round(stars), 1.0, 5.0)));
    users.timestamps.push_back(time);
    time += 3600 + static_cast<int64_t>(rng.below(30 * 86400));
    prev = item;
  }
  users.offsets.push_back(static_cast<int64_t>(users.items.size()));
  users.keys.push_back(fmt::format("user{}", user));
}

std::string options_json(const SyntheticRecOptions& o) {
  const nlohmann::ordered_json j = {{"generator", "synthetic_rec"},
                                    {"n_users", o.n_users},
                                    {"n_items", o.n_items},
                                    {"n_categories", o.n_categories},
                                    {"min_history", o.min_history},
                                    {"max_history", o.max_history},
                                    {"habit_probability", o.habit_probability},
                                    {"seed", o.seed}};
  return j.dump();
}

}  // namespace

RecDataset make_synthetic_dataset(const SyntheticRecOptions& options) {
  check_options(options);
  RecDataset dataset;
  CounterRng catalog_rng(options.seed, RngPurpose::kSyntheticRec, kCatalogStep);
  const Catalog catalog = make_catalog(options, catalog_rng, dataset.items);

  UserSequences& users = dataset.users;
  const auto expected = static_cast<size_t>(options.n_users) *
                        static_cast<size_t>(options.min_history + options.max_history) / 2;
  users.items.reserve(expected);
  users.ratings.reserve(expected);
  users.timestamps.reserve(expected);
  users.keys.reserve(options.n_users);
  users.offsets.reserve(options.n_users + 1);
  users.offsets.push_back(0);
  for (int64_t u = 0; u < options.n_users; ++u) make_user(options, catalog, u, users);

  dataset.source = "synthetic";
  dataset.prepare_config = options_json(options);
  return dataset;
}

}  // namespace reclm
