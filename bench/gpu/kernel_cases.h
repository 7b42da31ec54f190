// The kernel benchmark's cases (bench/gpu/kernel_bench.cu). Each group of kernels has a file
// bench/gpu/<group>_cases.cu (compiled into the benchmark by a glob) that registers a function
// returning its cases:
//   [[maybe_unused]] const bool registered = reclm::bench::register_cases("embedding", &embedding_cases);
// A case owns its device buffers (random data, made when the function runs) and launches one
// kernel call per run().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/simt/cuda_compat.h"

namespace reclm::bench {

struct KernelCase {
  std::string name;          // "embedding_forward 65536 tokens x 1024"
  int64_t bytes = 0;         // bytes the kernel must read plus write at the least (for GB/s)
  bool memory_bound = true;  // held to the 80%-of-copy-bandwidth target
  std::function<cudaError_t(cudaStream_t)> run;
  std::shared_ptr<void> buffers;  // keeps the case's device buffers alive
};

using CaseMaker = std::vector<KernelCase> (*)();
// Adds a group; returns true (for the static-initializer idiom above).
bool register_cases(const char* group, CaseMaker make);
// The registered groups in name order.
std::vector<std::pair<std::string, CaseMaker>> registered_cases();

}  // namespace reclm::bench
