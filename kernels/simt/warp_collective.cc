// The warp rendezvous behind every warp intrinsic (kernels/simt/warp_ops.h).
//
// A lane entering a collective records its operand and waits, until every lane named in `mask`
// has entered a collective with the same op, mask and width; the last lane to arrive computes
// all results and makes the waiting lanes ready. Only the lanes of that one warp wait: the
// other warps of the block run on, as they may on a GPU, so a race between warps that only a
// block barrier would order still shows. Lanes of one warp may wait in collectives with
// disjoint masks at the same time (divergent halves of a warp, Volta+ semantics).
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/simt/block_runner.h"
#include "kernels/simt/usage_error.h"

namespace reclm::simt {
namespace {

constexpr std::uint64_t kPoisonBits = ~std::uint64_t{0};

// The lane whose operand `lane` receives, or `lane` itself where CUDA returns the caller's own
// value. Segments of `width` lanes: shuffles stay in the caller's segment, except that an xor
// may reach lanes of an earlier segment (CUDA Programming Guide, "Warp Shuffle Functions").
int shuffle_source(WarpOp op, int lane, unsigned arg, int width) {
  const int segment_start = lane & ~(width - 1);
  const int segment_last = segment_start + width - 1;
  switch (op) {
    case WarpOp::kShflIdx: return segment_start + static_cast<int>(arg & static_cast<unsigned>(width - 1));
    case WarpOp::kShflUp: {
      const long src = static_cast<long>(lane) - static_cast<long>(arg);
      return src < segment_start ? lane : static_cast<int>(src);
    }
    case WarpOp::kShflDown: {
      const long src = static_cast<long>(lane) + static_cast<long>(arg);
      return src > segment_last ? lane : static_cast<int>(src);
    }
    case WarpOp::kShflXor: {
      const unsigned src = static_cast<unsigned>(lane) ^ arg;
      return src > static_cast<unsigned>(segment_last) ? lane : static_cast<int>(src);
    }
    default: return lane;
  }
}

}  // namespace

std::uint64_t BlockRunner::warp_collective(WarpOp op, unsigned mask, std::uint64_t value, unsigned arg,
                                           int width, WarpComputeFn compute) {
  ThreadContext& thread = current_thread();
  const int warp = thread.linear / kWarpSize;
  const int lane = thread.linear % kWarpSize;
  const unsigned lane_bit = 1u << lane;
  const int lanes_in_warp = std::min(kWarpSize, n_threads_ - warp * kWarpSize);
  const unsigned existing = lanes_in_warp == kWarpSize ? ~0u : (1u << lanes_in_warp) - 1;

  RECLM_SIMT_CHECK(mask & lane_bit, "{} called {} with mask 0x{:08x}, which excludes the calling lane",
              describe_thread(thread), warp_op_name(op), mask);
  RECLM_SIMT_CHECK((mask & ~existing) == 0,
              "{} called {} with mask 0x{:08x}, which names lanes that do not exist (the "
              "warp has {} lanes: blockDim is not a multiple of 32)",
              describe_thread(thread), warp_op_name(op), mask, lanes_in_warp);
  RECLM_SIMT_CHECK(width >= 1 && width <= kWarpSize && (width & (width - 1)) == 0,
              "{} called {} with width {}: must be a power of 2 in [1, 32]", describe_thread(thread),
              warp_op_name(op), width);
  RECLM_SIMT_CHECK((mask & exited_lanes_[warp]) == 0,
              "{} called {} with mask 0x{:08x}, but lanes 0x{:08x} of its warp have exited",
              describe_thread(thread), warp_op_name(op), mask, mask & exited_lanes_[warp]);

  std::vector<PendingWarpCollective>& pending = pending_[warp];
  auto it = std::find_if(pending.begin(), pending.end(),
                         [&](const PendingWarpCollective& p) { return (p.mask & mask) != 0; });
  if (it == pending.end()) {
    pending.push_back({mask, 0, op, width, compute});
    it = pending.end() - 1;
  }
  RECLM_SIMT_CHECK(it->mask == mask && it->op == op && it->width == width && it->compute == compute,
              "{} called {}(mask=0x{:08x}, width={}) while lanes 0x{:08x} of its warp wait in "
              "{}(mask=0x{:08x}, width={}): the lanes of a warp collective must agree on op, mask and width",
              describe_thread(thread), warp_op_name(op), mask, width, it->arrived, warp_op_name(it->op),
              it->mask, it->width);

  thread.warp_in = value;
  thread.warp_arg = arg;
  thread.state = ThreadState::kInWarpCollective;
  it->arrived |= lane_bit;
  if (it->arrived == mask) {
    const PendingWarpCollective done = *it;
    pending.erase(it);
    complete_warp_collective(warp, done);  // makes every lane of `mask` ready, this one too
  }
  suspend(thread);
  return thread.warp_out;
}

void BlockRunner::complete_warp_collective(int warp, const PendingWarpCollective& collective) {
  ThreadContext* lanes = &threads_[warp * kWarpSize];
  const unsigned mask = collective.mask;
  if (collective.op == WarpOp::kWarpCompute) {
    void* lane_data[kWarpSize] = {};
    for (int lane = 0; lane < kWarpSize; ++lane) {
      if (mask & (1u << lane)) lane_data[lane] = reinterpret_cast<void*>(static_cast<std::uintptr_t>(lanes[lane].warp_in));
    }
    collective.compute(lane_data, mask);
  }
  unsigned predicate_bits = 0;
  std::uint64_t reduced = 0;
  bool first = true;
  for (int lane = 0; lane < kWarpSize; ++lane) {
    if (!(mask & (1u << lane))) continue;
    const std::uint64_t in = lanes[lane].warp_in;
    if (in != 0) predicate_bits |= 1u << lane;
    const auto u = static_cast<std::uint32_t>(in);
    const auto s = static_cast<std::int32_t>(u);
    switch (collective.op) {
      case WarpOp::kReduceAdd: reduced = static_cast<std::uint32_t>(reduced + u); break;
      case WarpOp::kReduceMinUnsigned: reduced = first ? u : std::min<std::uint32_t>(reduced, u); break;
      case WarpOp::kReduceMaxUnsigned: reduced = first ? u : std::max<std::uint32_t>(reduced, u); break;
      case WarpOp::kReduceMinSigned:
        reduced = static_cast<std::uint32_t>(first ? s : std::min(static_cast<std::int32_t>(reduced), s));
        break;
      case WarpOp::kReduceMaxSigned:
        reduced = static_cast<std::uint32_t>(first ? s : std::max(static_cast<std::int32_t>(reduced), s));
        break;
      default: break;
    }
    first = false;
  }
  for (int lane = 0; lane < kWarpSize; ++lane) {
    if (!(mask & (1u << lane))) continue;
    ThreadContext& thread = lanes[lane];
    switch (collective.op) {
      case WarpOp::kShflIdx:
      case WarpOp::kShflUp:
      case WarpOp::kShflDown:
      case WarpOp::kShflXor: {
        const int src = shuffle_source(collective.op, lane, thread.warp_arg, collective.width);
        // Reading a lane outside the mask is undefined on a GPU: the emulator returns poison.
        thread.warp_out = (mask & (1u << src)) ? lanes[src].warp_in : kPoisonBits;
        break;
      }
      case WarpOp::kBallot: thread.warp_out = predicate_bits; break;
      case WarpOp::kAny: thread.warp_out = predicate_bits != 0; break;
      case WarpOp::kAll: thread.warp_out = predicate_bits == mask; break;
      case WarpOp::kSyncWarp: thread.warp_out = 0; break;
      default: thread.warp_out = reduced; break;
    }
    thread.state = ThreadState::kReady;
    make_ready(thread.linear);
  }
}

std::string BlockRunner::describe_stuck_block() const {
  std::string message = fmt::format(
      "block {} is stuck (a GPU would hang): {} of {} threads exited, {} wait at __syncthreads",
      format_index(block_idx_), n_exited_, n_threads_, n_at_barrier_);
  for (int warp = 0; warp < n_warps_; ++warp) {
    for (const PendingWarpCollective& pending : pending_[warp]) {
      message += fmt::format("; warp {}: lanes 0x{:08x} wait in {}(mask=0x{:08x})", warp, pending.arrived,
                             warp_op_name(pending.op), pending.mask);
    }
  }
  if (n_at_barrier_ > 0 && n_exited_ > 0) {
    message += fmt::format(". __syncthreads() must be reached by every thread of the block; first exited: {}, "
                           "first waiting: {}",
                           describe_first(ThreadState::kExited), describe_first(ThreadState::kAtBarrier));
  }
  return message;
}

}  // namespace reclm::simt
