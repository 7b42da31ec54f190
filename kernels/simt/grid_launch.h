// The emulator's kernel launch (g++ builds): checks the launch configuration as a GPU would,
// then runs every block of the grid, blocks spread over EmulatorOptions::worker_threads OS
// threads. Kernel sources call reclm::simt::launch (kernels/simt/launch.h), not this.
#pragma once

#include <vector_types.h>

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/simt/block_runner.h"

namespace reclm::simt {

// CUDA's limits (compute capability 8.0 / 9.0): threads per block, block and grid extents.
inline constexpr unsigned kMaxThreadsPerBlock = 1024;
inline constexpr unsigned kMaxBlockDimZ = 64;
inline constexpr unsigned kMaxGridDimX = 2147483647u;
inline constexpr unsigned kMaxGridDimYZ = 65535;
// Dynamic shared memory a kernel may use without opting in, and the most it may opt in to
// (H100: 227 KiB per block; A100: 163 KiB).
inline constexpr std::size_t kDefaultMaxDynamicSharedBytes = 48 * 1024;
inline constexpr std::size_t kMaxOptInDynamicSharedBytes = 227 * 1024;

// Runs the grid; returns when every block has finished; throws the first error of any block
// (InternalError for a misuse, or what the kernel threw). `kernel_id` keys the dynamic-shared
// limit set by set_max_dynamic_shared_bytes_for.
void run_grid(const KernelCall& call, const void* kernel_id, dim3 grid, dim3 block,
              std::size_t dynamic_shared_bytes);

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes).
void set_max_dynamic_shared_bytes_for(const void* kernel_id, std::size_t bytes);

// Runs kernel(args...) on the emulator. Like a CUDA launch, the arguments are converted to the
// kernel's parameter types and copied once; each thread calls the kernel with that copy.
template <typename... Params, typename... Args>
void emulate_launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                    Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "launch: wrong number of kernel arguments");
  using Arguments = std::tuple<std::decay_t<Params>...>;
  struct Payload {
    void (*kernel)(Params...);
    Arguments arguments;
  };
  const Payload payload{kernel, Arguments(std::forward<Args>(args)...)};
  const KernelCall call{[](const void* p) {
                          const Payload& bound = *static_cast<const Payload*>(p);
                          std::apply(bound.kernel, bound.arguments);
                        },
                        &payload};
  run_grid(call, reinterpret_cast<const void*>(kernel), grid, block, dynamic_shared_bytes);
}

}  // namespace reclm::simt
