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

// The in-place rotation of the fused QKV rows (the GPU trainer's) against the fp32 kernel on the
// widened values, rounded: bitwise, for the unit path (1D 64, 2D 128) and the scalar path (2D 8:
// rotary half 2; 2D 12: half 3; rows one value off the unit alignment), grouped and equal head
// counts, odd token counts; q and k, or k alone. v's bits, a signaling NaN among them, stay as they
// were, and so do the poisoned values before and after the rows.
struct QkvCase {
  int64_t tokens, heads, kv_heads, head_dim;
  bool two_d;
};

TEST(CudaRope, FusedQkInPlaceEqualsTheFp32Kernel) {
  const QkvCase cases[] = {{13, 4, 2, 64, false}, {5, 3, 3, 128, true}, {7, 4, 1, 8, true}, {9, 2, 2, 12, true}};
  constexpr uint16_t kSignalingNan = 0x7F81, kPoison = 0xFFFF;
  uint32_t seed = 70;
  for (const QkvCase& c : cases) {
    for (const int offset : {0, 1}) {
      const int64_t T = c.tokens, D = c.head_dim, QD = c.heads * D, KVD = c.kv_heads * D;
      const int64_t row = QD + 2 * KVD, n = T * row;
      const std::string what = std::string(c.two_d ? "2D" : "1D") + " heads " + std::to_string(c.heads) + "/" +
                               std::to_string(c.kv_heads) + " head_dim " + std::to_string(D) + " offset " +
                               std::to_string(offset);
      // random bf16 rows in the fused layout, `offset` poisoned values before them and one after
      std::vector<uint16_t> rows16(static_cast<size_t>(offset + n + 1), kPoison);
      const std::vector<float> x = uniform(static_cast<size_t>(n), seed);
      for (int64_t i = 0; i < n; ++i) rows16[offset + i] = f32_to_bf16(x[i]);
      rows16[offset + QD + KVD + 1] = kSignalingNan;  // token 0's v
      const std::vector<int32_t> inter = random_ints(T, 3000, seed + 2), intra = random_ints(T, 3000, seed + 3);
      seed += 4;
      // part p (0 q, 1 k, 2 v) of fused rows, contiguous [T, width]
      const int64_t widths[3] = {QD, KVD, KVD}, starts[3] = {0, QD, QD + KVD};
      auto part = [&](const std::vector<uint16_t>& fused, int p) {
        std::vector<uint16_t> out(static_cast<size_t>(T * widths[p]));
        for (int64_t t = 0; t < T; ++t)
          for (int64_t j = 0; j < widths[p]; ++j) out[t * widths[p] + j] = fused[offset + t * row + starts[p] + j];
        return out;
      };
      simt::DeviceBuffer<int32_t> dinter(inter), dintra(intra);
      const int32_t* dev_intra = c.two_d ? dintra.data() : nullptr;
      // want: the fp32 kernel on the widened q and k, rounded
      auto rotated = [&](const std::vector<uint16_t>& values, int64_t heads) {
        std::vector<float> wide(values.size());
        for (size_t i = 0; i < values.size(); ++i) wide[i] = bf16_to_f32(values[i]);
        simt::DeviceBuffer<float> in(wide), out(wide.size());
        EXPECT_EQ(rope_forward(out.data(), in.data(), dinter.data(), dev_intra, T, heads, D, kTheta, nullptr),
                  cudaSuccess);
        simt::device_synchronize();
        std::vector<uint16_t> rounded(values.size());
        const std::vector<float> got = out.download();
        for (size_t i = 0; i < got.size(); ++i) rounded[i] = f32_to_bf16(got[i]);
        return rounded;
      };
      simt::DeviceBuffer<float> table(static_cast<size_t>(T * D));
      ASSERT_EQ(rope_table(table.data(), dinter.data(), dev_intra, T, D, kTheta, nullptr), cudaSuccess);

      const std::vector<uint16_t> q_rotated = rotated(part(rows16, 0), c.heads);
      const std::vector<uint16_t> k_rotated = rotated(part(rows16, 1), c.kv_heads);
      // rotate_q false: k alone (the trainer's: its attention forward rotates q)
      for (const bool rotate_q : {true, false}) {
        simt::DeviceBuffer<uint16_t> rows(rows16);
        ASSERT_EQ(rope_qk_forward_bf16(reinterpret_cast<__nv_bfloat16*>(rows.data() + offset), table.data(), T,
                                       {c.heads, c.kv_heads, D, c.two_d}, nullptr, rotate_q),
                  cudaSuccess);
        simt::device_synchronize();
        const std::vector<uint16_t> got = rows.download();
        const std::string how = what + (rotate_q ? ", q and k" : ", k alone");
        for (int i = 0; i < offset; ++i) ASSERT_EQ(got[i], kPoison) << "written before the rows, " << how;
        ASSERT_EQ(got.back(), kPoison) << "written past the rows, " << how;
        const std::vector<uint16_t> want[3] = {rotate_q ? q_rotated : part(rows16, 0), k_rotated, part(rows16, 2)};
        const char* names[3] = {"q", "k", "v"};
        for (int p = 0; p < 3; ++p) EXPECT_EQ(part(got, p), want[p]) << names[p] << ", " << how;
      }
    }
  }
}

TEST(CudaRope, FusedQkRejectsBadShapes) {
  simt::DeviceBuffer<uint16_t> buf(256);
  simt::DeviceBuffer<float> table(64);
  auto* p = reinterpret_cast<__nv_bfloat16*>(buf.data());
  EXPECT_EQ(rope_qk_forward_bf16(p, table.data(), 2, {1, 1, 7, false}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(rope_qk_forward_bf16(p, table.data(), 2, {1, 1, 10, true}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(rope_qk_forward_bf16(p, nullptr, 2, {1, 1, 8, false}, nullptr), cudaErrorInvalidValue);
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
