// GPU kernel benchmark (bench/gpu/run.sh runs it): measures the device's device-to-device copy
// bandwidth, then every registered kernel case (bench/gpu/*_cases.cu), and prints per case the
// time, the bandwidth it achieves on the bytes it must move, and the ratio to the copy
// bandwidth measured in the same run (target for memory-bound kernels: >= 0.80).
//   kernel_bench [--filter SUBSTRING] [--iters N]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  std::fprintf(stderr, "kernel_bench: %s: %s\n", what, cudaGetErrorString(status));
  std::exit(1);
}

// Median milliseconds of `iters` timed runs after 3 warm-up runs.
template <typename Run>
double median_ms(Run run, int iters, cudaStream_t stream) {
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
}  // namespace

bool register_cases(const char* group, CaseMaker make) {
  groups()[group] = make;
  return true;
}

std::vector<std::pair<std::string, CaseMaker>> registered_cases() {
  return {groups().begin(), groups().end()};
}

}  // namespace reclm::bench

int main(int argc, char** argv) {
  using namespace reclm::bench;
  std::string filter;
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
  for (const auto& [group, make] : registered_cases()) {
    for (KernelCase& c : make()) {
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
  std::printf("%d memory-bound case(s) below 80%% of copy bandwidth\n", below);
  cudaStreamDestroy(stream);
  return 0;
}
