#include "data/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "data/byte_tokenizer.h"
#include "runtime/errors.h"
#include "scratch_dir.h"
#include "shared_data.h"
#include "thrown_message.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Loaded once: 50k merges take ~0.1 s to index.
const BpeTokenizer& gpt2() {
  static const BpeTokenizer tokenizer =
      BpeTokenizer::load_gpt2(kGpt2Dir / "encoder.json", kGpt2Dir / "vocab.bpe");
  return tokenizer;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}


// Diverse text from a seeded generator: words of random syllables, capitals, digits,
// punctuation, contractions, some non-ASCII letters, several whitespace kinds.
std::vector<std::string> word_corpus(uint32_t seed, size_t n_bytes) {
  static const char* kSyllables[] = {"ka", "lo", "mi", "ne", "sh", "tra", "qu", "in", "er", "on",
                                     "ti", "st", "é",  "ü",  "ñ",  "ro",  "ma", "be", "ch", "al"};
  static const char* kSeparators[] = {" ", " ", " ", " ", ", ", ". ", "  ", "'s ", "'ll ", " — "};
  std::mt19937 rng(seed);
  std::vector<std::string> lines;
  std::string line;
  size_t total = 0;
  while (total < n_bytes) {
    std::string word;
    const int n_syllables = 1 + static_cast<int>(rng() % 4);
    for (int s = 0; s < n_syllables; ++s) word += kSyllables[rng() % std::size(kSyllables)];
    if (rng() % 7 == 0) word[0] = static_cast<char>(std::toupper(word[0]));
    if (rng() % 13 == 0) word = std::to_string(rng() % 2000);
    line += word;
    line += kSeparators[rng() % std::size(kSeparators)];
    if (line.size() > 60) {
      total += line.size() + 1;
      lines.push_back(std::move(line) + "\n");
      line.clear();
    }
  }
  return lines;
}

std::string join(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l;
  return text;
}

// Random byte strings built from pieces that stress the regex and the byte mapping, including
// invalid UTF-8 (stray continuation bytes, truncated sequences, 0xFF, overlongs).
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {"a",
                                                   "Zebra",
                                                   " ",
                                                   "   ",
                                                   "\t",
                                                   "\n",
                                                   "\r\n",
                                                   "\v\f",
                                                   "0",
                                                   "42",
                                                   "'s",
                                                   "'LL",
                                                   "'",
                                                   "!?",
                                                   "...",
                                                   "é",
                                                   "ß",
                                                   "日本語",
                                                   "🙂",
                                                   "👋🏽",
                                                   "\u0085",
                                                   "\u00a0",
                                                   "\u2028",
                                                   "\u3000",
                                                   "x\u0301",
                                                   "١٢٣",
                                                   "\x80",
                                                   "\xff",
                                                   "\xe2\x82",
                                                   "\xc0\xaf",
                                                   "\xf0\x9f",
                                                   "\xed\xa0\x80",
                                                   std::string("\0", 1),
                                                   "\x01\x1f\x7f",
                                                   "<item_3>",
                                                   "[BOS]",
                                                   "<|endoftext|>"};
  std::string text;
  const int n = static_cast<int>(rng() % 24);
  for (int i = 0; i < n; ++i) text += kPieces[rng() % kPieces.size()];
  return text;
}

// ---- GPT-2 compatibility ----------------------------------------------------------------------

TEST(Gpt2Bpe, MatchesReferenceEncodings) {
  SKIP_WITHOUT_GPT2();
  const json cases = json::parse(read_file(kGpt2Dir / "reference_encodings.json"));
  ASSERT_GE(cases.size(), 15u);
  for (const json& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<int32_t> expected = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> ids = gpt2().encode(text);
    EXPECT_EQ(ids, expected) << "text: " << text;
    if (c.value("roundtrip_ok", false)) {
      EXPECT_EQ(gpt2().decode(ids), text);
    }
  }
}

TEST(Gpt2Bpe, PreTokenisesLikePythonRegex) {
  // Expected pieces from GPT-2's pattern under Python's `regex` module.
  using V = std::vector<std::string_view>;
  EXPECT_EQ(gpt2_pretokenize("don't  go\n"), (V{"don", "'t", " ", " go", "\n"}));
  EXPECT_EQ(gpt2_pretokenize("3.14 ¡olé! 你好 🙂🙂"),
            (V{"3", ".", "14", " ¡", "olé", "!", " 你好", " 🙂🙂"}));
  // U+0085 and U+00A0 are White_Space for Python's \s (PCRE2's own \s omits U+0085).
  EXPECT_EQ(gpt2_pretokenize("x\u0085\u0085y"), (V{"x", "\u0085", "\u0085", "y"}));
  EXPECT_EQ(gpt2_pretokenize("a\u00a0\u00a0b"), (V{"a", "\u00a0", "\u00a0", "b"}));
  // Invalid UTF-8 never matches; each run between matches is a piece of its own.
  EXPECT_EQ(gpt2_pretokenize("ab\xff\xfe"
                             "cd \x80"),
            (V{"ab", "\xff\xfe", "cd", " ", "\x80"}));
  EXPECT_TRUE(gpt2_pretokenize("").empty());
}

TEST(Gpt2Bpe, ByteSymbolsFollowGpt2) {
  EXPECT_EQ(byte_symbol(' '), "Ġ");
  EXPECT_EQ(byte_symbol('\n'), "Ċ");
  EXPECT_EQ(byte_symbol('a'), "a");
  EXPECT_EQ(byte_symbol(0xAD), "Ń");
  EXPECT_EQ(byte_symbol(0), "Ā");
  SKIP_WITHOUT_GPT2();
  EXPECT_EQ(gpt2().token_id("Ġthe"), 262);
  EXPECT_EQ(gpt2().token_id("!"), 0);
  EXPECT_EQ(gpt2().n_merges(), 50000);
}

TEST(Gpt2Bpe, RandomBytesRoundTripAndStayInVocabulary) {
  SKIP_WITHOUT_GPT2();
  const BpeTokenizer& t = gpt2();
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    const std::string text = random_text(rng);
    const std::vector<int32_t> ids = t.encode(text);
    for (int32_t id : ids) ASSERT_LT(id, 50257) << "encode produced a special or item token";
    ASSERT_EQ(t.decode(ids), text);
  }
  // Long runs go through the heap merge without blowing up (and skip the word cache).
  const std::string spaces(100000, ' ');
  EXPECT_EQ(t.decode(t.encode(spaces + "x")), spaces + "x");
  const std::string letters(100000, 'a');
  EXPECT_EQ(t.decode(t.encode(letters)), letters);
}

TEST(Gpt2Bpe, EncodesAMegabyte) {
  SKIP_WITHOUT_GPT2();
  const std::string text = join(word_corpus(3, 1 << 20));
  const BpeTokenizer fresh = gpt2();  // a copy: starts with an empty word cache
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = fresh.encode(text);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto warm_start = std::chrono::steady_clock::now();
  EXPECT_EQ(fresh.encode(text), ids);
  const double warm =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - warm_start).count();
  EXPECT_EQ(fresh.decode(ids), text);
  EXPECT_EQ(ids, gpt2().encode(text));
  std::cout << "[ info ] GPT-2 BPE encode of " << text.size() / 1e6 << " MB (" << ids.size()
            << " tokens): " << text.size() / 1e6 / seconds << " MB/s with a cold word cache, "
            << text.size() / 1e6 / warm << " MB/s warm\n";
}

// ---- specials and items -----------------------------------------------------------------------

TEST(Gpt2Bpe, SpecialsFollowTheBaseVocabularyAndItemsFollowThem) {
  SKIP_WITHOUT_GPT2();
  BpeTokenizer t = gpt2();
  ASSERT_EQ(t.vocab_size(), 50257 + 8);
  for (size_t i = 0; i < std::size(kSpecialTokens); ++i)
    EXPECT_EQ(t.token_id(kSpecialTokens[i]), 50257 + static_cast<int32_t>(i));
  EXPECT_FALSE(t.find_token("<item_0>").has_value());
  const TokenRange items = t.add_item_tokens(3);
  EXPECT_EQ(items.first, 50265);
  EXPECT_EQ(items.count, 3);
  EXPECT_EQ(t.vocab_size(), 50268);
  EXPECT_EQ(t.token_id("<item_2>"), 50267);
  EXPECT_EQ(t.add_item_tokens(3).first, 50265);  // idempotent for the same catalog
  EXPECT_NE(thrown_message<UserError>([&] { t.add_item_tokens(5); }).find("3 item tokens"), std::string::npos);

  // Names in text are plain text; by id they decode by name.
  const std::vector<int32_t> hello = t.encode("hello");
  EXPECT_EQ(t.encode("[BOS]<item_1>"), gpt2().encode("[BOS]<item_1>"));
  for (int32_t id : t.encode("[BOS]<item_1>")) EXPECT_LT(id, 50257);
  std::vector<int32_t> ids = {t.token_id("[BOS]")};
  ids.insert(ids.end(), hello.begin(), hello.end());
  ids.push_back(items.first + 1);
  ids.push_back(t.token_id("[EOS]"));
  EXPECT_EQ(t.decode(ids), "[BOS]hello<item_1>[EOS]");
  EXPECT_EQ(t.decode(std::vector<int32_t>{50256}), "<|endoftext|>");
  EXPECT_THROW(t.decode(std::vector<int32_t>{t.vocab_size()}), InternalError);
  EXPECT_THROW(t.token_id("<item_99>"), InternalError);
}

// ---- tokenizer.json ---------------------------------------------------------------------------

TEST(HfTokenizerJson, SavedGpt2LoadsBackIdentically) {
  SKIP_WITHOUT_GPT2();
  const fs::path dir = fresh_test_dir("bpe_test_hf_gpt2");
  BpeTokenizer with_items = gpt2();
  with_items.add_item_tokens(4);
  with_items.save_hf(dir / "tokenizer.json");
  const BpeTokenizer loaded = BpeTokenizer::load_dir(dir);
  EXPECT_EQ(loaded.vocab_size(), with_items.vocab_size());
  EXPECT_EQ(loaded.n_merges(), 50000);
  EXPECT_EQ(loaded.item_tokens().first, with_items.item_tokens().first);
  EXPECT_EQ(loaded.item_tokens().count, 4);
  EXPECT_EQ(loaded.token_id("[gMASK]"), with_items.token_id("[gMASK]"));
  const json cases = json::parse(read_file(kGpt2Dir / "reference_encodings.json"));
  for (const json& c : cases)
    EXPECT_EQ(loaded.encode(c["text"].get<std::string>()), c["ids"].get<std::vector<int32_t>>());
  // The file is what serving stacks read: byte-level BPE with the extra tokens as added_tokens.
  const json doc = json::parse(read_file(dir / "tokenizer.json"));
  EXPECT_EQ(doc["model"]["type"], "BPE");
  EXPECT_EQ(doc["model"]["vocab"]["Ġthe"], 262);
  EXPECT_EQ(doc["model"]["merges"][0], "Ġ t");
  EXPECT_EQ(doc["added_tokens"].size(), 8u + 4u);
  EXPECT_EQ(doc["added_tokens"][8]["content"], "<item_0>");
  // Saving what was loaded reproduces the file byte for byte.
  loaded.save_hf(dir / "again.json");
  EXPECT_EQ(read_file(dir / "again.json"), read_file(dir / "tokenizer.json"));
  fs::remove_all(dir);
}

// A hand-written byte-level tokenizer.json: 256 byte tokens, a few merges in both spellings.
json tiny_tokenizer_json() {
  json vocab = json::object();
  std::vector<std::string> bytes;
  for (int b = 0; b < 256; ++b) bytes.push_back(byte_symbol(static_cast<uint8_t>(b)));
  std::sort(bytes.begin(), bytes.end());
  for (size_t i = 0; i < bytes.size(); ++i) vocab[bytes[i]] = i;
  int32_t next = 256;
  for (const char* t : {"he", "ll", "hell", "hello", "Ġw"}) vocab[t] = next++;
  json merges = json::array({json::array({"h", "e"}), "l l", json::array({"he", "ll"}), "hell o",
                             json::array({"Ġ", "w"})});
  json added = json::array({{{"id", 261}, {"content", "<|endoftext|>"}, {"special", true}}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

TEST(HfTokenizerJson, ReadsBothMergeSpellingsAndAddedTokens) {
  const fs::path dir = fresh_test_dir("bpe_test_hf_tiny");
  write_file(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  const BpeTokenizer t = BpeTokenizer::load_hf(dir / "tokenizer.json");
  EXPECT_EQ(t.n_merges(), 5);
  EXPECT_EQ(t.vocab_size(), 262 + 8);
  EXPECT_EQ(t.token_id("[PAD]"), 262);
  // "hellohe": he·l·l·o·he → he·ll·o·he → hell·o·he → hello·he; " w" → Ġw.
  EXPECT_EQ(t.encode("hellohe world"),
            (std::vector<int32_t>{259, 256, 260, t.token_id("o"), t.token_id("r"), t.token_id("l"),
                                  t.token_id("d")}));
  EXPECT_EQ(t.decode(t.encode("hellohe world")), "hellohe world");
  EXPECT_EQ(t.decode(std::vector<int32_t>{261, 259}), "<|endoftext|>hello");
  EXPECT_EQ(t.encode("<|endoftext|>").size(), 13u);  // added tokens are not parsed from text
  fs::remove_all(dir);
}

TEST(HfTokenizerJson, RefusesWhatItCannotReproduce) {
  const fs::path dir = fresh_test_dir("bpe_test_hf_bad");
  const fs::path path = dir / "tokenizer.json";
  const auto error_with = [&](const std::function<void(json&)>& edit) {
    json doc = tiny_tokenizer_json();
    edit(doc);
    write_file(path, doc.dump());
    return thrown_message<UserError>([&] { BpeTokenizer::load_hf(path); });
  };
  const auto contains = [](const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
  };
  EXPECT_TRUE(contains(error_with([](json& d) { d["model"]["type"] = "WordPiece"; }), "WordPiece"));
  EXPECT_TRUE(contains(error_with([](json& d) { d["pre_tokenizer"]["type"] = "Metaspace"; }),
                       "pre_tokenizer"));
  EXPECT_TRUE(contains(error_with([](json& d) { d["normalizer"] = {{"type", "NFC"}}; }), "NFC"));
  EXPECT_TRUE(
      contains(error_with([](json& d) { d["model"]["merges"][1] = "l l l"; }), "model.merges[1]"));
  EXPECT_TRUE(contains(error_with([](json& d) { d["model"]["merges"][2] = "he xx"; }),
                       "'xx' is not in the vocabulary"));
  EXPECT_TRUE(contains(error_with([](json& d) {
                         d["model"]["vocab"]["zz"] = d["model"]["vocab"]["Ġ"];
                         d["model"]["vocab"].erase("Ġ");
                       }),
                       "not a byte-level BPE vocabulary"));
  EXPECT_TRUE(
      contains(error_with([](json& d) { d["model"]["vocab"]["hello"] = 300; }), "no token has id"));
  EXPECT_TRUE(
      contains(error_with([](json& d) { d["model"]["vocab"]["hello"] = 0; }), "used by both"));
  EXPECT_TRUE(contains(error_with([](json& d) { d.erase("model"); }), path.string()));
  EXPECT_TRUE(contains(error_with([](json& d) { d["added_tokens"][0]["special"] = "yes"; }),
                       path.string()));
  write_file(path, "{\"model\": ");
  EXPECT_TRUE(contains(thrown_message<UserError>([&] { BpeTokenizer::load_hf(path); }), "not valid JSON"));
  fs::remove_all(dir);
}

// ---- GPT-2 files: errors ----------------------------------------------------------------------

TEST(Gpt2Files, BadFilesAreUserErrorsNamingFileAndLine) {
  const fs::path dir = fresh_test_dir("bpe_test_gpt2_bad");
  json encoder = tiny_tokenizer_json()["model"]["vocab"];
  write_file(dir / "encoder.json", encoder.dump());
  write_file(dir / "vocab.bpe", "#version: 0.2\nh e\nl l\nhe ll\nhell o\nĠ w\n");
  const BpeTokenizer ok = BpeTokenizer::load_dir(dir);
  EXPECT_EQ(ok.encode("hello"), (std::vector<int32_t>{259}));

  std::string message =
      thrown_message<UserError>([&] { BpeTokenizer::load_gpt2(dir / "missing.json", dir / "vocab.bpe"); });
  EXPECT_NE(message.find("missing.json"), std::string::npos) << message;
  write_file(dir / "vocab.bpe", "#version: 0.2\nh e\nl l l\n");
  message = thrown_message<UserError>([&] { BpeTokenizer::load_dir(dir); });
  EXPECT_NE(message.find((dir / "vocab.bpe").string() + ":3"), std::string::npos) << message;
  write_file(dir / "vocab.bpe", "#version: 0.2\nh e\n\nhe zz\n");
  message = thrown_message<UserError>([&] { BpeTokenizer::load_dir(dir); });
  EXPECT_NE(message.find("vocab.bpe:4"), std::string::npos) << message;
  EXPECT_NE(message.find("'zz'"), std::string::npos) << message;
  write_file(dir / "encoder.json", "[1, 2]");
  message = thrown_message<UserError>([&] { BpeTokenizer::load_dir(dir); });
  EXPECT_NE(message.find("encoder.json"), std::string::npos) << message;
  write_file(dir / "encoder.json", "{\"a\": \"x\"}");
  message = thrown_message<UserError>([&] { BpeTokenizer::load_dir(dir); });
  EXPECT_NE(message.find("encoder.json"), std::string::npos) << message;
  fs::remove_all(dir);
  EXPECT_NE(thrown_message<UserError>([&] { BpeTokenizer::load_dir(dir); }).find(dir.string()), std::string::npos);
}

// ---- training ---------------------------------------------------------------------------------

TEST(TrainBpe, MostFrequentPairFirstTiesToSmallestPair) {
  // "abc abc bc": (b,c) occurs 3 times, more than any other pair.
  const std::vector<std::string> frequent = {"abc abc bc"};
  const BpeTokenizer a = train_bpe(frequent, 257);
  EXPECT_EQ(a.token_text(256), "bc");
  // All pairs occur once: (x,y) < (y,x) < (Ġ,y) by token strings ('Ġ' is U+0120).
  const std::vector<std::string> ties = {"xy yx"};
  const BpeTokenizer b = train_bpe(ties, 259, /*min_pair_count=*/1);
  EXPECT_EQ(b.token_text(256), "xy");
  EXPECT_EQ(b.token_text(257), "yx");
  EXPECT_EQ(b.token_text(258), "Ġyx");
  EXPECT_EQ(b.token_id("[PAD]"), 259);
  // With the default minimum count of 2 nothing occurs often enough.
  EXPECT_EQ(train_bpe(ties, 300).n_merges(), 0);
}

TEST(TrainBpe, DeterministicCompressesAndSurvivesSaveLoad) {
  const std::vector<std::string> lines = word_corpus(11, 200000);
  const std::string text = join(lines);
  const BpeTokenizer t = train_bpe(lines, 256 + 500);
  EXPECT_EQ(t.n_merges(), 500);
  EXPECT_EQ(t.vocab_size(), 256 + 500 + 8);
  const std::vector<int32_t> ids = t.encode(text);
  EXPECT_LT(ids.size() * 2, text.size()) << "500 merges should halve the token count";
  EXPECT_EQ(t.decode(ids), text);

  const fs::path dir = fresh_test_dir("bpe_test_train");
  t.save_hf(dir / "tokenizer.json");
  train_bpe(lines, 256 + 500).save_hf(dir / "again.json");
  EXPECT_EQ(read_file(dir / "again.json"), read_file(dir / "tokenizer.json"));  // deterministic
  const BpeTokenizer loaded = BpeTokenizer::load_hf(dir / "tokenizer.json");
  EXPECT_EQ(loaded.vocab_size(), t.vocab_size());
  EXPECT_EQ(loaded.encode(text), ids);
  const std::string unseen = join(word_corpus(12, 20000));
  EXPECT_EQ(loaded.encode(unseen), t.encode(unseen));
  std::mt19937 rng(5);
  for (int trial = 0; trial < 500; ++trial) {
    const std::string random = random_text(rng);
    ASSERT_EQ(loaded.decode(loaded.encode(random)), random);
  }
  fs::remove_all(dir);
}

TEST(TrainBpe, ConcurrentEncodesShareTheWordCacheSafely) {
  const std::vector<std::string> lines = word_corpus(31, 60000);
  const BpeTokenizer t = train_bpe(lines, 256 + 200);
  std::vector<std::vector<int32_t>> expected;
  const BpeTokenizer single = t;  // own cache
  for (const auto& line : lines) expected.push_back(single.encode(line));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (size_t i = 0; i < lines.size(); ++i) {
        const size_t j = k % 2 ? lines.size() - 1 - i : i;  // two orders: hits and misses race
        mismatches[k] += t.encode(lines[j]) != expected[j];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, (std::vector<int>{0, 0, 0, 0}));
}

TEST(TrainBpe, LearnsTwoThousandMergesOnAMegabyte) {
  const std::vector<std::string> lines = word_corpus(21, 1 << 20);
  const auto start = std::chrono::steady_clock::now();
  const BpeTokenizer t = train_bpe(lines, 256 + 2000);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(t.n_merges(), 2000);
  std::cout << "[ info ] train_bpe: 2000 merges on 1 MB in " << seconds << " s\n";
}

// ---- attribute tokens ------------------------------------------------------------------------

TEST(AttributeTokens, FollowTheItemsAndSurviveTokenizerJson) {
  const std::vector<std::string> lines = word_corpus(41, 20000);
  BpeTokenizer t = train_bpe(lines, 256 + 50);
  EXPECT_EQ(t.attribute_tokens().count, 0);
  const TokenRange items = t.add_item_tokens(3);
  const TokenRange attrs = t.add_attribute_tokens(2);
  EXPECT_EQ(items.first, 256 + 50 + 8);
  EXPECT_EQ(attrs.first, items.first + 3);
  EXPECT_EQ(attrs.count, 2);
  EXPECT_EQ(t.vocab_size(), attrs.first + 2);
  EXPECT_EQ(t.token_id("<attr_1>"), attrs.first + 1);
  EXPECT_EQ(t.add_attribute_tokens(2).first, attrs.first);  // idempotent for the same catalog
  EXPECT_NE(thrown_message<UserError>([&] { t.add_attribute_tokens(4); }).find("2 attribute tokens"),
            std::string::npos);
  // Never produced by encode; decoded by name.
  for (int32_t id : t.encode("<attr_0>")) EXPECT_LT(id, 256 + 50);
  EXPECT_EQ(t.decode(std::vector<int32_t>{items.first + 2, attrs.first}), "<item_2><attr_0>");

  // to_hf_json is what save_hf writes; loading it back (file or text) finds both ranges.
  const fs::path dir = fresh_test_dir("bpe_test_attrs");
  t.save_hf(dir / "tokenizer.json");
  EXPECT_EQ(read_file(dir / "tokenizer.json"), t.to_hf_json());
  for (const BpeTokenizer& loaded :
       {BpeTokenizer::load_dir(dir), BpeTokenizer::from_hf_json_text(t.to_hf_json())}) {
    EXPECT_EQ(loaded.vocab_size(), t.vocab_size());
    EXPECT_EQ(loaded.item_tokens().first, items.first);
    EXPECT_EQ(loaded.item_tokens().count, 3);
    EXPECT_EQ(loaded.attribute_tokens().first, attrs.first);
    EXPECT_EQ(loaded.attribute_tokens().count, 2);
    EXPECT_EQ(loaded.encode(join(lines)), t.encode(join(lines)));
    EXPECT_EQ(loaded.to_hf_json(), t.to_hf_json());
  }
  BpeTokenizer copy = t;
  EXPECT_EQ(copy.attribute_tokens().first, attrs.first);
  EXPECT_NE(thrown_message<UserError>([] { BpeTokenizer::from_hf_json_text("{oops", "memo"); })
                .find("memo"),
            std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace reclm
