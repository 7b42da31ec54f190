// Which user a training sample reads and which part of the user's history it sees
// (data/rec_source.h): the per-epoch visiting order and RecSysLLM's history windows.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/rng.h"

namespace reclm {

// The visiting order of `n` training users in `epoch`: a Fisher–Yates permutation of [0, n) drawn
// from CounterRng(seed, kDataSample, step = epoch, rank = kEpochOrderLane, sample = 0). The lane
// keeps this stream apart from the per-sample streams (rank 0, sample = global sample index).
inline constexpr uint32_t kEpochOrderLane = 1;
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch);

// RecSysLLM history sampling. A window [begin, end) of a training prefix of n ≥ 1 items:
//   term   long / medium / short with probability 10 / 30 / 60%  → length 50 / 20 / 5
//   end    uniform in [min(2, n), n]: the window always holds at least two items when the
//          prefix has two (one to predict from, one to predict)
//   begin  max(0, end − length): the `length` items just before the end point
// Two draws from `rng`, in that order.
struct HistoryWindow {
  int32_t begin = 0;
  int32_t end = 0;
};
inline constexpr int32_t kLongTermItems = 50;
inline constexpr int32_t kMediumTermItems = 20;
inline constexpr int32_t kShortTermItems = 5;
HistoryWindow sample_history_window(int32_t n, CounterRng& rng);

}  // namespace reclm
