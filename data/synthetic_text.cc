#include "data/synthetic_text.h"

#include <fmt/format.h>

#include <array>
#include <string_view>

#include "runtime/rng.h"

namespace reclm {

namespace {

struct Category {
  std::string_view name;
  std::array<std::string_view, 5> products;
};

constexpr std::array<Category, 8> kCategories = {{
    {"lips", {"lipstick", "lip balm", "lip gloss", "lip liner", "lip scrub"}},
    {"eyes", {"mascara", "eyeliner", "eye shadow", "brow gel", "lash primer"}},
    {"face", {"foundation", "concealer", "blush", "bronzer", "face powder"}},
    {"skin", {"cleanser", "toner", "serum", "moisturizer", "night cream"}},
    {"hair", {"shampoo", "conditioner", "hair oil", "hair mask", "dry shampoo"}},
    {"nails", {"nail polish", "top coat", "base coat", "cuticle oil", "nail file"}},
    {"body", {"body lotion", "body wash", "hand cream", "foot cream", "body scrub"}},
    {"scent", {"perfume", "body mist", "cologne", "scented oil", "roll-on"}},
}};

constexpr std::array<std::string_view, 12> kAdjectives = {
    "matte", "velvet", "hydrating", "coral", "rose", "vanilla",
    "gentle", "radiant", "classic", "midnight", "citrus", "silk"};

constexpr std::array<std::string_view, 4> kVerbs = {"bought", "viewed", "reviewed", "wished for"};

struct Product {
  int category;
  int index;
  int adjective;
};

std::string product_name(const Product& p) {
  return fmt::format("{} {}", kAdjectives[p.adjective], kCategories[p.category].products[p.index]);
}

// The learnable habit: after product (c, i, a) a user usually picks its complement, the next
// product of the same category with the same adjective.
Product complement(const Product& p) {
  return {p.category, (p.index + 1) % 5, p.adjective};
}

std::string one_story(CounterRng& rng) {
  const int user = static_cast<int>(rng.below(5000));
  const int favourite = user % static_cast<int>(kCategories.size());  // taste is a user trait
  Product item{favourite, static_cast<int>(rng.below(5)), static_cast<int>(rng.below(kAdjectives.size()))};
  std::string line = fmt::format("user {} likes {}.", user, kCategories[favourite].name);
  const int length = 2 + static_cast<int>(rng.below(4));
  for (int k = 0; k < length; ++k) {
    line += fmt::format(" {} {} {}.", k == 0 ? "first" : "then", kVerbs[rng.below(kVerbs.size())],
                        product_name(item));
    if (rng.uniform() < 0.8f) {
      item = complement(item);
    } else {  // an occasional jump to a random product of the favourite category
      item = {favourite, static_cast<int>(rng.below(5)), static_cast<int>(rng.below(kAdjectives.size()))};
    }
  }
  line += '\n';
  return line;
}

}  // namespace

std::string synthetic_corpus(uint64_t seed, int64_t n_bytes) {
  std::string corpus;
  corpus.reserve(static_cast<size_t>(n_bytes) + 256);
  for (uint64_t story = 0; story == 0 || static_cast<int64_t>(corpus.size()) < n_bytes; ++story) {
    CounterRng rng(seed, RngPurpose::kDataCorpus, 0, 0, story);
    corpus += one_story(rng);
  }
  return corpus;
}

}  // namespace reclm
