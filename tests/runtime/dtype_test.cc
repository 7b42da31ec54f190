// bf16/f16 <-> f32 conversions against references computed another way: decoding by ldexp and
// round-to-nearest-even by comparing distances to the two neighbouring grid values in double
// (exact there), plus the compiler's _Float16 where it has one. Covers exact values, ties,
// subnormals, overflow, NaN, signed zero, and all 65536 bit patterns of each format.
#include "runtime/dtype.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace reclm {
namespace {

float from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }
uint32_t to_bits(float value) { return std::bit_cast<uint32_t>(value); }
constexpr float kInf = std::numeric_limits<float>::infinity();

// Float bit patterns spread over the whole 32-bit space (4099 is odd, so all distinct).
std::vector<uint32_t> spread_float_bits() {
  std::vector<uint32_t> bits;
  for (uint32_t i = 0; i < (1u << 20); ++i) bits.push_back(i * 4099u);
  return bits;
}

// --- references -------------------------------------------------------------------------------

// Round `value` (finite, >= 0) to the nearest of grid[i] <= value < grid[i + 1], ties to the even
// index; grid is ascending and its last entry is the overflow point (it stands for Inf).
uint32_t round_to_grid(const std::vector<double>& grid, double value) {
  if (value >= grid.back()) return static_cast<uint32_t>(grid.size() - 1);
  const auto upper = std::upper_bound(grid.begin(), grid.end(), value);
  const auto lower_index = static_cast<uint32_t>(upper - grid.begin() - 1);
  const double below = value - grid[lower_index];
  const double above = grid[lower_index + 1] - value;
  if (below < above) return lower_index;
  if (above < below) return lower_index + 1;
  return (lower_index & 1u) ? lower_index + 1 : lower_index;
}

// IEEE binary16 decoded by formula: s · 2^(e-15) · (1 + m/1024), subnormals m · 2^-24.
double reference_f16_value(uint16_t bits) {
  const int exponent = (bits >> 10) & 0x1F;
  const int mantissa = bits & 0x3FF;
  double magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(mantissa, -24);
  } else if (exponent == 0x1F) {
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::quiet_NaN();
  } else {
    magnitude = std::ldexp(1024 + mantissa, exponent - 25);
  }
  return (bits & 0x8000) ? -magnitude : magnitude;
}

// Non-negative finite f16 values 0x0000..0x7BFF, then 65536 = where rounding reaches Inf (0x7C00).
const std::vector<double>& f16_grid() {
  static const std::vector<double> grid = [] {
    std::vector<double> g;
    for (uint32_t b = 0; b < 0x7C00; ++b) g.push_back(reference_f16_value(static_cast<uint16_t>(b)));
    g.push_back(65536.0);
    return g;
  }();
  return grid;
}

uint16_t reference_f32_to_f16(float value) {
  const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  if (std::isinf(value)) return sign | 0x7C00;
  return static_cast<uint16_t>(sign | round_to_grid(f16_grid(), std::fabs(value)));
}

// bf16 is the top half of an f32: the two candidates are the truncation and the next bf16 up.
uint16_t reference_f32_to_bf16(float value) {
  const uint32_t bits = to_bits(value);
  const uint32_t sign = bits & 0x80000000u;
  const uint32_t abs = bits & 0x7FFFFFFFu;
  if (abs == 0x7F800000u) return static_cast<uint16_t>(bits >> 16);
  const uint32_t lower = abs & 0xFFFF0000u;
  const uint32_t upper = lower + 0x10000u;
  // Past the largest finite bf16 the next step up is Inf, which rounds as if it were 2^128.
  const double upper_value = upper == 0x7F800000u ? std::ldexp(1.0, 128) : from_bits(upper);
  const double below = static_cast<double>(from_bits(abs)) - from_bits(lower);  // exact
  const double above = upper_value - from_bits(abs);
  const bool lower_is_even = ((lower >> 16) & 1u) == 0;
  const uint32_t chosen =
      below < above ? lower : above < below ? upper : (lower_is_even ? lower : upper);
  return static_cast<uint16_t>((sign | chosen) >> 16);
}

bool is_f16_nan(uint16_t bits) { return (bits & 0x7C00) == 0x7C00 && (bits & 0x03FF) != 0; }
bool is_bf16_nan(uint16_t bits) { return (bits & 0x7F80) == 0x7F80 && (bits & 0x007F) != 0; }

// --- dtype table ------------------------------------------------------------------------------

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::kF32), 4u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF16), 2u);
  EXPECT_EQ(dtype_size(DType::kI32), 4u);
  EXPECT_EQ(dtype_size(DType::kI64), 8u);
  EXPECT_EQ(dtype_name(DType::kF32), "f32");
  EXPECT_EQ(dtype_name(DType::kBF16), "bf16");
  EXPECT_EQ(dtype_name(DType::kF16), "f16");
  EXPECT_EQ(dtype_name(DType::kI32), "i32");
  EXPECT_EQ(dtype_name(DType::kI64), "i64");
}

// --- bf16 -------------------------------------------------------------------------------------

TEST(Bf16, ExactValues) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_bf16(3.140625f), 0x4049);
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(kInf), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-kInf), 0xFF80);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0x4049), 3.140625f);
  EXPECT_EQ(bf16_to_f32(0x7F7F), 0x1.FEp127f);  // largest finite bf16
  EXPECT_EQ(bf16_to_f32(0x7F80), kInf);
  EXPECT_EQ(bf16_to_f32(0xFF80), -kInf);
}

TEST(Bf16, RoundsHalfToEven) {
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F808000u)), 0x3F80);  // tie, 0x3F80 even: down
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F818000u)), 0x3F82);  // tie, 0x3F81 odd: up
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F808001u)), 0x3F81);  // just above the tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x3F807FFFu)), 0x3F80);  // just below the tie
  EXPECT_EQ(f32_to_bf16(from_bits(0xBF818000u)), 0xBF82);  // negative tie, symmetric
  EXPECT_EQ(f32_to_bf16(from_bits(0x3FFF8000u)), 0x4000);  // carry into the exponent
}

TEST(Bf16, OverflowRoundsToInfinity) {
  EXPECT_EQ(f32_to_bf16(from_bits(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(f32_to_bf16(from_bits(0x7F7F8000u)), 0x7F80);  // tie with odd 0x7F7F: up to Inf
  EXPECT_EQ(f32_to_bf16(FLT_MAX), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-FLT_MAX), 0xFF80);
}

TEST(Bf16, Subnormals) {
  EXPECT_EQ(f32_to_bf16(from_bits(0x00010000u)), 0x0001);
  EXPECT_EQ(bf16_to_f32(0x0001), std::ldexp(1.0f, -133));
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000u)), 0x0000);  // tie to even zero
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000u)), 0x0002);  // tie, odd 0x0001: up
  EXPECT_EQ(f32_to_bf16(from_bits(0x80008001u)), 0x8001);
  EXPECT_EQ(f32_to_bf16(from_bits(0x007FFFFFu)), 0x0080);  // largest subnormal -> FLT_MIN
  EXPECT_EQ(f32_to_bf16(FLT_TRUE_MIN), 0x0000);
}

TEST(Bf16, NegativeZero) {
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  const float back = bf16_to_f32(0x8000);
  EXPECT_EQ(back, 0.0f);
  EXPECT_TRUE(std::signbit(back));
}

TEST(Bf16, NanStaysNan) {
  EXPECT_TRUE(is_bf16_nan(f32_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  // Signalling NaN whose payload is only in the low half: truncation alone would give Inf.
  EXPECT_TRUE(is_bf16_nan(f32_to_bf16(from_bits(0x7F800001u))));
  EXPECT_TRUE(is_bf16_nan(f32_to_bf16(from_bits(0x7FFFFFFFu))));  // would carry into the sign
  const uint16_t negative = f32_to_bf16(from_bits(0xFF800001u));
  EXPECT_TRUE(is_bf16_nan(negative));
  EXPECT_TRUE(negative & 0x8000);
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7FC0)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7F81)));
}

TEST(Bf16, MatchesReferenceRoundingAcrossFloatSpace) {
  int mismatches = 0;
  for (uint32_t bits : spread_float_bits()) {
    const float value = from_bits(bits);
    if (std::isnan(value)) continue;
    const uint16_t got = f32_to_bf16(value);
    const uint16_t want = reference_f32_to_bf16(value);
    if (got != want && ++mismatches <= 10) {
      ADD_FAILURE() << std::hex << "f32 0x" << bits << ": got 0x" << got << " want 0x" << want;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Bf16, EveryBitPatternRoundTrips) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    const float value = bf16_to_f32(bits);
    EXPECT_EQ(to_bits(value), b << 16) << std::hex << b;
    const uint16_t back = f32_to_bf16(value);
    if (is_bf16_nan(bits)) {
      // NaN stays NaN with its sign; the payload may gain the quiet bit.
      EXPECT_TRUE(is_bf16_nan(back)) << std::hex << b;
      EXPECT_EQ(back & 0x8000, bits & 0x8000) << std::hex << b;
    } else {
      EXPECT_EQ(back, bits) << std::hex << b;
    }
  }
}

// --- f16 --------------------------------------------------------------------------------------

TEST(F16, ExactValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(0.5f), 0x3800);
  EXPECT_EQ(f32_to_f16(0.333251953125f), 0x3555);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);          // largest finite f16
  EXPECT_EQ(f32_to_f16(0x1p-14f), 0x0400);          // smallest normal
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);          // smallest subnormal
  EXPECT_EQ(f32_to_f16(1023 * 0x1p-24f), 0x03FF);   // largest subnormal
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(kInf), 0x7C00);
  EXPECT_EQ(f32_to_f16(-kInf), 0xFC00);
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0400), 0x1p-14f);
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x83FF), -1023 * 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x7C00), kInf);
  EXPECT_EQ(f16_to_f32(0xFC00), -kInf);
}

TEST(F16, RoundsHalfToEven) {
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3C00);              // tie, even: down
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02);          // tie, odd 0x3C01: up
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);   // above the tie
  EXPECT_EQ(f32_to_f16(-(1.0f + 3 * 0x1p-11f)), 0xBC02);
  EXPECT_EQ(f32_to_f16(2047.5f), 0x6800);                      // carry into the exponent
  EXPECT_EQ(f32_to_f16(0x1p-14f * (1.0f + 0x1p-11f)), 0x0400); // tie at the smallest normal
}

TEST(F16, OverflowRoundsToInfinity) {
  EXPECT_EQ(f32_to_f16(from_bits(0x477FEFFFu)), 0x7BFF);  // just below 65520
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);                // tie with odd 0x7BFF: Inf
  EXPECT_EQ(f32_to_f16(-65520.0f), 0xFC00);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7C00);
  EXPECT_EQ(f32_to_f16(FLT_MAX), 0x7C00);
}

TEST(F16, Subnormals) {
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);                // tie to even zero
  EXPECT_EQ(f32_to_f16(-0x1p-25f), 0x8000);
  EXPECT_EQ(f32_to_f16(0x1p-25f * 1.0000001f), 0x0001);   // just above the tie
  EXPECT_EQ(f32_to_f16(3 * 0x1p-25f), 0x0002);            // 1.5 ulp -> 2
  EXPECT_EQ(f32_to_f16(5 * 0x1p-25f), 0x0002);            // 2.5 ulp -> 2
  EXPECT_EQ(f32_to_f16(1023.5f * 0x1p-24f), 0x0400);      // rounds up into the normals
  EXPECT_EQ(f32_to_f16(0x1p-26f), 0x0000);
  EXPECT_EQ(f32_to_f16(FLT_TRUE_MIN), 0x0000);
  EXPECT_EQ(f32_to_f16(FLT_MIN), 0x0000);
}

TEST(F16, NegativeZero) {
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  const float back = f16_to_f32(0x8000);
  EXPECT_EQ(back, 0.0f);
  EXPECT_TRUE(std::signbit(back));
}

TEST(F16, NanStaysNan) {
  EXPECT_TRUE(is_f16_nan(f32_to_f16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(is_f16_nan(f32_to_f16(from_bits(0x7F800001u))));  // payload below f16 precision
  const uint16_t negative = f32_to_f16(from_bits(0xFFC00000u));
  EXPECT_TRUE(is_f16_nan(negative));
  EXPECT_TRUE(negative & 0x8000);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7C01)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0xFFFF)));
}

TEST(F16, DecodesEveryBitPatternLikeTheFormula) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    const double want = reference_f16_value(bits);
    const float got = f16_to_f32(bits);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << std::hex << b;
    } else {
      EXPECT_EQ(static_cast<double>(got), want) << std::hex << b;
      EXPECT_EQ(std::signbit(got), std::signbit(want)) << std::hex << b;
    }
  }
}

// Every tie between neighbouring f16 values, and one f32 ulp either side of it.
TEST(F16, EveryTieRoundsToEven) {
  const std::vector<double>& grid = f16_grid();
  for (uint32_t i = 0; i + 1 < grid.size(); ++i) {
    const auto midpoint = static_cast<float>((grid[i] + grid[i + 1]) / 2);  // exact: 12 bits
    const uint16_t even = (i & 1u) ? static_cast<uint16_t>(i + 1) : static_cast<uint16_t>(i);
    ASSERT_EQ(f32_to_f16(midpoint), even) << "tie above 0x" << std::hex << i;
    ASSERT_EQ(f32_to_f16(-midpoint), even | 0x8000) << "tie above 0x" << std::hex << i;
    ASSERT_EQ(f32_to_f16(std::nextafter(midpoint, 0.0f)), i) << std::hex << i;
    ASSERT_EQ(f32_to_f16(std::nextafter(midpoint, kInf)), i + 1) << std::hex << i;
  }
}

TEST(F16, MatchesReferenceRoundingAcrossFloatSpace) {
  int mismatches = 0;
  for (uint32_t bits : spread_float_bits()) {
    const float value = from_bits(bits);
    if (std::isnan(value)) continue;
    const uint16_t got = f32_to_f16(value);
    const uint16_t want = reference_f32_to_f16(value);
    if (got != want && ++mismatches <= 10) {
      ADD_FAILURE() << std::hex << "f32 0x" << bits << ": got 0x" << got << " want 0x" << want;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

#if defined(__FLT16_MANT_DIG__)
uint16_t compiler_f32_to_f16(float value) {
  const auto half = static_cast<_Float16>(value);
  uint16_t bits;
  std::memcpy(&bits, &half, sizeof bits);
  return bits;
}

float compiler_f16_to_f32(uint16_t bits) {
  _Float16 half;
  std::memcpy(&half, &bits, sizeof half);
  return static_cast<float>(half);
}

TEST(F16, MatchesCompilerFloat16) {
  int mismatches = 0;
  for (uint32_t bits : spread_float_bits()) {
    const float value = from_bits(bits);
    if (std::isnan(value)) continue;
    const uint16_t got = f32_to_f16(value);
    const uint16_t want = compiler_f32_to_f16(value);
    if (got != want && ++mismatches <= 10) {
      ADD_FAILURE() << std::hex << "f32 0x" << bits << ": got 0x" << got << " want 0x" << want;
    }
  }
  EXPECT_EQ(mismatches, 0);
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    if (is_f16_nan(bits)) continue;
    EXPECT_EQ(to_bits(f16_to_f32(bits)), to_bits(compiler_f16_to_f32(bits))) << std::hex << b;
  }
}
#endif

TEST(F16, EveryBitPatternRoundTrips) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    const uint16_t back = f32_to_f16(f16_to_f32(bits));
    if (is_f16_nan(bits)) {
      // NaN stays NaN with its sign; the payload is canonicalised.
      EXPECT_TRUE(is_f16_nan(back)) << std::hex << b;
      EXPECT_EQ(back & 0x8000, bits & 0x8000) << std::hex << b;
    } else {
      EXPECT_EQ(back, bits) << std::hex << b;
    }
  }
}

}  // namespace
}  // namespace reclm
