// Flash-attention forward (kernels/cuda/attention_forward.cu) on the emulator (label emu) and a
// GPU (label gpu), against a float64 reference computed here from the same bf16-rounded inputs,
// and against the fp32 CPU op ops::attention_forward on those inputs.
//
// Tolerances. The kernel's scores are exact bf16 products summed in fp32 (relative ~1e-6), so
// lse (fp32) is within 1e-3 absolute. The output carries two roundings: P is rounded to bf16
// before P·V (each weight off by <= 2^-9 relative, so out moves by <= 2^-9 · max|v| = 2^-9 with
// |v| <= 1), and out itself is rounded to bf16 (<= 2^-9 relative; spacing 2^-8 relative).
// Hence |out − ref| <= 4e-3 + 2^-8 · |ref| for bf16 out (with margin for fp32 accumulation).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cuda/attention_forward.h"
#include "kernels/cuda/rope.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"

namespace reclm::cuda {
namespace {

using ops::test_util::uniform;

constexpr double kOutAtol = 4e-3;
constexpr double kOutRtol = 1.0 / 256.0;
constexpr double kLseAtol = 1e-3;

// float -> bf16 bits, round to nearest even (inputs are finite).
uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
float from_bf16(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

struct Bf16Tensor {
  std::vector<uint16_t> bits;
  std::vector<float> values;  // the bf16 values as floats
};
Bf16Tensor random_bf16(size_t n, uint32_t seed, float lo, float hi) {
  Bf16Tensor t;
  for (float x : uniform(n, seed, lo, hi)) {
    t.bits.push_back(to_bf16(x));
    t.values.push_back(from_bf16(t.bits.back()));
  }
  return t;
}

// prefix: empty = causal; else one per segment.
struct Case {
  std::vector<int32_t> lengths;
  std::vector<int32_t> prefix;
  int64_t n_heads, n_kv_heads, head_dim;
  uint32_t seed;
  int64_t max_seqlen_slack = 0;  // passed max_seqlen = longest segment + this (an upper bound)
};

// Exact attention in float64: out [T, H, D], lse [H, T].
void reference(const Case& c, const std::vector<int32_t>& cu, const Bf16Tensor& q, const Bf16Tensor& k,
               const Bf16Tensor& v, double scale, std::vector<double>& out, std::vector<double>& lse) {
  const int64_t H = c.n_heads, KH = c.n_kv_heads, D = c.head_dim, T = cu.back();
  out.assign(static_cast<size_t>(T * H * D), 0.0);
  lse.assign(static_cast<size_t>(H * T), 0.0);
  std::vector<double> s;
  for (size_t seg = 0; seg < c.lengths.size(); ++seg) {
    const int64_t begin = cu[seg], len = c.lengths[seg];
    const int64_t prefix = c.prefix.empty() ? 0 : c.prefix[seg];
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kh = h / (H / KH);
      for (int64_t i = 0; i < len; ++i) {
        s.assign(static_cast<size_t>(len), -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < len; ++j) {
          if (!(j <= i || j < prefix)) continue;
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d) {
            dot += static_cast<double>(q.values[((begin + i) * H + h) * D + d]) * k.values[((begin + j) * KH + kh) * D + d];
          }
          s[j] = scale * dot;
          mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < len; ++j) sum += std::exp(s[j] - mx);
        for (int64_t j = 0; j < len; ++j) {
          const double p = std::exp(s[j] - mx) / sum;
          if (p == 0.0) continue;
          for (int64_t d = 0; d < D; ++d) out[((begin + i) * H + h) * D + d] += p * v.values[((begin + j) * KH + kh) * D + d];
        }
        lse[h * T + begin + i] = mx + std::log(sum);
      }
    }
  }
}

double max_abs_error(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0.0;
  for (size_t i = 0; i < got.size(); ++i) e = std::max(e, std::abs(static_cast<double>(got[i]) - want[i]));
  return e;
}

void run_case(const Case& c) {
  std::vector<int32_t> cu = {0};
  for (int32_t len : c.lengths) cu.push_back(cu.back() + len);
  const int64_t T = cu.back(), H = c.n_heads, KH = c.n_kv_heads, D = c.head_dim;
  const int64_t max_seqlen = *std::max_element(c.lengths.begin(), c.lengths.end()) + c.max_seqlen_slack;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  // q wider than k: peakier softmax rows, so the running max moves between key tiles.
  const Bf16Tensor q = random_bf16(static_cast<size_t>(T * H * D), c.seed, -2.0f, 2.0f);
  const Bf16Tensor k = random_bf16(static_cast<size_t>(T * KH * D), c.seed + 1, -1.0f, 1.0f);
  const Bf16Tensor v = random_bf16(static_cast<size_t>(T * KH * D), c.seed + 2, -1.0f, 1.0f);

  simt::DeviceBuffer<uint16_t> q_dev(q.bits), k_dev(k.bits), v_dev(v.bits);
  // Poisoned (NaN) outputs, with one spare token row / 8 spare lse values that must stay so.
  simt::DeviceBuffer<uint16_t> out_dev(static_cast<size_t>((T + 1) * H * D));
  simt::DeviceBuffer<float> lse_dev(static_cast<size_t>(H * T + 8));
  simt::DeviceBuffer<int32_t> cu_dev(cu);
  simt::DeviceBuffer<int32_t> prefix_dev(c.prefix.empty() ? std::vector<int32_t>{0} : c.prefix);
  const ops::AttentionShape shape{T, H, KH, D, scale};
  ASSERT_EQ(attention_forward(reinterpret_cast<__nv_bfloat16*>(out_dev.data()), lse_dev.data(),
                              reinterpret_cast<const __nv_bfloat16*>(q_dev.data()),
                              reinterpret_cast<const __nv_bfloat16*>(k_dev.data()),
                              reinterpret_cast<const __nv_bfloat16*>(v_dev.data()), cu_dev.data(),
                              c.prefix.empty() ? nullptr : prefix_dev.data(), static_cast<int64_t>(c.lengths.size()),
                              max_seqlen, shape, nullptr),
            cudaSuccess);
  simt::device_synchronize();
  // An even GQA ratio runs two heads per block; one head per block gives the same bits.
  if ((H / KH) % 2 == 0) {
    simt::DeviceBuffer<uint16_t> out1_dev(static_cast<size_t>((T + 1) * H * D));
    simt::DeviceBuffer<float> lse1_dev(static_cast<size_t>(H * T + 8));
    ASSERT_EQ(attention_forward(reinterpret_cast<__nv_bfloat16*>(out1_dev.data()), lse1_dev.data(),
                                reinterpret_cast<const __nv_bfloat16*>(q_dev.data()),
                                reinterpret_cast<const __nv_bfloat16*>(k_dev.data()),
                                reinterpret_cast<const __nv_bfloat16*>(v_dev.data()), cu_dev.data(),
                                c.prefix.empty() ? nullptr : prefix_dev.data(), static_cast<int64_t>(c.lengths.size()),
                                max_seqlen, shape, nullptr, /*heads_per_block=*/1),
              cudaSuccess);
    simt::device_synchronize();
    EXPECT_EQ(out1_dev.download(), out_dev.download()) << "out, one head per block";
    const std::vector<float> lse1 = lse1_dev.download(), lse2 = lse_dev.download();
    EXPECT_EQ(0, std::memcmp(lse1.data(), lse2.data(), lse1.size() * sizeof(float))) << "lse, one head per block";
  }
  // q, k and v as the heads of fused QKV rows (the trainer's layout, AttentionQkvRows), each row with
  // 8 spare NaN values after its heads that must not be read: the same bits.
  {
    const int64_t stride = (H + 2 * KH) * D + 8;
    std::vector<uint16_t> rows(static_cast<size_t>(T * stride), 0x7FC1);
    for (int64_t t = 0; t < T; ++t) {
      std::copy_n(q.bits.begin() + t * H * D, H * D, rows.begin() + t * stride);
      std::copy_n(k.bits.begin() + t * KH * D, KH * D, rows.begin() + t * stride + H * D);
      std::copy_n(v.bits.begin() + t * KH * D, KH * D, rows.begin() + t * stride + (H + KH) * D);
    }
    simt::DeviceBuffer<uint16_t> rows_dev(rows), out_rows_dev(static_cast<size_t>((T + 1) * H * D));
    simt::DeviceBuffer<float> lse_rows_dev(static_cast<size_t>(H * T + 8));
    const auto* fused = reinterpret_cast<const __nv_bfloat16*>(rows_dev.data());
    ASSERT_EQ(attention_forward(reinterpret_cast<__nv_bfloat16*>(out_rows_dev.data()), lse_rows_dev.data(), fused,
                                fused + H * D, fused + (H + KH) * D, cu_dev.data(),
                                c.prefix.empty() ? nullptr : prefix_dev.data(), static_cast<int64_t>(c.lengths.size()),
                                max_seqlen, shape, nullptr, /*heads_per_block=*/0, AttentionQkvRows{stride}),
              cudaSuccess);
    simt::device_synchronize();
    EXPECT_EQ(out_rows_dev.download(), out_dev.download()) << "out, fused rows";
    const std::vector<float> lse_rows = lse_rows_dev.download(), lse_plain = lse_dev.download();
    EXPECT_EQ(0, std::memcmp(lse_rows.data(), lse_plain.data(), lse_rows.size() * sizeof(float))) << "lse, fused rows";
  }
  // RoPE in the forward (AttentionQkvRows::rope_table, the trainer's): k rotated by
  // rope_qk_forward_bf16 alone, q by the attention as it loads it and written back; the same bits
  // (out, lse, and the rows after) as rope_qk_forward_bf16 rotating both, then the attention.
  for (const bool two_d : {false, true}) {
    const int64_t stride = (H + 2 * KH) * D;  // (rope_qk_forward_bf16's rows are exactly this wide)
    std::vector<uint16_t> rows(static_cast<size_t>(T * stride));
    for (int64_t t = 0; t < T; ++t) {
      std::copy_n(q.bits.begin() + t * H * D, H * D, rows.begin() + t * stride);
      std::copy_n(k.bits.begin() + t * KH * D, KH * D, rows.begin() + t * stride + H * D);
      std::copy_n(v.bits.begin() + t * KH * D, KH * D, rows.begin() + t * stride + (H + KH) * D);
    }
    simt::DeviceBuffer<int32_t> inter(ops::test_util::random_ints(T, 3000, c.seed + 5)),
        intra(ops::test_util::random_ints(T, 3000, c.seed + 6));
    simt::DeviceBuffer<float> table(static_cast<size_t>(T * D));
    ASSERT_EQ(rope_table(table.data(), inter.data(), two_d ? intra.data() : nullptr, T, D, 10000.0f, nullptr),
              cudaSuccess);
    const QkvHeads heads{H, KH, D, two_d};
    simt::DeviceBuffer<uint16_t> rows_apart(rows), rows_fused(rows);
    simt::DeviceBuffer<uint16_t> out_apart(static_cast<size_t>(T * H * D)), out_fused(static_cast<size_t>(T * H * D));
    simt::DeviceBuffer<float> lse_apart(static_cast<size_t>(H * T)), lse_fused(static_cast<size_t>(H * T));
    auto* apart = reinterpret_cast<__nv_bfloat16*>(rows_apart.data());
    auto* fused = reinterpret_cast<__nv_bfloat16*>(rows_fused.data());
    const int32_t* prefix = c.prefix.empty() ? nullptr : prefix_dev.data();
    const int64_t n_segments = static_cast<int64_t>(c.lengths.size());
    ASSERT_EQ(rope_qk_forward_bf16(apart, table.data(), T, heads, nullptr), cudaSuccess);
    ASSERT_EQ(attention_forward(reinterpret_cast<__nv_bfloat16*>(out_apart.data()), lse_apart.data(), apart,
                                apart + H * D, apart + (H + KH) * D, cu_dev.data(), prefix, n_segments, max_seqlen,
                                shape, nullptr, 0, AttentionQkvRows{stride}),
              cudaSuccess);
    ASSERT_EQ(rope_qk_forward_bf16(fused, table.data(), T, heads, nullptr, /*rotate_q=*/false), cudaSuccess);
    ASSERT_EQ(attention_forward(reinterpret_cast<__nv_bfloat16*>(out_fused.data()), lse_fused.data(), fused,
                                fused + H * D, fused + (H + KH) * D, cu_dev.data(), prefix, n_segments, max_seqlen,
                                shape, nullptr, 0, AttentionQkvRows{stride, table.data(), two_d, fused}),
              cudaSuccess);
    simt::device_synchronize();
    const char* what = two_d ? "RoPE 2D in the forward" : "RoPE 1D in the forward";
    EXPECT_EQ(out_fused.download(), out_apart.download()) << "out, " << what;
    const std::vector<float> lse_a = lse_apart.download(), lse_f = lse_fused.download();
    EXPECT_EQ(0, std::memcmp(lse_a.data(), lse_f.data(), lse_a.size() * sizeof(float))) << "lse, " << what;
    EXPECT_EQ(rows_fused.download(), rows_apart.download()) << "the rows (q written back rotated), " << what;
    EXPECT_NE(rows_fused.download(), rows) << "nothing rotated, " << what;
  }
  std::vector<float> out;
  for (uint16_t b : out_dev.download()) out.push_back(from_bf16(b));
  std::vector<float> lse = lse_dev.download();
  for (size_t i = static_cast<size_t>(T * H * D); i < out.size(); ++i) ASSERT_TRUE(std::isnan(out[i])) << "out past T";
  for (size_t i = static_cast<size_t>(H * T); i < lse.size(); ++i) ASSERT_TRUE(std::isnan(lse[i])) << "lse past H*T";
  out.resize(static_cast<size_t>(T * H * D));
  lse.resize(static_cast<size_t>(H * T));

  std::vector<double> want_out, want_lse;
  reference(c, cu, q, k, v, scale, want_out, want_lse);
  ops::test_util::expect_near_all(out, want_out, kOutAtol, kOutRtol, "out vs float64");
  ops::test_util::expect_near_all(lse, want_lse, kLseAtol, 0.0, "lse vs float64");

  // The fp32 CPU op on the same bf16 values.
  std::vector<float> cpu_out(out.size()), cpu_lse(lse.size());
  ops::attention_forward(cpu_out.data(), cpu_lse.data(), q.values.data(), k.values.data(), v.values.data(), cu.data(),
                         c.prefix.empty() ? nullptr : c.prefix.data(), static_cast<int64_t>(c.lengths.size()), shape);
  const std::vector<double> cpu_out64(cpu_out.begin(), cpu_out.end()), cpu_lse64(cpu_lse.begin(), cpu_lse.end());
  ops::test_util::expect_near_all(out, cpu_out64, kOutAtol, kOutRtol, "out vs ops::attention_forward");
  ops::test_util::expect_near_all(lse, cpu_lse64, kLseAtol, 0.0, "lse vs ops::attention_forward");
  std::printf("  T=%lld H=%lld/%lld D=%lld %s: max |out err| %.3g, max |lse err| %.3g\n", static_cast<long long>(T),
              static_cast<long long>(H), static_cast<long long>(KH), static_cast<long long>(D),
              c.prefix.empty() ? "causal" : "prefix", max_abs_error(out, want_out), max_abs_error(lse, want_lse));
}

const std::vector<int32_t> kRagged = {1, 7, 63, 129, 300};

TEST(CudaAttentionForward, CausalRaggedHeadDim64) { run_case({kRagged, {}, 2, 2, 64, 11}); }

TEST(CudaAttentionForward, CausalGqa2HeadDim128) { run_case({{129, 7, 300}, {}, 4, 2, 128, 21}); }

// Prefix 0 (= causal), = segment length (bidirectional), and in between, crossing tile edges.
TEST(CudaAttentionForward, PrefixRaggedGqa2HeadDim128) {
  run_case({kRagged, {1, 0, 63, 70, 200}, 2, 1, 128, 31});
}

TEST(CudaAttentionForward, PrefixGqa4HeadDim64) { run_case({kRagged, {0, 7, 5, 129, 64}, 4, 1, 64, 41}); }

// max_seqlen larger than any segment: the blocks of query tiles past a segment's end do nothing.
TEST(CudaAttentionForward, BidirectionalGqa4HeadDim64) { run_case({{300, 63}, {300, 63}, 4, 1, 64, 51, 130}); }

// Segment lengths and prefixes on and next to the 64-row tile edges.
TEST(CudaAttentionForward, TileEdgesGqa2HeadDim64) { run_case({{64, 65, 128}, {64, 64, 1}, 2, 1, 64, 71}); }

// Many key tiles per query tile: the running max and the rescaled O carry across 13 tiles.
TEST(CudaAttentionForward, LongCausalSegmentHeadDim128) { run_case({{800, 33}, {}, 1, 1, 128, 61}); }

// head_dim 32 (small recommenders: d_model 64 over 2 heads), prefix and GQA 2.
TEST(CudaAttentionForward, PrefixRaggedGqa2HeadDim32) { run_case({kRagged, {1, 0, 63, 70, 200}, 4, 2, 32, 81}); }

// head_dim 96 (d_model 3072 over 32 heads, Phi-3's), prefix and GQA 2, across the tile edges.
TEST(CudaAttentionForward, PrefixRaggedGqa2HeadDim96) {
  run_case({{1, 64, 65, 129, 200}, {1, 0, 64, 70, 0}, 4, 2, 96, 91});
}

TEST(CudaAttentionForward, RejectsUnsupportedShapes) {
  const ops::AttentionShape bad_dim{8, 2, 2, 80, 0.1f};
  EXPECT_EQ(attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8, bad_dim, nullptr),
            cudaErrorInvalidValue);
  const ops::AttentionShape bad_gqa{8, 3, 2, 64, 0.1f};
  EXPECT_EQ(attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8, bad_gqa, nullptr),
            cudaErrorInvalidValue);
  // two heads per block need an even GQA ratio; only 0 (pick), 1 and 2 exist
  const ops::AttentionShape gqa3{8, 3, 1, 64, 0.1f}, gqa2{8, 4, 2, 64, 0.1f};
  EXPECT_EQ(attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8, gqa3, nullptr, 2),
            cudaErrorInvalidValue);
  EXPECT_EQ(attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8, gqa2, nullptr, 3),
            cudaErrorInvalidValue);
  // RoPE in the forward needs somewhere to write the rotated q
  const float table = 0.0f;
  EXPECT_EQ(attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8, gqa2, nullptr, 0,
                              AttentionQkvRows{0, &table, false, nullptr}),
            cudaErrorInvalidValue);
  // fused rows: a multiple of 8 values (16-byte copies) that holds all (4 + 2·2) · 64 = 512 of a row
  for (const int64_t stride : {int64_t{504}, int64_t{516}, int64_t{-8}}) {
    EXPECT_EQ(attention_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 8, gqa2, nullptr, 0,
                                AttentionQkvRows{stride}),
              cudaErrorInvalidValue)
        << stride;
  }
}

}  // namespace
}  // namespace reclm::cuda

namespace reclm::cuda {
namespace {

// Every combination the kernel supports: mask (causal; prefix of 0, partial and whole segment;
// fully bidirectional) × GQA ratio 1/2/4 × head dim 64/128, on ragged lengths 1, 7, 63, 129.
TEST(CudaAttentionForward, EveryMaskGqaAndHeadDim) {
  const std::vector<int32_t> lengths = {1, 7, 63, 129};
  const std::vector<std::vector<int32_t>> masks = {{}, {0, 3, 63, 40}, {1, 7, 63, 129}};
  uint32_t seed = 100;
  for (const std::vector<int32_t>& prefix : masks) {
    for (int64_t ratio : {1, 2, 4}) {
      for (int64_t head_dim : {64, 128}) {
        SCOPED_TRACE("prefix " + std::to_string(prefix.size()) + " gqa " + std::to_string(ratio) +
                     " d" + std::to_string(head_dim));
        run_case({lengths, prefix, 4, 4 / ratio, head_dim, seed++});
      }
    }
  }
}

}  // namespace
}  // namespace reclm::cuda
