#include "checkpoint/canonical_order.h"

#include <algorithm>
#include <cstring>

#include "runtime/errors.h"

namespace reclm {
namespace {

// Calls fn(padded_offset, canonical_offset, count) for each tensor's overlap with `range`.
template <typename Fn>
void for_each_overlap(const ParamLayout& layout, FlatRange range, Fn fn) {
  int64_t canonical = 0;
  for (const ParamEntry& e : layout.entries()) {
    const int64_t begin = std::max(range.begin, canonical);
    const int64_t end = std::min(range.end, canonical + e.numel);
    if (begin < end) fn(e.offset + (begin - canonical), begin - range.begin, end - begin);
    canonical += e.numel;
    if (canonical >= range.end) break;
  }
}

}  // namespace

int64_t canonical_size(const ParamLayout& layout) { return layout.num_parameters(); }

FlatRange shard_range(int64_t total, int rank, int world_size) {
  RECLM_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "shard {} of {}", rank, world_size);
  return {total * rank / world_size, total * (rank + 1) / world_size};
}

void gather_canonical(const ParamLayout& layout, const float* padded, FlatRange range, float* out) {
  RECLM_CHECK(range.begin >= 0 && range.begin <= range.end && range.end <= canonical_size(layout),
              "canonical range [{}, {})", range.begin, range.end);
  for_each_overlap(layout, range, [&](int64_t padded_at, int64_t out_at, int64_t n) {
    std::memcpy(out + out_at, padded + padded_at, n * sizeof(float));
  });
}

void scatter_canonical(const ParamLayout& layout, const float* values, FlatRange range,
                       float* padded) {
  RECLM_CHECK(range.begin >= 0 && range.begin <= range.end && range.end <= canonical_size(layout),
              "canonical range [{}, {})", range.begin, range.end);
  for_each_overlap(layout, range, [&](int64_t padded_at, int64_t in_at, int64_t n) {
    std::memcpy(padded + padded_at, values + in_at, n * sizeof(float));
  });
}

}  // namespace reclm
