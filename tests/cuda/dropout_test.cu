// dropout / dropout_add / dropout_bf16 and their bf16-stream forms (kernels/cuda/dropout.cu) against ops::dropout
// (kernels/cpu/dropout.cc), on the emulator (label emu) and a GPU (label gpu): bitwise, since the
// mask is the same counter-based Philox draw on both sides and the arithmetic is one rounded
// multiply (and one add). Odd sizes (a partial last unit), rates 0, 0.3 and 0.9, a seed and an
// RNG stream with high bits set (folded to 32 bits), in place, pointers off the 16-byte units;
// outputs poisoned, nothing written past n.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/dropout.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/simt/device_memory.h"
#include "runtime/dtype.h"

namespace reclm::cuda {
namespace {

using ops::test_util::uniform;

void check(int64_t n, float rate, int offset, uint32_t seed) {
  const DropoutKey key{rate, 0x9E3779B97F4A7C15ull + seed, 0x1234567800000009ull + seed, 2 * seed + 1};
  const auto total = static_cast<size_t>(n + offset);
  const std::vector<float> in = uniform(total, seed), skip = uniform(total, seed + 1);
  std::vector<float> want(static_cast<size_t>(n)), want_add(static_cast<size_t>(n));
  ops::dropout(want.data(), in.data() + offset, n, rate, key.seed, key.rng_stream, key.site);
  ops::residual_forward(want_add.data(), skip.data() + offset, want.data(), n);
  // a bf16 residual stream's forms: the mask over a bf16 gradient, and a branch onto a bf16 stream,
  // each as the fp32 op on the widened values, rounded once
  std::vector<uint16_t> in16(total), skip16(total);
  std::vector<float> in_wide(total), skip_wide(total);
  for (size_t i = 0; i < total; ++i) {
    in16[i] = f32_to_bf16(in[i]), skip16[i] = f32_to_bf16(skip[i]);
    in_wide[i] = bf16_to_f32(in16[i]), skip_wide[i] = bf16_to_f32(skip16[i]);
  }
  std::vector<float> want_wide(static_cast<size_t>(n)), want_add_wide(static_cast<size_t>(n));
  ops::dropout(want_wide.data(), in_wide.data() + offset, n, rate, key.seed, key.rng_stream, key.site);
  ops::residual_forward(want_add_wide.data(), skip_wide.data() + offset, want.data(), n);

  simt::DeviceBuffer<float> din(in), dskip(skip), out(total + 3), added(total + 3), inplace(in);
  simt::DeviceBuffer<uint16_t> out16(total + 3), din16(in16), stream16(skip16), inplace16(in16);
  auto bf = [](simt::DeviceBuffer<uint16_t>& b, int at) { return reinterpret_cast<__nv_bfloat16*>(b.data() + at); };
  const int o = offset;
  ASSERT_EQ(dropout(out.data() + o, din.data() + o, n, key, nullptr), cudaSuccess);
  ASSERT_EQ(dropout_add(added.data() + o, dskip.data() + o, din.data() + o, n, key, nullptr), cudaSuccess);
  ASSERT_EQ(dropout(inplace.data() + o, inplace.data() + o, n, key, nullptr), cudaSuccess);
  ASSERT_EQ(dropout_bf16(reinterpret_cast<__nv_bfloat16*>(out16.data() + o), din.data() + o, n, key, nullptr),
            cudaSuccess);
  ASSERT_EQ(dropout_bf16(bf(inplace16, o), bf(inplace16, o), n, key, nullptr), cudaSuccess);
  ASSERT_EQ(dropout_add(bf(stream16, o), bf(stream16, o), din.data() + o, n, key, nullptr), cudaSuccess);
  simt::device_synchronize();
  const std::string what =
      "n " + std::to_string(n) + " rate " + std::to_string(rate) + " offset " + std::to_string(offset);
  const std::vector<float> got = out.download(), got_add = added.download(), got_in = inplace.download();
  const std::vector<uint16_t> got16 = out16.download(), got_in16 = inplace16.download(),
                              got_stream16 = stream16.download();
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(got[o + i], want[i]) << "dropout " << what << " at " << i;  // exact: same mask, same product
    ASSERT_EQ(got_add[o + i], want_add[i]) << "dropout_add " << what << " at " << i;
    ASSERT_EQ(got_in[o + i], want[i]) << "in place " << what << " at " << i;
    ASSERT_EQ(got16[o + i], f32_to_bf16(want[i])) << "dropout_bf16 " << what << " at " << i;
    ASSERT_EQ(got_in16[o + i], f32_to_bf16(want_wide[i])) << "dropout_bf16 bf16 in place " << what << " at " << i;
    ASSERT_EQ(got_stream16[o + i], f32_to_bf16(want_add_wide[i])) << "dropout_add bf16 " << what << " at " << i;
    dropped += want[i] == 0.0f;
  }
  for (size_t i = o + n; i < got.size(); ++i) {
    ASSERT_TRUE(std::isnan(got[i]) && std::isnan(got_add[i])) << what << ": wrote past the end";
    ASSERT_EQ(got16[i], 0xFFFF) << what << ": bf16 wrote past the end";
  }
  for (int i = 0; i < o; ++i) {  // (the in-place buffers end at n; before the offset they stay)
    ASSERT_EQ(got_in16[i], in16[i]) << what << ": bf16 in place wrote before the start";
    ASSERT_EQ(got_stream16[i], skip16[i]) << what << ": bf16 stream wrote before the start";
  }
  if (n >= 1000) {  // the mask drops about rate · n values (the reference's draws, checked here once more)
    EXPECT_NEAR(static_cast<double>(dropped) / n, rate, 0.05) << what;
  }
}

TEST(CudaDropout, MatchesCpuBitwise) {
  uint32_t seed = 1;
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{7}, int64_t{1000}, int64_t{100003}}) {
    for (float rate : {0.0f, 0.3f, 0.9f}) check(n, rate, 0, seed++);
  }
  check(1001, 0.3f, 1, 40);  // one float off the 16-byte units: the scalar path
  check(1001, 0.3f, 2, 41);  // 8 bytes off: bf16 units aligned, fp32 ones not
}

TEST(CudaDropout, RejectsRatesOutsideZeroToOne) {
  simt::DeviceBuffer<float> buf(8);
  for (float rate : {-0.1f, 1.0f, 1.5f}) {
    EXPECT_EQ(dropout(buf.data(), buf.data(), 8, {rate, 1, 2, 3}, nullptr), cudaErrorInvalidValue) << rate;
  }
}

}  // namespace
}  // namespace reclm::cuda
