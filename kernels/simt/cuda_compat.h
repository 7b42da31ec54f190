// The header every CUDA kernel source includes. Under nvcc it is the CUDA headers; under g++ it
// is the host SIMT emulator, so the same kernel runs on a machine without a GPU (DESIGN.md §4).
//
// ## How the emulator runs a kernel (g++ builds)
//
// Launch. reclm::simt::launch(kernel, grid, block, dynamic_shared_bytes, stream, args...)
//   checks the configuration as a GPU would (1..1024 threads per block, z <= 64, grid extents,
//   dynamic shared memory within the kernel's limit: 48 KiB unless raised with
//   set_max_dynamic_shared_bytes), copies the arguments once, and runs every block before it
//   returns. Blocks are spread over EmulatorOptions::worker_threads OS threads
//   (kernels/simt/emulator_options.h; env RECLM_SIMT_THREADS).
// Threads are fibers. A block runs on one OS thread; each of its threads is a Boost.Context
//   fiber on a 64 KiB pooled stack with a guard page (fiber_stacks.h). Each worker OS thread
//   creates blockDim fibers once per launch and reuses them for every block it runs (a fiber
//   parks between blocks), so neither a block nor a barrier creates fibers.
//   threadIdx/blockIdx/blockDim/gridDim read the context of the fiber that is running.
// Schedule. Exactly one fiber of a block runs at a time, until it exits or waits; the scheduler
//   then resumes a ready fiber picked at random. The pick is seeded by (EmulatorOptions::seed,
//   linear block index), so a failure replays with the same seed (env RECLM_SIMT_SEED).
//   Between two waits a thread runs alone: a missing barrier shows as threads reading data
//   that another thread has not written yet, in an order that changes with the seed.
// Block barrier. __syncthreads parks the fiber; when all threads of the block are parked they
//   all become ready again (in a new random order). A barrier some threads never reach (they
//   exited, or wait elsewhere) leaves the block with no ready fiber: the launch throws
//   InternalError naming the threads, where a GPU would hang or misbehave.
// Warps. Thread t is lane t % 32 of warp t / 32 (CUDA's layout). A warp intrinsic (shuffles,
//   votes, __syncwarp, __reduce_*_sync) parks the lane until every lane of its mask arrives;
//   only that warp waits, the rest of the block runs on, so races between warps are not
//   hidden. Errors: the caller not in its mask, a mask naming exited or missing lanes, lanes
//   disagreeing on op/mask/width. A shuffle from a lane outside the mask returns poison.
// Shared memory. RECLM_SHARED declares a `static thread_local` array: one copy per OS thread,
//   which runs one block at a time, so it is per-block storage. It is filled with 0xFF bytes
//   (NaN for float/bf16/half, -1 for ints) when the first thread of each block reaches the
//   declaration, and the dynamic shared memory of RECLM_DYNAMIC_SHARED is poisoned at each
//   block start, so a read of shared memory not written in this block gives NaN / -1.
// Atomics are std::atomic_ref operations (blocks may run in parallel on several OS threads),
//   and, like fences, scheduling points: another ready thread of the block may run first, so
//   the order of atomics follows the seed, and a spin loop on an atomic (a lock) progresses.
// Tensor cores (tensor_core.h): mma.m16n8k16 bf16->f32 and ldmatrix are warp collectives that
//   compute the op once per warp from all lanes' registers, with the PTX ISA fragment layouts.
// cp.async (async_copy.h) queues each copy on its thread and performs it only at the wait for
//   its group, so a read before the wait sees poison.
// Device memory is host memory: DeviceBuffer (device_memory.h) allocates, copies and poisons
//   buffers on both targets, so a test is written once.
// Stack overflow (a kernel with more than ~60 KiB of locals) hits a guard page: SIGSEGV.
//
// ## Files
//
//   cuda_compat.h      this header: the CUDA headers, or the emulator; the shared-memory macros
//   launch.h           reclm::simt::launch, set_max_dynamic_shared_bytes (both targets)
//   device_memory.h    DeviceBuffer<T>, device_synchronize (both targets)
//   tensor_core.h      mma / ldmatrix wrappers (both targets; include it where needed)
//   async_copy.h       cp.async global -> shared copies (both targets; include it where needed)
//   emulator_options.h seed and worker threads (emulator only: tests that pin the schedule)
//   kernel_builtins.h, warp_ops.h, atomics.h, half_math.h: the device API on g++
//   block_runner.*, warp_collective.cc, grid_launch.*, fiber_stacks.*, tensor_core.cc,
//   async_copy.cc, usage_error.h: the emulator's inside
//
// ## Building a kernel source for both targets
//
// A kernels/cuda/foo.cu is compiled by nvcc as usual. For the emulator, the CMake function
// reclm_emulated_kernels(<library> foo.cu ...) (kernels/simt/CMakeLists.txt) builds the same
// files with g++ (a generated .cc #includes each one) into a library linking reclm_simt; tests
// link that library (tests/simt: run_demo_kernels.cu, same_source_test.cc). Under g++,
// threadIdx/blockIdx/blockDim/gridDim are macros: do not use those names for anything else in a
// file that includes this header.
//
// ## Example: a kernel, its wrapper and its test, each written once
//
//   __global__ void scale_kernel(const float* x, float a, float* y, int n) {
//     const int i = blockIdx.x * blockDim.x + threadIdx.x;
//     if (i < n) y[i] = a * x[i];
//   }
//   cudaError_t scale(const float* x, float a, float* y, int n, cudaStream_t stream) {
//     return reclm::simt::launch(scale_kernel, dim3((n + 255) / 256), dim3(256), 0, stream, x, a, y, n);
//   }
//   // In a test (GPU or emulator): buffers start poisoned, so a skipped element shows as NaN.
//   reclm::simt::DeviceBuffer<float> x(host_x), y(host_x.size());
//   ASSERT_EQ(scale(x.data(), 2.0f, y.data(), n, nullptr), cudaSuccess);
//   const std::vector<float> result = y.download();
//   // Emulator only: pin the schedule, e.g. to show a race under several seeds.
//   reclm::simt::ScopedEmulatorOptions options({.seed = 3, .worker_threads = 1});
//
// ## Rules for kernel authors
//
// - Include this header (and tensor_core.h, async_copy.h as needed) in kernel sources; launch only
//   with reclm::simt::launch, which returns cudaError_t on both targets (the emulator throws
//   reclm::InternalError for misuse instead of returning an error).
// - Shared memory only through the macros (plain `__shared__` does not compile under g++):
//     RECLM_SHARED(float, partial, [256]);        // __shared__ float partial[256];
//     RECLM_SHARED(float, tile, [32][33]);        // any array shape; a scalar: no third argument
//     RECLM_DYNAMIC_SHARED(float, buffer);        // extern __shared__ float buffer[]; (a float*)
//   Both are 16-byte aligned. A type with a comma needs an alias first (`using Pair = ...`).
//   A declaration may sit anywhere in a kernel or a __device__ function it calls, not at
//   namespace scope; under g++ it is two statements, so give it its own line (not the body of
//   an unbraced `if`). The top of the kernel body reads best.
// - Every thread of a block reaches every __syncthreads: keep out-of-range threads alive with a
//   predicate (`const bool active = i < n;`) instead of returning early before a barrier.
// - Warp intrinsics take an explicit mask that includes the caller; a partial last warp
//   (blockDim not a multiple of 32) must use a mask of its existing lanes.
// - No thread_local or function-local `static` variables of your own: they would be shared by
//   the fibers (and blocks) of an OS thread. Spin-wait only on atomics (atomicCAS, atomicAdd
//   of 0, ...): fibers are not preempted, a loop on a plain or volatile read never ends.
// - No __activemask(), inline PTX or cooperative groups: the emulator does not model them.
//   Wrap a PTX instruction the kernels need in a function with an emulator twin, as
//   tensor_core.h does.
//
// ## What the emulator does not catch
//
// Fibers switch only at barriers, warp intrinsics, atomics and fences, so a data race between
// two threads with no such point between their accesses (two threads doing a non-atomic += to
// one global element) gives the sequential answer. A spin loop on a plain or volatile read
// never ends: spin on an atomic. Out-of-bounds global accesses are not checked beyond
// what the host's memory protection does. Use compute-sanitizer on a GPU for both.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#if defined(__CUDACC__)

namespace reclm::simt {
// The .shared-window address of a generic pointer into shared memory, for inline PTX.
__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
}  // namespace reclm::simt

#define RECLM_SHARED(type, name, ...) __shared__ __align__(16) type name __VA_ARGS__
// One byte array per translation unit, viewed as the type each kernel needs (CUDA refuses two
// `extern __shared__` declarations of one name with different types).
#define RECLM_DYNAMIC_SHARED(type, name)                                        \
  extern __shared__ __align__(16) unsigned char reclm_dynamic_shared_memory[]; \
  type* name = reinterpret_cast<type*>(reclm_dynamic_shared_memory)

#else  // g++: the host SIMT emulator

#include "kernels/simt/atomics.h"
#include "kernels/simt/half_math.h"
#include "kernels/simt/kernel_builtins.h"
#include "kernels/simt/warp_ops.h"

#define RECLM_SHARED(type, name, ...)                            \
  static thread_local __align__(16) type name __VA_ARGS__;       \
  ::reclm::simt::poison_shared_at_block_start(&name, sizeof(name))
#define RECLM_DYNAMIC_SHARED(type, name) \
  type* name = reinterpret_cast<type*>(::reclm::simt::current_thread().block->dynamic_shared())

#endif

// `#pragma unroll` (nvcc) for the loop that follows: full unrolling keeps arrays indexed by the
// loop counter in registers and lets independent loads issue together. g++ has no such pragma.
#if defined(__CUDACC__)
#define RECLM_UNROLL _Pragma("unroll")
#else
#define RECLM_UNROLL
#endif

#include "kernels/simt/device_memory.h"
#include "kernels/simt/launch.h"
