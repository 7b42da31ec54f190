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
#include <utility>
#include <vector>

#include "kernels/cuda/swiglu.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"
#include "runtime/dtype.h"

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

// The bf16 paired form (the GPU trainer's): bitwise equal to the fp32 kernels on the widened,
// de-interleaved values with each output rounded as convert_f32_to_bf16 rounds it; the backward
// in place over gate_up as well; nothing written past the end. `offset` shifts every pointer by
// that many bf16 values (1: off the 8-byte units, the scalar path).
void check_paired_bf16(int64_t rows, int64_t cols, int offset, uint32_t seed) {
  const int64_t n = rows * cols, o = offset;
  const std::vector<float> gu_f = uniform(static_cast<size_t>(2 * n), seed, -12.f, 12.f);
  const std::vector<float> dout_f = uniform(static_cast<size_t>(n), seed + 1, -2.f, 2.f);
  // the bf16 inputs, and the reference's fp32 views of them
  std::vector<uint16_t> gu16(static_cast<size_t>(2 * n + o), 0xFFFF), dout16(static_cast<size_t>(n + o), 0xFFFF);
  std::vector<float> gate(static_cast<size_t>(n)), up(static_cast<size_t>(n)), dout(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c, at = r * 2 * cols + c;
      gu16[o + at] = f32_to_bf16(gu_f[at]);
      gu16[o + at + cols] = f32_to_bf16(gu_f[at + cols]);
      dout16[o + i] = f32_to_bf16(dout_f[i]);
      gate[i] = bf16_to_f32(gu16[o + at]);
      up[i] = bf16_to_f32(gu16[o + at + cols]);
      dout[i] = bf16_to_f32(dout16[o + i]);
    }
  }
  simt::DeviceBuffer<float> dg(gate), du(up), dd(dout), out32(static_cast<size_t>(n)),
      dgate32(static_cast<size_t>(n)), dup32(static_cast<size_t>(n));
  ASSERT_EQ(swiglu_forward(out32.data(), dg.data(), du.data(), n, nullptr), cudaSuccess);
  ASSERT_EQ(swiglu_backward(dgate32.data(), dup32.data(), dd.data(), dg.data(), du.data(), n, nullptr), cudaSuccess);
  simt::DeviceBuffer<uint16_t> gu(gu16), dgu(static_cast<size_t>(2 * n + o + 2)), inplace(gu16), dd16(dout16),
      out(static_cast<size_t>(n + o + 2));
  auto bf = [o](simt::DeviceBuffer<uint16_t>& b) { return reinterpret_cast<__nv_bfloat16*>(b.data() + o); };
  ASSERT_EQ(swiglu_forward_bf16(bf(out), bf(gu), rows, cols, nullptr), cudaSuccess);
  ASSERT_EQ(swiglu_backward_bf16(bf(dgu), bf(dd16), bf(gu), rows, cols, nullptr), cudaSuccess);
  ASSERT_EQ(swiglu_backward_bf16(bf(inplace), bf(dd16), bf(inplace), rows, cols, nullptr), cudaSuccess);
  simt::device_synchronize();
  const std::vector<float> want_out = out32.download(), want_dg = dgate32.download(), want_du = dup32.download();
  const std::vector<uint16_t> got_out = out.download(), got_dgu = dgu.download(), got_inplace = inplace.download();
  const std::string what = std::to_string(rows) + " x " + std::to_string(cols) + " offset " + std::to_string(o);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = (i / cols) * 2 * cols + i % cols;
    ASSERT_EQ(got_out[o + i], f32_to_bf16(want_out[i])) << "forward " << what << " at " << i;
    ASSERT_EQ(got_dgu[o + at], f32_to_bf16(want_dg[i])) << "dgate " << what << " at " << i;
    ASSERT_EQ(got_dgu[o + at + cols], f32_to_bf16(want_du[i])) << "dup " << what << " at " << i;
    ASSERT_EQ(got_inplace[o + at], got_dgu[o + at]) << "in-place dgate " << what << " at " << i;
    ASSERT_EQ(got_inplace[o + at + cols], got_dgu[o + at + cols]) << "in-place dup " << what << " at " << i;
  }
  for (size_t i = static_cast<size_t>(o + n); i < got_out.size(); ++i)
    ASSERT_EQ(got_out[i], 0xFFFF) << "forward " << what << ": wrote past the end";
  for (size_t i = static_cast<size_t>(o + 2 * n); i < got_dgu.size(); ++i)
    ASSERT_EQ(got_dgu[i], 0xFFFF) << "backward " << what << ": wrote past the end";
}

TEST(CudaSwiglu, PairedBf16FormEqualsTheComposedKernels) {
  uint32_t seed = 50;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 4}, {3, 8}, {5, 7}, {1, 1025}, {9, 2816}};
  for (const auto& [rows, cols] : shapes) {
    check_paired_bf16(rows, cols, 0, seed);
    seed += 2;
  }
  check_paired_bf16(7, 64, 1, 70);  // 2-byte offset: the scalar path
  EXPECT_EQ(swiglu_forward_bf16(nullptr, nullptr, -1, 4, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace reclm::cuda
