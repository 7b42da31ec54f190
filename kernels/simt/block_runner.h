// One thread block of the SIMT emulator: its threads as fibers on one OS thread, the block
// barrier, the warp collectives and the block's shared memory. kernels/simt/cuda_compat.h
// states the model; this header is the emulator's inside, used by its intrinsics and launcher.
//
// Invariants, for a block of n = blockDim.x * blockDim.y * blockDim.z threads:
//   - thread t (linear index x + y*X + z*X*Y, CUDA's order) is fiber t; warp w holds threads
//     32w .. 32w+31, lane = t % 32. A warp of the last, partial group has fewer lanes.
//   - fiber t lives as long as the runner: it runs the kernel once per block and parks after
//     (state "exited") until the next block; an error destroys the fibers, the next block
//     makes new ones.
//   - exactly one fiber runs at a time; it runs until it exits, waits (block barrier, warp
//     collective) or yields (atomics, fences), then the scheduler resumes a ready fiber picked
//     at random (seeded per block).
//   - a thread is in one state: ready (in `ready_`), at the block barrier, in a warp collective,
//     or exited. The block ends when all have exited; if no thread is ready before that, the
//     block is stuck (a barrier some threads never reach, a collective waiting for an exited
//     lane), which a GPU would hang on: the runner throws InternalError naming the threads.
#pragma once

#include <boost/context/fiber.hpp>
#include <vector_types.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

namespace reclm::simt {

inline constexpr int kWarpSize = 32;
inline constexpr unsigned char kPoisonByte = 0xFF;  // float/double/bf16/half: NaN; ints: -1

// A kernel with its arguments, type-erased by launch(): entry(payload) runs the kernel body for
// the current thread.
struct KernelCall {
  void (*entry)(const void* payload);
  const void* payload;
};

enum class ThreadState : std::uint8_t { kReady, kAtBarrier, kInWarpCollective, kExited };

// The warp collectives, all implemented by one rendezvous (BlockRunner::warp_collective).
enum class WarpOp : std::uint8_t {
  kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncWarp,
  kReduceAdd, kReduceMinUnsigned, kReduceMaxUnsigned, kReduceMinSigned, kReduceMaxSigned,
  kWarpCompute,  // tensor-core ops (kernels/simt/tensor_core.h): a function of all lanes' data
};

// For WarpOp::kWarpCompute: called once, by the last lane to arrive, with each lane's
// `lane_data` pointer (null for lanes outside `mask`). Every lane of the mask is parked inside
// the collective meanwhile, so the data it points to (on the lanes' stacks) is stable.
using WarpComputeFn = void (*)(void* const* lane_data, unsigned mask);
const char* warp_op_name(WarpOp op);

class BlockRunner;

// One cp.async (kernels/simt/async_copy.h): 16 bytes to shared memory, of which `src_bytes`
// come from `src` and the rest are zeros. The emulator performs it only when the issuing
// thread waits for its group (or exits), so a read before the wait sees the old contents.
struct AsyncCopy {
  void* dst;
  const void* src;
  int src_bytes;
  int group;  // commit-group number, or -1 while not committed
};

// What the kernel body sees of its thread (threadIdx, ...) and what the scheduler keeps of it.
struct ThreadContext {
  uint3 thread_idx;
  int linear = 0;  // x + y*blockDim.x + z*blockDim.x*blockDim.y
  ThreadState state = ThreadState::kReady;
  int barrier_count = 0;      // __syncthreads_count's result, set when the barrier releases
  std::uint64_t warp_in = 0;  // this lane's operand of the collective it waits in (bits of T)
  std::uint64_t warp_out = 0; // its result, written by the lane that completes the collective
  unsigned warp_arg = 0;      // srcLane / delta / laneMask
  std::vector<AsyncCopy> async_copies;  // cp.async issued and not yet waited for
  int async_groups_committed = 0;
  boost::context::fiber self;       // the thread, while suspended
  boost::context::fiber scheduler;  // the scheduler, while the thread runs
  BlockRunner* block = nullptr;
};

// The thread whose fiber runs on this OS thread; null outside a kernel.
inline thread_local ThreadContext* tls_current_thread = nullptr;

// A warp collective some lanes of `mask` have reached and the rest have not.
struct PendingWarpCollective {
  unsigned mask = 0;
  unsigned arrived = 0;
  WarpOp op = WarpOp::kSyncWarp;
  int width = kWarpSize;
  WarpComputeFn compute = nullptr;
};

// Runs blocks of one launch, one after another, on the OS thread that owns it. Owns the fiber
// stacks (blockDim of them) and the dynamic shared memory for its whole life.
class BlockRunner {
 public:
  BlockRunner(const KernelCall& call, dim3 grid_dim, dim3 block_dim, std::size_t dynamic_shared_bytes,
              std::uint64_t seed);
  ~BlockRunner();
  BlockRunner(const BlockRunner&) = delete;
  BlockRunner& operator=(const BlockRunner&) = delete;

  // Runs block `block_idx` (linear index `block_linear`, which also seeds its schedule) to the
  // end; throws what a thread threw, or InternalError for a stuck block.
  void run(uint3 block_idx, std::uint64_t block_linear);

  // Called by the running thread (the intrinsics):
  int barrier(int predicate);  // __syncthreads: returns the number of threads with predicate != 0
  void yield();                // a scheduling point: another ready thread may run first
  std::uint64_t warp_collective(WarpOp op, unsigned mask, std::uint64_t value, unsigned arg, int width,
                                WarpComputeFn compute = nullptr);
  unsigned char* dynamic_shared() { return dynamic_shared_.data(); }
  std::size_t dynamic_shared_bytes() const { return dynamic_shared_.size(); }

  const uint3& block_idx() const { return block_idx_; }
  const dim3& block_dim() const { return block_dim_; }
  const dim3& grid_dim() const { return grid_dim_; }

 private:
  void start_threads();
  void on_thread_exit(ThreadContext& thread);
  void suspend(ThreadContext& thread);  // back to the scheduler until resumed
  void make_ready(int thread) { ready_.push_back(thread); }
  int pick_ready();                     // removes and returns a random ready thread
  void complete_warp_collective(int warp, const PendingWarpCollective& collective);
  std::string describe_thread(const ThreadContext& thread) const;
  std::string describe_first(ThreadState state) const;  // the first thread in `state`
  std::string describe_stuck_block() const;
  void fail(std::exception_ptr error);  // first error wins; the block stops at the next switch

  KernelCall call_;
  dim3 grid_dim_, block_dim_;
  uint3 block_idx_{};
  int n_threads_;
  int n_warps_;
  std::uint64_t seed_;
  std::uint64_t rng_state_ = 0;
  std::vector<ThreadContext> threads_;
  std::vector<boost::context::stack_context> stacks_;
  std::vector<int> ready_;
  int n_exited_ = 0;
  int n_at_barrier_ = 0;
  int barrier_count_ = 0;
  std::vector<std::vector<PendingWarpCollective>> pending_;  // per warp, disjoint masks
  std::vector<unsigned> exited_lanes_;                         // per warp
  std::vector<unsigned char> dynamic_shared_;
  std::exception_ptr error_;
};

// "(x,y,z)", for messages.
std::string format_index(const uint3& index);

// The running thread; throws InternalError outside a kernel launched by reclm::simt::launch.
[[noreturn]] ThreadContext& current_thread_slow();
inline ThreadContext& current_thread() {
  ThreadContext* thread = tls_current_thread;
  return thread ? *thread : current_thread_slow();
}

// Atomics and fences are scheduling points: they interleave threads between barriers (so the
// order of atomics varies with the seed) and let a spin loop on an atomic make progress.
inline void atomic_scheduling_point() { current_thread().block->yield(); }

// "thread (x,y,z) of block (x,y,z)" for the running thread, for messages.
std::string describe_current_thread();

// __trap(): throws InternalError naming the thread (a GPU aborts the kernel with an error).
[[noreturn]] void trap_called();

// RECLM_SHARED: fills [data, data+bytes) with kPoisonByte the first time a thread of the
// running block reaches the declaration, so every block starts from poison (see cuda_compat.h).
void poison_shared_at_block_start(void* data, std::size_t bytes);

// Performs the cp.async copies `thread` has not waited for (at its exit: they still land).
void finish_async_copies(ThreadContext& thread);

// Whether [data, data+bytes) lies in the running block's shared memory: its dynamic shared
// memory or a RECLM_SHARED variable reached so far on this OS thread.
bool is_block_shared_memory(const void* data, std::size_t bytes);

}  // namespace reclm::simt
