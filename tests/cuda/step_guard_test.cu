// The step guard's kernels (kernels/cuda/step_guard.cu) against kernels/step_guard.h on the host,
// which the host trainer uses: the same bits, on the emulator and a GPU. Random partial sums of
// odd counts, the parts read through an index list (gaps and a reversed order), and the cases
// that decide the update: clipping off (max_norm 0), a norm at and past max_norm, no loss weight,
// and non-finite losses and norms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cuda/step_guard.h"
#include "kernels/kernel_test_util.h"
#include "kernels/simt/device_memory.h"

namespace reclm::cuda {
namespace {

bool same_bits(const ops::StepGuard& a, const ops::StepGuard& b) {
  return std::memcmp(&a.loss_sum, &b.loss_sum, sizeof(double)) == 0 &&
         std::memcmp(&a.grad_norm, &b.grad_norm, sizeof(double)) == 0 &&
         std::memcmp(&a.clip, &b.clip, sizeof(float)) == 0 && a.finite == b.finite;
}

std::vector<double> random_doubles(size_t n, uint32_t seed, float lo, float hi) {
  const std::vector<float> f = ops::test_util::uniform(n, seed, lo, hi);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<double>(f[i]) * (1.0 + 1e-3 * static_cast<double>(i));
  return out;
}

// Two micro-batches' loss sums, then the norm over `parts` in the order `ids`: on the device and
// on the host.
struct Case {
  std::string what;
  std::vector<double> micro1, micro2, parts;
  std::vector<int32_t> ids;
  double total_weight;
  float max_norm;
};

void check_case(const Case& c) {
  SCOPED_TRACE(c.what);
  ops::StepGuard want;
  want.loss_sum = -7.0;  // (the first micro-batch must not add onto what is there)
  ops::step_guard_add_loss(want, c.micro1.data(), static_cast<int64_t>(c.micro1.size()), true);
  ops::step_guard_add_loss(want, c.micro2.data(), static_cast<int64_t>(c.micro2.size()), false);
  ops::step_guard_finish(want, c.parts.data(), c.ids.data(), static_cast<int>(c.ids.size()), c.total_weight,
                         c.max_norm);

  ops::StepGuard start;
  start.loss_sum = -7.0;
  simt::DeviceBuffer<ops::StepGuard> guard(std::vector<ops::StepGuard>{start});
  simt::DeviceBuffer<double> m1(c.micro1.empty() ? std::vector<double>{1e300} : c.micro1);
  simt::DeviceBuffer<double> m2(c.micro2.empty() ? std::vector<double>{1e300} : c.micro2);
  simt::DeviceBuffer<double> parts(c.parts);
  simt::DeviceBuffer<int32_t> ids(c.ids.empty() ? std::vector<int32_t>{0} : c.ids);
  ASSERT_EQ(step_guard_add_loss(guard.data(), m1.data(), static_cast<int64_t>(c.micro1.size()), true, nullptr),
            cudaSuccess);
  ASSERT_EQ(step_guard_add_loss(guard.data(), m2.data(), static_cast<int64_t>(c.micro2.size()), false, nullptr),
            cudaSuccess);
  ASSERT_EQ(step_guard_finish(guard.data(), parts.data(), ids.data(), static_cast<int>(c.ids.size()),
                              c.total_weight, c.max_norm, nullptr),
            cudaSuccess);
  simt::device_synchronize();
  const ops::StepGuard got = guard.download()[0];
  EXPECT_TRUE(same_bits(got, want)) << "device loss " << got.loss_sum << " norm " << got.grad_norm << " clip "
                                    << got.clip << " finite " << got.finite << "; host " << want.loss_sum << " "
                                    << want.grad_norm << " " << want.clip << " " << want.finite;

  // and the host function against a plain recomputation of what it should be
  double loss = 0.0, m = 0.0, squares = 0.0;
  for (double x : c.micro1) m += x;
  loss += m;
  m = 0.0;
  for (double x : c.micro2) m += x;
  loss += m;
  for (int32_t id : c.ids) squares += c.parts[static_cast<size_t>(id)];
  const double norm = std::sqrt(squares);
  EXPECT_EQ(std::memcmp(&want.loss_sum, &loss, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(&want.grad_norm, &norm, sizeof(double)), 0);
  const double mean = c.total_weight > 0.0 ? loss / c.total_weight : 0.0;
  EXPECT_EQ(want.finite, std::isfinite(mean) && std::isfinite(norm) ? 1 : 0);
  if (c.max_norm <= 0.0f || norm <= c.max_norm) {
    EXPECT_EQ(want.clip, 1.0f);
  } else {  // (a NaN norm gives a NaN clip: the step is skipped anyway)
    const float clip = static_cast<float>(c.max_norm / (norm + 1e-6));
    EXPECT_EQ(std::memcmp(&want.clip, &clip, sizeof(float)), 0);
  }
}

TEST(CudaStepGuard, EqualsTheHostFunctionsBitwise) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> parts = random_doubles(27, 11, 0.0f, 3.0f);
  std::vector<int32_t> gaps, reversed;
  for (int32_t i = 0; i < 27; i += 2) gaps.push_back(i);
  for (int32_t i = 26; i >= 0; --i) reversed.push_back(i);
  const std::vector<double> m1 = random_doubles(13, 3, 0.5f, 40.0f), m2 = random_doubles(1, 4, 0.5f, 40.0f);
  std::vector<Case> cases = {
      {"clipped, gaps", m1, m2, parts, gaps, 17.0, 1.0f},
      {"clipping off", m1, m2, parts, reversed, 17.0, 0.0f},
      {"norm under max_norm", m1, {}, parts, {3}, 3.0, 1e6f},
      {"no loss weight", {}, {}, parts, gaps, 0.0, 1.0f},
      {"no parts", m1, m2, parts, {}, 9.0, 1.0f},
      {"infinite loss", {1.0, inf}, m2, parts, gaps, 17.0, 1.0f},
      {"NaN loss", m1, {nan}, parts, gaps, 17.0, 1.0f},
      {"infinite norm", m1, m2, {1.0, inf, 2.0}, {0, 1, 2}, 17.0, 1.0f},
      {"NaN norm", m1, m2, {1.0, nan}, {1, 0}, 17.0, 1.0f},
      {"loss overflows the mean", {1e300}, {}, parts, gaps, 1e-10, 1.0f},
  };
  // the norm exactly at max_norm: not clipped
  cases.push_back({"norm at max_norm", m1, m2, {4.0}, {0}, 5.0, 2.0f});
  for (const Case& c : cases) check_case(c);
}

TEST(CudaStepGuard, RejectsMissingPointers) {
  simt::DeviceBuffer<ops::StepGuard> guard(1);
  simt::DeviceBuffer<double> parts(2);
  simt::DeviceBuffer<int32_t> ids(2);
  EXPECT_EQ(step_guard_add_loss(nullptr, parts.data(), 2, true, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(step_guard_add_loss(guard.data(), nullptr, 2, true, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(step_guard_finish(guard.data(), nullptr, ids.data(), 2, 1.0, 1.0f, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(step_guard_finish(guard.data(), parts.data(), nullptr, 2, 1.0, 1.0f, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(step_guard_finish(guard.data(), parts.data(), ids.data(), -1, 1.0, 1.0f, nullptr), cudaErrorInvalidValue);
  simt::device_synchronize();
}

}  // namespace
}  // namespace reclm::cuda
