#include "kernels/simt/grid_launch.h"

#include <atomic>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/simt/emulator_options.h"
#include "kernels/simt/usage_error.h"

namespace reclm::simt {
namespace {

std::mutex limits_mutex;
std::map<const void*, std::size_t>& dynamic_shared_limits() {
  static auto* limits = new std::map<const void*, std::size_t>();
  return *limits;
}

std::size_t max_dynamic_shared_bytes(const void* kernel_id) {
  std::lock_guard<std::mutex> lock(limits_mutex);
  const auto it = dynamic_shared_limits().find(kernel_id);
  return it == dynamic_shared_limits().end() ? kDefaultMaxDynamicSharedBytes : it->second;
}

void check_launch_configuration(const void* kernel_id, dim3 grid, dim3 block, std::size_t shared_bytes) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  RECLM_SIMT_CHECK(threads >= 1 && threads <= kMaxThreadsPerBlock && block.x <= kMaxThreadsPerBlock &&
                  block.y <= kMaxThreadsPerBlock && block.z <= kMaxBlockDimZ,
              "launch: blockDim ({},{},{}) = {} threads; a block has 1..{} threads, z <= {}", block.x,
              block.y, block.z, threads, kMaxThreadsPerBlock, kMaxBlockDimZ);
  RECLM_SIMT_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= kMaxGridDimX && grid.y <= kMaxGridDimYZ &&
                  grid.z <= kMaxGridDimYZ,
              "launch: gridDim ({},{},{}) out of range (x in 1..{}, y and z in 1..{})", grid.x, grid.y,
              grid.z, kMaxGridDimX, kMaxGridDimYZ);
  const std::size_t limit = max_dynamic_shared_bytes(kernel_id);
  RECLM_SIMT_CHECK(shared_bytes <= limit,
              "launch: {} bytes of dynamic shared memory, over this kernel's limit of {} (raise it "
              "with reclm::simt::set_max_dynamic_shared_bytes, at most {})",
              shared_bytes, limit, kMaxOptInDynamicSharedBytes);
  RECLM_SIMT_CHECK(tls_current_thread == nullptr, "launch: a kernel may not launch kernels (no dynamic parallelism)");
}

}  // namespace

void set_max_dynamic_shared_bytes_for(const void* kernel_id, std::size_t bytes) {
  RECLM_SIMT_CHECK(bytes <= kMaxOptInDynamicSharedBytes,
              "max dynamic shared memory {} bytes is over the device limit of {}", bytes,
              kMaxOptInDynamicSharedBytes);
  std::lock_guard<std::mutex> lock(limits_mutex);
  dynamic_shared_limits()[kernel_id] = bytes;
}

void run_grid(const KernelCall& call, const void* kernel_id, dim3 grid, dim3 block,
              std::size_t dynamic_shared_bytes) {
  check_launch_configuration(kernel_id, grid, block, dynamic_shared_bytes);
  const EmulatorOptions options = emulator_options();
  const std::uint64_t n_blocks = 1ull * grid.x * grid.y * grid.z;
  const int n_workers = static_cast<int>(std::min<std::uint64_t>(options.worker_threads, n_blocks));

  // Blocks are handed out in linear order (x fastest) from a shared counter; after the first
  // error no new block starts, and the error of the lowest failing block is reported.
  std::atomic<std::uint64_t> next_block{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr first_error;
  std::uint64_t first_error_block = n_blocks;
  auto run_blocks = [&] {
    std::uint64_t b = n_blocks;
    try {
      BlockRunner runner(call, grid, block, dynamic_shared_bytes, options.seed);
      while (!failed.load(std::memory_order_relaxed) && (b = next_block.fetch_add(1)) < n_blocks) {
        const uint3 block_idx{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                              static_cast<unsigned>(b / (1ull * grid.x * grid.y))};
        runner.run(block_idx, b);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (b <= first_error_block) {
        first_error = std::current_exception();
        first_error_block = b;
      }
      failed = true;
    }
  };
  std::vector<std::thread> helpers;
  for (int w = 1; w < n_workers; ++w) helpers.emplace_back(run_blocks);
  run_blocks();  // the launching thread is worker 0
  for (std::thread& helper : helpers) helper.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace reclm::simt
