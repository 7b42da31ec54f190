// Warp intrinsics on the emulator: shuffles (all four, every width), votes and reductions
// against the CUDA Programming Guide's rules computed on the host; partial and divergent warps;
// a warp collective waits for its own warp only; and the errors for masks a GPU would hang on.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "simt/simt_test_util.h"
#include "thrown_message.h"

namespace reclm::simt {
namespace {

using testing::deterministic;

struct WarpResults {
  int idx, up, down, xor_, ballot, any, all, sum, min, max;
};

// Every lane of every warp: the four shuffles of its value at `width`, and the votes and
// reductions of (value > 0). blockDim.x a multiple of 32.
__global__ void warp_ops_kernel(const int* in, int width, WarpResults* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x % 32;
  const int v = in[i];
  const unsigned full = 0xffffffffu;
  WarpResults r;
  r.idx = __shfl_sync(full, v, (lane * 7 + 3) % 32, width);  // per-lane sources, some >= width
  r.up = __shfl_up_sync(full, v, 3, width);
  r.down = __shfl_down_sync(full, v, 5, width);
  r.xor_ = __shfl_xor_sync(full, v, 5, width);
  r.ballot = static_cast<int>(__ballot_sync(full, v > 0));
  r.any = __any_sync(full, v > 40);
  r.all = __all_sync(full, v > -95);
  r.sum = __reduce_add_sync(full, v);
  r.min = __reduce_min_sync(full, v);
  r.max = __reduce_max_sync(full, static_cast<unsigned>(v + 100)) - 100;
  out[i] = r;
}

// The documented rules: lanes form segments of `width`; a source outside the caller's segment
// (up/down) or in a later segment (xor) yields the caller's own value; idx wraps modulo width.
WarpResults reference_lane(const std::vector<int>& warp, int lane, int width) {
  const int start = lane / width * width;
  WarpResults r{};
  r.idx = warp[start + ((lane * 7 + 3) % 32) % width];
  r.up = lane - 3 >= start ? warp[lane - 3] : warp[lane];
  r.down = lane + 5 < start + width ? warp[lane + 5] : warp[lane];
  r.xor_ = (lane ^ 5) < start + width ? warp[lane ^ 5] : warp[lane];
  unsigned ballot = 0;
  r.any = 0;
  r.all = 1;
  r.sum = 0;
  r.min = warp[0];
  r.max = warp[0];
  for (int l = 0; l < 32; ++l) {
    if (warp[l] > 0) ballot |= 1u << l;
    r.any |= warp[l] > 40;
    r.all &= warp[l] > -95;
    r.sum += warp[l];
    r.min = std::min(r.min, warp[l]);
    r.max = std::max(r.max, warp[l]);
  }
  r.ballot = static_cast<int>(ballot);
  return r;
}

TEST(SimtWarpOps, ShufflesVotesAndReductionsFollowCudaRulesAtEveryWidth) {
  const unsigned blocks = 3, threads = 96;
  const std::vector<int> in = testing::random_ints(blocks * threads, 31, -100, 100);
  DeviceBuffer<int> d_in(in);
  for (int width : {32, 16, 8, 4, 2, 1}) {
    DeviceBuffer<WarpResults> d_out(in.size());
    launch(warp_ops_kernel, dim3(blocks), dim3(threads), 0, nullptr, d_in.data(), width, d_out.data());
    const std::vector<WarpResults> out = d_out.download();
    for (std::size_t w = 0; w < in.size() / 32; ++w) {
      const std::vector<int> warp(in.begin() + w * 32, in.begin() + w * 32 + 32);
      for (int lane = 0; lane < 32; ++lane) {
        const WarpResults& got = out[w * 32 + lane];
        const WarpResults want = reference_lane(warp, lane, width);
        SCOPED_TRACE(::testing::Message() << "width " << width << " warp " << w << " lane " << lane);
        EXPECT_EQ(got.idx, want.idx);
        EXPECT_EQ(got.up, want.up);
        EXPECT_EQ(got.down, want.down);
        EXPECT_EQ(got.xor_, want.xor_);
        EXPECT_EQ(got.ballot, want.ballot);
        EXPECT_EQ(got.any, want.any);
        EXPECT_EQ(got.all, want.all);
        EXPECT_EQ(got.sum, want.sum);
        EXPECT_EQ(got.min, want.min);
        EXPECT_EQ(got.max, want.max);
      }
    }
  }
}

// out[i] = sum of in over the existing lanes of i's warp, for any blockDim: the last warp of a
// block whose size is not a multiple of 32 names only its existing lanes in the mask.
__global__ void partial_warp_sum_kernel(const float* in, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int warp_first = threadIdx.x / 32 * 32;
  const int lanes = min(32, static_cast<int>(blockDim.x) - warp_first);
  const unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
  float sum = in[i];
  for (int offset = 1; offset < 32; offset *= 2) {
    const float other = __shfl_xor_sync(mask, sum, offset);
    // A partner beyond the warp's last lane is outside the mask: its value is undefined.
    if ((threadIdx.x % 32 ^ offset) < static_cast<unsigned>(lanes)) sum += other;
  }
  out[i] = sum;
}

TEST(SimtWarpOps, PartialLastWarpWithExactMask) {
  const unsigned blocks = 2, threads = 48;  // warp 1 of each block has 16 lanes
  const std::vector<float> in = testing::random_floats(blocks * threads, 33);
  DeviceBuffer<float> d_in(in), d_out(in.size());
  launch(partial_warp_sum_kernel, dim3(blocks), dim3(threads), 0, nullptr, d_in.data(), d_out.data());
  const std::vector<float> out = d_out.download();
  for (unsigned i = 0; i < in.size(); ++i) {
    const unsigned first = i / threads * threads + (i % threads) / 32 * 32;
    const unsigned last = std::min(first + 32, i / threads * threads + threads);
    double sum = 0.0;
    for (unsigned j = first; j < last; ++j) sum += in[j];
    EXPECT_NEAR(out[i], sum, 1e-5) << i;
  }
}

// Warps of a 2D block follow the linear thread index x + y * blockDim.x: in a 16 x 6 block,
// warp w is rows 2w and 2w+1. out[t] = (threadIdx of lane 0 of t's warp, lane 17's y).
__global__ void warps_of_2d_block_kernel(int* out) {
  const int t = threadIdx.x + threadIdx.y * blockDim.x;
  out[3 * t] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
  out[3 * t + 1] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.y), 0);
  out[3 * t + 2] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.y), 17);
}

TEST(SimtWarpOps, WarpsOf2dBlockFollowLinearThreadIndex) {
  DeviceBuffer<int> out(3 * 96);
  launch(warps_of_2d_block_kernel, dim3(1), dim3(16, 6), 0, nullptr, out.data());
  const std::vector<int> got = out.download();
  for (int t = 0; t < 96; ++t) {
    const int warp = t / 32;
    EXPECT_EQ(got[3 * t], 0) << t;
    EXPECT_EQ(got[3 * t + 1], 2 * warp) << t;
    EXPECT_EQ(got[3 * t + 2], 2 * warp + 1) << t;
  }
}

// The two halves of each warp take different branches and shuffle within their own half.
__global__ void divergent_halves_kernel(const int* in, int* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x % 32;
  if (lane < 16) {
    out[i] = __shfl_sync(0x0000ffffu, in[i], 15 - lane);
  } else {
    out[i] = __shfl_down_sync(0xffff0000u, in[i], 1) * 1000;
  }
}

TEST(SimtWarpOps, DivergentHalvesShuffleIndependently) {
  const std::vector<int> in = testing::random_ints(64, 34, -50, 50);
  DeviceBuffer<int> d_in(in), d_out(in.size());
  launch(divergent_halves_kernel, dim3(1), dim3(64), 0, nullptr, d_in.data(), d_out.data());
  const std::vector<int> out = d_out.download();
  for (int i = 0; i < 64; ++i) {
    const int lane = i % 32, base = i / 32 * 32;
    const int want = lane < 16 ? in[base + 15 - lane] : in[lane == 31 ? i : i + 1] * 1000;
    EXPECT_EQ(out[i], want) << i;
  }
}

// Tickets from one counter before and after a shuffle show the order threads passed it.
// kBlockBarrierFirst adds a __syncthreads before the shuffle: what a block-wide shuffle would do.
template <bool kBlockBarrierFirst>
__global__ void shuffle_tickets_kernel(int* counter, int* before, int* after, int* exchanged) {
  const int t = threadIdx.x;
  before[t] = atomicAdd(counter, 1);
  if (kBlockBarrierFirst) __syncthreads();
  exchanged[t] = __shfl_xor_sync(0xffffffffu, t, 1);
  after[t] = atomicAdd(counter, 1);
}

// For how many of seeds 1..3 some lane took its "after" ticket before another lane (of the
// other warp) took its "before" ticket.
template <bool kBlockBarrierFirst>
int seeds_where_a_warp_overtakes() {
  int seeds_with_overtaking = 0;
  for (std::uint64_t seed : {1, 2, 3}) {
    ScopedEmulatorOptions options(deterministic(seed));
    DeviceBuffer<int> counter(std::vector<int>{0}), before(64), after(64), exchanged(64);
    launch(shuffle_tickets_kernel<kBlockBarrierFirst>, dim3(1), dim3(64), 0, nullptr, counter.data(), before.data(),
           after.data(), exchanged.data());
    const std::vector<int> b = before.download(), a = after.download(), x = exchanged.download();
    for (int t = 0; t < 64; ++t) EXPECT_EQ(x[t], t ^ 1);
    for (int warp = 0; warp < 2; ++warp) {
      const auto lanes_before = std::vector<int>(b.begin() + 32 * warp, b.begin() + 32 * warp + 32);
      const auto lanes_after = std::vector<int>(a.begin() + 32 * warp, a.begin() + 32 * warp + 32);
      // Within a warp the shuffle is a rendezvous: no lane leaves before all have arrived.
      EXPECT_LT(*std::max_element(lanes_before.begin(), lanes_before.end()),
                *std::min_element(lanes_after.begin(), lanes_after.end()));
    }
    const int last_before = *std::max_element(b.begin(), b.end());
    const int first_after = *std::min_element(a.begin(), a.end());
    if (first_after < last_before) ++seeds_with_overtaking;
  }
  return seeds_with_overtaking;
}

TEST(SimtWarpOps, ShuffleWaitsForItsOwnWarpOnly) {
  // Two warps. Were a shuffle to wait for the whole block, every "after" ticket would follow
  // every "before" ticket, as it does with a block barrier in front of the shuffle. Waiting
  // for its own warp only, one warp gets through while the other has not arrived.
  EXPECT_GE(seeds_where_a_warp_overtakes<false>(), 1);
  EXPECT_EQ(seeds_where_a_warp_overtakes<true>(), 0);
}

// Each lane writes its slot of a per-warp shared array and reads its neighbour's; correct with
// __syncwarp between the write and the read, a race without it.
template <bool kSyncWarp>
__global__ void neighbour_through_shared_kernel(const float* in, float* out) {
  RECLM_SHARED(float, slots, [64]);
  const int t = threadIdx.x;
  slots[t] = in[t];
  if (kSyncWarp) __syncwarp();
  out[t] = slots[t / 32 * 32 + (t + 1) % 32];
}

TEST(SimtWarpOps, MissingSyncwarpIsCaughtUnderSomeSeed) {
  const std::vector<float> in = testing::random_floats(64, 35);
  int wrong_seeds = 0;
  for (std::uint64_t seed : {1, 2, 3}) {
    ScopedEmulatorOptions options(deterministic(seed));
    for (bool sync : {true, false}) {
      DeviceBuffer<float> d_in(in), d_out(64);
      launch(sync ? neighbour_through_shared_kernel<true> : neighbour_through_shared_kernel<false>, dim3(1), dim3(64),
             0, nullptr, d_in.data(), d_out.data());
      const std::vector<float> out = d_out.download();
      bool right = true;
      for (int t = 0; t < 64; ++t) right = right && out[t] == in[t / 32 * 32 + (t + 1) % 32];
      if (sync) {
        EXPECT_TRUE(right) << "seed " << seed;
      } else if (!right) {
        ++wrong_seeds;
      }
    }
  }
  EXPECT_GE(wrong_seeds, 1);
}

__global__ void mask_without_caller_kernel(int* out) {
  const int lane = threadIdx.x % 32;
  out[threadIdx.x] = __shfl_sync(lane == 5 ? 0xffffffdfu : 0xffffffffu, lane, 0);
}

__global__ void full_mask_in_partial_warp_kernel(int* out) { out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0); }

__global__ void lane_exits_before_shuffle_kernel(int* out) {
  if (threadIdx.x == 7) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
}

__global__ void lanes_disagree_on_op_kernel(int* out) {
  if (threadIdx.x % 2 == 0) {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  } else {
    out[threadIdx.x] = static_cast<int>(__ballot_sync(0xffffffffu, 1));
  }
}

__global__ void bad_width_kernel(int* out) { out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0, 12); }

std::string misuse_message(void (*kernel)(int*), unsigned threads) {
  DeviceBuffer<int> out(64);
  return thrown_message<InternalError>([&] { launch(kernel, dim3(2), dim3(threads), 0, nullptr, out.data()); });
}

TEST(SimtWarpOps, MasksAGpuWouldHangOnThrow) {
  EXPECT_NE(misuse_message(mask_without_caller_kernel, 32).find("which excludes the calling lane"), std::string::npos);
  EXPECT_NE(misuse_message(full_mask_in_partial_warp_kernel, 40).find("names lanes that do not exist"),
            std::string::npos);
  const std::string exited = misuse_message(lane_exits_before_shuffle_kernel, 32);
  EXPECT_TRUE(exited.find("have exited") != std::string::npos || exited.find("exited while lanes") != std::string::npos)
      << exited;
  EXPECT_NE(misuse_message(lanes_disagree_on_op_kernel, 32).find("must agree on op, mask and width"),
            std::string::npos);
  EXPECT_NE(misuse_message(bad_width_kernel, 32).find("width 12"), std::string::npos);
}

}  // namespace
}  // namespace reclm::simt
