// Emulator (g++) definitions of the 16-bit float intrinsics that cuda_bf16.h / cuda_fp16.h
// declare for the device only. (Their operators, conversions, comparisons, __hadd/__hmul/__hmax
// and the 2-vector forms __hadd2/__hmul2 already have host versions in the CUDA headers.)
// Each computes in double and rounds once to the 16-bit type, to nearest even.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

namespace reclm::simt {

inline double to_double(__nv_bfloat16 x) { return __bfloat162float(x); }
inline double to_double(__half x) { return __half2float(x); }
inline __nv_bfloat16 round_like(__nv_bfloat16, double x) { return __double2bfloat16(x); }
inline __half round_like(__half, double x) { return __double2half(x); }

template <typename Half, typename Function>
Half apply_rounded(Half x, Function f) {
  return round_like(x, f(to_double(x)));
}

}  // namespace reclm::simt

#define RECLM_SIMT_HALF_MATH(Half, Half2, low, high, pair)                                                       \
  inline Half __hfma(Half a, Half b, Half c) {                                                                  \
    /* a*b is exact in double (at most 22 significant bits), so the sum rounds about once */                    \
    return ::reclm::simt::round_like(a, ::reclm::simt::to_double(a) * ::reclm::simt::to_double(b) +             \
                                            ::reclm::simt::to_double(c));                                       \
  }                                                                                                             \
  inline Half2 __hfma2(Half2 a, Half2 b, Half2 c) {                                                             \
    return pair(__hfma(low(a), low(b), low(c)), __hfma(high(a), high(b), high(c)));                             \
  }                                                                                                             \
  inline Half hexp(Half x) { return ::reclm::simt::apply_rounded(x, [](double v) { return std::exp(v); }); }    \
  inline Half hlog(Half x) { return ::reclm::simt::apply_rounded(x, [](double v) { return std::log(v); }); }    \
  inline Half hsqrt(Half x) { return ::reclm::simt::apply_rounded(x, [](double v) { return std::sqrt(v); }); }  \
  inline Half hrsqrt(Half x) {                                                                                  \
    return ::reclm::simt::apply_rounded(x, [](double v) { return 1.0 / std::sqrt(v); });                        \
  }                                                                                                             \
  inline Half hrcp(Half x) { return ::reclm::simt::apply_rounded(x, [](double v) { return 1.0 / v; }); }        \
  inline Half htanh(Half x) { return ::reclm::simt::apply_rounded(x, [](double v) { return std::tanh(v); }); }  \
  inline Half2 h2exp(Half2 x) { return pair(hexp(low(x)), hexp(high(x))); }

RECLM_SIMT_HALF_MATH(__nv_bfloat16, __nv_bfloat162, __low2bfloat16, __high2bfloat16, __halves2bfloat162)
RECLM_SIMT_HALF_MATH(__half, __half2, __low2half, __high2half, __halves2half2)
#undef RECLM_SIMT_HALF_MATH
