// The bf16 linear-layer GEMMs (kernels/cuda/gemm.cu, cuBLASLt) at 125M/350M-like shapes:
// T = 16384 tokens, C = 1024, OC = 1024 (attention projections) and 4096 (MLP up), and the
// MLP down projection (C = 4096 -> OC = 1024). Compute-bound: flops = 2·T·C·OC per GEMM
// (forward one GEMM; backward two: dinp and dweight, plus the dbias reduction, not counted).
// `bytes` = the operands read and the outputs written once (dweight fp32 read and written).
// The trainer's shapes also with cuBLASLt's heuristic's 2nd-4th choices ("heuristic #k") and
// timed ("timed": the fastest of its first 8), and
// bench/gpu/gemm_torch.py times PyTorch's GEMMs on the same shapes (the peer).
#include <memory>
#include <string>
#include <utility>

#include "bench/gpu/attention_case_data.h"
#include "bench/gpu/kernel_cases.h"
#include "kernels/cuda/gemm.h"

namespace reclm::bench {
namespace {

std::string shape_name(const char* kind, int64_t T, int64_t C, int64_t OC) {
  return std::string(kind) + " T=" + std::to_string(T) + " " + std::to_string(C) + "->" + std::to_string(OC);
}

// with_addend: out = addend + the product (the addend of out's type), as the trainer's o/down
// projections onto the residual stream (fp32, or bf16 with runtime.bf16_residual).
KernelCase forward_case(const std::shared_ptr<cuda::GemmContext>& ctx, int64_t T, int64_t C, int64_t OC,
                        bool out_fp32, bool with_bias = true, bool with_addend = false) {
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
  const std::string kind = std::string("linear_forward_bf16 ") + (out_fp32 ? "fp32-out" : "bf16-out") +
                           (with_bias ? "+bias" : "") + (with_addend ? "+addend" : "");
  const float* bias_ptr = with_bias ? bias->data() : nullptr;
  auto addend32 = device_values(with_addend ? T * OC : 1, 9);
  std::shared_ptr<void> addend = addend32;
  const void* addend_ptr = with_addend ? addend32->data() : nullptr;
  if (with_addend && !out_fp32) {
    auto a16 = random_bf16(T * OC, 9);
    addend_ptr = a16->data(), addend = a16;
  }
  KernelCase c = make_case(
      shape_name(kind.c_str(), T, C, OC),
      2 * (T * C + OC * C) + (with_bias ? 4 * OC : 0) + out_bytes + (with_addend ? out_bytes : 0),
      [=](cudaStream_t s) {
        return cuda::linear_forward_bf16(*ctx, out_ptr, out_fp32, bf16_ptr(inp), bf16_ptr(weight), bias_ptr, T, C, OC,
                                         false, s, 0, addend_ptr);
      },
      {ctx, inp, weight, bias, out, addend});
  c.memory_bound = false;
  c.flops = 2 * T * C * OC;
  return c;
}

KernelCase backward_case(const std::shared_ptr<cuda::GemmContext>& ctx, int64_t T, int64_t C, int64_t OC,
                         bool with_bias = true) {
  auto inp = random_bf16(T * C, 4), weight = random_bf16(OC * C, 5), dout = random_bf16(T * OC, 6);
  auto dinp = std::make_shared<Bf16s>(static_cast<size_t>(T * C));
  auto dweight = device_values(OC * C, 7), dbias = device_values(OC, 8);
  float* dbias_ptr = with_bias ? dbias->data() : nullptr;
  KernelCase c = make_case(
      shape_name(with_bias ? "linear_backward_bf16 dinp+dweight+dbias" : "linear_backward_bf16 dinp+dweight", T, C,
                 OC),
      2 * (T * C + OC * C + T * OC) + 2 * T * C + 8 * OC * C + (with_bias ? 8 * OC : 0),
      [=](cudaStream_t s) {
        return cuda::linear_backward_bf16(*ctx, bf16_ptr(dinp), false, dweight->data(), dbias_ptr, bf16_ptr(dout),
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
  // The GPU trainer's GEMMs for gpu_350m (no bias): the fused q/k/v and gate/up projections
  // (bf16 out), o_proj and down_proj (fp32 out added to the stream: an addend), each with its backward;
  // and one LM-head chunk of 2770 rows over 64,576 classes (fp32 logits). Also at T = 16,209, an odd
  // token count like the packed micro-batches' (their mean in bench/gpu/train.sh), where the
  // algorithm cuBLASLt picks may differ.
  for (const int64_t tokens : {T, int64_t{16209}}) {
    cases.push_back(forward_case(ctx, tokens, 1024, 2048, false, false));
    cases.push_back(forward_case(ctx, tokens, 1024, 5632, false, false));
    cases.push_back(forward_case(ctx, tokens, 1024, 1024, true, false, true));
    cases.push_back(forward_case(ctx, tokens, 2816, 1024, true, false, true));
    cases.push_back(forward_case(ctx, tokens, 1024, 1024, false, false, true));  // (a bf16 stream)
    cases.push_back(forward_case(ctx, tokens, 2816, 1024, false, false, true));
    cases.push_back(backward_case(ctx, tokens, 1024, 2048, false));
    cases.push_back(backward_case(ctx, tokens, 1024, 5632, false));
    cases.push_back(backward_case(ctx, tokens, 1024, 1024, false));
    cases.push_back(backward_case(ctx, tokens, 2816, 1024, false));
  }
  cases.push_back(forward_case(ctx, 2770, 1024, 64576, true, false));
  cases.push_back(backward_case(ctx, 2770, 1024, 64576, false));
  // The trainer's gpu_350m GEMMs at T = 16,209 again with cuBLASLt's heuristic's 2nd, 3rd and 4th
  // choices (GemmContext::set_heuristic_rank), and with the fastest of its first 8 by timing
  // (set_autotune, runtime.gemm_autotune; timed in the first warm-up run), each beside the first
  // choice above: whether the first choice is the fastest for our shapes.
  for (const int rank : {1, 2, 3, -1}) {  // (-1: timed)
    // the timed choice's scratch, 64 MiB (the largest dweight here is 23 MB), freed with the context
    auto scratch = std::make_shared<Floats>(rank < 0 ? size_t{16} << 20 : 1);
    auto ranked =
        std::shared_ptr<cuda::GemmContext>(new cuda::GemmContext, [scratch](cuda::GemmContext* c) { delete c; });
    if (rank >= 0) {
      ranked->set_heuristic_rank(rank);
    } else {
      ranked->set_autotune(true, scratch->data(), scratch->size() * sizeof(float));
    }
    const std::string suffix = rank < 0 ? std::string(" timed") : " heuristic #" + std::to_string(rank + 1);
    std::vector<KernelCase> step = {forward_case(ranked, 16209, 1024, 2048, false, false),
                                    forward_case(ranked, 16209, 1024, 5632, false, false),
                                    forward_case(ranked, 16209, 1024, 1024, true, false, true),
                                    forward_case(ranked, 16209, 2816, 1024, true, false, true),
                                    backward_case(ranked, 16209, 1024, 2048, false),
                                    backward_case(ranked, 16209, 1024, 5632, false),
                                    backward_case(ranked, 16209, 1024, 1024, false),
                                    backward_case(ranked, 16209, 2816, 1024, false)};
    if (rank < 0) step.push_back(forward_case(ranked, 2770, 1024, 64576, true, false));  // (timed in place)
    for (KernelCase& c : step) {
      c.name += suffix;
      cases.push_back(std::move(c));
    }
  }
  // The backward GEMMs planned for 100 of an H100's 132 SMs (set_sm_count_target; the trainer's
  // RECLM_SIDE_GEMM_SMS=100 for its side stream's weight gradients), alone: what leaving SMs to
  // the compute stream costs the GEMMs themselves.
  auto fewer_sms = std::make_shared<cuda::GemmContext>();
  fewer_sms->set_sm_count_target(100);
  for (const auto& [C, OC] : {std::pair<int64_t, int64_t>{1024, 2048}, {1024, 5632}, {1024, 1024}, {2816, 1024}}) {
    KernelCase c = backward_case(fewer_sms, 16209, C, OC, false);
    c.name += " on 100 SMs";
    cases.push_back(std::move(c));
  }
  return cases;
}

[[maybe_unused]] const bool registered = register_cases("gemm", &gemm_cases);

}  // namespace
}  // namespace reclm::bench
