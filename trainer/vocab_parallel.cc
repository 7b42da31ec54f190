#include "trainer/vocab_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm {

namespace vp {

int64_t max_over_ranks(Communicator& comm, int64_t n) {
  double value = static_cast<double>(n);
  comm.all_reduce(&value, 1, ReduceOp::kMax);
  return static_cast<int64_t>(value);
}

// The ids travel as the bits of floats (an all-gather only copies them).
std::vector<int32_t> all_gather_ids(Communicator& comm, const int32_t* ids, int64_t n, int64_t n_max) {
  static_assert(sizeof(float) == sizeof(int32_t));
  std::vector<int32_t> mine(static_cast<size_t>(n_max), -1);
  std::copy(ids, ids + n, mine.begin());
  std::vector<int32_t> all(static_cast<size_t>(n_max * comm.size()));
  comm.all_gather(reinterpret_cast<const float*>(mine.data()), reinterpret_cast<float*>(all.data()), n_max);
  return all;
}

std::vector<float> all_gather_rows(Communicator& comm, const float* rows, int64_t n, int64_t n_max, int64_t width) {
  std::vector<float> mine(static_cast<size_t>(n_max * width), 0.0f);
  std::copy(rows, rows + n * width, mine.begin());
  std::vector<float> all(static_cast<size_t>(n_max * width * comm.size()));
  comm.all_gather(mine.data(), all.data(), n_max * width);
  return all;
}

RowRange replicated_classes(const VocabShard& s, int64_t class_begin, int64_t class_end) {
  const auto row = [&](int64_t id) {  // first replicated row at or after id
    return id <= s.item_begin ? id : (id < s.item_end ? s.item_begin : id - s.n_items());
  };
  return {row(class_begin), row(class_end)};
}

std::vector<ItemPart> own_parts(const VocabShard& shard, const std::vector<int32_t>& ranges, int world) {
  std::vector<ItemPart> parts(world);
  for (int q = 0; q < world; ++q) {
    parts[q].lo = std::max<int64_t>(ranges[2 * q], shard.own_begin);
    parts[q].n = std::max<int64_t>(0, std::min<int64_t>(ranges[2 * q + 1], shard.own_end) - parts[q].lo);
  }
  return parts;
}

void merge_stats(float& m, double& s, double& z, float m2, double s2, double z2) {
  z += z2;
  if (m2 == kNoClass) return;
  if (m == kNoClass) {
    m = m2;
    s = s2;
    return;
  }
  const float top = std::max(m, m2);
  s = s * std::exp(static_cast<double>(m) - top) + s2 * std::exp(static_cast<double>(m2) - top);
  m = top;
}

// Each rank rescales its sums to the job's maxima, then sums and target logits add up (exactly
// one rank holds each row's target logit, the others contribute 0).
double combine_over_ranks(Communicator& comm, std::vector<float>& row_max, std::vector<double>& sums,
                          const float* weights, int64_t R, int64_t first) {
  const auto G = static_cast<int64_t>(row_max.size());
  const std::vector<float> local_max = row_max;
  comm.all_reduce(row_max.data(), G, ReduceOp::kMax);
  for (int64_t g = 0; g < G; ++g) {
    if (local_max[g] != kNoClass) sums[g] *= std::exp(static_cast<double>(local_max[g]) - row_max[g]);
  }
  comm.all_reduce(sums.data(), 2 * G, ReduceOp::kSum);
  double loss_sum = 0.0;  // this rank's rows, in row order
  for (int64_t r = 0; r < R; ++r) {
    const int64_t g = first + r;
    if (weights[r] == 0.0f) continue;
    loss_sum += static_cast<double>(weights[r]) * (static_cast<double>(row_max[g]) + std::log(sums[g]) - sums[G + g]);
  }
  return loss_sum;
}

}  // namespace vp

namespace {

using namespace vp;

void add_row(float* dst, const float* src, int64_t C) {
  for (int64_t c = 0; c < C; ++c) dst[c] += src[c];
}

// Rows per logits chunk: at most 256, and at most ~4M logits.
int64_t chunk_rows(int64_t n_classes) {
  return std::max<int64_t>(1, std::min<int64_t>(256, (int64_t{1} << 22) / std::max<int64_t>(1, n_classes)));
}

}  // namespace

VocabShard make_vocab_shard(int64_t vocab, int64_t item_begin, int64_t item_end, int rank,
                            int world) {
  RECLM_CHECK(0 <= item_begin && item_begin <= item_end && item_end <= vocab,
              "item block [{}, {}) outside a vocabulary of {}", item_begin, item_end, vocab);
  RECLM_CHECK(world >= 1 && rank >= 0 && rank < world, "rank {} of {}", rank, world);
  VocabShard s;
  s.vocab = vocab;
  s.item_begin = item_begin;
  s.item_end = item_end;
  const int64_t n = item_end - item_begin;
  s.own_begin = item_begin + n * rank / world;
  s.own_end = item_begin + n * (rank + 1) / world;
  return s;
}

void vocab_parallel_embedding_forward(Communicator& comm, const VocabShard& shard,
                                      ShardedRows table, const int32_t* tokens, int64_t T,
                                      int64_t C, float* out) {
  const int64_t t_max = max_over_ranks(comm, T);
  const std::vector<int32_t> ids = all_gather_ids(comm, tokens, T, t_max);
  const int64_t mine = comm.rank() * t_max;  // this rank's block of the gathered tokens
  std::vector<float> partial(ids.size() * C, 0.0f);
  for (int64_t g = 0; g < static_cast<int64_t>(ids.size()); ++g) {
    const int64_t id = ids[g];
    if (id < 0) continue;  // padding
    RECLM_CHECK(id < shard.vocab, "token id {} outside the vocabulary of {}", id, shard.vocab);
    const float* row = nullptr;
    if (shard.owns(id)) {
      row = table.own + (id - shard.own_begin) * C;
    } else if (!shard.is_item(id) && g >= mine && g < mine + t_max) {
      row = table.replicated + shard.replicated_row(id) * C;
    }
    if (row != nullptr) std::memcpy(partial.data() + g * C, row, C * sizeof(float));
  }
  std::vector<float> block(static_cast<size_t>(t_max * C));
  comm.reduce_scatter(partial.data(), block.data(), t_max * C, ReduceOp::kSum);
  std::memcpy(out, block.data(), T * C * sizeof(float));
}

void vocab_parallel_embedding_backward(Communicator& comm, const VocabShard& shard,
                                       ShardedRows d_table, const float* d_out,
                                       const int32_t* tokens, int64_t T, int64_t C) {
  const int64_t t_max = max_over_ranks(comm, T);
  const std::vector<int32_t> ids = all_gather_ids(comm, tokens, T, t_max);
  const std::vector<float> d_all = all_gather_rows(comm, d_out, T, t_max, C);
  for (int64_t g = 0; g < static_cast<int64_t>(ids.size()); ++g) {
    if (ids[g] >= 0 && shard.owns(ids[g])) {
      add_row(d_table.own + (ids[g] - shard.own_begin) * C, d_all.data() + g * C, C);
    }
  }
  for (int64_t t = 0; t < T; ++t) {
    if (!shard.is_item(tokens[t])) {
      add_row(d_table.replicated + shard.replicated_row(tokens[t]) * C, d_out + t * C, C);
    }
  }
}

double vocab_parallel_cross_entropy(Communicator& comm, const VocabShard& shard, ShardedRows table,
                                   const float* h, const int32_t* targets, const float* weights,
                                   int64_t R, int64_t C, int64_t class_begin, int64_t n_classes,
                                   float grad_scale, float* d_h, ShardedRows d_table) {
  const int64_t class_end = class_begin + n_classes;
  RECLM_CHECK(class_begin >= 0 && n_classes > 0 && class_end <= shard.vocab,
              "class range [{}, {}) outside the vocabulary of {}", class_begin, class_end,
              shard.vocab);
  for (int64_t r = 0; r < R; ++r) {
    RECLM_CHECK(weights[r] == 0.0f || (targets[r] >= class_begin && targets[r] < class_end),
                "row {}: target {} outside the class range [{}, {})", r, targets[r], class_begin,
                class_end);
  }
  // Every rank's rows: G = world · r_max, rank q's at [q · r_max, q · r_max + R_q); and every
  // rank's class range (ranks may train on different sources: item softmax here, full text there).
  const int world = comm.size();
  const int64_t r_max = max_over_ranks(comm, R);
  const int64_t G = r_max * world, first = comm.rank() * r_max;
  const std::vector<float> H = all_gather_rows(comm, h, R, r_max, C);
  const std::vector<int32_t> all_targets = all_gather_ids(comm, targets, R, r_max);
  const std::vector<float> all_weights = all_gather_rows(comm, weights, R, r_max, 1);
  const int32_t my_range[2] = {static_cast<int32_t>(class_begin), static_cast<int32_t>(class_end)};
  const std::vector<int32_t> ranges = all_gather_ids(comm, my_range, 2, 2);  // [world][begin, end)

  // The parts this rank scores: its item rows ∩ rank q's range, for rank q's rows; and the
  // replicated rows of its own range, for its own rows (targets renumbered to replicated rows).
  const std::vector<ItemPart> parts = own_parts(shard, ranges, world);
  const auto own_rows_of = [&](const ItemPart& p) { return table.own + (p.lo - shard.own_begin) * C; };
  const RowRange rep = replicated_classes(shard, class_begin, class_end);
  const float* rep_w = table.replicated + rep.lo * C;
  std::vector<int32_t> rep_targets(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    rep_targets[r] = shard.is_item(targets[r]) ? -1 : static_cast<int32_t>(shard.replicated_row(targets[r]));
  }

  // Statistics per gathered row, this rank's parts, then combined over the ranks.
  std::vector<float> row_max(G, kNoClass);
  std::vector<double> sums(2 * G, 0.0);  // [Σexp | target logit]
  double* row_sum = sums.data();
  double* row_target = sums.data() + G;
  std::vector<float> logits;
  std::vector<float> part_max;
  std::vector<double> part_sum, part_target;
  const auto score = [&](const float* rows_in, int64_t n_rows, const float* w, int64_t n_cls,
                         const int32_t* tg, const float* wt, int64_t cls_begin, int64_t g0) {
    logits.resize(n_rows * n_cls);
    part_max.resize(n_rows);
    part_sum.resize(n_rows);
    part_target.resize(n_rows);
    ops::linear_forward(logits.data(), rows_in, w, n_rows, C, n_cls);
    ops::cross_entropy_partial_stats(part_max.data(), part_sum.data(), part_target.data(),
                                     logits.data(), tg, wt, n_rows, n_cls, cls_begin);
    for (int64_t i = 0; i < n_rows; ++i) {
      merge_stats(row_max[g0 + i], row_sum[g0 + i], row_target[g0 + i], part_max[i], part_sum[i],
                  part_target[i]);
    }
  };
  for (int q = 0; q < world; ++q) {
    const ItemPart& p = parts[q];
    if (p.n == 0) continue;
    const int64_t step = chunk_rows(p.n);
    for (int64_t g0 = q * r_max; g0 < (q + 1) * r_max; g0 += step) {
      const int64_t n = std::min(step, (q + 1) * r_max - g0);
      score(H.data() + g0 * C, n, own_rows_of(p), p.n, all_targets.data() + g0,
            all_weights.data() + g0, p.lo, g0);
    }
  }
  if (rep.size() > 0) {
    const int64_t step = chunk_rows(rep.size());
    for (int64_t r0 = 0; r0 < R; r0 += step) {
      const int64_t n = std::min(step, R - r0);
      score(h + r0 * C, n, rep_w, rep.size(), rep_targets.data() + r0, weights + r0, rep.lo,
            first + r0);
    }
  }
  const double loss_sum = combine_over_ranks(comm, row_max, sums, weights, R, first);
  if (d_h == nullptr) return loss_sum;

  // Backward. Own item rows: dlogits for every gathered row; ∂h of every row goes back to its
  // rank by a reduce-scatter. Replicated rows: this rank's rows only, added to its ∂h after.
  const auto dlogits_of = [&](const float* rows_in, int64_t n_rows, const float* w, int64_t n_cls,
                              const int32_t* tg, const float* wt, int64_t cls_begin, int64_t g0) {
    logits.resize(n_rows * n_cls);
    ops::linear_forward(logits.data(), rows_in, w, n_rows, C, n_cls);
    ops::cross_entropy_backward_from_stats(logits.data(), logits.data(), tg, wt,
                                           row_max.data() + g0, row_sum + g0, n_rows, n_cls,
                                           cls_begin, grad_scale);
  };
  std::vector<float> d_all(static_cast<size_t>(G * C), 0.0f);
  for (int q = 0; q < world; ++q) {
    const ItemPart& p = parts[q];
    if (p.n == 0) continue;
    float* d_own_w = d_table.own + (p.lo - shard.own_begin) * C;
    const int64_t step = chunk_rows(p.n);
    for (int64_t g0 = q * r_max; g0 < (q + 1) * r_max; g0 += step) {
      const int64_t n = std::min(step, (q + 1) * r_max - g0);
      dlogits_of(H.data() + g0 * C, n, own_rows_of(p), p.n, all_targets.data() + g0,
                 all_weights.data() + g0, p.lo, g0);
      ops::linear_backward(d_all.data() + g0 * C, d_own_w, logits.data(), H.data() + g0 * C,
                           own_rows_of(p), n, C, p.n, /*accumulate_dinp=*/false);
    }
  }
  std::vector<float> d_mine(static_cast<size_t>(r_max * C));
  comm.reduce_scatter(d_all.data(), d_mine.data(), r_max * C, ReduceOp::kSum);
  std::memcpy(d_h, d_mine.data(), R * C * sizeof(float));
  if (rep.size() > 0) {
    float* d_rep_w = d_table.replicated + rep.lo * C;
    const int64_t step = chunk_rows(rep.size());
    for (int64_t r0 = 0; r0 < R; r0 += step) {
      const int64_t n = std::min(step, R - r0);
      dlogits_of(h + r0 * C, n, rep_w, rep.size(), rep_targets.data() + r0, weights + r0, rep.lo,
                 first + r0);
      ops::linear_backward(d_h + r0 * C, d_rep_w, logits.data(), h + r0 * C, rep_w, n, C,
                           rep.size(), /*accumulate_dinp=*/true);
    }
  }
  return loss_sum;
}

}  // namespace reclm
