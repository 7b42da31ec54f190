// rope_forward / rope_backward against an explicit Hugging Face rotate_half reference (1D,
// Llama) and ChatGLM's two-block 2D form, in float64.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm::ops {
namespace {

using namespace test_util;

constexpr float kTheta = 10000.0f;

// HF apply_rotary_pos_emb on one rotary block of `dim` values, written the way HF writes it:
//   inv_freq = θ^(-arange(0, dim, 2) / dim);  emb = cat(freqs, freqs)
//   out = x · cos(emb) + rotate_half(x) · sin(emb),  rotate_half(x) = cat(−x[dim/2:], x[:dim/2])
void hf_rotate_block(double* out, const double* x, double pos, int64_t dim) {
  const int64_t half = dim / 2;
  std::vector<double> emb(static_cast<size_t>(dim)), rot(static_cast<size_t>(dim));
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq =
        std::pow(static_cast<double>(kTheta), -static_cast<double>(2 * i) / dim);
    emb[i] = emb[i + half] = pos * inv_freq;
    rot[i] = -x[i + half];
    rot[i + half] = x[i];
  }
  for (int64_t i = 0; i < dim; ++i) out[i] = x[i] * std::cos(emb[i]) + rot[i] * std::sin(emb[i]);
}

// x [n_tokens, n_heads, head_dim]. 1D: one block of head_dim by pos_inter (Llama).
// 2D (ChatGLM): x1, x2 = x.chunk(2, -1); x1 rotated by pos_inter, x2 by pos_intra.
std::vector<double> reference_rope(const std::vector<double>& x, const int32_t* pos_inter,
                                   const int32_t* pos_intra, int64_t n_tokens, int64_t n_heads,
                                   int64_t head_dim) {
  std::vector<double> out(x.size());
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t base = (t * n_heads + h) * head_dim;
      if (pos_intra == nullptr) {
        hf_rotate_block(&out[base], &x[base], pos_inter[t], head_dim);
      } else {
        hf_rotate_block(&out[base], &x[base], pos_inter[t], head_dim / 2);
        hf_rotate_block(&out[base + head_dim / 2], &x[base + head_dim / 2], pos_intra[t],
                        head_dim / 2);
      }
    }
  return out;
}

struct Case {
  int64_t n_tokens, n_heads, head_dim;
};

// Runs `body(pos_intra)` for 1D (nullptr) and 2D positions.
template <typename Body>
void for_1d_and_2d(const std::vector<int32_t>& intra, Body&& body) {
  body(static_cast<const int32_t*>(nullptr));
  body(intra.data());
}

TEST(Rope, ForwardMatchesHfRotateHalf) {
  for (const Case& k : {Case{1, 1, 4}, Case{7, 3, 24}, Case{33, 2, 64}, Case{129, 3, 64}}) {
    const auto x = uniform(static_cast<size_t>(k.n_tokens * k.n_heads * k.head_dim), 1);
    const auto inter = random_ints(k.n_tokens, 4096, 2);
    const auto intra = random_ints(k.n_tokens, 40, 3);
    for_1d_and_2d(intra, [&](const int32_t* pos_intra) {
      const auto want = reference_rope({x.begin(), x.end()}, inter.data(), pos_intra, k.n_tokens,
                                       k.n_heads, k.head_dim);
      std::vector<float> out(x.size(), kNaN);
      rope_forward(out.data(), x.data(), inter.data(), pos_intra, k.n_tokens, k.n_heads, k.head_dim,
                   kTheta);
      // fp32 cos/sin (rounded from double) times fp32 inputs in [-1, 1]: a few ulps.
      expect_near_all(out, want, 1e-6, 1e-6, pos_intra ? "out 2D" : "out 1D");

      // In place (out aliases inp) gives the same result bitwise.
      std::vector<float> in_place = x;
      rope_forward(in_place.data(), in_place.data(), inter.data(), pos_intra, k.n_tokens, k.n_heads,
                   k.head_dim, kTheta);
      EXPECT_EQ(in_place, out);
    });
  }
}

TEST(Rope, PackedPositionsMatchReferenceAndSingleTokenCalls) {
  // A packed batch repeats small positions (segments restart at 0), so the kernel shares one
  // cos/sin row per distinct position; a lone token computes its own row. Same angles either way.
  const Case k{129, 3, 24};
  const auto x = uniform(static_cast<size_t>(k.n_tokens * k.n_heads * k.head_dim), 14);
  std::vector<int32_t> inter, intra;
  for (int64_t t = 0; t < k.n_tokens; ++t) {
    inter.push_back(static_cast<int32_t>(t % 40));  // segments of 40 tokens
    intra.push_back(static_cast<int32_t>(t % 7));
  }
  for_1d_and_2d(intra, [&](const int32_t* pos_intra) {
    const auto want = reference_rope({x.begin(), x.end()}, inter.data(), pos_intra, k.n_tokens,
                                     k.n_heads, k.head_dim);
    std::vector<float> batched(x.size(), kNaN), single(x.size(), kNaN);
    rope_forward(batched.data(), x.data(), inter.data(), pos_intra, k.n_tokens, k.n_heads,
                 k.head_dim, kTheta);
    expect_near_all(batched, want, 1e-6, 1e-6, pos_intra ? "out 2D" : "out 1D");
    const int64_t stride = k.n_heads * k.head_dim;
    for (int64_t t = 0; t < k.n_tokens; ++t) {
      rope_forward(single.data() + t * stride, x.data() + t * stride, inter.data() + t,
                   pos_intra ? pos_intra + t : nullptr, 1, k.n_heads, k.head_dim, kTheta);
    }
    EXPECT_EQ(single, batched);
  });
}

TEST(Rope, PositionZeroIsIdentity) {
  const Case k{7, 3, 24};
  const auto x = uniform(static_cast<size_t>(k.n_tokens * k.n_heads * k.head_dim), 4);
  const std::vector<int32_t> zeros(static_cast<size_t>(k.n_tokens), 0);
  for_1d_and_2d(zeros, [&](const int32_t* pos_intra) {
    std::vector<float> out(x.size(), kNaN);
    rope_forward(out.data(), x.data(), zeros.data(), pos_intra, k.n_tokens, k.n_heads, k.head_dim,
                 kTheta);
    EXPECT_EQ(out, x);  // cos 0 = 1, sin 0 = 0 exactly
  });
}

TEST(Rope, TwoDimensionalBlocksAreIndependent) {
  // With pos_intra = 0 the second half of every head is untouched and the first half is the
  // 1D rotation of a head_dim/2 head; with pos_inter = 0, the other way round.
  const Case k{7, 2, 32};
  const auto x = uniform(static_cast<size_t>(k.n_tokens * k.n_heads * k.head_dim), 5);
  const auto pos = random_ints(k.n_tokens, 500, 6);
  const std::vector<int32_t> zeros(static_cast<size_t>(k.n_tokens), 0);
  std::vector<float> out_2d(x.size(), kNaN), out_1d(x.size(), kNaN);
  rope_forward(out_2d.data(), x.data(), pos.data(), zeros.data(), k.n_tokens, k.n_heads, k.head_dim,
               kTheta);
  // The same data viewed as 2·n_heads heads of head_dim/2: even heads are first blocks.
  rope_forward(out_1d.data(), x.data(), pos.data(), nullptr, k.n_tokens, 2 * k.n_heads,
               k.head_dim / 2, kTheta);
  const int64_t half = k.head_dim / 2;
  for (int64_t i = 0; i < static_cast<int64_t>(x.size()); ++i) {
    const bool first_block = (i % k.head_dim) < half;
    ASSERT_EQ(out_2d[i], first_block ? out_1d[i] : x[i]) << i;
  }
}

TEST(Rope, BackwardInvertsForward) {
  // A rotation is orthogonal: Rᵀ(R x) = x.
  const Case k{129, 3, 64};
  const auto x = uniform(static_cast<size_t>(k.n_tokens * k.n_heads * k.head_dim), 7);
  const auto inter = random_ints(k.n_tokens, 8192, 8);
  const auto intra = random_ints(k.n_tokens, 64, 9);
  const std::vector<double> x64(x.begin(), x.end());
  for_1d_and_2d(intra, [&](const int32_t* pos_intra) {
    std::vector<float> y(x.size(), kNaN);
    rope_forward(y.data(), x.data(), inter.data(), pos_intra, k.n_tokens, k.n_heads, k.head_dim,
                 kTheta);
    rope_backward(y.data(), y.data(), inter.data(), pos_intra, k.n_tokens, k.n_heads, k.head_dim,
                  kTheta);  // in place
    // Two fp32 rotations of values in [-1, 1].
    expect_near_all(y, x64, 1e-6, 1e-6, pos_intra ? "round trip 2D" : "round trip 1D");
  });
}

TEST(Rope, BackwardMatchesFiniteDifferences) {
  for (const Case& k : {Case{1, 1, 4}, Case{7, 3, 24}, Case{5, 2, 64}}) {
    const auto x = uniform(static_cast<size_t>(k.n_tokens * k.n_heads * k.head_dim), 10);
    const auto r = uniform(x.size(), 11);  // dout = dL/dout
    const auto inter = random_ints(k.n_tokens, 2048, 12);
    const auto intra = random_ints(k.n_tokens, 30, 13);
    for_1d_and_2d(intra, [&](const int32_t* pos_intra) {
      std::vector<double> x64(x.begin(), x.end());
      auto loss = [&] {
        const auto out =
            reference_rope(x64, inter.data(), pos_intra, k.n_tokens, k.n_heads, k.head_dim);
        double l = 0.0;
        for (size_t i = 0; i < out.size(); ++i) l += r[i] * out[i];
        return l;
      };
      const auto fd = finite_differences(x64, loss);
      std::vector<float> dinp(x.size(), kNaN);  // activation gradient: overwritten
      rope_backward(dinp.data(), r.data(), inter.data(), pos_intra, k.n_tokens, k.n_heads,
                    k.head_dim, kTheta);
      // fp32 rotation of values in [-1, 1] vs a float64 difference quotient.
      expect_near_all(dinp, fd, 1e-6, 1e-5, pos_intra ? "dinp 2D" : "dinp 1D");
    });
  }
}

TEST(Rope, RejectsBadHeadDimAndNegativePositions) {
  const std::vector<float> x(6, 1.0f);
  std::vector<float> out(6);
  const int32_t pos[1] = {3};
  EXPECT_THROW(rope_forward(out.data(), x.data(), pos, pos, 1, 1, 6, kTheta), InternalError);
  const int32_t negative[1] = {-1};
  EXPECT_THROW(rope_forward(out.data(), x.data(), negative, nullptr, 1, 1, 6, kTheta),
               InternalError);
}

}  // namespace
}  // namespace reclm::ops
