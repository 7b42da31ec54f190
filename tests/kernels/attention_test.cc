// attention_forward / attention_backward against a naive float64 reference
// softmax(q·kᵀ·scale + mask)·v per segment and head, whose analytic gradients of
// L = Σ dout ∘ out are themselves checked against central finite differences. Also pins the mask
// (no leakage across segments or from future tokens), determinism, and the shape checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm::ops {
namespace {

using namespace test_util;

// A packed batch: segment lengths, optional prefix lengths (empty = plain causal), head shape.
struct Case {
  std::string name;
  std::vector<int32_t> lens;
  std::vector<int32_t> prefixes;
  int64_t n_heads, n_kv_heads, head_dim;
  float scale = 0.0f;  // 0: 1/sqrt(head_dim)
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }  // names failing cases

struct Batch {
  std::vector<int32_t> cu_seqlens, prefixes;
  AttentionShape shape;
  std::vector<float> q, k, v, dout;
  const int32_t* prefix_ptr() const { return prefixes.empty() ? nullptr : prefixes.data(); }
  int64_t n_segments() const { return static_cast<int64_t>(cu_seqlens.size()) - 1; }
  size_t q_size() const {
    return static_cast<size_t>(shape.n_tokens * shape.n_heads * shape.head_dim);
  }
  size_t kv_size() const {
    return static_cast<size_t>(shape.n_tokens * shape.n_kv_heads * shape.head_dim);
  }
};

// q, k ~ U(−2, 2) give scores with a standard deviation of ~1.3 at any head_dim under the
// 1/sqrt(head_dim) scale: peaked enough that the online-softmax rescaling matters.
Batch make_batch(const Case& c, uint32_t seed) {
  Batch b;
  b.cu_seqlens = {0};
  for (int32_t len : c.lens) b.cu_seqlens.push_back(b.cu_seqlens.back() + len);
  b.prefixes = c.prefixes;
  const float scale = c.scale > 0.0f ? c.scale : 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  b.shape = {b.cu_seqlens.back(), c.n_heads, c.n_kv_heads, c.head_dim, scale};
  b.q = uniform(b.q_size(), seed, -2.0f, 2.0f);
  b.k = uniform(b.kv_size(), seed + 1, -2.0f, 2.0f);
  b.v = uniform(b.kv_size(), seed + 2, -1.0f, 1.0f);
  b.dout = uniform(b.q_size(), seed + 3, -1.0f, 1.0f);
  return b;
}

// ---- float64 reference ---------------------------------------------------------------------
struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

// Naive attention per segment and head with an explicit [len, len] probability matrix, and its
// analytic gradients of L = Σ dout ∘ out:
//   dP = dout·vᵀ, dS = P ∘ (dP − rowsum(dP ∘ P)), dq = scale·dS·k, dk = scale·dSᵀ·q, dv = Pᵀ·dout.
template <typename T>
Reference reference_attention(const Batch& b, const std::vector<T>& q, const std::vector<T>& k,
                              const std::vector<T>& v) {
  const AttentionShape& s = b.shape;
  const int64_t H = s.n_heads, KV = s.n_kv_heads, D = s.head_dim, group = H / KV;
  Reference r;
  r.out.assign(b.q_size(), 0.0);
  r.lse.assign(static_cast<size_t>(H * s.n_tokens), 0.0);
  r.dq.assign(b.q_size(), 0.0);
  r.dk.assign(b.kv_size(), 0.0);
  r.dv.assign(b.kv_size(), 0.0);
  auto qi = [&](int64_t t, int64_t h) { return (t * H + h) * D; };
  auto ki = [&](int64_t t, int64_t g) { return (t * KV + g) * D; };
  for (int64_t seg = 0; seg < b.n_segments(); ++seg) {
    const int64_t begin = b.cu_seqlens[seg], len = b.cu_seqlens[seg + 1] - begin;
    const int64_t prefix = b.prefixes.empty() ? 0 : b.prefixes[seg];
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / group;
      std::vector<double> P(static_cast<size_t>(len * len), 0.0);  // P[i, j]
      for (int64_t i = 0; i < len; ++i) {
        double row_max = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < len; ++j) {
          if (!(j <= i || j < prefix)) continue;
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d)
            dot += static_cast<double>(q[qi(begin + i, h) + d]) * k[ki(begin + j, g) + d];
          P[i * len + j] = dot * s.scale;
          row_max = std::max(row_max, P[i * len + j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < len; ++j)
          if (j <= i || j < prefix) sum += std::exp(P[i * len + j] - row_max);
        for (int64_t j = 0; j < len; ++j)
          P[i * len + j] = (j <= i || j < prefix) ? std::exp(P[i * len + j] - row_max) / sum : 0.0;
        r.lse[h * s.n_tokens + begin + i] = row_max + std::log(sum);
        for (int64_t j = 0; j < len; ++j)
          for (int64_t d = 0; d < D; ++d)
            r.out[qi(begin + i, h) + d] += P[i * len + j] * v[ki(begin + j, g) + d];
      }
      for (int64_t i = 0; i < len; ++i) {
        std::vector<double> dP(static_cast<size_t>(len), 0.0);
        double row_dot = 0.0;
        for (int64_t j = 0; j < len; ++j) {
          for (int64_t d = 0; d < D; ++d)
            dP[j] += static_cast<double>(b.dout[qi(begin + i, h) + d]) * v[ki(begin + j, g) + d];
          row_dot += dP[j] * P[i * len + j];
        }
        for (int64_t j = 0; j < len; ++j) {
          const double p = P[i * len + j];
          const double dS = p * (dP[j] - row_dot) * s.scale;
          for (int64_t d = 0; d < D; ++d) {
            r.dq[qi(begin + i, h) + d] += dS * k[ki(begin + j, g) + d];
            r.dk[ki(begin + j, g) + d] += dS * q[qi(begin + i, h) + d];
            r.dv[ki(begin + j, g) + d] += p * b.dout[qi(begin + i, h) + d];
          }
        }
      }
    }
  }
  return r;
}

// |got − want| ≤ atol + rtol·|want| everywhere (NaN fails); reports the worst error.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double atol,
                  double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t worst = 0;
  double worst_excess = -1.0;
  bool bad = false;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    const double excess = err / (atol + rtol * std::abs(want[i]));
    if (!(excess <= 1.0)) bad = true;
    if (!(excess <= worst_excess)) worst_excess = excess, worst = i;  // NaN is "worst"
  }
  EXPECT_FALSE(bad) << what << "[" << worst << "]: got " << got[worst] << ", want " << want[worst]
                    << " (" << worst_excess << "× the tolerance)";
}

double max_abs(const std::vector<double>& x) {
  double m = 0.0;
  for (double v : x) m = std::max(m, std::abs(v));
  return m;
}

struct Outputs {
  std::vector<float> out, lse, dq, dk, dv;
};

// Runs forward and backward on NaN-poisoned outputs (an unwritten element fails every check).
Outputs run_attention(const Batch& b) {
  Outputs o;
  o.out.assign(b.q_size(), kNaN);
  o.lse.assign(static_cast<size_t>(b.shape.n_heads * b.shape.n_tokens), kNaN);
  o.dq.assign(b.q_size(), kNaN);
  o.dk.assign(b.kv_size(), kNaN);
  o.dv.assign(b.kv_size(), kNaN);
  attention_forward(o.out.data(), o.lse.data(), b.q.data(), b.k.data(), b.v.data(),
                    b.cu_seqlens.data(), b.prefix_ptr(), b.n_segments(), b.shape);
  attention_backward(o.dq.data(), o.dk.data(), o.dv.data(), b.dout.data(), b.q.data(), b.k.data(),
                     b.v.data(), o.out.data(), o.lse.data(), b.cu_seqlens.data(), b.prefix_ptr(),
                     b.n_segments(), b.shape);
  return o;
}

// ---- the reference itself ----------------------------------------------------------------------
TEST(AttentionReference, GradientsMatchFiniteDifferences) {
  // Tiny batch with a prefix, a causal segment and GQA; L = Σ dout ∘ out in double.
  const Batch b = make_batch({"tiny", {5, 3}, {2, 0}, 2, 1, 4}, 7);
  std::vector<double> q(b.q.begin(), b.q.end()), k(b.k.begin(), b.k.end()),
      v(b.v.begin(), b.v.end());
  const Reference r = reference_attention(b, q, k, v);
  auto loss = [&] {
    const Reference o = reference_attention(b, q, k, v);
    double sum = 0.0;
    for (size_t i = 0; i < o.out.size(); ++i) sum += o.out[i] * b.dout[i];
    return sum;
  };
  // Central differences with step 1e-5 have truncation error ~1e-10 · |L'''| and rounding error
  // ~1e-16 / 1e-5: both far below 1e-7.
  const double step = 1e-5;
  auto check = [&](std::vector<double>& x, const std::vector<double>& grad, const char* name) {
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_NEAR(grad[i], central_difference(x[i], loss, step), 1e-7) << name << "[" << i << "]";
  };
  check(q, r.dq, "dq");
  check(k, r.dk, "dk");
  check(v, r.dv, "dv");
}

// ---- kernel vs reference ---------------------------------------------------------------------
class AttentionMatchesReference : public testing::TestWithParam<Case> {};

TEST_P(AttentionMatchesReference, ForwardAndBothBackwardPaths) {
  const Batch b = make_batch(GetParam(), 1234);
  const Reference r = reference_attention(b, b.q, b.k, b.v);
  // The backward picks its decomposition from the OpenMP thread count: one thread always takes
  // the fused (segment, kv head) path; 8 threads take the split path unless the batch has many
  // equal segments.
  for (int threads : {1, 8}) {
    SCOPED_TRACE(testing::Message() << threads << " threads");
    ScopedThreads scope(threads);
    const Outputs o = run_attention(b);
    // fp32 kernel vs fp64 reference. out is a convex combination of v ∈ [−1, 1] over up to 300
    // keys, with fp32 dot products over head_dim and a 2e-7-accurate exp2: observed errors are
    // ~5e-7 (3e-6 with the large scores), so 1e-5 leaves a 3× margin at worst.
    expect_close(o.out, r.out, 1e-5, 1e-5, "out");
    // lse ≈ max score + log(len) ≲ 20: fp32 rounding of the scores dominates (observed ≲ 1e-6).
    expect_close(o.lse, r.lse, 1e-5, 1e-5, "lse");
    // Gradients sum up to group · len terms of dS = P ∘ (dP − D), where the subtraction cancels,
    // so errors scale with the largest gradient, not each element: observed ≲ 2e-6 of max|grad|.
    expect_close(o.dq, r.dq, 1e-5 * max_abs(r.dq), 2e-5, "dq");
    expect_close(o.dk, r.dk, 1e-5 * max_abs(r.dk), 2e-5, "dk");
    expect_close(o.dv, r.dv, 1e-5 * max_abs(r.dv), 2e-5, "dv");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Attention, AttentionMatchesReference,
    testing::Values(
        Case{"CausalOneSegmentMhaHeadDim64", {129}, {}, 4, 4, 64},
        // Ragged lengths around the 48-row tiles, an empty segment, GQA ratio 4.
        Case{"CausalRaggedGqa4HeadDim16", {1, 7, 0, 63, 129, 300}, {}, 8, 2, 16},
        // Part A / Part B: prefixes inside a tile, across tiles, zero, and the whole segment.
        Case{"PrefixPartAPartBGqa2HeadDim64", {300, 129, 63, 7}, {100, 50, 0, 7}, 4, 2, 64},
        Case{"BidirectionalHeadDim128", {129, 63}, {129, 63}, 2, 2, 128},
        Case{"PrefixMqaHeadDim128", {200, 1, 49}, {150, 1, 48}, 4, 1, 128},
        // Prefix ends next to tile edges (multiples of 16, 48 and 64, ±1).
        Case{"PrefixAtTileEdges", {99, 99, 99, 99, 99, 99}, {47, 48, 49, 63, 64, 65}, 2, 1, 16},
        // Head dims that are not multiples of the 8/16-wide vector blocks.
        Case{"PrefixOddHeadDim7", {63, 50}, {20, 0}, 2, 1, 7},
        Case{"PrefixHeadDim40", {97}, {60}, 6, 3, 40},
        // scale 1 at head_dim 64: scores spread over ±15, so most rows are dominated by a few
        // keys and the running max moves between key tiles.
        Case{"CausalLargeScores", {129}, {}, 2, 1, 64, 1.0f}),
    [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

// ---- mask --------------------------------------------------------------------------------------
bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

TEST(AttentionMask, NoLeakAcrossSegmentsOrFromHiddenKeys) {
  // Segment 0 = tokens [0, 70) with prefix 30, segment 1 = tokens [70, 160) with prefix 20.
  const Batch base = make_batch({"mask", {70, 90}, {30, 20}, 4, 2, 16}, 99);
  const Outputs o = run_attention(base);
  const int64_t H = 4, KV = 2, D = 16;

  // Changing every input of a segment-1 token leaves segment 0's outputs and gradients bitwise
  // unchanged.
  Batch changed = base;
  for (int64_t d = 0; d < H * D; ++d) {
    changed.q[100 * H * D + d] += 0.5f;
    changed.dout[100 * H * D + d] -= 0.5f;
  }
  for (int64_t d = 0; d < KV * D; ++d) {
    changed.k[75 * KV * D + d] *= -1.0f;
    changed.v[75 * KV * D + d] += 1.0f;
  }
  const Outputs c = run_attention(changed);
  EXPECT_TRUE(same_bits(o.out.data(), c.out.data(), 70 * H * D)) << "out of segment 0";
  EXPECT_TRUE(same_bits(o.dq.data(), c.dq.data(), 70 * H * D)) << "dq of segment 0";
  EXPECT_TRUE(same_bits(o.dk.data(), c.dk.data(), 70 * KV * D)) << "dk of segment 0";
  EXPECT_TRUE(same_bits(o.dv.data(), c.dv.data(), 70 * KV * D)) << "dv of segment 0";
  for (int64_t h = 0; h < H; ++h)
    EXPECT_TRUE(same_bits(o.lse.data() + h * 160, c.lse.data() + h * 160, 70)) << "lse " << h;

  // Key/value 60 of segment 0 lies past its prefix: queries 0..59 must not see it.
  Batch future = base;
  for (int64_t d = 0; d < KV * D; ++d) {
    future.k[60 * KV * D + d] += 3.0f;
    future.v[60 * KV * D + d] -= 3.0f;
  }
  const Outputs f = run_attention(future);
  EXPECT_TRUE(same_bits(o.out.data(), f.out.data(), 60 * H * D)) << "out before the change";
  EXPECT_TRUE(same_bits(o.dq.data(), f.dq.data(), 60 * H * D)) << "dq before the change";
  EXPECT_FALSE(same_bits(o.out.data(), f.out.data(), 70 * H * D)) << "query 60 must see it";
}

// ---- determinism -------------------------------------------------------------------------------
TEST(AttentionDeterminism, RepeatedCallsAreBitwiseIdentical) {
  const Batch b = make_batch({"det", {300, 17, 129, 64}, {40, 0, 129, 10}, 6, 2, 32}, 5);
  for (int threads : {2, 3, 8}) {  // 2 and 3 threads: fused backward; 8: split
    ScopedThreads scope(threads);
    const Outputs first = run_attention(b);
    const Outputs second = run_attention(b);
    EXPECT_TRUE(same_bits(first.out.data(), second.out.data(), first.out.size())) << threads;
    EXPECT_TRUE(same_bits(first.lse.data(), second.lse.data(), first.lse.size())) << threads;
    EXPECT_TRUE(same_bits(first.dq.data(), second.dq.data(), first.dq.size())) << threads;
    EXPECT_TRUE(same_bits(first.dk.data(), second.dk.data(), first.dk.size())) << threads;
    EXPECT_TRUE(same_bits(first.dv.data(), second.dv.data(), first.dv.size())) << threads;
  }
}

// ---- shape checks ------------------------------------------------------------------------------
TEST(AttentionShapeChecks, RejectsBadShapesAndSegments) {
  const Batch b = make_batch({"bad", {8, 4}, {}, 4, 2, 8}, 3);
  std::vector<float> out(b.q_size()), lse(static_cast<size_t>(4 * 12));
  auto forward = [&](const Batch& x) {
    attention_forward(out.data(), lse.data(), x.q.data(), x.k.data(), x.v.data(),
                      x.cu_seqlens.data(), x.prefix_ptr(), x.n_segments(), x.shape);
  };
  Batch heads = b;
  heads.shape.n_kv_heads = 3;  // 4 query heads cannot share 3 kv heads
  EXPECT_THROW(forward(heads), InternalError);
  Batch total = b;
  total.cu_seqlens.back() = 11;  // segments must cover all n_tokens
  EXPECT_THROW(forward(total), InternalError);
  Batch prefix = b;
  prefix.prefixes = {9, 0};  // prefix longer than its segment
  EXPECT_THROW(forward(prefix), InternalError);
}

}  // namespace
}  // namespace reclm::ops
