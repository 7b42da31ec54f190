// GPU kernel benchmark (bench/gpu/run.sh runs it): measures the device's device-to-device copy
// bandwidth, then every registered kernel case (bench/gpu/*_cases.cu), and prints per case the
// time, the bandwidth it achieves on the bytes it must move, and the ratio to the copy
// bandwidth measured in the same run (target for memory-bound kernels: >= 0.80).
//   kernel_bench [--filter SUBSTRING] [--iters N]
// (--filter overlap: the overlap cases, bench/gpu/overlap_cases.cu, which a filter without
// "overlap" leaves unbuilt)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "bench/gpu/kernel_cases.h"

namespace reclm::bench {

namespace {
std::map<std::string, CaseMaker>& groups() {
  static std::map<std::string, CaseMaker> all;
  return all;
}
std::string& filter_setting() {
  static std::string filter;
  return filter;
}

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  std::fprintf(stderr, "kernel_bench: %s: %s\n", what, cudaGetErrorString(status));
  std::exit(1);
}

// Uniform in [lo, hi): 24 bits of a splitmix64-style hash of (seed, i).
__device__ float hashed_uniform(uint32_t seed, int64_t i, float lo, float hi) {
  uint64_t z = (static_cast<uint64_t>(seed) << 40) ^ static_cast<uint64_t>(i);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return lo + (hi - lo) * static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}
__global__ void fill_uniform_kernel(float* out, int64_t n, uint32_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = hashed_uniform(seed, i, lo, hi);
}
__global__ void fill_uniform_bf16_kernel(uint16_t* out, int64_t n, uint32_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = static_cast<uint16_t>(__float_as_uint(hashed_uniform(seed, i, lo, hi)) >> 16);
}
// Blocks of 256 threads for n values, at most 4096 (the kernels stride over the rest).
unsigned fill_blocks(int64_t n) { return static_cast<unsigned>(std::clamp<int64_t>((n + 255) / 256, 1, 4096)); }
}  // namespace

std::shared_ptr<Floats> device_values(int64_t n, uint32_t seed, float lo, float hi) {
  auto buffer = std::make_shared<Floats>(static_cast<size_t>(n));
  fill_uniform_kernel<<<fill_blocks(n), 256>>>(buffer->data(), n, seed, lo, hi);
  check(cudaGetLastError(), "fill_uniform_kernel");
  return buffer;
}

std::shared_ptr<Bf16s> random_bf16(int64_t n, uint32_t seed, float lo, float hi) {
  auto buffer = std::make_shared<Bf16s>(static_cast<size_t>(n));
  fill_uniform_bf16_kernel<<<fill_blocks(n), 256>>>(buffer->data(), n, seed, lo, hi);
  check(cudaGetLastError(), "fill_uniform_bf16_kernel");
  return buffer;
}

bool register_cases(const char* group, CaseMaker make) {
  groups()[group] = make;
  return true;
}

std::vector<std::pair<std::string, CaseMaker>> registered_cases() {
  return {groups().begin(), groups().end()};
}

const std::string& case_filter() { return filter_setting(); }

double median_ms(const std::function<cudaError_t(cudaStream_t)>& run, int iters, cudaStream_t stream) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  for (int i = 0; i < 3; ++i) check(run(stream), "warm-up run");
  std::vector<float> times;
  for (int i = 0; i < iters; ++i) {
    check(cudaEventRecord(start, stream), "cudaEventRecord");
    check(run(stream), "timed run");
    check(cudaEventRecord(stop, stream), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace reclm::bench

int main(int argc, char** argv) {
  using namespace reclm::bench;
  std::string& filter = filter_setting();
  int iters = 20;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
    else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: kernel_bench [--filter SUBSTRING] [--iters N]\n");
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 0;
  }
  cudaDeviceProp properties{};
  check(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");

  // The peer: a device-to-device copy of 1 GiB reads and writes 2 GiB.
  const size_t copy_bytes = size_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  check(cudaMalloc(&src, copy_bytes), "cudaMalloc");
  check(cudaMalloc(&dst, copy_bytes), "cudaMalloc");
  check(cudaMemset(src, 1, copy_bytes), "cudaMemset");
  const double copy_ms = median_ms(
      [&](cudaStream_t s) { return cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, s); },
      iters, stream);
  const double copy_gbs = 2.0 * copy_bytes / (copy_ms * 1e6);
  cudaFree(src);
  cudaFree(dst);
  std::printf("device: %s (sm_%d%d), device-to-device copy: %.1f GB/s (1 GiB in %.3f ms)\n",
              properties.name, properties.major, properties.minor, copy_gbs, copy_ms);
  std::printf("%-58s %10s %10s %9s %s\n", "kernel", "time ms", "GB/s", "vs copy", "target");
  int below = 0;
  double setup_s = 0.0;  // building the cases: their buffers and random values
  for (const auto& [group, make] : registered_cases()) {
    const auto made = std::chrono::steady_clock::now();
    std::vector<KernelCase> cases;
    try {
      cases = make();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kernel_bench: building the %s cases: %s\n", group.c_str(), e.what());
      return 1;
    }
    check(cudaDeviceSynchronize(), "building the cases");
    setup_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - made).count();
    for (KernelCase& c : cases) {
      if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
      const double ms = median_ms(c.run, iters, stream);
      const double gbs = c.bytes / (ms * 1e6);
      const double ratio = gbs / copy_gbs;
      const bool ok = !c.memory_bound || ratio >= 0.80;
      below += !ok;
      if (c.flops > 0) {
        std::printf("%-58s %10.4f %10.1f %8.2fx %.1f TFLOP/s\n", c.name.c_str(), ms, gbs, ratio,
                    c.flops / (ms * 1e9));
        continue;
      }
      std::printf("%-58s %10.4f %10.1f %8.2fx %s\n", c.name.c_str(), ms, gbs, ratio,
                  c.memory_bound ? (ok ? ">= 0.80 ok" : "< 0.80 BELOW") : "(compute)");
    }
  }
  std::printf("%d memory-bound case(s) below 80%% of copy bandwidth; building the cases took %.1f s\n", below,
              setup_s);
  cudaStreamDestroy(stream);
  return 0;
}
