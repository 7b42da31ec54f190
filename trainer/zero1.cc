#include "trainer/zero1.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm {

CanonicalRange zero1_shard_range(const ParamLayout& layout, int rank, int world) {
  RECLM_CHECK(world > 0 && rank >= 0 && rank < world, "shard {} of {}", rank, world);
  const int64_t total = layout.num_parameters();
  return {total * rank / world, total * (rank + 1) / world};
}

std::vector<UpdateSegment> layout_update_segments(const ParamLayout& layout) {
  std::vector<UpdateSegment> segments;
  for (const ParamEntry& e : layout.entries()) {
    if (e.frozen()) continue;
    const int64_t at = e.offset + e.train_begin;
    segments.push_back({at, at, e.train_end - e.train_begin, e.kind});
  }
  return segments;
}

std::vector<UpdateSegment> shard_update_segments(const ParamLayout& layout, CanonicalRange range) {
  RECLM_CHECK(range.begin >= 0 && range.begin <= range.end && range.end <= layout.num_parameters(),
              "canonical range [{}, {})", range.begin, range.end);
  std::vector<UpdateSegment> segments;
  int64_t canonical = 0;  // canonical index of the current tensor's first value
  for (const ParamEntry& e : layout.entries()) {
    // The tensor's trainable values, in canonical indices, clipped to the range.
    const int64_t begin = std::max(range.begin, canonical + e.train_begin);
    const int64_t end = std::min(range.end, canonical + std::max(e.train_begin, e.train_end));
    if (begin < end) {
      segments.push_back({e.offset + (begin - canonical), begin - range.begin, end - begin, e.kind});
    }
    canonical += e.numel;
    if (canonical >= range.end) break;
  }
  return segments;
}

int64_t segment_values(const std::vector<UpdateSegment>& segments) {
  int64_t n = 0;
  for (const UpdateSegment& s : segments) n += s.count;
  return n;
}

void pack_segments(const std::vector<UpdateSegment>& segments, const float* padded, float* packed) {
  for (const UpdateSegment& s : segments) {
    std::memcpy(packed, padded + s.param_offset, s.count * sizeof(float));
    packed += s.count;
  }
}

void unpack_segments(const std::vector<UpdateSegment>& segments, const float* packed, float* padded) {
  for (const UpdateSegment& s : segments) {
    std::memcpy(padded + s.param_offset, packed, s.count * sizeof(float));
    packed += s.count;
  }
}

Zero1Blocks zero1_blocks(const ParamLayout& layout, int world) {
  Zero1Blocks blocks;
  for (int r = 0; r < world; ++r) {
    blocks.segments.push_back(shard_update_segments(layout, zero1_shard_range(layout, r, world)));
    blocks.block = std::max(blocks.block, segment_values(blocks.segments.back()));
  }
  return blocks;
}

Zero1Exchange::Zero1Exchange(const ParamLayout& layout, Communicator& comm)
    : comm_(comm), shard_(zero1_shard_range(layout, comm.rank(), comm.size())),
      blocks_(zero1_blocks(layout, comm.size())) {
  staging_.assign(static_cast<size_t>(blocks_.block) * comm.size(), 0.0f);
  received_.assign(static_cast<size_t>(blocks_.block), 0.0f);
}

void Zero1Exchange::reduce_scatter_gradients(Model& model) {
  // Block r ← shard r's trainable gradients; the padding past them stays zero (set once).
  for (int r = 0; r < comm_.size(); ++r)
    pack_segments(blocks_.segments[r], model.grad_data(), staging_.data() + r * blocks_.block);
  comm_.reduce_scatter(staging_.data(), received_.data(), blocks_.block, ReduceOp::kSum);
  unpack_segments(blocks_.segments[comm_.rank()], received_.data(), model.grad_data());
}

double Zero1Exchange::grad_norm(const Model& model) {
  double sum = 0.0;
  for (const UpdateSegment& s : blocks_.segments[comm_.rank()])
    sum += ops::sum_of_squares(model.grad_data() + s.param_offset, s.count);
  comm_.all_reduce(&sum, 1, ReduceOp::kSum);
  return std::sqrt(sum);
}

void Zero1Exchange::all_gather_parameters(Model& model) {
  float* mine = staging_.data() + comm_.rank() * blocks_.block;
  pack_segments(blocks_.segments[comm_.rank()], model.param_data(), mine);
  comm_.all_gather(mine, staging_.data(), blocks_.block);  // in place: `mine` is this rank's block
  for (int r = 0; r < comm_.size(); ++r) {
    if (r != comm_.rank())
      unpack_segments(blocks_.segments[r], staging_.data() + r * blocks_.block, model.param_data());
  }
}

}  // namespace reclm
