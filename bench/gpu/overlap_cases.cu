// Overlap: does a memory- or latency-bound kernel run for free beside a GEMM on another stream?
// The trainer's side stream (trainer/device/side_stream.h) bets that it does, and splitting each
// micro-batch in two halves whose kernels interleave would bet on it much more; on the H100 the
// side stream paid only 2.8% (docs/benchmarks.md, run 10). These cases measure the bet directly.
//
// Per pair (a GEMM of gpu_350m's shapes and a kernel of the trainer's that moves memory or waits
// on latency), each side repeated so that both take about as long alone (the repeat counts and
// the alone times, measured when the cases are built, are in the name):
//   "... serial":         both sides one after the other on one stream (the sum);
//   "... other first":    the two sides on two streams, the non-GEMM side on the higher priority,
//                         as the trainer's compute stream (norms, SwiGLU, attention) runs beside
//                         the side stream's weight-gradient GEMMs;
//   "... GEMM first":     the same with the priorities swapped.
// Perfect overlap takes max(alone), no overlap the sum: the share of the shorter side hidden is
// (serial − both) / min(alone). Built only for a run without --filter or with one that contains
// "overlap" (they build the gemm, norm, optim and attention_backward groups' cases to take theirs).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/gpu/kernel_cases.h"

namespace reclm::bench {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string("overlap cases: ") + what + ": " +
                                                      cudaGetErrorString(status));
}

// The streams and events a pair's runs use (freed with the case).
struct PairStreams {
  cudaStream_t high = nullptr, low = nullptr;
  cudaEvent_t fork = nullptr, high_done = nullptr, low_done = nullptr;
  PairStreams() {
    int least = 0, greatest = 0;
    check(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
    check(cudaStreamCreateWithPriority(&high, cudaStreamNonBlocking, greatest), "cudaStreamCreateWithPriority");
    check(cudaStreamCreateWithPriority(&low, cudaStreamNonBlocking, least), "cudaStreamCreateWithPriority");
    for (cudaEvent_t* e : {&fork, &high_done, &low_done})
      check(cudaEventCreateWithFlags(e, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  }
  ~PairStreams() {
    for (cudaEvent_t e : {fork, high_done, low_done}) cudaEventDestroy(e);
    for (cudaStream_t s : {high, low}) cudaStreamDestroy(s);
  }
  PairStreams(const PairStreams&) = delete;
  PairStreams& operator=(const PairStreams&) = delete;
};

// A case's run `reps` times on a stream.
cudaError_t run_times(const KernelCase& c, int reps, cudaStream_t s) {
  for (int r = 0; r < reps; ++r) {
    const cudaError_t status = c.run(s);
    if (status != cudaSuccess) return status;
  }
  return cudaSuccess;
}

// Median ms of 5 runs (to pick the repeat counts; kernel_bench times the cases themselves).
double quick_ms(const KernelCase& c) {
  cudaStream_t s;
  check(cudaStreamCreate(&s), "cudaStreamCreate");
  const double ms = median_ms(c.run, 5, s);
  cudaStreamDestroy(s);
  return ms;
}

// The case named `name` (exactly, or the first that starts with it) among `cases`.
const KernelCase& find_case(const std::vector<KernelCase>& cases, const std::string& name) {
  for (const KernelCase& c : cases)
    if (c.name.rfind(name, 0) == 0) return c;
  throw std::runtime_error("overlap cases: no case named \"" + name + "\"");
}

// The three cases of one pair: serial, other first, GEMM first.
void add_pair(std::vector<KernelCase>& cases, const std::string& label, const KernelCase& gemm,
              const KernelCase& other) {
  const double gemm_ms = quick_ms(gemm), other_ms = quick_ms(other);
  const double longer = std::max(gemm_ms, other_ms);
  const int gemm_reps = std::clamp(static_cast<int>(std::lround(longer / gemm_ms)), 1, 16);
  const int other_reps = std::clamp(static_cast<int>(std::lround(longer / other_ms)), 1, 16);
  char alone[160];
  std::snprintf(alone, sizeof(alone), " (GEMM x%d %.3f ms, other x%d %.3f ms alone)", gemm_reps, gemm_reps * gemm_ms,
                other_reps, other_reps * other_ms);
  const auto streams = std::make_shared<PairStreams>();
  const std::vector<std::shared_ptr<void>> keep = {gemm.buffers, other.buffers, streams};
  const int64_t bytes = gemm_reps * gemm.bytes + other_reps * other.bytes;
  auto add = [&](const std::string& how, std::function<cudaError_t(cudaStream_t)> run) {
    KernelCase c = make_case("overlap " + label + ", " + how + alone, bytes, std::move(run), keep);
    c.memory_bound = false;
    cases.push_back(std::move(c));
  };
  add("serial", [=](cudaStream_t s) {
    const cudaError_t status = run_times(gemm, gemm_reps, s);
    return status != cudaSuccess ? status : run_times(other, other_reps, s);
  });
  // Both sides wait for what `s` queued before (the timing's start event), and `s` for both.
  for (const bool other_first : {true, false}) {
    const KernelCase& high = other_first ? other : gemm;
    const KernelCase& low = other_first ? gemm : other;
    const int high_reps = other_first ? other_reps : gemm_reps, low_reps = other_first ? gemm_reps : other_reps;
    add(other_first ? "other first" : "GEMM first", [=](cudaStream_t s) {
      PairStreams& p = *streams;
      cudaError_t status = cudaEventRecord(p.fork, s);
      if (status == cudaSuccess) status = cudaStreamWaitEvent(p.low, p.fork, 0);
      if (status == cudaSuccess) status = cudaStreamWaitEvent(p.high, p.fork, 0);
      // the low-priority side first, as the trainer queues side work and then goes on
      if (status == cudaSuccess) status = run_times(low, low_reps, p.low);
      if (status == cudaSuccess) status = run_times(high, high_reps, p.high);
      if (status == cudaSuccess) status = cudaEventRecord(p.low_done, p.low);
      if (status == cudaSuccess) status = cudaEventRecord(p.high_done, p.high);
      if (status == cudaSuccess) status = cudaStreamWaitEvent(s, p.low_done, 0);
      if (status == cudaSuccess) status = cudaStreamWaitEvent(s, p.high_done, 0);
      return status;
    });
  }
}

std::vector<KernelCase> group_cases(const std::string& group) {
  for (const auto& [name, make] : registered_cases())
    if (name == group) return make();
  throw std::runtime_error("overlap cases: no case group " + group);
}

std::vector<KernelCase> overlap_cases() {
  const std::string& filter = case_filter();
  if (!filter.empty() && filter.find("overlap") == std::string::npos) return {};
  const std::vector<KernelCase> gemm = group_cases("gemm"), norm = group_cases("norm"), optim = group_cases("optim"),
                                attention = group_cases("attention_backward");
  const KernelCase& gate_up = find_case(gemm, "linear_forward_bf16 bf16-out T=16209 1024->5632");
  const KernelCase& qkv = find_case(gemm, "linear_forward_bf16 bf16-out T=16209 1024->2048");
  const KernelCase& down_grads = find_case(gemm, "linear_backward_bf16 dinp+dweight T=16209 2816->1024");
  const KernelCase& qkv_grads = find_case(gemm, "linear_backward_bf16 dinp+dweight T=16209 1024->2048");
  std::vector<KernelCase> cases;
  add_pair(cases, "gate/up GEMM + SwiGLU backward", gate_up, find_case(norm, "swiglu_backward_bf16 paired"));
  add_pair(cases, "down GEMMs + RMSNorm backward", down_grads, find_case(norm, "rmsnorm_backward_bf16+dx copy"));
  add_pair(cases, "q/k/v GEMM + AdamW", qkv, find_case(optim, "adamw_update_bf16 nearest-even"));
  add_pair(cases, "q/k/v GEMMs + attention backward", qkv_grads,
           find_case(attention, "attention_backward det fused+rope causal 160 histories"));
  return cases;
}

[[maybe_unused]] const bool registered = register_cases("overlap", &overlap_cases);

}  // namespace
}  // namespace reclm::bench
