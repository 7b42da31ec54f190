// ZeRO stage 1 (DESIGN.md §6, optim.zero1): the AdamW moments are sharded across the ranks of a
// data-parallel job. Rank r owns the contiguous range shard_range(N, r, world) of the canonical
// flat order (checkpoint/canonical_order.h: tensors in layout order, row-major, no padding; N =
// ParamLayout::num_parameters()), so a checkpoint's optimizer shards are exactly the ZeRO shards.
//
// One step, on every rank:
//   1. reduce-scatter (sum) the gradients: rank r receives the job's summed gradients of the
//      trainable values of its shard;
//   2. grad norm: each rank's sum of squares over those values, all-reduced (double);
//   3. AdamW updates the shard only (AdamW built with the shard range: moments [shard size]);
//   4. all-gather the updated trainable values, so every rank holds the whole model again.
//
// Exchange layout. The communicator's reduce_scatter/all_gather want one equal count per rank,
// while canonical shards differ by one value and, under LoRA, hold very different numbers of
// trainable values. So each collective works on `world` blocks of P floats, P = the largest
// number of trainable values any shard holds: block r = the trainable values of shard r in
// canonical order, zero-padded to P. Frozen values (LoRA base weights) are never exchanged,
// exactly as plain data parallelism skips them. Cost: world·P floats of staging per rank (the
// size of the trainable gradient, one copy), and P·(world−1) padding at most one value per rank
// without LoRA. Under LoRA the trainable values (adapters at the end of the layout, new
// embedding rows at the start) fall into few shards, so the work is unbalanced — correct, but
// the memory saving is then smaller than 1/N.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/comm/communicator.h"
#include "trainer/model.h"
#include "trainer/param_layout.h"

namespace reclm {

// A range [begin, end) of the canonical flat order.
struct CanonicalRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// The canonical range ZeRO shard `rank` of `world` owns: [rank·N/world, (rank+1)·N/world) with
// N = layout.num_parameters() (the same formula as checkpoint/canonical_order.h shard_range).
CanonicalRange zero1_shard_range(const ParamLayout& layout, int rank, int world);

// A run of trainable values that lie contiguously both in the padded parameter buffer and in the
// optimizer's moment arrays. Never crosses a tensor, so one weight-decay kind applies.
struct UpdateSegment {
  int64_t param_offset;   // in the padded parameter/gradient buffer
  int64_t moment_offset;  // in the optimizer's moments
  int64_t count;
  ParamKind kind;
};

// The whole layout's train ranges, one segment per non-frozen tensor, moments in the padded
// layout (moment_offset == param_offset): plain AdamW.
std::vector<UpdateSegment> layout_update_segments(const ParamLayout& layout);
// The trainable values of canonical range `range`, in canonical order; moment_offset counts from
// range.begin (moments of the shard: [range.size()] floats in canonical order, frozen ones 0).
std::vector<UpdateSegment> shard_update_segments(const ParamLayout& layout, CanonicalRange range);
// Σ count over the segments.
int64_t segment_values(const std::vector<UpdateSegment>& segments);

// Copies the segments' values of a padded buffer into `packed` [segment_values] in order, and back.
void pack_segments(const std::vector<UpdateSegment>& segments, const float* padded, float* packed);
void unpack_segments(const std::vector<UpdateSegment>& segments, const float* packed, float* padded);

// The exchange layout of the collectives (see the top of this file), the same on every rank:
// each rank's trainable values of its shard, and P, the floats per rank in each collective.
struct Zero1Blocks {
  std::vector<std::vector<UpdateSegment>> segments;  // [world]
  int64_t block = 1;                                 // P
};
Zero1Blocks zero1_blocks(const ParamLayout& layout, int world);

// The collectives of a ZeRO-1 step for one rank (see the top of this file), on host memory (the
// CUDA backend's device form: trainer/device/device_zero1.h). Built once per run.
class Zero1Exchange {
 public:
  Zero1Exchange(const ParamLayout& layout, Communicator& comm);

  CanonicalRange shard() const { return shard_; }
  // Step 1: model's gradient buffer at this rank's shard ← the gradients summed over ranks.
  // Gradients outside the shard are left as they were (this rank's own, unreduced).
  void reduce_scatter_gradients(Model& model);
  // Step 2: L2 norm of the summed gradient over all trainable values (after step 1); the same
  // value on every rank, equal to AdamW::grad_norm of plain data parallelism up to summation order.
  double grad_norm(const Model& model);
  // Step 4: every rank's parameters ← the trainable values each shard's owner holds.
  void all_gather_parameters(Model& model);

 private:
  Communicator& comm_;
  CanonicalRange shard_;
  Zero1Blocks blocks_;
  std::vector<float> staging_;   // [world·P]
  std::vector<float> received_;  // [P]
};

}  // namespace reclm
