#include "data/history_sampling.h"

#include <algorithm>
#include <numeric>

#include "runtime/errors.h"

namespace reclm {

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  CounterRng rng(seed, RngPurpose::kDataSample, static_cast<uint64_t>(epoch), kEpochOrderLane, 0);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i + 1)));
    std::swap(order[i], order[j]);
  }
  return order;
}

HistoryWindow sample_history_window(int32_t n, CounterRng& rng) {
  RECLM_CHECK(n >= 1, "history window of an empty prefix");
  const float term = rng.uniform();
  const int32_t length = term < 0.1f   ? kLongTermItems
                         : term < 0.4f ? kMediumTermItems
                                       : kShortTermItems;
  const int32_t lowest_end = std::min(2, n);
  const auto end =
      lowest_end + static_cast<int32_t>(rng.below(static_cast<uint64_t>(n - lowest_end + 1)));
  return {std::max(0, end - length), end};
}

}  // namespace reclm
