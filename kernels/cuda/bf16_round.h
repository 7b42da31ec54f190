// fp32 -> bf16 rounding on the bits, for kernels that write bf16 (convert.cu, swiglu.cu), exactly
// as reclm::f32_to_bf16 (runtime/dtype.cc): add 0x7FFF + (lsb of the kept half) and truncate,
// i.e. round to nearest, ties to even (overflow rounds to ±inf, denormals like any other value);
// a NaN keeps its sign and top payload bits and gets the quiet bit (0x0040). Not
// __float2bfloat16_rn: on the GPU it returns the canonical NaN 0x7FFF for every NaN, which would
// differ from the host conversion. bf16 -> fp32 is exact: the 16 bits become the high half.
#pragma once

#include "kernels/simt/cuda_compat.h"

namespace reclm::cuda {

__device__ __forceinline__ unsigned bf16_bits_rn(float value) {
  const unsigned bits = __float_as_uint(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return ((bits >> 16) | 0x0040u) & 0xFFFFu;  // NaN: quiet
  return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
}

// Two bf16 (lo first in memory) in one 32-bit word, and back.
__device__ __forceinline__ unsigned pack2_bf16(float lo, float hi) {
  return bf16_bits_rn(lo) | (bf16_bits_rn(hi) << 16);
}
__device__ __forceinline__ float bf16_lo(unsigned word) { return __uint_as_float(word << 16); }
__device__ __forceinline__ float bf16_hi(unsigned word) { return __uint_as_float(word & 0xFFFF0000u); }

}  // namespace reclm::cuda
