// rope_forward / rope_backward (kernels/cuda/rope.cu) against ops::rope_forward /
// ops::rope_backward, on the emulator (label emu) and a GPU (label gpu).
// Tolerance (fp32): both sides compute the angle and its cos/sin in double and round to fp32;
// a GPU's double pow/sin/cos may differ by an ulp, which can move a table entry by one fp32
// ulp, so |got − want| <= 1e-6 + 1e-6 · |want| for inputs in [-1, 1] (positions up to 5000,
// angles up to 5000 rad).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cuda/rope.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"
#include "runtime/dtype.h"

namespace reclm::cuda {
namespace {

using ops::test_util::expect_near_all;
using ops::test_util::random_ints;
using ops::test_util::uniform;

constexpr float kTheta = 10000.0f;
constexpr double kAtol = 1e-6, kRtol = 1e-6;

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

double max_abs_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double m = 0;
  for (size_t i = 0; i < got.size(); ++i) m = std::max(m, std::abs(static_cast<double>(got[i]) - want[i]));
  return m;
}

struct Case {
  int64_t tokens, heads, head_dim;
  bool two_d;
};

// Forward and backward, out-of-place into poisoned buffers and in place, for one shape.
void check_case(const Case& c, uint32_t seed, int32_t max_pos) {
  const size_t n = static_cast<size_t>(c.tokens * c.heads * c.head_dim);
  const std::vector<float> x = uniform(n, seed);
  const std::vector<int32_t> inter = random_ints(c.tokens, max_pos, seed + 1);
  const std::vector<int32_t> intra = random_ints(c.tokens, max_pos, seed + 2);
  const int32_t* host_intra = c.two_d ? intra.data() : nullptr;
  std::vector<float> want_fwd(n), want_bwd(n);
  ops::rope_forward(want_fwd.data(), x.data(), inter.data(), host_intra, c.tokens, c.heads, c.head_dim,
                    kTheta);
  ops::rope_backward(want_bwd.data(), x.data(), inter.data(), host_intra, c.tokens, c.heads, c.head_dim,
                     kTheta);

  simt::DeviceBuffer<float> dx(x), out(n), dinp(n), inplace(x);
  simt::DeviceBuffer<int32_t> dinter(inter), dintra(intra);
  const int32_t* dev_intra = c.two_d ? dintra.data() : nullptr;
  ASSERT_EQ(rope_forward(out.data(), dx.data(), dinter.data(), dev_intra, c.tokens, c.heads, c.head_dim,
                         kTheta, nullptr),
            cudaSuccess);
  ASSERT_EQ(rope_backward(dinp.data(), dx.data(), dinter.data(), dev_intra, c.tokens, c.heads, c.head_dim,
                          kTheta, nullptr),
            cudaSuccess);
  ASSERT_EQ(rope_forward(inplace.data(), inplace.data(), dinter.data(), dev_intra, c.tokens, c.heads,
                         c.head_dim, kTheta, nullptr),
            cudaSuccess);
  simt::device_synchronize();
  const std::string what = std::string(c.two_d ? "2D" : "1D") + " T " + std::to_string(c.tokens) + " heads " +
                           std::to_string(c.heads) + " head_dim " + std::to_string(c.head_dim);
  const std::vector<float> got_fwd = out.download();
  expect_near_all(got_fwd, to_double(want_fwd), kAtol, kRtol, "forward " + what);
  expect_near_all(dinp.download(), to_double(want_bwd), kAtol, kRtol, "backward " + what);
  expect_near_all(inplace.download(), to_double(want_fwd), kAtol, kRtol, "in-place forward " + what);
  std::printf("rope %s: max |forward error| %.3g\n", what.c_str(), max_abs_diff(got_fwd, want_fwd));
}

// head_dim 8, 64, 128 in 1D and 2D (2D 8: rotary half 2, the scalar path; 2D 12: half 3),
// odd token counts, large positions (the reference's per-token table path).
TEST(CudaRope, MatchesReferenceForwardBackwardInPlace) {
  const Case cases[] = {{7, 3, 8, false},  {13, 3, 64, false}, {5, 5, 128, false}, {7, 3, 8, true},
                        {13, 3, 64, true}, {5, 5, 128, true},  {9, 2, 12, true},   {3, 1, 2, false}};
  uint32_t seed = 1;
  for (const Case& c : cases) {
    check_case(c, seed, 5000);
    seed += 3;
  }
}

// Packed batches repeat small positions: the reference then builds its table per position.
TEST(CudaRope, SmallRepeatedPositions) {
  check_case({31, 4, 64, false}, 40, 6);
  check_case({31, 4, 64, true}, 50, 6);
}

// Pointers one float past a 16-byte boundary take the scalar path.
TEST(CudaRope, UnalignedPointers) {
  const int64_t tokens = 5, heads = 3, head_dim = 64;
  const size_t n = static_cast<size_t>(tokens * heads * head_dim);
  const std::vector<float> x = uniform(n + 1, 60);
  const std::vector<int32_t> pos = random_ints(tokens, 3000, 61);
  std::vector<float> want(n);
  ops::rope_forward(want.data(), x.data() + 1, pos.data(), nullptr, tokens, heads, head_dim, kTheta);
  simt::DeviceBuffer<float> dx(x), out(n + 1);
  simt::DeviceBuffer<int32_t> dpos(pos);
  ASSERT_EQ(rope_forward(out.data() + 1, dx.data() + 1, dpos.data(), nullptr, tokens, heads, head_dim, kTheta,
                         nullptr),
            cudaSuccess);
  simt::device_synchronize();
  const std::vector<float> got = out.download();
  expect_near_all(std::vector<float>(got.begin() + 1, got.end()), to_double(want), kAtol, kRtol, "unaligned");
  EXPECT_TRUE(std::isnan(got[0])) << "wrote before the output";
}

// The bf16 forms (the GPU trainer's) against the fp32 kernels on the widened values, rounded:
// bitwise, for the unit path and the scalar path (2D head_dim 8: rotary half 2), contiguous and
// strided (q inside rows of `stride` values at column 8, as in the fused QKV projection's output;
// the other columns stay untouched), backward also in place, and with every pointer one value off
// the unit alignment; and reading rope_table's (cos, sin), bitwise the same.
TEST(CudaRope, Bf16FormsEqualTheComposedKernels) {
  const Case cases[] = {{13, 3, 64, false}, {5, 5, 128, true}, {7, 3, 8, true}, {9, 2, 12, true}};
  uint32_t seed = 70;
  for (const Case& c : cases) {
    for (const bool strided : {false, true}) {
      for (const int offset : {0, 1}) {
        const int64_t row = c.heads * c.head_dim, T = c.tokens;
        const int64_t stride = strided ? row + 24 : row, col0 = strided ? 8 : 0;
        const int64_t n = T * row, wide = T * stride + offset + 2;  // the strided buffers, with a tail
        const std::vector<float> x = uniform(static_cast<size_t>(wide), seed);
        const std::vector<float> g = uniform(static_cast<size_t>(n), seed + 1);
        const std::vector<int32_t> inter = random_ints(T, 3000, seed + 2), intra = random_ints(T, 3000, seed + 3);
        seed += 4;
        // bf16 inputs: x16 strided (q at column col0 of each row), g16 contiguous; their widenings
        std::vector<uint16_t> x16(static_cast<size_t>(wide)), g16(static_cast<size_t>(n + offset));
        std::vector<float> xw(static_cast<size_t>(n)), gw(static_cast<size_t>(n));
        for (int64_t i = 0; i < wide; ++i) x16[i] = f32_to_bf16(x[i]);
        for (int64_t t = 0; t < T; ++t) {
          for (int64_t j = 0; j < row; ++j) {
            xw[t * row + j] = bf16_to_f32(x16[offset + t * stride + col0 + j]);
            g16[offset + t * row + j] = f32_to_bf16(g[t * row + j]);
            gw[t * row + j] = bf16_to_f32(g16[offset + t * row + j]);
          }
        }
        std::vector<float> want_f(static_cast<size_t>(n)), want_b(static_cast<size_t>(n));
        const int32_t* host_intra = c.two_d ? intra.data() : nullptr;
        ops::rope_forward(want_f.data(), xw.data(), inter.data(), host_intra, T, c.heads, c.head_dim, kTheta);
        ops::rope_backward(want_b.data(), gw.data(), inter.data(), host_intra, T, c.heads, c.head_dim, kTheta);
        // and the device's fp32 kernels on the same values (the claim is bitwise against these)
        simt::DeviceBuffer<float> dxw(xw), dgw(gw), fwd32(static_cast<size_t>(n)), bwd32(static_cast<size_t>(n));
        simt::DeviceBuffer<int32_t> dinter(inter), dintra(intra);
        const int32_t* dev_intra = c.two_d ? dintra.data() : nullptr;
        ASSERT_EQ(rope_forward(fwd32.data(), dxw.data(), dinter.data(), dev_intra, T, c.heads, c.head_dim, kTheta,
                               nullptr),
                  cudaSuccess);
        ASSERT_EQ(rope_backward(bwd32.data(), dgw.data(), dinter.data(), dev_intra, T, c.heads, c.head_dim, kTheta,
                                nullptr),
                  cudaSuccess);
        simt::DeviceBuffer<uint16_t> dx16(x16), dg16(g16), fwd(static_cast<size_t>(n + offset + 2)),
            bwd(static_cast<size_t>(wide)), inplace(g16);
        auto bf = [](simt::DeviceBuffer<uint16_t>& b, int64_t at) {
          return reinterpret_cast<__nv_bfloat16*>(b.data() + at);
        };
        ASSERT_EQ(rope_forward_bf16(bf(fwd, offset), bf(dx16, offset + col0), dinter.data(), dev_intra, T, c.heads,
                                    c.head_dim, kTheta, nullptr, stride),
                  cudaSuccess);
        ASSERT_EQ(rope_backward_bf16(bf(bwd, offset + col0), bf(dg16, offset), dinter.data(), dev_intra, T, c.heads,
                                     c.head_dim, kTheta, nullptr, stride),
                  cudaSuccess);
        ASSERT_EQ(rope_backward_bf16(bf(inplace, offset), bf(inplace, offset), dinter.data(), dev_intra, T, c.heads,
                                     c.head_dim, kTheta, nullptr),
                  cudaSuccess);
        // the same rotations reading rope_table's (cos, sin) instead of computing them (the trainer's
        // way): bitwise the same outputs, the untouched values included
        simt::DeviceBuffer<float> table(static_cast<size_t>(T * c.head_dim));  // (poisoned: NaN)
        ASSERT_EQ(rope_table(table.data(), dinter.data(), dev_intra, T, c.head_dim, kTheta, nullptr), cudaSuccess);
        simt::DeviceBuffer<uint16_t> fwd_t(static_cast<size_t>(n + offset + 2)), bwd_t(static_cast<size_t>(wide));
        ASSERT_EQ(rope_forward_bf16(bf(fwd_t, offset), bf(dx16, offset + col0), dinter.data(), dev_intra, T, c.heads,
                                    c.head_dim, kTheta, nullptr, stride, table.data()),
                  cudaSuccess);
        ASSERT_EQ(rope_backward_bf16(bf(bwd_t, offset + col0), bf(dg16, offset), dinter.data(), dev_intra, T, c.heads,
                                     c.head_dim, kTheta, nullptr, stride, table.data()),
                  cudaSuccess);
        simt::device_synchronize();
        EXPECT_EQ(fwd_t.download(), fwd.download()) << "forward from the table";
        EXPECT_EQ(bwd_t.download(), bwd.download()) << "backward from the table";
        const std::string what = std::string(c.two_d ? "2D" : "1D") + " head_dim " + std::to_string(c.head_dim) +
                                 (strided ? " strided" : "") + " offset " + std::to_string(offset);
        const std::vector<float> f32 = fwd32.download(), b32 = bwd32.download();
        expect_near_all(f32, to_double(want_f), kAtol, kRtol, "fp32 forward " + what);
        const std::vector<uint16_t> got_f = fwd.download(), got_b = bwd.download(), got_i = inplace.download();
        for (int64_t t = 0; t < T; ++t) {
          for (int64_t j = 0; j < row; ++j) {
            const int64_t i = t * row + j;
            ASSERT_EQ(got_f[offset + i], f32_to_bf16(f32[i])) << "forward " << what << " at " << i;
            ASSERT_EQ(got_b[offset + t * stride + col0 + j], f32_to_bf16(b32[i])) << "backward " << what << " at " << i;
            ASSERT_EQ(got_i[offset + i], f32_to_bf16(b32[i])) << "in-place backward " << what << " at " << i;
          }
        }
        int64_t written = 0;  // strided backward: exactly the q positions
        for (uint16_t v : got_b) written += v != 0xFFFF;
        EXPECT_LE(written, n) << "backward wrote outside its rows, " << what;
        for (int64_t i = offset + n; i < static_cast<int64_t>(got_f.size()); ++i)
          ASSERT_EQ(got_f[i], 0xFFFF) << "forward wrote past the end, " << what;
      }
    }
  }
}

TEST(CudaRope, RejectsIndivisibleHeadDim) {
  simt::DeviceBuffer<float> buf(64);
  simt::DeviceBuffer<int32_t> pos(std::vector<int32_t>{0, 1});
  EXPECT_EQ(rope_forward(buf.data(), buf.data(), pos.data(), nullptr, 2, 1, 7, kTheta, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(rope_forward(buf.data(), buf.data(), pos.data(), pos.data(), 2, 1, 10, kTheta, nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace reclm::cuda
