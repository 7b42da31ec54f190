// The kernel benchmark's cases (bench/gpu/kernel_bench.cu). Each group of kernels has a file
// bench/gpu/<group>_cases.cu (compiled into the benchmark by a glob) that registers a function
// returning its cases:
//   [[maybe_unused]] const bool registered = reclm::bench::register_cases("embedding", &embedding_cases);
// A case owns its device buffers (random data, made when the function runs) and launches one
// kernel call per run().
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/simt/cuda_compat.h"
#include "kernels/simt/device_memory.h"

namespace reclm::bench {

struct KernelCase {
  std::string name;          // "embedding_forward 65536 tokens x 1024"
  int64_t bytes = 0;         // bytes the kernel must read plus write at the least (for GB/s)
  bool memory_bound = true;  // held to the 80%-of-copy-bandwidth target
  int64_t flops = 0;         // compute-bound kernels (attention): printed as TFLOP/s when > 0
  std::function<cudaError_t(cudaStream_t)> run;
  std::shared_ptr<void> buffers;  // keeps the case's device buffers alive
};

using CaseMaker = std::vector<KernelCase> (*)();
// Adds a group; returns true (for the static-initializer idiom above).
bool register_cases(const char* group, CaseMaker make);
// The registered groups in name order.
std::vector<std::pair<std::string, CaseMaker>> registered_cases();
// kernel_bench's --filter (empty: every case), for a group whose cases are costly to build and
// only wanted when asked for by name (overlap_cases.cu).
const std::string& case_filter();
// Median milliseconds of `iters` timed runs on `stream` after 3 warm-up runs; a failing run ends
// the program, naming it (kernel_bench.cu).
double median_ms(const std::function<cudaError_t(cudaStream_t)>& run, int iters, cudaStream_t stream);

// Helpers for the case files.
using Floats = simt::DeviceBuffer<float>;

// n values in [lo, hi) from a cheap LCG on the host (benchmark data only needs to be ordinary
// numbers), for the few small arrays a case fills itself.
inline std::vector<float> host_values(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t state = seed * 2654435761u + 1u;
  for (float& x : v) {
    state = state * 1664525u + 1013904223u;
    x = lo + (hi - lo) * static_cast<float>(state >> 8) * (1.0f / 16777216.0f);
  }
  return v;
}

// n values in [lo, hi) drawn on the device from a hash of (seed, index): the cases need several
// GB of ordinary numbers, and drawing them on the host and uploading them took most of a
// kernel_bench run (47 s on the H100 host for 9 filtered cases, whose timing takes well under a
// second; the last line prints the cases' set-up time). Defined in kernel_bench.cu.
std::shared_ptr<Floats> device_values(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

using Bf16s = simt::DeviceBuffer<uint16_t>;  // bf16 bits

// The same values as bf16 (truncated fp32 bits), drawn on the device.
std::shared_ptr<Bf16s> random_bf16(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

inline __nv_bfloat16* bf16_ptr(const std::shared_ptr<Bf16s>& b) {
  return reinterpret_cast<__nv_bfloat16*>(b->data());
}

// A case from its name, the bytes it must move, its launch and the buffers it keeps alive.
inline KernelCase make_case(std::string name, int64_t bytes, std::function<cudaError_t(cudaStream_t)> run,
                            std::vector<std::shared_ptr<void>> buffers) {
  KernelCase c;
  c.name = std::move(name);
  c.bytes = bytes;
  c.run = std::move(run);
  c.buffers = std::make_shared<std::vector<std::shared_ptr<void>>>(std::move(buffers));
  return c;
}

}  // namespace reclm::bench
