// A packed micro-batch: the unit the trainer consumes, and the interface between data/ and
// trainer/. Sequences of different lengths share one token buffer, separated by segment
// boundaries (cu_seqlens) — never padded to the longest (DESIGN.md §5).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace reclm {

struct Batch {
  // All [n_tokens]:
  std::vector<int32_t> tokens;        // input token ids
  std::vector<int32_t> targets;       // token to predict at each position (any id where weight 0)
  std::vector<float> loss_weights;    // 0 = no loss at this position
  std::vector<int32_t> pos_inter;     // RoPE position (1D), or the inter position (2D)
  std::vector<int32_t> pos_intra;     // 2D only: the intra position; empty for 1D batches
  // Segments: [n_segments + 1] boundaries, and [n_segments] bidirectional prefix lengths
  // (empty = every segment plain causal).
  std::vector<int32_t> cu_seqlens;
  std::vector<int32_t> prefix_lens;
  // The softmax runs over token ids [class_begin, class_begin + class_count); class_count 0 means
  // the whole vocabulary. Next-item prediction in ID mode restricts it to the item tokens
  // (DESIGN.md §1), which is also far cheaper than a full LM head. Every target with a nonzero
  // weight must lie in the range.
  int32_t class_begin = 0;
  int32_t class_count = 0;

  int64_t n_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t n_segments() const { return static_cast<int64_t>(cu_seqlens.size()) - 1; }
};

// Where batches come from. Batches are pure functions of their index (and the seed), so a run
// can resume at any step without replaying the stream, and every rank can pick its share.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Micro-batch `micro` of optimizer step `step`.
  virtual Batch train_batch(int64_t step, int micro) const = 0;
  // This rank's share of held-out batch `index` (the same every call). As for training batches,
  // the ranks of a job together hold what one process with micro_batch·world holds, so the
  // validation set depends on the global batch, not on the number of ranks.
  virtual Batch val_batch(int index) const = 0;
  // Most tokens any batch holds: sizes the activation arena once.
  virtual int64_t max_batch_tokens() const = 0;
  // Smallest vocabulary the model needs for these token ids.
  virtual int64_t min_vocab_size() const = 0;
  // Human-readable summary for the start-up log.
  virtual std::string describe() const = 0;
};

}  // namespace reclm
