// Vocabulary parallelism for large catalogs (DESIGN.md §6, as Megatron's vocab-parallel
// embedding and cross-entropy, across the data-parallel ranks): the item rows of a vocabulary
// table — the token embedding, and the LM head when untied — are split over the ranks, so no
// rank holds, updates or keeps optimizer state for the whole catalog.
//
// A table [V, C] is held as two pieces on every rank:
//   replicated [V − n_items, C]: every row outside the item block [item_begin, item_end), in id
//                                order (ids ≥ item_end move down by n_items);
//   own        [own_end − own_begin, C]: this rank's contiguous slice of the item rows.
// Ranks train on different data, so a rank needs rows it does not hold; the exchanges below
// move activations, never weights:
//
// Embedding. Every rank's token ids are all-gathered (padded to the longest); each rank looks up,
// for every rank's tokens, the item rows it owns, plus — for its own tokens only — the
// replicated rows; a reduce-scatter (sum: exactly one rank contributes each row) hands each rank
// its tokens' embeddings. Backward all-gathers ∂out and each rank accumulates its own item rows
// over every rank's tokens (their gradient is then complete for the job: no all-reduce), and
// its replicated rows over its own tokens (all-reduced with the other gradients, as usual).
//
// Cross-entropy over classes [class_begin, class_begin + n) (e.g. the item block, or the whole
// vocabulary; each rank's own, as ranks may train on different sources). The hidden states,
// targets, weights and class ranges of every rank's loss rows are all-gathered; each rank
// scores every row against its own item rows within that row's range, and its own rows against
// the replicated rows of its range. Per row it reduces its part to (max, Σexp, target logit);
// the ranks combine them — all-reduce(max) of the maxima, then all-reduce(sum) of the rescaled
// sums and target logits — so every rank knows each row's log-sum-exp over the whole range
// without any rank holding all logits. Backward forms each part's dlogits from those statistics:
// own item rows get Σ over every rank's rows (complete), the hidden-state gradient of every row
// is reduce-scattered back to the row's rank, and the replicated part is local.
//
// The result equals the unsharded table up to floating-point summation order (tested under
// mpirun, tests/trainer/mpi_vocab_parallel_test.cc). Cost per call: all-gathers of T·world ids
// and R·world·C hidden values, and a reduce-scatter of the same size; scratch R·world·C floats.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "runtime/comm/communicator.h"
#include "trainer/vocab_shard.h"

namespace reclm {

// out[T, C] = table[tokens[t]] for this rank's tokens. Collective.
void vocab_parallel_embedding_forward(Communicator& comm, const VocabShard& shard,
                                      ShardedRows table, const int32_t* tokens, int64_t T,
                                      int64_t C, float* out);
// d_table += the lookup's gradient given d_out[T, C]: own item rows over every rank's tokens,
// replicated rows over this rank's tokens (token order). Collective.
void vocab_parallel_embedding_backward(Communicator& comm, const VocabShard& shard,
                                       ShardedRows d_table, const float* d_out,
                                       const int32_t* tokens, int64_t T, int64_t C);

// Softmax cross-entropy of this rank's rows h[R, C] against the table's classes
// [class_begin, class_begin + n_classes) (each rank may pass its own range): returns Σ_r weights[r] · (lse_r − logit_r[target_r])
// over this rank's rows. With d_h != nullptr also the backward at grad_scale: d_h[R, C] is
// overwritten with ∂/∂h, and d_table accumulates (own rows over every rank's rows, replicated
// rows over this rank's). Every target with a nonzero weight lies in the class range. Collective.
double vocab_parallel_cross_entropy(Communicator& comm, const VocabShard& shard, ShardedRows table,
                                   const float* h, const int32_t* targets, const float* weights,
                                   int64_t R, int64_t C, int64_t class_begin, int64_t n_classes,
                                   float grad_scale, float* d_h, ShardedRows d_table);

// The host-side pieces of the exchanges above, shared with the CUDA backend's form
// (trainer/device/device_vocab_parallel.cu), which runs the same steps over device buffers.
namespace vp {

// The largest n over the ranks.
int64_t max_over_ranks(Communicator& comm, int64_t n);
// Every rank's n ≤ n_max ids, padded with −1, in rank order: [world · n_max].
std::vector<int32_t> all_gather_ids(Communicator& comm, const int32_t* ids, int64_t n, int64_t n_max);
// Every rank's rows[n ≤ n_max, width], zero-padded, in rank order: [world · n_max, width].
std::vector<float> all_gather_rows(Communicator& comm, const float* rows, int64_t n, int64_t n_max, int64_t width);

// The replicated rows [lo, hi) that hold the non-item classes of [class_begin, class_end).
struct RowRange {
  int64_t lo = 0, hi = 0;
  int64_t size() const { return hi > lo ? hi - lo : 0; }
};
RowRange replicated_classes(const VocabShard& shard, int64_t class_begin, int64_t class_end);

// Item ids [lo, lo + n) of this rank's rows that lie in a class range.
struct ItemPart {
  int64_t lo = 0, n = 0;
};
// Per rank q, this rank's item rows ∩ rank q's class range; ranges: [world][begin, end).
std::vector<ItemPart> own_parts(const VocabShard& shard, const std::vector<int32_t>& ranges, int world);

// Rows with no class in a part have max −inf (kNoClass).
inline constexpr float kNoClass = -std::numeric_limits<float>::infinity();
// Merges a part's statistics (max m2, Σexp(x − m2) s2, target logit z2) into the running ones.
void merge_stats(float& m, double& s, double& z, float m2, double s2, double z2);
// The ranks' statistics of the gathered rows combined in place: row_max [G] ← the job's maxima,
// sums [2G] = [Σexp | target logit] ← their sums over the ranks with Σexp rescaled to those
// maxima. Returns Σ weights[r]·(lse − target logit) over this rank's rows [first, first + R).
double combine_over_ranks(Communicator& comm, std::vector<float>& row_max, std::vector<double>& sums,
                          const float* weights, int64_t R, int64_t first);

}  // namespace vp

}  // namespace reclm
