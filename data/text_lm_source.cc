#include "data/text_lm_source.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "data/byte_tokenizer.h"
#include "data/synthetic_text.h"
#include "runtime/errors.h"
#include "runtime/rng.h"

namespace reclm {

TextLmSource::TextLmSource(std::vector<int32_t> tokens, int64_t vocab_size, TextLmOptions options,
                           std::string source_name)
    : tokens_(std::move(tokens)),
      vocab_size_(vocab_size),
      options_(options),
      source_name_(std::move(source_name)) {
  const auto n = static_cast<int64_t>(tokens_.size());
  const int64_t window = options_.seq_len + 1;
  train_end_ = n - static_cast<int64_t>(static_cast<double>(n) * options_.val_fraction);
  RECLM_USER_CHECK(train_end_ >= window && n - train_end_ >= window,
                   "{}: corpus of {} tokens is too small for data.seq_len {} with "
                   "data.val_fraction {}: both the training part ({} tokens) and the held-out "
                   "part ({} tokens) need at least seq_len + 1 = {} tokens",
                   source_name_, n, options_.seq_len, options_.val_fraction, train_end_,
                   n - train_end_, window);
}

Batch TextLmSource::pack_windows(const std::vector<int64_t>& starts) const {
  const int64_t L = options_.seq_len;
  Batch batch;
  const size_t n = starts.size() * static_cast<size_t>(L);
  batch.tokens.resize(n);
  batch.targets.resize(n);
  batch.loss_weights.assign(n, 1.0f);
  batch.pos_inter.resize(n);
  batch.cu_seqlens.push_back(0);
  for (size_t s = 0; s < starts.size(); ++s) {
    const int32_t* window = tokens_.data() + starts[s];
    for (int64_t i = 0; i < L; ++i) {
      const size_t t = s * L + i;
      batch.tokens[t] = window[i];
      batch.targets[t] = window[i + 1];
      batch.pos_inter[t] = static_cast<int32_t>(i);
    }
    batch.cu_seqlens.push_back(static_cast<int32_t>((s + 1) * L));
  }
  return batch;
}

Batch TextLmSource::train_batch(int64_t step, int micro) const {
  const int64_t max_start = train_end_ - (options_.seq_len + 1);  // inclusive
  std::vector<int64_t> starts(options_.micro_batch);
  for (int i = 0; i < options_.micro_batch; ++i) {
    const uint64_t sample =
        (static_cast<uint64_t>(micro) * options_.world + options_.rank) * options_.micro_batch + i;
    CounterRng rng(options_.seed, RngPurpose::kDataSample, static_cast<uint64_t>(step), 0, sample);
    starts[i] = static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_start + 1)));
  }
  return pack_windows(starts);
}

Batch TextLmSource::val_batch(int index) const {
  const int64_t window = options_.seq_len + 1;
  const int64_t n_windows = (static_cast<int64_t>(tokens_.size()) - train_end_) / window;
  std::vector<int64_t> starts(options_.micro_batch);
  for (int i = 0; i < options_.micro_batch; ++i) {
    const int64_t first = (static_cast<int64_t>(index) * options_.world + options_.rank) *
                          options_.micro_batch;
    const int64_t w = (first + i) % n_windows;
    starts[i] = train_end_ + w * window;
  }
  return pack_windows(starts);
}

int64_t TextLmSource::max_batch_tokens() const {
  return static_cast<int64_t>(options_.micro_batch) * options_.seq_len;
}

std::string TextLmSource::describe() const {
  return fmt::format("{}: {} tokens ({} train, {} held out), byte-level vocabulary of {}",
                     source_name_, tokens_.size(), train_end_, tokens_.size() - train_end_,
                     vocab_size_);
}

TextLmSource make_text_lm_source(const std::string& text_path, int64_t synthetic_bytes,
                                 const TextLmOptions& options) {
  if (text_path.empty()) {
    return TextLmSource(ByteTokenizer::encode(synthetic_corpus(options.seed, synthetic_bytes)),
                        ByteTokenizer::kVocabSize, options,
                        fmt::format("built-in synthetic corpus ({} bytes)", synthetic_bytes));
  }
  std::ifstream in(text_path, std::ios::binary);
  RECLM_USER_CHECK(in.good(), "data.text_path: cannot open \"{}\"", text_path);
  std::ostringstream contents;
  contents << in.rdbuf();
  RECLM_USER_CHECK(!in.bad(), "data.text_path: error reading \"{}\"", text_path);
  return TextLmSource(ByteTokenizer::encode(contents.str()), ByteTokenizer::kVocabSize, options,
                      text_path);
}

}  // namespace reclm
