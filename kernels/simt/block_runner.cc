#include "kernels/simt/block_runner.h"

#include <fmt/format.h>

#include <cstring>
#include <utility>

#include "kernels/simt/fiber_stacks.h"
#include "kernels/simt/usage_error.h"

namespace reclm::simt {
namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// RECLM_SHARED variables seen on this OS thread, with the block (epoch) that last poisoned them.
struct SharedVariable {
  void* data;
  std::size_t bytes;
  std::uint64_t epoch;
};
thread_local std::vector<SharedVariable> tls_shared_variables;
thread_local std::uint64_t tls_block_epoch = 0;  // bumped at each block start on this OS thread

}  // namespace

std::string format_index(const uint3& i) { return fmt::format("({},{},{})", i.x, i.y, i.z); }

const char* warp_op_name(WarpOp op) {
  switch (op) {
    case WarpOp::kShflIdx: return "__shfl_sync";
    case WarpOp::kShflUp: return "__shfl_up_sync";
    case WarpOp::kShflDown: return "__shfl_down_sync";
    case WarpOp::kShflXor: return "__shfl_xor_sync";
    case WarpOp::kBallot: return "__ballot_sync";
    case WarpOp::kAny: return "__any_sync";
    case WarpOp::kAll: return "__all_sync";
    case WarpOp::kSyncWarp: return "__syncwarp";
    case WarpOp::kReduceAdd: return "__reduce_add_sync";
    case WarpOp::kReduceMinUnsigned:
    case WarpOp::kReduceMinSigned: return "__reduce_min_sync";
    case WarpOp::kReduceMaxUnsigned:
    case WarpOp::kReduceMaxSigned: return "__reduce_max_sync";
    case WarpOp::kWarpCompute: return "a tensor-core op (mma/ldmatrix)";
  }
  return "?";
}

ThreadContext& current_thread_slow() {
  throw_usage_error("a device intrinsic (threadIdx, __syncthreads, a shuffle, ...) was used outside a kernel "
                    "launched by reclm::simt::launch");
}

void trap_called() { throw_usage_error(fmt::format("{} called __trap()", describe_current_thread())); }

std::string describe_current_thread() {
  const ThreadContext& thread = current_thread();
  return fmt::format("thread {} of block {}", format_index(thread.thread_idx), format_index(thread.block->block_idx()));
}

void poison_shared_at_block_start(void* data, std::size_t bytes) {
  (void)current_thread();  // only inside a kernel
  for (SharedVariable& variable : tls_shared_variables) {
    if (variable.data == data) {
      if (variable.epoch != tls_block_epoch) {
        std::memset(data, kPoisonByte, bytes);
        variable.epoch = tls_block_epoch;
      }
      return;
    }
  }
  std::memset(data, kPoisonByte, bytes);
  tls_shared_variables.push_back({data, bytes, tls_block_epoch});
}

bool is_block_shared_memory(const void* data, std::size_t bytes) {
  const auto inside = [&](const void* base, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    const auto* b = static_cast<const unsigned char*>(base);
    return p >= b && p + bytes <= b + size;
  };
  ThreadContext& thread = current_thread();
  if (inside(thread.block->dynamic_shared(), thread.block->dynamic_shared_bytes())) return true;
  for (const SharedVariable& variable : tls_shared_variables) {
    if (inside(variable.data, variable.bytes)) return true;
  }
  return false;
}

BlockRunner::BlockRunner(const KernelCall& call, dim3 grid_dim, dim3 block_dim,
                         std::size_t dynamic_shared_bytes, std::uint64_t seed)
    : call_(call),
      grid_dim_(grid_dim),
      block_dim_(block_dim),
      n_threads_(static_cast<int>(block_dim.x * block_dim.y * block_dim.z)),
      n_warps_((n_threads_ + kWarpSize - 1) / kWarpSize),
      seed_(seed),
      threads_(n_threads_),
      pending_(n_warps_),
      exited_lanes_(n_warps_),
      dynamic_shared_(dynamic_shared_bytes) {
  stacks_.reserve(n_threads_);
  try {
    for (int t = 0; t < n_threads_; ++t) stacks_.push_back(acquire_fiber_stack());
  } catch (...) {
    for (const auto& stack : stacks_) release_fiber_stack(stack);
    throw;
  }
  ready_.reserve(n_threads_);
  for (int t = 0; t < n_threads_; ++t) {
    ThreadContext& thread = threads_[t];
    thread.linear = t;
    thread.thread_idx = uint3{t % block_dim.x, (t / block_dim.x) % block_dim.y,
                              t / (block_dim.x * block_dim.y)};
    thread.block = this;
  }
}

BlockRunner::~BlockRunner() {
  for (ThreadContext& thread : threads_) {
    tls_current_thread = &thread;
    thread.self = {};  // unwinds the parked fiber
  }
  tls_current_thread = nullptr;
  for (const auto& stack : stacks_) release_fiber_stack(stack);
}

void BlockRunner::start_threads() {
  for (int t = 0; t < n_threads_; ++t) {
    ThreadContext* thread = &threads_[t];
    thread->state = ThreadState::kReady;
    thread->async_copies.clear();  // left over only when the previous block failed
    thread->async_groups_committed = 0;
    ready_.push_back(t);
    if (thread->self) continue;  // parked after its previous block: resuming runs this block
    // One fiber per thread slot for the runner's life: it runs the kernel once per block and
    // parks in between, so a block costs no fiber creation. After an error the fibers are
    // destroyed (unwound) and made afresh here.
    thread->self = boost::context::fiber(
        std::allocator_arg, BorrowedFiberStack{stacks_[t]},
        [thread](boost::context::fiber&& scheduler) {
          thread->scheduler = std::move(scheduler);
          for (;;) {
            try {
              thread->block->call_.entry(thread->block->call_.payload);
            } catch (const boost::context::detail::forced_unwind&) {
              throw;  // the fiber is being destroyed: let Boost unwind it
            } catch (...) {
              thread->block->fail(std::current_exception());
            }
            thread->block->on_thread_exit(*thread);
            thread->block->suspend(*thread);  // until the next block
          }
          return std::move(thread->scheduler);  // not reached: parked fibers end by unwinding
        });
  }
}

void BlockRunner::run(uint3 block_idx, std::uint64_t block_linear) {
  block_idx_ = block_idx;
  std::uint64_t mix = seed_ ^ (block_linear * 0xD1B54A32D192ED03ull);
  rng_state_ = splitmix64(mix);
  n_exited_ = 0;
  n_at_barrier_ = 0;
  barrier_count_ = 0;
  error_ = nullptr;
  for (int w = 0; w < n_warps_; ++w) {
    pending_[w].clear();
    exited_lanes_[w] = 0;
  }
  ++tls_block_epoch;  // RECLM_SHARED variables are re-poisoned when first reached in this block
  std::memset(dynamic_shared_.data(), kPoisonByte, dynamic_shared_.size());
  start_threads();

  while (!ready_.empty() && !error_) {
    ThreadContext& thread = threads_[pick_ready()];
    tls_current_thread = &thread;
    thread.self = std::move(thread.self).resume();
    tls_current_thread = nullptr;
  }
  if (!error_ && n_exited_ != n_threads_) {
    error_ = std::make_exception_ptr(InternalError("simt: " + describe_stuck_block()));
  }
  if (error_) {
    // Destroying a suspended fiber unwinds its stack (Boost throws forced_unwind inside it).
    ready_.clear();
    for (ThreadContext& thread : threads_) {
      tls_current_thread = &thread;
      thread.self = {};
    }
    tls_current_thread = nullptr;
    std::rethrow_exception(error_);
  }
}

int BlockRunner::pick_ready() {
  // Lemire's multiply-shift maps 32 random bits onto [0, size) without a division.
  const std::uint64_t r = splitmix64(rng_state_) >> 32;
  const std::size_t k = static_cast<std::size_t>((r * ready_.size()) >> 32);
  const int thread = ready_[k];
  ready_[k] = ready_.back();
  ready_.pop_back();
  return thread;
}

void BlockRunner::suspend(ThreadContext& thread) {
  thread.scheduler = std::move(thread.scheduler).resume();
}

void BlockRunner::fail(std::exception_ptr error) {
  if (!error_) error_ = std::move(error);
}

std::string BlockRunner::describe_thread(const ThreadContext& thread) const {
  return fmt::format("thread {} (warp {}, lane {}) of block {}", format_index(thread.thread_idx),
                     thread.linear / kWarpSize, thread.linear % kWarpSize, format_index(block_idx_));
}

std::string BlockRunner::describe_first(ThreadState state) const {
  for (const ThreadContext& thread : threads_) {
    if (thread.state == state) return describe_thread(thread);
  }
  return "none";
}

void BlockRunner::yield() {
  ThreadContext& thread = current_thread();
  make_ready(thread.linear);
  suspend(thread);
}

int BlockRunner::barrier(int predicate) {
  ThreadContext& thread = current_thread();
  thread.state = ThreadState::kAtBarrier;
  ++n_at_barrier_;
  barrier_count_ += predicate != 0;
  // Exited threads never count as arrived: a barrier not reached by every thread is undefined
  // on a GPU, and the stuck-block check reports it once no thread can run.
  if (n_at_barrier_ == n_threads_) {
    for (ThreadContext& waiting : threads_) {
      waiting.state = ThreadState::kReady;
      waiting.barrier_count = barrier_count_;
      make_ready(waiting.linear);
    }
    n_at_barrier_ = 0;
    barrier_count_ = 0;
  }
  suspend(thread);
  return thread.barrier_count;
}

void BlockRunner::on_thread_exit(ThreadContext& thread) {
  finish_async_copies(thread);
  thread.state = ThreadState::kExited;
  ++n_exited_;
  const int warp = thread.linear / kWarpSize;
  const unsigned lane_bit = 1u << (thread.linear % kWarpSize);
  exited_lanes_[warp] |= lane_bit;
  for (const PendingWarpCollective& pending : pending_[warp]) {
    if (pending.mask & lane_bit) {
      fail(std::make_exception_ptr(InternalError(
          fmt::format("simt: {} exited while lanes 0x{:08x} of its warp wait for it in {}(mask=0x{:08x})",
                      describe_thread(thread), pending.arrived, warp_op_name(pending.op), pending.mask))));
    }
  }
}

}  // namespace reclm::simt
