// adamw_update_bf16 and its stochastic rounding (kernels/cpu/adamw_bf16.cc): the CPU reference
// the CUDA AdamW's bf16 output is held to bitwise (tests/cuda/adamw_test.cu).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "runtime/dtype.h"

namespace reclm::ops {
namespace {

using test_util::uniform;

AdamWHyper hyper() {
  AdamWHyper h;
  h.lr = 1e-3f;
  h.beta1 = 0.9f;
  h.beta2 = 0.999f;
  h.eps = 1e-8f;
  h.weight_decay = 0.01f;
  h.step = 3;
  h.grad_scale = 0.8f;
  return h;
}

struct Update {
  std::vector<float> p, m, v;
  std::vector<uint16_t> bf16;
};

Update run(int64_t n, Bf16Rounding rounding, uint64_t seed, int64_t index_base, bool with_bf16) {
  Update r{uniform(n, 1), uniform(n, 2, -0.1f, 0.1f), uniform(n, 3, 0.0f, 0.01f), std::vector<uint16_t>(n, 0xFFFF)};
  const std::vector<float> g = uniform(n, 4);
  if (with_bf16) {
    adamw_update_bf16(r.p.data(), g.data(), r.m.data(), r.v.data(), n, hyper(), r.bf16.data(), rounding, seed,
                      index_base);
  } else {
    adamw_update(r.p.data(), g.data(), r.m.data(), r.v.data(), n, hyper());
  }
  return r;
}

// The fp32 update is adamw_update's exactly; the copy is f32_to_bf16 (round to nearest even).
TEST(AdamWBf16, NearestEvenIsTheHostConversionOfTheUpdate) {
  const int64_t n = 1001;
  const Update plain = run(n, Bf16Rounding::kNearestEven, 0, 0, false);
  const Update with = run(n, Bf16Rounding::kNearestEven, 0, 0, true);
  EXPECT_EQ(with.p, plain.p);
  EXPECT_EQ(with.m, plain.m);
  EXPECT_EQ(with.v, plain.v);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(with.bf16[i], f32_to_bf16(with.p[i])) << i;
}

// Stochastic: the copy is f32_to_bf16_stochastic with the hash bits of (seed, step, base + i),
// so shifting index_base shifts the bits with the elements.
TEST(AdamWBf16, StochasticUsesTheCounterHash) {
  const int64_t n = 1001;
  const Update a = run(n, Bf16Rounding::kStochastic, 7, 0, true);
  const Update b = run(n, Bf16Rounding::kStochastic, 7, 100, true);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(a.bf16[i], f32_to_bf16_stochastic(a.p[i], stochastic_rounding_bits(7, 3, i))) << i;
    ASSERT_EQ(b.bf16[i], f32_to_bf16_stochastic(b.p[i], stochastic_rounding_bits(7, 3, 100 + i))) << i;
    const uint32_t bits = std::bit_cast<uint32_t>(a.p[i]) >> 16;
    ASSERT_TRUE(a.bf16[i] == bits || a.bf16[i] == bits + 1) << i;
  }
  EXPECT_NE(a.bf16, b.bf16);
}

// 16 bits, each set about half the time, and different streams for different seeds and steps.
TEST(AdamWBf16, RoundingBitsLookUniform) {
  const int n = 100000;
  int64_t ones[16] = {};
  int same_seed = 0, same_step = 0;
  for (int i = 0; i < n; ++i) {
    const uint32_t r = stochastic_rounding_bits(11, 5, i);
    ASSERT_LT(r, 65536u);
    ASSERT_EQ(r, stochastic_rounding_bits(11, 5, i));  // a function of its arguments
    for (int k = 0; k < 16; ++k) ones[k] += (r >> k) & 1u;
    same_seed += r == stochastic_rounding_bits(12, 5, i);
    same_step += r == stochastic_rounding_bits(11, 6, i);
  }
  // Binomial(n, 1/2): standard deviation √n / 2 ≈ 158; allow 5 of them.
  for (int k = 0; k < 16; ++k) EXPECT_NEAR(ones[k], n / 2, 5 * 158) << "bit " << k;
  EXPECT_LT(same_seed, 20);  // expected n / 65536 ≈ 1.5
  EXPECT_LT(same_step, 20);
}

TEST(AdamWBf16, StochasticConversionEdges) {
  for (const float x : uniform(1000, 9, -100.0f, 100.0f)) {
    const uint32_t bits = std::bit_cast<uint32_t>(x);
    EXPECT_EQ(f32_to_bf16_stochastic(x, 0), bits >> 16);  // no random bits: truncation
    const uint32_t up = (bits & 0xFFFFu) == 0 ? bits >> 16 : (bits >> 16) + 1;
    EXPECT_EQ(f32_to_bf16_stochastic(x, 0xFFFF), up);  // all ones: up unless exact
    const float exact = bf16_to_f32(static_cast<uint16_t>(bits >> 16));
    EXPECT_EQ(f32_to_bf16_stochastic(exact, 0xFFFF), bits >> 16);  // bf16 values stay
  }
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16_stochastic(std::nanf(""), 0xFFFF))));
  EXPECT_EQ(f32_to_bf16_stochastic(INFINITY, 0xFFFF), 0x7F80u);
}

}  // namespace
}  // namespace reclm::ops
