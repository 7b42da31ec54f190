#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/byte_tokenizer.h"
#include "data/synthetic_text.h"
#include "data/text_lm_source.h"
#include "runtime/errors.h"

namespace reclm {
namespace {

TEST(ByteTokenizer, RoundTripsUtf8AndNamesSpecials) {
  const std::string text = "héllo, wörld ✓\n";
  const auto ids = ByteTokenizer::encode(text);
  EXPECT_EQ(ids.size(), text.size());
  EXPECT_EQ(ByteTokenizer::decode(ids), text);
  EXPECT_EQ(ByteTokenizer::decode({ByteTokenizer::kBos, 'a', ByteTokenizer::kEos}), "[BOS]a[EOS]");
  EXPECT_THROW(ByteTokenizer::decode({ByteTokenizer::kVocabSize}), InternalError);
}

TEST(SyntheticCorpus, DeterministicSizedAndSeeded) {
  const std::string a = synthetic_corpus(1, 10000);
  EXPECT_EQ(a, synthetic_corpus(1, 10000));
  EXPECT_NE(a, synthetic_corpus(2, 10000));
  EXPECT_GE(a.size(), 10000u);
  EXPECT_LT(a.size(), 10400u);  // whole lines: overshoots by less than one story
  EXPECT_EQ(a.back(), '\n');
  EXPECT_NE(a.find("user "), std::string::npos);
}

TextLmSource small_source(int seq_len, int micro_batch, uint64_t seed = 3, int rank = 0,
                          int world = 1) {
  TextLmOptions o;
  o.seq_len = seq_len;
  o.micro_batch = micro_batch;
  o.val_fraction = 0.1;
  o.seed = seed;
  o.rank = rank;
  o.world = world;
  return make_text_lm_source("", 50000, o);
}

TEST(TextLmSource, TargetsAreNextTokensInPackedCausalSegments) {
  const TextLmSource source = small_source(16, 3);
  const Batch b = source.train_batch(5, 1);
  ASSERT_EQ(b.n_tokens(), 48);
  EXPECT_EQ(b.cu_seqlens, (std::vector<int32_t>{0, 16, 32, 48}));
  EXPECT_TRUE(b.prefix_lens.empty());
  EXPECT_TRUE(b.pos_intra.empty());
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i + 1 < 16; ++i) EXPECT_EQ(b.targets[s * 16 + i], b.tokens[s * 16 + i + 1]);
    EXPECT_EQ(b.pos_inter[s * 16 + 7], 7);
  }
  for (float w : b.loss_weights) EXPECT_EQ(w, 1.0f);
}

TEST(TextLmSource, BatchesArePureFunctionsOfStepAndMicro) {
  const TextLmSource source = small_source(16, 4);
  EXPECT_EQ(source.train_batch(7, 0).tokens, source.train_batch(7, 0).tokens);
  EXPECT_NE(source.train_batch(7, 0).tokens, source.train_batch(8, 0).tokens);
  EXPECT_NE(source.train_batch(7, 0).tokens, source.train_batch(7, 1).tokens);
  EXPECT_NE(small_source(16, 4, 9).train_batch(7, 0).tokens, source.train_batch(7, 0).tokens);
  EXPECT_EQ(source.val_batch(2).tokens, source.val_batch(2).tokens);
}

// Data parallel: the ranks of one (step, micro) together hold, in rank order, exactly the batch
// one rank with world × the micro-batch gets — so N ranks train on what one rank would.
TEST(TextLmSource, RanksTogetherHoldTheSingleRankBatch) {
  for (int world : {2, 3}) {
    const TextLmSource whole = small_source(16, 3 * world);
    for (int micro : {0, 2}) {
      std::vector<int32_t> joined;
      for (int rank = 0; rank < world; ++rank) {
        const Batch part = small_source(16, 3, 3, rank, world).train_batch(11, micro);
        joined.insert(joined.end(), part.tokens.begin(), part.tokens.end());
      }
      EXPECT_EQ(joined, whole.train_batch(11, micro).tokens) << "world " << world;
    }
    for (int index : {0, 1}) {  // held-out batches split the same way
      std::vector<int32_t> joined;
      for (int rank = 0; rank < world; ++rank) {
        const Batch part = small_source(16, 3, 3, rank, world).val_batch(index);
        joined.insert(joined.end(), part.tokens.begin(), part.tokens.end());
      }
      EXPECT_EQ(joined, whole.val_batch(index).tokens) << "world " << world << " val " << index;
    }
  }
  EXPECT_NE(small_source(16, 3, 3, 0, 2).train_batch(1, 0).tokens,
            small_source(16, 3, 3, 1, 2).train_batch(1, 0).tokens);
}

TEST(TextLmSource, ValidationWindowsComeFromTheHeldOutTail) {
  // A corpus whose train part is all 'a' and held-out tail all 'b' shows where windows come from.
  const std::string text = std::string(900, 'a') + std::string(100, 'b');
  const auto path = std::filesystem::temp_directory_path() / "reclm_text_lm_split.txt";
  std::ofstream(path) << text;
  TextLmOptions o;
  o.seq_len = 8;
  o.micro_batch = 4;
  o.val_fraction = 0.1;
  const TextLmSource source = make_text_lm_source(path.string(), 0, o);
  for (int32_t t : source.val_batch(0).tokens) EXPECT_EQ(t, 'b');
  for (int step = 0; step < 20; ++step)
    for (int32_t t : source.train_batch(step, 0).tokens) EXPECT_EQ(t, 'a');
  std::filesystem::remove(path);
}

TEST(TextLmSource, BadInputIsAUserErrorNamingTheFile) {
  TextLmOptions o;
  o.seq_len = 64;
  o.micro_batch = 2;
  o.val_fraction = 0.05;
  try {
    make_text_lm_source("/nonexistent/corpus.txt", 0, o);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/corpus.txt"), std::string::npos);
  }
  const auto path = std::filesystem::temp_directory_path() / "reclm_text_lm_small.txt";
  std::ofstream(path) << "too short";
  try {
    make_text_lm_source(path.string(), 0, o);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("too small"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace reclm
