// residual_forward: out = a + b, including the aliased forms the trainer uses (x += f(x)).
#include <gtest/gtest.h>

#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"

namespace reclm::ops {
namespace {

using namespace test_util;

TEST(Residual, AddsElementwiseIncludingAliases) {
  for (int64_t n : {1, 7, 129, 70001}) {  // 70001: the threaded path
    const auto a = uniform(static_cast<size_t>(n), 1);
    const auto b = uniform(static_cast<size_t>(n), 2);
    std::vector<float> want(a.size());
    for (size_t i = 0; i < a.size(); ++i) want[i] = a[i] + b[i];  // one fp32 add: exact match

    std::vector<float> out(a.size(), kNaN);
    residual_forward(out.data(), a.data(), b.data(), n);
    EXPECT_EQ(out, want);

    std::vector<float> into_a = a;
    residual_forward(into_a.data(), into_a.data(), b.data(), n);
    EXPECT_EQ(into_a, want);

    std::vector<float> into_b = b;
    residual_forward(into_b.data(), a.data(), into_b.data(), n);
    EXPECT_EQ(into_b, want);
  }
}

}  // namespace
}  // namespace reclm::ops
