// embedding_forward / embedding_backward against a float64 reference and finite differences.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"

namespace reclm::ops {
namespace {

using namespace test_util;

// Reference loss L = Σ_t Σ_c r[t, c] · table[ids[t], c], in double.
double reference_loss(const std::vector<double>& table, const std::vector<int32_t>& ids,
                      const std::vector<float>& r, int64_t dim) {
  double loss = 0.0;
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t c = 0; c < dim; ++c) loss += r[t * dim + c] * table[ids[t] * dim + c];
  return loss;
}

TEST(Embedding, ForwardCopiesRows) {
  const int32_t vocab = 50;
  for (int64_t n_tokens : {1, 7, 129, 300}) {
    for (int64_t dim : {1, 24, 130}) {
      const auto table = uniform(static_cast<size_t>(vocab * dim), 1);
      const auto ids = random_ints(n_tokens, vocab - 1, 2);
      std::vector<float> out(static_cast<size_t>(n_tokens * dim), kNaN);
      embedding_forward(out.data(), table.data(), ids.data(), n_tokens, dim);
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t c = 0; c < dim; ++c)
          ASSERT_EQ(out[t * dim + c], table[ids[t] * dim + c]) << "t=" << t << " c=" << c;
    }
  }
}

TEST(Embedding, BackwardMatchesFiniteDifferences) {
  const int32_t vocab = 19;  // fewer rows than tokens: ids repeat
  for (int64_t n_tokens : {1, 7, 33}) {
    for (int64_t dim : {1, 24}) {
      const auto table = uniform(static_cast<size_t>(vocab * dim), 3);
      const auto ids = random_ints(n_tokens, vocab - 1, 4);
      const auto r = uniform(static_cast<size_t>(n_tokens * dim), 5);  // dL/dout
      std::vector<double> table64(table.begin(), table.end());
      const auto fd =
          finite_differences(table64, [&] { return reference_loss(table64, ids, r, dim); });
      std::vector<float> dtable(table.size(), 0.0f);
      embedding_backward(dtable.data(), r.data(), ids.data(), n_tokens, dim);
      // fp32 sum of ≤ 33 values in [-1, 1] vs a float64 difference quotient.
      expect_near_all(dtable, fd, 1e-5, 1e-5, "dtable");
    }
  }
}

TEST(Embedding, BackwardAccumulatesInTokenOrder) {
  // Large enough for the threaded path; a small vocabulary makes every row collide often.
  const int32_t vocab = 17;
  const int64_t n_tokens = 4099, dim = 130;
  const auto ids = random_ints(n_tokens, vocab - 1, 6);
  const auto dout = uniform(static_cast<size_t>(n_tokens * dim), 7);
  const auto init = uniform(static_cast<size_t>(vocab * dim), 8);
  // Reference: same order as documented (dtable row += dout rows in token order), in fp32,
  // so the kernel must match it bitwise; plus a float64 sanity bound.
  std::vector<float> want = init;
  std::vector<double> want64(init.begin(), init.end());
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t c = 0; c < dim; ++c) {
      want[ids[t] * dim + c] += dout[t * dim + c];
      want64[ids[t] * dim + c] += dout[t * dim + c];
    }
  std::vector<float> got = init;
  embedding_backward(got.data(), dout.data(), ids.data(), n_tokens, dim);
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
  // ~240 fp32 additions per element of magnitude ≤ ~20.
  expect_near_all(got, want64, 1e-4, 1e-5, "dtable");

  // Parameter gradient accumulates: a second call adds the same gradient again.
  std::vector<double> twice(want64.size());
  for (size_t i = 0; i < twice.size(); ++i) twice[i] = 2 * want64[i] - init[i];
  embedding_backward(got.data(), dout.data(), ids.data(), n_tokens, dim);
  expect_near_all(got, twice, 2e-4, 1e-5, "dtable after two calls");
}

TEST(Embedding, BackwardIsDeterministicAcrossThreadCounts) {
  const int32_t vocab = 5;
  const int64_t n_tokens = 2053, dim = 96;
  const auto ids = random_ints(n_tokens, vocab - 1, 9);
  const auto dout = uniform(static_cast<size_t>(n_tokens * dim), 10);
  const auto init = uniform(static_cast<size_t>(vocab * dim), 11);
  std::vector<float> a = init, b = init, c = init;
  embedding_backward(a.data(), dout.data(), ids.data(), n_tokens, dim);
  embedding_backward(b.data(), dout.data(), ids.data(), n_tokens, dim);
  {
    ScopedThreads one(1);
    embedding_backward(c.data(), dout.data(), ids.data(), n_tokens, dim);
  }
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float)));
}

}  // namespace
}  // namespace reclm::ops
