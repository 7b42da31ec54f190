// Language-model batches over one token stream: each sequence is a window of seq_len + 1
// tokens (inputs and next-token targets), one causal segment; micro_batch windows are packed
// into one batch. Training windows start at random offsets in the head of the corpus, keyed by
// (seed, step, sample); validation windows tile the held-out tail in order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/batch.h"

namespace reclm {

struct TextLmOptions {
  int64_t seq_len = 256;
  int micro_batch = 8;
  double val_fraction = 0.05;
  uint64_t seed = 0;
  // Data parallel: micro-batch `micro` on rank `rank` of `world` holds global samples
  // (micro·world + rank)·micro_batch … + micro_batch − 1 of its step, so the ranks of one
  // (step, micro) together hold what one rank with micro_batch·world gets.
  int rank = 0;
  int world = 1;
};

class TextLmSource final : public BatchSource {
 public:
  // `source_name` names the corpus in errors (a path, or "built-in synthetic corpus").
  TextLmSource(std::vector<int32_t> tokens, int64_t vocab_size, TextLmOptions options,
               std::string source_name);

  Batch train_batch(int64_t step, int micro) const override;
  Batch val_batch(int index) const override;
  int64_t max_batch_tokens() const override;
  int64_t min_vocab_size() const override { return vocab_size_; }
  std::string describe() const override;

 private:
  Batch pack_windows(const std::vector<int64_t>& starts) const;

  std::vector<int32_t> tokens_;
  int64_t vocab_size_;
  TextLmOptions options_;
  std::string source_name_;
  int64_t train_end_;  // tokens [0, train_end_) train, [train_end_, size) validate
};

// Reads a UTF-8 text file through the byte tokenizer (or the synthetic corpus when path is
// empty) and wraps it as a TextLmSource. A missing, unreadable or too small file is a UserError
// naming it.
TextLmSource make_text_lm_source(const std::string& text_path, int64_t synthetic_bytes,
                                 const TextLmOptions& options);

}  // namespace reclm
