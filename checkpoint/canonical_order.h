// The canonical flat order of a parameter layout (checkpoint/manifest.proto): the layout's tensors
// in order, each tensor's elements row-major, no alignment padding. It names every trainable value
// independently of how a build pads or a run shards its buffers, so optimizer state saved by R
// ranks can be read back by any other number of ranks.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/param_layout.h"

namespace reclm {

// Values in the canonical order: ParamLayout::num_parameters().
int64_t canonical_size(const ParamLayout& layout);

// The range [begin, end) of the canonical order that shard `rank` of `world_size` holds:
// [rank·N/world_size, (rank+1)·N/world_size).
struct FlatRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
FlatRange shard_range(int64_t total, int rank, int world_size);

// Copies canonical range `range` of a layout-shaped (padded) buffer into `out` [range.size()].
void gather_canonical(const ParamLayout& layout, const float* padded, FlatRange range, float* out);
// The inverse: writes `values` [range.size()] into canonical range `range` of a padded buffer.
void scatter_canonical(const ParamLayout& layout, const float* values, FlatRange range,
                       float* padded);

}  // namespace reclm
