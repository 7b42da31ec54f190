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

// The fused QKV rotation (the GPU trainer's) against the fp32 kernels on the widened values,
// rounded: bitwise, both ways, for the unit path (1D 64, 2D 128) and the scalar path (2D 8:
// rotary half 2; 2D 12: half 3; every pointer one value off the unit alignment), grouped and
// equal head counts, odd token counts. v's bits, a signaling NaN among them, are copied
// unchanged; poisoned outputs show that nothing outside q, k, v (forward) or the rows (backward)
// is written.
struct QkvCase {
  int64_t tokens, heads, kv_heads, head_dim;
  bool two_d;
};

TEST(CudaRope, FusedQkvEqualsTheComposedKernels) {
  const QkvCase cases[] = {{13, 4, 2, 64, false}, {5, 3, 3, 128, true}, {7, 4, 1, 8, true}, {9, 2, 2, 12, true}};
  constexpr uint16_t kSignalingNan = 0x7F81;
  uint32_t seed = 70;
  for (const QkvCase& c : cases) {
    for (const int offset : {0, 1}) {
      const int64_t T = c.tokens, D = c.head_dim, QD = c.heads * D, KVD = c.kv_heads * D;
      const int64_t row = QD + 2 * KVD, n = T * row;
      const std::string what = std::string(c.two_d ? "2D" : "1D") + " heads " + std::to_string(c.heads) + "/" +
                               std::to_string(c.kv_heads) + " head_dim " + std::to_string(D) + " offset " +
                               std::to_string(offset);
      // random bf16 rows (the forward's input) and gradients (the backward's), in the fused layout
      std::vector<uint16_t> rows16(static_cast<size_t>(n + offset)), grads16(static_cast<size_t>(n + offset));
      const std::vector<float> x = uniform(static_cast<size_t>(n), seed), g = uniform(static_cast<size_t>(n), seed + 1);
      for (int64_t i = 0; i < n; ++i) {
        rows16[offset + i] = f32_to_bf16(x[i]);
        grads16[offset + i] = f32_to_bf16(g[i]);
      }
      rows16[offset + QD + KVD + 1] = kSignalingNan;       // token 0's v
      grads16[offset + (T - 1) * row + row - 1] = kSignalingNan;  // the last token's dv
      const std::vector<int32_t> inter = random_ints(T, 3000, seed + 2), intra = random_ints(T, 3000, seed + 3);
      seed += 4;
      // part p (0 q, 1 k, 2 v) of a fused buffer, contiguous [T, width]
      const int64_t widths[3] = {QD, KVD, KVD}, starts[3] = {0, QD, QD + KVD};
      auto part = [&](const std::vector<uint16_t>& fused, int p) {
        std::vector<uint16_t> out(static_cast<size_t>(T * widths[p]));
        for (int64_t t = 0; t < T; ++t)
          for (int64_t j = 0; j < widths[p]; ++j) out[t * widths[p] + j] = fused[offset + t * row + starts[p] + j];
        return out;
      };
      simt::DeviceBuffer<int32_t> dinter(inter), dintra(intra);
      const int32_t* dev_intra = c.two_d ? dintra.data() : nullptr;
      // want: the fp32 kernels on the widened q and k (forward) or dq and dk (backward), rounded
      auto composed = [&](const std::vector<uint16_t>& values, int64_t heads, bool forward) {
        std::vector<float> wide(values.size());
        for (size_t i = 0; i < values.size(); ++i) wide[i] = bf16_to_f32(values[i]);
        simt::DeviceBuffer<float> in(wide), out(wide.size());
        const cudaError_t rc =
            forward ? rope_forward(out.data(), in.data(), dinter.data(), dev_intra, T, heads, D, kTheta, nullptr)
                    : rope_backward(out.data(), in.data(), dinter.data(), dev_intra, T, heads, D, kTheta, nullptr);
        EXPECT_EQ(rc, cudaSuccess);
        simt::device_synchronize();
        std::vector<uint16_t> rounded(values.size());
        const std::vector<float> got = out.download();
        for (size_t i = 0; i < got.size(); ++i) rounded[i] = f32_to_bf16(got[i]);
        return rounded;
      };
      simt::DeviceBuffer<float> table(static_cast<size_t>(T * D));
      ASSERT_EQ(rope_table(table.data(), dinter.data(), dev_intra, T, D, kTheta, nullptr), cudaSuccess);
      const QkvHeads heads{c.heads, c.kv_heads, D, c.two_d};
      auto bf = [](simt::DeviceBuffer<uint16_t>& b, int64_t at) {
        return reinterpret_cast<__nv_bfloat16*>(b.data() + at);
      };

      // forward: fused rows → q, k rotated, v copied (poisoned outputs, one value of tail each)
      simt::DeviceBuffer<uint16_t> rows(rows16), q(static_cast<size_t>(T * QD + offset + 1)),
          k(static_cast<size_t>(T * KVD + offset + 1)), v(static_cast<size_t>(T * KVD + offset + 1));
      ASSERT_EQ(rope_qkv_forward_bf16(bf(q, offset), bf(k, offset), bf(v, offset), bf(rows, offset), table.data(), T,
                                      heads, nullptr),
                cudaSuccess);
      simt::device_synchronize();
      const std::vector<uint16_t> want_fwd[3] = {composed(part(rows16, 0), c.heads, true),
                                                 composed(part(rows16, 1), c.kv_heads, true), part(rows16, 2)};
      simt::DeviceBuffer<uint16_t>* outs[3] = {&q, &k, &v};
      const char* names[3] = {"q", "k", "v"};
      for (int p = 0; p < 3; ++p) {
        const std::vector<uint16_t> got = outs[p]->download();
        for (int i = 0; i < offset; ++i) ASSERT_EQ(got[i], 0xFFFF) << names[p] << " written before, " << what;
        ASSERT_EQ(got.back(), 0xFFFF) << names[p] << " written past the end, " << what;
        EXPECT_EQ(std::vector<uint16_t>(got.begin() + offset, got.end() - 1), want_fwd[p])
            << "forward " << names[p] << ", " << what;
      }

      // backward: dq, dk, dv → the fused rows, dq and dk rotated back, dv copied
      const std::vector<uint16_t> dq16 = part(grads16, 0), dk16 = part(grads16, 1), dv16 = part(grads16, 2);
      auto shifted = [&](const std::vector<uint16_t>& values) {
        std::vector<uint16_t> out(static_cast<size_t>(offset), 0);
        out.insert(out.end(), values.begin(), values.end());
        return out;
      };
      simt::DeviceBuffer<uint16_t> dq(shifted(dq16)), dk(shifted(dk16)), dv(shifted(dv16)),
          d_rows(static_cast<size_t>(n + offset + 1));
      ASSERT_EQ(rope_qkv_backward_bf16(bf(d_rows, offset), bf(dq, offset), bf(dk, offset), bf(dv, offset),
                                       table.data(), T, heads, nullptr),
                cudaSuccess);
      simt::device_synchronize();
      const std::vector<uint16_t> want_bwd[3] = {composed(dq16, c.heads, false), composed(dk16, c.kv_heads, false),
                                                 dv16};
      const std::vector<uint16_t> got_rows = d_rows.download();
      for (int i = 0; i < offset; ++i) ASSERT_EQ(got_rows[i], 0xFFFF) << "rows written before, " << what;
      ASSERT_EQ(got_rows.back(), 0xFFFF) << "rows written past the end, " << what;
      for (int p = 0; p < 3; ++p) {
        const std::vector<uint16_t> got = part(got_rows, p);
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_EQ(got[i], want_bwd[p][i]) << "backward " << names[p] << " at " << i << ", " << what;
      }
    }
  }
}

TEST(CudaRope, FusedQkvRejectsBadShapes) {
  simt::DeviceBuffer<uint16_t> buf(256);
  simt::DeviceBuffer<float> table(64);
  auto* p = reinterpret_cast<__nv_bfloat16*>(buf.data());
  EXPECT_EQ(rope_qkv_forward_bf16(p, p, p, p, table.data(), 2, {1, 1, 7, false}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(rope_qkv_forward_bf16(p, p, p, p, table.data(), 2, {1, 1, 10, true}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(rope_qkv_backward_bf16(p, p, p, p, nullptr, 2, {1, 1, 8, false}, nullptr), cudaErrorInvalidValue);
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
