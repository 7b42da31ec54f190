// See device_vocab_parallel.h; the steps and their reasons are trainer/vocab_parallel.h's.
// Differences of form, not of arithmetic:
//  - lookups and their gradients are deterministic scatter-adds by index pairs built on the host
//    (cuda::scatter_add_rows; a lookup adds each row once onto zeros, so it is a copy);
//  - the head's GEMMs take bf16 operands and run over the part's classes rounded up to a
//    multiple of 64 (padded_classes, as the unsharded head), their dlogits zero there;
//  - every rank's loss rows are all-gathered in bf16 (the GEMMs' operand), and each part's
//    ∂h comes out of its GEMM in bf16, summed over the ranks in fp32.
// As on the CPU, each part's logits are computed twice in a training step (for the statistics,
// then for dlogits once the ranks have combined them): keeping them would take a chunk of logits
// per part and chunk instead of one.
#include "trainer/device/device_vocab_parallel.h"

#include <algorithm>
#include <vector>

#include "kernels/cuda/convert.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/gemm.h"
#include "trainer/device/device_runtime.h"
#include "trainer/vocab_parallel.h"

namespace reclm::device {

namespace {

// dst[dst_rows[i]] += src[src_rows[i]] for the host index pairs (in order), dst [dst_count, C].
void add_rows(DeviceModel& dm, float* dst, int64_t dst_count, const float* src, const std::vector<int32_t>& dst_rows,
              const std::vector<int32_t>& src_rows) {
  const auto n = static_cast<int64_t>(dst_rows.size());
  if (n == 0) return;
  // (a synchronous copy: it waits for the previous call's reads of these lists)
  copy_to_device(dm.vp.dst_rows, dst_rows.data(), n * sizeof(int32_t));
  copy_to_device(dm.vp.src_rows, src_rows.data(), n * sizeof(int32_t));
  check(cuda::scatter_add_rows(dst, src, dm.vp.dst_rows, dm.vp.src_rows, n, dst_count, dm.dims.d_model,
                               dm.embedding_ws, dm.embedding_ws_bytes, dm.stream),
        "scatter_add_rows");
}

// One part of the head: `rows` loss rows (bf16 h, device targets and weights; gathered row
// `g0` first) against the table rows of classes [class_begin, class_begin + n) at `w` (fp32
// parameters; their bf16 copy and gradient rows alike).
struct HeadPart {
  const bf16* h;
  int64_t rows;
  int64_t g0;
  const int32_t* targets;
  const float* weights;
  const float* w;
  float* dw;
  int64_t class_begin;
  int64_t n;
};

// logits [rows of chunk, padded_classes(n)] of rows [r0, r0 + count) of the part.
void part_logits(DeviceModel& dm, const HeadPart& p, int64_t r0, int64_t count) {
  const int64_t C = dm.dims.d_model;
  check(cuda::linear_forward_bf16(dm.gemm, dm.logits, true, p.h + r0 * C, dm.weight_bf16(p.w), nullptr, count, C,
                                  padded_classes(p.n), false, dm.stream),
        "vocab-parallel head GEMM");
}

}  // namespace

void vp_embedding_forward(DeviceModel& dm, const int32_t* tokens, int64_t T, float* out) {
  DeviceVocabParallel& vp = dm.vp;
  const VocabShard& s = dm.dims.vocab_shard;
  const ShardedRows& table = dm.param_tensors.embed_rows;
  const int64_t C = dm.dims.d_model;
  vp.t_max = vp::max_over_ranks(*vp.host, T);
  vp.ids = vp::all_gather_ids(*vp.host, tokens, T, vp.t_max);
  const auto G = static_cast<int64_t>(vp.ids.size());
  const int64_t mine = vp.host->rank() * vp.t_max;  // this rank's block of the gathered tokens
  // Every rank's tokens that hit this rank's item rows; this rank's own tokens of replicated rows.
  std::vector<int32_t> own_dst, own_src, rep_dst, rep_src;
  for (int64_t g = 0; g < G; ++g) {
    const int64_t id = vp.ids[g];
    if (id < 0) continue;  // padding
    if (s.owns(id)) {
      own_dst.push_back(static_cast<int32_t>(g));
      own_src.push_back(static_cast<int32_t>(id - s.own_begin));
    } else if (!s.is_item(id) && g >= mine && g < mine + vp.t_max) {
      rep_dst.push_back(static_cast<int32_t>(g));
      rep_src.push_back(static_cast<int32_t>(s.replicated_row(id)));
    }
  }
  fill_zero(vp.rows, G * C * sizeof(float), dm.stream);
  add_rows(dm, vp.rows, G, table.own, own_dst, own_src);
  add_rows(dm, vp.rows, G, table.replicated, rep_dst, rep_src);
  // Each gathered row has exactly one contributor: the sum hands each rank its tokens' rows.
  vp.device->reduce_scatter(vp.rows, out, vp.t_max * C, ReduceOp::kSum);
}

void vp_embedding_backward(DeviceModel& dm, const int32_t* tokens, int64_t T, float* d_out) {
  DeviceVocabParallel& vp = dm.vp;
  const VocabShard& s = dm.dims.vocab_shard;
  const ShardedRows& grad = dm.grad_tensors.embed_rows;
  const int64_t C = dm.dims.d_model;
  const auto G = static_cast<int64_t>(vp.ids.size());
  RECLM_CHECK(G == vp.t_max * vp.host->size() && T <= vp.t_max, "vocabulary-parallel backward without its forward");
  fill_zero(d_out + T * C, (vp.t_max - T) * C * sizeof(float), dm.stream);
  vp.device->all_gather(d_out, vp.rows, vp.t_max * C);
  std::vector<int32_t> dst, src;
  for (int64_t g = 0; g < G; ++g) {  // this rank's item rows, over every rank's tokens
    if (vp.ids[g] >= 0 && s.owns(vp.ids[g])) {
      dst.push_back(static_cast<int32_t>(vp.ids[g] - s.own_begin));
      src.push_back(static_cast<int32_t>(g));
    }
  }
  add_rows(dm, grad.own, s.n_own(), vp.rows, dst, src);
  dst.clear(), src.clear();
  for (int64_t t = 0; t < T; ++t) {  // the replicated rows, over this rank's tokens
    if (!s.is_item(tokens[t])) {
      dst.push_back(static_cast<int32_t>(s.replicated_row(tokens[t])));
      src.push_back(static_cast<int32_t>(t));
    }
  }
  add_rows(dm, grad.replicated, s.n_replicated(), d_out, dst, src);
}

double vp_head_and_loss(DeviceModel& dm, int64_t R, const int32_t* targets, const float* weights,
                        int64_t class_begin, int64_t n_classes, float grad_scale, bool backward) {
  DeviceVocabParallel& vp = dm.vp;
  Communicator& host = *vp.host;
  const VocabShard& s = dm.dims.vocab_shard;
  const int64_t C = dm.dims.d_model, class_end = class_begin + n_classes;
  const int world = host.size();
  // Every rank's rows: G = world · r_max, rank q's at [q · r_max, q · r_max + R_q), and ranges.
  const int64_t r_max = vp::max_over_ranks(host, R), G = r_max * world, first = host.rank() * r_max;
  const std::vector<int32_t> all_targets = vp::all_gather_ids(host, targets, R, r_max);
  const std::vector<float> all_weights = vp::all_gather_rows(host, weights, R, r_max, 1);
  const int32_t my_range[2] = {static_cast<int32_t>(class_begin), static_cast<int32_t>(class_end)};
  const std::vector<int32_t> ranges = vp::all_gather_ids(host, my_range, 2, 2);
  // bf16 rows travel as float pairs (an all-gather copies bits); C is even (head dim ≥ 32)
  fill_zero(dm.head_h + R * C, (r_max - R) * C * sizeof(bf16), dm.stream);
  vp.device->all_gather(reinterpret_cast<const float*>(dm.head_h), reinterpret_cast<float*>(vp.h), r_max * C / 2);
  copy_to_device(vp.targets, all_targets.data(), G * sizeof(int32_t));
  copy_to_device(vp.weights, all_weights.data(), G * sizeof(float));

  // The parts this rank scores: its item rows ∩ rank q's range, for rank q's rows; and the
  // replicated rows of its own range, for its own rows (targets renumbered to replicated rows).
  std::vector<HeadPart> parts;  // the item parts, then the replicated one (if any)
  const std::vector<vp::ItemPart> own = vp::own_parts(s, ranges, world);
  for (int q = 0; q < world; ++q) {
    if (own[q].n == 0) continue;
    const int64_t row = own[q].lo - s.own_begin;
    parts.push_back({vp.h + q * r_max * C, r_max, q * r_max, vp.targets + q * r_max, vp.weights + q * r_max,
                     dm.param_tensors.head_rows.own + row * C, dm.grad_tensors.head_rows.own + row * C, own[q].lo,
                     own[q].n});
  }
  const size_t n_item_parts = parts.size();
  const vp::RowRange rep = vp::replicated_classes(s, class_begin, class_end);
  if (rep.size() > 0 && R > 0) {
    std::vector<int32_t> rep_targets(static_cast<size_t>(R));
    for (int64_t r = 0; r < R; ++r)
      rep_targets[r] = s.is_item(targets[r]) ? -1 : static_cast<int32_t>(s.replicated_row(targets[r]));
    copy_to_device(vp.rep_targets, rep_targets.data(), R * sizeof(int32_t));
    parts.push_back({dm.head_h, R, first, vp.rep_targets, dm.loss_weights,
                     dm.param_tensors.head_rows.replicated + rep.lo * C,
                     dm.grad_tensors.head_rows.replicated + rep.lo * C, rep.lo, rep.size()});
  }
  const auto for_each_chunk = [&](const HeadPart& p, auto f) {
    for (int64_t r0 = 0; r0 < p.rows; r0 += dm.head_chunk) f(r0, std::min(dm.head_chunk, p.rows - r0));
  };

  // Statistics per gathered row, part by part, merged on the host, then combined over the ranks.
  std::vector<float> row_max(static_cast<size_t>(G), vp::kNoClass);
  std::vector<double> sums(static_cast<size_t>(2 * G), 0.0);  // [Σexp | target logit]
  std::vector<float> part_max;
  std::vector<double> part_sum, part_target;
  for (const HeadPart& p : parts) {
    for_each_chunk(p, [&](int64_t r0, int64_t count) {
      part_logits(dm, p, r0, count);
      check(cuda::cross_entropy_partial_stats(vp.row_max + r0, vp.row_sum + r0, vp.target_logit + r0, dm.logits,
                                              p.targets + r0, p.weights + r0, count, p.n, p.class_begin, dm.stream,
                                              padded_classes(p.n)),
            "cross_entropy_partial_stats");
    });
    part_max.resize(p.rows), part_sum.resize(p.rows), part_target.resize(p.rows);
    copy_to_host(part_max.data(), vp.row_max, p.rows * sizeof(float));
    copy_to_host(part_sum.data(), vp.row_sum, p.rows * sizeof(double));
    copy_to_host(part_target.data(), vp.target_logit, p.rows * sizeof(double));
    for (int64_t i = 0; i < p.rows; ++i) {
      const int64_t g = p.g0 + i;
      vp::merge_stats(row_max[g], sums[g], sums[G + g], part_max[i], part_sum[i], part_target[i]);
    }
  }
  const double loss_sum = vp::combine_over_ranks(host, row_max, sums, weights, R, first);
  if (!backward) return loss_sum;

  // Backward: each part's dlogits from the combined statistics. The item parts give ∂h of every
  // rank's rows (fp32 in vp.rows, reduce-scattered back to the rows' ranks); the replicated part
  // adds its own rows' share after that.
  copy_to_device(vp.row_max, row_max.data(), G * sizeof(float));
  copy_to_device(vp.row_sum, sums.data(), G * sizeof(double));
  const auto dlogits_of = [&](const HeadPart& p, int64_t r0, int64_t count) {
    part_logits(dm, p, r0, count);
    check(cuda::cross_entropy_backward_from_stats_bf16(dm.dlogits, dm.logits, p.targets + r0, p.weights + r0,
                                                       vp.row_max + p.g0 + r0, vp.row_sum + p.g0 + r0, count, p.n,
                                                       p.class_begin, grad_scale, dm.stream, padded_classes(p.n)),
          "cross_entropy_backward_from_stats_bf16");
  };
  // dinp (bf16, += with accumulate) = dlogits · W, and the part's dW += dlogitsᵀ · h
  const auto backward_gemms = [&](const HeadPart& p, int64_t r0, int64_t count, bf16* dinp, bool accumulate) {
    check(cuda::linear_backward_bf16(dm.gemm, dinp, accumulate, p.dw, nullptr, dm.dlogits, p.h + r0 * C,
                                     dm.weight_bf16(p.w), count, C, padded_classes(p.n), dm.stream),
          "vocab-parallel head backward");
  };
  fill_zero(vp.rows, G * C * sizeof(float), dm.stream);
  for (size_t k = 0; k < n_item_parts; ++k) {  // each chunk's ∂h via dm.d_h (scratch), widened
    const HeadPart& p = parts[k];
    for_each_chunk(p, [&](int64_t r0, int64_t count) {
      dlogits_of(p, r0, count);
      backward_gemms(p, r0, count, dm.d_h, false);
      check(cuda::convert_bf16_to_f32(vp.rows + (p.g0 + r0) * C, dm.d_h, count * C, dm.stream), "convert");
    });
  }
  vp.device->reduce_scatter(vp.rows, dm.d_h32, r_max * C, ReduceOp::kSum);
  check(cuda::convert_f32_to_bf16(dm.d_h, dm.d_h32, R * C, dm.stream), "convert");
  for (size_t k = n_item_parts; k < parts.size(); ++k) {  // the replicated part: onto this rank's ∂h
    const HeadPart& p = parts[k];
    for_each_chunk(p, [&](int64_t r0, int64_t count) {
      dlogits_of(p, r0, count);
      backward_gemms(p, r0, count, dm.d_h + r0 * C, true);
    });
  }
  return loss_sum;
}

}  // namespace reclm::device
