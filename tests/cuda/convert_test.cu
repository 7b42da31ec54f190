// convert_f32_to_bf16 / convert_bf16_to_f32 (kernels/cuda/convert.cu) against the host
// conversions reclm::f32_to_bf16 / reclm::bf16_to_f32 (runtime/dtype.h), on the emulator
// (label emu) and a GPU (label gpu). Tolerance: none — every result must be bitwise equal,
// NaN payloads included.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/convert.h"
#include "kernels/simt/device_memory.h"
#include "runtime/dtype.h"

namespace reclm::cuda {
namespace {

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
uint32_t to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

// Specials, then `n_random` random bit patterns (all classes: normals of every exponent,
// denormals, infinities, NaNs with payloads).
std::vector<float> test_values(size_t n_random, uint32_t seed) {
  const uint32_t special_bits[] = {
      0x00000000u, 0x80000000u,                            // ±0
      0x7F800000u, 0xFF800000u,                            // ±inf
      0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFFA5A5A5u,  // quiet / signaling NaNs, payloads
      0x7FFFFFFFu, 0x7F80FFFFu,                            // NaN whose rounding would carry
      0x00000001u, 0x807FFFFFu, 0x00008000u, 0x00018000u,  // denormals (halfway ones included)
      0x3F808000u, 0x3F818000u, 0xBF808000u,               // exactly halfway: ties to even
      0x3F808001u, 0x3F807FFFu,                            // just above / below halfway
      0x7F7F8000u, 0x7F7FFFFFu, 0xFF7FFFFFu,               // round up to ±inf
      0x7F7F7FFFu, 0x3F800000u, 0x3FFFFFFFu,               // max bf16 finite, 1, carry into exponent
  };
  std::vector<float> values;
  for (uint32_t bits : special_bits) values.push_back(from_bits(bits));
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n_random; ++i) values.push_back(from_bits(static_cast<uint32_t>(rng())));
  return values;
}

// n values converted into a poisoned buffer at `offset` elements (offset 1: unaligned, scalar).
void check_f32_to_bf16(const std::vector<float>& values, int offset) {
  const size_t n = values.size();
  std::vector<float> padded(n + static_cast<size_t>(offset), 1.0f);
  std::copy(values.begin(), values.end(), padded.begin() + offset);
  simt::DeviceBuffer<float> in(padded);
  simt::DeviceBuffer<uint16_t> out(n + static_cast<size_t>(offset) + 3);  // poisoned: 0xFFFF
  auto* out_bf16 = reinterpret_cast<__nv_bfloat16*>(out.data() + offset);
  ASSERT_EQ(convert_f32_to_bf16(out_bf16, in.data() + offset, static_cast<int64_t>(n), nullptr), cudaSuccess);
  simt::device_synchronize();
  const std::vector<uint16_t> got = out.download();
  const std::string what = "n " + std::to_string(n) + " offset " + std::to_string(offset);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(got[i + static_cast<size_t>(offset)], f32_to_bf16(values[i]))
        << what << " element " << i << " bits 0x" << std::hex << to_bits(values[i]);
  }
  for (size_t i = n + static_cast<size_t>(offset); i < got.size(); ++i)
    EXPECT_EQ(got[i], 0xFFFFu) << "wrote past n";
}

TEST(CudaConvert, F32ToBf16MatchesHostBitwise) {
  // Sizes: specials only (not a multiple of the 8-value unit), and larger odd sizes with tails.
  check_f32_to_bf16(test_values(0, 1), 0);
  check_f32_to_bf16(test_values(1000, 2), 0);
  check_f32_to_bf16(test_values(100001, 3), 0);
  check_f32_to_bf16(test_values(1000, 4), 1);
}

// Every one of the 65536 bf16 bit patterns (plus a tail of 7), aligned and unaligned.
TEST(CudaConvert, Bf16ToF32MatchesHostBitwiseForAllPatterns) {
  for (int offset : {0, 1}) {
    const size_t n = 65536 + 7;
    std::vector<uint16_t> bits(n + static_cast<size_t>(offset), 0);
    for (size_t i = 0; i < n; ++i)
      bits[i + static_cast<size_t>(offset)] = static_cast<uint16_t>((i * 40503u) & 0xFFFFu);
    simt::DeviceBuffer<uint16_t> in(bits);
    simt::DeviceBuffer<float> out(n + static_cast<size_t>(offset));
    const auto* in_bf16 = reinterpret_cast<const __nv_bfloat16*>(in.data() + offset);
    ASSERT_EQ(convert_bf16_to_f32(out.data() + offset, in_bf16, static_cast<int64_t>(n), nullptr),
              cudaSuccess);
    simt::device_synchronize();
    const std::vector<float> got = out.download();
    for (size_t i = 0; i < n; ++i) {
      const uint16_t b = bits[i + static_cast<size_t>(offset)];
      ASSERT_EQ(to_bits(got[i + static_cast<size_t>(offset)]), to_bits(bf16_to_f32(b)))
          << "offset " << offset << " bf16 0x" << std::hex << b;
    }
  }
}

// bf16 -> f32 -> bf16 is the identity for every non-NaN pattern (and keeps NaNs NaN).
TEST(CudaConvert, RoundTripIsIdentity) {
  const size_t n = 65536;
  std::vector<uint16_t> bits(n);
  for (size_t i = 0; i < n; ++i) bits[i] = static_cast<uint16_t>(i);
  simt::DeviceBuffer<uint16_t> in(bits), back(n);
  simt::DeviceBuffer<float> mid(n);
  ASSERT_EQ(convert_bf16_to_f32(mid.data(), reinterpret_cast<const __nv_bfloat16*>(in.data()),
                                static_cast<int64_t>(n), nullptr),
            cudaSuccess);
  ASSERT_EQ(convert_f32_to_bf16(reinterpret_cast<__nv_bfloat16*>(back.data()), mid.data(),
                                static_cast<int64_t>(n), nullptr),
            cudaSuccess);
  simt::device_synchronize();
  const std::vector<uint16_t> got = back.download();
  for (size_t i = 0; i < n; ++i) {
    const bool nan = (i & 0x7FFFu) > 0x7F80u;
    if (nan) {
      ASSERT_GT(got[i] & 0x7FFFu, 0x7F80u) << "NaN lost at 0x" << std::hex << i;
    } else {
      ASSERT_EQ(got[i], bits[i]) << "round trip of 0x" << std::hex << i;
    }
  }
}

}  // namespace
}  // namespace reclm::cuda
