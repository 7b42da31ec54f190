// The bf16 linear-layer GEMMs (kernels/cuda/gemm.cu, cuBLASLt) at 125M/350M-like shapes:
// T = 16384 tokens, C = 1024, OC = 1024 (attention projections) and 4096 (MLP up), and the
// MLP down projection (C = 4096 -> OC = 1024). Compute-bound: flops = 2·T·C·OC per GEMM
// (forward one GEMM; backward two: dinp and dweight, plus the dbias reduction, not counted).
// `bytes` = the operands read and the outputs written once (dweight fp32 read and written).
#include <memory>
#include <string>

#include "bench/gpu/attention_case_data.h"
#include "bench/gpu/kernel_cases.h"
#include "kernels/cuda/gemm.h"

namespace reclm::bench {
namespace {

std::string shape_name(const char* kind, int64_t T, int64_t C, int64_t OC) {
  return std::string(kind) + " T=" + std::to_string(T) + " " + std::to_string(C) + "->" + std::to_string(OC);
}

KernelCase forward_case(const std::shared_ptr<cuda::GemmContext>& ctx, int64_t T, int64_t C, int64_t OC,
                        bool out_fp32) {
  auto inp = random_bf16(T * C, 1), weight = random_bf16(OC * C, 2);
  auto bias = device_values(OC, 3);
  std::shared_ptr<void> out;
  void* out_ptr = nullptr;
  if (out_fp32) {
    auto o = std::make_shared<Floats>(static_cast<size_t>(T * OC));
    out_ptr = o->data(), out = o;
  } else {
    auto o = std::make_shared<Bf16s>(static_cast<size_t>(T * OC));
    out_ptr = o->data(), out = o;
  }
  const int64_t out_bytes = T * OC * (out_fp32 ? 4 : 2);
  KernelCase c = make_case(
      shape_name(out_fp32 ? "linear_forward_bf16 fp32-out+bias" : "linear_forward_bf16 bf16-out+bias", T, C, OC),
      2 * (T * C + OC * C) + 4 * OC + out_bytes,
      [=](cudaStream_t s) {
        return cuda::linear_forward_bf16(*ctx, out_ptr, out_fp32, bf16_ptr(inp), bf16_ptr(weight), bias->data(), T, C,
                                         OC, false, s);
      },
      {ctx, inp, weight, bias, out});
  c.memory_bound = false;
  c.flops = 2 * T * C * OC;
  return c;
}

KernelCase backward_case(const std::shared_ptr<cuda::GemmContext>& ctx, int64_t T, int64_t C, int64_t OC) {
  auto inp = random_bf16(T * C, 4), weight = random_bf16(OC * C, 5), dout = random_bf16(T * OC, 6);
  auto dinp = std::make_shared<Bf16s>(static_cast<size_t>(T * C));
  auto dweight = device_values(OC * C, 7), dbias = device_values(OC, 8);
  KernelCase c = make_case(
      shape_name("linear_backward_bf16 dinp+dweight+dbias", T, C, OC),
      2 * (T * C + OC * C + T * OC) + 2 * T * C + 8 * OC * C + 8 * OC,
      [=](cudaStream_t s) {
        return cuda::linear_backward_bf16(*ctx, bf16_ptr(dinp), false, dweight->data(), dbias->data(), bf16_ptr(dout),
                                          bf16_ptr(inp), bf16_ptr(weight), T, C, OC, s);
      },
      {ctx, inp, weight, dout, dinp, dweight, dbias});
  c.memory_bound = false;
  c.flops = 2 * 2 * T * C * OC;
  return c;
}

std::vector<KernelCase> gemm_cases() {
  auto ctx = std::make_shared<cuda::GemmContext>();
  const int64_t T = 16384;
  std::vector<KernelCase> cases;
  cases.push_back(forward_case(ctx, T, 1024, 1024, false));
  cases.push_back(forward_case(ctx, T, 1024, 4096, false));
  cases.push_back(forward_case(ctx, T, 4096, 1024, false));
  cases.push_back(forward_case(ctx, T, 1024, 1024, true));
  cases.push_back(backward_case(ctx, T, 1024, 1024));
  cases.push_back(backward_case(ctx, T, 1024, 4096));
  cases.push_back(backward_case(ctx, T, 4096, 1024));
  return cases;
}

[[maybe_unused]] const bool registered = register_cases("gemm", &gemm_cases);

}  // namespace
}  // namespace reclm::bench
