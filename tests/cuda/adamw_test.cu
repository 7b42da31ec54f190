// adamw_update / adamw_update_bf16 (kernels/cuda/adamw.cu) against ops::adamw_update and
// ops::adamw_update_bf16 (kernels/cpu/adamw.cc, adamw_bf16.cc), on the emulator and a GPU.
// Tolerances: fp32 params, m, v — 3e-7 relative (about 2 ulp: the same expression, fused
//   multiply-adds placed differently by each compiler) plus a tiny absolute floor;
// bf16 copy — bitwise equal to the CPU rounding of the kernel's own fp32 result, and bitwise
//   equal to the CPU reference wherever the two fp32 results agree bitwise.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cuda/adamw.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"
#include "runtime/dtype.h"

namespace reclm::cuda {
namespace {

using ops::test_util::expect_near_all;
using ops::test_util::uniform;

ops::AdamWHyper test_hyper() {
  ops::AdamWHyper h;
  h.lr = 1e-3f;
  h.beta1 = 0.9f;
  h.beta2 = 0.999f;
  h.eps = 1e-8f;
  h.weight_decay = 0.1f;
  h.step = 7;
  h.grad_scale = 0.37f;
  return h;
}

// Optimizer state of n values (states start from random values, v ≥ 0), uploaded at `offset`
// into buffers of n + offset + 1 elements (offset ≠ 0 misaligns them: the scalar path).
struct State {
  std::vector<float> p, g, m, v;
  State(int64_t n, uint32_t seed)
      : p(uniform(static_cast<size_t>(n), seed, -2.0f, 2.0f)),
        g(uniform(static_cast<size_t>(n), seed + 1, -3.0f, 3.0f)),
        m(uniform(static_cast<size_t>(n), seed + 2, -0.5f, 0.5f)),
        v(uniform(static_cast<size_t>(n), seed + 3, 0.0f, 0.3f)) {}
};

std::vector<float> padded(const std::vector<float>& x, int64_t offset) {
  std::vector<float> out(static_cast<size_t>(offset), 1.0f);
  out.insert(out.end(), x.begin(), x.end());
  out.push_back(1.0f);
  return out;
}

// Distance in units in the last place between two finite floats of the same sign.
int64_t max_ulp_distance(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int32_t ia, ib;
    std::memcpy(&ia, &a[i], sizeof(ia));
    std::memcpy(&ib, &b[i], sizeof(ib));
    const int64_t d = std::abs(static_cast<int64_t>(ia) - ib);
    worst = d > worst ? d : worst;
  }
  return worst;
}

std::vector<double> to_double(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

struct DeviceResult {
  std::vector<float> p, m, v;
  std::vector<uint16_t> bf16;  // n + 1: the last one must stay poisoned
};

DeviceResult run_device(const State& s, int64_t offset, const ops::AdamWHyper& h, bool with_bf16,
                        ops::Bf16Rounding rounding, uint64_t seed, int64_t index_base,
                        const ops::StepGuard* guard = nullptr) {
  const int64_t n = static_cast<int64_t>(s.p.size());
  simt::DeviceBuffer<float> p(padded(s.p, offset)), g(padded(s.g, offset)), m(padded(s.m, offset)),
      v(padded(s.v, offset));
  simt::DeviceBuffer<uint16_t> bf16(static_cast<size_t>(n + offset + 1));
  const cudaError_t status =
      with_bf16 ? adamw_update_bf16(p.data() + offset, g.data() + offset, m.data() + offset, v.data() + offset, n, h,
                                    bf16.data() + offset, rounding, seed, index_base, nullptr, guard)
                : adamw_update(p.data() + offset, g.data() + offset, m.data() + offset, v.data() + offset, n, h,
                               nullptr);
  EXPECT_EQ(status, cudaSuccess);
  simt::device_synchronize();
  auto slice = [&](const std::vector<float>& all) {
    return std::vector<float>(all.begin() + offset, all.begin() + offset + n);
  };
  const std::vector<uint16_t> all_bf16 = bf16.download();
  return {slice(p.download()), slice(m.download()), slice(v.download()),
          std::vector<uint16_t>(all_bf16.begin() + offset, all_bf16.end())};
}

TEST(CudaAdamW, MatchesCpuForOddSizesAndAlignments) {
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{5}, int64_t{257}, int64_t{100003}}) {
    for (int64_t offset : {int64_t{0}, int64_t{1}}) {
      const State s(n, static_cast<uint32_t>(n + offset));
      State want = s;
      ops::adamw_update(want.p.data(), want.g.data(), want.m.data(), want.v.data(), n, test_hyper());
      const DeviceResult got = run_device(s, offset, test_hyper(), false, ops::Bf16Rounding::kNearestEven, 0, 0);
      const std::string what = "n " + std::to_string(n) + " offset " + std::to_string(offset);
      expect_near_all(got.p, to_double(want.p), 1e-9, 3e-7, "params " + what);
      expect_near_all(got.m, to_double(want.m), 1e-12, 3e-7, "m " + what);
      expect_near_all(got.v, to_double(want.v), 1e-15, 3e-7, "v " + what);
      if (n > 1000) {
        std::printf("adamw %s: max ulp distance to the CPU: params %lld, m %lld, v %lld\n", what.c_str(),
                    static_cast<long long>(max_ulp_distance(got.p, want.p)),
                    static_cast<long long>(max_ulp_distance(got.m, want.m)),
                    static_cast<long long>(max_ulp_distance(got.v, want.v)));
      }
    }
  }
}

// The bf16 copy, both roundings: bitwise the CPU rounding (ops.h) of the kernel's fp32 params,
// and the CPU reference's bf16 wherever the fp32 params agree; nothing written past n.
TEST(CudaAdamW, Bf16CopyIsBitwiseTheCpuRounding) {
  for (const ops::Bf16Rounding rounding : {ops::Bf16Rounding::kNearestEven, ops::Bf16Rounding::kStochastic}) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{100003}}) {
      for (int64_t offset : {int64_t{0}, int64_t{3}}) {
        const uint64_t seed = 0x1234567u + static_cast<uint64_t>(n);
        const int64_t index_base = 1000 * offset;
        const State s(n, static_cast<uint32_t>(3 * n + offset));
        State want = s;
        std::vector<uint16_t> want_bf16(static_cast<size_t>(n));
        ops::adamw_update_bf16(want.p.data(), want.g.data(), want.m.data(), want.v.data(), n, test_hyper(),
                               want_bf16.data(), rounding, seed, index_base);
        const DeviceResult got = run_device(s, offset, test_hyper(), true, rounding, seed, index_base);
        expect_near_all(got.p, to_double(want.p), 1e-9, 3e-7, "params");
        int64_t same_fp32 = 0;
        for (int64_t i = 0; i < n; ++i) {
          const float p = got.p[i];
          const uint16_t own = rounding == ops::Bf16Rounding::kNearestEven
                                   ? f32_to_bf16(p)
                                   : ops::f32_to_bf16_stochastic(
                                         p, ops::stochastic_rounding_bits(seed, test_hyper().step, index_base + i));
          ASSERT_EQ(got.bf16[i], own) << "element " << i << " of " << n << " offset " << offset;
          if (std::memcmp(&p, &want.p[i], sizeof(float)) == 0) {
            ++same_fp32;
            ASSERT_EQ(got.bf16[i], want_bf16[i]) << "element " << i;
          }
        }
        EXPECT_GE(same_fp32, n / 2) << "fp32 params should mostly agree bitwise";
        if (n > 1000) std::printf("bf16 n %lld: fp32 params bitwise equal to the CPU for %lld\n",
                                  static_cast<long long>(n), static_cast<long long>(same_fp32));
        EXPECT_EQ(got.bf16[n], 0xFFFFu) << "wrote past n";
      }
    }
  }
}

// A step guard (runtime.queued_steps) read on the device: a finite step updates exactly as the
// guard's clip passed as grad_scale does (bitwise, both paths and roundings); a non-finite one
// writes nothing at all, not even the bf16 copy.
TEST(CudaAdamW, StepGuardScalesByItsClipOrSkipsTheUpdate) {
  for (const ops::Bf16Rounding rounding : {ops::Bf16Rounding::kNearestEven, ops::Bf16Rounding::kStochastic}) {
    for (int64_t n : {int64_t{5}, int64_t{100003}}) {
      for (int64_t offset : {int64_t{0}, int64_t{1}}) {
        const State s(n, static_cast<uint32_t>(5 * n + offset));
        ops::StepGuard guard;
        guard.clip = 0.2913f;  // (test_hyper's grad_scale is 0.37: the guard's must win)
        simt::DeviceBuffer<ops::StepGuard> on_device(std::vector<ops::StepGuard>{guard});
        ops::AdamWHyper with_clip = test_hyper();
        with_clip.grad_scale = guard.clip;
        const DeviceResult want = run_device(s, offset, with_clip, true, rounding, 99, 7);
        const DeviceResult got = run_device(s, offset, test_hyper(), true, rounding, 99, 7, on_device.data());
        const std::string what = "n " + std::to_string(n) + " offset " + std::to_string(offset);
        EXPECT_EQ(std::memcmp(got.p.data(), want.p.data(), n * sizeof(float)), 0) << what;
        EXPECT_EQ(std::memcmp(got.m.data(), want.m.data(), n * sizeof(float)), 0) << what;
        EXPECT_EQ(std::memcmp(got.v.data(), want.v.data(), n * sizeof(float)), 0) << what;
        EXPECT_EQ(got.bf16, want.bf16) << what;

        guard.finite = 0;
        simt::DeviceBuffer<ops::StepGuard> skipped(std::vector<ops::StepGuard>{guard});
        const DeviceResult none = run_device(s, offset, test_hyper(), true, rounding, 99, 7, skipped.data());
        EXPECT_EQ(std::memcmp(none.p.data(), s.p.data(), n * sizeof(float)), 0) << what;
        EXPECT_EQ(std::memcmp(none.m.data(), s.m.data(), n * sizeof(float)), 0) << what;
        EXPECT_EQ(std::memcmp(none.v.data(), s.v.data(), n * sizeof(float)), 0) << what;
        for (int64_t i = 0; i <= n; ++i) ASSERT_EQ(none.bf16[i], 0xFFFFu) << "bf16 " << i << " written, " << what;
      }
    }
  }
}

// lr = 0, wd = 0 leaves params unchanged, so the bf16 copy is the rounding of chosen values:
// ties to even, NaN quieted, ±Inf, the largest finite value, subnormals, as runtime/dtype.h.
TEST(CudaAdamW, NearestEvenRoundingOfSpecialValues) {
  const uint32_t patterns[] = {0x3F808000u, 0x3F818000u, 0x3F808001u, 0x7F800000u, 0xFF800000u,
                               0x7FC00000u, 0x7F7FFFFFu, 0x00000001u, 0x80008000u, 0x00018000u,
                               0xBF7FFFFFu, 0x00000000u, 0x80000000u};
  const int64_t n = static_cast<int64_t>(sizeof(patterns) / sizeof(patterns[0]));
  State s(n, 99);
  for (int64_t i = 0; i < n; ++i) {  // m ≥ 0, g = 0: the update is +0, so −0 stays −0
    s.m[i] = std::abs(s.m[i]);
    s.g[i] = 0.0f;
  }
  for (int64_t i = 0; i < n; ++i) std::memcpy(&s.p[i], &patterns[i], sizeof(float));
  ops::AdamWHyper h = test_hyper();
  h.lr = 0.0f;
  h.weight_decay = 0.0f;
  const DeviceResult got = run_device(s, 0, h, true, ops::Bf16Rounding::kNearestEven, 0, 0);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(got.bf16[i], f32_to_bf16(got.p[i])) << "pattern " << std::hex << patterns[i];
    if (!std::isnan(s.p[i])) {
      EXPECT_EQ(got.bf16[i], f32_to_bf16(s.p[i])) << "pattern " << std::hex << patterns[i];
    }
  }
}

// Stochastic rounding is unbiased: every output is one of x's two bf16 neighbours and the mean
// rounding error (in units of the neighbours' spacing, signed by magnitude) is 0 within 5
// standard errors over ~1e5 values; nearest-even on the same values is not a valid check of
// this (it is unbiased too), truncation would give ≈ −0.5.
TEST(CudaAdamW, StochasticRoundingIsUnbiased) {
  const int64_t n = 100003;
  State s(n, 4242);
  s.p = uniform(static_cast<size_t>(n), 77, -4.0f, 4.0f);
  ops::AdamWHyper h = test_hyper();
  h.lr = 0.0f;
  h.weight_decay = 0.0f;
  const DeviceResult got = run_device(s, 0, h, true, ops::Bf16Rounding::kStochastic, 2024, 0);
  double sum = 0.0, sum_sq = 0.0;
  int64_t rounded_up = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float x = s.p[i];
    ASSERT_EQ(got.p[i], x) << "lr = 0 must leave params unchanged";
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof(bits));
    const uint16_t down = static_cast<uint16_t>(bits >> 16), up = static_cast<uint16_t>(down + 1);
    ASSERT_TRUE(got.bf16[i] == down || got.bf16[i] == up) << "element " << i << " not a neighbour of " << x;
    const double spacing = std::abs(static_cast<double>(bf16_to_f32(up)) - bf16_to_f32(down));
    const double error = (std::abs(static_cast<double>(bf16_to_f32(got.bf16[i]))) - std::abs(x)) / spacing;
    sum += error;
    sum_sq += error * error;
    rounded_up += got.bf16[i] == up;
  }
  const double mean = sum / n;
  const double standard_error = std::sqrt((sum_sq / n - mean * mean) / n);
  EXPECT_LT(std::abs(mean), 5 * standard_error) << "mean error " << mean << " ulp";
  EXPECT_GT(rounded_up, n / 4);  // both neighbours occur
  EXPECT_LT(rounded_up, 3 * n / 4);
}

}  // namespace
}  // namespace reclm::cuda
