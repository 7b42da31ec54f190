// Which rows of a vocabulary table a rank holds under vocabulary parallelism
// (trainer/vocab_parallel.h): every row outside the item block, and its own slice of the item
// rows. Plain data (no communication), so the parameter layout can use it.
#pragma once

#include <cstdint>

namespace reclm {

// Which rows of a vocabulary of `vocab` ids this rank holds.
struct VocabShard {
  int64_t vocab = 0;
  int64_t item_begin = 0, item_end = 0;  // the sharded block of ids
  int64_t own_begin = 0, own_end = 0;    // this rank's slice of it
  int64_t n_items() const { return item_end - item_begin; }
  int64_t n_own() const { return own_end - own_begin; }
  int64_t n_replicated() const { return vocab - n_items(); }
  bool is_item(int64_t id) const { return id >= item_begin && id < item_end; }
  bool owns(int64_t id) const { return id >= own_begin && id < own_end; }
  // Row of a non-item id in the replicated piece.
  int64_t replicated_row(int64_t id) const { return id < item_begin ? id : id - n_items(); }
};

// Rank `rank` of `world` holds items [item_begin + rank·n/world, item_begin + (rank+1)·n/world).
VocabShard make_vocab_shard(int64_t vocab, int64_t item_begin, int64_t item_end, int rank,
                            int world);

// The two pieces of a table (weights, or their gradients).
struct ShardedRows {
  float* replicated;  // [n_replicated, C]
  float* own;         // [n_own, C]
};

}  // namespace reclm
