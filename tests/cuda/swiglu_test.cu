// swiglu_forward / swiglu_backward (kernels/cuda/swiglu.cu) against ops::swiglu_forward /
// ops::swiglu_backward, on the emulator (label emu) and a GPU (label gpu).
// Tolerance (fp32): the reference's exp is a polynomial (~2e-7 relative), the kernel's expf is
// within 2 ulp, and dgate's factor 1 + g(1 − σ) cancels near g ≈ −1.28, where an error of a few
// 1e-7 in σ becomes an absolute error of ~1e-6 · |dout · up|; so, for gate in [-12, 12] and up,
// dout in [-2, 2]: |got − want| <= 5e-6 + 2e-6 · |want|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cuda/convert.h"
#include "kernels/cuda/swiglu.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"

namespace reclm::cuda {
namespace {

using ops::test_util::expect_near_all;
using ops::test_util::uniform;

constexpr double kAtol = 5e-6, kRtol = 2e-6;

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

double max_abs_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double m = 0;
  for (size_t i = 0; i < got.size(); ++i) m = std::max(m, std::abs(static_cast<double>(got[i]) - want[i]));
  return m;
}

// Sizes around the float4 unit and the block (256 threads · 4) with scalar tails; `offset`
// shifts every pointer by one float off the 16-byte alignment (the all-scalar path).
void check(int64_t n, int offset, uint32_t seed) {
  const size_t total = static_cast<size_t>(n + offset);
  const std::vector<float> gate = uniform(total, seed, -12.f, 12.f), up = uniform(total, seed + 1, -2.f, 2.f);
  const std::vector<float> dout = uniform(total, seed + 2, -2.f, 2.f);
  std::vector<float> want_out(static_cast<size_t>(n)), want_dgate(static_cast<size_t>(n)),
      want_dup(static_cast<size_t>(n));
  ops::swiglu_forward(want_out.data(), gate.data() + offset, up.data() + offset, n);
  ops::swiglu_backward(want_dgate.data(), want_dup.data(), dout.data() + offset, gate.data() + offset,
                       up.data() + offset, n);

  simt::DeviceBuffer<float> dg(gate), du(up), dd(dout), out(total), dgate(total), dup(total);
  ASSERT_EQ(swiglu_forward(out.data() + offset, dg.data() + offset, du.data() + offset, n, nullptr),
            cudaSuccess);
  ASSERT_EQ(swiglu_backward(dgate.data() + offset, dup.data() + offset, dd.data() + offset,
                            dg.data() + offset, du.data() + offset, n, nullptr),
            cudaSuccess);
  simt::device_synchronize();
  const std::string what = "n " + std::to_string(n) + " offset " + std::to_string(offset);
  auto tail = [offset](const std::vector<float>& v) {
    return std::vector<float>(v.begin() + offset, v.end());
  };
  const std::vector<float> got_out = tail(out.download()), got_dgate = tail(dgate.download());
  expect_near_all(got_out, to_double(want_out), kAtol, kRtol, "out " + what);
  expect_near_all(got_dgate, to_double(want_dgate), kAtol, kRtol, "dgate " + what);
  expect_near_all(tail(dup.download()), to_double(want_dup), kAtol, kRtol, "dup " + what);
  std::printf("swiglu %s: max |error| out %.3g dgate %.3g\n", what.c_str(), max_abs_diff(got_out, want_out),
              max_abs_diff(got_dgate, want_dgate));
}

TEST(CudaSwiglu, ForwardBackwardMatchReference) {
  uint32_t seed = 1;
  for (int64_t n :
       {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{7}, int64_t{1023}, int64_t{1025}, int64_t{100003}}) {
    check(n, 0, seed);
    seed += 3;
  }
}

TEST(CudaSwiglu, UnalignedPointers) {
  check(1001, 1, 30);
  check(8, 2, 33);
}

// out may alias gate (the MLP's activation computed in place).
TEST(CudaSwiglu, InPlaceForward) {
  const int64_t n = 4099;
  const std::vector<float> gate = uniform(static_cast<size_t>(n), 40, -12.f, 12.f);
  const std::vector<float> up = uniform(static_cast<size_t>(n), 41, -2.f, 2.f);
  std::vector<float> want(static_cast<size_t>(n));
  ops::swiglu_forward(want.data(), gate.data(), up.data(), n);
  simt::DeviceBuffer<float> dg(gate), du(up);
  ASSERT_EQ(swiglu_forward(dg.data(), dg.data(), du.data(), n, nullptr), cudaSuccess);
  simt::device_synchronize();
  expect_near_all(dg.download(), to_double(want), kAtol, kRtol, "in-place out");
}

// The bf16 forms (the GPU trainer's), with fp32 or bf16 gate/up: bitwise equal to the fp32
// kernels composed with the conversions they replace, aligned and not, with tails; outputs
// poisoned, nothing written past n.
void check_bf16_forms(int64_t n, int offset, uint32_t seed) {
  const size_t total = static_cast<size_t>(n + offset);
  const std::vector<float> gate = uniform(total, seed, -12.f, 12.f), up = uniform(total, seed + 1, -2.f, 2.f);
  const std::vector<float> dout_f = uniform(total, seed + 2, -2.f, 2.f);
  simt::DeviceBuffer<float> dg(gate), du(up), dd_f(dout_f), out32(total), dgate32(total), dup32(total), dd32(total);
  simt::DeviceBuffer<uint16_t> want_out(total + 2), dd(total), got_out(total + 2), want_dgate(total + 2),
      want_dup(total + 2), got_dgate(total + 2), got_dup(total + 2);
  auto bf = [](simt::DeviceBuffer<uint16_t>& b, int off) { return reinterpret_cast<__nv_bfloat16*>(b.data() + off); };
  const int o = offset;
  // dout in bf16, and its exact fp32 widening for the composed reference
  ASSERT_EQ(convert_f32_to_bf16(bf(dd, 0), dd_f.data(), static_cast<int64_t>(total), nullptr), cudaSuccess);
  ASSERT_EQ(convert_bf16_to_f32(dd32.data(), bf(dd, 0), static_cast<int64_t>(total), nullptr), cudaSuccess);
  // composed: fp32 kernels, then the conversions
  ASSERT_EQ(swiglu_forward(out32.data() + o, dg.data() + o, du.data() + o, n, nullptr), cudaSuccess);
  ASSERT_EQ(convert_f32_to_bf16(bf(want_out, o), out32.data() + o, n, nullptr), cudaSuccess);
  ASSERT_EQ(swiglu_backward(dgate32.data() + o, dup32.data() + o, dd32.data() + o, dg.data() + o, du.data() + o, n,
                            nullptr),
            cudaSuccess);
  ASSERT_EQ(convert_f32_to_bf16(bf(want_dgate, o), dgate32.data() + o, n, nullptr), cudaSuccess);
  ASSERT_EQ(convert_f32_to_bf16(bf(want_dup, o), dup32.data() + o, n, nullptr), cudaSuccess);
  // fused
  ASSERT_EQ(swiglu_forward_bf16(bf(got_out, o), dg.data() + o, du.data() + o, n, nullptr), cudaSuccess);
  ASSERT_EQ(swiglu_backward_bf16(bf(got_dgate, o), bf(got_dup, o), bf(dd, o), dg.data() + o, du.data() + o, n,
                                 nullptr),
            cudaSuccess);
  simt::device_synchronize();
  const std::string what = "n " + std::to_string(n) + " offset " + std::to_string(offset);
  const auto same = [&](simt::DeviceBuffer<uint16_t>& got, simt::DeviceBuffer<uint16_t>& want, const char* name) {
    const std::vector<uint16_t> g = got.download(), w = want.download();
    for (size_t i = static_cast<size_t>(o); i < static_cast<size_t>(o + n); ++i)
      ASSERT_EQ(g[i], w[i]) << name << " " << what << " at " << i - static_cast<size_t>(o);
    for (size_t i = static_cast<size_t>(o + n); i < g.size(); ++i)
      ASSERT_EQ(g[i], 0xFFFF) << name << " " << what << ": wrote past the end";
  };
  same(got_out, want_out, "forward");
  same(got_dgate, want_dgate, "dgate");
  same(got_dup, want_dup, "dup");

  // gate and up in bf16 as well: against the fp32 kernels on their exact widening
  const auto all = static_cast<int64_t>(total);
  simt::DeviceBuffer<uint16_t> g16(total), u16(total);
  simt::DeviceBuffer<float> gw(total), uw(total);
  ASSERT_EQ(convert_f32_to_bf16(bf(g16, 0), dg.data(), all, nullptr), cudaSuccess);
  ASSERT_EQ(convert_f32_to_bf16(bf(u16, 0), du.data(), all, nullptr), cudaSuccess);
  ASSERT_EQ(convert_bf16_to_f32(gw.data(), bf(g16, 0), all, nullptr), cudaSuccess);
  ASSERT_EQ(convert_bf16_to_f32(uw.data(), bf(u16, 0), all, nullptr), cudaSuccess);
  ASSERT_EQ(swiglu_forward(out32.data() + o, gw.data() + o, uw.data() + o, n, nullptr), cudaSuccess);
  ASSERT_EQ(convert_f32_to_bf16(bf(want_out, o), out32.data() + o, n, nullptr), cudaSuccess);
  ASSERT_EQ(swiglu_backward(dgate32.data() + o, dup32.data() + o, dd32.data() + o, gw.data() + o, uw.data() + o, n,
                            nullptr),
            cudaSuccess);
  ASSERT_EQ(convert_f32_to_bf16(bf(want_dgate, o), dgate32.data() + o, n, nullptr), cudaSuccess);
  ASSERT_EQ(convert_f32_to_bf16(bf(want_dup, o), dup32.data() + o, n, nullptr), cudaSuccess);
  simt::DeviceBuffer<uint16_t> got_out2(total + 2), got_dgate2(total + 2), got_dup2(total + 2);
  ASSERT_EQ(swiglu_forward_bf16(bf(got_out2, o), bf(g16, o), bf(u16, o), n, nullptr), cudaSuccess);
  ASSERT_EQ(swiglu_backward_bf16(bf(got_dgate2, o), bf(got_dup2, o), bf(dd, o), bf(g16, o), bf(u16, o), n, nullptr),
            cudaSuccess);
  simt::device_synchronize();
  same(got_out2, want_out, "forward, bf16 gate/up");
  same(got_dgate2, want_dgate, "dgate, bf16 gate/up");
  same(got_dup2, want_dup, "dup, bf16 gate/up");
}

TEST(CudaSwiglu, Bf16FormsEqualTheComposedKernels) {
  uint32_t seed = 50;
  for (int64_t n : {int64_t{1}, int64_t{4}, int64_t{7}, int64_t{1025}, int64_t{100003}}) {
    check_bf16_forms(n, 0, seed);
    seed += 3;
  }
  check_bf16_forms(1001, 1, 70);  // 4-byte offset: the scalar path
  check_bf16_forms(1001, 2, 73);  // 8-byte offset: bf16 vectors aligned, fp32 ones not
}

}  // namespace
}  // namespace reclm::cuda
