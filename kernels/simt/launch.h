// The one way to launch a kernel, on both targets (kernels/simt/cuda_compat.h):
//   nvcc: kernel<<<grid, block, dynamic_shared_bytes, stream>>>(args...), then cudaGetLastError();
//   g++:  the host SIMT emulator runs the grid before returning (the stream is ignored: every
//         emulated launch is synchronous). Misuse throws reclm::InternalError.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#if !defined(__CUDACC__)
#include "kernels/simt/grid_launch.h"
#endif

namespace reclm::simt {

template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                   cudaStream_t stream, Args&&... args) {
#if defined(__CUDACC__)
  kernel<<<grid, block, dynamic_shared_bytes, stream>>>(std::forward<Args>(args)...);
  return cudaGetLastError();
#else
  (void)stream;
  emulate_launch(kernel, grid, block, dynamic_shared_bytes, std::forward<Args>(args)...);
  return cudaSuccess;
#endif
}

// Lets `kernel` take more than 48 KiB of dynamic shared memory (CUDA requires the opt-in).
template <typename... Params>
cudaError_t set_max_dynamic_shared_bytes(void (*kernel)(Params...), int bytes) {
#if defined(__CUDACC__)
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
#else
  set_max_dynamic_shared_bytes_for(reinterpret_cast<const void*>(kernel), static_cast<std::size_t>(bytes));
  return cudaSuccess;
#endif
}

}  // namespace reclm::simt
