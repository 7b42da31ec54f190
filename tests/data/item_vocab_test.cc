#include "data/item_vocab.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/byte_tokenizer.h"
#include "data/synthetic_rec.h"
#include "runtime/errors.h"
#include "scratch_dir.h"
#include "shared_data.h"
#include "thrown_message.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

// Four items (one without a title) and three attributes, as ingest leaves them.
RecDataset small_catalog() {
  RecDataset d;
  d.source = "small.tsv";
  d.items.keys = {"B001", "B002", "B003", "B004"};
  d.items.titles = {"Lumina gentle serum 30 ml", "Verde matte lipstick mini", "",
                    "Lumina hydrating serum refill"};
  d.items.attribute_names = {"category:serum", "category:lipstick", "brand:Lumina"};
  d.items.attr_offsets = {0, 2, 3, 3, 5};
  d.items.attr_ids = {0, 2, 1, 0, 2};
  d.users.keys = {"u1"};
  d.users.offsets = {0, 3};
  d.users.items = {0, 1, 3};
  return d;
}

// What the header of data/rec_dataset.h promises about VocabLayout.
void expect_layout_invariants(const VocabLayout& v, const BpeTokenizer& t, int32_t n_items,
                              int32_t n_attributes) {
  EXPECT_EQ(v.text_size, v.special_first);
  for (size_t k = 0; k < std::size(kSpecialTokens); ++k)
    EXPECT_EQ(t.token_id(kSpecialTokens[k]), v.special_first + static_cast<int32_t>(k));
  EXPECT_EQ(v.pad(), t.token_id("[PAD]"));
  EXPECT_EQ(v.end(), t.token_id("[END]"));
  EXPECT_EQ(v.items.first, v.special_first + 8);
  EXPECT_EQ(v.items.count, n_items);
  EXPECT_EQ(v.attributes.first, v.items.first + n_items);
  EXPECT_EQ(v.attributes.count, n_attributes);
  EXPECT_EQ(v.vocab_size, v.attributes.first + n_attributes);
  EXPECT_EQ(v.vocab_size, t.vocab_size());
  for (int32_t i = 0; i < n_items; ++i)
    EXPECT_EQ(t.token_id("<item_" + std::to_string(i) + ">"), v.item_token(i));
  for (int32_t j = 0; j < n_attributes; ++j)
    EXPECT_EQ(t.token_id("<attr_" + std::to_string(j) + ">"), v.attribute_token(j));
}

TEST(ItemVocab, LearnedVocabularyLayoutAndTitles) {
  RecDataset d = small_catalog();
  const BpeTokenizer t = build_item_vocabulary(d, VocabOptions{});
  expect_layout_invariants(d.vocab, t, 4, 3);
  EXPECT_GT(d.vocab.text_size, 256) << "merges learned from the titles";
  EXPECT_TRUE(d.vocab.is_item_token(d.vocab.item_token(3)));
  EXPECT_FALSE(d.vocab.is_item_token(d.vocab.attribute_token(0)));

  ASSERT_EQ(d.items.title_offsets.size(), 5u);
  EXPECT_EQ(static_cast<size_t>(d.items.title_offsets.back()), d.items.title_tokens.size());
  for (int32_t i = 0; i < 4; ++i) {
    const auto ids = d.items.title_of(i);
    EXPECT_EQ(t.decode(ids), d.items.titles[i]);
    for (int32_t id : ids) EXPECT_LT(id, d.vocab.text_size);
  }
  EXPECT_TRUE(d.items.title_of(2).empty()) << "an empty title has no tokens";
  // Words that recur in the titles became whole tokens.
  EXPECT_EQ(t.decode(d.items.title_of(0).first(1)), "Lumina");
  EXPECT_EQ(d.items.title_of(0)[0], d.items.title_of(3)[0]);

  EXPECT_EQ(d.tokenizer_json, t.to_hf_json());
  EXPECT_EQ(d.tokenizer_fingerprint, XXH64(d.tokenizer_json.data(), d.tokenizer_json.size(), 0));
  const nlohmann::json doc = nlohmann::json::parse(d.tokenizer_json);
  const auto& added = doc["added_tokens"];
  ASSERT_EQ(added.size(), 8u + 4u + 3u);
  EXPECT_EQ(added[8]["content"], "<item_0>");
  EXPECT_EQ(added[8]["id"], d.vocab.item_token(0));
  EXPECT_EQ(added[14]["content"], "<attr_2>");
  EXPECT_EQ(added[14]["id"], d.vocab.attribute_token(2));
}

TEST(ItemVocab, SmallLearnedVocabularySizeIsHonoured) {
  RecDataset d = small_catalog();
  VocabOptions options;
  options.learned_vocab_size = 260;
  const BpeTokenizer t = build_item_vocabulary(d, options);
  EXPECT_EQ(d.vocab.text_size, 260);
  EXPECT_EQ(t.decode(d.items.title_of(1)), d.items.titles[1]);
  options.learned_vocab_size = 100;  // below the 256 bytes
  RecDataset again = small_catalog();
  EXPECT_THROW(build_item_vocabulary(again, options), UserError);
}

TEST(ItemVocab, Gpt2KeepsItsIdsAndItemsFollowTheSpecials) {
  SKIP_WITHOUT_GPT2();
  RecDataset d = small_catalog();
  d.items.titles[1] = "hello world";
  VocabOptions options;
  options.tokenizer_dir = kGpt2Dir.string();
  const BpeTokenizer t = build_item_vocabulary(d, options);
  EXPECT_EQ(d.vocab.text_size, 50257);
  EXPECT_EQ(d.vocab.special_first, 50257);
  EXPECT_EQ(d.vocab.items.first, 50265);
  EXPECT_EQ(d.vocab.attributes.first, 50269);
  EXPECT_EQ(d.vocab.vocab_size, 50272);
  expect_layout_invariants(d.vocab, t, 4, 3);
  const auto hello = d.items.title_of(1);
  EXPECT_EQ(std::vector<int32_t>(hello.begin(), hello.end()), (std::vector<int32_t>{31373, 995}));

  // The stored tokenizer reads back with GPT-2's ids.
  const BpeTokenizer back = dataset_tokenizer(d);
  EXPECT_EQ(back.encode("hello world"), (std::vector<int32_t>{31373, 995}));
  EXPECT_EQ(back.vocab_size(), 50272);
  EXPECT_EQ(back.attribute_tokens().first, 50269);
}

TEST(ItemVocab, DatasetTokenizerRoundTrips) {
  RecDataset d = make_synthetic_dataset(SyntheticRecOptions{});
  const BpeTokenizer built = build_item_vocabulary(d, VocabOptions{});
  const BpeTokenizer back = dataset_tokenizer(d);
  EXPECT_EQ(back.vocab_size(), built.vocab_size());
  EXPECT_EQ(back.n_merges(), built.n_merges());
  EXPECT_EQ(back.item_tokens().first, d.vocab.items.first);
  EXPECT_EQ(back.item_tokens().count, 500);
  EXPECT_EQ(back.attribute_tokens().first, d.vocab.attributes.first);
  EXPECT_EQ(back.attribute_tokens().count, d.vocab.attributes.count);
  expect_layout_invariants(d.vocab, back, 500,
                           static_cast<int32_t>(d.items.attribute_names.size()));
  for (int32_t i = 0; i < d.items.size(); i += 37) {
    const auto ids = d.items.title_of(i);
    EXPECT_EQ(back.encode(d.items.titles[i]), std::vector<int32_t>(ids.begin(), ids.end()));
    EXPECT_EQ(back.decode(ids), d.items.titles[i]);
  }
  EXPECT_EQ(back.to_hf_json(), d.tokenizer_json);
}

TEST(ItemVocab, ChangedTokenizerOrLayoutIsAUserErrorNamingTheSource) {
  RecDataset d = small_catalog();
  build_item_vocabulary(d, VocabOptions{});

  RecDataset tampered = d;
  tampered.tokenizer_json.insert(tampered.tokenizer_json.size() - 2, " ");
  std::string message = thrown_message<UserError>([&] { dataset_tokenizer(tampered); });
  EXPECT_NE(message.find("small.tsv"), std::string::npos) << message;
  EXPECT_NE(message.find("fingerprint"), std::string::npos) << message;

  RecDataset shifted = d;
  shifted.vocab.items.first += 1;
  message = thrown_message<UserError>([&] { dataset_tokenizer(shifted); });
  EXPECT_NE(message.find("small.tsv"), std::string::npos) << message;

  RecDataset more_items = d;  // the catalog grew after the tokenizer was made
  more_items.items.keys.push_back("B005");
  message = thrown_message<UserError>([&] { dataset_tokenizer(more_items); });
  EXPECT_NE(message.find("small.tsv"), std::string::npos) << message;

  RecDataset not_json = d;
  not_json.tokenizer_json = "{not json";
  not_json.tokenizer_fingerprint =
      XXH64(not_json.tokenizer_json.data(), not_json.tokenizer_json.size(), 0);
  message = thrown_message<UserError>([&] { dataset_tokenizer(not_json); });
  EXPECT_NE(message.find("small.tsv"), std::string::npos) << message;
}

TEST(ItemVocab, AnExportedTokenizerIsReusedForTheSameCatalogOnly) {
  RecDataset d = small_catalog();
  build_item_vocabulary(d, VocabOptions{});
  const fs::path dir = fresh_test_dir("item_vocab_test_exported");
  std::ofstream(dir / "tokenizer.json", std::ios::binary) << d.tokenizer_json;

  RecDataset again = small_catalog();
  VocabOptions options;
  options.tokenizer_dir = dir.string();
  build_item_vocabulary(again, options);
  EXPECT_EQ(again.tokenizer_json, d.tokenizer_json);
  EXPECT_EQ(again.tokenizer_fingerprint, d.tokenizer_fingerprint);
  EXPECT_EQ(again.items.title_tokens, d.items.title_tokens);
  EXPECT_EQ(again.vocab.attributes.first, d.vocab.attributes.first);

  RecDataset bigger = small_catalog();
  bigger.items.keys.push_back("B005");
  bigger.items.titles.push_back("Kaya bold mascara");
  bigger.items.attr_offsets.push_back(5);
  EXPECT_NE(thrown_message<UserError>([&] {
              build_item_vocabulary(bigger, options);
            }).find("item tokens"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(ItemVocab, TokenizerFileThatBreaksTheLayoutIsAUserError) {
  // A tokenizer.json with an extra added token after the specials: items could not follow them.
  RecDataset d = small_catalog();
  build_item_vocabulary(d, VocabOptions{});
  nlohmann::json doc = nlohmann::json::parse(d.tokenizer_json);
  nlohmann::json added = nlohmann::json::array();
  for (int k = 0; k < 8; ++k) added.push_back(doc["added_tokens"][k]);
  added.push_back({{"id", d.vocab.special_first + 8}, {"content", "<extra>"}, {"special", true}});
  doc["added_tokens"] = added;
  const fs::path dir = fresh_test_dir("item_vocab_test_layout");
  std::ofstream(dir / "tokenizer.json", std::ios::binary) << doc.dump();

  RecDataset again = small_catalog();
  VocabOptions options;
  options.tokenizer_dir = dir.string();
  const std::string message =
      thrown_message<UserError>([&] { build_item_vocabulary(again, options); });
  EXPECT_NE(message.find(dir.string()), std::string::npos) << message;
  EXPECT_NE(message.find("<item_0>"), std::string::npos) << message;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace reclm
